"""Image data sets for netspec: readers for the standard on-disk formats, and a built-in offline data set.

Every loader returns an `ImageData` holding the whole data set as uint8 tensors in memory, so the trainer can batch,
shuffle and augment on the device without a DataLoader. That is cheap for the data sets netspec targets (the largest,
Tiny ImageNet, is about 1.4 GB decoded) and it means every pixel is decoded once per process (or once ever, for Tiny
ImageNet, thanks to its cache).

The standard files are read by our own small readers rather than through torchvision's Dataset classes: that keeps
the errors ours (every `DataError` names the file), lets `train_limit`/`test_limit` skip work, and lets us unpickle
CIFAR with a restricted unpickler. torchvision is used only to download.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import gzip
import hashlib
import io
import logging
import math
import os
import pickle
import struct
import tarfile
import threading
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DataError, UsageError

log = logging.getLogger("netspec.data")

DATASETS: tuple[str, ...] = ("cifar10", "cifar100", "mnist", "fashion-mnist", "tiny-imagenet", "shapes")

# Other spellings accepted for the names in DATASETS (after lower-casing and "_" -> "-").
ALIASES: dict[str, str] = {
    "cifar-10": "cifar10",
    "cifar-100": "cifar100",
    "fashionmnist": "fashion-mnist",
    "tinyimagenet": "tiny-imagenet",
    "tiny-imagenet-200": "tiny-imagenet",
}

IMAGE_EXTENSIONS: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp"})

# Where Debian's `dataset-fashion-mnist` package installs the four gzipped idx files. Module-level so tests
# can point it elsewhere.
SYSTEM_DIRS: dict[str, tuple[Path, ...]] = {
    "mnist": (),
    "fashion-mnist": (Path("/usr/share/datasets/fashion-mnist"),),
}

SHAPES_CLASSES: tuple[str, ...] = (
    "circle",
    "square",
    "triangle",
    "cross",
    "ring",
    "diamond",
    "hbar",
    "vbar",
    "star",
    "ellipse",
)
SHAPES_TRAIN = 5000
SHAPES_TEST = 1000

TINY_IMAGENET_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
_TINY_DIR = "tiny-imagenet-200"
_TINY_CACHE_VERSION = 1

# Images resized per call of torchvision's resize: bounds the float temporaries resize makes.
_RESIZE_CHUNK = 1024
# Images decoded per batch of thread-pool work: bounds the memory of undecoded bytes held at once.
_DECODE_CHUNK = 2048


# --------------------------------------------------------------------------------------------------------------------
# The result type


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


def default_data_dir() -> Path:
    """`$NETSPEC_DATA` if set, else `~/.cache/netspec`: one place so downloads are shared between runs."""
    env = os.environ.get("NETSPEC_DATA")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "netspec"


# --------------------------------------------------------------------------------------------------------------------
# Entry point


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
    """Load a data set by name (one of `DATASETS`) or an image-folder tree by path.

    `size=(H, W)` resizes every image once, here, so the trainer never resizes per batch. The limits keep the first N
    images of each split and are applied before decoding/resizing wherever the format allows, so quick runs are quick.
    `download=False` never touches the network. `seed` only matters for `shapes`.
    """
    size = _check_size(size)
    train_limit = _check_limit("train_limit", train_limit)
    test_limit = _check_limit("test_limit", test_limit)
    root = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    key = dataset_key(name)
    if key is None:
        data = _load_image_folder(Path(name).expanduser(), str(name), size, train_limit, test_limit)
    elif key == "shapes":
        data = make_shapes(size or (32, 32), train_limit, test_limit, seed)
    elif key in ("cifar10", "cifar100"):
        data = _load_cifar(_CIFAR[key], root, train_limit, test_limit, download)
    elif key in ("mnist", "fashion-mnist"):
        data = _load_mnist(key, root, train_limit, test_limit, download)
    else:  # tiny-imagenet
        data = _load_tiny_imagenet(root, train_limit, test_limit)
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
    key = text.strip().lower().replace("_", "-")
    key = ALIASES.get(key, key)
    if key in DATASETS:
        return key
    if "/" in text or os.sep in text or os.path.isdir(text):
        return None
    from ..lang import did_you_mean

    hint = did_you_mean(key, DATASETS)
    raise UsageError(
        f"unknown data set {text!r}: " + (f"{hint} (" if hint else "") + f"expected one of "
        f"{', '.join(DATASETS)}, or the path of an image folder with train/ and test/ subfolders"
        + (")" if hint else "")
    )


def _check_size(size: Any) -> tuple[int, int] | None:
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


def _take(limit: int | None, items: Sequence[Any]) -> Sequence[Any]:
    return items if limit is None else items[:limit]


def _interleave(groups: Sequence[Sequence[Any]]) -> list[Any]:
    """Round-robin over classes (first item of each class, then the second, ...), so that keeping the first N
    images of a class-sorted source still gives every class."""
    out: list[Any] = []
    longest = max((len(g) for g in groups), default=0)
    for i in range(longest):
        out.extend(g[i] for g in groups if i < len(g))
    return out


def _download_hint(what: str, where: str, url: str, download: bool, error: BaseException | None) -> str:
    why = (
        "downloading is disabled"
        if not download
        else f"the download failed ({type(error).__name__}: {error})"
        if error is not None
        else "the download did not produce the expected files"
    )
    return f"{what} not found; {why}.\n  put {where}\n  get it from {url}"


def _torchvision_download(cls_name: str, root: Path) -> None:
    """Fetch a data set with torchvision (its mirrors and checksums), then we read the files ourselves."""
    import torchvision.datasets

    root.mkdir(parents=True, exist_ok=True)
    log.info("downloading %s into %s", cls_name, root)
    getattr(torchvision.datasets, cls_name)(root=str(root), train=True, download=True)


# --------------------------------------------------------------------------------------------------------------------
# CIFAR-10 / CIFAR-100: python pickles, in a folder or straight from the .tar.gz


@dataclass(frozen=True)
class _CifarSpec:
    key: str
    title: str
    folder: str
    archive: str
    train_files: tuple[str, ...]
    test_file: str
    meta_file: str
    names_key: str
    labels_key: str
    num_classes: int
    tv_class: str
    url: str


_CIFAR = {
    "cifar10": _CifarSpec(
        "cifar10",
        "CIFAR-10",
        "cifar-10-batches-py",
        "cifar-10-python.tar.gz",
        tuple(f"data_batch_{i}" for i in range(1, 6)),
        "test_batch",
        "batches.meta",
        "label_names",
        "labels",
        10,
        "CIFAR10",
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    ),
    "cifar100": _CifarSpec(
        "cifar100",
        "CIFAR-100",
        "cifar-100-python",
        "cifar-100-python.tar.gz",
        ("train",),
        "test",
        "meta",
        "fine_label_names",
        "fine_labels",
        100,
        "CIFAR100",
        "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
    ),
}


def _numpy_globals() -> dict[tuple[str, str], Any]:
    """The only globals a CIFAR pickle needs: numpy array reconstruction and the bytes codec of protocol 2."""
    import codecs

    try:  # numpy >= 2 moved numpy.core to numpy._core; old files still name numpy.core
        from numpy._core import multiarray, numeric
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray, numeric  # type: ignore[no-redef]
    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): codecs.encode,
    }
    for mod in ("numpy.core", "numpy._core"):
        allowed[(f"{mod}.multiarray", "_reconstruct")] = multiarray._reconstruct
        allowed[(f"{mod}.numeric", "_frombuffer")] = numeric._frombuffer  # protocol-5 array pickles
    return allowed


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only. A pickle can call any importable function while it loads
    (that is how `os.system` exploits work), so every global outside a short allow-list is refused before it is
    imported, let alone called."""

    _allowed: dict[tuple[str, str], Any] | None = None

    def __init__(self, file: io.BufferedIOBase | io.BytesIO, where: str):
        super().__init__(file, encoding="bytes")
        self.where = where

    def find_class(self, module: str, name: str) -> Any:
        if RestrictedUnpickler._allowed is None:
            RestrictedUnpickler._allowed = _numpy_globals()
        obj = RestrictedUnpickler._allowed.get((module, name))
        if obj is None:
            raise DataError(
                f"{self.where}: refusing to unpickle {module}.{name}: a CIFAR file contains only "
                f"arrays, lists and strings, so this file is not one (and may be malicious)"
            )
        return obj

    def persistent_load(self, pid: Any) -> Any:
        raise DataError(f"{self.where}: refusing to unpickle a persistent reference")


def restricted_unpickle(blob: bytes, where: str) -> Any:
    """Unpickle `blob` with `RestrictedUnpickler`; any failure becomes a DataError naming `where`."""
    try:
        return RestrictedUnpickler(io.BytesIO(blob), where).load()
    except DataError:
        raise
    except Exception as e:  # a corrupt pickle can raise nearly anything (EOFError, ValueError, struct.error, ...)
        raise DataError(f"{where}: not a readable pickle ({type(e).__name__}: {e})") from None


def _entry(d: Any, key: str, where: str) -> Any:
    if not isinstance(d, dict):
        raise DataError(f"{where}: expected a pickled dict, found {type(d).__name__}")
    for k in (key.encode(), key):
        if k in d:
            return d[k]
    raise DataError(f"{where}: no {key!r} entry (has {', '.join(repr(k) for k in list(d)[:8])})")


def _cifar_batch(blob: bytes, where: str, spec: _CifarSpec) -> tuple[np.ndarray, np.ndarray]:
    """One pickled batch -> uint8 (n, 3, 32, 32) images (rows are row-major CHW) and int64 labels."""
    d = restricted_unpickle(blob, where)
    data = _entry(d, "data", where)
    labels = _entry(d, spec.labels_key, where)
    arr = np.asarray(data) if isinstance(data, np.ndarray) else None
    if arr is None or arr.dtype != np.uint8 or arr.ndim != 2 or arr.shape[1] != 3 * 32 * 32:
        desc = f"{arr.dtype} {arr.shape}" if arr is not None else type(data).__name__
        raise DataError(f"{where}: 'data' is {desc}, expected a uint8 array of N x 3072")
    try:
        lab = np.asarray(labels)
    except Exception:
        lab = np.asarray([], dtype=object)
    if lab.ndim != 1 or not np.issubdtype(lab.dtype, np.integer) or len(lab) != len(arr):
        raise DataError(f"{where}: {spec.labels_key!r} must be {len(arr)} integers, one per image")
    bad = np.flatnonzero((lab < 0) | (lab >= spec.num_classes))
    if len(bad):
        raise DataError(
            f"{where}: label {int(lab[bad[0]])} of image {int(bad[0])} is out of range 0..{spec.num_classes - 1}"
        )
    return arr.reshape(-1, 3, 32, 32), lab.astype(np.int64)


def _cifar_classes(blob: bytes, where: str, spec: _CifarSpec) -> list[str]:
    names = _entry(restricted_unpickle(blob, where), spec.names_key, where)
    if not isinstance(names, (list, tuple)) or len(names) != spec.num_classes:
        raise DataError(f"{where}: {spec.names_key!r} must list {spec.num_classes} class names")
    return [n.decode("utf-8", "replace") if isinstance(n, bytes) else str(n) for n in names]


def _read_tar_members(archive: Path, wanted: Iterable[str]) -> dict[str, bytes]:
    """Read the named members in one sequential pass: a .tar.gz has no index, so seeking member by member would
    decompress the archive again for each one."""
    wanted = set(wanted)
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                name = member.name.removeprefix("./")
                if name in wanted and member.isfile():
                    f = tar.extractfile(member)
                    if f is not None:
                        found[name] = f.read()
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise DataError(
            f"{archive}: cannot read the archive ({type(e).__name__}: {e}); it may be truncated: download it again"
        ) from None
    return found


def _load_cifar(
    spec: _CifarSpec, root: Path, train_limit: int | None, test_limit: int | None, download: bool
) -> ImageData:
    folder, archive = root / spec.folder, root / spec.archive
    names = [*spec.train_files, spec.test_file, spec.meta_file]
    error: BaseException | None = None
    if not _cifar_complete(folder, names) and not archive.is_file() and download:
        try:
            _torchvision_download(spec.tv_class, root)
        except Exception as e:  # network errors come in many types (URLError, OSError, RuntimeError, ...)
            error = e
    if _cifar_complete(folder, names):
        source = f"{folder}/"

        def read(member: str) -> tuple[bytes, str]:
            path = folder / member
            try:
                return path.read_bytes(), str(path)
            except OSError as e:
                raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    elif archive.is_file():
        source = str(archive)
        blobs = _read_tar_members(archive, (f"{spec.folder}/{n}" for n in names))
        for n in names:
            if f"{spec.folder}/{n}" not in blobs:
                raise DataError(
                    f"{archive}: the archive has no member {spec.folder}/{n}; is it the {spec.title} python version?"
                )

        def read(member: str) -> tuple[bytes, str]:
            return blobs[f"{spec.folder}/{member}"], f"{archive}:{spec.folder}/{member}"
    else:
        missing = [n for n in names if not (folder / n).is_file()]
        found = f" ({folder} lacks {', '.join(missing)})" if folder.is_dir() else ""
        raise DataError(
            _download_hint(
                f"{spec.title}{found}",
                f"{spec.archive} at {archive} (or its extracted folder at {folder}/)",
                spec.url,
                download,
                error,
            )
        )
    classes = _cifar_classes(*read(spec.meta_file), spec)
    train_x, train_y = _cifar_split(read, spec.train_files, spec, train_limit)
    test_x, test_y = _cifar_split(read, (spec.test_file,), spec, test_limit)
    return ImageData(
        spec.key,
        torch.from_numpy(train_x),
        torch.from_numpy(train_y),
        torch.from_numpy(test_x),
        torch.from_numpy(test_y),
        classes,
        [f"{spec.title} from {source}"],
    )


def _cifar_complete(folder: Path, names: Iterable[str]) -> bool:
    return folder.is_dir() and all((folder / n).is_file() for n in names)


def _cifar_split(
    read: Callable[[str], tuple[bytes, str]], files: Sequence[str], spec: _CifarSpec, limit: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate batches in order, stopping once `limit` images are in hand (later batch files are not read)."""
    xs, ys, have = [], [], 0
    for member in files:
        x, y = _cifar_batch(*read(member), spec)
        xs.append(x)
        ys.append(y)
        have += len(y)
        if limit is not None and have >= limit:
            break
    x, y = np.concatenate(xs), np.concatenate(ys)  # concatenate copies: the result is writable and contiguous
    if limit is not None and limit < len(y):  # copy the prefix so the rest of the batch can be freed
        x, y = x[:limit].copy(), y[:limit].copy()
    return x, y


# --------------------------------------------------------------------------------------------------------------------
# MNIST / Fashion-MNIST: idx files, gzipped or not

_IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
_MNIST_CLASSES = {
    "mnist": [str(i) for i in range(10)],
    "fashion-mnist": [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ],
}
_MNIST_INFO = {  # title, torchvision class and folder, where to get the files
    "mnist": (
        "MNIST",
        "MNIST",
        "https://ossci-datasets.s3.amazonaws.com/mnist/ (or http://yann.lecun.com/exdb/mnist/)",
    ),
    "fashion-mnist": (
        "Fashion-MNIST",
        "FashionMNIST",
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/ "
        "(or on Debian/Ubuntu: apt-get install dataset-fashion-mnist)",
    ),
}


def _read_exact(f: Any, n: int) -> bytearray:
    """Read up to n bytes into a writable buffer (so numpy/torch can wrap it without a copy or a warning).

    `n` comes from a file's header, which may be corrupt: the buffer grows with the bytes actually read (in chunks
    of at most 64 MiB), so a header claiming terabytes costs nothing before the data runs out.
    """
    buf = bytearray()
    chunk = 1 << 26
    while len(buf) < n:
        start = len(buf)
        buf.extend(bytes(min(n - start, chunk)))  # grow, then fill in place
        view = memoryview(buf)[start:]
        got = 0
        while got < len(view):
            k = f.readinto(view[got:])
            if not k:
                break
            got += k
        del view
        if start + got < len(buf):
            del buf[start + got :]
            break
    return buf


def read_idx(path: Path, ndim: int, limit: int | None = None) -> np.ndarray:
    """Read an idx file (big-endian header: 0, 0, type 0x08 = ubyte, ndim; then ndim uint32 sizes; then data).

    Limits: with `limit`, only the first `limit` items are read, so a truncation past them goes unnoticed; only the
    ubyte type is supported (all MNIST-style files use it).
    """
    opener: Callable[..., Any] = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            head = f.read(4)
            if len(head) < 4 or head[:2] != b"\0\0":
                raise DataError(f"{path}: not an idx file (bad magic number {head.hex() or 'empty'})")
            if head[2] != 0x08:
                raise DataError(f"{path}: idx data type 0x{head[2]:02x} unsupported (only 0x08, unsigned bytes)")
            if head[3] != ndim:
                raise DataError(f"{path}: idx file has {head[3]} dimensions, expected {ndim}")
            raw_dims = f.read(4 * ndim)
            if len(raw_dims) < 4 * ndim:
                raise DataError(f"{path}: truncated idx header")
            dims = struct.unpack(f">{ndim}I", raw_dims)
            keep = dims[0] if limit is None else min(dims[0], limit)
            per_item = math.prod(dims[1:])
            data = _read_exact(f, keep * per_item)
            if len(data) < keep * per_item:
                raise DataError(
                    f"{path}: truncated: the header says {dims[0]} items of {per_item} bytes but the "
                    f"data ends after {len(data) // max(per_item, 1)}; download the file again"
                )
            if keep == dims[0] and f.read(1):
                raise DataError(f"{path}: has data past the {dims[0]} items its header declares")
    except DataError:
        raise
    except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        raise DataError(f"{path}: cannot read ({type(e).__name__}: {e}); it may be truncated or corrupt") from None
    return np.frombuffer(data, dtype=np.uint8).reshape(keep, *dims[1:])


def _mnist_candidates(key: str, root: Path) -> list[Path]:
    tv_folder = _MNIST_INFO[key][1]
    return [root / key, root / key / "raw", root / tv_folder / "raw", *SYSTEM_DIRS.get(key, ())]


def _mnist_files(folder: Path) -> dict[str, Path] | None:
    """The four idx files in `folder` (uncompressed preferred: faster), or None unless all four are there."""
    found = {}
    for role, base in _IDX_FILES.items():
        for candidate in (folder / base, folder / f"{base}.gz"):
            if candidate.is_file():
                found[role] = candidate
                break
        else:
            return None
    return found


def _find_mnist(key: str, root: Path) -> dict[str, Path] | None:
    for folder in _mnist_candidates(key, root):
        files = _mnist_files(folder)
        if files is not None:
            return files
    return None


def _load_mnist(key: str, root: Path, train_limit: int | None, test_limit: int | None, download: bool) -> ImageData:
    title, tv_class, url = _MNIST_INFO[key]
    files = _find_mnist(key, root)
    error: BaseException | None = None
    if files is None and download:
        try:
            _torchvision_download(tv_class, root)
        except Exception as e:  # network errors come in many types
            error = e
        files = _find_mnist(key, root)
    if files is None:
        names = ", ".join(f"{b}.gz" for b in _IDX_FILES.values())
        looked = ", ".join(f"{p}/" for p in _mnist_candidates(key, root))
        raise DataError(
            _download_hint(
                title, f"{names} (gzipped or not) in {root / key}/\n  (looked in {looked})", url, download, error
            )
        )
    images, labels = {}, {}
    for split, limit in (("train", train_limit), ("test", test_limit)):
        x = read_idx(files[f"{split}_images"], 3, limit)
        y = read_idx(files[f"{split}_labels"], 1, limit)
        if len(x) != len(y):
            raise DataError(
                f"{files[f'{split}_images']} has {len(x)} images but {files[f'{split}_labels']} has {len(y)} labels"
            )
        bad = np.flatnonzero(y >= 10)
        if len(bad):
            raise DataError(
                f"{files[f'{split}_labels']}: label {int(y[bad[0]])} of item {int(bad[0])} is out of range 0..9"
            )
        images[split] = torch.from_numpy(x).unsqueeze(1)
        labels[split] = torch.from_numpy(y).to(torch.int64)
    return ImageData(
        key,
        images["train"],
        labels["train"],
        images["test"],
        labels["test"],
        list(_MNIST_CLASSES[key]),
        [f"{title} from {files['train_images'].parent}/"],
    )


# --------------------------------------------------------------------------------------------------------------------
# Image decoding shared by Tiny ImageNet and image folders

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


def _resize_one(arr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if arr.shape[1:] == size:
        return arr
    return resize_images(torch.from_numpy(arr.copy())[None], size)[0].numpy()  # copy: PIL's arrays are read-only


def _workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def _parallel_map(fn: Callable[[int], Any], count: int) -> list[Any]:
    """Run fn(0..count-1) on a thread pool: PIL releases the GIL while decoding, so threads scale with cores
    without the start-up and pickling costs of processes."""
    if count == 0:
        return []
    with concurrent.futures.ThreadPoolExecutor(_workers()) as pool:
        return list(pool.map(fn, range(count)))


# --------------------------------------------------------------------------------------------------------------------
# Tiny ImageNet: JPEGs in a folder or in the zip, decoded once and cached


class _Files:
    """Read-only view of a data set tree that is either a folder or a zip archive, so one reader serves both.
    Use as a context manager: it closes the per-thread zip handles."""

    def __init__(self, root: Path, zip_path: Path | None):
        self.root, self.zip_path = root, zip_path
        self._prefix = ""
        self._dirs: dict[str, list[str]] | None = None  # zip only: folder -> sorted file names
        self._local = threading.local()
        self._handles: list[zipfile.ZipFile] = []
        self._lock = threading.Lock()
        if zip_path is not None:
            try:
                with zipfile.ZipFile(zip_path) as zf:
                    names = zf.namelist()
            except (zipfile.BadZipFile, OSError, EOFError) as e:
                raise DataError(
                    f"{zip_path}: cannot read the zip ({type(e).__name__}: {e}); it may be truncated: download it again"
                ) from None
            # the official zip has everything under tiny-imagenet-200/; accept any single top folder, or none
            metas = sorted((n for n in names if n.rsplit("/", 1)[-1] == "wnids.txt"), key=len)
            self._prefix = metas[0][: -len("wnids.txt")] if metas else ""
            self._dirs = {}
            for n in sorted(names):  # one pass: listing per class folder must not rescan 120k names
                if n.startswith(self._prefix) and not n.endswith("/"):
                    folder, _, base = n[len(self._prefix) :].rpartition("/")
                    self._dirs.setdefault(folder, []).append(base)

    def __enter__(self) -> _Files:
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            for zf in self._handles:
                zf.close()
            self._handles.clear()

    def where(self, rel: str) -> str:
        return f"{self.zip_path}:{self._prefix}{rel}" if self.zip_path else str(self.root / rel)

    def exists(self, rel: str) -> bool:
        if self._dirs is not None:
            folder, _, base = rel.rpartition("/")
            return base in self._dirs.get(folder, ())
        return (self.root / rel).is_file()

    def listdir(self, rel: str) -> list[str]:
        """File names directly inside folder `rel`, sorted; [] if there is no such folder."""
        if self._dirs is not None:
            return list(self._dirs.get(rel.strip("/"), ()))
        try:
            return sorted(e.name for e in os.scandir(self.root / rel) if e.is_file())
        except OSError:
            return []

    def read(self, rel: str) -> bytes:
        try:
            if self.zip_path is None:
                return (self.root / rel).read_bytes()
            zf = getattr(self._local, "zf", None)
            if zf is None:  # one handle per thread, so threads never share a file position
                zf = self._local.zf = zipfile.ZipFile(self.zip_path)
                with self._lock:
                    self._handles.append(zf)
            return zf.read(self._prefix + rel)
        except (OSError, KeyError, zipfile.BadZipFile, EOFError, zlib.error) as e:
            raise DataError(f"{self.where(rel)}: cannot read ({type(e).__name__}: {e})") from None

    def text(self, rel: str) -> str:
        if not self.exists(rel):
            raise DataError(f"{self.where(rel)}: missing; is this the Tiny ImageNet (tiny-imagenet-200) layout?")
        return self.read(rel).decode("utf-8", "replace")

    def stamp(self) -> list[int]:
        """What invalidates the cache: the zip's mtime and size. Limits: for a folder, only the metadata files and
        the mtimes of the split folders are checked, so replacing an image in place is not noticed."""
        if self.zip_path is not None:
            st = self.zip_path.stat()
            return [st.st_mtime_ns, st.st_size]
        out: list[int] = []
        for rel in ("wnids.txt", "words.txt", "val/val_annotations.txt", "train", "val/images"):
            try:
                st = (self.root / rel).stat()
                out += [st.st_mtime_ns, st.st_size]
            except OSError:
                out += [0, 0]
        return out


def _tiny_source(root: Path) -> _Files:
    folder, archive = root / _TINY_DIR, root / f"{_TINY_DIR}.zip"
    if (folder / "wnids.txt").is_file():
        return _Files(folder, None)
    if archive.is_file():
        return _Files(folder, archive)
    raise DataError(
        f"Tiny ImageNet not found (it cannot be downloaded through torchvision).\n"
        f"  put tiny-imagenet-200.zip at {archive} (it is read straight from the zip) "
        f"or extract it to {folder}/\n  get it from {TINY_IMAGENET_URL}"
    )


def _tiny_index(src: _Files) -> tuple[list[str], list[tuple[str, int]], list[tuple[str, int]]]:
    """Class names, and (file, label) lists for train (interleaved across classes) and test (= the val split)."""
    wnids = [w.strip() for w in src.text("wnids.txt").splitlines() if w.strip()]
    if not wnids:
        raise DataError(f"{src.where('wnids.txt')}: lists no classes")
    label_of = {w: i for i, w in enumerate(wnids)}
    words: dict[str, str] = {}
    if src.exists("words.txt"):
        for line in src.text("words.txt").splitlines():
            wnid, _, names = line.partition("\t")
            if wnid in label_of:
                words[wnid] = names.split(",")[0].strip()
    classes = [words.get(w) or w for w in wnids]
    per_class = []
    for wnid in wnids:
        folder = f"train/{wnid}/images"
        files = [f"{folder}/{n}" for n in src.listdir(folder) if Path(n).suffix.lower() in IMAGE_EXTENSIONS]
        if not files:
            raise DataError(f"{src.where(folder)}: no training images for class {wnid}")
        per_class.append([(f, label_of[wnid]) for f in files])
    test = []
    ann = "val/val_annotations.txt"
    for number, line in enumerate(src.text(ann).splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2 or fields[1].strip() not in label_of:
            raise DataError(
                f"{src.where(ann)}:{number}: expected 'file<TAB>wnid<TAB>...' with a wnid from "
                f"wnids.txt, got {line[:80]!r}"
            )
        test.append((f"val/images/{fields[0].strip()}", label_of[fields[1].strip()]))
    if not test:
        raise DataError(f"{src.where(ann)}: lists no validation images")
    return classes, _interleave(per_class), test


def _decode_many(src: _Files, items: Sequence[tuple[str, int]], size: tuple[int, int]) -> torch.Tensor:
    """Decode RGB images into one preallocated (N, 3, H, W) tensor; odd-sized images are resized to `size`."""
    out = np.empty((len(items), 3, *size), dtype=np.uint8)

    def work(i: int) -> None:
        rel = items[i][0]
        out[i] = _resize_one(decode_image(src.read(rel), src.where(rel), force_rgb=True), size)

    for start in range(0, len(items), _DECODE_CHUNK):
        n = min(_DECODE_CHUNK, len(items) - start)
        _parallel_map(lambda j, s=start: work(s + j), n)
    return torch.from_numpy(out)


def _tiny_cache_path(root: Path) -> Path:
    return root / f"{_TINY_DIR}.netspec-cache.pt"


def _load_tiny_cache(path: Path, stamp: list[int], notes: list[str]) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        # mmap: limited runs only page in the images they keep, and writes stay private to this process. Limit:
        # truncating the cache file in place while a process maps it would crash that process (SIGBUS); we only
        # ever replace it (os.replace), which is safe.
        cache = torch.load(path, weights_only=True, mmap=True)
    except Exception as e:  # any unreadable cache is just rebuilt
        notes.append(f"ignoring unreadable cache {path} ({type(e).__name__})")
        return None
    if not isinstance(cache, dict) or cache.get("version") != _TINY_CACHE_VERSION or cache.get("stamp") != stamp:
        notes.append(f"cache {path} is out of date; decoding again")
        return None
    tensors = ("train_images", "train_labels", "test_images", "test_labels")
    if not all(isinstance(cache.get(k), torch.Tensor) for k in tensors) or not isinstance(cache.get("classes"), list):
        notes.append(f"ignoring malformed cache {path}")
        return None
    return cache


def _save_tiny_cache(path: Path, cache: dict[str, Any], notes: list[str]) -> None:
    """Write atomically (temp file + os.replace) so an interrupted run never leaves a half-written cache."""
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        torch.save(cache, tmp)
        os.replace(tmp, path)
        notes.append(f"cached decoded images in {path}")
    except (OSError, RuntimeError) as e:  # torch's zip writer reports a full disk as RuntimeError
        notes.append(f"could not write cache {path} ({e}); images will be decoded again next time")
        tmp.unlink(missing_ok=True)


def _load_tiny_imagenet(root: Path, train_limit: int | None, test_limit: int | None) -> ImageData:
    with _tiny_source(root) as src:
        return _load_tiny_from(src, root, train_limit, test_limit)


def _load_tiny_from(src: _Files, root: Path, train_limit: int | None, test_limit: int | None) -> ImageData:
    notes = [f"Tiny ImageNet from {src.zip_path or str(src.root) + '/'}"]
    cache_path, stamp = _tiny_cache_path(root), src.stamp()
    cache = _load_tiny_cache(cache_path, stamp, notes)
    if cache is not None:
        notes.append(f"using cached decoded images {cache_path}")
        tensors = {k: cache[k] for k in ("train_images", "train_labels", "test_images", "test_labels")}
        for split, limit in (("train", train_limit), ("test", test_limit)):
            if limit is not None:  # clone: do not keep the whole mmapped cache alive for a slice
                for k in (f"{split}_images", f"{split}_labels"):
                    tensors[k] = tensors[k][:limit].clone()
        return ImageData("tiny-imagenet", classes=list(cache["classes"]), notes=notes, **tensors)
    classes, train, test = _tiny_index(src)
    train, test = list(_take(train_limit, train)), list(_take(test_limit, test))
    log.info("decoding %d Tiny ImageNet images", len(train) + len(test))
    tensors = {
        "train_images": _decode_many(src, train, (64, 64)),
        "train_labels": torch.tensor([y for _, y in train], dtype=torch.int64),
        "test_images": _decode_many(src, test, (64, 64)),
        "test_labels": torch.tensor([y for _, y in test], dtype=torch.int64),
    }
    if train_limit is None and test_limit is None:
        _save_tiny_cache(
            cache_path, {"version": _TINY_CACHE_VERSION, "stamp": stamp, "classes": classes, **tensors}, notes
        )
    return ImageData("tiny-imagenet", classes=classes, notes=notes, **tensors)


# --------------------------------------------------------------------------------------------------------------------
# Image folders: <root>/train/<class>/**/*.png and <root>/test/<class>/... (or val/)


def _folder_images(folder: Path) -> list[Path]:
    """Image files under `folder`, recursively, in sorted path order; hidden files and folders are skipped."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found += [
            Path(dirpath) / f
            for f in sorted(filenames)
            if not f.startswith(".") and Path(f).suffix.lower() in IMAGE_EXTENSIONS
        ]
    return found


def _class_folders(split: Path) -> list[Path]:
    return sorted((p for p in split.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.name)


def _load_image_folder(
    root: Path, name: str, size: tuple[int, int] | None, train_limit: int | None, test_limit: int | None
) -> ImageData:
    if not root.is_dir():
        raise DataError(
            f"{root}: no such folder (expected an image folder with train/ and test/ subfolders, "
            f"one subfolder per class)"
        )
    train_dir = root / "train"
    test_dir = next((root / s for s in ("test", "val") if (root / s).is_dir()), None)
    if not train_dir.is_dir() or test_dir is None:
        missing = "train/" if not train_dir.is_dir() else "test/ (or val/)"
        raise DataError(
            f"{root}: has no {missing} subfolder; an image folder needs train/<class>/*.png and "
            f"test/<class>/*.png (any of {', '.join(sorted(IMAGE_EXTENSIONS))})"
        )
    class_dirs = _class_folders(train_dir)
    if not class_dirs:
        raise DataError(f"{train_dir}: no class subfolders (expected one folder of images per class)")
    classes = [d.name for d in class_dirs]
    label_of = {c: i for i, c in enumerate(classes)}
    per_class = []
    for d in class_dirs:
        files = _folder_images(d)
        if not files:
            raise DataError(f"{d}: class folder has no images ({', '.join(sorted(IMAGE_EXTENSIONS))})")
        per_class.append([(f, label_of[d.name]) for f in files])
    test_groups = []
    for d in _class_folders(test_dir):
        if d.name not in label_of:
            raise DataError(f"{d}: class {d.name!r} has no folder in {train_dir}/")
        test_groups.append([(f, label_of[d.name]) for f in _folder_images(d)])
    train = list(_take(train_limit, _interleave(per_class)))
    test = list(_take(test_limit, _interleave(test_groups)))
    if not test:
        raise DataError(f"{test_dir}: has no images (expected {test_dir.name}/<class>/*.png)")
    notes = [f"image folder {root}/ ({train_dir.name}/ and {test_dir.name}/)"]
    items = train + test
    arrays = _parallel_map(lambda i: decode_image(items[i][0], str(items[i][0]), force_rgb=False), len(items))
    images = _uniform(arrays, size, notes)
    labels = torch.tensor([y for _, y in items], dtype=torch.int64)
    n = len(train)
    return ImageData(
        name, images[:n].clone(), labels[:n].clone(), images[n:].clone(), labels[n:].clone(), classes, notes
    )


def _uniform(arrays: list[np.ndarray], size: tuple[int, int] | None, notes: list[str]) -> torch.Tensor:
    """Stack decoded images into one tensor: RGB unless every image is grayscale, and one size: `size` if given,
    else the most common size (ties go to the first seen). Limit: all decoded images are held before stacking, so
    peak memory is about twice the data set's."""
    channels = 1 if all(a.shape[0] == 1 for a in arrays) else 3
    sizes = Counter(a.shape[1:] for a in arrays)
    target = size or sizes.most_common(1)[0][0]
    odd = sum(n for s, n in sizes.items() if s != target)
    if odd and size is None:
        notes.append(
            f"images have {len(sizes)} sizes; resized {odd} of {len(arrays)} to the most common, "
            f"{target[0]}x{target[1]}"
        )
    elif odd:
        notes.append(f"resized {odd} of {len(arrays)} images to {target[0]}x{target[1]}")
    if channels == 3 and any(a.shape[0] == 1 for a in arrays):
        notes.append("converted grayscale images to RGB (the folder mixes grayscale and colour)")
    out = np.empty((len(arrays), channels, *target), dtype=np.uint8)
    for i, a in enumerate(arrays):
        if a.shape[0] != channels:
            a = np.repeat(a, 3, axis=0)  # what PIL's L -> RGB does
        out[i] = _resize_one(a, target)
    return torch.from_numpy(out)


# --------------------------------------------------------------------------------------------------------------------
# shapes: a procedural, offline data set

_SHAPES_CHUNK = 250  # images drawn per generator stream; a multiple of the 10 classes


def _shape_distance(k: int, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Approximate signed distance to shape k, in units of the shape radius (negative inside); v points down."""
    au, av = u.abs(), v.abs()
    rho = torch.hypot(u, v)
    name = SHAPES_CLASSES[k]
    if name == "circle":
        return rho - 0.95
    if name == "square":
        return torch.maximum(au, av) - 0.75
    if name == "triangle":  # equilateral, apex up
        c = math.sqrt(3) / 2
        return torch.maximum(v, torch.maximum(-c * u - 0.5 * v, c * u - 0.5 * v)) - 0.5
    if name == "cross":
        return torch.minimum(torch.maximum(au - 1.0, av - 0.3), torch.maximum(au - 0.3, av - 1.0))
    if name == "ring":
        return (rho - 0.72).abs() - 0.26
    if name == "diamond":
        return (au + av - 1.05) / math.sqrt(2)
    if name == "hbar":
        return torch.maximum(au - 1.0, av - 0.3)
    if name == "vbar":
        return torch.maximum(au - 0.3, av - 1.0)
    if name == "star":  # five sharp points, one up
        t = (torch.atan2(v, u) + math.pi / 2) * (5 / (2 * math.pi))
        tri = (2 * (t - t.floor()) - 1).abs()
        return (rho - (0.42 + 0.58 * tri)) * 0.6
    # ellipse
    return (torch.hypot(u, v / 0.55) - 1.0) * 0.7


def _stream_seed(seed: int, split: str, chunk: int) -> int:
    """A seed per (seed, split, chunk): independent streams for train and test, and prefix-stable limits (the first
    N images are the same whatever the limit, because each chunk has its own stream)."""
    digest = hashlib.sha256(f"netspec-shapes/{seed}/{split}/{chunk}".encode()).digest()
    return int.from_bytes(digest[:7], "little")


def _draw_shapes_chunk(gen: torch.Generator, count: int, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw the first `count` images of one chunk. The random draws are always made for a whole chunk, in a fixed
    order, so the images do not depend on `count`."""
    n, (h, w) = _SHAPES_CHUNK, size
    labels = torch.argsort(torch.rand(n // 10, 10, generator=gen), dim=1).reshape(-1)  # balanced every 10
    radius = (0.2 + 0.14 * torch.rand(n, generator=gen)) * min(h, w)
    fx, fy = torch.rand(n, generator=gen), torch.rand(n, generator=gen)
    angle = (torch.rand(n, generator=gen) - 0.5) * 0.6  # +-17 degrees: square and diamond stay distinct
    bg = 0.15 + 0.7 * torch.rand(n, 3, generator=gen)
    # the shape is darker than a light background and lighter than a dark one, in every channel by 0.3..0.6: random
    # colours, but edges of one sign across channels, which small CNNs pick up within an epoch or two
    delta = 0.3 + 0.3 * torch.rand(n, 3, generator=gen)
    fg = (bg + torch.where(bg.mean(1, keepdim=True) > 0.5, -delta, delta)).clamp(0, 1)
    noise = torch.randn(n, 3, h, w, generator=gen) * 0.035
    sl = slice(0, count)
    labels, radius, angle, bg, fg, noise = labels[sl], radius[sl], angle[sl], bg[sl], fg[sl], noise[sl]
    cx = radius + (w - 2 * radius).clamp(min=0) * fx[sl]
    cy = radius + (h - 2 * radius).clamp(min=0) * fy[sl]
    xs = (torch.arange(w, dtype=torch.float32) + 0.5)[None, None, :]
    ys = (torch.arange(h, dtype=torch.float32) + 0.5)[None, :, None]
    dx = (xs - cx[:, None, None]) / radius[:, None, None]
    dy = (ys - cy[:, None, None]) / radius[:, None, None]
    cos, sin = angle.cos()[:, None, None], angle.sin()[:, None, None]
    u, v = cos * dx + sin * dy, cos * dy - sin * dx
    dist = torch.empty(count, h, w)
    for k in range(len(SHAPES_CLASSES)):
        idx = (labels == k).nonzero().squeeze(1)
        if len(idx):
            dist[idx] = _shape_distance(k, u[idx], v[idx])
    alpha = (0.5 - dist * radius[:, None, None]).clamp(0, 1)[:, None]  # ~1 px antialiased edge
    img = bg[:, :, None, None] * (1 - alpha) + fg[:, :, None, None] * alpha + noise
    return (img.clamp(0, 1) * 255).round().to(torch.uint8), labels.to(torch.int64)


def _draw_shapes(seed: int, split: str, count: int, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = [], []
    for chunk in range(math.ceil(count / _SHAPES_CHUNK)):
        gen = torch.Generator().manual_seed(_stream_seed(seed, split, chunk))
        x, y = _draw_shapes_chunk(gen, min(_SHAPES_CHUNK, count - chunk * _SHAPES_CHUNK), size)
        images.append(x)
        labels.append(y)
    return torch.cat(images), torch.cat(labels)


@contextlib.contextmanager
def _one_torch_thread() -> Iterator[None]:
    """Run many small torch ops on one thread: they gain little from intra-op threads, and on a busy machine each
    op's thread synchronisation can cost a scheduler slice (measured: 0.8 s single-threaded vs 2.5-7 s with two
    threads under load). Limit: torch's thread count is process-wide, so another thread running torch meanwhile is
    also limited to one thread until this returns."""
    before = torch.get_num_threads()
    if before == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def make_shapes(
    size: tuple[int, int] = (32, 32), train_limit: int | None = None, test_limit: int | None = None, seed: int = 0
) -> ImageData:
    """The built-in `shapes` data set: 10 classes of coloured shapes at random position, scale, small rotation and
    colours, with mild noise; 5,000 train and 1,000 test images (limits keep a prefix), drawn at `size`.

    Deterministic: the same seed gives identical bytes (on one torch version). Needs no files and no network, so any
    spec can be trained and tested offline.
    """
    size = _check_size(size) or (32, 32)
    n_train = min(SHAPES_TRAIN, train_limit or SHAPES_TRAIN)
    n_test = min(SHAPES_TEST, test_limit or SHAPES_TEST)
    with _one_torch_thread():
        train_x, train_y = _draw_shapes(seed, "train", n_train, size)
        test_x, test_y = _draw_shapes(seed, "test", n_test, size)
    notes = [f"shapes: generated {n_train} train / {n_test} test images at {size[0]}x{size[1]} (seed {seed})"]
    return ImageData("shapes", train_x, train_y, test_x, test_y, list(SHAPES_CLASSES), notes)
