"""What a sweep varies: `--vary NAME=V1,V2,...` (a grid) or `--vary NAME=LO..HI[:log]` (a range, searched), each
NAME a constant of the spec or a train setting; and every point of it checked statically, without torch.

A name that is both a constant and a train setting (a constant called `lr`) must say which it means:
`--vary const:lr=...` or `--vary train:lr=...`. Values are read as `--set` reads them (numbers, strings, booleans);
a list's values are separated by commas, so tuples cannot be listed.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, replace
from typing import Any

from ..errors import NetspecError, SpecError, UsageError
from ..lang import did_you_mean, parse_override, short
from ..training.settings import SpecSource, TrainOptions, request

# The train settings a sweep may vary, as `netspec train`'s flags name them; the three last are read as text.
TRAIN_AXES = ("lr", "momentum", "weight_decay", "epochs", "batch_size", "test_batch_size", "seed", "train_limit")
TEXT_AXES = ("input", "data", "precision")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")

_RANGE = re.compile(r"^\s*(?P<lo>[^.:][^:]*?)\s*\.\.\s*(?P<hi>[^:]+?)\s*(?::\s*(?P<log>log))?\s*$")


@dataclass(frozen=True)
class Axis:
    """One varied name: `kind` says where it goes ("const": a constant of the spec; "train": a train setting)."""

    name: str  # as Optuna's parameter and summary.csv's column: `width`, or `const:lr` where both exist
    target: str  # the constant's or the setting's own name
    kind: str
    values: tuple[Any, ...] = ()  # a list to take every value of
    low: float | None = None  # or a range to search
    high: float | None = None
    log: bool = False

    @property
    def is_range(self) -> bool:
        return self.low is not None

    @property
    def is_int(self) -> bool:
        return isinstance(self.low, int) and isinstance(self.high, int)


def parse_axes(texts: tuple[str, ...], constants: set[str]) -> list[Axis]:
    """The `--vary` flags, each checked against the spec's `constants` and the train settings."""
    axes: list[Axis] = []
    for text in texts:
        axis = _axis(text, constants)
        if any(a.target == axis.target and a.kind == axis.kind for a in axes):
            raise UsageError(f"--vary {short(text)}: {axis.name} is varied twice")
        axes.append(axis)
    if not axes:
        raise UsageError("nothing to sweep: give at least one --vary NAME=V1,V2,... or NAME=LO..HI")
    return axes


def _axis(text: str, constants: set[str]) -> Axis:
    name, eq, values = text.partition("=")
    name = name.strip()
    if not eq or not values.strip():
        raise UsageError(f"--vary {short(text)}: expected NAME=V1,V2,... or NAME=LO..HI[:log], e.g. --vary width=16,32")
    kind, target = _where(name, text, constants)
    shown = f"{kind}:{target}" if target in constants and target in TRAIN_AXES + TEXT_AXES else target
    m = _RANGE.match(values)
    if m is not None and target not in TEXT_AXES:
        low, high = (_number(m[end], text) for end in ("lo", "hi"))
        if not low < high:
            raise UsageError(f"--vary {short(text)}: a range goes from its low end to a higher one")
        if m["log"] and low <= 0:
            raise UsageError(f"--vary {short(text)}: a log range must be positive")
        return Axis(shown, target, kind, low=low, high=high, log=bool(m["log"]))
    parsed = tuple(_value(target, v, text) for v in values.split(","))
    if len(set(map(repr, parsed))) < len(parsed):
        raise UsageError(f"--vary {short(text)}: a value is listed twice")
    return Axis(shown, target, kind, values=parsed)


def _where(name: str, text: str, constants: set[str]) -> tuple[str, str]:
    """("const" or "train", the bare name)."""
    prefix, colon, bare = name.partition(":")
    if colon:
        if prefix not in ("const", "train"):
            raise UsageError(f"--vary {short(text)}: {prefix!r} is neither const: nor train:")
        known = constants if prefix == "const" else set(TRAIN_AXES + TEXT_AXES)
        if bare not in known:
            raise UsageError(
                f"--vary {short(text)}: {bare!r} is no {'constant of the spec' if prefix == 'const' else 'train setting'}"
            )
        return prefix, bare
    setting = name in TRAIN_AXES + TEXT_AXES
    if name in constants and setting:
        raise UsageError(
            f"--vary {short(text)}: {name} is both a constant of the spec and a train setting: write "
            f"--vary const:{name}=... or --vary train:{name}=..."
        )
    if name in constants:
        return "const", name
    if setting:
        return "train", name
    hint = did_you_mean(name, sorted(constants | set(TRAIN_AXES + TEXT_AXES)))
    raise UsageError(
        f"--vary {short(text)}: {name!r} is neither a constant of the spec nor a train setting"
        + (f" ({hint})" if hint else f" (constants: {', '.join(sorted(constants)) or 'none'})")
    )


def _value(target: str, text: str, whole: str) -> Any:
    if not text.strip():
        raise UsageError(f"--vary {short(whole)}: an empty value")
    if target == "precision" and text.strip() not in PRECISIONS:
        raise UsageError(f"--vary {short(whole)}: a precision is one of {', '.join(PRECISIONS)}")
    if target in TEXT_AXES:
        return text.strip()
    try:
        value = parse_override(f"{target}={text}")[1]
    except (UsageError, ValueError):
        raise UsageError(f"--vary {short(whole)}: cannot read the value {short(text.strip())}") from None
    if not isinstance(value, (bool, int, float, str)):
        raise UsageError(f"--vary {short(whole)}: {short(text.strip())}: a value must be a number, string or boolean")
    return value


def _number(text: str, whole: str) -> int | float:
    value = _value("x", text, whole)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise UsageError(f"--vary {short(whole)}: the ends of a range are numbers")
    return value


# ---------------------------------------------------------------------------------------------------------------
# Points
# ---------------------------------------------------------------------------------------------------------------


def grid(axes: list[Axis]) -> list[dict[str, Any]]:
    """Every combination of the axes' values, in the order of the flags."""
    return [dict(zip((a.name for a in axes), combo)) for combo in itertools.product(*(a.values for a in axes))]


def corners(axes: list[Axis]) -> list[dict[str, Any]]:
    """What a search checks before it starts: each range at both its ends, with every value of each list."""
    ends = [(a.low, a.high) if a.is_range else a.values for a in axes]
    return [dict(zip((a.name for a in axes), combo)) for combo in itertools.product(*ends)]


def options_at(base: TrainOptions, axes: list[Axis], point: dict[str, Any]) -> TrainOptions:
    """The train options of one point: its constants joined to --set's, its settings replacing the flags'."""
    constants = dict(base.constants)
    settings: dict[str, Any] = {}
    for a in axes:
        if a.name in point:
            if a.kind == "const":
                constants[a.target] = point[a.name]
            else:
                settings[a.target] = point[a.name]
    return replace(base, constants=constants, **settings)


def label(point: dict[str, Any]) -> str:
    """`width=16,lr=0.01`: a point as the terminal shows it."""
    return ",".join(f"{k}={v}" for k, v in point.items())


def folder_name(point: dict[str, Any]) -> str:
    """A point as a run folder's name: `width16-lr0.01` (characters a file name should not hold become `_`)."""
    text = "-".join(f"{k.split(':')[-1]}{v}" for k, v in point.items())
    return re.sub(r"[^A-Za-z0-9._+-]", "_", text)[:120] or "point"


@dataclass(frozen=True)
class Checked:
    """A point that holds: its parameters and MACs per image, as the static check inferred them."""

    params: int
    macs: int
    seed: int  # the train settings' seed and epochs at the point
    epochs: int


def check_points(
    source: SpecSource, base: TrainOptions, axes: list[Axis], points: list[dict[str, Any]]
) -> list[Checked]:
    """Each point elaborated, its shapes inferred and its settings judged, as `netspec train` checks a run before
    it reads any data; the first point that fails is a UsageError (exit 1 for a spec's) naming its values."""
    checked = []
    for point in points:
        try:
            req = request(source, options_at(base, axes, point))
        except SpecError as e:
            raise PointError(f"the sweep's point {label(point)} fails its check:\n{e.render()}") from None
        except NetspecError as e:
            raise PointError(f"the sweep's point {label(point)} fails its check: {e}") from None
        checked.append(Checked(req.table.total_params, req.table.total_macs, req.train.seed, req.train.epochs))
    return checked


class PointError(NetspecError):
    """A point of the sweep that does not hold: nothing trains (exit 1)."""
