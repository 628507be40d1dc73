"""The in-memory data set every reader returns (`ImageData`), and the decoding and resizing the readers share."""

from __future__ import annotations

import concurrent.futures
import io
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DataError, UsageError

IMAGE_EXTENSIONS: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp"})

# Images resized per call of torchvision's resize: bounds the float temporaries resize makes.
_RESIZE_CHUNK = 1024


@dataclass(repr=False)
class ImageData:
    """A whole image-classification data set in memory: uint8 (N, C, H, W) images and int64 labels per split."""

    name: str
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    classes: list[str]
    notes: list[str] = field(default_factory=list)

    @property
    def channels(self) -> int:
        return int(self.train_images.shape[1])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.train_images.shape[2]), int(self.train_images.shape[3])

    def __repr__(self) -> str:
        # the default dataclass repr would print the tensors
        h, w = self.image_size
        return (
            f"ImageData(name={self.name!r}, train={len(self.train_labels)}, test={len(self.test_labels)}, "
            f"channels={self.channels}, size={h}x{w}, classes={self.num_classes})"
        )


def check_size(size: Any) -> tuple[int, int] | None:
    if size is None:
        return None
    if isinstance(size, int) and not isinstance(size, bool):
        size = (size, size)
    try:
        h, w = size
    except (TypeError, ValueError):
        raise UsageError(f"size must be (height, width), got {size!r}") from None
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (h, w)):
        raise UsageError(f"size must be two positive integers, got {size!r}")
    return int(h), int(w)


def resize_images(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize uint8 (N, C, H, W) images with antialiasing, in chunks so the float temporaries stay small."""
    from torchvision.transforms.v2 import functional as F  # slow import, only when resizing

    if tuple(images.shape[-2:]) == tuple(size):
        return images
    out = torch.empty((images.shape[0], images.shape[1], *size), dtype=torch.uint8)
    for start in range(0, images.shape[0], _RESIZE_CHUNK):
        chunk = images[start : start + _RESIZE_CHUNK]
        out[start : start + len(chunk)] = F.resize(chunk, list(size), antialias=True)
    return out


def take(limit: int | None, items: Sequence[Any]) -> Sequence[Any]:
    return items if limit is None else items[:limit]


def interleave(groups: Sequence[Sequence[Any]]) -> list[Any]:
    """Round-robin over classes (first item of each class, then the second, ...), so that keeping the first N
    images of a class-sorted source still gives every class."""
    out: list[Any] = []
    longest = max((len(g) for g in groups), default=0)
    for i in range(longest):
        out.extend(g[i] for g in groups if i < len(g))
    return out


_GRAY_MODES = frozenset({"1", "L", "LA"})
_DEEP_MODES = ("I", "F")  # and I;16 variants: PIL would clip them to 8 bits, not rescale


def decode_image(data: bytes | Path, where: str, force_rgb: bool) -> np.ndarray:
    """Decode one image file to uint8 (C, H, W): 1 channel for grayscale files (unless `force_rgb`), else RGB
    (alpha is dropped, palettes expanded, animations give their first frame)."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else data) as img:
            if img.mode.startswith(_DEEP_MODES):
                raise DataError(
                    f"{where}: {img.mode} images (16-bit or float) are not supported; convert them to 8-bit"
                )
            gray = not force_rgb and img.mode in _GRAY_MODES
            arr = np.asarray(img.convert("L" if gray else "RGB"))
    except DataError:
        raise
    except Exception as e:  # PIL raises OSError, ValueError, SyntaxError, DecompressionBombError, ...
        raise DataError(f"{where}: cannot decode image ({type(e).__name__}: {e})") from None
    return arr[None] if gray else arr.transpose(2, 0, 1)


def resize_one(arr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if arr.shape[1:] == size:
        return arr
    return resize_images(torch.from_numpy(arr.copy())[None], size)[0].numpy()  # copy: PIL's arrays are read-only


def workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def parallel_map(fn: Callable[[int], Any], indices: range) -> list[Any]:
    """fn(i) for each i, on a thread pool: PIL releases the GIL while decoding, so threads scale with cores
    without the start-up and pickling costs of processes."""
    if not indices:
        return []
    with concurrent.futures.ThreadPoolExecutor(workers()) as pool:
        return list(pool.map(fn, indices))
