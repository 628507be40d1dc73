"""TensorBoard event files in the run folder, written from metrics.csv's rows (`netspec train --tensorboard`).

metrics.csv stays the source of truth: each row the run appends is also written as TensorBoard scalars, one per
column (`train_loss`, `test_loss`, `test_accuracy`, `seconds`, `images_per_s`, `lr`), at the step of its epoch, to
`RUN/tensorboard/`. At the end of the run `write_hparams` writes the run's settings and final metrics for the HParams
view to `RUN/tensorboard/hparams/`; a sweep calls it with its own hyperparameters, which replace them.

A resumed run writes only the epochs the event files do not already hold: the epochs after the checkpoint's, and, when
--tensorboard is new to the run (or an earlier process was killed before writing its last epoch), the missing
earlier epochs once, from the same rows. Events written past the point where the run continues are hidden with
TensorBoard's `purge_step`, so no epoch is ever shown twice.

>>> write_hparams("runs/try", {"lr": 0.05, "batch_size": 32}, {"test_accuracy": 0.61})   # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import UsageError
from .run_folder import METRIC_FIELDS, VAL_FIELDS

FOLDER = "tensorboard"  # in the run folder; the HParams entry is its "hparams" subfolder
SCALARS = [f for f in METRIC_FIELDS if f != "epoch"]  # one tag per column of metrics.csv, named as the column


def require() -> None:
    """A UsageError with the command that installs TensorBoard, when `torch.utils.tensorboard` cannot be used."""
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError:
        raise UsageError("--tensorboard needs the tensorboard package: pip install 'netspec[tensorboard]'") from None


class EpochWriter:
    """Writes metrics.csv's rows as scalars to `RUN/tensorboard/` (on the main process only)."""

    def __init__(self, run_dir: str | Path, rows: list[dict[str, Any]], resumed: bool):
        """`rows`: the run's finished epochs so far (a resumed run's, from its checkpoint); those the event files do
        not hold yet are written at once. A new run (`resumed` False) ignores events an earlier run left behind."""
        from torch.utils.tensorboard import SummaryWriter

        folder = Path(run_dir) / FOLDER
        steps = written_steps(folder)
        done = 0
        if resumed:
            while done < len(rows) and int(rows[done]["epoch"]) in steps:  # the epochs already shown, in order
                done += 1
        first = int(rows[done]["epoch"]) if done < len(rows) else (int(rows[-1]["epoch"]) + 1 if rows else 1)
        # anything at or past `first` came from an earlier process: hidden, as it is written again here
        purge = first if any(s >= first for s in steps) else None
        _after_existing(folder)
        self.writer = SummaryWriter(str(folder), purge_step=purge)
        for row in rows[done:]:
            self.write(row)

    def write(self, row: Mapping[str, Any]) -> None:
        """One metrics.csv row: its columns as scalars at step `epoch`, flushed to disk."""
        epoch = int(row["epoch"])
        for tag in SCALARS + VAL_FIELDS:  # the validation columns where the run has them
            if row.get(tag) not in (None, ""):
                self.writer.add_scalar(tag, float(row[tag]), epoch)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def _after_existing(folder: Path) -> None:
    """Wait until a new event file's name sorts after every file in `folder`. TensorBoard reads the files in name
    order (`events.out.tfevents.<seconds>.<host>.<pid>.<counter>`), and a purge hides the events read before it: a
    file made in the same second as an earlier one could sort first (counter "10" before "9"), and a purge in the
    earlier file would then hide the new epochs, or the new purge would miss the events it should hide. A new second
    always sorts after; the wait is under a second, and only when a file of this second is there (a quick resume)."""
    seconds = [
        int(p.name.split(".")[3]) for p in folder.glob("events.out.tfevents.*") if p.name.split(".")[3].isdigit()
    ]
    while seconds and time.time() < max(seconds) + 1:
        time.sleep(0.05)


def written_steps(folder: Path) -> set[int]:
    """The epochs whose every scalar the event files directly in `folder` hold (as TensorBoard reads them, purges
    applied)."""
    if not folder.is_dir() or not any(folder.glob("events.out.tfevents.*")):
        return set()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    logger = logging.getLogger("tensorboard")  # its note on each purge it applies is no news to a netspec user
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        acc.Reload()
    finally:
        logger.setLevel(level)
    tags = set(acc.Tags().get("scalars", []))
    if not set(SCALARS) <= tags:  # an epoch counts as shown when every column of it is
        return set()
    return set.intersection(*({e.step for e in acc.Scalars(tag)} for tag in SCALARS))


def write_hparams(run_dir: str | Path, hparams: Mapping[str, Any], metrics: Mapping[str, float], step: int = 0) -> Path:
    """Write one HParams entry for the run in `run_dir`: the hyperparameters `hparams` and the final `metrics`
    (each also a scalar at `step`), to `RUN/tensorboard/hparams/`, replacing the entry written before (a plain run
    writes its settings; a sweep may write its own choice of them afterwards). Returns the folder.

    Values may be bool, int, float or str; None values are left out (the HParams view shows them blank), lists and
    dicts are written as their JSON text. Needs the tensorboard package (`pip install 'netspec[tensorboard]'`).

    >>> write_hparams("runs/lr-0.05", {"lr": 0.05, "batch_size": 32},
    ...               {"test_accuracy": 0.61, "final_test_loss": 1.2})               # doctest: +SKIP
    """
    require()
    from torch.utils.tensorboard import SummaryWriter
    from torch.utils.tensorboard.summary import hparams as hparams_summaries

    folder = Path(run_dir) / FOLDER / "hparams"
    for old in folder.glob("events.out.tfevents.*"):
        old.unlink()  # one entry per run: the latest
    values = {str(k): _hparam(v) for k, v in hparams.items() if v is not None}
    scores = {str(k): float(v) for k, v in metrics.items()}
    experiment, start, end = hparams_summaries(values, scores)
    with SummaryWriter(str(folder)) as w:
        for summary in (experiment, start, end):
            w.file_writer.add_summary(summary, step)
        for tag, value in scores.items():
            w.add_scalar(tag, value, step)
    return folder


def _hparam(value: Any) -> bool | int | float | str:
    if isinstance(value, (bool, int, float, str)):
        return value
    return json.dumps(value, default=str)


def run_hparams(settings: Mapping[str, Any]) -> dict[str, Any]:
    """A run's hyperparameters from its settings.json: data, network, input, epochs, batch sizes, seed, limits,
    precision, the optimizer's name and arguments (`lr`, `momentum`, ...), the schedule's (`schedule.T_max`), the
    augmentations' names and the spec's constants (`constant.classes`)."""
    out: dict[str, Any] = {k: settings.get(k) for k in ("network", "data")}
    out["input"] = "x".join(map(str, settings.get("input") or [])) or None
    for k in ("epochs", "batch_size", "test_batch_size", "seed", "label_smoothing", "train_limit", "test_limit"):
        out[k] = settings.get(k)
    out["precision"] = settings.get("precision")
    for k in ("optimizer", "schedule"):
        v = settings.get(k)
        out[k] = v.get("name") if isinstance(v, dict) else v
        if isinstance(v, dict):  # the optimizer's arguments as the flags name them (`lr`), the schedule's prefixed
            out.update({(a if k == "optimizer" else f"{k}.{a}"): x for a, x in v.items() if a != "name"})
    out["augment"] = ", ".join(a.get("name", "") for a in settings.get("augment") or []) or None
    constants = settings.get("constant_values") or {}
    out.update({f"constant.{name}": value for name, value in constants.items()})
    return out
