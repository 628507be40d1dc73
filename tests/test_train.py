"""The trainer end to end, on tiny specs and miniature copies of the real data formats (no network)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import netspec
import pytest
import torch
from netspec.cli import main

from datafixtures import make_cifar10, make_mnist, make_tiny_imagenet
from trainfixtures import TINY, crafted_checkpoint, train_cli

ROOT = Path(__file__).resolve().parents[1]

RUN_FILES = [
    "spec.net",
    "settings.json",
    "env.json",
    "metrics.csv",
    "results.json",
    "report.md",
    "train_loss.png",
    "test_loss.png",
    "test_accuracy.png",
    "learning_rate.png",
    "confusion_matrix.png",
    "architecture.svg",
    "checkpoint.pt",
]


@pytest.fixture
def tiny_spec(tmp_path) -> Path:
    p = tmp_path / "tiny.net"
    p.write_text(TINY)
    return p


def test_end_to_end_writes_every_file(tiny_spec, tmp_path):
    out = tmp_path / "run"
    train_cli(tiny_spec, out, "--data-dir", tmp_path)
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
    assert (out / "spec.net").read_text() == TINY  # exactly the text that ran
    assert "Normalization = Normalize(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))" in report
    assert "1. RandomCrop(size=(16, 16), padding=2)" in report and "3. Normalize" not in report


def test_same_seed_same_numbers(tiny_spec, tmp_path):
    train_cli(tiny_spec, tmp_path / "a", "--epochs", "1")
    train_cli(tiny_spec, tmp_path / "b", "--epochs", "1")
    a = json.loads((tmp_path / "a" / "results.json").read_text())
    b = json.loads((tmp_path / "b" / "results.json").read_text())
    for key in ("final_train_loss", "final_test_loss", "correct", "per_class_accuracy", "confusion_matrix"):
        assert a[key] == b[key]
    train_cli(tiny_spec, tmp_path / "c", "--epochs", "1", "--seed", "4")
    c = json.loads((tmp_path / "c" / "results.json").read_text())
    assert c["final_train_loss"] != a["final_train_loss"]


def test_flags_override_the_spec(tiny_spec, tmp_path):
    out = tmp_path / "run"
    train_cli(
        tiny_spec,
        out,
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--lr",
        "0.01",
        "--momentum",
        "0.5",
        "--weight-decay",
        "0.001",
        "--seed",
        "9",
        "--test-batch-size",
        "7",
    )
    s = json.loads((out / "settings.json").read_text())
    assert (s["epochs"], s["batch_size"], s["seed"], s["test_batch_size"]) == (1, 16, 9, 7)
    assert s["optimizer"] == {
        "name": "SGD",
        "lr": 0.01,
        "momentum": 0.5,
        "dampening": 0.0,
        "weight_decay": 0.001,
        "nesterov": False,
    }


def test_python_api_returns_results(tiny_spec, tmp_path):
    r = netspec.train(str(tiny_spec), epochs=1, train_limit=64, test_limit=32, out=str(tmp_path / "api"), quiet=True)
    assert r["total"] == 32 and 0.0 <= r["test_accuracy"] <= 1.0
    assert r == json.loads(Path(r["out"]).joinpath("results.json").read_text())  # every key of results.json


def test_trains_takes_spec_text_and_train_a_file(tiny_spec, tmp_path):
    from netspec.training.run import trains

    quick = dict(epochs=1, train_limit=64, test_limit=32, quiet=True, precision="fp32")
    a = trains(TINY, out=str(tmp_path / "text"), **quick)
    b = netspec.train(tiny_spec, out=str(tmp_path / "file"), **quick)  # a Path, or a str: always a file
    for key in ("final_train_loss", "final_test_loss", "correct", "confusion_matrix"):
        assert a[key] == b[key], key
    assert (tmp_path / "text" / "spec.net").read_text() == TINY
    assert json.loads((tmp_path / "text" / "settings.json").read_text())["spec"] is None
    with pytest.raises(netspec.UsageError):  # spec text is no file name
        netspec.train(TINY, out=str(tmp_path / "never"), **quick)
    assert not (tmp_path / "never").exists()


@pytest.mark.parametrize(
    "options,message",
    [
        (dict(epochs=0), "--epochs 0: must be >= 1"),
        (dict(batch_size=-3), "--batch-size -3: must be >= 1"),
        (dict(seed=-1), "--seed -1: must be >= 0"),
        (dict(lr=-1.0), "--lr -1.0: must be a positive number"),
        (dict(momentum=-0.5), "--momentum -0.5: must be >= 0"),
        (dict(test_batch_size="8"), "--test-batch-size 8: must be a valid integer"),
    ],
)
def test_options_are_judged_by_the_settings_models(tiny_spec, tmp_path, options, message):
    with pytest.raises(netspec.UsageError) as e:
        netspec.train(tiny_spec, out=str(tmp_path / "run"), **options)
    assert str(e.value) == message
    assert not (tmp_path / "run").exists()


def test_an_option_the_optimizer_lacks_or_an_unknown_option(tmp_path):
    spec = tmp_path / "adam.net"
    spec.write_text(TINY.replace("SGD(lr=0.05, momentum=0.9)", "Adam(lr=0.01)"))
    with pytest.raises(netspec.UsageError, match=r"^--momentum: Adam has no momentum$"):
        netspec.train(spec, momentum=0.9, out=str(tmp_path / "run"))
    with pytest.raises(TypeError, match="unknown options: progress"):  # `quiet` is the one keyword for it
        netspec.train(spec, progress=False)


def test_every_optimizer_and_schedule_of_the_language_builds():
    # the spec language's names and the trainer's torch classes: one table each side, and every entry builds
    from netspec.lang import train_section as S
    from netspec.training.optim import OPTIMIZERS, SCHEDULES, make_optimizer, make_schedule

    assert set(OPTIMIZERS) == set(S.OPTIMIZERS) and set(SCHEDULES) == set(S.SCHEDULES)
    params = [torch.nn.Parameter(torch.zeros(2))]
    for name, model in S.OPTIMIZERS.items():
        optimizer = make_optimizer(model.model_validate({"lr": 0.5}), params)
        assert type(optimizer) is OPTIMIZERS[name] and optimizer.param_groups[0]["lr"] == 0.5
    required = {"StepLR": {"step_size": 2}, "MultiStepLR": {"milestones": (1, 3)}, "ExponentialLR": {"gamma": 0.9},
                "CosineAnnealingLR": {"T_max": 4}, "OneCycleLR": {"max_lr": 0.5}}  # fmt: skip
    for name, model in S.SCHEDULES.items():
        optimizer = torch.optim.SGD(params, lr=0.5)
        scheduler, per_batch = make_schedule(model.model_validate(required[name]), optimizer, 3, 5)
        assert type(scheduler) is SCHEDULES[name] and per_batch == (name == "OneCycleLR")
    assert make_schedule(None, optimizer, 3, 5) == (None, False)


def test_output_without_a_terminal_is_one_line_per_epoch(tiny_spec, tmp_path):
    # stderr is a pipe here: no progress-bar frames, one line per epoch; the result line goes to stdout
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "netspec",
            "train",
            str(tiny_spec),
            "--out",
            str(tmp_path / "run"),
            "--train-limit",
            "64",
            "--test-limit",
            "20",
            "--precision",
            "fp32",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr
    assert "\r" not in proc.stderr
    assert [ln.split()[:2] for ln in proc.stderr.splitlines() if ln.startswith("epoch")] == [
        ["epoch", "1/2"],
        ["epoch", "2/2"],
    ]
    assert proc.stdout.startswith("final: train loss ") and len(proc.stdout.splitlines()) == 1


def test_a_mistyped_data_set_gets_a_suggestion(tiny_spec, tmp_path, capsys):
    train_cli(tiny_spec, tmp_path / "run", "--data", "fashion-mnst", expect=2)
    assert "unknown data set 'fashion-mnst': did you mean 'fashion-mnist'?" in capsys.readouterr().err


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_evaluate_matches_the_run(tiny_spec, tmp_path, capsys, precision):
    # evaluate runs in the run's precision by default; bf16 is emulated where the CPU lacks it, so this runs anywhere
    out = tmp_path / "run"
    train_cli(tiny_spec, out, "--epochs", "1", precision=precision)
    results = json.loads((out / "results.json").read_text())
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main(["evaluate", str(out), "--json"])
    assert e.value.code == 0
    r = json.loads(capsys.readouterr().out)
    assert (r["precision"], r["data"], r["test_limit"], r["total"]) == (precision, "shapes", 100, 100)
    # fp32: as tight as float sums in another order allow; bf16: a few bf16 steps (8 bits of mantissa)
    assert r["test_loss"] == pytest.approx(results["final_test_loss"], rel=1e-5 if precision == "fp32" else 1e-2)
    if precision == "fp32":
        assert r["correct"] == results["correct"] and r["confusion_matrix"] == results["confusion_matrix"]
    else:
        assert abs(r["correct"] - results["correct"]) <= 2
    # the checkpoint alone is enough, and the text says what was compared
    with pytest.raises(SystemExit) as e:
        main(["evaluate", str(out / "checkpoint.pt"), "--test-limit", "50", "--precision", "fp32"])
    text = capsys.readouterr().out
    assert "data: shapes, the first 50 test images (50); precision: fp32" in text
    assert "/50)" in text and "Accuracy of circle:" in text


def test_compare_runs(tiny_spec, tmp_path, capsys):
    train_cli(tiny_spec, tmp_path / "a", "--epochs", "1")
    train_cli(tiny_spec, tmp_path / "b", "--epochs", "2", "--lr", "0.02")
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "cmp.png")])
    assert e.value.code == 0
    text = capsys.readouterr().out
    header = text.splitlines()[0].split()
    assert header[:8] == ["run", "spec", "data", "train", "test", "input", "epochs", "precision"]
    row_a = text.splitlines()[2].split()
    assert row_a[:8] == ["a", "tiny.net", "shapes", "160", "100", "3x16x16", "1", "fp32"]
    assert "warning" not in text
    assert (tmp_path / "cmp.png").stat().st_size > 1000
    # tested on other data: said plainly
    train_cli(tiny_spec, tmp_path / "c", "--epochs", "1", "--test-limit", "50")
    with pytest.raises(SystemExit):
        main(["compare", str(tmp_path / "a"), str(tmp_path / "c"), "--out", str(tmp_path / "cmp2.png")])
    text = capsys.readouterr().out
    assert "warning: these runs were tested on different data (shapes, 50 test images; shapes, 100 test images)" in text


def test_plots_name_the_run_and_count_whole_epochs(tiny_spec, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from netspec.training.report import _curve, run_title

    assert run_title({"spec": "specs/cifar_best.net", "data": "cifar10"}) == "cifar_best.net on cifar10"
    import matplotlib.pyplot as plt

    captured = {}
    original = plt.Figure.savefig

    def keep(fig, path, *a, **k):
        ax = fig.axes[0]
        captured["title"] = ax.get_title()
        captured["ticks"] = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        return original(fig, path, *a, **k)

    plt.Figure.savefig = keep
    try:
        _curve(tmp_path / "x.png", [1, 2, 3], {"lr": [0.1, 0.05, 0.01]}, "lr", "learning rate: tiny.net on shapes")
    finally:
        plt.Figure.savefig = original
    assert captured["title"] == "learning rate: tiny.net on shapes"
    assert captured["ticks"] and all(float(t).is_integer() for t in captured["ticks"])


def test_cifar10_format_with_data_classes_and_size(tmp_path):
    # the real on-disk format, 8x8 images resized to the spec's 16x16; class names from batches.meta
    make_cifar10(tmp_path, n_train_per_batch=8, n_test=10)
    spec = tmp_path / "c.net"
    spec.write_text(TINY.replace("data shapes", "data cifar10"))
    out = tmp_path / "run"
    train_cli(spec, out, "--epochs", "1", "--data-dir", tmp_path, "--no-download")
    r = json.loads((out / "results.json").read_text())
    assert list(r["per_class_accuracy"])[:2] == ["airplane", "automobile"] and r["total"] == 10


def test_mnist_channels_and_tiny_imagenet_classes_come_from_the_data(tmp_path, capsys):
    make_mnist(tmp_path, "mnist", n_train=20, n_test=10)
    spec = tmp_path / "m.net"
    spec.write_text(TINY)
    train_cli(spec, tmp_path / "m", "--epochs", "1", "--data", "mnist", "--data-dir", tmp_path, "--no-download")
    s = json.loads((tmp_path / "m" / "settings.json").read_text())
    assert s["input"] == [1, 16, 16]  # the data set's channels, the spec's resolution
    make_tiny_imagenet(tmp_path, n_classes=3, per_class=4, n_val=6)
    train_cli(spec, tmp_path / "t", "--epochs", "1", "--data", "tiny-imagenet", "--data-dir", tmp_path, "--no-download")
    r = json.loads((tmp_path / "t" / "results.json").read_text())
    assert list(r["per_class_accuracy"]) == ["thing 0", "thing 1", "thing 2"]


def test_output_size_that_disagrees_with_the_classes_is_an_error(tmp_path, capsys):
    spec = tmp_path / "bad.net"
    spec.write_text(TINY.replace("fc    Linear(classes)", "fc    Linear(200)"))
    train_cli(spec, tmp_path / "run", expect=1)
    err = capsys.readouterr().err
    assert "bad.net:" in err and "200 values per image, but shapes has 10 classes" in err
    assert not (tmp_path / "run").exists()


def test_divergence_exits_3_and_keeps_the_last_good_checkpoint(tmp_path, capsys):
    # the learning rate grows a million-billion-fold each epoch: the first epochs are fine, then the loss overflows
    spec = tmp_path / "wild.net"
    spec.write_text(TINY.replace("epochs 2", "epochs 6\n    schedule ExponentialLR(gamma=1e15)"))
    out = tmp_path / "run"
    train_cli(spec, out, expect=3)
    assert "diverged" in capsys.readouterr().err
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert 1 <= len(rows) < 6
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ckpt["epoch"] == len(rows)
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())
    assert not (out / "results.json").exists()


def test_crafted_pickle_checkpoint_is_refused_and_runs_nothing(tmp_path, capsys):
    bad, marker = crafted_checkpoint(tmp_path)
    with pytest.raises(SystemExit) as e:
        main(["evaluate", str(bad)])
    assert e.value.code == 1
    assert not marker.exists()
    assert "not a safe one" in capsys.readouterr().err


@pytest.mark.parametrize(
    "schedule,check",
    [
        ("StepLR(step_size=1, gamma=0.5)", lambda lrs: lrs == pytest.approx([0.05, 0.025, 0.0125])),
        ("CosineAnnealingLR()", lambda lrs: lrs == pytest.approx([0.05, 0.0375, 0.0125])),
        ("OneCycleLR()", lambda lrs: lrs[-1] < 1e-4),
    ],
)
def test_learning_rate_schedules(tmp_path, schedule, check):
    # metrics.csv's lr is the rate the epoch's last step used
    spec = tmp_path / "s.net"
    spec.write_text(TINY.replace("epochs 2", f"epochs 3\n    schedule {schedule}"))
    out = tmp_path / "run"
    train_cli(spec, out, "--train-limit", "64", "--test-limit", "20")
    lrs = [float(r["lr"]) for r in csv.DictReader(open(out / "metrics.csv"))]
    assert check(lrs), lrs


def test_auto_precision_is_fp32_on_any_cpu(monkeypatch):
    # measured: bf16 cost 1.2 points on a BatchNorm network (docs/performance.md), so `auto` never picks it on a CPU,
    # whether or not the CPU has native bf16; forcing it stays possible
    from netspec.training import device as D

    cpu = torch.device("cpu")
    for native in (True, False):
        monkeypatch.setattr(D, "cpu_has_native_bf16", lambda native=native: native)
        assert D.resolve_precision("auto", cpu) == "fp32"
        assert D.resolve_precision("bf16", cpu) == "bf16"
