"""Two shape tables aligned layer by layer, and what changed between them (no torch): the model of `netspec diff`.

A shape table is a tree (each row's children are the rows one level deeper below it), so two networks are aligned
container by container, in three passes over the children of each:

1. by name: the longest common run of names (a name used twice, as a module run twice, counts its uses);
2. in the gaps between names that match, by content: the longest common run of layers of the same kind, the same
   arguments (those worked out from the input included) and the same children;
3. in the gaps left, by kind alone: a layer that changed an argument, or was renamed, is paired with its old self.

What is left is added or removed. Anonymous children (`0`, `1` in a Sequential) and the steps of a `forward`
(`relu()`, `add()`, whose names are the spec's value names) are aligned by content only: their names follow from
where they are, not from the spec's author. A pair of the same name but of other kinds is a removal and an addition.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Any

from ..lang import ArgModel, Flow, show
from ..shapes import Row, ShapeTable, fmt_shape


@dataclass(frozen=True, slots=True)
class Item:
    """A row of the shape table with the rows under it, its arguments and, for a module's use, its `forward`."""

    row: Row
    args: dict[str, Any]  # a layer's validated arguments, those worked out from the input first; a module's
    children: tuple[Item, ...]
    flow: Flow | None  # a module's forward(x) at this input (None: its children in order)
    sig: str  # kind, arguments and children: equal for the same layer (or subtree)

    @property
    def name(self) -> str:
        return self.row.path.rsplit(".", 1)[-1]

    @property
    def named(self) -> bool:
        """Whether the spec's author chose the name: a child's own name, not a position nor a value's name."""
        return self.row.step != "function" and not self.name.isdigit()


@dataclass(frozen=True, slots=True)
class Change:
    """A line of the diff: `+` added, `-` removed, `~` changed, ` ` a container of changes."""

    mark: str
    depth: int
    name: str  # "conv2", or "conv2 -> conv3"
    layer: str  # "Conv2d(out_channels 64 -> 128)"
    shape: str  # "64x32x32", or "64x32x32 -> 128x32x32"
    params: int  # the change (b - a)
    macs: int
    leaf: bool


def tree(table: ShapeTable) -> tuple[Item, ...]:
    """The rows of `table` as a tree of `Item`s."""
    items, _ = _items(table, 0, 0)
    return tuple(items)


def _items(table: ShapeTable, i: int, depth: int) -> tuple[list[Item], int]:
    out = []
    while i < len(table.rows) and table.rows[i].depth >= depth:
        row = table.rows[i]
        children, i = _items(table, i + 1, depth + 1)
        node = row.node
        instance = table.instances.get(node) if node is not None and node.module is not None else None
        args = _args(row, table)
        sig = repr((row.label, _norm(args), [c.sig for c in children]))
        out.append(Item(row, args, tuple(children), instance.flow if instance else None, sig))
    return out, i


def _args(row: Row, table: ShapeTable) -> dict[str, Any]:
    if row.op is not None:
        return row.op.options.args() if row.op.options is not None else {}
    node = row.node
    if node is None:
        return {}
    if node.config is not None:
        return {**table.inferred.get(node, {}), **node.config.args()}
    return dict(node.module.args) if node.module is not None else {}


def _norm(v: Any) -> Any:
    """A value as compared: an `x or (x, x)` argument written either way is the same (PyTorch makes (3, 3) of 3)."""
    if isinstance(v, dict):
        return {k: _norm(x) for k, x in v.items()}
    if isinstance(v, ArgModel):  # a train setting: SGD(...), RandomCrop(...)
        return v.kind(), _norm(v.args())
    if isinstance(v, tuple):
        if len(v) == 2 and v[0] == v[1] and type(v[0]) is int:
            return v[0]
        return tuple(_norm(x) for x in v)
    return v


def same_value(a: Any, b: Any) -> bool:
    return bool(_norm(a) == _norm(b))


# ---- alignment ------------------------------------------------------------------------------------------------


def align(a: Sequence[Item], b: Sequence[Item]) -> list[tuple[Item | None, Item | None]]:
    """Pairs of `a` and `b` in run order; (x, None) a removal, (None, y) an addition."""
    out: list[tuple[Item | None, Item | None]] = []
    i = j = 0
    matcher = SequenceMatcher(None, _name_keys(a), _name_keys(b), autojunk=False)
    for m in matcher.get_matching_blocks():
        out += _by(a[i : m.a], b[j : m.b], lambda x: x.sig, _by_kind)
        out += [(a[m.a + k], b[m.b + k]) for k in range(m.size)]
        i, j = m.a + m.size, m.b + m.size
    return out


def _name_keys(items: Sequence[Item]) -> list[object]:
    """(name, use): the names to match; an object equal to nothing for the unnamed."""
    seen: Counter[str] = Counter()
    keys: list[object] = []
    for x in items:
        if x.named:
            seen[x.name] += 1
            keys.append((x.name, seen[x.name]))
        else:
            keys.append(object())
    return keys


def _by_kind(a: Sequence[Item], b: Sequence[Item]) -> list[tuple[Item | None, Item | None]]:
    return _by(a, b, lambda x: x.row.label, _unpaired)


def _unpaired(a: Sequence[Item], b: Sequence[Item]) -> list[tuple[Item | None, Item | None]]:
    return [*((x, None) for x in a), *((None, y) for y in b)]


def _by(a: Sequence[Item], b: Sequence[Item], key: Any, rest: Any) -> list[tuple[Item | None, Item | None]]:
    """The longest common run of `key`, the gaps handed to `rest`."""
    out: list[tuple[Item | None, Item | None]] = []
    if not a or not b:
        return _unpaired(a, b)
    for tag, i1, i2, j1, j2 in SequenceMatcher(None, [key(x) for x in a], [key(y) for y in b], False).get_opcodes():
        if tag == "equal":
            out += zip(a[i1:i2], b[j1:j2])
        else:
            out += rest(a[i1:i2], b[j1:j2])
    return out


# ---- what changed -----------------------------------------------------------------------------------------------


@dataclass
class Comparison:
    """The changes of two trees; `renumbered` counts anonymous layers whose only change is their position's name."""

    changes: list[Change]
    renumbered: int = 0


def compare(a: Sequence[Item], b: Sequence[Item]) -> Comparison:
    """The changes from the tree `a` to the tree `b`, in run order."""
    out = Comparison([])
    _compare(a, b, 0, out)
    return out


def _compare(a: Sequence[Item], b: Sequence[Item], depth: int, out: Comparison) -> None:
    for x, y in align(a, b):
        if x is not None and y is not None and x.row.label == y.row.label:
            _pair(x, y, depth, out)
            continue
        if x is not None:
            out.changes.append(_whole("-", x, depth))
        if y is not None:
            out.changes.append(_whole("+", y, depth))


def _pair(x: Item, y: Item, depth: int, out: Comparison) -> None:
    at = len(out.changes)
    _compare(x.children, y.children, depth + 1, out)
    inner = len(out.changes) > at
    changed = [f"{k} {show(x.args.get(k))} -> {show(y.args.get(k))}" for k in _keys(x, y)]
    wiring = wiring_change(x.flow, y.flow)
    leaf = not x.children and not y.children
    counts = leaf and (x.row.params, x.row.macs) != (y.row.params, y.row.macs)
    moved = x.row.out_shape != y.row.out_shape
    renamed = x.name != y.name and x.row.step != "function"  # a step's name is a value's, written as one likes
    if not (inner or changed or wiring or counts or moved or (renamed and (x.named or y.named))):
        out.renumbered += renamed
        return
    name = f"{x.name} -> {y.name}" if renamed else y.name
    shape = fmt_shape(y.row.out_shape)
    if moved:
        shape = f"{fmt_shape(x.row.out_shape)} -> {shape}"
    mark = "~" if changed or wiring or counts or moved or renamed or leaf else " "
    layer = _layer(y, ", ".join(changed)) + (f"; {wiring}" if wiring else "")
    line = Change(mark, depth, name, layer, shape, y.row.params - x.row.params, y.row.macs - x.row.macs, leaf)
    out.changes.insert(at, line)


def _keys(x: Item, y: Item) -> list[str]:
    keys = list(x.args) + [k for k in y.args if k not in x.args]
    return [k for k in keys if not same_value(x.args.get(k), y.args.get(k))]


def _whole(mark: str, x: Item, depth: int) -> Change:
    """An added or removed layer (or subtree, on one line with its totals)."""
    sign = 1 if mark == "+" else -1
    node = x.row.node
    if x.children and (node is None or node.module is None):  # a Sequential or a Residual: its layers' kinds
        kinds = [c.row.label for c in x.children]
        layer = _wrap(x.row, f"{x.row.layer} {{ {', '.join(kinds[:4] + ['...'] * (len(kinds) > 4))} }}")
    else:
        layer = _layer(x, _written(x))
    return Change(
        mark, depth, x.name, layer, fmt_shape(x.row.out_shape), sign * x.row.params, sign * x.row.macs,
        not x.children,
    )  # fmt: skip


def _written(x: Item) -> str:
    """The arguments worth showing: those worked out from the input, and those not left at their defaults (a
    module's use: all of its parameters)."""
    node = x.row.node
    config = x.row.op.options if x.row.op is not None else node.config if node is not None else None
    if config is None:
        return ", ".join(f"{k}={show(v)}" for k, v in x.args.items())
    fields = type(config).model_fields
    return ", ".join(
        f"{k}={show(v)}"
        for k, v in x.args.items()
        if k not in fields or fields[k].is_required() or not same_value(v, fields[k].default)
    )


def _layer(x: Item, inside: str) -> str:
    """The layer column: `Conv2d(...)`, `relu()`, `x + Sequential(x)`, `Linear(...) (kept)`."""
    row = x.row
    if row.step == "function":
        return f"{row.layer}({inside})"
    return _wrap(row, f"{row.layer}({inside})" if inside else row.layer)


def _wrap(row: Row, kind: str) -> str:
    if row.step == "residual":
        return f"x + {kind}(x)"
    return f"{kind} (kept)" if row.step == "kept" else kind


def wiring_change(a: Flow | None, b: Flow | None) -> str | None:
    """How two forward(x) functions feed their steps differently (whatever their values are called); None: they
    do not, or one of them is a plain run in order, whose rows say all."""
    if a is None or b is None:
        return None
    (steps_a, out_a), (steps_b, out_b) = _wiring(a), _wiring(b)
    for x, y in zip(steps_a, steps_b):
        if x[:2] != y[:2]:
            return "forward(x) runs other steps"
        if x != y:
            return f"forward(x): {y[1]}{'()' if y[0] == 'op' else ''} takes other inputs"
    if len(steps_a) != len(steps_b):
        return "forward(x) runs other steps"
    return "forward(x) returns another value" if out_a != out_b else None


def _wiring(flow: Flow) -> tuple[tuple[Any, ...], Any]:
    """The steps (kind, name, inputs, tensor keywords, outputs), each value named by the step that makes it."""
    ref: dict[str, Any] = {flow.input: "input", **{"@" + p: ("param", p) for p in flow.params}}
    steps = []
    for k, op in enumerate(flow.ops):
        ins = tuple(ref.get(i, i) for i in op.inputs)
        tensors = tuple((key, ref.get(v, v)) for key, v in op.tensor_options)
        steps.append((op.kind, op.name, ins, tensors, len(op.targets)))
        ref.update({t: (k, j) for j, t in enumerate(op.targets)})
    return tuple(steps), ref.get(flow.output, flow.output)
