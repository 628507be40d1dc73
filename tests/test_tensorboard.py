"""`netspec train --tensorboard`: metrics.csv's rows as TensorBoard scalars, each epoch once (also across --resume),
the run's settings and final metrics for the HParams view, rank 0 alone writing, and a one-line error without the
extra."""

from __future__ import annotations

import csv
import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from netspec.cli import main
from netspec.training.run_folder import METRIC_FIELDS

from trainfixtures import TINY

try:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.plugins.hparams import plugin_data_pb2
except ImportError:  # without the `tensorboard` extra (.ci/run installs it) only its error and --help are tested
    EventAccumulator = EventFileLoader = plugin_data_pb2 = None

needs_tensorboard = pytest.mark.skipif(EventAccumulator is None, reason="pip install 'netspec[tensorboard]'")

COLUMNS = [f for f in METRIC_FIELDS if f != "epoch"]
# tiny and in fp32: 96 images in batches of 16, 40 test images
RUN = ["--quiet", "--train-limit", "96", "--test-limit", "40", "--batch-size", "16", "--precision", "fp32"]


def _train(*args, expect=0):
    with pytest.raises(SystemExit) as e:
        main(["train", *map(str, args)])
    assert e.value.code == expect


@pytest.fixture(scope="module")
def tb_run(tmp_path_factory):
    """A finished 1-epoch run of TINY with --tensorboard (copied by each test that changes it)."""
    folder = tmp_path_factory.mktemp("tb")
    spec = folder / "tiny.net"
    spec.write_text(TINY)
    _train(spec, "--out", folder / "run", "--epochs", "1", "--tensorboard", *RUN)
    return spec, folder / "run"


def _copy(run_dir: Path, to: Path) -> Path:
    shutil.copytree(run_dir, to)
    return to


def _metrics(run_dir: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(open(run_dir / "metrics.csv")))


def _scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar as TensorBoard shows it: {tag: [(step, value)]}."""
    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def _raw_steps(folder: Path) -> dict[str, list[int]]:
    """Every scalar event in the files, in file order, purges not applied: {tag: [step, ...]}."""
    out: dict[str, list[int]] = {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        for event in EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                out.setdefault(value.tag, []).append(event.step)
    return out


def hparams_of(run_dir: Path) -> tuple[dict[str, object], dict[str, float]]:
    """The run's HParams entry: its hyperparameters, and its metrics' values."""
    folder = run_dir / "tensorboard" / "hparams"
    assert len(list(folder.glob("events.out.tfevents.*"))) == 1
    acc = EventAccumulator(str(folder))
    acc.Reload()
    content = acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    start = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    values = {k: v.string_value or v.number_value for k, v in start.hparams.items()}
    return values, {tag: v[-1][1] for tag, v in _scalars(folder).items()}


def _assert_scalars_are_the_metrics(run_dir: Path) -> None:
    rows, scalars = _metrics(run_dir), _scalars(run_dir / "tensorboard")
    assert sorted(scalars) == sorted(COLUMNS)
    for column in COLUMNS:
        assert [s for s, _ in scalars[column]] == [int(r["epoch"]) for r in rows], column
        assert [v for _, v in scalars[column]] == pytest.approx([float(r[column]) for r in rows], rel=1e-6), column


@needs_tensorboard
def test_scalars_are_the_metrics_csv_and_hparams_the_settings(tb_run):
    _spec, run_dir = tb_run
    _assert_scalars_are_the_metrics(run_dir)
    assert _scalars(run_dir / "tensorboard")["lr"] == [(1, pytest.approx(0.05))]
    hparams, metrics = hparams_of(run_dir)
    assert {k: hparams[k] for k in ("lr", "momentum", "batch_size", "epochs", "constant.classes", "data")} == {
        "lr": pytest.approx(0.05),
        "momentum": pytest.approx(0.9),
        "batch_size": 16,
        "epochs": 1,
        "constant.classes": 10,
        "data": "shapes",
    }
    results = json.loads((run_dir / "results.json").read_text())
    assert metrics == pytest.approx({k: results[k] for k in ("test_accuracy", "final_test_loss", "final_train_loss")})


@needs_tensorboard
def test_resume_writes_each_epoch_once_and_fills_in_what_is_missing(tb_run, tmp_path):
    spec, run_dir = tb_run
    out = _copy(run_dir, tmp_path / "run")
    _train(spec, "--out", out, "--resume", "--epochs", "2", "--tensorboard")  # epoch 2 only
    _train("--out", out, "--resume", "--epochs", "3")  # without the flag: epoch 3 not shown
    assert _raw_steps(out / "tensorboard")["train_loss"] == [1, 2]
    _train("--out", out, "--resume", "--epochs", "4", "--tensorboard")  # epoch 3 from metrics.csv, then epoch 4
    assert _raw_steps(out / "tensorboard") == {column: [1, 2, 3, 4] for column in COLUMNS}
    _assert_scalars_are_the_metrics(out)
    assert hparams_of(out)[0]["epochs"] == 4  # the entry replaced, not a second one


@needs_tensorboard
def test_tensorboard_added_on_resume_backfills_the_earlier_epochs(tb_run, tmp_path):
    spec, run_dir = tb_run
    out = _copy(run_dir, tmp_path / "run")
    shutil.rmtree(out / "tensorboard")  # a run started without --tensorboard
    _train(spec, "--out", out, "--resume", "--epochs", "2", "--tensorboard")
    assert _raw_steps(out / "tensorboard") == {column: [1, 2] for column in COLUMNS}
    _assert_scalars_are_the_metrics(out)


@needs_tensorboard
def test_events_past_the_checkpoint_are_hidden_and_written_again(tb_run, tmp_path, capsys, caplog):
    # an epoch the event files show but the checkpoint does not hold (a process killed between the two): TensorBoard
    # shows the resumed run's value of it, once
    from torch.utils.tensorboard import SummaryWriter

    spec, run_dir = tb_run
    out = _copy(run_dir, tmp_path / "run")
    with SummaryWriter(str(out / "tensorboard")) as w:
        for column in COLUMNS:
            w.add_scalar(column, 99.0, 2)
    _train(spec, "--out", out, "--resume", "--epochs", "2", "--tensorboard", "--quiet")
    _assert_scalars_are_the_metrics(out)
    capsys.readouterr()
    caplog.clear()
    _train(spec, "--out", out, "--resume", "--epochs", "3", "--tensorboard", "--quiet")  # reads the purge back
    # TensorBoard's own note on the purge (a warning logged to stderr) is not shown
    assert capsys.readouterr().err == "" and not [r for r in caplog.records if r.name.startswith("tensorboard")]
    _assert_scalars_are_the_metrics(out)


@needs_tensorboard
def test_the_command_printed_on_ctrl_c_keeps_writing_tensorboard(tmp_path, capsys, monkeypatch):
    import netspec.training.run

    train_epoch = netspec.training.run.train_epoch

    def ctrl_c_in_epoch_2(loop, epoch, stop):
        if epoch == 2:
            stop.set()  # what the first Ctrl-C does: the run stops after the current step
        return train_epoch(loop, epoch, stop)

    monkeypatch.setattr(netspec.training.run, "train_epoch", ctrl_c_in_epoch_2)
    spec, out = tmp_path / "tiny.net", tmp_path / "run"
    spec.write_text(TINY)
    _train(spec, "--out", out, "--tensorboard", *RUN, expect=130)
    printed = capsys.readouterr().err.split("continue with: ", 1)[1].splitlines()[0]
    assert printed.endswith(" --resume --tensorboard")
    monkeypatch.undo()
    _train(*shlex.split(printed)[2:], "--quiet")
    assert _raw_steps(out / "tensorboard") == {column: [1, 2] for column in COLUMNS}
    _assert_scalars_are_the_metrics(out)


def test_without_the_extra_a_one_line_usage_error_before_training(tmp_path, capsys, monkeypatch):
    spec = tmp_path / "tiny.net"
    spec.write_text(TINY)
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # `import` raises ImportError
    _train(spec, "--out", tmp_path / "run", "--tensorboard", *RUN, expect=2)
    err = capsys.readouterr().err
    assert err == "netspec: error: --tensorboard needs the tensorboard package: pip install 'netspec[tensorboard]'\n"
    assert not (tmp_path / "run").exists()


def test_help_mentions_tensorboard(capsys):
    _train("--help")
    out = " ".join(capsys.readouterr().out.split())
    assert "--tensorboard" in out and "pip install 'netspec[tensorboard]'" in out


@needs_tensorboard
def test_write_hparams_replaces_the_entry(tmp_path):
    from netspec.training.tensorboard import write_hparams

    write_hparams(tmp_path, {"lr": 0.1}, {"test_accuracy": 0.25})
    folder = write_hparams(
        tmp_path, {"lr": 0.2, "augment": ["RandomCrop"], "schedule": None, "nesterov": True}, {"test_accuracy": 0.5}
    )
    assert folder == tmp_path / "tensorboard" / "hparams"
    hparams, metrics = hparams_of(tmp_path)
    assert hparams == {"lr": pytest.approx(0.2), "augment": '["RandomCrop"]', "nesterov": 1}
    assert metrics == {"test_accuracy": 0.5}


@needs_tensorboard
@pytest.mark.slow  # several processes: seconds each
def test_under_torchrun_rank_0_alone_writes(tmp_path):
    spec = tmp_path / "tiny.net"
    spec.write_text(TINY.replace("    bn    BatchNorm2d()\n", ""))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "netspec"]
    args = ["train", str(spec), "--out", str(tmp_path / "run"), "--epochs", "2", "--device", "cpu", "--tensorboard"]
    proc = subprocess.run([*cmd, *args, *RUN], cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))) == 1
    assert _raw_steps(tmp_path / "run" / "tensorboard") == {column: [1, 2] for column in COLUMNS}
    _assert_scalars_are_the_metrics(tmp_path / "run")
