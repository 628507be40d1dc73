"""uint8 image batches, as the data set is held in memory: the checks and random draws every augmentation shares,
and the conversion to float that normalization makes."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

Generator = torch.Generator | None
UINT8_MAX = 255.0


def check_batch(x: Tensor) -> None:
    """Every op takes a uint8 batch (N, C, H, W) with C = 1 or 3, as the data set is held in memory."""
    if x.ndim != 4:
        raise ValueError(f"expected a batch of shape (N, C, H, W), got shape {tuple(x.shape)}")
    if x.dtype != torch.uint8:
        raise ValueError(f"expected a uint8 batch, got {x.dtype}")
    if x.shape[1] not in (1, 3):
        raise ValueError(f"expected 1 or 3 channels, got {x.shape[1]}")


def param_device(x: Tensor, generator: Generator) -> torch.device:
    """Random numbers are drawn where the generator lives (a CUDA generator can only fill CUDA tensors)."""
    return generator.device if generator is not None else x.device


def uniform(n: int, low: float, high: float, device: torch.device | str, generator: Generator) -> Tensor:
    """(n,) float32 uniform in [low, high), drawn like torchvision's `torch.empty(1).uniform_(low, high)`."""
    return torch.empty(n, dtype=torch.float32, device=device).uniform_(low, high, generator=generator)


def pair(size: int | Sequence[int], name: str) -> tuple[int, int]:
    """torchvision's size convention: an int means a square."""
    if isinstance(size, int):
        return size, size
    if isinstance(size, Sequence) and len(size) == 1:
        return int(size[0]), int(size[0])
    if isinstance(size, Sequence) and len(size) == 2:
        return int(size[0]), int(size[1])
    raise ValueError(f"{name} must be an int or a pair (height, width), got {size!r}")


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
    return x.to(dtype).div(UINT8_MAX).sub_(mean_t).div_(std_t)  # (N, C, H, W)


def channel_stats(
    mean: Sequence[float], std: Sequence[float], channels: int, device: torch.device
) -> tuple[Tensor, Tensor]:
    """Normalize's mean and std per channel, as float32 on `device` (there once, not copied every batch): one value
    (or equal values) apply to every channel of the data set."""
    if len(mean) != channels and len(set(mean)) == 1 and len(set(std)) == 1:
        mean, std = (mean[0],) * channels, (std[0],) * channels
    return torch.tensor(tuple(mean), dtype=torch.float32, device=device), torch.tensor(
        tuple(std), dtype=torch.float32, device=device
    )
