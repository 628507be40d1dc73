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
  antialiased resizing (Resize) are implemented: the spec's transform models (`netspec.lang.TRANSFORMS`) offer no
  other option, and pydantic refuses any argument they do not declare.
* When an op is a no-op (e.g. `color_jitter()` with all factors 0), the input tensor itself is returned.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..lang import ArgModel

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

from .batch import Generator, check_batch, normalize, pair, param_device, uniform
from .color import JITTER_OPS, apply_jitter, color_jitter, jitter_params, jitter_ranges

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
    check_batch(x)
    size = pair(size, "size")
    xp = pad(x, padding, fill)  # (N, C, Hp, Wp)
    tops, lefts = crop_params(x.shape[0], (xp.shape[2], xp.shape[3]), size, generator, param_device(x, generator))
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


def _random_flip(
    x: Tensor, p: float, generator: Generator, return_params: bool, dim: int
) -> Tensor | tuple[Tensor, dict[str, Tensor]]:
    check_batch(x)
    mask = flip_params(x.shape[0], p, generator, param_device(x, generator)).to(x.device)  # (N,)
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
    return uniform(n, lo, hi, device, generator)


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
    check_batch(x)
    angles = rotation_params(x.shape[0], degrees, generator, param_device(x, generator)).to(x.device)  # (N,)
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

    check_batch(x)
    size_list = [size] if isinstance(size, int) else list(size)
    if list(x.shape[-2:]) == size_list:
        return x
    return TF.resize(x, size_list, interpolation=InterpolationMode.BILINEAR, antialias=True)


# --------------------------------------------------------------------------------------------------------------------
# pipeline

Step = Callable[[Tensor, Generator], Any]  # a uint8 batch in, the augmented uint8 batch out


def _random_crop(t: Any, size: tuple[int, int]) -> Step:
    crop = pair(t.size if t.size is not None else size, "RandomCrop size")
    return lambda x, g: random_crop(x, crop, t.padding, g)


def _color_jitter(t: Any, size: tuple[int, int]) -> Step:
    args = {name: getattr(t, name) for name in JITTER_OPS}
    if all(r is None for r in jitter_ranges(**args).values()):
        return lambda x, g: x  # ColorJitter() does nothing: cost nothing
    return lambda x, g: color_jitter(x, generator=g, **args)


def _resize(t: Any, size: tuple[int, int]) -> Step:
    target = t.size if isinstance(t.size, int) else pair(t.size, "Resize size")
    return lambda x, g: resize(x, target)


# the transforms of lang's closed table (`netspec.lang.TRANSFORMS`), each made from its validated arguments
_STEPS: dict[str, Callable[[Any, tuple[int, int]], Step]] = {
    "RandomCrop": _random_crop,
    "RandomHorizontalFlip": lambda t, size: lambda x, g: random_hflip(x, t.p, g),
    "RandomVerticalFlip": lambda t, size: lambda x, g: random_vflip(x, t.p, g),
    "ColorJitter": _color_jitter,
    "RandomRotation": lambda t, size: lambda x, g: random_rotation(x, t.degrees, g),
    "Resize": _resize,
}


class BatchAugment:
    """A spec's list of transforms, applied in order to whole uint8 batches.

    `transforms` are the train section's transforms, `netspec.lang.TRANSFORMS` models whose arguments pydantic has
    already validated (`TRANSFORMS["RandomCrop"](padding=4)`); `size` is the (H, W) images have in the pipeline,
    the default `size` of RandomCrop. The output stays uint8; normalize once at the end (`normalize`).
    """

    def __init__(self, transforms: Sequence[ArgModel], size: tuple[int, int]):
        self.size = pair(size, "size")
        self.transforms = tuple(transforms)
        self._steps: list[Step] = [_STEPS[t.kind()](t, self.size) for t in self.transforms]

    def __call__(self, x: Tensor, generator: Generator = None) -> Tensor:
        check_batch(x)
        for step in self._steps:
            x = step(x, generator)  # (N, C, H', W') uint8
        return x

    def __len__(self) -> int:
        return len(self._steps)

    def __repr__(self) -> str:
        return f"BatchAugment({list(self.transforms)!r}, size={self.size})"
