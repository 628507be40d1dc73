"""Image data sets, by name or by path: `load_data` returns the whole data set as an `ImageData`.

Every loader holds the whole data set as uint8 tensors in memory, so the trainer can batch, shuffle and augment on
the device without a DataLoader. That is cheap for the data sets netspec targets (the largest, Tiny ImageNet, is
about 1.4 GB decoded) and it means every pixel is decoded once per process (or once ever, for Tiny ImageNet, thanks
to its cache). The formats are read in `readers` (CIFAR, MNIST), `folders` (Tiny ImageNet, image folders) and
`synthetic` (shapes).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ..errors import DataError, UsageError
from ..lang import DATA_NAMES, data_key, did_you_mean
from .folders import load_image_folder, load_tiny_imagenet
from .images import ImageData, check_size, resize_images
from .readers import CIFAR, load_cifar, load_mnist
from .synthetic import make_shapes

__all__ = ["ImageData", "dataset_key", "default_data_dir", "load_data", "make_shapes"]


def default_data_dir() -> Path:
    """`$NETSPEC_DATA` if set, else `~/.cache/netspec`: one place so downloads are shared between runs."""
    env = os.environ.get("NETSPEC_DATA")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "netspec"


def load_data(
    name: str,
    data_dir: str | Path | None = None,
    *,
    size: tuple[int, int] | None = None,
    train_limit: int | None = None,
    test_limit: int | None = None,
    download: bool = True,
    seed: int = 0,
) -> ImageData:
    """Load a data set by name (one of `netspec.lang.DATA_NAMES`) or an image-folder tree by path.

    `size=(H, W)` resizes every image once, here, so the trainer never resizes per batch. The limits keep the first N
    images of each split and are applied before decoding/resizing wherever the format allows, so quick runs are quick.
    `download=False` never touches the network. `seed` only matters for `shapes`.
    """
    size = check_size(size)
    train_limit = _check_limit("train_limit", train_limit)
    test_limit = _check_limit("test_limit", test_limit)
    root = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    key = dataset_key(name)
    if key is None:
        data = load_image_folder(Path(name).expanduser(), str(name), size, train_limit, test_limit)
    elif key == "shapes":
        data = make_shapes(size or (32, 32), train_limit, test_limit, seed)
    elif key in ("cifar10", "cifar100"):
        data = load_cifar(CIFAR[key], root, train_limit, test_limit, download)
    elif key in ("mnist", "fashion-mnist"):
        data = load_mnist(key, root, train_limit, test_limit, download)
    else:  # tiny-imagenet
        data = load_tiny_imagenet(root, train_limit, test_limit)
    if size is not None and data.image_size != size:
        before = data.image_size
        data.train_images = resize_images(data.train_images, size)
        data.test_images = resize_images(data.test_images, size)
        data.notes.append(f"resized {before[0]}x{before[1]} -> {size[0]}x{size[1]}")
    return _checked(data)


def dataset_key(name: str) -> str | None:
    """The canonical data set name, or None when `name` is a folder path. Built-in names win over same-named folders
    in the current directory (write `./shapes` for the folder)."""
    if not isinstance(name, (str, os.PathLike)):
        raise UsageError(f"data set name must be a string, got {type(name).__name__}")
    text = os.fspath(name)
    key = data_key(text)
    if key is not None:
        return key
    if "/" in text or os.sep in text or os.path.isdir(text):
        return None
    hint = did_you_mean(text.strip().lower().replace("_", "-"), DATA_NAMES)
    raise UsageError(
        f"unknown data set {text!r}: " + (f"{hint} (" if hint else "") + f"expected one of "
        f"{', '.join(DATA_NAMES)}, or the path of an image folder with train/ and test/ subfolders"
        + (")" if hint else "")
    )


def _check_limit(what: str, limit: Any) -> int | None:
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise UsageError(f"{what} must be a positive integer, got {limit!r}")
    return limit


def _checked(data: ImageData) -> ImageData:
    """Enforce the ImageData contract at one place, so a reader bug cannot reach the trainer as a shape error."""
    for split in ("train", "test"):
        images: torch.Tensor = getattr(data, f"{split}_images")
        labels: torch.Tensor = getattr(data, f"{split}_labels")
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise DataError(
                f"{data.name}: {split} images are {images.dtype} {tuple(images.shape)}, expected uint8 (N, C, H, W)"
            )
        if labels.dtype != torch.int64:
            labels = labels.to(torch.int64)
        if len(labels) != len(images):
            raise DataError(f"{data.name}: {len(images)} {split} images but {len(labels)} labels")
        if len(images) == 0:
            raise DataError(f"{data.name}: the {split} split has no images")
        if int(labels.min()) < 0 or int(labels.max()) >= len(data.classes):
            raise DataError(f"{data.name}: {split} label out of range 0..{len(data.classes) - 1}")
        setattr(data, f"{split}_images", images.contiguous())
        setattr(data, f"{split}_labels", labels.contiguous())
    if data.train_images.shape[1:] != data.test_images.shape[1:]:
        raise DataError(
            f"{data.name}: train images are {tuple(data.train_images.shape[1:])} but test images are "
            f"{tuple(data.test_images.shape[1:])}"
        )
    return data
