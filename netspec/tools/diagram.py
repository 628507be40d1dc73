"""What `netspec draw` draws, as data: boxes (a layer, an operation, a closed module) with their inputs, and frames
(a Sequential, a Residual, an opened module, a folded repeat) around them. No matplotlib, no torch.

It is read off the static shape table: the rows give every layer's kind, arguments and output shape in run order,
and a `forward(x) { ... }`'s run order over named values (the network's, or a module's at its input) gives the
edges, so a merge (`cat`, `add`, `mul`) gets an edge from each of its inputs. Folding: a run of consecutive
siblings whose signatures (kind, arguments, input and output shape, and the same inside) repeat with a period of
one to `MAX_PERIOD` items, chained each to the one before, is drawn once, marked "× N".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..lang import Flow, FlowOp, Network, show
from ..shapes import Row, ShapeTable, fmt_shape

MAX_PERIOD = 8  # the longest pattern folded: a block of up to 8 layers repeated

# the colour of a box is its category's
_ACTIVATIONS = {
    "relu", "relu6", "silu", "hardswish", "mish", "leakyrelu", "leaky_relu", "elu", "gelu", "sigmoid", "tanh",
    "hardsigmoid", "softmax", "prelu", "logsoftmax",
}  # fmt: skip
_MERGES = {"add", "cat", "mul"}
_QUIET = {"inplace", "track_running_stats", "return_indices", "padding_mode", "bias"}  # never a key argument


@dataclass
class Box:
    """One box: a layer, an operation, a closed module, a parameter or the input."""

    id: int
    name: str  # the child's name ("conv1"), the value's for an operation, "" for the input
    kind: str  # "Conv2d", "Bottleneck", "cat", "input"
    args: str  # "64, k3 s1 p1"
    shape: str  # the output shape, "64x32x32"
    style: str  # category: conv, norm, act, pool, linear, drop, merge, op, module, param, input, layer
    inputs: list[int]  # the boxes whose values it takes
    sig: tuple[Any, ...]
    repeat: int = 1  # folded: drawn once for N consecutive uses

    @property
    def out(self) -> int:
        return self.id


@dataclass
class Frame:
    """Boxes drawn together: a Sequential, a Residual, an opened module, or (kind "") a folded repeat of several."""

    name: str
    kind: str
    args: str
    shape: str
    items: list[Item]
    out: int  # the box whose value leaves the frame
    sig: tuple[Any, ...]
    repeat: int = 1
    style: str = "group"  # "group" (a Sequential, a Residual), "module" (an opened module), "fold" (a repeat)


Item = Box | Frame


@dataclass
class Diagram:
    name: str
    input: str
    output: str
    params: int
    macs: int
    items: list[Item]
    boxes: dict[int, Box] = field(default_factory=dict)  # every box drawn, by id
    expand: bool = False

    @property
    def title(self) -> list[str]:
        """The title's lines: the network, its input and output, its totals."""
        return [
            self.name,
            f"input {self.input} → output {self.output}",
            f"{self.params:,} parameters, {self.macs:,} MACs per image",
        ]


def boxes_of(item: Item) -> list[Box]:
    """The boxes of an item, in drawing order."""
    if isinstance(item, Box):
        return [item]
    return [b for it in item.items for b in boxes_of(it)]


# ---- labels ---------------------------------------------------------------------------------------------------


def _pair(v: Any) -> str:
    if isinstance(v, tuple):
        return str(v[0]) if len(set(v)) == 1 else "x".join(map(str, v))
    return str(v)


def _generic(model: Any) -> str:
    """Required arguments by value, the others only where they differ from their default: `(1, 1)`, `p=0.2`."""
    parts = []
    for name, f in type(model).model_fields.items():
        value = getattr(model, name)
        if f.is_required():
            parts.append(show(value))
        elif name not in _QUIET and value != f.default:
            parts.append(f"{name}={show(value)}")
    return ", ".join(parts)


def layer_args(config: Any) -> str:
    """A layer's key arguments: `64, k3 s1 p1` for a convolution, `k2 s2 p0` for a pooling, `10` for a Linear."""
    kind = config.kind()
    if kind == "Conv2d":
        s = f"{config.out_channels}, k{_pair(config.kernel_size)} s{_pair(config.stride)} p{_pair(config.padding)}"
        s += f" d{_pair(config.dilation)}" if _pair(config.dilation) != "1" else ""
        return s + (f" g{config.groups}" if config.groups != 1 else "")
    if kind in ("MaxPool2d", "AvgPool2d"):
        stride = config.kernel_size if config.stride is None else config.stride
        return f"k{_pair(config.kernel_size)} s{_pair(stride)} p{_pair(config.padding)}"
    if kind == "Linear":
        return str(config.out_features)
    return _generic(config)


def style_of(kind: str) -> str:
    low = kind.lower()
    if low.startswith("conv"):
        return "conv"
    if "norm" in low:
        return "norm"
    if "pool" in low:
        return "pool"
    if low == "linear":
        return "linear"
    if low in _ACTIVATIONS:
        return "act"
    if "dropout" in low or "depth" in low:
        return "drop"
    if low in _MERGES:
        return "merge"
    return "op" if kind[:1].islower() else "layer"


def _module_args(args: dict[str, Any]) -> str:
    return ", ".join(f"{k}={show(v)}" for k, v in args.items())


# ---- building ---------------------------------------------------------------------------------------------------


@dataclass
class _T:
    """A row with the rows under it (the table is in run order, each composite followed by its rows one deeper)."""

    row: Row
    kids: list[_T] = field(default_factory=list)


def _tree(rows: tuple[Row, ...]) -> list[_T]:
    roots: list[_T] = []
    stack: list[_T] = []
    for r in rows:
        while stack and stack[-1].row.depth >= r.depth:
            stack.pop()
        t = _T(r)
        (stack[-1].kids if stack else roots).append(t)
        stack.append(t)
    return roots


def _runs(t: _T) -> bool:
    """Whether a row is drawn: kept modules never run, and parameters are drawn where a flow uses them."""
    return t.row.step != "kept" and t.row.layer != "Parameter"


def _short(path: str) -> str:
    return path.rsplit(".", 1)[-1]


class _Builder:
    def __init__(self, table: ShapeTable, expand: bool):
        self.table = table
        self.expand = expand
        self.boxes: dict[int, Box] = {}

    def box(
        self, row: Row | None, kind: str, args: str, inputs: list[int], style: str, name: str = "", detail: Any = None
    ) -> Box:
        """A new box; `detail` (every argument, where `args` shows the key ones) makes its signature for folding."""
        shape = fmt_shape(row.out_shape) if row is not None else ""
        sig = (kind, repr(detail) if detail is not None else args, row.in_shape if row else (), shape)
        b = Box(len(self.boxes), name, kind, args, shape, style, inputs, sig)
        self.boxes[b.id] = b
        return b

    def unit(self, t: _T, src: int) -> tuple[list[Item], int]:
        """The items of one row (a box, or a frame) taking `src`, and the box whose value it gives."""
        r, node = t.row, t.row.node
        name = _short(r.path)
        if r.is_leaf:
            if r.step == "function" or node is None or node.config is None:
                b = self.box(r, r.layer, "", [src], style_of(r.layer), "" if name == r.layer else name)
            else:
                b = self.box(r, r.layer, layer_args(node.config), [src], style_of(r.layer), name, node.config)
            items: list[Item] = [b]
            out = b.id
        elif node is not None and node.module is not None and not self.expand:
            b = self.box(r, r.layer, _module_args(node.module.args), [src], "module", name, node.module.args)
            items, out = [b], b.id
        else:
            frame = self.frame(t, src)
            items, out = [frame], frame.out
        if r.step == "residual":  # x + m(x), a step of the network's `forward`
            add = self.box(r, "add", "", [out, src], "merge")
            items.append(add)
            out = add.id
        return items, out

    def frame(self, t: _T, src: int) -> Frame:
        r, node = t.row, t.row.node
        kids = [k for k in t.kids if _runs(k)]
        args = ""
        if node is not None and node.module is not None:
            args = _module_args(node.module.args)
            instance = self.table.instances.get(node)
            items, out = self.items(kids, src, instance.flow if instance else None, t.kids)
        elif r.layer == "Residual":
            items, out = self.residual(t, kids, src)
        else:
            items, out = self.items(kids, src, None, t.kids)
        sig = (r.layer, args, r.in_shape, r.out_shape, tuple(it.sig for it in items))
        style = "module" if node is not None and node.module is not None else "group"
        return Frame(_short(r.path), r.layer, args, fmt_shape(r.out_shape), items, out, sig, style=style)

    def residual(self, t: _T, kids: list[_T], src: int) -> tuple[list[Item], int]:
        """A Residual: the body and the shortcut (the identity when it has none) from the same input, then their sum."""
        cut = f"{t.row.path}.shortcut"
        body, out = self.items([k for k in kids if k.row.path != cut], src, None, [])
        shortcut, s = self.items([k for k in kids if k.row.path == cut], src, None, [])
        add = self.box(t.row, "add", "", [out, s], "merge")
        return [*body, *shortcut, add], add.id

    def items(self, kids: list[_T], src: int, flow: Flow | None, every: list[_T]) -> tuple[list[Item], int]:
        """The items of a container's rows: a chain, or the steps of its flow (one row each, in run order)."""
        items: list[Item] = []
        if flow is None or len(flow.ops) != len(kids):
            for k in kids:
                its, src = self.unit(k, src)
                items += its
            return items, src
        params = {_short(k.row.path): k.row for k in every if k.row.layer == "Parameter"}
        env: dict[str, int] = {flow.input: src}
        for op, k in zip(flow.ops, kids):
            if op.kind == "child":
                its, out = self.unit(k, env[op.inputs[0]])
            else:
                its, out = self.op(op, k.row, env, params)
            items += its
            env.update((target, out) for target in op.targets)
        return items, env[flow.output]

    def op(self, op: FlowOp, row: Row, env: dict[str, int], params: dict[str, Row]) -> tuple[list[Item], int]:
        """An operation's box, after the boxes of the learned parameters it reads the first time."""
        items: list[Item] = []
        for value in [*op.inputs, *(v for _, v in op.tensor_options)]:
            if value not in env and value.startswith("@"):
                p = self.box(params.get(value[1:]), "Parameter", "", [], "param", value[1:])
                items.append(p)
                env[value] = p.id
        inputs = list(dict.fromkeys(env[v] for v in [*op.inputs, *(v for _, v in op.tensor_options)]))
        name = _short(row.path)
        args = _generic(op.options) if op.options is not None else ""
        b = self.box(row, op.name, args, inputs, style_of(op.name), "" if name == op.name else name, op.options)
        return [*items, b], b.id


def diagram(net: Network, table: ShapeTable, expand: bool = False) -> Diagram:
    """The diagram of `net` at the table's input: modules closed and repeats folded, or with `expand`, every
    module opened and nothing folded."""
    b = _Builder(table, expand)
    start = b.box(None, "input", "", [], "input")
    start.shape = fmt_shape(table.input)
    roots = _tree(table.rows)
    items, _ = b.items([t for t in roots if _runs(t)], start.id, net.flow, roots)
    d = Diagram(net.name, start.shape, fmt_shape(table.output), table.total_params, table.total_macs, [start, *items])
    d.boxes, d.expand = b.boxes, expand
    if not expand:
        d.items = _Folder(d).fold(d.items)
    return d


# ---- folding ----------------------------------------------------------------------------------------------------


def _out(items: list[Item]) -> int:
    return items[-1].out


class _Folder:
    """Folds the repeats of a diagram: a run is drawn once, the edges of its later periods' boxes moved to the
    first period's, and the later periods' boxes dropped."""

    def __init__(self, d: Diagram):
        self.d = d

    def fold(self, items: list[Item]) -> list[Item]:
        out: list[Item] = []
        i = 0
        while i < len(items):
            p, n = self.best(items, i)
            if n >= 2 and self.rotated(items, i, p * n):
                p, n = 1, 1  # the same run, one item later, ends where the pattern does: fold that one
            if n >= 2:
                out.append(self.folded(items[i : i + p * n], p, n))
            else:
                out.append(self.inside(items[i]))
            i += p * n
        return out

    def rotated(self, items: list[Item], i: int, length: int) -> bool:
        """Whether the run of `length` at `i` is as long from `i + 1`: (ReLU, Residual) x 3 then a ReLU is
        drawn as a ReLU, then (Residual, ReLU) x 3, as the blocks were written."""
        if i + length >= len(items) or items[i + length].sig != items[i].sig:
            return False
        p, n = self.best(items, i + 1)
        return n >= 2 and p * n >= length

    def inside(self, item: Item) -> Item:
        if isinstance(item, Frame):
            item.items = self.fold(item.items)
        return item

    def best(self, items: list[Item], i: int) -> tuple[int, int]:
        """The period and count of the longest run that starts at `i` (at equal length, the shortest period)."""
        best = (1, 1)
        sigs = [it.sig for it in items]
        for p in range(1, min(MAX_PERIOD, (len(items) - i) // 2) + 1):
            n = 1
            while i + (n + 1) * p <= len(items) and sigs[i + n * p : i + (n + 1) * p] == sigs[i : i + p]:
                n += 1
            while n >= 2 and not self.chained(items[i : i + n * p], p):
                n -= 1
            if n >= 2 and n * p > best[0] * best[1]:
                best = (p, n)
        return best

    def chained(self, run: list[Item], p: int) -> bool:
        """Whether a run is one pattern repeated in a chain: each period takes the value of the one before (the
        first, a single value from before the run), and only the last period's value is used after the run."""
        periods = [run[k : k + p] for k in range(0, len(run), p)]
        flat = [[b for it in period for b in boxes_of(it)] for period in periods]
        if len({len(f) for f in flat}) != 1:
            return False
        every = set()
        for k, boxes in enumerate(flat):
            ids = {b.id for b in boxes}
            every |= ids
            outside = {i for b in boxes for i in b.inputs if i not in ids}
            if len(outside) > 1 or (k > 0 and outside != {_out(periods[k - 1])}):
                return False
        last = _out(periods[-1])
        return all(i == last for b in self.d.boxes.values() if b.id not in every for i in b.inputs if i in every)

    def folded(self, run: list[Item], p: int, n: int) -> Item:
        periods = [run[k : k + p] for k in range(0, len(run), p)]
        first = [b for it in periods[0] for b in boxes_of(it)]
        moved: dict[int, int] = {}
        for period in periods[1:]:
            for b, b0 in zip([b for it in period for b in boxes_of(it)], first):
                moved[b.id] = b0.id
                del self.d.boxes[b.id]
        for b in self.d.boxes.values():
            b.inputs = list(dict.fromkeys(moved.get(i, i) for i in b.inputs))
        if p == 1:
            item = self.inside(run[0])
            item.repeat = n
            if run[0].name and run[-1].name:
                item.name = f"{run[0].name}–{run[-1].name}"
            return item
        items = [self.inside(it) for it in periods[0]]
        sig = ("fold", n, tuple(it.sig for it in items))
        return Frame("", "", "", "", items, _out(items), sig, repeat=n, style="fold")
