"""The closed table of layers a spec may use, as argument models (no torch).

Each model holds the arguments a user writes, with PyTorch's own names, types and defaults. Arguments that follow
from the input (`in_channels`, `num_features`, `in_features`, `num_channels`) are not fields: they are worked out by
`shapes` and handed to the torch constructor by `build`. `POSITIONAL` is PyTorch's positional order without them,
so `Conv2d(64, 3)` means `out_channels=64, kernel_size=3` exactly as in PyTorch. PReLU's `num_parameters` is written,
not worked out, as torch defaults it to 1 (one slope): `shapes` checks that it is 1 or the input's channels.
"""

from typing import ClassVar, Literal

from .validate import ArgModel, NonNegInt, NonNegPair, PosFloat, PosInt, PosPair, Prob, pair


class LayerSpec(ArgModel):
    """Base of every layer model (see `ArgModel`); `DOC` is its line in the docs' layer table."""

    DOC: ClassVar[str] = ""


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


class ConvTranspose2d(LayerSpec):
    POSITIONAL = ("out_channels", "kernel_size", "stride", "padding", "output_padding", "groups", "bias", "dilation")
    INFERRED = ("in_channels",)
    DOC = "2-D transposed convolution: H -> (H - 1) * stride - 2 * padding + dilation * (k - 1) + output_padding + 1."
    out_channels: PosInt
    kernel_size: PosPair
    stride: PosPair = 1
    padding: NonNegPair = 0
    output_padding: NonNegPair = 0
    groups: PosInt = 1
    bias: bool = True
    dilation: PosPair = 1

    def conflict(self) -> tuple[str, str, str] | None:
        # torch refuses it when it runs: the extra rows would lie past what any input pixel reaches
        sides = zip(pair(self.output_padding), pair(self.stride), pair(self.dilation))
        if any(op >= s and op >= d for op, s, d in sides):
            return (
                "output_padding",
                f"needs output_padding={self.output_padding} smaller than stride={self.stride} or "
                f"dilation={self.dilation}",
                "output_padding adds the rows a stride > 1 leaves out: use it with a stride, up to stride - 1",
            )
        return None


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


class PReLU(LayerSpec):
    POSITIONAL = ("num_parameters", "init")
    DOC = "max(0, x) + a * min(0, x) with a learned slope a: one (num_parameters=1), or one per channel."
    num_parameters: PosInt = 1
    init: float = 0.25


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


_AdaptiveSize = PosInt | tuple[PosInt | None, PosInt | None]


class AdaptiveAvgPool2d(LayerSpec):
    POSITIONAL = ("output_size",)
    DOC = "Average pooling to a fixed output size; None in a tuple keeps that dimension."
    output_size: _AdaptiveSize


class AdaptiveMaxPool2d(LayerSpec):
    POSITIONAL = ("output_size", "return_indices")
    DOC = "Max pooling to a fixed output size."
    output_size: _AdaptiveSize
    return_indices: Literal[False] = False


class Upsample(LayerSpec):
    POSITIONAL = ("size", "scale_factor", "mode", "align_corners", "recompute_scale_factor")
    DOC = "Resizes (C, H, W) images to `size`, or by `scale_factor` (H * scale_factor, rounded down)."
    size: PosPair | None = None
    scale_factor: PosFloat | tuple[PosFloat, PosFloat] | None = None
    mode: Literal["nearest", "bilinear"] = "nearest"
    align_corners: bool | None = None
    recompute_scale_factor: bool | None = None

    def conflict(self) -> tuple[str, str, str] | None:
        # each of these is an error of F.interpolate when the layer runs
        if (self.size is None) == (self.scale_factor is None):
            what = "takes size or scale_factor, not both" if self.size is not None else "needs size or scale_factor"
            return "scale_factor", what, "Upsample(scale_factor=2) doubles H and W; Upsample(size=64) makes them 64"
        if self.align_corners is not None and self.mode == "nearest":
            return "align_corners", "takes align_corners with mode='bilinear' only", "remove align_corners=..."
        if self.recompute_scale_factor and self.size is not None:
            return "recompute_scale_factor", "takes recompute_scale_factor=true with a scale_factor only", "remove it"
        return None


class _Pad2d(LayerSpec):
    POSITIONAL = ("padding",)
    padding: NonNegInt | tuple[NonNegInt, NonNegInt, NonNegInt, NonNegInt]  # left, right, top, bottom


class ReflectionPad2d(_Pad2d):
    DOC = "Pads (C, H, W) images with their reflection; padding: one for all sides, or (left, right, top, bottom)."


class ReplicationPad2d(_Pad2d):
    DOC = "Pads (C, H, W) images by repeating their edge pixels; padding as ReflectionPad2d's."


class ZeroPad2d(_Pad2d):
    DOC = "Pads (C, H, W) images with zeros; padding as ReflectionPad2d's."


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


class Hardsigmoid(_Inplace):
    DOC = "The hard sigmoid of MobileNetV3's squeeze-and-excitation."


class LayerNorm(LayerSpec):
    POSITIONAL = ("eps", "elementwise_affine", "bias")
    INFERRED = ("normalized_shape",)
    DOC = "Layer normalization over the last dimension (channels-last, after a Permute, or features)."
    eps: PosFloat = 1e-5
    elementwise_affine: bool = True
    bias: bool = True


class LayerNorm2d(LayerSpec):
    POSITIONAL = ("eps", "elementwise_affine")
    INFERRED = ("normalized_shape",)
    DOC = "Layer normalization over the channels of (C, H, W) images (torchvision's, in ConvNeXt)."
    eps: PosFloat = 1e-5
    elementwise_affine: bool = True


class Permute(LayerSpec):
    POSITIONAL = ("dims",)
    DOC = "Reorders the dimensions (the batch is 0): Permute((0, 2, 3, 1)) makes an image channels-last."
    dims: tuple[int, ...]


class StochasticDepth(LayerSpec):
    POSITIONAL = ("p", "mode")
    DOC = "Drops whole rows (or the batch) with probability p while training (torchvision.ops)."
    p: Prob
    mode: Literal["row", "batch"]


class Parameter(LayerSpec):
    POSITIONAL = ("shape", "value")
    DOC = (
        "A learned tensor of `shape`, filled with `value`; a forward uses it by name (ConvNeXt's layer scale). "
        "`requires_grad=false`: a fixed tensor, trained by nothing (an imported model's buffer)."
    )
    shape: tuple[PosInt, ...]
    value: float = 0.0
    requires_grad: bool = True


class Softmax(LayerSpec):
    POSITIONAL = ("dim",)
    DOC = "Softmax over a dimension (the batch is dimension 0). Training uses cross-entropy on logits: rarely wanted."
    dim: int | None = None


class LogSoftmax(LayerSpec):
    POSITIONAL = ("dim",)
    DOC = "log(Softmax(x)) over a dimension (the batch is dimension 0). Training uses cross-entropy on logits."
    dim: int | None = None


LAYERS: dict[str, type[LayerSpec]] = {
    cls.__name__: cls
    for cls in (
        Conv2d,
        ConvTranspose2d,
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
        PReLU,
        Sigmoid,
        Tanh,
        Identity,
        MaxPool2d,
        AvgPool2d,
        AdaptiveAvgPool2d,
        AdaptiveMaxPool2d,
        Upsample,
        ReflectionPad2d,
        ReplicationPad2d,
        ZeroPad2d,
        Dropout,
        Dropout2d,
        Flatten,
        Linear,
        Softmax,
        LogSoftmax,
        Hardsigmoid,
        LayerNorm,
        LayerNorm2d,
        Permute,
        StochasticDepth,
        Parameter,
    )
}

COMPOSITES = ("Sequential", "Residual")

# the names in a module's scope that are the shape of its input, known when shapes reaches it
SHAPE_NAMES = ("in_channels", "in_height", "in_width")

# steps of `forward` that register no module: name -> what it does
FUNCTIONS: dict[str, str] = {
    "relu": "torch.relu(x)",
    "gelu": "gelu(x)",
    "silu": "silu(x)",
    "sigmoid": "torch.sigmoid(x)",
    "tanh": "torch.tanh(x)",
    "flatten": "torch.flatten(x, 1)",
}

# Attributes of every torch module (an instance of nn.Module): a child of that name cannot be registered, so the spec
# refuses such names (and names starting with '_'). tests/test_language.py checks this list against the installed
# torch.
MODULE_ATTRIBUTES = frozenset(
    """
    T_destination add_module apply bfloat16 buffers call_super_init children compile cpu cuda double dump_patches
    eval extra_repr float forward get_buffer get_extra_state get_parameter get_submodule half ipu load_state_dict
    modules mtia named_buffers named_children named_modules named_parameters parameters register_backward_hook
    register_buffer register_forward_hook register_forward_pre_hook register_full_backward_hook
    register_full_backward_pre_hook register_load_state_dict_post_hook register_load_state_dict_pre_hook
    register_module register_parameter register_state_dict_post_hook register_state_dict_pre_hook requires_grad_
    set_extra_state set_submodule share_memory state_dict to to_empty train training type xpu zero_grad
""".split()
)
SEQUENTIAL_ATTRIBUTES = frozenset("append extend insert pop".split())  # methods of nn.Sequential
