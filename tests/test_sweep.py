"""`netspec sweep`: grids and searches over a tiny spec on the synthetic `shapes` data (no network), each run a few
dozen images for an epoch or two."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("optuna")

import netspec.training.run as run_module
from netspec.cli import main

ROOT = Path(__file__).resolve().parents[1]

SPEC = """
network Tiny
input 3x16x16
classes = 10
width = 4
layers {
    conv  Conv2d(width, kernel_size=3, padding=1)
    bn    BatchNorm2d()
    relu  ReLU()
    pool  MaxPool2d(4)
    flat  Flatten()
    fc    Linear(classes)
}
train {
    data shapes
    epochs 2
    batch_size 16
    optimizer SGD(lr=0.05, momentum=0.9)
    seed 3
}
"""

QUICK = ["--train-limit", "64", "--test-limit", "32", "--precision", "fp32", "--device", "cpu"]


@pytest.fixture
def spec(tmp_path) -> Path:
    p = tmp_path / "tiny.net"
    p.write_text(SPEC)
    return p


def sweep(spec, out, *args, expect=0, capsys=None):
    with pytest.raises(SystemExit) as e:
        main(["sweep", str(spec), "--out", str(out), *QUICK, *map(str, args)])
    assert e.value.code == expect, capsys.readouterr().err if capsys else ""


def summary(out: Path) -> list[dict[str, str]]:
    with open(out / "summary.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_grid_trains_every_point_and_summarizes(spec, tmp_path, capsys):
    out = tmp_path / "sw"
    sweep(spec, out, "--vary", "width=2,4", "--vary", "lr=0.01,0.1", capsys=capsys)
    rows = summary(out)
    assert sorted((r["width"], r["lr"]) for r in rows) == [("2", "0.01"), ("2", "0.1"), ("4", "0.01"), ("4", "0.1")]
    assert all(r["status"] == "finished" for r in rows)
    accs = [float(r["accuracy"]) for r in rows]
    assert accs == sorted(accs, reverse=True)
    assert {r["params"] for r in rows} == {"390", "770"}  # as `netspec check` counts them
    for r in rows:
        results = json.loads((out / r["run"] / "results.json").read_text())
        assert float(r["accuracy"]) == results["test_accuracy"]
        assert float(r["test_loss"]) == results["final_test_loss"]
    assert (out / "pareto.png").stat().st_size > 0
    assert "width4-lr0.1" in capsys.readouterr().out  # the table on the terminal too

    # again: nothing trains, the same summary
    before = {r["run"]: (out / r["run"] / "results.json").stat().st_mtime_ns for r in rows}
    sweep(spec, out, "--vary", "width=2,4", "--vary", "lr=0.01,0.1", capsys=capsys)
    assert {r["run"]: (out / r["run"] / "results.json").stat().st_mtime_ns for r in rows} == before
    assert summary(out) == rows

    # compare takes the sweep folder for its runs
    with pytest.raises(SystemExit) as e:
        main(["compare", str(out), "--out", str(tmp_path / "c.png")])
    assert e.value.code == 0
    shown = capsys.readouterr().out
    assert all(r["run"] in shown for r in rows)


def test_an_interrupted_point_resumes_from_its_checkpoint(spec, tmp_path, monkeypatch, capsys):
    epoch, calls = run_module._epoch, []

    def interrupted_second_epoch(r, n, stop):
        calls.append(n)
        if len(calls) == 4:  # the second run's second epoch: the first is saved
            raise KeyboardInterrupt
        return epoch(r, n, stop)

    out = tmp_path / "sw"
    monkeypatch.setattr(run_module, "_epoch", interrupted_second_epoch)
    sweep(spec, out, "--vary", "lr=0.01,0.1", expect=130, capsys=capsys)
    monkeypatch.setattr(run_module, "_epoch", epoch)
    statuses = sorted(json.loads(p.read_text())["status"] for p in out.glob("*/trial.json"))
    assert statuses == ["finished", "interrupted"]
    sweep(spec, out, "--vary", "lr=0.01,0.1", capsys=capsys)
    rows = summary(out)
    assert [r["status"] for r in rows] == ["finished", "finished"]
    resumed = [r["run"] for r in rows if "resuming" in (out / r["run"] / "log.txt").read_text()]
    assert len(resumed) == 1
    clean = tmp_path / "clean"
    sweep(spec, clean, "--vary", "lr=0.01,0.1", capsys=capsys)
    key = {r["run"]: (r["train_loss"], r["test_loss"], r["accuracy"]) for r in summary(clean)}
    assert {r["run"]: (r["train_loss"], r["test_loss"], r["accuracy"]) for r in rows} == key


def test_seeds_give_mean_and_spread_and_same_values_same_numbers(spec, tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    sweep(spec, a, "--vary", "seed=0,1", "--vary", "lr=0.01,0.05", "--epochs", "1", capsys=capsys)
    sweep(spec, b, "--vary", "seed=0,1", "--vary", "lr=0.01,0.05", "--epochs", "1", capsys=capsys)
    ra, rb = summary(a), summary(b)
    numbers = {r["run"]: (r["train_loss"], r["test_loss"], r["accuracy"]) for r in ra}
    assert numbers == {r["run"]: (r["train_loss"], r["test_loss"], r["accuracy"]) for r in rb}
    assert len({n[0] for n in numbers.values()}) == 4  # different settings never come out identical
    assert {r["seeds"] for r in ra} == {"2"}
    for lr in ("0.01", "0.05"):
        accs = [float(r["accuracy"]) for r in ra if r["lr"] == lr]
        means = [float(r["accuracy_mean"]) for r in ra if r["lr"] == lr]
        assert means == pytest.approx([sum(accs) / 2] * 2)


def test_a_bad_point_stops_the_sweep_before_anything_trains(spec, tmp_path, capsys):
    out = tmp_path / "sw"
    sweep(spec, out, "--vary", "width=4,0", expect=1, capsys=capsys)
    err = capsys.readouterr().err
    assert "the sweep's point width=0 fails its check" in err
    assert not out.exists()


def test_a_name_both_constant_and_setting_must_say_which(tmp_path, capsys):
    p = tmp_path / "lr.net"
    p.write_text(SPEC.replace("width = 4", "width = 4\nlr = 1"))
    sweep(p, tmp_path / "sw", "--vary", "lr=0.1,0.2", expect=2, capsys=capsys)
    err = capsys.readouterr().err
    assert "--vary const:lr=... or --vary train:lr=..." in err
    sweep(p, tmp_path / "sw", "--vary", "widht=1,2", expect=2, capsys=capsys)
    assert "did you mean 'width'" in capsys.readouterr().err


def test_without_optuna_one_line_naming_the_extra(spec, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "optuna", None)
    sweep(spec, tmp_path / "sw", "--vary", "width=2,4", expect=2, capsys=capsys)
    err = capsys.readouterr().err
    assert err.strip() == "netspec: error: netspec sweep needs Optuna: pip install 'netspec[sweep]'"


@pytest.mark.slow  # several processes: seconds each
def test_two_processes_share_a_search(spec, tmp_path):
    out = tmp_path / "sw"
    args = [sys.executable, "-m", "netspec", "sweep", str(spec), "--out", str(out), *QUICK, "--epochs", "1"]
    args += ["--vary", "width=2..8", "--vary", "lr=1e-3..1e-1:log", "--trials", "5"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in "ab"]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e for _, e in outputs]
    ran = [{line.split(":")[0] for line in err.splitlines() if line.startswith("trial")} for _, err in outputs]
    assert not ran[0] & ran[1]  # disjoint
    assert len(ran[0] | ran[1]) == 5
    rows = summary(out)
    assert sorted(r["run"] for r in rows) == sorted(ran[0] | ran[1])
    assert all(2 <= int(r["width"]) <= 8 and 1e-3 <= float(r["lr"]) <= 1e-1 for r in rows)


def test_diverged_and_pruned_runs_stay_in_the_summary(spec, tmp_path, capsys):
    out = tmp_path / "sw"
    sweep(spec, out, "--vary", "lr=0.01,1e6", "--epochs", "1", capsys=capsys)
    rows = summary(out)
    assert [r["status"] for r in rows] == ["finished", "diverged"]
    assert "diverged" in rows[1]["error"]
    # a search with seeds: a run per seed, the trial's value their mean; `--no-prune` keeps them all to the end
    search = tmp_path / "search"
    args = ["--vary", "lr=1e-3..1e-1:log", "--trials", "2", "--seeds", "0,1", "--epochs", "1", "--no-prune"]
    sweep(spec, search, *args, capsys=capsys)
    rows = summary(search)
    assert sorted(r["run"] for r in rows) == [
        "trial0000-seed0",
        "trial0000-seed1",
        "trial0001-seed0",
        "trial0001-seed1",
    ]
    assert {r["seeds"] for r in rows} == {"2"}


def test_machines_share_a_grid_through_storage(spec, tmp_path, capsys):
    # two machines: their own sweep folders of one name, one study in a database both reach
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    a, b = tmp_path / "a" / "sw", tmp_path / "b" / "sw"
    sweep(spec, a, "--vary", "lr=0.01,0.1", "--epochs", "1", "--storage", storage, capsys=capsys)
    capsys.readouterr()
    sweep(spec, b, "--vary", "lr=0.01,0.1", "--epochs", "1", "--storage", storage, capsys=capsys)
    assert "final:" not in capsys.readouterr().out  # b trained nothing: a had done every point
    assert summary(b) == summary(a)
    assert len(summary(b)) == 2


def test_a_pruned_trial_stops_and_is_recorded(spec, tmp_path, monkeypatch, capsys):
    import optuna

    # a pruner that prunes every trial at its first epoch: the hook into the training loop, seen end to end
    monkeypatch.setattr(optuna.pruners, "MedianPruner", lambda: optuna.pruners.ThresholdPruner(lower=2.0))
    out = tmp_path / "sw"
    sweep(spec, out, "--vary", "lr=1e-3..1e-1:log", "--trials", "2", "--epochs", "3", capsys=capsys)
    rows = summary(out)
    assert [r["status"] for r in rows] == ["pruned", "pruned"]
    for r in rows:
        with open(out / r["run"] / "metrics.csv", newline="") as f:
            metrics = list(csv.DictReader(f))
        assert len(metrics) == 1 and r["epochs_done"] == "1"
        assert float(r["accuracy"]) == float(metrics[0]["test_accuracy"])
    assert (out / "pareto.png").is_file()
    assert "final:" not in capsys.readouterr().out  # the runs' lines go to stderr, the summary to stdout


@pytest.mark.slow  # several processes: seconds each
def test_two_processes_share_a_grid_and_train_each_run_once(spec, tmp_path):
    out = tmp_path / "sw"
    args = [sys.executable, "-m", "netspec", "sweep", str(spec), "--out", str(out), *QUICK, "--epochs", "1"]
    args += ["--vary", "width=2,4", "--vary", "lr=0.01,0.1"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in "ab"]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e for _, e in outputs]
    trained = [line for _, err in outputs for line in err.splitlines() if line.startswith("final:")]
    assert len(trained) == 4  # every run once, by one process or the other
    assert sorted(r["status"] for r in summary(out)) == ["finished"] * 4


def test_a_folder_holding_another_sweep_is_refused(spec, tmp_path, capsys):
    out = tmp_path / "sw"
    out.mkdir()
    (out / "sweep.json").write_text('{"spec": "another"}\n')
    sweep(spec, out, "--vary", "width=2,4", expect=2, capsys=capsys)
    assert "holds another sweep" in capsys.readouterr().err


def test_tensorboard_gives_each_run_its_hparams_with_the_varied_values(spec, tmp_path, capsys):
    from test_tensorboard import hparams_of

    out = tmp_path / "tb"
    sweep(spec, out, "--vary", "width=2,4", "--epochs", "1", "--tensorboard", capsys=capsys)
    rows = summary(out)
    assert len(rows) == 2
    for row in rows:
        values, metrics = hparams_of(out / row["run"])
        assert values["constant.width"] == float(row["width"])
        assert abs(metrics["test_accuracy"] - float(row["accuracy"])) < 1e-6
