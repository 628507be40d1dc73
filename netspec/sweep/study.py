"""A sweep as an Optuna study: a grid through `GridSampler`, a search through `TPESampler` with `MedianPruner`, in
a storage several processes share (by default a journal file in the sweep folder).

Each run is a normal run folder in the sweep folder, with `trial.json` beside its files (its point, seed, status and
numbers). The folder, not the study, says what is done: a finished, pruned, diverged or failed run is never trained
again, and a run stopped half-way continues from its checkpoint with `netspec train`'s --resume. While a process
trains a run it holds a lock on `sweep.lock` in its folder, so two processes never train the same one.

A trial's status is in its user attribute "status"; "busy" (another process holds the point) and "surplus" (a
search's total was reached while it started) are bookkeeping, never runs.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import json
import math
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..training.settings import SpecSource, TrainOptions, plan
from .space import Axis, PointError, check_points, label, options_at

TERMINAL = ("finished", "pruned", "diverged", "failed")


def optuna_module() -> Any:
    """Optuna, or the one line that says how to install it (exit 2)."""
    try:
        import optuna
    except ImportError:
        raise UsageError("netspec sweep needs Optuna: pip install 'netspec[sweep]'") from None
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    return optuna


@dataclass(frozen=True)
class Sweep:
    """What a sweep runs: the spec, the flags every run shares, the axes, where it writes."""

    source: SpecSource
    base: TrainOptions
    axes: list[Axis]
    out: Path
    seeds: tuple[int, ...] = ()  # each point once per seed; (): once, with the sweep's seed
    trials: int = 20  # a search's total over every process
    prune: bool = True

    @property
    def is_search(self) -> bool:
        return any(a.is_range for a in self.axes)

    def definition(self) -> dict[str, Any]:
        """sweep.json: what makes the sweep this one (a second process or a rerun must agree)."""
        skip = ("out", "quiet", "resume", "device", "data_dir", "download", "compile", "channels_last")
        opts = {k: v for k, v in vars(self.base).items() if k not in skip}
        axes = [
            {"name": a.name, "kind": a.kind, "values": list(a.values), "low": a.low, "high": a.high, "log": a.log}
            for a in self.axes
        ]
        return {"spec": self.source.text, "axes": axes, "options": opts, "seeds": list(self.seeds)}


def open_study(sw: Sweep, storage: str | None, sampler: Any, pruner: Any) -> Any:
    """The sweep's study, created by the first process and loaded by the others."""
    optuna = optuna_module()
    sw.out.mkdir(parents=True, exist_ok=True)
    own = json.loads(json.dumps(sw.definition(), default=str))
    path = sw.out / "sweep.json"
    if path.exists() and json.loads(path.read_text()) != own:
        raise UsageError(f"{sw.out} holds another sweep (sweep.json differs): choose another --out")
    tmp = path.with_name(f"sweep.json.{os.getpid()}")  # processes starting together never read half a file
    tmp.write_text(json.dumps(own, indent=2) + "\n")
    os.replace(tmp, path)
    where: Any = storage
    if storage is None:
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        where = JournalStorage(JournalFileBackend(str(sw.out / "study.log")))
    name = f"netspec-{sw.out.resolve().name}"
    return optuna.create_study(
        study_name=name, storage=where, sampler=sampler, pruner=pruner, direction="maximize", load_if_exists=True
    )


# ---------------------------------------------------------------------------------------------------------------
# One run of a point
# ---------------------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[bool]:
    """Whether this process holds `folder`'s lock (released when the block ends, or the process dies)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "sweep.lock", "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def is_locked(folder: Path) -> bool:
    if not folder.is_dir():
        return False
    with locked(folder) as got:
        return not got


def read_state(folder: Path) -> dict[str, Any] | None:
    try:
        state: dict[str, Any] = json.loads((folder / "trial.json").read_text())
        return state
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def status(folder: Path) -> str:
    state = read_state(folder)
    return str(state["status"]) if state else "pending"


def _write_state(folder: Path, row: dict[str, Any]) -> None:
    from ..training.run_folder import write_json

    write_json(folder / "trial.json", row)


def _last_metrics(folder: Path) -> dict[str, Any]:
    """What a run that stopped had reached: its last epoch's numbers and its seconds."""
    try:
        with open(folder / "metrics.csv", newline="") as f:
            rows = list(csv.DictReader(f))
    except FileNotFoundError:
        return {}
    if not rows:
        return {}
    last = rows[-1]
    return {
        "epochs_done": int(last["epoch"]),
        "train_loss": float(last["train_loss"]),
        "test_loss": float(last["test_loss"]),
        "accuracy": float(last["test_accuracy"]),
        "seconds": sum(float(r["seconds"]) for r in rows),
    }


def run_point(sw: Sweep, point: dict[str, Any], name: str, seed: int | None, report: Any = None) -> dict[str, Any]:
    """Train one run of `point` in the folder `name` (or return what it already holds); `report(epoch, accuracy)`
    is the pruner's hook. The row summary.csv shows, also written as the folder's trial.json."""
    folder = sw.out / name
    with locked(folder) as got:
        if not got:
            return {"run": name, "status": "busy"}
        state = read_state(folder)
        if state is not None and state["status"] in TERMINAL:
            return state
        base = replace(sw.base, seed=seed) if seed is not None else sw.base
        opts = options_at(base, sw.axes, point)
        row: dict[str, Any] = {"run": name, "point": label(point), "values": point, "status": "running"}
        try:
            checked = check_points(sw.source, base, sw.axes, [point])[0]
        except PointError as e:  # a search's point between the corners it checked
            row.update(status="failed", error=str(e))
            _write_state(folder, row)
            return row
        row.update(seed=checked.seed, params=checked.params, macs=checked.macs)
        _write_state(folder, row)
        row.update(_train(sw, folder, opts, report))
        _write_state(folder, row)
        return row


def _train(sw: Sweep, folder: Path, opts: TrainOptions, report: Any) -> dict[str, Any]:
    """Train (or continue) the run in `folder`: its status and numbers."""
    from ..training.loop import Diverged, Interrupted
    from ..training.run import run
    from ..training.run_folder import holds_run

    opts = replace(opts, out=str(folder), quiet=True, resume=holds_run(folder))
    optuna = optuna_module()
    try:
        with contextlib.redirect_stdout(sys.stderr):  # each run's result line: stdout is the summary's
            r = run(plan(sw.source, opts), report)
    except optuna.TrialPruned:
        return {"status": "pruned", **_last_metrics(folder)}
    except Diverged as e:
        return {"status": "diverged", "error": str(e), **_last_metrics(folder)}
    except (Interrupted, KeyboardInterrupt):
        _write_state(folder, {**(read_state(folder) or {}), "status": "interrupted", **_last_metrics(folder)})
        raise
    except (RuntimeError, MemoryError) as e:  # out of memory, a kernel that fails: this run, not the sweep
        return {"status": "failed", "error": f"{type(e).__name__}: {str(e)[:300]}", **_last_metrics(folder)}
    return {
        "status": "finished",
        "epochs_done": r.epochs,
        "train_loss": r.final_train_loss,
        "test_loss": r.final_test_loss,
        "accuracy": r.test_accuracy,
        "seconds": r.train_seconds,
    }


def score(rows: list[dict[str, Any]]) -> float:
    """A trial's value: the mean test accuracy over its seeds (nan unless every one finished)."""
    if not rows or any(r.get("status") != "finished" for r in rows):
        return math.nan
    return sum(float(r["accuracy"]) for r in rows) / len(rows)
