"""The command line's shared options, read once for every command: `--input CxHxW[,CxHxW...]` and `--set NAME=VALUE`.

No torch: `check`, `draw` and `diff` use them too. A value that cannot be read is a `UsageError` (exit 2).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .errors import UsageError
from .lang import parse_override, parse_size, short


def input_sizes(text: str | None) -> list[tuple[int, int, int]] | None:
    """`--input`'s sizes: one, or several separated by commas; None when the option is not given."""
    if text is None:
        return None
    parts = text.split(",")
    if not all(p.strip() for p in parts):
        raise UsageError(f"--input {text!r}: expected CxHxW, or several separated by commas")
    sizes = []
    for p in parts:
        try:
            sizes.append(parse_size(p))
        except ValueError:  # int() refuses numbers of over 4,300 digits
            raise UsageError(f"--input {short(p)}: dimensions over 65,536 are not supported") from None
    return sizes


def input_size(text: str | None, command: str) -> tuple[int, int, int] | None:
    """`--input` for a command that takes one size."""
    sizes = input_sizes(text)
    if sizes and len(sizes) > 1:
        raise UsageError(f"{command} takes one --input size")
    return sizes[0] if sizes else None


def overrides(items: Iterable[str]) -> dict[str, Any]:
    """`--set NAME=VALUE` options as constants, the value read as a spec reads it."""
    out = {}
    for s in items:
        try:
            name, value = parse_override(s)
        except ValueError:  # int() refuses numbers of over 4,300 digits
            raise UsageError(f"--set {short(s)}: cannot read the value (this integer is too large)") from None
        out[name] = value
    return out
