"""Miniature copies of the on-disk data set formats that `netspec.training.data` reads, for tests (ours and the trainer's).

Every `make_*` writes a few random images under `root` in exactly the layout of the real data set (same file names,
same encodings) and returns a `Written` holding the arrays it wrote, in the order `load_data` returns them, so a test
can compare pixels and labels exactly. All helpers are deterministic (`seed`) and need no network.

    written = make_cifar10(tmp_path)
    data = load_data("cifar10", tmp_path, download=False)
    assert (data.train_images.numpy() == written.train_images).all()
"""

from __future__ import annotations

import gzip
import io
import pickle
import struct
import tarfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


@dataclass
class Written:
    """What a fixture wrote: `path` is the folder or archive created; arrays are uint8 (N, C, H, W) images and int64
    labels in load order; `classes` are the class names load_data should report."""

    path: Path
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    classes: list[str]


def _images(rng: np.random.Generator, n: int, c: int, h: int, w: int) -> np.ndarray:
    return rng.integers(0, 256, size=(n, c, h, w), dtype=np.uint8)


def _labels(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    return rng.integers(0, k, size=n).astype(np.int64)


# ---------------------------------------------------------------------------------------------------------- CIFAR


def cifar_pickle(obj: object, legacy_numpy: bool = True) -> bytes:
    """Pickle like the real CIFAR files: protocol 2, and (with `legacy_numpy`) numpy arrays naming
    `numpy.core.multiarray`, as files written by numpy 1.x do."""
    blob = pickle.dumps(obj, protocol=2)
    if legacy_numpy:  # protocol 2 names globals as text lines, so the module name can be swapped in place
        blob = blob.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
    return blob


def _cifar_batch(images: np.ndarray, labels: np.ndarray, labels_key: bytes, title: bytes) -> bytes:
    return cifar_pickle(
        {
            b"batch_label": title,
            labels_key: [int(x) for x in labels],
            b"data": images.reshape(len(images), -1),
            b"filenames": [f"img_{i}.png".encode() for i in range(len(images))],
        }
    )


def _cifar10_files(n_train_per_batch: int, n_test: int, seed: int) -> tuple[dict[str, bytes], Written]:
    rng = np.random.default_rng(seed)
    files: dict[str, bytes] = {}
    xs, ys = [], []
    for b in range(1, 6):
        x, y = _images(rng, n_train_per_batch, 3, 32, 32), _labels(rng, n_train_per_batch, 10)
        files[f"data_batch_{b}"] = _cifar_batch(x, y, b"labels", f"training batch {b} of 5".encode())
        xs.append(x)
        ys.append(y)
    tx, ty = _images(rng, n_test, 3, 32, 32), _labels(rng, n_test, 10)
    files["test_batch"] = _cifar_batch(tx, ty, b"labels", b"testing batch 1 of 1")
    files["batches.meta"] = cifar_pickle(
        {
            b"label_names": [c.encode() for c in CIFAR10_CLASSES],
            b"num_cases_per_batch": n_train_per_batch,
            b"num_vis": 3072,
        }
    )
    files["readme.html"] = b"<html>not a pickle</html>"
    return files, Written(Path(), np.concatenate(xs), np.concatenate(ys), tx, ty, list(CIFAR10_CLASSES))


def _cifar100_files(n_train: int, n_test: int, seed: int) -> tuple[dict[str, bytes], Written]:
    rng = np.random.default_rng(seed)
    classes = [f"fine{i:02d}" for i in range(100)]
    x, y = _images(rng, n_train, 3, 32, 32), _labels(rng, n_train, 100)
    tx, ty = _images(rng, n_test, 3, 32, 32), _labels(rng, n_test, 100)
    files = {}
    for name, (a, b) in {"train": (x, y), "test": (tx, ty)}.items():
        files[name] = cifar_pickle(
            {
                b"filenames": [b"f.png"] * len(a),
                b"batch_label": name.encode(),
                b"fine_labels": [int(v) for v in b],
                b"coarse_labels": [int(v) // 5 for v in b],
                b"data": a.reshape(len(a), -1),
            }
        )
    files["meta"] = cifar_pickle(
        {
            b"fine_label_names": [c.encode() for c in classes],
            b"coarse_label_names": [f"coarse{i}".encode() for i in range(20)],
        }
    )
    return files, Written(Path(), x, y, tx, ty, classes)


def _write_folder(folder: Path, files: dict[str, bytes]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, blob in files.items():
        (folder / name).write_bytes(blob)


def _write_tar(archive: Path, top: str, files: dict[str, bytes]) -> None:
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo(top)
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
        for name in reversed(list(files)):  # the real archives are not in batch order either
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size = len(files[name])
            tar.addfile(info, io.BytesIO(files[name]))


def make_cifar10(root: Path, n_train_per_batch: int = 4, n_test: int = 6, seed: int = 0) -> Written:
    """`root/cifar-10-batches-py/` with data_batch_1..5 (n_train_per_batch images each), test_batch, batches.meta."""
    files, written = _cifar10_files(n_train_per_batch, n_test, seed)
    written.path = Path(root) / "cifar-10-batches-py"
    _write_folder(written.path, files)
    return written


def make_cifar10_tar(root: Path, n_train_per_batch: int = 4, n_test: int = 6, seed: int = 0) -> Written:
    """`root/cifar-10-python.tar.gz` holding the same files under cifar-10-batches-py/ (not extracted)."""
    files, written = _cifar10_files(n_train_per_batch, n_test, seed)
    written.path = Path(root) / "cifar-10-python.tar.gz"
    _write_tar(written.path, "cifar-10-batches-py", files)
    return written


def make_cifar100(root: Path, n_train: int = 8, n_test: int = 6, tar: bool = False, seed: int = 0) -> Written:
    """`root/cifar-100-python/` (train, test, meta; class names fine00..fine99), or with `tar` the
    `root/cifar-100-python.tar.gz` archive."""
    files, written = _cifar100_files(n_train, n_test, seed)
    if tar:
        written.path = Path(root) / "cifar-100-python.tar.gz"
        _write_tar(written.path, "cifar-100-python", files)
    else:
        written.path = Path(root) / "cifar-100-python"
        _write_folder(written.path, files)
    return written


# ---------------------------------------------------------------------------------------------------------- MNIST


def idx_bytes(array: np.ndarray) -> bytes:
    """An idx file: magic 0 0 0x08 ndim, big-endian uint32 sizes, then the uint8 data."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def make_mnist(
    root: Path,
    name: str = "mnist",
    gz: bool = True,
    n_train: int = 8,
    n_test: int = 5,
    folder: str | None = None,
    seed: int = 0,
) -> Written:
    """The four idx files (`.gz` when `gz`) in `root/<name>/` (or `root/<folder>/`, e.g. "MNIST/raw" for
    torchvision's layout). `name` is "mnist" or "fashion-mnist" (only the class names differ)."""
    rng = np.random.default_rng(seed)
    out = Path(root) / (folder or name)
    out.mkdir(parents=True, exist_ok=True)
    x, y = _images(rng, n_train, 1, 28, 28), _labels(rng, n_train, 10)
    tx, ty = _images(rng, n_test, 1, 28, 28), _labels(rng, n_test, 10)
    for base, arr in (
        ("train-images-idx3-ubyte", x[:, 0]),
        ("train-labels-idx1-ubyte", y),
        ("t10k-images-idx3-ubyte", tx[:, 0]),
        ("t10k-labels-idx1-ubyte", ty),
    ):
        blob = idx_bytes(arr.astype(np.uint8))
        if gz:
            (out / f"{base}.gz").write_bytes(gzip.compress(blob, mtime=0))
        else:
            (out / base).write_bytes(blob)
    classes = (
        [str(i) for i in range(10)]
        if name == "mnist"
        else ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
    )
    return Written(out, x, y, tx, ty, classes)


# ---------------------------------------------------------------------------------------------------------- images


def encode_image(pixels: np.ndarray, fmt: str) -> bytes:
    """Encode (C, H, W) uint8 pixels (C = 1, 3 or 4) as an image file in PIL format `fmt` ("PNG", "JPEG", ...)."""
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[pixels.shape[0]]
    img = Image.fromarray(pixels[0] if mode == "L" else pixels.transpose(1, 2, 0), mode)
    buf = io.BytesIO()
    img.save(buf, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return buf.getvalue()


def interleave(groups: Sequence[Sequence[object]]) -> list[object]:
    """The load order of class-sorted sources: first item of every class, then the second, ..."""
    out: list[object] = []
    for i in range(max((len(g) for g in groups), default=0)):
        out.extend(g[i] for g in groups if i < len(g))
    return out


def make_tiny_imagenet(
    root: Path,
    n_classes: int = 3,
    per_class: int = 2,
    n_val: int = 4,
    zip: bool = False,
    lossless: bool = True,
    seed: int = 0,
) -> Written:
    """Tiny ImageNet's layout (wnids.txt, words.txt, train/<wnid>/images/*.JPEG, val/images/*.JPEG,
    val/val_annotations.txt) in `root/tiny-imagenet-200/`, or with `zip` in `root/tiny-imagenet-200.zip`.

    With `lossless` the .JPEG files hold PNG data (PIL goes by content, not name) so pixels round-trip exactly;
    otherwise they are real JPEGs and decoded pixels only approximate the returned arrays. Class i is wnid
    n0000000i named "thing i"; val image k has class k % n_classes.
    """
    rng = np.random.default_rng(seed)
    fmt = "PNG" if lossless else "JPEG"
    wnids = [f"n{i:08d}" for i in range(n_classes)]
    files: dict[str, bytes] = {
        "wnids.txt": "".join(f"{w}\n" for w in wnids).encode(),
        "words.txt": "".join(f"{w}\tthing {i}, alias {i}\n" for i, w in enumerate(wnids)).encode()
        + b"n99999999\tunused class, other\n",
    }
    groups = []
    for label, w in enumerate(wnids):
        x = _images(rng, per_class, 3, 64, 64)
        files[f"train/{w}/{w}_boxes.txt"] = b"".join(f"{w}_{j}.JPEG\t0\t0\t63\t63\n".encode() for j in range(per_class))
        names = [f"{w}_{j}.JPEG" for j in range(per_class)]
        for j, name in enumerate(names):
            files[f"train/{w}/images/{name}"] = encode_image(x[j], fmt)
        groups.append([(name, x[j], label) for j, name in sorted(enumerate(names), key=lambda t: t[1])])
    order = interleave(groups)
    tx = _images(rng, n_val, 3, 64, 64)
    ty = np.arange(n_val, dtype=np.int64) % n_classes
    ann = []
    for k in range(n_val):
        files[f"val/images/val_{k}.JPEG"] = encode_image(tx[k], fmt)
        ann.append(f"val_{k}.JPEG\t{wnids[ty[k]]}\t1\t2\t60\t61\n")
    files["val/val_annotations.txt"] = "".join(ann).encode()
    written = Written(
        Path(),
        np.stack([o[1] for o in order]) if order else np.zeros((0, 3, 64, 64), np.uint8),
        np.array([o[2] for o in order], dtype=np.int64),
        tx,
        ty,
        [f"thing {i}" for i in range(n_classes)],
    )
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    if zip:
        written.path = root / "tiny-imagenet-200.zip"
        with zipfile.ZipFile(written.path, "w", zipfile.ZIP_DEFLATED) as zf:
            for rel, blob in files.items():
                zf.writestr(f"tiny-imagenet-200/{rel}", blob)
    else:
        written.path = root / "tiny-imagenet-200"
        for rel, blob in files.items():
            (written.path / rel).parent.mkdir(parents=True, exist_ok=True)
            (written.path / rel).write_bytes(blob)
    return written


def make_image_folder(
    root: Path,
    classes: Sequence[str] = ("cat", "dog", "frog"),
    per_class: int = 3,
    test_per_class: int = 2,
    size: tuple[int, int] = (8, 8),
    channels: int = 3,
    ext: str = ".png",
    test_name: str = "test",
    seed: int = 0,
) -> Written:
    """`root/train/<class>/<class>_NNN<ext>` and `root/<test_name>/<class>/...` with random images of `size`;
    `channels` 1 writes grayscale, 4 writes RGBA (loaded as RGB: alpha dropped). Use a lossless `ext` (.png, .bmp)
    for exact comparisons. The returned arrays are in load order (classes sorted, files interleaved across classes).
    """
    rng = np.random.default_rng(seed)
    fmt = {".png": "PNG", ".bmp": "BMP", ".jpg": "JPEG", ".jpeg": "JPEG", ".gif": "GIF", ".webp": "WEBP"}[ext.lower()]
    root = Path(root)
    out: dict[str, list[tuple[np.ndarray, int]]] = {}
    for split, count in (("train", per_class), (test_name, test_per_class)):
        groups = []
        for label, c in enumerate(sorted(classes)):
            folder = root / split / c
            folder.mkdir(parents=True, exist_ok=True)
            x = _images(rng, count, channels, *size)
            for j in range(count):
                (folder / f"{c}_{j:03d}{ext}").write_bytes(encode_image(x[j], fmt))
            groups.append([(x[j][:3], label) for j in range(count)])
        out[split] = interleave(groups)  # type: ignore[assignment]
    c = min(channels, 3)

    def stack(items: list[tuple[np.ndarray, int]]) -> tuple[np.ndarray, np.ndarray]:
        if not items:
            return np.zeros((0, c, *size), np.uint8), np.zeros(0, np.int64)
        return np.stack([a for a, _ in items]), np.array([y for _, y in items], dtype=np.int64)

    (x, y), (tx, ty) = stack(out["train"]), stack(out[test_name])
    return Written(root, x, y, tx, ty, sorted(classes))
