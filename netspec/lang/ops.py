"""The closed set of operations a `forward(x) { ... }` may call besides the module's own children (no torch).

Each operation is an argument model, as layers are: PyTorch's functional names and arguments (`cat(a, b, dim=1)`,
`max_pool2d(x, 3, stride=2, padding=1)`, `chunk(x, 2)`). Its tensor arguments come first, positionally (`TENSORS`
of them; None: one or more, as `cat` takes), or by keyword where PyTorch takes a tensor by name (`layer_norm`'s
`weight` and `bias`); the rest are the model's fields, validated by pydantic like any call. `shapes` infers each
operation's output and `build` runs it, both from a table keyed by the same names.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from .validate import ArgModel, NonNegPair, PosInt, PosPair, Prob

Dims = int | tuple[int, ...]


class Op(ArgModel):
    """An operation's non-tensor arguments; `TENSORS` leading positional tensors (None: one or more)."""

    TENSORS: ClassVar[int | None] = 1
    TENSOR_KEYWORDS: ClassVar[tuple[str, ...]] = ()
    DOC: ClassVar[str] = ""


class cat(Op):
    TENSORS = None
    POSITIONAL = ("dim",)
    DOC = "Concatenate along `dim` (1: channels); every other dimension must agree."
    dim: int = 1


class add(Op):
    TENSORS = 2
    DOC = "a + b, with broadcasting (also written `a + b`)."


class mul(Op):
    TENSORS = 2
    DOC = "a * b, with broadcasting: a gate, a layer scale (also written `a * b`)."


class flatten(Op):
    POSITIONAL = ("start_dim", "end_dim")
    DOC = "torch.flatten."
    start_dim: int = 0
    end_dim: int = -1


class mean(Op):
    POSITIONAL = ("dim", "keepdim")
    DOC = "The mean over `dim` (one or several dimensions; the batch is 0)."
    dim: Dims
    keepdim: bool = False


class adaptive_avg_pool2d(Op):
    POSITIONAL = ("output_size",)
    DOC = "F.adaptive_avg_pool2d."
    output_size: PosInt | tuple[PosInt | None, PosInt | None]


class max_pool2d(Op):
    POSITIONAL = ("kernel_size", "stride", "padding", "dilation", "ceil_mode")
    DOC = "F.max_pool2d; stride defaults to kernel_size."
    kernel_size: PosPair
    stride: PosPair | None = None
    padding: NonNegPair = 0
    dilation: PosPair = 1
    ceil_mode: bool = False


class avg_pool2d(Op):
    POSITIONAL = ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad")
    DOC = "F.avg_pool2d; stride defaults to kernel_size."
    kernel_size: PosPair
    stride: PosPair | None = None
    padding: NonNegPair = 0
    ceil_mode: bool = False
    count_include_pad: bool = True


class chunk(Op):
    POSITIONAL = ("chunks", "dim")
    DOC = "Split into `chunks` equal parts along `dim`: `a, b = chunk(x, 2)`."
    chunks: PosInt
    dim: int = 1


class split(Op):
    POSITIONAL = ("split_size_or_sections", "dim")
    DOC = "torch.split: parts of a size, or of the sizes listed: `a, b = split(x, (16, 48))`."
    split_size_or_sections: PosInt | tuple[PosInt, ...]
    dim: int = 1


class channel_shuffle(Op):
    POSITIONAL = ("groups",)
    DOC = "ShuffleNet's channel shuffle (F.channel_shuffle)."
    groups: PosInt


class permute(Op):
    POSITIONAL = ("dims",)
    DOC = "torch.permute; `dims` includes the batch (0): permute(x, (0, 2, 3, 1)) makes an image channels-last."
    dims: tuple[int, ...]


class layer_norm(Op):
    POSITIONAL = ("normalized_shape",)
    TENSOR_KEYWORDS = ("weight", "bias")
    DOC = "F.layer_norm over the last dimensions; weight= and bias= name the module's parameters."
    normalized_shape: PosInt | tuple[PosInt, ...]
    eps: Annotated[float, Field(gt=0.0)] = 1e-5


class stochastic_depth(Op):
    POSITIONAL = ("p", "mode")
    DOC = "torchvision.ops.stochastic_depth (only while training)."
    p: Prob
    mode: Literal["row", "batch"]


class dropout(Op):
    POSITIONAL = ("p",)
    DOC = "F.dropout (only while training)."
    p: Prob = 0.5


class softmax(Op):
    POSITIONAL = ("dim",)
    DOC = "F.softmax over `dim`."
    dim: int


class leaky_relu(Op):
    POSITIONAL = ("negative_slope",)
    DOC = "F.leaky_relu."
    negative_slope: float = 0.01


class gelu(Op):
    POSITIONAL = ("approximate",)
    DOC = "F.gelu."
    approximate: Literal["none", "tanh"] = "none"


class _Activation(Op):
    DOC = "The activation of the same name, as a function."


class relu(_Activation):
    pass


class relu6(_Activation):
    pass


class silu(_Activation):
    pass


class sigmoid(_Activation):
    pass


class tanh(_Activation):
    pass


class hardswish(_Activation):
    pass


class hardsigmoid(_Activation):
    pass


class mish(_Activation):
    pass


class elu(_Activation):
    pass


OPS: dict[str, type[Op]] = {
    cls.__name__: cls
    for cls in (
        cat,
        add,
        mul,
        flatten,
        mean,
        adaptive_avg_pool2d,
        max_pool2d,
        avg_pool2d,
        chunk,
        split,
        channel_shuffle,
        permute,
        layer_norm,
        stochastic_depth,
        dropout,
        softmax,
        leaky_relu,
        gelu,
        relu,
        relu6,
        silu,
        sigmoid,
        tanh,
        hardswish,
        hardsigmoid,
        mish,
        elu,
    )
}
