"""Data sets of image files: Tiny ImageNet (its folder or its zip, decoded once and cached) and image folders
(`<root>/train/<class>/*.png` and `<root>/test/` or `val/`)."""

from __future__ import annotations

import logging
import os
import threading
import zipfile
import zlib
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DataError
from .images import IMAGE_EXTENSIONS, ImageData, decode_image, interleave, parallel_map, resize_one, take

log = logging.getLogger("netspec.data")

TINY_IMAGENET_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
_TINY_DIR = "tiny-imagenet-200"
_TINY_CACHE_VERSION = 1

# Images decoded per batch of thread-pool work: bounds the memory of undecoded bytes held at once.
DECODE_CHUNK = 2048


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
    return classes, interleave(per_class), test


def _decode_many(src: _Files, items: Sequence[tuple[str, int]], size: tuple[int, int]) -> torch.Tensor:
    """Decode RGB images into one preallocated (N, 3, H, W) tensor; odd-sized images are resized to `size`."""
    out = np.empty((len(items), 3, *size), dtype=np.uint8)

    def work(i: int) -> None:
        rel = items[i][0]
        out[i] = resize_one(decode_image(src.read(rel), src.where(rel), force_rgb=True), size)

    for start in range(0, len(items), DECODE_CHUNK):
        parallel_map(work, range(start, min(start + DECODE_CHUNK, len(items))))
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


def load_tiny_imagenet(root: Path, train_limit: int | None, test_limit: int | None) -> ImageData:
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
    train, test = list(take(train_limit, train)), list(take(test_limit, test))
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


def load_image_folder(
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
    train = list(take(train_limit, interleave(per_class)))
    test = list(take(test_limit, interleave(test_groups)))
    if not test:
        raise DataError(f"{test_dir}: has no images (expected {test_dir.name}/<class>/*.png)")
    notes = [f"image folder {root}/ ({train_dir.name}/ and {test_dir.name}/)"]
    items = train + test
    arrays = parallel_map(lambda i: decode_image(items[i][0], str(items[i][0]), force_rgb=False), range(len(items)))
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
        out[i] = resize_one(a, target)
    return torch.from_numpy(out)
