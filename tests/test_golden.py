"""The report's four networks compile to exactly the modules the report printed (as today's PyTorch prints them)."""

from pathlib import Path

import netspec
import pytest

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).parent / "golden"


@pytest.mark.parametrize(
    "name,input",
    [
        ("cifar_best", None),
        ("cifar_worst", None),
        ("tiny_best", "3x128x128"),  # the report printed it at 128x128 (in_features=4096)
        ("tiny_deep", None),
    ],
)
def test_report_networks_print_as_the_report(name, input):
    compiled = netspec.load(ROOT / "specs" / f"{name}.net", input=input)
    assert str(compiled.module) + "\n" == (GOLDEN / f"{name}.txt").read_text()


@pytest.mark.parametrize(
    "name,input,in_features",
    [
        ("cifar_best", "3x32x32", 256),
        ("cifar_best", "3x64x64", 1024),
        ("cifar_best", "3x128x128", 4096),
        ("tiny_best", None, 1024),
        ("tiny_best", "3x64x64", 1024),
        ("tiny_best", "3x128x128", 4096),
    ],
)
def test_same_spec_compiles_at_any_input_size(name, input, in_features):
    compiled = netspec.load(ROOT / "specs" / f"{name}.net", input=input)
    last = list(compiled.module.children())[-1]
    assert last.in_features == in_features


def test_tiny_specs_default_to_the_data_size():
    for name in ("tiny_best", "tiny_deep"):
        assert netspec.load(ROOT / "specs" / f"{name}.net").network.input == (3, 64, 64)


def test_report_settings_are_in_the_train_sections():
    best = netspec.load(ROOT / "specs" / "cifar_best.net").train
    worst = netspec.load(ROOT / "specs" / "cifar_worst.net").train
    for t in (best, worst):
        assert (t.data, t.epochs, t.batch_size, t.test_batch_size, t.seed) == ("cifar10", 20, 256, 10, 0)
        assert (t.optimizer.kind(), t.optimizer.lr, t.optimizer.momentum, t.optimizer.weight_decay) == (
            "SGD",
            0.01,
            0.9,
            0.0,
        )
        assert [a.kind() for a in t.augment] == ["RandomCrop", "RandomHorizontalFlip"]
        assert t.augment[0].size == (32, 32) and t.augment[0].padding == 4
        assert t.normalize.mean == (0.5, 0.5, 0.5) and t.normalize.std == (0.5, 0.5, 0.5)
    for name in ("tiny_best", "tiny_deep"):
        t = netspec.load(ROOT / "specs" / f"{name}.net").train
        assert (t.data, t.epochs, t.batch_size, t.test_batch_size, t.seed) == ("tiny-imagenet", 10, 256, 10, 0)
        assert (t.optimizer.lr, t.optimizer.momentum, t.optimizer.weight_decay) == (0.01, 0.9, 0.0005)
        assert [a.kind() for a in t.augment] == ["RandomHorizontalFlip", "ColorJitter", "RandomRotation"]
        assert t.augment[2].degrees == 30


def test_report_specs_are_shorter_than_the_modules_they_print():
    for name in ("cifar_best", "cifar_worst", "tiny_best", "tiny_deep"):
        spec = (ROOT / "specs" / f"{name}.net").read_text()
        code = [ln for ln in spec.splitlines() if ln.strip() and not ln.strip().startswith("#")]
        layers = code[: next(i for i, ln in enumerate(code) if ln.startswith("train"))]
        printed = (GOLDEN / f"{name}.txt").read_text().splitlines()
        assert len(layers) < len(printed), name


def test_worst_network_runs_the_documented_order():
    import torch

    compiled = netspec.load(ROOT / "specs" / "cifar_worst.net")
    m = compiled.module.eval()
    x = torch.randn(2, 3, 32, 32)
    # the reading stated in the spec's comments, written out by hand
    with torch.no_grad():
        y = x
        for s in (1, 2, 3):
            y = torch.relu(getattr(m, f"batchnorm_{s}")(getattr(m, f"conv{s}")(y)))
            for i in range(1, 5):
                y = y + getattr(m, f"resblock{s}_{i}")(y)
            y = getattr(m, f"maxpool_{s}")(y)
        y = torch.relu(m.batchnorm_4(m.conv4(y)))
        y = m.flatten(y)
        for n in ("ff_1", "ff_2", "ff_2_2", "ff_3", "ff_4", "ff_5"):
            y = torch.relu(getattr(m, n)(y))
        y = m.ff_6(y)
        assert torch.equal(m(x), y)
