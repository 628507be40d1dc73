"""ColorJitter on whole uint8 batches (the limits are stated in `netspec.training.augment`).

The kernels repeat torchvision.transforms.v2.functional._color's uint8 arithmetic op for op (the same float32
roundings), with a per-image factor of shape (M, 1, 1, 1) instead of a Python float.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from .batch import UINT8_MAX, Generator, check_batch, param_device, uniform

Jitter = float | Sequence[float] | None  # a number v means [c - v, c + v] around the neutral factor c

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


def jitter_ranges(
    brightness: Jitter, contrast: Jitter, saturation: Jitter, hue: Jitter
) -> dict[str, tuple[float, float] | None]:
    """Each op's range of factors, as torchvision's ColorJitter checks them; None: the op is off."""
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
    ranges = jitter_ranges(brightness, contrast, saturation, hue)
    params: dict[str, Tensor | None] = {"order": None}
    if all(r is None for r in ranges.values()):
        return {**params, **dict.fromkeys(JITTER_OPS)}
    # argsort of i.i.d. uniforms is a uniformly random permutation (ties have probability ~0)
    params["order"] = torch.rand(n, 4, generator=generator, device=device).argsort(dim=1)  # (N, 4)
    for name in JITTER_OPS:
        r = ranges[name]
        params[name] = None if r is None else uniform(n, r[0], r[1], device, generator)  # (N,)
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
    return out.clamp_(0, UINT8_MAX).to(torch.uint8)


def _adjust_brightness(x: Tensor, f: Tensor) -> Tensor:
    return x.mul(f).clamp_(0, UINT8_MAX).to(torch.uint8)  # (M, C, H, W)


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
    img = x.to(torch.float32).mul_(1.0 / UINT8_MAX)  # (M, 3, H, W) in [0, 1], torchvision's to_dtype(scale=True)
    h, s, v = _rgb_to_hsv(img)
    h = h.add_(f.view(-1, 1, 1)).remainder_(1.0)
    rgb = _hsv_to_rgb(h, s, v)
    return rgb.mul_(UINT8_MAX + 1.0 - 1e-3).to(torch.uint8)  # torchvision's float -> uint8 conversion


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
    factors = {name: f.to(x.device) for name in JITTER_OPS if (f := params[name]) is not None}  # (N,) each
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
    check_batch(x)
    params = jitter_params(x.shape[0], brightness, contrast, saturation, hue, generator, param_device(x, generator))
    out = apply_jitter(x, params)
    return (out, params) if return_params else out
