"""Instances of one class written alike: a layer argument that some instances leave at its default and others set
is written in all of them, so they differ in numbers only and share one `module` with a parameter.

    conv2 Conv2d(64, kernel_size=3, padding=1)              conv2 Conv2d(64, kernel_size=3, stride=1, padding=1)
    conv2 Conv2d(128, kernel_size=3, stride=2, padding=1)   conv2 Conv2d(128, kernel_size=3, stride=2, padding=1)

(torchvision's first Bottleneck of a stage strides, the others do not: one `Bottleneck(planes, stride)`.) Only
keyword arguments are filled in, with the default of netspec's layer; the keywords are written in the layer's order.
"""

from __future__ import annotations

import re

from ..lang import LAYERS
from .render import value_text

_CALL = re.compile(r"^(\s*(?:kept \S+ )?(?:[\w-]+ )?)([A-Z]\w*)\((.*)\)$")


def align_defaults(bodies: list[list[str]]) -> list[list[str]]:
    """The bodies, with keywords set in some instances and left at the default in others written everywhere."""
    if len(bodies) < 2:
        return bodies
    groups: dict[tuple[object, ...], list[int]] = {}
    for j, body in enumerate(bodies):
        groups.setdefault(tuple(_structure(ln) for ln in body), []).append(j)
    out = [list(b) for b in bodies]
    for members in groups.values():
        if len(members) < 2:
            continue
        for i in range(len(bodies[members[0]])):
            calls = [_split(bodies[j][i]) for j in members]
            if any(c is None for c in calls):
                continue
            keys = {k for c in calls for k in c[2] if k is not None}  # type: ignore[index]
            for j, c in zip(members, calls):
                assert c is not None
                out[j][i] = _with_defaults(c, keys)
    return out


def _structure(line: str) -> object:
    """A line's shape without its layer arguments: a layer call is its prefix and class."""
    c = _split(line)
    return ("call", c[0], c[1]) if c is not None else ("line", line)


def _split(line: str) -> tuple[str, str, dict[str | None, list[str]]] | None:
    """(prefix, layer, {keyword or None: [argument texts]}) of a layer call, or None."""
    m = _CALL.match(line)
    if m is None or m.group(2) not in LAYERS:
        return None
    args: dict[str | None, list[str]] = {}
    for part in _top_level(m.group(3)):
        key = re.match(r"^([A-Za-z_]\w*)=(?!=)", part)
        if key:
            args.setdefault(key.group(1), []).append(part)
        else:
            args.setdefault(None, []).append(part)
    return m.group(1), m.group(2), args


def _with_defaults(call: tuple[str, str, dict[str | None, list[str]]], keys: set[str]) -> str:
    prefix, cls, args = call
    fields = LAYERS[cls].model_fields
    parts = list(args.get(None, []))
    for key in [k for k in fields if k in keys] + sorted(k for k in keys if k not in fields):
        if key in args:
            parts += args[key]
        elif key in fields and not fields[key].is_required():
            parts.append(f"{key}={value_text(fields[key].default)}")
    return f"{prefix}{cls}({', '.join(parts)})"


def _top_level(text: str) -> list[str]:
    """The comma-separated parts of an argument list, brackets and strings respected."""
    parts, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    if text[start:].strip():
        parts.append(text[start:].strip())
    return parts
