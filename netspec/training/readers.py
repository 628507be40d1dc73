"""The standard on-disk formats: CIFAR-10/100 pickles (a folder or the .tar.gz) and MNIST-style idx files.

Read by our own small readers rather than torchvision's Dataset classes: the errors stay ours (every `DataError`
names the file), the limits skip work, and CIFAR is unpickled by an unpickler that refuses anything but arrays and
plain data. torchvision is used only to download.
"""

from __future__ import annotations

import gzip
import io
import logging
import math
import pickle
import struct
import tarfile
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DataError
from .images import ImageData

log = logging.getLogger("netspec.data")

# Where Debian's `dataset-fashion-mnist` package installs the four gzipped idx files. Module-level so tests
# can point it elsewhere.
SYSTEM_DIRS: dict[str, tuple[Path, ...]] = {
    "mnist": (),
    "fashion-mnist": (Path("/usr/share/datasets/fashion-mnist"),),
}


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


CIFAR = {
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
        allowed[(f"{mod}.numeric", "_frombuffer")] = numeric._frombuffer  # type: ignore[attr-defined]  # protocol 5
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


def load_cifar(
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


def load_mnist(key: str, root: Path, train_limit: int | None, test_limit: int | None, download: bool) -> ImageData:
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
