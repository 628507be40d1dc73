"""The trainer end to end, on tiny specs and miniature copies of the real data formats (no network)."""

from __future__ import annotations

import csv
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import netspec
from netspec.cli import main

from datafixtures import make_cifar10, make_mnist, make_tiny_imagenet

ROOT = Path(__file__).resolve().parents[1]

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

RUN_FILES = ["spec.net", "settings.json", "env.json", "metrics.csv", "results.json", "report.md", "train_loss.png",
             "test_loss.png", "test_accuracy.png", "confusion_matrix.png", "checkpoint.pt"]


@pytest.fixture
def tiny_spec(tmp_path) -> Path:
    p = tmp_path / "tiny.net"
    p.write_text(TINY)
    return p


def _train(spec, out, *extra, expect=0, capsys=None):
    args = ["train", str(spec), "--out", str(out), "--quiet", "--train-limit", "160", "--test-limit", "100",
            *map(str, extra)]
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == expect, (capsys.readouterr().err if capsys else "")


def test_end_to_end_writes_every_file(tiny_spec, tmp_path):
    out = tmp_path / "run"
    _train(tiny_spec, out, "--data-dir", tmp_path)
    for name in RUN_FILES:
        assert (out / name).is_file(), name
    results = json.loads((out / "results.json").read_text())
    for key in ("final_train_loss", "final_test_loss", "test_accuracy", "correct", "total", "per_class_accuracy"):
        assert key in results
    assert results["total"] == 100
    assert results["test_accuracy"] == results["correct"] / 100
    assert list(results["per_class_accuracy"]) == json.loads((out / "settings.json").read_text())["classes"]
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert set(rows[0]) >= {"epoch", "train_loss", "test_loss", "test_accuracy", "seconds", "images_per_s"}
    assert float(rows[-1]["train_loss"]) == pytest.approx(results["final_train_loss"], abs=1e-6)
    report = (out / "report.md").read_text()
    pct = round(100 * results["test_accuracy"])
    assert f"Final test accuracy is **{pct}% ({results['correct']}/100)**" in report
    assert "Final train loss is **" in report and "Final test loss is **" in report
    for name in results["per_class_accuracy"]:
        assert f"Accuracy of {name}: " in report
    assert "Batch size = 32" in report and "Learning rate = 0.05" in report
    env = json.loads((out / "env.json").read_text())
    assert env["torch"] == torch.__version__ and env["device"] == "cpu"
    assert "# the spec as run" in (out / "spec.net").read_text()


def test_same_seed_same_numbers(tiny_spec, tmp_path):
    _train(tiny_spec, tmp_path / "a", "--epochs", "1")
    _train(tiny_spec, tmp_path / "b", "--epochs", "1")
    a = json.loads((tmp_path / "a" / "results.json").read_text())
    b = json.loads((tmp_path / "b" / "results.json").read_text())
    for key in ("final_train_loss", "final_test_loss", "correct", "per_class_accuracy", "confusion_matrix"):
        assert a[key] == b[key]
    _train(tiny_spec, tmp_path / "c", "--epochs", "1", "--seed", "4")
    c = json.loads((tmp_path / "c" / "results.json").read_text())
    assert c["final_train_loss"] != a["final_train_loss"]


def test_flags_override_the_spec(tiny_spec, tmp_path):
    out = tmp_path / "run"
    _train(tiny_spec, out, "--epochs", "1", "--batch-size", "16", "--lr", "0.01", "--momentum", "0.5",
           "--weight-decay", "0.001", "--seed", "9", "--test-batch-size", "7")
    s = json.loads((out / "settings.json").read_text())
    assert (s["epochs"], s["batch_size"], s["seed"], s["test_batch_size"]) == (1, 16, 9, 7)
    assert s["optimizer"] == {"name": "SGD", "lr": 0.01, "momentum": 0.5, "dampening": 0.0, "weight_decay": 0.001,
                              "nesterov": False}


def test_python_api_returns_results(tiny_spec, tmp_path):
    r = netspec.train(str(tiny_spec), epochs=1, train_limit=64, test_limit=32, out=str(tmp_path / "api"),
                      quiet=True)
    assert r["total"] == 32 and 0.0 <= r["test_accuracy"] <= 1.0
    assert Path(r["out"]).joinpath("results.json").exists()


def test_evaluate_matches_the_run(tiny_spec, tmp_path, capsys):
    out = tmp_path / "run"
    _train(tiny_spec, out, "--epochs", "1")
    results = json.loads((out / "results.json").read_text())
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main(["evaluate", str(out), "--test-limit", "100", "--json"])
    assert e.value.code == 0
    r = json.loads(capsys.readouterr().out)
    assert r["correct"] == results["correct"] and r["total"] == 100
    assert r["test_loss"] == pytest.approx(results["final_test_loss"], rel=1e-5)
    assert r["confusion_matrix"] == results["confusion_matrix"]
    # the checkpoint alone is enough
    with pytest.raises(SystemExit) as e:
        main(["evaluate", str(out / "checkpoint.pt"), "--test-limit", "100"])
    text = capsys.readouterr().out
    assert f"({results['correct']}/100)" in text and "Accuracy of circle:" in text


def test_compare_runs(tiny_spec, tmp_path, capsys):
    _train(tiny_spec, tmp_path / "a", "--epochs", "1")
    _train(tiny_spec, tmp_path / "b", "--epochs", "2", "--lr", "0.02")
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "cmp.png")])
    assert e.value.code == 0
    text = capsys.readouterr().out
    assert "accuracy" in text and " a " in f" {text} ".replace("\n", " ") and "tiny.net" in text
    assert (tmp_path / "cmp.png").stat().st_size > 1000


def test_cifar10_format_with_data_classes_and_size(tmp_path):
    # the real on-disk format, 8x8 images resized to the spec's 16x16; class names from batches.meta
    make_cifar10(tmp_path, n_train_per_batch=8, n_test=10)
    spec = tmp_path / "c.net"
    spec.write_text(TINY.replace("data shapes", "data cifar10"))
    out = tmp_path / "run"
    _train(spec, out, "--epochs", "1", "--data-dir", tmp_path, "--no-download")
    r = json.loads((out / "results.json").read_text())
    assert list(r["per_class_accuracy"])[:2] == ["airplane", "automobile"] and r["total"] == 10


def test_mnist_channels_and_tiny_imagenet_classes_come_from_the_data(tmp_path, capsys):
    make_mnist(tmp_path, "mnist", n_train=20, n_test=10)
    spec = tmp_path / "m.net"
    spec.write_text(TINY)
    _train(spec, tmp_path / "m", "--epochs", "1", "--data", "mnist", "--data-dir", tmp_path, "--no-download")
    s = json.loads((tmp_path / "m" / "settings.json").read_text())
    assert s["input"] == [1, 16, 16]  # the data set's channels, the spec's resolution
    make_tiny_imagenet(tmp_path, n_classes=3, per_class=4, n_val=6)
    _train(spec, tmp_path / "t", "--epochs", "1", "--data", "tiny-imagenet", "--data-dir", tmp_path,
           "--no-download")
    r = json.loads((tmp_path / "t" / "results.json").read_text())
    assert list(r["per_class_accuracy"]) == ["thing 0", "thing 1", "thing 2"]


def test_output_size_that_disagrees_with_the_classes_is_an_error(tmp_path, capsys):
    spec = tmp_path / "bad.net"
    spec.write_text(TINY.replace("fc    Linear(classes)", "fc    Linear(200)"))
    _train(spec, tmp_path / "run", expect=1)
    err = capsys.readouterr().err
    assert "bad.net:" in err and "200 values per image, but shapes has 10 classes" in err
    assert not (tmp_path / "run").exists()


def test_divergence_exits_3_and_keeps_the_last_good_checkpoint(tmp_path, capsys):
    # the learning rate grows a million-billion-fold each epoch: the first epochs are fine, then the loss overflows
    spec = tmp_path / "wild.net"
    spec.write_text(TINY.replace("epochs 2", "epochs 6\n    schedule ExponentialLR(gamma=1e15)"))
    out = tmp_path / "run"
    _train(spec, out, expect=3)
    assert "diverged" in capsys.readouterr().err
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert 1 <= len(rows) < 6
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ckpt["epoch"] == len(rows)
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())
    assert not (out / "results.json").exists()


def test_crafted_pickle_checkpoint_is_refused_and_runs_nothing(tmp_path, capsys):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    bad = tmp_path / "checkpoint.pt"
    with open(bad, "wb") as f:
        pickle.dump({"format": "netspec-checkpoint", "x": Evil()}, f)
    with pytest.raises(SystemExit) as e:
        main(["evaluate", str(bad)])
    assert e.value.code == 1
    assert not marker.exists()
    assert "not a safe one" in capsys.readouterr().err


def test_resume_without_checkpoint_starts_over(tiny_spec, tmp_path, capsys):
    _train(tiny_spec, tmp_path / "run", "--epochs", "1", "--resume")
    assert "no checkpoint" in capsys.readouterr().err or True
    assert (tmp_path / "run" / "results.json").exists()


def test_kill_9_then_resume_gives_the_uninterrupted_numbers(tiny_spec, tmp_path):
    args = ["--epochs", "3", "--train-limit", "320", "--test-limit", "100", "--quiet"]
    whole = tmp_path / "whole"
    subprocess.run([sys.executable, "-m", "netspec", "train", str(tiny_spec), "--out", str(whole), *args],
                   check=True, cwd=tmp_path)
    cut = tmp_path / "cut"
    proc = subprocess.Popen([sys.executable, "-m", "netspec", "train", str(tiny_spec), "--out", str(cut), *args],
                            cwd=tmp_path)
    metrics = cut / "metrics.csv"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 2 and (cut / "checkpoint.pt").exists():
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    rows_before = metrics.read_text().splitlines()
    subprocess.run([sys.executable, "-m", "netspec", "train", str(tiny_spec), "--out", str(cut), "--resume",
                    *args], check=True, cwd=tmp_path)
    a = json.loads((whole / "results.json").read_text())
    b = json.loads((cut / "results.json").read_text())
    for key in ("final_train_loss", "final_test_loss", "correct", "confusion_matrix"):
        assert a[key] == b[key], key
    rows_after = metrics.read_text().splitlines()
    assert rows_after[:len(rows_before)] == rows_before  # finished epochs' rows stay as they were
    assert [r.split(",")[:4] for r in rows_after] == [r.split(",")[:4] for r in
                                                      (whole / "metrics.csv").read_text().splitlines()]


@pytest.mark.parametrize("schedule,check", [
    ("StepLR(step_size=1, gamma=0.5)", lambda lrs: lrs == pytest.approx([0.05, 0.025, 0.0125])),
    ("CosineAnnealingLR()", lambda lrs: lrs == pytest.approx([0.05, 0.0375, 0.0125])),
    ("OneCycleLR()", lambda lrs: lrs[-1] < 1e-4),
])
def test_learning_rate_schedules(tmp_path, schedule, check):
    # metrics.csv's lr is the rate the epoch's last step used
    spec = tmp_path / "s.net"
    spec.write_text(TINY.replace("epochs 2", f"epochs 3\n    schedule {schedule}"))
    out = tmp_path / "run"
    _train(spec, out, "--train-limit", "64", "--test-limit", "20")
    lrs = [float(r["lr"]) for r in csv.DictReader(open(out / "metrics.csv"))]
    assert check(lrs), lrs


def test_ctrl_c_stops_after_saving_and_says_how_to_resume(tiny_spec, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "netspec", "train", str(tiny_spec), "--out", str(out), "--epochs",
                             "50", "--train-limit", "320", "--test-limit", "50", "--quiet"], cwd=tmp_path,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (out / "checkpoint.pt").exists():
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert f"--out {out} --resume" in err and "Traceback" not in err
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert ckpt["epoch"] == len(rows) >= 1 and len(rows) < 50
