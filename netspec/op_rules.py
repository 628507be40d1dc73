"""The shape rules of a forward's operations, without torch: `(options, input shapes) -> output shapes`, per image
(the batch left out). The formulas are PyTorch's own; `tests/test_shapes_flows.py` checks them against torch. An
operation has no weights and costs no MACs (`rules.py` for the layers, and why).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .lang import OPS, pair
from .rules import Shape, ShapeError, flatten, fmt_shape, need_chw, permuted, pool

# ---- operations of a forward: (options, inputs) -> output shapes -------------------------------------------------


class In:
    """An operation's input: the name it is known by (for messages), its shape per image, and whether it has a
    batch dimension (an activation) or not (a learned parameter, which broadcasts from the trailing side)."""

    __slots__ = ("batched", "name", "shape")

    def __init__(self, name: str, shape: Shape, batched: bool = True):
        self.name, self.shape, self.batched = name, shape, batched


OpRule = Callable[[Any, list[In]], list[Shape]]


def _per_image_dim(dim: int, shape: Shape, what: str) -> int:
    """A dimension written as torch counts it (the batch is 0; negative from the end) as an index of `shape`."""
    ndim = len(shape) + 1
    d = dim + ndim if dim < 0 else dim
    if not 0 <= d < ndim:
        raise ShapeError(f"dim={dim} is out of range for a {ndim}-D batch")
    if d == 0:
        raise ShapeError(f"{what} over the batch (dim 0) would mix images", "the first dimension of an image is 1")
    return d - 1


def _op_cat(o: Any, ins: list[In]) -> list[Shape]:
    first = ins[0]
    d = _per_image_dim(o.dim, first.shape, "cat")
    for other in ins[1:]:
        same_rank = len(other.shape) == len(first.shape)
        if not same_rank or any(a != b for i, (a, b) in enumerate(zip(first.shape, other.shape)) if i != d):
            raise ShapeError(
                f"along dim {o.dim} needs every other dimension equal, but {first.name} gives "
                f"{fmt_shape(first.shape)} and {other.name} gives {fmt_shape(other.shape)}",
                "check the strides and paddings of the branches",
                code="E074",
            )
    return [(*first.shape[:d], sum(i.shape[d] for i in ins), *first.shape[d + 1 :])]


def _op_broadcast(o: Any, ins: list[In]) -> list[Shape]:
    a, b = ins
    full = [((-1, *x.shape) if x.batched else x.shape) for x in (a, b)]  # -1: the batch, of any size
    n = max(len(f) for f in full)
    pa, pb = ((1,) * (n - len(f)) + f for f in full)
    out = []
    for x, y in zip(pa, pb):
        if x == y or y == 1:
            out.append(x)
        elif x == 1:
            out.append(y)
        else:
            raise ShapeError(
                f"needs shapes that broadcast (each dimension equal, or 1), but {a.name} is {fmt_shape(a.shape)} "
                f"and {b.name} is {fmt_shape(b.shape)}",
                "a gate needs one value per channel of what it gates: C x 1 x 1 for C x H x W",
                code="E075",
            )
    if a.batched or b.batched:
        if out[0] not in (-1, 1) or len(out) < 1:  # pragma: no cover - a batched input keeps the batch first
            raise ShapeError("the result would lose the batch dimension")
        return [tuple(out[1:])]
    return [tuple(out)]


def _op_flatten(o: Any, ins: list[In]) -> list[Shape]:
    out, *_ = flatten(o, ins[0].shape)
    return [out]


def _op_mean(o: Any, ins: list[In]) -> list[Shape]:
    shape = ins[0].shape
    dims = o.dim if isinstance(o.dim, tuple) else (o.dim,)
    idx = {_per_image_dim(d, shape, "mean") for d in dims}
    if o.keepdim:
        return [tuple(1 if i in idx else s for i, s in enumerate(shape))]
    return [tuple(s for i, s in enumerate(shape) if i not in idx)]


def _op_adaptive(o: Any, ins: list[In]) -> list[Shape]:
    c, h, w = need_chw("adaptive_avg_pool2d", ins[0].shape)
    oh, ow = pair(o.output_size)
    return [(c, h if oh is None else oh, w if ow is None else ow)]


def _op_max_pool(o: Any, ins: list[In]) -> list[Shape]:
    return [pool("max_pool2d", ins[0].shape, o.kernel_size, o.stride, o.padding, o.dilation, o.ceil_mode)[0]]


def _op_avg_pool(o: Any, ins: list[In]) -> list[Shape]:
    return [pool("avg_pool2d", ins[0].shape, o.kernel_size, o.stride, o.padding, 1, o.ceil_mode)[0]]


def _parts(shape: Shape, d: int, sizes: list[int]) -> list[Shape]:
    return [(*shape[:d], s, *shape[d + 1 :]) for s in sizes]


def _op_chunk(o: Any, ins: list[In]) -> list[Shape]:
    x = ins[0]
    d = _per_image_dim(o.dim, x.shape, "chunk")
    size = x.shape[d]
    if size % o.chunks:
        raise ShapeError(
            f"cannot cut {x.name} into {o.chunks} equal parts: it has {size} along dim {o.dim}",
            "chunk into a number of parts that divides the size, or split(x, (sizes...))",
            code="E076",
        )
    return _parts(x.shape, d, [size // o.chunks] * o.chunks)


def _op_split(o: Any, ins: list[In]) -> list[Shape]:
    x = ins[0]
    d = _per_image_dim(o.dim, x.shape, "split")
    size = o.split_size_or_sections
    if isinstance(size, int):  # parts of `size`, the last one smaller when size does not divide (torch.split's)
        return _parts(x.shape, d, [size] * (x.shape[d] // size) + ([x.shape[d] % size] if x.shape[d] % size else []))
    sections = list(size)
    if sum(sections) != x.shape[d]:
        raise ShapeError(
            f"cannot cut {x.name} into sections {tuple(sections)}: they add up to {sum(sections)}, and it has "
            f"{x.shape[d]} along dim {o.dim}",
            code="E076",
        )
    return _parts(x.shape, d, sections)


def _op_channel_shuffle(o: Any, ins: list[In]) -> list[Shape]:
    c, _, _ = need_chw("channel_shuffle", ins[0].shape)
    if c % o.groups:
        raise ShapeError(
            f"cannot shuffle {ins[0].name} in {o.groups} groups: they do not divide its {c} channels", code="E076"
        )
    return [ins[0].shape]


def _op_permute(o: Any, ins: list[In]) -> list[Shape]:
    return [permuted(o.dims, ins[0].shape)]


def _op_layer_norm(o: Any, ins: list[In]) -> list[Shape]:
    x, *weights = ins
    norm = (o.normalized_shape,) if isinstance(o.normalized_shape, int) else tuple(o.normalized_shape)
    if x.shape[len(x.shape) - len(norm) :] != norm:
        raise ShapeError(
            f"normalized_shape {fmt_shape(norm)} is not the last dimensions of {x.name}, {fmt_shape(x.shape)}"
        )
    for w in weights:
        if w.batched:
            raise ShapeError(
                f"{w.name} is an activation, with a batch dimension: weight= and bias= take learned parameters",
                "declare them: weight Parameter((C,), value=1.0)",
            )
        if w.shape != norm:
            raise ShapeError(f"{w.name} is {fmt_shape(w.shape)}, not the normalized shape {fmt_shape(norm)}")
    return [x.shape]


def _op_softmax(o: Any, ins: list[In]) -> list[Shape]:
    _per_image_dim(o.dim, ins[0].shape, "softmax")
    return [ins[0].shape]


def _op_same(o: Any, ins: list[In]) -> list[Shape]:
    return [ins[0].shape]


OP_RULES: dict[str, OpRule] = {
    "cat": _op_cat,
    "add": _op_broadcast,
    "mul": _op_broadcast,
    "flatten": _op_flatten,
    "mean": _op_mean,
    "adaptive_avg_pool2d": _op_adaptive,
    "max_pool2d": _op_max_pool,
    "avg_pool2d": _op_avg_pool,
    "chunk": _op_chunk,
    "split": _op_split,
    "channel_shuffle": _op_channel_shuffle,
    "permute": _op_permute,
    "layer_norm": _op_layer_norm,
    "softmax": _op_softmax,
}
OP_RULES.update({name: _op_same for name in OPS if name not in OP_RULES})

# operations on each element alone (broadcasting in add and mul): they take a learned parameter, which has no batch
# dimension, as they take an activation; the others read the first dimension of their input as the batch
ELEMENTWISE_OPS = frozenset(
    {"add", "mul", "dropout", "relu", "relu6", "silu", "sigmoid", "tanh", "hardswish", "hardsigmoid", "mish", "elu",
     "leaky_relu", "gelu"}
)  # fmt: skip
