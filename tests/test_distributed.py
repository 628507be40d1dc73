"""DistributedDataParallel through torchrun: 2 CPU processes (gloo) train exactly what 1 process trains."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

# no BatchNorm: per-process batch statistics would (rightly) differ from one process's
SPEC = """
network Small
input 3x12x12
classes = 10
layers {
    conv  Conv2d(6, kernel_size=3, padding=1)
    relu  ReLU()
    pool  MaxPool2d(3)
    flat  Flatten()
    fc    Linear(classes)
}
train {
    data shapes
    epochs 1
    batch_size 30
    test_batch_size 7
    optimizer SGD(lr=0.05, momentum=0.9)
    augment [RandomCrop(padding=2), RandomHorizontalFlip()]
}
"""


def _run(cmd, cwd):
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_two_processes_equal_one(tmp_path, precision):
    # one stated precision for both runs (`auto` would differ between CPUs); bf16 is emulated where not native
    spec = tmp_path / "small.net"
    spec.write_text(SPEC)
    # 100 images in global batches of 30: the last batch (10) splits 5 + 5; 45 test images split 23 + 22
    common = [
        "train",
        str(spec),
        "--train-limit",
        "100",
        "--test-limit",
        "45",
        "--quiet",
        "--device",
        "cpu",
        "--precision",
        precision,
    ]
    _run([sys.executable, "-m", "netspec", *common, "--out", str(tmp_path / "one")], tmp_path)
    _run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "netspec",
            *common,
            "--out",
            str(tmp_path / "two"),
        ],
        tmp_path,
    )
    one = torch.load(tmp_path / "one" / "checkpoint.pt", weights_only=True)
    two = torch.load(tmp_path / "two" / "checkpoint.pt", weights_only=True)
    assert one["model"].keys() == two["model"].keys()
    # fp32: only the order of float sums differs; bf16: half-batches round differently, a few bf16 steps apart
    # (measured: 9e-4 relative)
    rtol, atol = (1e-4, 1e-5) if precision == "fp32" else (1e-2, 1e-3)
    for key in one["model"]:
        assert torch.allclose(one["model"][key], two["model"][key], atol=atol, rtol=rtol), key
    r1 = json.loads((tmp_path / "one" / "results.json").read_text())
    r2 = json.loads((tmp_path / "two" / "results.json").read_text())
    assert r2["total"] == 45  # the test set is evaluated once in total, split between the processes
    assert r1["final_train_loss"] == pytest.approx(r2["final_train_loss"], abs=1e-4 if precision == "fp32" else 1e-2)
    s2 = json.loads((tmp_path / "two" / "settings.json").read_text())
    assert s2["world_size"] == 2 and s2["batch_size"] == 30  # --batch-size stays the global batch
    assert s2["precision"] == precision
    assert not any(p.name.startswith("rank") for p in (tmp_path / "two").iterdir())
