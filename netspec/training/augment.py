"""Data augmentation applied to whole uint8 batches with tensor ops, on whatever device the batch lives.

Why: torchvision's transforms work one image at a time (a Python call per image and per op), which dominates the
step time of small, fast networks on CIFAR-sized data. Here every op takes a batch `(N, C, H, W)` of uint8, draws its
random parameters for all N images at once from a `torch.Generator`, and applies them with a handful of kernels —
the approach of KellerJordan/cifar10-airbench — so augmentation stays on the GPU when the data set is held there.

Semantics follow `torchvision.transforms.v2` for uint8 tensor images: the same parameter distributions per image, and
for the same parameters the same pixels (the tests check both against torchvision). Each random op has a
deterministic core (`crop_at`, `flip_where`, `apply_jitter`, `rotate_batch`) and a `*_params` function that draws the
parameters; `return_params=True` returns them alongside the output.

Limits, stated plainly:
* Random numbers are drawn per batch, not per image from the global RNG, so the exact values differ from what a
  torchvision pipeline would draw for the same seed; only their distribution matches.
* Parameters are drawn on the generator's device (the batch's device when `generator=None`) and moved to the batch.
* `color_jitter`'s blends emulate the fused multiply-add that torch's `add_(other, alpha=...)` kernel uses on
  AVX2/AVX-512 CPUs and on CUDA (via a float64 multiply-add rounded once to float32). On a CPU build without FMA
  torchvision rounds twice, and a pixel can then differ by 1.
* `random_rotation` builds torchvision's sampling grid op for op, but with one batched matmul instead of one per
  image; if a backend rounded those differently, a pixel whose source coordinate lies exactly on a nearest-neighbour
  rounding boundary could pick its neighbour. Measured on CPU: every pixel identical (tests allow 0.1%).
* Not yet checked on CUDA (the CUDA test is skipped without a GPU): torchvision's per-image CUDA kernels (reductions,
  bmm) might round differently from the batched ones, which the CUDA test bounds rather than forbids.
* Only constant padding (RandomCrop), nearest interpolation without `expand`/`center` (RandomRotation) and bilinear
  antialiased resizing (Resize) are supported; other torchvision options raise ValueError in `BatchAugment`.
* When an op is a no-op (e.g. `color_jitter()` with all factors 0), the input tensor itself is returned.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "BatchAugment",
    "apply_jitter",
    "color_jitter",
    "crop_at",
    "crop_params",
    "flip_params",
    "flip_where",
    "jitter_params",
    "normalize",
    "pad",
    "random_crop",
    "random_hflip",
    "random_rotation",
    "random_vflip",
    "resize",
    "rotate_batch",
    "rotation_params",
]

Generator = torch.Generator | None
_UINT8_MAX = 255.0


# --------------------------------------------------------------------------------------------------------------------
# helpers


def _check_batch(x: Tensor) -> None:
    """Every op takes a uint8 batch (N, C, H, W) with C = 1 or 3, as the data set is held in memory."""
    if x.ndim != 4:
        raise ValueError(f"expected a batch of shape (N, C, H, W), got shape {tuple(x.shape)}")
    if x.dtype != torch.uint8:
        raise ValueError(f"expected a uint8 batch, got {x.dtype}")
    if x.shape[1] not in (1, 3):
        raise ValueError(f"expected 1 or 3 channels, got {x.shape[1]}")


def _param_device(x: Tensor, generator: Generator) -> torch.device:
    """Random numbers are drawn where the generator lives (a CUDA generator can only fill CUDA tensors)."""
    return generator.device if generator is not None else x.device


def _uniform(n: int, low: float, high: float, device: torch.device, generator: Generator) -> Tensor:
    """(n,) float32 uniform in [low, high), drawn like torchvision's `torch.empty(1).uniform_(low, high)`."""
    return torch.empty(n, dtype=torch.float32, device=device).uniform_(low, high, generator=generator)


def _pair(size: int | Sequence[int], name: str) -> tuple[int, int]:
    """torchvision's size convention: an int means a square."""
    if isinstance(size, int):
        return size, size
    if isinstance(size, Sequence) and len(size) == 1:
        return int(size[0]), int(size[0])
    if isinstance(size, Sequence) and len(size) == 2:
        return int(size[0]), int(size[1])
    raise ValueError(f"{name} must be an int or a pair (height, width), got {size!r}")


# --------------------------------------------------------------------------------------------------------------------
# RandomCrop


def _parse_padding(padding: int | Sequence[int] | None) -> tuple[int, int, int, int]:
    """torchvision's padding convention -> (left, right, top, bottom), the order `F.pad` wants for the last 2 dims.

    int: all sides; 1-sequence: all sides; 2-sequence: (left/right, top/bottom); 4-sequence: (left, top, right, bottom).
    """
    if padding is None:
        return 0, 0, 0, 0
    if isinstance(padding, int):
        p = [padding] * 4
    elif isinstance(padding, Sequence) and len(padding) == 1:
        p = [padding[0]] * 4
    elif isinstance(padding, Sequence) and len(padding) == 2:
        p = [padding[0], padding[0], padding[1], padding[1]]
    elif isinstance(padding, Sequence) and len(padding) == 4:
        p = [padding[0], padding[2], padding[1], padding[3]]
    else:
        raise ValueError(f"padding must be an int or a 1, 2 or 4 element sequence, got {padding!r}")
    if not all(isinstance(v, int) and v >= 0 for v in p):
        raise ValueError(f"padding must be non-negative ints, got {padding!r}")
    return p[0], p[1], p[2], p[3]


def pad(x: Tensor, padding: int | Sequence[int], fill: int = 0) -> Tensor:
    """Constant padding of a whole batch, with torchvision's padding convention (see `_parse_padding`)."""
    left, right, top, bottom = _parse_padding(padding)
    if left == right == top == bottom == 0:
        return x
    return F.pad(x, (left, right, top, bottom), mode="constant", value=fill)  # (N, C, H+t+b, W+l+r)


def crop_params(
    n: int,
    padded_hw: tuple[int, int],
    size: tuple[int, int],
    generator: Generator = None,
    device: torch.device | str = "cpu",
) -> tuple[Tensor, Tensor]:
    """Per-image crop offsets, uniform over the full inclusive range like torchvision's `randint(0, H - h + 1)`.

    Returns (tops, lefts), each (n,) int64, in the coordinates of the padded image.
    """
    (hp, wp), (h, w) = padded_hw, size
    if hp < h or wp < w:
        raise ValueError(f"Required crop size {(h, w)} is larger than (padded) input image size {(hp, wp)}.")
    tops = torch.randint(0, hp - h + 1, (n,), generator=generator, device=device)  # (N,)
    lefts = torch.randint(0, wp - w + 1, (n,), generator=generator, device=device)  # (N,)
    return tops, lefts


def crop_at(x_padded: Tensor, tops: Tensor, lefts: Tensor, size: tuple[int, int]) -> Tensor:
    """Crop image i of the batch at (tops[i], lefts[i]) with one gather: no loop over images or offsets, no sync."""
    n, c, hp, wp = x_padded.shape
    h, w = size
    rows = tops.view(n, 1) + torch.arange(h, device=tops.device)  # (N, h)
    cols = lefts.view(n, 1) + torch.arange(w, device=lefts.device)  # (N, w)
    flat = (rows.view(n, h, 1) * wp + cols.view(n, 1, w)).view(n, 1, h * w)  # (N, 1, h*w) into the (hp*wp) plane
    flat = flat.to(x_padded.device).expand(n, c, h * w)  # (N, C, h*w)
    out = torch.gather(x_padded.reshape(n, c, hp * wp), 2, flat)  # (N, C, h*w)
    return out.view(n, c, h, w)


def random_crop(
    x: Tensor,
    size: int | tuple[int, int],
    padding: int | Sequence[int] = 0,
    generator: Generator = None,
    fill: int = 0,
    return_params: bool = False,
) -> Tensor | tuple[Tensor, dict[str, Tensor]]:
    """torchvision RandomCrop(size, padding, fill) per image: pad with `fill`, crop at a uniformly random offset.

    With `return_params`, also returns {"top": (N,), "left": (N,)}: offsets in the padded image, i.e. the arguments
    of `torchvision.transforms.v2.functional.crop(pad(img, padding, fill), top, left, h, w)`.
    """
    _check_batch(x)
    size = _pair(size, "size")
    xp = pad(x, padding, fill)  # (N, C, Hp, Wp)
    tops, lefts = crop_params(x.shape[0], (xp.shape[2], xp.shape[3]), size, generator, _param_device(x, generator))
    tops, lefts = tops.to(x.device), lefts.to(x.device)
    out = crop_at(xp, tops, lefts, size)  # (N, C, h, w)
    return (out, {"top": tops, "left": lefts}) if return_params else out


# --------------------------------------------------------------------------------------------------------------------
# RandomHorizontalFlip / RandomVerticalFlip


def flip_params(n: int, p: float, generator: Generator = None, device: torch.device | str = "cpu") -> Tensor:
    """(n,) bool: flip image i iff u_i < p, as torchvision flips unless `torch.rand(1) >= p`."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"flip probability must be in [0, 1], got {p}")
    return torch.rand(n, generator=generator, device=device) < p


def flip_where(x: Tensor, mask: Tensor, dim: int) -> Tensor:
    """Flip along `dim` (-1 horizontal, -2 vertical) the images where `mask` (N,) is true."""
    return torch.where(mask.view(-1, 1, 1, 1), x.flip(dim), x)  # (N, C, H, W)


def _random_flip(x: Tensor, p: float, generator: Generator, return_params: bool, dim: int):
    _check_batch(x)
    mask = flip_params(x.shape[0], p, generator, _param_device(x, generator)).to(x.device)  # (N,)
    out = flip_where(x, mask, dim)
    return (out, {"flip": mask}) if return_params else out


def random_hflip(
    x: Tensor,
    p: float = 0.5,
    generator: Generator = None,
    return_params: bool = False,
) -> Tensor | tuple[Tensor, dict[str, Tensor]]:
    """torchvision RandomHorizontalFlip(p) per image. `return_params` adds {"flip": (N,) bool}."""
    return _random_flip(x, p, generator, return_params, dim=-1)


def random_vflip(
    x: Tensor,
    p: float = 0.5,
    generator: Generator = None,
    return_params: bool = False,
) -> Tensor | tuple[Tensor, dict[str, Tensor]]:
    """torchvision RandomVerticalFlip(p) per image. `return_params` adds {"flip": (N,) bool}."""
    return _random_flip(x, p, generator, return_params, dim=-2)


# --------------------------------------------------------------------------------------------------------------------
# ColorJitter
#
# The kernels below repeat torchvision.transforms.v2.functional._color's uint8 arithmetic op for op (the same
# float32 roundings), with a per-image factor of shape (M, 1, 1, 1) instead of a Python float.

JITTER_OPS = ("brightness", "contrast", "saturation", "hue")  # torchvision's fn_idx order: 0, 1, 2, 3


def _jitter_range(
    value: float | Sequence[float] | None,
    name: str,
    center: float = 1.0,
    bound: tuple[float, float] = (0.0, float("inf")),
    clip_first_on_zero: bool = True,
) -> tuple[float, float] | None:
    """torchvision ColorJitter._check_input: a number v means [max(0, c - v), c + v]; None means 'no-op'."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"If {name} is a single number, it must be non negative.")
        lo, hi = center - float(value), center + float(value)
        if clip_first_on_zero:
            lo = max(lo, 0.0)
    elif isinstance(value, Sequence) and len(value) == 2:
        lo, hi = float(value[0]), float(value[1])
    else:
        raise ValueError(f"{name}={value!r} should be a single number or a sequence with length 2.")
    if not bound[0] <= lo <= hi <= bound[1]:
        raise ValueError(f"{name} values should be between {bound} and increasing, but got {[lo, hi]}.")
    return None if lo == hi == center else (lo, hi)


def _jitter_ranges(brightness, contrast, saturation, hue) -> dict[str, tuple[float, float] | None]:
    return {
        "brightness": _jitter_range(brightness, "brightness"),
        "contrast": _jitter_range(contrast, "contrast"),
        "saturation": _jitter_range(saturation, "saturation"),
        "hue": _jitter_range(hue, "hue", center=0.0, bound=(-0.5, 0.5), clip_first_on_zero=False),
    }


def jitter_params(
    n: int,
    brightness: float | Sequence[float] = 0,
    contrast: float | Sequence[float] = 0,
    saturation: float | Sequence[float] = 0,
    hue: float | Sequence[float] = 0,
    generator: Generator = None,
    device: torch.device | str = "cpu",
) -> dict[str, Tensor | None]:
    """Per-image ColorJitter parameters, distributed like torchvision's `make_params` for each image.

    Returns {"order": (n, 4) int64, a uniformly random permutation of 0..3 per row (torchvision's `randperm(4)`),
    "brightness" / "contrast" / "saturation" / "hue": (n,) float32 factors, or None where the op is disabled}.
    """
    ranges = _jitter_ranges(brightness, contrast, saturation, hue)
    params: dict[str, Tensor | None] = {"order": None}
    if all(r is None for r in ranges.values()):
        return {**params, **dict.fromkeys(JITTER_OPS)}
    # argsort of i.i.d. uniforms is a uniformly random permutation (ties have probability ~0)
    params["order"] = torch.rand(n, 4, generator=generator, device=device).argsort(dim=1)  # (N, 4)
    for name in JITTER_OPS:
        r = ranges[name]
        params[name] = None if r is None else _uniform(n, r[0], r[1], device, generator)  # (N,)
    return params


def _grayscale(x: Tensor) -> Tensor:
    """(M, 3, H, W) uint8 -> (M, 1, H, W) float32 luma, floored: torchvision's uint8 path for contrast/saturation."""
    r, g, b = x.unbind(dim=1)  # (M, H, W) each
    gray = r.mul(0.2989).add_(g, alpha=0.587).add_(b, alpha=0.114)  # float32, same kernels as torchvision
    return gray.unsqueeze(1).floor_()  # (M, 1, H, W)


def _blend(x: Tensor, other: Tensor, f: Tensor) -> Tensor:
    """clamp(x * f + other * (1 - f)) -> uint8, per image factor f (M, 1, 1, 1).

    torchvision computes `x.mul(f).add_(other, alpha=1 - f)` and torch's add-with-alpha kernel is a fused
    multiply-add (CPU AVX2/AVX-512 and CUDA). A tensor `alpha` is not allowed, so the fma is emulated: the product
    of two float32 is exact in float64, and the float64 sum rounded once to float32 equals the fused result.
    """
    xf = x.mul(f)  # (M, C, H, W) float32, rounded like torchvision's `image.mul(ratio)`
    alpha = (1.0 - f).double()  # (M, 1, 1, 1), float32 1 - f widened (torchvision rounds 1 - f to float32 too)
    out = torch.addcmul(xf.double(), other.double(), alpha).float()  # (M, C, H, W) = fma(other, alpha, xf)
    return out.clamp_(0, _UINT8_MAX).to(torch.uint8)


def _adjust_brightness(x: Tensor, f: Tensor) -> Tensor:
    return x.mul(f).clamp_(0, _UINT8_MAX).to(torch.uint8)  # (M, C, H, W)


def _adjust_contrast(x: Tensor, f: Tensor) -> Tensor:
    gray = _grayscale(x) if x.shape[1] == 3 else x.to(torch.float32)  # (M, 1, H, W)
    mean = gray.mean(dim=(-3, -2, -1), keepdim=True)  # (M, 1, 1, 1)
    return _blend(x, mean, f)


def _adjust_saturation(x: Tensor, f: Tensor) -> Tensor:
    if x.shape[1] == 1:  # torchvision (matching PIL) leaves 1-channel images unchanged
        return x
    return _blend(x, _grayscale(x), f)


def _rgb_to_hsv(img: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(M, 3, H, W) float RGB in [0, 1] -> h, s, v each (M, H, W). A verbatim copy of torchvision's `_rgb_to_hsv`
    (Pillow's algorithm), in-place ops and all, so the float roundings are the same."""
    r, g, _ = img.unbind(dim=-3)
    minc, maxc = torch.aminmax(img, dim=-3)  # (M, H, W)
    eqc = maxc == minc
    channels_range = maxc - minc
    ones = torch.ones_like(maxc)
    s = channels_range / torch.where(eqc, ones, maxc)
    channels_range_divisor = torch.where(eqc, ones, channels_range).unsqueeze_(dim=-3)
    rc, gc, bc = ((maxc.unsqueeze(dim=-3) - img) / channels_range_divisor).unbind(dim=-3)
    mask_maxc_neq_r = maxc != r
    mask_maxc_eq_g = maxc == g
    hg = rc.add(2.0).sub_(bc).mul_(mask_maxc_eq_g & mask_maxc_neq_r)
    hr = bc.sub_(gc).mul_(~mask_maxc_neq_r)
    hb = gc.add_(4.0).sub_(rc).mul_(mask_maxc_neq_r.logical_and_(mask_maxc_eq_g.logical_not_()))
    h = hr.add_(hg).add_(hb)
    h = h.mul_(1.0 / 6.0).add_(1.0).fmod_(1.0)
    return h, s, maxc


_HSV_SELECT = torch.tensor([[0, 2, 1, 1, 3, 0], [3, 0, 0, 2, 1, 1], [1, 1, 3, 0, 0, 2]], dtype=torch.long)


def _hsv_to_rgb(h: Tensor, s: Tensor, v: Tensor) -> Tensor:
    """h, s, v each (M, H, W) -> (M, 3, H, W) RGB; torchvision's `_hsv_to_rgb`, op for op."""
    h6 = h.mul(6)
    i = torch.floor(h6)
    f = h6.sub_(i)
    i = i.to(dtype=torch.int32)
    sxf = s * f
    one_minus_s = 1.0 - s
    q = (1.0 - sxf).mul_(v).clamp_(0.0, 1.0)
    t = sxf.add_(one_minus_s).mul_(v).clamp_(0.0, 1.0)
    p = one_minus_s.mul_(v).clamp_(0.0, 1.0)
    i.remainder_(6)
    vpqt = torch.stack((v, p, q, t), dim=-3)  # (M, 4, H, W)
    select = _HSV_SELECT.to(device=h.device, non_blocking=True)[:, i]  # (3, M, H, W)
    return vpqt.gather(-3, select.moveaxis(0, -3))  # (M, 3, H, W)


def _adjust_hue(x: Tensor, f: Tensor) -> Tensor:
    if x.shape[1] == 1:  # torchvision (matching PIL) leaves 1-channel images unchanged
        return x
    img = x.to(torch.float32).mul_(1.0 / _UINT8_MAX)  # (M, 3, H, W) in [0, 1], torchvision's to_dtype(scale=True)
    h, s, v = _rgb_to_hsv(img)
    h = h.add_(f.view(-1, 1, 1)).remainder_(1.0)
    rgb = _hsv_to_rgb(h, s, v)
    return rgb.mul_(_UINT8_MAX + 1.0 - 1e-3).to(torch.uint8)  # torchvision's float -> uint8 conversion


_JITTER_FNS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "brightness": _adjust_brightness,
    "contrast": _adjust_contrast,
    "saturation": _adjust_saturation,
    "hue": _adjust_hue,
}


def apply_jitter(x: Tensor, params: dict[str, Tensor | None]) -> Tensor:
    """Apply ColorJitter with given per-image parameters (see `jitter_params`): deterministic core.

    Stage k applies to image i the op `order[i, k]`. Images are grouped per stage and op with a stable argsort, so
    every image goes through each enabled op exactly once (no wasted work on other images); the group sizes need a
    single device->host copy per call (one sync on CUDA).
    """
    order = params["order"]
    enabled = [j for j, name in enumerate(JITTER_OPS) if params[name] is not None]
    if order is None or not enabled or x.shape[0] == 0:
        return x
    order = order.to(x.device)  # (N, 4)
    factors = {name: params[name].to(x.device) for name in JITTER_OPS if params[name] is not None}  # (N,) each
    groups = order.argsort(dim=0, stable=True)  # (N, 4): column k lists images by their stage-k op
    counts = torch.stack([torch.bincount(order[:, k], minlength=4) for k in range(4)]).tolist()  # 4 x 4, one sync
    y = x.clone()
    for k in range(4):
        start = 0
        for j in range(4):
            idx = groups[start : start + counts[k][j], k]  # (M,) images whose stage-k op is j
            start += counts[k][j]
            name = JITTER_OPS[j]
            if idx.numel() == 0 or name not in factors or (x.shape[1] == 1 and name in ("saturation", "hue")):
                continue  # nothing to do (torchvision leaves 1-channel images unchanged by saturation and hue)
            f = factors[name].index_select(0, idx).view(-1, 1, 1, 1)  # (M, 1, 1, 1)
            y.index_copy_(0, idx, _JITTER_FNS[name](y.index_select(0, idx), f))  # (M, C, H, W) written back
    return y


def color_jitter(
    x: Tensor,
    brightness: float | Sequence[float] = 0,
    contrast: float | Sequence[float] = 0,
    saturation: float | Sequence[float] = 0,
    hue: float | Sequence[float] = 0,
    generator: Generator = None,
    return_params: bool = False,
) -> Tensor | tuple[Tensor, dict[str, Tensor | None]]:
    """torchvision ColorJitter(brightness, contrast, saturation, hue) per image, ops in a random order per image.

    Factors are uniform in [max(0, 1 - v), 1 + v] (hue in [-v, v]); a pair gives the range directly. Disabled ops
    (0 or None) draw nothing and cost nothing; with all four disabled the input is returned as is. For 1-channel
    images saturation and hue leave the image unchanged, as in torchvision. `return_params` adds the dict of
    `jitter_params` (use `torchvision.transforms.v2.functional.adjust_*` with `float(factor[i])` in `order[i]` to
    reproduce image i).
    """
    _check_batch(x)
    params = jitter_params(x.shape[0], brightness, contrast, saturation, hue, generator, _param_device(x, generator))
    out = apply_jitter(x, params)
    return (out, params) if return_params else out


# --------------------------------------------------------------------------------------------------------------------
# RandomRotation


def _parse_degrees(degrees: float | Sequence[float]) -> tuple[float, float]:
    """torchvision's `_setup_angle`: a number d means [-d, d]; a pair is the range."""
    if isinstance(degrees, (int, float)):
        if degrees < 0:
            raise ValueError("If degrees is a single number, it must be positive.")
        return -float(degrees), float(degrees)
    if isinstance(degrees, Sequence) and len(degrees) == 2:
        return float(degrees[0]), float(degrees[1])
    raise ValueError(f"degrees should be a number or a sequence of length 2, got {degrees!r}")


def rotation_params(
    n: int,
    degrees: float | Sequence[float],
    generator: Generator = None,
    device: torch.device | str = "cpu",
) -> Tensor:
    """(n,) float32 angles in degrees, uniform in [-d, d], like torchvision's `torch.empty(1).uniform_(-d, d)`."""
    lo, hi = _parse_degrees(degrees)
    return _uniform(n, lo, hi, device, generator)


def _rotation_grid(angles: Tensor, h: int, w: int) -> Tensor:
    """(N,) degrees -> (N, h, w, 2) sampling grid: torchvision's rotate_image + `_affine_grid`, batched.

    Positive angles rotate counter-clockwise. torchvision builds the inverse matrix of a rotation by -angle about the
    centre, [cos r, sin r, 0, -sin r, cos r, 0] with r = radians(-(angle % 360)), in float64 then float32.
    """
    n, device = angles.shape[0], angles.device
    rad = -(angles.double() % 360.0) * (math.pi / 180.0)  # (N,) float64, as Python's math.radians
    cos, sin, zero = torch.cos(rad), torch.sin(rad), torch.zeros_like(rad)
    theta = torch.stack([cos, sin, zero, -sin, cos, zero], dim=1).float().view(n, 2, 3)  # (N, 2, 3)
    base = torch.empty(1, h, w, 3, dtype=torch.float32, device=device)  # pixel centres relative to the image centre
    base[..., 0].copy_(torch.linspace((1.0 - w) * 0.5, (w - 1.0) * 0.5, steps=w, device=device))
    base[..., 1].copy_(torch.linspace((1.0 - h) * 0.5, (h - 1.0) * 0.5, steps=h, device=device).unsqueeze_(-1))
    base[..., 2].fill_(1)
    scale = torch.tensor([0.5 * w, 0.5 * h], dtype=torch.float32, device=device)
    rescaled = theta.transpose(1, 2).div(scale)  # (N, 3, 2)
    return base.view(1, h * w, 3).expand(n, h * w, 3).bmm(rescaled).view(n, h, w, 2)  # (N, h, w, 2)


def rotate_batch(x: Tensor, angles: Tensor, fill: int = 0) -> Tensor:
    """Rotate image i by angles[i] degrees (counter-clockwise) about its centre, nearest neighbour, same size,
    uncovered pixels = `fill`: torchvision's `rotate(img, angle, NEAREST, expand=False, fill=fill)`, batched."""
    n, c, h, w = x.shape
    if n == 0:
        return x.clone()
    grid = _rotation_grid(angles.to(x.device), h, w)  # (N, H, W, 2)
    img = x.to(torch.float32)  # (N, C, H, W)
    if fill != 0:  # torchvision's mask channel marks where the grid fell outside the image
        img = torch.cat([img, torch.ones_like(img[:, :1])], dim=1)  # (N, C+1, H, W)
    out = F.grid_sample(img, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    if fill != 0:
        out, mask = out[:, :c], out[:, c:]  # (N, C, H, W), (N, 1, H, W)
        out = torch.where(mask < 0.5, torch.full_like(out, float(fill)), out)
    return out.round_().to(torch.uint8)


def random_rotation(
    x: Tensor,
    degrees: float | Sequence[float],
    generator: Generator = None,
    fill: int = 0,
    return_params: bool = False,
) -> Tensor | tuple[Tensor, dict[str, Tensor]]:
    """torchvision RandomRotation(degrees, fill=fill) per image: angle uniform in [-d, d], nearest, no expand.

    `return_params` adds {"angle": (N,) float32 degrees}; `float(angle[i])` reproduces image i with torchvision.
    """
    _check_batch(x)
    angles = rotation_params(x.shape[0], degrees, generator, _param_device(x, generator)).to(x.device)  # (N,)
    out = rotate_batch(x, angles, fill)
    return (out, {"angle": angles}) if return_params else out


# --------------------------------------------------------------------------------------------------------------------
# Resize, normalize


def resize(x: Tensor, size: int | tuple[int, int]) -> Tensor:
    """Bilinear, antialiased resize of a whole batch, uint8 in and out.

    Delegates to torchvision's `resize`, which is already batched (on CPU it runs the native uint8 kernel, on CUDA it
    goes through float and rounds), so it is torchvision's result by construction. An int resizes the smaller edge.
    """
    from torchvision.transforms.v2 import InterpolationMode
    from torchvision.transforms.v2 import functional as TF

    _check_batch(x)
    size_list = [size] if isinstance(size, int) else list(size)
    if list(x.shape[-2:]) == size_list:
        return x
    return TF.resize(x, size_list, interpolation=InterpolationMode.BILINEAR, antialias=True)


def normalize(
    x: Tensor,
    mean: Sequence[float] | Tensor,
    std: Sequence[float] | Tensor,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """uint8 (N, C, H, W) -> float (x / 255 - mean) / std, per channel: ToTensor() + Normalize(mean, std), batched.

    The same ops in the same order as torchvision (`div(255)`, then `sub_(mean).div_(std)`), so equal bit for bit.
    """
    if not isinstance(std, Tensor) and any(float(torch.tensor(v, dtype=dtype)) == 0 for v in std):
        # checked on the host: with tensors already on the device (the trainer's), no per-batch sync
        raise ValueError(f"std evaluated to zero after conversion to {dtype}, leading to division by zero.")
    mean_t = torch.as_tensor(mean, dtype=dtype, device=x.device).view(1, -1, 1, 1)  # (1, C, 1, 1)
    std_t = torch.as_tensor(std, dtype=dtype, device=x.device).view(1, -1, 1, 1)  # (1, C, 1, 1)
    return x.to(dtype).div(_UINT8_MAX).sub_(mean_t).div_(std_t)  # (N, C, H, W)


# --------------------------------------------------------------------------------------------------------------------
# pipeline

Step = Callable[[Tensor, Generator], Tensor]


def _only(name: str, kwargs: dict[str, Any], allowed: set[str], defaults: dict[str, Any]) -> None:
    """Reject arguments this module does not implement rather than silently ignoring them.

    `allowed` are implemented arguments; `defaults` are torchvision arguments accepted only at the value given there
    (an InterpolationMode compares by its `.value`, e.g. "nearest").
    """
    unknown = set(kwargs) - allowed - set(defaults)
    if unknown:
        raise ValueError(f"{name}: unsupported argument(s) {sorted(unknown)}")
    for key, default in defaults.items():
        value = getattr(kwargs.get(key, default), "value", kwargs.get(key, default))
        if (value.lower() if isinstance(value, str) else value) != default:
            raise ValueError(
                f"{name}: only {key}={default!r} is supported by batched augmentation, got {kwargs[key]!r}"
            )


def _make_random_crop(kw: dict[str, Any], size: tuple[int, int]) -> Step:
    _only("RandomCrop", kw, {"size", "padding", "fill"}, {"pad_if_needed": False, "padding_mode": "constant"})
    crop = _pair(kw.get("size", size), "RandomCrop size")
    padding = kw.get("padding") or 0
    _parse_padding(padding)  # validate now
    fill = int(kw.get("fill", 0))
    return lambda x, g: random_crop(x, crop, padding, g, fill)


def _make_flip(kw: dict[str, Any], fn: Callable[..., Tensor], name: str) -> Step:
    _only(name, kw, {"p"}, {})
    p = float(kw.get("p", 0.5))
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{name}: p must be in [0, 1], got {p}")
    return lambda x, g: fn(x, p, g)


def _make_color_jitter(kw: dict[str, Any], size: tuple[int, int]) -> Step:
    _only("ColorJitter", kw, set(JITTER_OPS), {})
    args = {name: kw.get(name, 0) for name in JITTER_OPS}
    if all(r is None for r in _jitter_ranges(**args).values()):
        return lambda x, g: x  # ColorJitter() does nothing: cost nothing
    return lambda x, g: color_jitter(x, generator=g, **args)


def _make_random_rotation(kw: dict[str, Any], size: tuple[int, int]) -> Step:
    _only("RandomRotation", kw, {"degrees", "fill"}, {"interpolation": "nearest", "expand": False, "center": None})
    if "degrees" not in kw:
        raise ValueError("RandomRotation: missing argument 'degrees'")
    degrees = kw["degrees"]
    _parse_degrees(degrees)
    fill = int(kw.get("fill", 0))
    return lambda x, g: random_rotation(x, degrees, g, fill)


def _make_resize(kw: dict[str, Any], size: tuple[int, int]) -> Step:
    _only("Resize", kw, {"size"}, {"interpolation": "bilinear", "antialias": True, "max_size": None})
    target = kw.get("size", size)
    target = target if isinstance(target, int) else _pair(target, "Resize size")
    return lambda x, g: resize(x, target)


_FACTORIES: dict[str, Callable[[dict[str, Any], tuple[int, int]], Step]] = {
    "RandomCrop": _make_random_crop,
    "RandomHorizontalFlip": lambda kw, size: _make_flip(kw, random_hflip, "RandomHorizontalFlip"),
    "RandomVerticalFlip": lambda kw, size: _make_flip(kw, random_vflip, "RandomVerticalFlip"),
    "ColorJitter": _make_color_jitter,
    "RandomRotation": _make_random_rotation,
    "Resize": _make_resize,
}
SUPPORTED_TRANSFORMS = tuple(_FACTORIES)


class BatchAugment:
    """A spec's list of torchvision-named transforms, applied in order to whole uint8 batches.

    `transforms` is [(torchvision class name, {argument name: value})]; `size` is the (H, W) images have in the
    pipeline, the default `size` of RandomCrop/Resize. Arguments are checked here, so a bad spec fails before
    training. The output stays uint8; normalize once at the end (`normalize`).
    """

    def __init__(self, transforms: Sequence[tuple[str, dict[str, Any]]], size: tuple[int, int]):
        self.size = _pair(size, "size")
        self.transforms = [(name, dict(kwargs or {})) for name, kwargs in transforms]
        self._steps: list[Step] = []
        for name, kwargs in self.transforms:
            if name not in _FACTORIES:
                raise ValueError(f"unknown transform {name!r}; supported: {', '.join(SUPPORTED_TRANSFORMS)}")
            self._steps.append(_FACTORIES[name](kwargs, self.size))

    def __call__(self, x: Tensor, generator: Generator = None) -> Tensor:
        _check_batch(x)
        for step in self._steps:
            x = step(x, generator)  # (N, C, H', W') uint8
        return x

    def __len__(self) -> int:
        return len(self._steps)

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}({', '.join(f'{k}={v!r}' for k, v in kw.items())})" for name, kw in self.transforms)
        return f"BatchAugment([{inner}], size={self.size})"
