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

import netspec
import pytest
import torch
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
    "checkpoint.pt",
]


@pytest.fixture
def tiny_spec(tmp_path) -> Path:
    p = tmp_path / "tiny.net"
    p.write_text(TINY)
    return p


def _train(spec, out, *extra, expect=0, capsys=None, precision="fp32"):
    # one stated precision: `auto` would be bf16 on a CPU with native bf16 and fp32 elsewhere
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
    assert (out / "spec.net").read_text() == TINY  # exactly the text that ran
    assert "Normalization = Normalize(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))" in report
    assert "1. RandomCrop(size=(16, 16), padding=2)" in report and "3. Normalize" not in report


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
    _train(
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
    _train(tiny_spec, tmp_path / "run", "--data", "fashion-mnst", expect=2)
    assert "unknown data set 'fashion-mnst': did you mean 'fashion-mnist'?" in capsys.readouterr().err


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_evaluate_matches_the_run(tiny_spec, tmp_path, capsys, precision):
    # evaluate runs in the run's precision by default; bf16 is emulated where the CPU lacks it, so this runs anywhere
    out = tmp_path / "run"
    _train(tiny_spec, out, "--epochs", "1", precision=precision)
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
    _train(tiny_spec, tmp_path / "a", "--epochs", "1")
    _train(tiny_spec, tmp_path / "b", "--epochs", "2", "--lr", "0.02")
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
    _train(tiny_spec, tmp_path / "c", "--epochs", "1", "--test-limit", "50")
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
    _train(spec, tmp_path / "t", "--epochs", "1", "--data", "tiny-imagenet", "--data-dir", tmp_path, "--no-download")
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


def _resume(spec, out, *flags):
    """`netspec train [SPEC] --out OUT --resume FLAGS...`: (exit code, stderr)."""
    args = ["train", *([str(spec)] if spec else []), "--out", str(out), "--resume", *map(str, flags)]
    try:
        main(args)
    except SystemExit as e:
        return e.code
    raise AssertionError("main() returned without exiting")


@pytest.fixture(scope="module")
def one_epoch_run(tmp_path_factory):
    """A finished 1-epoch run of TINY on 96 shapes images, batch 32, in fp32 (copied by each test that changes it)."""
    folder = tmp_path_factory.mktemp("resume")
    spec = folder / "tiny.net"
    spec.write_text(TINY)
    with pytest.raises(SystemExit) as e:
        main(
            [
                "train",
                str(spec),
                "--out",
                str(folder / "run"),
                "--quiet",
                "--train-limit",
                "96",
                "--test-limit",
                "40",
                "--epochs",
                "1",
                "--batch-size",
                "16",
                "--precision",
                "fp32",
            ]
        )
    assert e.value.code == 0
    return spec, folder / "run"


def _copy_run(run_dir: Path, to: Path) -> Path:
    import shutil

    shutil.copytree(run_dir, to)
    return to


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--data", "mnist"], "--data mnist contradicts the run in {out}, which has data shapes"),
        (["--train-limit", "95"], "--train-limit 95 contradicts the run in {out}, which has train limit 96"),
        (["--test-limit", "41"], "--test-limit 41 contradicts the run in {out}, which has test limit 40"),
        (["--batch-size", "32"], "--batch-size 32 contradicts the run in {out}, which has batch size 16"),
        (["--seed", "4"], "--seed 4 contradicts the run in {out}, which has seed 3"),
        (["--input", "3x20x20"], "--input 3x20x20 contradicts the run in {out}, which has input 3x16x16"),
        (["--set", "classes=7"], "--set classes=7 contradicts the run in {out}, which has classes = 10"),
        (["--epochs", "0"], "--epochs 0 is fewer than the 1 epochs the run in {out} has already done"),
    ],
)
def test_resume_refuses_a_flag_that_changes_the_run(one_epoch_run, tmp_path, capsys, flags, message):
    spec, run_dir = one_epoch_run
    out = _copy_run(run_dir, tmp_path / "run")
    before = (out / "checkpoint.pt").read_bytes()
    assert _resume(spec, out, *flags) == 2
    err = capsys.readouterr().err
    assert message.format(out=out) in err, err
    assert (out / "checkpoint.pt").read_bytes() == before


def test_resume_accepts_flags_that_leave_the_run_alone(one_epoch_run, tmp_path, capsys):
    spec, run_dir = one_epoch_run
    out = _copy_run(run_dir, tmp_path / "run")
    # the same values as the run's, the free flags, and a longer run (no schedule: nothing depends on the length)
    code = _resume(
        spec,
        out,
        "--data",
        "SHAPES",
        "--train-limit",
        "96",
        "--batch-size",
        "16",
        "--seed",
        "3",
        "--set",
        "classes=10",
        "--input",
        "3x16x16",
        "--epochs",
        "2",
        "--data-dir",
        tmp_path,
        "--device",
        "cpu",
        "--no-channels-last",
        "--quiet",
        "--lr",
        "0.04",
        "--precision",
        "bf16",
    )
    assert code == 0
    err = capsys.readouterr().err
    assert "warning: --resume with --precision bf16: the run trained in fp32" in err
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2"] and rows[1]["lr"] == "0.04"
    s = json.loads((out / "settings.json").read_text())
    assert (s["epochs"], s["train_images"], s["batch_size"], s["precision"]) == (2, 96, 16, "bf16")


def test_resume_with_no_flag_continues_the_same_run(one_epoch_run, tmp_path):
    # `--resume` alone restores data, limits, batch size and precision: resuming a 1-epoch run for a second epoch
    # (--epochs 2) gives exactly the numbers of an uninterrupted 2-epoch run
    spec, run_dir = one_epoch_run
    out = _copy_run(run_dir, tmp_path / "run")
    assert _resume(None, out, "--epochs", "2", "--quiet") == 0
    with pytest.raises(SystemExit):
        main(
            [
                "train",
                str(spec),
                "--out",
                str(tmp_path / "whole"),
                "--quiet",
                "--train-limit",
                "96",
                "--test-limit",
                "40",
                "--epochs",
                "2",
                "--batch-size",
                "16",
                "--precision",
                "fp32",
            ]
        )
    a = json.loads((out / "results.json").read_text())
    b = json.loads((tmp_path / "whole" / "results.json").read_text())
    for key in ("final_train_loss", "final_test_loss", "correct", "confusion_matrix"):
        assert a[key] == b[key], key


def test_resume_refuses_another_spec_and_names_the_line(one_epoch_run, tmp_path, capsys):
    _spec, run_dir = one_epoch_run
    out = _copy_run(run_dir, tmp_path / "run")
    other = tmp_path / "other.net"
    other.write_text(TINY.replace("Conv2d(4,", "Conv2d(8,"))
    assert _resume(other, out) == 2
    err = capsys.readouterr().err
    assert f"--resume: {other} is not the spec of the run in {out}: line 6 is " in err
    assert "'conv  Conv2d(8, kernel_size=3, padding=1)' there and 'conv  Conv2d(4, kernel_size=3, padding=1)'" in err


@pytest.mark.parametrize(
    "schedule,refused",
    [
        (
            "CosineAnnealingLR()",
            "would change the run's CosineAnnealingLR, whose length (T_max) follows from its 1 epochs",
        ),
        ("OneCycleLR()", "would change the run's OneCycleLR, whose length (total_steps) follows from its 1 epochs"),
        ("CosineAnnealingLR(T_max=3)", None),
        ("StepLR(step_size=1, gamma=0.5)", None),
    ],
)
def test_resume_longer_only_where_the_schedule_allows(tmp_path, capsys, schedule, refused):
    spec = tmp_path / "s.net"
    spec.write_text(TINY.replace("epochs 2", f"epochs 1\n    schedule {schedule}"))
    out = tmp_path / "run"
    _train(spec, out, "--train-limit", "64", "--test-limit", "20")
    code = _resume(spec, out, "--epochs", "3")
    err = capsys.readouterr().err
    if refused:
        assert code == 2 and refused in err, err
        assert len(list(csv.DictReader(open(out / "metrics.csv")))) == 1
    else:
        assert code == 0, err
        lrs = [float(r["lr"]) for r in csv.DictReader(open(out / "metrics.csv"))]
        assert len(lrs) == 3 and lrs[0] > lrs[1] > lrs[2]  # the schedule goes on where it was, never back up


def test_resume_of_nothing_is_a_usage_error(tiny_spec, tmp_path, capsys):
    assert _resume(tiny_spec, tmp_path / "typo") == 2
    assert f"--resume: {tmp_path / 'typo'}: no such run folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert _resume(tiny_spec, tmp_path / "empty") == 2
    assert f"--resume: {tmp_path / 'empty'} holds no run" in capsys.readouterr().err
    assert not (tmp_path / "typo").exists() and list((tmp_path / "empty").iterdir()) == []


def test_resume_before_the_first_checkpoint_starts_again_from_the_stored_settings(one_epoch_run, tmp_path, capsys):
    spec, run_dir = one_epoch_run
    out = _copy_run(run_dir, tmp_path / "run")
    for name in ("checkpoint.pt", "metrics.csv", "results.json"):  # as if killed during epoch 1
        (out / name).unlink()
    assert _resume(spec, out) == 0
    assert "has no checkpoint yet: starting its run again from the beginning" in capsys.readouterr().err
    a = json.loads((out / "results.json").read_text())
    b = json.loads((run_dir / "results.json").read_text())
    for key in ("final_train_loss", "final_test_loss", "correct", "confusion_matrix"):
        assert a[key] == b[key], key


def test_kill_9_then_resume_gives_the_uninterrupted_numbers(tiny_spec, tmp_path):
    args = ["--epochs", "3", "--train-limit", "320", "--test-limit", "100", "--quiet", "--precision", "fp32"]
    whole = tmp_path / "whole"
    subprocess.run(
        [sys.executable, "-m", "netspec", "train", str(tiny_spec), "--out", str(whole), *args], check=True, cwd=tmp_path
    )
    cut = tmp_path / "cut"
    proc = subprocess.Popen(
        [sys.executable, "-m", "netspec", "train", str(tiny_spec), "--out", str(cut), *args], cwd=tmp_path
    )
    metrics = cut / "metrics.csv"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 2 and (cut / "checkpoint.pt").exists():
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    rows_before = metrics.read_text().splitlines()
    # no flag but --resume: the run's own settings are restored from its folder
    subprocess.run(
        [sys.executable, "-m", "netspec", "train", str(tiny_spec), "--out", str(cut), "--resume"],
        check=True,
        cwd=tmp_path,
    )
    a = json.loads((whole / "results.json").read_text())
    b = json.loads((cut / "results.json").read_text())
    for key in ("final_train_loss", "final_test_loss", "correct", "confusion_matrix"):
        assert a[key] == b[key], key
    rows_after = metrics.read_text().splitlines()
    assert rows_after[: len(rows_before)] == rows_before  # finished epochs' rows stay as they were
    assert [r.split(",")[:4] for r in rows_after] == [
        r.split(",")[:4] for r in (whole / "metrics.csv").read_text().splitlines()
    ]


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
    _train(spec, out, "--train-limit", "64", "--test-limit", "20")
    lrs = [float(r["lr"]) for r in csv.DictReader(open(out / "metrics.csv"))]
    assert check(lrs), lrs


def test_ctrl_c_stops_after_saving_and_the_printed_command_resumes(tiny_spec, tmp_path):
    import shlex

    out = tmp_path / "run"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "netspec",
            "train",
            str(tiny_spec),
            "--out",
            str(out),
            "--epochs",
            "4",
            "--train-limit",
            "320",
            "--test-limit",
            "50",
            "--quiet",
            "--data",
            "shapes",
        ],
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while time.time() < deadline and not (out / "checkpoint.pt").exists():
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert ckpt["epoch"] == len(rows) >= 1 and len(rows) < 4
    # the command it printed, run exactly as printed, finishes the same run
    printed = err.split("continue with: ", 1)[1].splitlines()[0].strip()
    argv = shlex.split(printed)
    assert argv[:2] == ["netspec", "train"] and argv[-3:] == ["--out", str(out), "--resume"]
    done = subprocess.run(
        [sys.executable, "-m", "netspec", *argv[1:]], cwd=tmp_path, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("final: ")  # the result line is printed even with the run's --quiet
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4]
    assert json.loads((out / "results.json").read_text())["total"] == 50
