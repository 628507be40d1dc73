"""The pure functions a spec may call in a value: `min`, `max`, `ceil`, `floor`, `round`, `int` and torchvision's
`make_divisible`. A closed table; nothing else is callable as a value. `values.py` evaluates the arguments."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any


def make_divisible(v: float, divisor: int, min_value: int | None = None) -> int:
    """torchvision's `_make_divisible`: `v` rounded to a multiple of `divisor`, never below 90% of `v`."""
    low = divisor if min_value is None else min_value
    new = max(low, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


def _ceil(x: float) -> int:
    return math.ceil(x)


def _floor(x: float) -> int:
    return math.floor(x)


def _round(x: float, ndigits: int | None = None) -> int | float:
    return round(x) if ndigits is None else round(x, ndigits)  # Python's: halves to even


def _int(x: float) -> int:
    return int(x)  # toward zero, as Python's int()


# name -> (the function, its smallest and largest number of arguments; None: any number)
PURE_FUNCTIONS: dict[str, tuple[Callable[..., Any], int, int | None]] = {
    "min": (min, 2, None),
    "max": (max, 2, None),
    "ceil": (_ceil, 1, 1),
    "floor": (_floor, 1, 1),
    "round": (_round, 1, 2),
    "int": (_int, 1, 1),
    "make_divisible": (make_divisible, 2, 3),
}


# how each is called, for errors
PURE_SIGNATURES = {
    "min": "min(a, b, ...): the smallest of two or more numbers",
    "max": "max(a, b, ...): the largest of two or more numbers",
    "ceil": "ceil(x): the smallest integer >= x",
    "floor": "floor(x): the largest integer <= x",
    "round": "round(x) or round(x, digits): Python's, halves to even",
    "int": "int(x): x toward zero, an integer",
    "make_divisible": "make_divisible(value, divisor) or make_divisible(value, divisor, min_value): torchvision's "
    "_make_divisible, value rounded to a multiple of divisor",
}
