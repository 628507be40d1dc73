"""The tiny spec the trainer's tests train, and `netspec train` run in-process on it (tests/test_train.py,
tests/test_resume.py)."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
from netspec.cli import main

TINY = """
network Tiny
input 3x16x16
classes = 10
layers {
    conv  Conv2d(4, kernel_size=3, padding=1)
    bn    BatchNorm2d()
    relu  ReLU()
    pool  MaxPool2d(4)
    flat  Flatten()
    fc    Linear(classes)
}
train {
    data shapes
    epochs 2
    batch_size 32
    test_batch_size 50
    optimizer SGD(lr=0.05, momentum=0.9)
    seed 3
    augment [RandomCrop(padding=2), RandomHorizontalFlip()]
    normalize Normalize(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
}
"""


def train_cli(spec, out, *extra, expect=0, capsys=None, precision="fp32"):
    # one stated precision: the numbers tests compare must not depend on what `auto` picks on some machine
    args = [
        "train",
        str(spec),
        "--out",
        str(out),
        "--quiet",
        "--train-limit",
        "160",
        "--test-limit",
        "100",
        "--precision",
        precision,
        *map(str, extra),
    ]
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == expect, capsys.readouterr().err if capsys else ""


class _Evil:
    """A pickle that runs a command when loaded: what `torch.load(..., weights_only=True)` must refuse."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def crafted_checkpoint(folder: Path) -> tuple[Path, Path]:
    """A checkpoint.pt in `folder` that would create the returned marker file if anything unpickled it."""
    marker = folder / "pwned"
    bad = folder / "checkpoint.pt"
    with open(bad, "wb") as f:
        pickle.dump({"format": "netspec-checkpoint", "x": _Evil(marker)}, f)
    return bad, marker
