"""The shape rules, without torch: for every layer kind, `(config, input shape) -> (output shape, parameters,
multiply-accumulates, the arguments that follow from the input)`; the operations of a forward have theirs in
`op_rules.py`. Shapes are per image (the batch left out). The formulas are PyTorch's own; `tests/test_shapes.py`
checks them against torch and torchinfo for every layer kind.

MACs are counted as torchvision's model metadata counts them: a layer with weights costs its parameters once per
position it is applied at (every output pixel of a convolution, every row of a Linear over a (H, W, C) tensor; a
transposed convolution's weights at every input pixel, each of which scatters the kernel, its bias at every output
pixel), a layer without weights costs nothing, and an operation costs nothing. torchinfo counts a transposed
convolution's weights at every output pixel, as a convolution's: stride**2 times as many at a stride.
"""

from __future__ import annotations

from collections.abc import Callable
from math import floor, prod
from typing import Any

from .lang import LAYERS, pair
from .lang import layers as L

Shape = tuple[int, ...]

# A tensor or weight larger than this (elements, per image for activations) cannot be trained on any machine
# netspec targets: 2**33 fp32 elements is 32 GiB. Refused statically, before anything is allocated.
MAX_ELEMENTS = 2**33


class ShapeError(Exception):
    """A rule's refusal, said of the layer or operation; located and worded as a SpecError by the walk in `shapes`.
    `code` is the error code when it is not E070 (a layer that cannot take its input). An operation's message with
    another code follows its name: `cat() ` + "along dim 1 needs ..." """

    def __init__(self, message: str, hint: str | None = None, code: str = "E070"):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.code = code


def fmt_shape(shape: Shape) -> str:
    return "x".join(str(d) for d in shape)


def need_chw(kind: str, shape: Shape) -> tuple[int, int, int]:
    if len(shape) != 3:
        hint = None
        if len(shape) == 1:
            hint = f"{kind} works on (C, H, W) images; this tensor was already flattened"
        raise ShapeError(f"{kind} needs a C x H x W input", hint)
    return shape


# ---- the rules: (config, input shape) -> (output shape, params, macs, inferred arguments) ----------------------

Result = tuple[Shape, int, int, dict[str, int]]
Pair = int | tuple[int, int]


def _conv2d(cfg: L.Conv2d, shape: Shape) -> Result:
    c, h, w = need_chw("Conv2d", shape)
    kh, kw = pair(cfg.kernel_size)
    sh, sw = pair(cfg.stride)
    dh, dw = pair(cfg.dilation)
    _check_groups(cfg.groups, c, cfg.out_channels)
    eh, ew = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    if cfg.padding == "same":
        if (sh, sw) != (1, 1):
            raise ShapeError("padding='same' needs stride 1", "use an integer padding with a stride")
        # torch pads (eh - 1) in all: (eh - 1) // 2 before, the rest (the larger half) after
        _check_padding_mode(cfg.padding_mode, eh - 1 - (eh - 1) // 2, ew - 1 - (ew - 1) // 2, h, w)
        ho, wo = h, w
    else:
        ph, pw = (0, 0) if cfg.padding == "valid" else pair(cfg.padding)
        if h + 2 * ph < eh or w + 2 * pw < ew:
            raise ShapeError(
                f"its {eh}x{ew} kernel (with dilation) is larger than the padded {h + 2 * ph}x{w + 2 * pw} input",
                "use a larger input, more padding or a smaller kernel",
            )
        _check_padding_mode(cfg.padding_mode, ph, pw, h, w)
        ho = (h + 2 * ph - eh) // sh + 1
        wo = (w + 2 * pw - ew) // sw + 1
    weight = cfg.out_channels * (c // cfg.groups) * kh * kw
    params = weight + (cfg.out_channels if cfg.bias else 0)
    return (cfg.out_channels, ho, wo), params, params * ho * wo, {"in_channels": c}


def _check_groups(groups: int, c: int, out: int) -> None:
    if c % groups or out % groups:
        raise ShapeError(f"groups={groups} must divide both the {c} input channels and the {out} output channels")


def _conv_transpose2d(cfg: L.ConvTranspose2d, shape: Shape) -> Result:
    c, h, w = need_chw("ConvTranspose2d", shape)
    _check_groups(cfg.groups, c, cfg.out_channels)
    kh, kw = pair(cfg.kernel_size)
    sides = zip((h, w), (kh, kw), pair(cfg.stride), pair(cfg.padding), pair(cfg.output_padding), pair(cfg.dilation))
    ho, wo = ((n - 1) * s - 2 * p + d * (k - 1) + op + 1 for n, k, s, p, op, d in sides)
    if ho < 1 or wo < 1:
        raise ShapeError(
            f"padding={cfg.padding} takes more than the transposed convolution makes: {ho}x{wo} would be left",
            "use less padding, a larger kernel or stride, or a larger input",
        )
    weight = c * (cfg.out_channels // cfg.groups) * kh * kw
    bias = cfg.out_channels if cfg.bias else 0
    # each input pixel scatters the whole kernel: the weights cost once per input pixel, the bias once per output pixel
    return (cfg.out_channels, ho, wo), weight + bias, weight * h * w + bias * ho * wo, {"in_channels": c}


def _check_padding_mode(mode: str, ph: int, pw: int, h: int, w: int) -> None:
    """torch's F.pad limits: 'reflect' needs padding < the size, 'circular' padding <= the size; 'replicate' and
    'zeros' take any padding."""
    if mode == "reflect" and (ph >= h or pw >= w):
        raise ShapeError(
            f"padding_mode='reflect' pads {ph}x{pw}: it needs padding smaller than the {h}x{w} input",
            "use padding_mode='replicate' or 'zeros', or a larger input",
        )
    if mode == "circular" and (ph > h or pw > w):
        raise ShapeError(
            f"padding_mode='circular' pads {ph}x{pw}: it needs padding no larger than the {h}x{w} input",
            "use padding_mode='replicate' or 'zeros', or a larger input",
        )


def _batchnorm2d(cfg: L.BatchNorm2d, shape: Shape) -> Result:
    c, _, _ = need_chw("BatchNorm2d", shape)
    params = 2 * c if cfg.affine else 0
    return shape, params, params, {"num_features": c}


def _batchnorm1d(cfg: L.BatchNorm1d, shape: Shape) -> Result:
    if len(shape) not in (1, 2):
        raise ShapeError(
            "BatchNorm1d needs a (C,) or (C, L) input", "use BatchNorm2d on C x H x W images, or Flatten() first"
        )
    c = shape[0]
    params = 2 * c if cfg.affine else 0
    return shape, params, params, {"num_features": c}


def _groupnorm(cfg: L.GroupNorm, shape: Shape) -> Result:
    if len(shape) < 1:
        raise ShapeError("GroupNorm needs a channel dimension")
    c = shape[0]
    if c % cfg.num_groups:
        raise ShapeError(f"num_groups={cfg.num_groups} must divide the {c} channels")
    if c // cfg.num_groups * prod(shape[1:]) == 1:
        # torch refuses it for one image ("Expected more than 1 value per channel"), in eval mode too; with more
        # images each group still normalizes a single value, so the layer outputs its bias whatever the input
        raise ShapeError(
            f"with num_groups={cfg.num_groups} each group holds a single value per image",
            "use fewer groups, or normalize before the spatial size shrinks to 1x1",
        )
    params = 2 * c if cfg.affine else 0
    return shape, params, params, {"num_channels": c}


def _prelu(cfg: L.PReLU, shape: Shape) -> Result:
    n = cfg.num_parameters
    c = shape[0] if shape else 1  # torch's channels: dimension 1 of the batch
    if n not in (1, c):
        raise ShapeError(
            f"num_parameters={n} must be 1 or the {c} channels of its input",
            f"PReLU() learns one slope; PReLU(num_parameters={c}) one per channel",
        )
    return shape, n, n, {}


def _same(cfg: Any, shape: Shape) -> Result:
    return shape, 0, 0, {}


def _pool_out(size: int, k: int, s: int, p: int, d: int, ceil: bool) -> int:
    # ATen's pooling_output_shape
    num = size + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil else 0)
    out = num // s + 1
    if ceil and (out - 1) * s >= size + p:
        out -= 1
    return out


def pool(
    kind: str, shape: Shape, kernel: Pair, stride: Pair | None, padding: Pair, dilation: Pair, ceil: bool
) -> Result:
    c, h, w = need_chw(kind, shape)
    kh, kw = pair(kernel)
    sh, sw = pair(stride if stride is not None else kernel)
    ph, pw = pair(padding)
    dh, dw = pair(dilation)
    if ph > kh // 2 or pw > kw // 2:
        raise ShapeError(
            f"padding {ph}x{pw} is more than half the {kh}x{kw} window", "padding may be at most kernel_size // 2"
        )
    ho = _pool_out(h, kh, sh, ph, dh, ceil)
    wo = _pool_out(w, kw, sw, pw, dw, ceil)
    if ho < 1 or wo < 1:
        raise ShapeError(
            f"its {kh}x{kw} window is larger than its {h}x{w} input",
            "use a larger input size, or remove a pooling layer before it",
        )
    return (c, ho, wo), 0, 0, {}


def _maxpool2d(cfg: L.MaxPool2d, shape: Shape) -> Result:
    return pool("MaxPool2d", shape, cfg.kernel_size, cfg.stride, cfg.padding, cfg.dilation, cfg.ceil_mode)


def _avgpool2d(cfg: L.AvgPool2d, shape: Shape) -> Result:
    return pool("AvgPool2d", shape, cfg.kernel_size, cfg.stride, cfg.padding, 1, cfg.ceil_mode)


def _adaptive(cfg: L.AdaptiveAvgPool2d | L.AdaptiveMaxPool2d, shape: Shape) -> Result:
    c, h, w = need_chw(cfg.kind(), shape)
    size: int | tuple[int | None, int | None] | None = cfg.output_size  # None keeps that side
    oh, ow = pair(size)
    return (c, h if oh is None else oh, w if ow is None else ow), 0, 0, {}


def _upsample(cfg: L.Upsample, shape: Shape) -> Result:
    c, h, w = need_chw("Upsample", shape)
    if cfg.size is not None:
        ho, wo = pair(cfg.size)
    else:  # F.interpolate's size: each side times its factor, rounded down
        assert cfg.scale_factor is not None  # one of the two (Upsample.conflict)
        sh, sw = pair(cfg.scale_factor)
        ho, wo = floor(h * sh), floor(w * sw)
    if ho < 1 or wo < 1:
        raise ShapeError(
            f"scale_factor={cfg.scale_factor} would make it {ho}x{wo}", "use a larger scale_factor, or a size"
        )
    return (c, ho, wo), 0, 0, {}


def _pad2d(cfg: L.ZeroPad2d | L.ReplicationPad2d | L.ReflectionPad2d, shape: Shape) -> Result:
    c, h, w = need_chw(cfg.kind(), shape)
    left, right, top, bottom = _sides(cfg.padding)
    return (c, h + top + bottom, w + left + right), 0, 0, {}


def _sides(padding: int | tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """A pad's (left, right, top, bottom), from one value for all four or the four."""
    return padding if isinstance(padding, tuple) else (padding,) * 4


def _reflection_pad2d(cfg: L.ReflectionPad2d, shape: Shape) -> Result:
    _, h, w = need_chw("ReflectionPad2d", shape)
    left, right, top, bottom = _sides(cfg.padding)
    if max(left, right) >= w or max(top, bottom) >= h:
        raise ShapeError(
            f"padding (left, right, top, bottom) = {(left, right, top, bottom)} reflects more than its {h}x{w} "
            "input holds: each side must be smaller than the width (left, right) or the height (top, bottom)",
            "use ReplicationPad2d or ZeroPad2d, less padding, or a larger input",
        )
    return _pad2d(cfg, shape)


def _dropout2d(cfg: L.Dropout2d, shape: Shape) -> Result:
    need_chw("Dropout2d", shape)
    return shape, 0, 0, {}


def flatten(cfg: L.Flatten, shape: Shape) -> Result:
    ndim = len(shape) + 1  # with the batch dimension
    start = cfg.start_dim + ndim if cfg.start_dim < 0 else cfg.start_dim
    end = cfg.end_dim + ndim if cfg.end_dim < 0 else cfg.end_dim
    if not (0 <= start < ndim) or not (0 <= end < ndim):
        raise ShapeError(f"dimensions {cfg.start_dim}..{cfg.end_dim} are out of range for a {ndim}-D batch")
    if start == 0:
        raise ShapeError("start_dim=0 would merge the batch into the features", "use Flatten() (start_dim=1)")
    if start > end:
        raise ShapeError(f"start_dim {cfg.start_dim} comes after end_dim {cfg.end_dim}")
    full = (1,) + shape
    out = full[:start] + (prod(full[start : end + 1]),) + full[end + 1 :]
    return out[1:], 0, 0, {}


def _linear(cfg: L.Linear, shape: Shape) -> Result:
    # over the last dimension, at every position of the others: (F,) features, or a channels-last (H, W, C) image
    f = shape[-1]
    params = f * cfg.out_features + (cfg.out_features if cfg.bias else 0)
    return (*shape[:-1], cfg.out_features), params, params * prod(shape[:-1]), {"in_features": f}


def _layernorm(cfg: L.LayerNorm, shape: Shape) -> Result:
    c = shape[-1]
    params = (c + (c if cfg.bias else 0)) if cfg.elementwise_affine else 0
    return shape, params, params, {"normalized_shape": c}


def _layernorm2d(cfg: L.LayerNorm2d, shape: Shape) -> Result:
    c, _, _ = need_chw("LayerNorm2d", shape)
    params = 2 * c if cfg.elementwise_affine else 0
    return shape, params, params, {"normalized_shape": c}


def permuted(dims: tuple[int, ...], shape: Shape) -> Shape:
    """The per-image shape after torch.permute(x, dims) of a batch (dims count the batch as 0)."""
    ndim = len(shape) + 1
    if len(dims) != ndim:
        raise ShapeError(f"{len(dims)} dimensions for a {ndim}-D batch: dims lists every dimension, the batch first")
    norm = tuple(d + ndim if d < 0 else d for d in dims)
    if sorted(norm) != list(range(ndim)):
        raise ShapeError(f"dims {dims} is not an order of the {ndim} dimensions 0..{ndim - 1}")
    if norm[0] != 0:
        raise ShapeError("the batch must stay first: dims starts with 0")
    full = (1, *shape)
    return tuple(full[d] for d in norm[1:])


def _permute(cfg: L.Permute, shape: Shape) -> Result:
    return permuted(cfg.dims, shape), 0, 0, {}


def _softmax(cfg: L.Softmax, shape: Shape) -> Result:
    if cfg.dim is not None and not (-(len(shape) + 1) <= cfg.dim <= len(shape)):
        raise ShapeError(f"dim={cfg.dim} is out of range")
    return shape, 0, 0, {}


Rule = Callable[[Any, Shape], Result]

RULES: dict[str, Rule] = {
    "Conv2d": _conv2d,
    "ConvTranspose2d": _conv_transpose2d,
    "BatchNorm2d": _batchnorm2d,
    "BatchNorm1d": _batchnorm1d,
    "GroupNorm": _groupnorm,
    "MaxPool2d": _maxpool2d,
    "AvgPool2d": _avgpool2d,
    "AdaptiveAvgPool2d": _adaptive,
    "AdaptiveMaxPool2d": _adaptive,
    "Upsample": _upsample,
    "ReflectionPad2d": _reflection_pad2d,
    "ReplicationPad2d": _pad2d,
    "ZeroPad2d": _pad2d,
    "PReLU": _prelu,
    "Dropout2d": _dropout2d,
    "Flatten": flatten,
    "Linear": _linear,
    "Softmax": _softmax,
    "LogSoftmax": _softmax,
    "LayerNorm": _layernorm,
    "LayerNorm2d": _layernorm2d,
    "Permute": _permute,
}
RULES.update({name: _same for name in LAYERS if name not in RULES})

# layers that keep the shape of their input whatever it is: activations, normalizations, dropout
SHAPE_KEEPING = frozenset(
    {name for name, rule in RULES.items() if rule is _same}
    | {"BatchNorm2d", "BatchNorm1d", "GroupNorm", "LayerNorm", "LayerNorm2d", "Dropout2d", "Softmax", "LogSoftmax"}
    | {"PReLU"}
)


# layers that need a (C, H, W) image, and those that work on the last dimension (features, or channels-last)
CHW_LAYERS = frozenset(
    {"Conv2d", "ConvTranspose2d", "BatchNorm2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d",
     "Upsample", "ReflectionPad2d", "ReplicationPad2d", "ZeroPad2d", "Dropout2d", "LayerNorm2d", "GroupNorm"}
)  # fmt: skip
LAST_DIM_LAYERS = frozenset({"Linear", "LayerNorm"})
