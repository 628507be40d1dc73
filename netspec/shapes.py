"""Stage 3: static shape inference, without torch.

For every module, operation and parameter, in run order: the incoming and outgoing shape (per image, the batch
left out), the parameter count, the multiply-accumulates (MACs, as torchvision's model metadata counts them: a
layer with weights costs its parameters at every position it is applied: each output pixel of a convolution, each
row of a Linear; the rest costs nothing), and the arguments that follow from the input (`in_channels`,
`num_features`, `in_features`, `num_channels`, `normalized_shape`). The rules are PyTorch's own formulas
(`rules`), walked in run order by `walk`; `tests/test_shapes.py` checks them against torch for every kind.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import SpecError
from .lang import Instance, Network, Node
from .rules import MAX_ELEMENTS, Shape, fmt_shape
from .walk import Row, Walker

__all__ = [
    "MAX_ELEMENTS",
    "Row",
    "Shape",
    "ShapeTable",
    "accepts",
    "fmt_shape",
    "infer",
    "infer_partial",
    "smallest_inputs",
]


@dataclass(frozen=True, slots=True)
class ShapeTable:
    input: Shape
    output: Shape
    rows: tuple[Row, ...]
    inferred: dict[Node, dict[str, int]] = field(default_factory=dict)  # node -> {"in_channels": 3, ...}
    instances: dict[Node, Instance] = field(default_factory=dict)  # a module's use -> its children, at this input

    @property
    def total_params(self) -> int:
        return sum(r.params for r in self.rows if r.is_leaf)

    @property
    def total_macs(self) -> int:
        return sum(r.macs for r in self.rows if r.is_leaf)


# ---- walking a network --------------------------------------------------------------------------------------------


def infer(net: Network, input: Shape | None = None) -> ShapeTable:
    """The shape table of `net` at `input` (default: the network's input). Raises SpecError on a shape mistake."""
    table, err = infer_partial(net, input)
    if err is not None:
        raise err
    return table


def infer_partial(net: Network, input: Shape | None = None) -> tuple[ShapeTable, SpecError | None]:
    """As `infer`, but a shape mistake is returned with the table of the rows before it (output: the last shape
    reached), for tools that want to know how far a network runs."""
    walker = Walker(net)
    size = tuple(input or net.input)
    try:
        out = walker.run(size)
    except SpecError as e:
        last = walker.rows[-1].out_shape if walker.rows else size
        return _table(walker, size, last), e.attach(net.filename, net.source)
    return _table(walker, size, out), None


def _table(walker: Walker, size: Shape, out: Shape) -> ShapeTable:
    instances = {node: instance for node, (_, instance) in walker.instances.items()}
    return ShapeTable(size, out, tuple(walker.rows), walker.inferred, instances)


def accepts(net: Network, input: Shape) -> bool:
    """Whether the network runs at this input size."""
    try:
        Walker(net).run(input)
    except SpecError:
        return False
    return True


def smallest_inputs(net: Network, limit: int = 4096) -> tuple[Shape | None, Shape | None]:
    """The smallest square input the network accepts, and the smallest H x W (by area) found near it."""
    c = net.input[0]
    square = None
    for s in range(1, limit + 1):
        if accepts(net, (c, s, s)):
            square = (c, s, s)
            break
    if square is None:
        return None, None
    s = square[1]
    best = square
    # shrink one side at a time while the other stays at the square size
    hmin = next((h for h in range(1, s + 1) if accepts(net, (c, h, s))), s)
    wmin = next((w for w in range(1, s + 1) if accepts(net, (c, s, w))), s)
    for cand in ((c, hmin, wmin), (c, hmin, s), (c, s, wmin)):
        if cand[1] * cand[2] < best[1] * best[2] and accepts(net, cand):
            best = cand
    return square, best


def _args(args: dict[str, int]) -> str:
    """`num_features=3`: the arguments worked out from an input."""
    return ", ".join(f"{k}={v}" for k, v in args.items())
