"""The closed table of layers a spec may use, as argument models (no torch, no pydantic at import).

Each model holds the arguments a user writes, with PyTorch's own names, types and defaults. Arguments that follow
from the input (`in_channels`, `num_features`, `in_features`, `num_channels`) are not fields: they are worked out by
`shapes` and handed to the torch constructor by `build`. `POSITIONAL` is PyTorch's positional order without them,
so `Conv2d(64, 3)` means `out_channels=64, kernel_size=3` exactly as in PyTorch.
"""

from typing import Annotated, ClassVar, Literal, Union

from .validate import Bounds, Model

PosInt = Annotated[int, Bounds(ge=1)]
NonNegInt = Annotated[int, Bounds(ge=0)]
PosPair = Union[PosInt, tuple[PosInt, PosInt]]
NonNegPair = Union[NonNegInt, tuple[NonNegInt, NonNegInt]]
Prob = Annotated[float, Bounds(ge=0.0, le=1.0)]
PosFloat = Annotated[float, Bounds(gt=0.0)]


class LayerSpec(Model):
    """Base of every layer model: strict types, unknown arguments refused, immutable (see `netspec.model`)."""

    POSITIONAL: ClassVar[tuple[str, ...]] = ()
    INFERRED: ClassVar[tuple[str, ...]] = ()
    DOC: ClassVar[str] = ""

    @classmethod
    def kind(cls) -> str:
        return cls.__name__

    @classmethod
    def signature(cls) -> str:
        """`Conv2d(out_channels, kernel_size, stride=1, ...)` for hints and docs."""
        parts = []
        for name, f in cls.model_fields.items():
            if f.is_required():
                parts.append(name)
            else:
                parts.append(f"{name}={f.default!r}")
        return f"{cls.__name__}({', '.join(parts)})"

    def args(self) -> dict:
        """The arguments as written or defaulted, for the torch constructor."""
        return {k: getattr(self, k) for k in type(self).model_fields}


class Conv2d(LayerSpec):
    POSITIONAL = ("out_channels", "kernel_size", "stride", "padding", "dilation", "groups", "bias", "padding_mode")
    INFERRED = ("in_channels",)
    DOC = "2-D convolution."
    out_channels: PosInt
    kernel_size: PosPair
    stride: PosPair = 1
    padding: NonNegPair | Literal["same", "valid"] = 0
    dilation: PosPair = 1
    groups: PosInt = 1
    bias: bool = True
    padding_mode: Literal["zeros", "reflect", "replicate", "circular"] = "zeros"


class _BatchNorm(LayerSpec):
    POSITIONAL = ("eps", "momentum", "affine", "track_running_stats")
    INFERRED = ("num_features",)
    eps: PosFloat = 1e-5
    momentum: Prob | None = 0.1
    affine: bool = True
    track_running_stats: bool = True


class BatchNorm2d(_BatchNorm):
    DOC = "Batch normalization over (C, H, W) inputs."


class BatchNorm1d(_BatchNorm):
    DOC = "Batch normalization over (C,) or (C, L) inputs."


class GroupNorm(LayerSpec):
    POSITIONAL = ("num_groups", "eps", "affine")
    INFERRED = ("num_channels",)
    DOC = "Group normalization; num_groups must divide the channels."
    num_groups: PosInt
    eps: PosFloat = 1e-5
    affine: bool = True


class _Inplace(LayerSpec):
    POSITIONAL = ("inplace",)
    inplace: bool = False


class ReLU(_Inplace):
    DOC = "max(0, x)."


class ReLU6(_Inplace):
    DOC = "min(max(0, x), 6)."


class SiLU(_Inplace):
    DOC = "x * sigmoid(x)."


class Hardswish(_Inplace):
    DOC = "The hard swish of MobileNetV3."


class Mish(_Inplace):
    DOC = "x * tanh(softplus(x))."


class LeakyReLU(LayerSpec):
    POSITIONAL = ("negative_slope", "inplace")
    DOC = "max(0, x) + negative_slope * min(0, x)."
    negative_slope: float = 0.01
    inplace: bool = False


class ELU(LayerSpec):
    POSITIONAL = ("alpha", "inplace")
    DOC = "Exponential linear unit."
    alpha: float = 1.0
    inplace: bool = False


class GELU(LayerSpec):
    POSITIONAL = ("approximate",)
    DOC = "Gaussian error linear unit."
    approximate: Literal["none", "tanh"] = "none"


class Sigmoid(LayerSpec):
    DOC = "1 / (1 + exp(-x))."


class Tanh(LayerSpec):
    DOC = "tanh(x)."


class Identity(LayerSpec):
    DOC = "Returns its input."


class MaxPool2d(LayerSpec):
    POSITIONAL = ("kernel_size", "stride", "padding", "dilation", "return_indices", "ceil_mode")
    DOC = "2-D max pooling; stride defaults to kernel_size."
    kernel_size: PosPair
    stride: PosPair | None = None
    padding: NonNegPair = 0
    dilation: PosPair = 1
    return_indices: Literal[False] = False
    ceil_mode: bool = False


class AvgPool2d(LayerSpec):
    POSITIONAL = ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override")
    DOC = "2-D average pooling; stride defaults to kernel_size."
    kernel_size: PosPair
    stride: PosPair | None = None
    padding: NonNegPair = 0
    ceil_mode: bool = False
    count_include_pad: bool = True
    divisor_override: PosInt | None = None


_AdaptiveSize = Union[PosInt, tuple[PosInt | None, PosInt | None]]


class AdaptiveAvgPool2d(LayerSpec):
    POSITIONAL = ("output_size",)
    DOC = "Average pooling to a fixed output size; None in a tuple keeps that dimension."
    output_size: _AdaptiveSize


class AdaptiveMaxPool2d(LayerSpec):
    POSITIONAL = ("output_size", "return_indices")
    DOC = "Max pooling to a fixed output size."
    output_size: _AdaptiveSize
    return_indices: Literal[False] = False


class Dropout(LayerSpec):
    POSITIONAL = ("p", "inplace")
    DOC = "Zeroes elements with probability p while training."
    p: Prob = 0.5
    inplace: bool = False


class Dropout2d(Dropout):
    DOC = "Zeroes whole channels with probability p while training."


class Flatten(LayerSpec):
    POSITIONAL = ("start_dim", "end_dim")
    DOC = "Flattens dimensions start_dim..end_dim (the batch is dimension 0)."
    start_dim: int = 1
    end_dim: int = -1


class Linear(LayerSpec):
    POSITIONAL = ("out_features", "bias")
    INFERRED = ("in_features",)
    DOC = "Fully connected layer on (F,) inputs."
    out_features: PosInt
    bias: bool = True


class Softmax(LayerSpec):
    POSITIONAL = ("dim",)
    DOC = "Softmax over a dimension (the batch is dimension 0). Training uses cross-entropy on logits: rarely wanted."
    dim: int | None = None


LAYERS: dict[str, type[LayerSpec]] = {
    cls.__name__: cls
    for cls in (
        Conv2d,
        BatchNorm2d,
        BatchNorm1d,
        GroupNorm,
        ReLU,
        ReLU6,
        LeakyReLU,
        ELU,
        GELU,
        SiLU,
        Hardswish,
        Mish,
        Sigmoid,
        Tanh,
        Identity,
        MaxPool2d,
        AvgPool2d,
        AdaptiveAvgPool2d,
        AdaptiveMaxPool2d,
        Dropout,
        Dropout2d,
        Flatten,
        Linear,
        Softmax,
    )
}

COMPOSITES = ("Sequential", "Residual")

# steps of `forward` that register no module: name -> what it does
FUNCTIONS: dict[str, str] = {
    "relu": "torch.relu(x)",
    "gelu": "gelu(x)",
    "silu": "silu(x)",
    "sigmoid": "torch.sigmoid(x)",
    "tanh": "torch.tanh(x)",
    "flatten": "torch.flatten(x, 1)",
}
