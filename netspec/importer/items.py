"""The spec being written, as items: the form that `fold` folds and `render` writes.

A name is a tuple of parts (`conv2_0` is `('conv', 2, '_', 0)`): text, integers a repeat may count, a repeat
variable (`Var`) or a block parameter (`Ident`). Values are plain Python values, or an `Ident` for a parameter or
constant written in their place.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeAlias


@dataclass(frozen=True)
class Var:
    """A repeat variable in a name: {i}, {i+1}."""

    name: str
    offset: int = 0


@dataclass(frozen=True)
class Ident:
    """A name used as a value (a block parameter, a constant); in a name template it renders as {name}."""

    name: str


NamePart: TypeAlias = str | int | Var | Ident
Name: TypeAlias = tuple[NamePart, ...]
Args: TypeAlias = tuple[tuple[str | None, Any], ...]  # ((key or None, value), ...)


@dataclass(frozen=True)
class ILayer:
    name: Name | None  # None for an unnamed layer
    cls: str
    args: Args


@dataclass(frozen=True)
class IComp:
    name: Name | None
    composite: str  # Sequential | Residual
    items: tuple[SpecItem, ...]
    shortcut: tuple[SpecItem, ...] | None = None


@dataclass(frozen=True)
class IRep:
    """`repeat var in lo..hi { items }`: in `layers`, or over forward steps."""

    var: str
    lo: int
    hi: int
    items: tuple[Any, ...]  # SpecItems, or IStep / IRep in `forward`


@dataclass(frozen=True)
class IUse:
    """A block's use: `cbr("2_0", 128)`."""

    block: str
    args: tuple[Any, ...]  # values


@dataclass(frozen=True)
class IStep:
    """A step of `forward`: `resblock1_1`, `residual resblock{i}_{j}`."""

    residual: bool
    name: Name


@dataclass(frozen=True)
class IBlock:
    """A block definition: `block cbr(id, out) { ... }`."""

    name: str
    params: tuple[str, ...]
    items: tuple[SpecItem, ...]


SpecItem: TypeAlias = ILayer | IComp | IRep | IUse
StepItem: TypeAlias = IStep | IRep


def split_name(name: str) -> Name:
    """'conv2_0' -> ('conv', 2, '_', 0): digit runs become ints (without a leading zero), which may vary."""
    parts: list[NamePart] = []
    for piece in re.split(r"(\d+)", name):
        if not piece:
            continue
        if piece.isdigit() and (piece == "0" or not piece.startswith("0")):
            parts.append(int(piece))
        elif parts and isinstance(parts[-1], str):
            parts[-1] += piece
        else:
            parts.append(piece)
    return tuple(parts)


def children(it: Any) -> tuple[Any, ...]:
    """The items inside an item (a composite's body and shortcut, a repeat's body); () for the others."""
    if isinstance(it, IComp):
        return it.items + (it.shortcut or ())
    if isinstance(it, IRep):
        return it.items
    return ()


# ---- items as tokens, where only the integers in names are bare ints -------------------------------------------


def value_key(v: Any) -> tuple[str, ...]:
    """A value as a token: equal tokens for values that are written alike."""
    if isinstance(v, Ident):
        return ("ref", v.name)
    return ("v", type(v).__name__, repr(v))


def _name_tokens(parts: Name | None, out: list[Any]) -> None:
    if parts is None:
        out.append(("anon",))
        return
    out.append(("name", len(parts)))
    for p in parts:
        out.append(p if type(p) is int else ("p", p if isinstance(p, str) else repr(p)))


def tokens(it: Any, out: list[Any]) -> None:
    """A flat token list where only the integers inside names are bare ints (the parts a repeat may count)."""
    if isinstance(it, ILayer):
        out.append(("L", it.cls, tuple((k, value_key(v)) for k, v in it.args)))
        _name_tokens(it.name, out)
    elif isinstance(it, IComp):
        out.append(("C", it.composite, len(it.items), None if it.shortcut is None else len(it.shortcut)))
        _name_tokens(it.name, out)
    elif isinstance(it, IRep):
        out.append(("R", it.var, it.lo, it.hi, len(it.items)))
    elif isinstance(it, IUse):
        out.append(("U", it.block, tuple(value_key(v) for v in it.args)))
    elif isinstance(it, IStep):
        out.append(("S", it.residual))
        _name_tokens(it.name, out)
    else:  # pragma: no cover
        raise AssertionError(it)
    for c in children(it):
        tokens(c, out)


def _map_name(parts: Name | None, f: Callable[[int], NamePart]) -> Name | None:
    if parts is None:
        return None
    return tuple(f(p) if type(p) is int else p for p in parts)


def map_ints(it: Any, f: Callable[[int], NamePart]) -> Any:
    """The item with every integer name part replaced by f(part), in token order."""
    if isinstance(it, ILayer):
        return ILayer(_map_name(it.name, f), it.cls, it.args)
    if isinstance(it, IComp):
        name = _map_name(it.name, f)
        items = tuple(map_ints(c, f) for c in it.items)
        sc = None if it.shortcut is None else tuple(map_ints(c, f) for c in it.shortcut)
        return IComp(name, it.composite, items, sc)
    if isinstance(it, IRep):
        return IRep(it.var, it.lo, it.hi, tuple(map_ints(c, f) for c in it.items))
    if isinstance(it, IStep):
        name = _map_name(it.name, f)
        assert name is not None
        return IStep(it.residual, name)
    return it


def used_names(it: Any, out: set[str]) -> None:
    """Variable and parameter names an item refers to (so a new variable does not shadow them)."""
    if isinstance(it, (ILayer, IComp, IStep)):
        out.update(p.name for p in it.name or () if isinstance(p, (Var, Ident)))
    if isinstance(it, (ILayer, IUse)):
        values = [v for _, v in it.args] if isinstance(it, ILayer) else list(it.args)
        out.update(v.name for v in values if isinstance(v, Ident))
    if isinstance(it, IRep):
        out.add(it.var)
    for c in children(it):
        used_names(c, out)


# ---- a block's id in names -------------------------------------------------------------------------------------


def layer_names(it: Any, out: list[Name]) -> None:
    """The names of the layers and composites in an item, itself included."""
    if isinstance(it, (ILayer, IComp)) and it.name is not None:
        out.append(it.name)
    for c in children(it):
        layer_names(c, out)


def find_parts(parts: Name, sub: Name) -> int:
    """Where the run of parts `sub` starts in `parts`; -1 where it does not occur."""
    n = len(sub)
    for i in range(len(parts) - n + 1):
        if all(type(a) is type(b) and a == b for a, b in zip(parts[i : i + n], sub)):
            return i
    return -1


def common_id(names: list[Name]) -> Name | None:
    """The longest run of name parts, starting and ending with an integer, that every name holds."""
    first = names[0]
    subs = []
    for i in range(len(first)):
        for j in range(i, len(first)):
            sub = first[i : j + 1]
            if type(sub[0]) is int and type(sub[-1]) is int:
                subs.append(sub)
    subs.sort(key=len, reverse=True)
    for sub in subs:
        if all(find_parts(nm, sub) >= 0 for nm in names[1:]):
            return sub
    return None


def with_id(parts: Name | None, sub: Name | None) -> Name | None:
    """A name's parts with its block id `sub` replaced by the block's `id` parameter."""
    if parts is None or sub is None:
        return parts
    k = find_parts(parts, sub)
    return parts[:k] + (Ident("id"),) + parts[k + len(sub) :]
