"""Tests for the data sets of netspec.training: every reader against miniature copies of the real formats.

No test touches the network: loads pass download=False, or torchvision's download classes are replaced.
"""

from __future__ import annotations

import gzip
import os
import pickle
import time
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from netspec.errors import DataError, UsageError
from netspec.lang import DATA_NAMES
from netspec.training import data as nd
from netspec.training import readers
from netspec.training.data import ImageData, default_data_dir, load_data, make_shapes

try:
    from datafixtures import (
        cifar_pickle,
        encode_image,
        idx_bytes,
        make_cifar10,
        make_cifar10_tar,
        make_cifar100,
        make_image_folder,
        make_mnist,
        make_tiny_imagenet,
    )
except ImportError:  # tests/ turned into a package
    from tests.datafixtures import (
        cifar_pickle,
        encode_image,
        idx_bytes,
        make_cifar10,
        make_cifar10_tar,
        make_cifar100,
        make_image_folder,
        make_mnist,
        make_tiny_imagenet,
    )


def assert_matches(data: ImageData, written) -> None:
    """Exact pixels and labels, in order, and the ImageData contract."""
    assert data.train_images.dtype == torch.uint8 and data.test_images.dtype == torch.uint8
    assert data.train_labels.dtype == torch.int64 and data.test_labels.dtype == torch.int64
    assert data.train_images.is_contiguous() and data.test_images.is_contiguous()
    np.testing.assert_array_equal(data.train_images.numpy(), written.train_images)
    np.testing.assert_array_equal(data.train_labels.numpy(), written.train_labels)
    np.testing.assert_array_equal(data.test_images.numpy(), written.test_images)
    np.testing.assert_array_equal(data.test_labels.numpy(), written.test_labels)
    assert data.classes == written.classes
    assert data.num_classes == len(written.classes)


class Evil:
    """Unpickling this runs a shell command: the restricted unpickler must refuse it before calling anything."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def no_download(monkeypatch):
    """Make any download attempt fail the test loudly instead of reaching the network."""

    def boom(*args, **kwargs):
        raise AssertionError("tried to download")

    monkeypatch.setattr(readers, "_torchvision_download", boom)


# ------------------------------------------------------------------------------------------------------------ CIFAR


def test_cifar10_folder_exact(tmp_path, no_download):
    w = make_cifar10(tmp_path)
    d = load_data("cifar10", tmp_path, download=False)
    assert_matches(d, w)
    assert d.name == "cifar10" and d.channels == 3 and d.image_size == (32, 32)
    assert d.classes[:2] == ["airplane", "automobile"]
    assert len(d.train_labels) == 20 and len(d.test_labels) == 6
    # one pixel spelled out: row-major CHW rows -> (C, H, W)
    raw = pickle.loads((w.path / "data_batch_1").read_bytes(), encoding="bytes")[b"data"]
    assert d.train_images[0, 2, 5, 7] == raw[0, 2 * 1024 + 5 * 32 + 7]
    assert any(str(w.path) in n for n in d.notes)


def test_cifar10_limits_stop_reading(tmp_path, no_download):
    w = make_cifar10(tmp_path)
    for b in range(3, 6):  # batches the limit does not need are never opened
        (w.path / f"data_batch_{b}").write_bytes(b"garbage")
    d = load_data("cifar10", tmp_path, train_limit=6, test_limit=2, download=False)
    np.testing.assert_array_equal(d.train_images.numpy(), w.train_images[:6])
    np.testing.assert_array_equal(d.train_labels.numpy(), w.train_labels[:6])
    np.testing.assert_array_equal(d.test_images.numpy(), w.test_images[:2])
    with pytest.raises(DataError, match="data_batch_3"):
        load_data("cifar10", tmp_path, download=False)


def test_cifar10_tar(tmp_path, no_download):
    w = make_cifar10_tar(tmp_path)
    assert not (tmp_path / "cifar-10-batches-py").exists()
    d = load_data("cifar10", tmp_path, download=False, train_limit=5)
    np.testing.assert_array_equal(d.train_images.numpy(), w.train_images[:5])
    assert d.classes == w.classes
    assert_matches(load_data("cifar10", tmp_path, download=False), w)
    assert not (tmp_path / "cifar-10-batches-py").exists()  # read in place, nothing extracted


@pytest.mark.parametrize("tar", [False, True])
def test_cifar100(tmp_path, tar, no_download):
    w = make_cifar100(tmp_path, tar=tar)
    d = load_data("cifar100", tmp_path, download=False)
    assert_matches(d, w)
    assert d.num_classes == 100 and d.classes[7] == "fine07"


def test_cifar_modern_numpy_pickles(tmp_path, no_download):
    w = make_cifar10(tmp_path)
    batch = pickle.loads((w.path / "test_batch").read_bytes(), encoding="bytes")
    for protocol in (4, 5):  # numpy._core names, and protocol 5's _frombuffer
        (w.path / "test_batch").write_bytes(pickle.dumps(batch, protocol=protocol))
        d = load_data("cifar10", tmp_path, download=False)
        np.testing.assert_array_equal(d.test_images.numpy(), w.test_images)


def test_restricted_unpickler_refuses_os_system(tmp_path, no_download):
    w = make_cifar10(tmp_path)
    marker = tmp_path / "pwned"
    evil = tmp_path / "cifar-10-batches-py" / "data_batch_1"
    evil.write_bytes(pickle.dumps({b"data": Evil(marker), b"labels": []}, protocol=2))
    with pytest.raises(DataError) as err:
        load_data("cifar10", tmp_path, download=False)
    assert str(evil) in str(err.value) and "system" in str(err.value)
    assert not marker.exists()
    for payload in (pickle.dumps(Evil(marker)), cifar_pickle(eval), pickle.dumps(pickle.Unpickler)):
        with pytest.raises(DataError, match="refusing"):
            readers.restricted_unpickle(payload, "x.pkl")
    assert not marker.exists()
    assert w.path.is_dir()


def test_cifar_corrupt_and_bad_labels(tmp_path, no_download):
    w = make_cifar10(tmp_path)
    batch = w.path / "data_batch_2"
    good = batch.read_bytes()
    batch.write_bytes(good[: len(good) // 2])
    with pytest.raises(DataError, match=f"{batch}.*not a readable pickle"):
        load_data("cifar10", tmp_path, download=False)
    d = pickle.loads(good, encoding="bytes")
    d[b"labels"][3] = 10
    batch.write_bytes(cifar_pickle(d))
    with pytest.raises(DataError, match=f"{batch}: label 10 of image 3 is out of range 0..9"):
        load_data("cifar10", tmp_path, download=False)
    d[b"labels"][3] = 1
    d[b"data"] = d[b"data"][:, :100]
    batch.write_bytes(cifar_pickle(d))
    with pytest.raises(DataError, match="N x 3072"):
        load_data("cifar10", tmp_path, download=False)


def test_cifar_truncated_tar(tmp_path, no_download):
    w = make_cifar10_tar(tmp_path)
    blob = w.path.read_bytes()
    w.path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataError, match=str(w.path)):
        load_data("cifar10", tmp_path, download=False)


def test_cifar_missing_offline_says_where(tmp_path, no_download):
    with pytest.raises(DataError) as err:
        load_data("cifar10", tmp_path, download=False)
    msg = str(err.value)
    assert str(tmp_path / "cifar-10-batches-py") + "/" in msg
    assert str(tmp_path / "cifar-10-python.tar.gz") in msg
    assert "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz" in msg
    with pytest.raises(DataError, match=r"cifar-100-python\.tar\.gz"):
        load_data("cifar100", tmp_path, download=False)


def test_cifar_download_failure_is_a_data_error(tmp_path, monkeypatch):
    import torchvision.datasets

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    with pytest.raises(DataError, match=r"download failed.*no network") as err:
        load_data("cifar10", tmp_path / "new", download=True)
    assert str(tmp_path / "new" / "cifar-10-python.tar.gz") in str(err.value)


def test_cifar_download_then_read(tmp_path, monkeypatch):
    import torchvision.datasets

    written = {}

    def fake_cifar10(root, train=True, download=False):  # what torchvision leaves behind: the extracted folder
        assert download
        written["w"] = make_cifar10(Path(root))

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", fake_cifar10)
    d = load_data("cifar10", tmp_path, download=True)
    assert_matches(d, written["w"])


# ------------------------------------------------------------------------------------------------------------ MNIST


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_mnist_exact(tmp_path, name, gz, no_download, monkeypatch):
    monkeypatch.setattr(readers, "SYSTEM_DIRS", {})
    w = make_mnist(tmp_path, name, gz=gz)
    d = load_data(name, tmp_path, download=False)
    assert_matches(d, w)
    assert d.channels == 1 and d.image_size == (28, 28)
    raw = (w.path / ("train-images-idx3-ubyte" + (".gz" if gz else ""))).read_bytes()
    raw = gzip.decompress(raw) if gz else raw
    assert d.train_images[1, 0, 3, 4] == raw[16 + 784 + 3 * 28 + 4]
    if name == "fashion-mnist":
        assert d.classes[0] == "T-shirt/top" and d.classes[9] == "Ankle boot"


def test_mnist_torchvision_layout_and_limits(tmp_path, no_download):
    w = make_mnist(tmp_path, "mnist", gz=False, folder="MNIST/raw")
    d = load_data("mnist", tmp_path, train_limit=3, test_limit=2, download=False)
    np.testing.assert_array_equal(d.train_images.numpy(), w.train_images[:3])
    np.testing.assert_array_equal(d.test_labels.numpy(), w.test_labels[:2])


def test_fashion_mnist_system_dir(tmp_path, no_download, monkeypatch):
    w = make_mnist(tmp_path, "fashion-mnist", folder="usr-share")
    monkeypatch.setattr(readers, "SYSTEM_DIRS", {"fashion-mnist": (w.path,)})
    assert_matches(load_data("fashion-mnist", tmp_path / "empty", download=False), w)


@pytest.mark.parametrize("gz", [True, False])
def test_idx_truncated_names_file(tmp_path, gz, no_download):
    w = make_mnist(tmp_path, "mnist", gz=gz)
    path = w.path / ("t10k-images-idx3-ubyte" + (".gz" if gz else ""))
    raw = idx_bytes(w.test_images[:, 0])[:-100]
    path.write_bytes(gzip.compress(raw) if gz else raw)
    with pytest.raises(DataError, match=f"{path}: truncated"):
        load_data("mnist", tmp_path, download=False)


def test_idx_corrupt_files(tmp_path, no_download):
    w = make_mnist(tmp_path, "mnist", gz=True)
    path = w.path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(idx_bytes(w.train_labels.astype(np.uint8)))[:-12])  # gzip cut short
    with pytest.raises(DataError, match=str(path)):
        load_data("mnist", tmp_path, download=False)
    path.write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match=str(path)):
        load_data("mnist", tmp_path, download=False)
    path.write_bytes(gzip.compress(b"\x08\x03\x00\x00garbage"))
    with pytest.raises(DataError, match=f"{path}: not an idx file"):
        load_data("mnist", tmp_path, download=False)
    bad = w.train_labels.astype(np.uint8).copy()
    bad[2] = 12
    path.write_bytes(gzip.compress(idx_bytes(bad)))
    with pytest.raises(DataError, match=f"{path}: label 12 of item 2 is out of range"):
        load_data("mnist", tmp_path, download=False)
    path.write_bytes(gzip.compress(idx_bytes(w.train_labels[:3].astype(np.uint8))))
    with pytest.raises(DataError, match=r"8 images but .* has 3 labels"):
        load_data("mnist", tmp_path, download=False)


def test_mnist_missing_offline_says_where(tmp_path, no_download, monkeypatch):
    monkeypatch.setattr(readers, "SYSTEM_DIRS", {})
    for name in ("mnist", "fashion-mnist"):
        with pytest.raises(DataError) as err:
            load_data(name, tmp_path, download=False)
        assert f"in {tmp_path / name}/" in str(err.value)
        assert "train-images-idx3-ubyte.gz" in str(err.value) and "downloading is disabled" in str(err.value)


def test_mnist_download_failure(tmp_path, monkeypatch):
    import torchvision.datasets

    def offline(*args, **kwargs):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    monkeypatch.setattr(torchvision.datasets, "MNIST", offline)
    with pytest.raises(DataError, match="download failed"):
        load_data("mnist", tmp_path, download=True)


# ------------------------------------------------------------------------------------------------------ Tiny ImageNet


@pytest.mark.parametrize("zip", [False, True])
def test_tiny_imagenet_exact(tmp_path, zip):
    w = make_tiny_imagenet(tmp_path, zip=zip)
    d = load_data("tiny-imagenet", tmp_path)
    assert_matches(d, w)
    assert d.classes == ["thing 0", "thing 1", "thing 2"] and d.image_size == (64, 64)
    # train order interleaves classes so that train_limit keeps every class
    assert d.train_labels.tolist() == [0, 1, 2, 0, 1, 2]
    assert d.test_labels.tolist() == [0, 1, 2, 0]


def test_tiny_imagenet_cache_round_trip(tmp_path):
    w = make_tiny_imagenet(tmp_path, zip=True)
    cache = tmp_path / "tiny-imagenet-200.netspec-cache.pt"
    limited = load_data("tiny-imagenet", tmp_path, train_limit=4)
    assert not cache.exists()  # limited runs never write the cache
    np.testing.assert_array_equal(limited.train_images.numpy(), w.train_images[:4])
    first = load_data("tiny-imagenet", tmp_path)
    assert cache.is_file() and any("cached decoded images in" in n for n in first.notes)
    assert not list(tmp_path.glob("*.tmp-*"))
    second = load_data("tiny-imagenet", tmp_path, size=(32, 32), test_limit=2)
    assert any("using cached" in n for n in second.notes)
    assert any("resized 64x64 -> 32x32" in n for n in second.notes)
    assert second.image_size == (32, 32) and len(second.test_labels) == 2
    third = load_data("tiny-imagenet", tmp_path)
    assert any("using cached" in n for n in third.notes)
    assert_matches(third, w)
    # a new zip (different size/mtime) invalidates the cache
    w2 = make_tiny_imagenet(tmp_path, zip=True, seed=1, per_class=3)
    fourth = load_data("tiny-imagenet", tmp_path)
    assert any("out of date" in n for n in fourth.notes)
    assert_matches(fourth, w2)
    cache.write_bytes(b"junk")
    assert any("unreadable cache" in n for n in load_data("tiny-imagenet", tmp_path).notes)


def test_tiny_imagenet_real_jpeg(tmp_path):
    w = make_tiny_imagenet(tmp_path, lossless=False, n_classes=2, per_class=1, n_val=2)
    # one grayscale JPEG, as some Tiny ImageNet images are: loaded as 3 equal channels
    gray = np.full((1, 64, 64), 77, np.uint8)
    (w.path / "val/images/val_1.JPEG").write_bytes(encode_image(gray, "JPEG"))
    d = load_data("tiny-imagenet", tmp_path)
    from PIL import Image

    first = w.path / "train/n00000000/images/n00000000_0.JPEG"
    with Image.open(first) as img:  # JPEG is lossy: compare with PIL's own decode of the file
        np.testing.assert_array_equal(d.train_images[0].numpy(), np.asarray(img.convert("RGB")).transpose(2, 0, 1))
    assert d.test_images.shape == (2, 3, 64, 64)
    assert (d.test_images[1].int() - 77).abs().max() <= 2


def test_tiny_imagenet_errors(tmp_path):
    with pytest.raises(DataError) as err:
        load_data("tiny-imagenet", tmp_path)
    msg = str(err.value)
    assert str(tmp_path / "tiny-imagenet-200.zip") in msg and "cs231n.stanford.edu/tiny-imagenet-200.zip" in msg
    w = make_tiny_imagenet(tmp_path)
    bad = w.path / "train/n00000001/images/n00000001_0.JPEG"
    bad.write_bytes(bad.read_bytes()[:40])
    with pytest.raises(DataError, match=str(bad)):
        load_data("tiny-imagenet", tmp_path)
    ann = w.path / "val/val_annotations.txt"
    ann.write_text("val_0.JPEG\tn12345678\t0\t0\t1\t1\n")
    with pytest.raises(DataError, match=f"{ann}:1"):
        load_data("tiny-imagenet", tmp_path, train_limit=1)


def test_tiny_imagenet_truncated_zip(tmp_path):
    w = make_tiny_imagenet(tmp_path, zip=True)
    blob = w.path.read_bytes()
    w.path.write_bytes(blob[: len(blob) // 3])
    with pytest.raises(DataError, match=str(w.path)):
        load_data("tiny-imagenet", tmp_path)


# ------------------------------------------------------------------------------------------------------- image folder


def test_image_folder_exact(tmp_path):
    w = make_image_folder(tmp_path / "pets")
    d = load_data(str(w.path))
    assert_matches(d, w)
    assert d.name == str(w.path) and d.classes == ["cat", "dog", "frog"] and d.channels == 3
    assert d.train_labels.tolist() == [0, 1, 2] * 3
    d = load_data(str(w.path), train_limit=4, test_limit=1)
    np.testing.assert_array_equal(d.train_images.numpy(), w.train_images[:4])
    assert d.test_labels.tolist() == [0]


def test_image_folder_gray_rgba_val_and_resize(tmp_path):
    gray = make_image_folder(tmp_path / "g", channels=1, ext=".bmp", test_name="val")
    d = load_data(str(gray.path))
    assert d.channels == 1
    assert_matches(d, gray)
    rgba = make_image_folder(tmp_path / "a", channels=4)
    assert_matches(load_data(str(rgba.path)), rgba)
    d = load_data(str(gray.path), size=(16, 12))
    assert d.image_size == (16, 12) and any("16x12" in n for n in d.notes)


def test_image_folder_mixed(tmp_path):
    w = make_image_folder(tmp_path / "m", per_class=2, test_per_class=1)
    # one bigger grayscale image: everything becomes RGB at the most common size (8x8)
    odd = w.path / "train" / "dog" / "zz_big.png"
    odd.write_bytes(encode_image(np.full((1, 20, 10), 200, np.uint8), "PNG"))
    d = load_data(str(w.path))
    assert d.channels == 3 and d.image_size == (8, 8)
    assert any("resized 1 of 10 to the most common, 8x8" in n for n in d.notes)
    assert any("grayscale" in n for n in d.notes)
    last_dog = (d.train_labels == 1).nonzero()[-1].item()
    assert (d.train_images[last_dog].int() - 200).abs().max() <= 1


def test_image_folder_errors(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        load_data(str(tmp_path / "nope"))
    (tmp_path / "e" / "train" / "cat").mkdir(parents=True)
    (tmp_path / "e" / "test").mkdir()
    (tmp_path / "e" / "train" / "cat" / "notes.txt").write_text("no images here")
    with pytest.raises(DataError, match=f"{tmp_path / 'e' / 'train' / 'cat'}: class folder has no images"):
        load_data(str(tmp_path / "e"))
    w = make_image_folder(tmp_path / "c")
    bad = w.path / "test" / "dog" / "dog_001.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(DataError, match=f"{bad}: cannot decode image"):
        load_data(str(w.path))
    w = make_image_folder(tmp_path / "t", test_per_class=0)
    with pytest.raises(DataError, match="has no images"):
        load_data(str(w.path))
    (tmp_path / "only").mkdir()
    with pytest.raises(DataError, match="no train/ subfolder"):
        load_data(str(tmp_path / "only"))
    w = make_image_folder(tmp_path / "x", classes=("a",))
    (w.path / "test" / "b").mkdir()
    with pytest.raises(DataError, match="class 'b' has no folder"):
        load_data(str(w.path))


# ------------------------------------------------------------------------------------------------------------ shapes


def test_shapes_deterministic_and_balanced():
    a = load_data("shapes", seed=3)
    b = make_shapes(seed=3, train_limit=600, test_limit=300)
    assert torch.equal(a.train_images[:600], b.train_images) and torch.equal(a.test_labels[:300], b.test_labels)
    assert a.train_images.shape == (5000, 3, 32, 32) and a.test_images.shape == (1000, 3, 32, 32)
    assert torch.bincount(a.train_labels).tolist() == [500] * 10
    assert torch.bincount(a.test_labels).tolist() == [100] * 10
    assert len(set(a.classes)) == 10
    assert not torch.equal(a.train_images[:1000], a.test_images)  # different streams
    c = load_data("shapes", seed=4, train_limit=30, test_limit=20)
    assert not torch.equal(c.train_images, a.train_images[:30])
    d = load_data("shapes", seed=3, train_limit=30, test_limit=20)
    assert torch.equal(d.train_images, a.train_images[:30])  # limits keep a prefix
    assert torch.bincount(d.train_labels).tolist() == [3] * 10


def test_shapes_size_and_variety():
    d = load_data("shapes", size=(24, 40), train_limit=100, test_limit=10)
    assert d.image_size == (24, 40) and d.channels == 3 and not any("resized" in n for n in d.notes)
    x = d.train_images.float()
    assert x.std(dim=(1, 2, 3)).min() > 5  # every image shows something
    assert x.mean(dim=(0, 2, 3)).sub(127.5).abs().max() < 40  # colours are not biased to one channel


def test_shapes_fast_enough():
    make_shapes(train_limit=10, test_limit=10)  # warm up torch
    start = time.perf_counter()
    make_shapes()
    assert time.perf_counter() - start < 5  # well under 2 s unloaded; generous for busy CI machines


# ------------------------------------------------------------------------------------------------------ API details


def test_resize_cifar_and_mnist(tmp_path, no_download):
    from torchvision.transforms.v2 import functional as F

    w = make_cifar10(tmp_path)
    d = load_data("cifar10", tmp_path, size=(16, 16), download=False)
    assert d.image_size == (16, 16) and "resized 32x32 -> 16x16" in d.notes
    expected = F.resize(torch.from_numpy(w.train_images), [16, 16], antialias=True)
    assert torch.equal(d.train_images, expected)
    same = load_data("cifar10", tmp_path, size=(32, 32), download=False)
    assert not any("resized" in n for n in same.notes)
    make_mnist(tmp_path, "mnist")
    assert load_data("mnist", tmp_path, size=(32, 32), download=False).test_images.shape[1:] == (1, 32, 32)


def test_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="unknown data set 'imagenet'"):
        load_data("imagenet", tmp_path)
    with pytest.raises(UsageError):
        load_data("shapes", size=(0, 3))
    with pytest.raises(UsageError):
        load_data("shapes", train_limit=0)
    with pytest.raises(UsageError):
        load_data("shapes", test_limit=-1)


def test_names_and_defaults(monkeypatch, tmp_path):
    assert DATA_NAMES == ("cifar10", "cifar100", "mnist", "fashion-mnist", "tiny-imagenet", "shapes")
    assert nd.dataset_key("CIFAR-10") == "cifar10" and nd.dataset_key("fashion_mnist") == "fashion-mnist"
    assert nd.dataset_key("some/dir") is None and nd.dataset_key(str(tmp_path)) is None
    monkeypatch.setenv("NETSPEC_DATA", str(tmp_path / "d"))
    assert default_data_dir() == tmp_path / "d"
    monkeypatch.delenv("NETSPEC_DATA")
    assert default_data_dir() == Path.home() / ".cache" / "netspec"
    w = make_cifar10(tmp_path / "d")
    monkeypatch.setenv("NETSPEC_DATA", str(tmp_path / "d"))
    d = load_data("cifar10", download=False, test_limit=1)
    assert repr(d) == "ImageData(name='cifar10', train=20, test=1, channels=3, size=32x32, classes=10)"
    assert w.path.is_dir()
