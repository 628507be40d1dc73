"""`--resume` continues the same run or refuses; a killed or interrupted run ends with the uninterrupted numbers."""

from __future__ import annotations

import csv
import json
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from netspec.cli import main

from trainfixtures import TINY, train_cli


@pytest.fixture
def tiny_spec(tmp_path) -> Path:
    p = tmp_path / "tiny.net"
    p.write_text(TINY)
    return p


def _resume(spec, out, *flags):
    """`netspec train [SPEC] --out OUT --resume FLAGS...`: (exit code, stderr)."""
    args = ["train", *([str(spec)] if spec else []), "--out", str(out), "--resume", *map(str, flags)]
    try:
        main(args)
    except SystemExit as e:
        return e.code
    raise AssertionError("main() returned without exiting")


# the settings of `one_epoch_run`, but for its epochs
ONE_EPOCH_RUN = ["--quiet", "--train-limit", "96", "--test-limit", "40", "--batch-size", "16", "--precision", "fp32"]


@pytest.fixture(scope="module")
def one_epoch_run(tmp_path_factory):
    """A finished 1-epoch run of TINY on 96 shapes images, batch 16, in fp32 (copied by each test that changes it)."""
    folder = tmp_path_factory.mktemp("resume")
    spec = folder / "tiny.net"
    spec.write_text(TINY)
    with pytest.raises(SystemExit) as e:
        main(["train", str(spec), "--out", str(folder / "run"), "--epochs", "1", *ONE_EPOCH_RUN])
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
        main(["train", str(spec), "--out", str(tmp_path / "whole"), "--epochs", "2", *ONE_EPOCH_RUN])
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
    train_cli(spec, out, "--train-limit", "64", "--test-limit", "20")
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


def test_ctrl_c_stops_after_saving_and_the_printed_command_resumes(tiny_spec, tmp_path):
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
