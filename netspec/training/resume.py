"""`--resume`: the run in a run folder continues exactly as it was, or nothing does.

The run's settings are restored from its `settings.json` ("options") and its spec from `spec.net`; a flag given with
--resume must agree with the stored value, except those that cannot change the numbers (--data-dir: the data moved;
--device, --compile, --channels-last, --quiet, --no-download, --tensorboard), the optimizer overrides --lr,
--momentum and --weight-decay, and --precision (with a warning). --epochs may grow, unless the schedule's length
follows from it. The free flags are the given ones, never restored: a display flag (--quiet, --tensorboard) applies
to the process it is given to.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..errors import DataError, UsageError
from ..lang import parse_size
from ..lang.train_section import CosineAnnealingLR, OneCycleLR, TrainSpec
from .checkpoint import load_checkpoint
from .data import dataset_key
from .optim import OVERRIDES
from .report import Log
from .settings import Resume, SpecSource, TrainOptions

# What makes a run the run it is: restored from settings.json's "options", and checked against the flags given.
RUN_OPTIONS = ("data", "train_limit", "test_limit", "input", "batch_size", "test_batch_size", "seed", "sync_bn")


@dataclass(frozen=True)
class Resumed:
    """A run folder to continue: its spec, its options, its checkpoint (None: killed before the first one)."""

    out: Path
    source: SpecSource
    opts: TrainOptions
    stored_epochs: int
    checkpoint: dict[str, Any] | None

    @property
    def done(self) -> int:
        return int(self.checkpoint["epoch"]) if self.checkpoint is not None else 0


def restore_run(job: Resume, log: Log) -> Resumed:
    """The run in `job.opts.out`, with the flags of `job.opts` checked against it."""
    opts = job.opts
    out = Path(str(opts.out))
    stored, run_constants, stored_text = _read_run(out)
    filename = str(out / "spec.net")
    if job.source is not None:
        _check_same_spec(job.source, stored_text, out)
        filename = job.source.filename or filename
    _check_flags(opts, stored, run_constants, out)
    if opts.precision not in ("auto", stored["precision"]):
        log.warn(
            f"--resume with --precision {opts.precision}: the run trained in {stored['precision']}, so its "
            f"numbers will no longer match an uninterrupted run"
        )
    checkpoint = _checkpoint(out, stored_text, log)
    resumed = Resumed(out, SpecSource(stored_text, filename), _merged(opts, stored), int(stored["epochs"]), checkpoint)
    epochs = int(resumed.opts.epochs or 0)
    if epochs < resumed.done:
        raise UsageError(
            f"--resume: --epochs {epochs} is fewer than the {resumed.done} epochs the run in {out} has already done"
        )
    return resumed


def _read_run(out: Path) -> tuple[dict[str, Any], dict[str, Any], str]:
    """The options and the constants' values settings.json stores, and spec.net, of the run in `out`."""
    if not out.is_dir():
        raise UsageError(f"--resume: {out}: no such run folder")
    try:
        settings = json.loads((out / "settings.json").read_text())
        options, constants = settings["options"], settings.get("constant_values", {})
        return options, constants, (out / "spec.net").read_text()
    except FileNotFoundError:
        raise UsageError(
            f"--resume: {out} holds no run (no settings.json or spec.net); start it without --resume"
        ) from None
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
        raise UsageError(f"--resume: {out / 'settings.json'} is not the settings of a netspec run") from None


def _check_same_spec(given: SpecSource, run_text: str, out: Path) -> None:
    """SPEC given with --resume must be the spec the run stored; else name the first line that differs."""
    if given.text == run_text:
        return
    ours, theirs = given.text.split("\n"), run_text.split("\n")
    i = next(i for i in range(max(len(ours), len(theirs))) if _line(ours, i) != _line(theirs, i))
    raise UsageError(
        f"--resume: {given.filename or 'the spec'} is not the spec of the run in {out}: line {i + 1} is "
        f"{_line(ours, i).strip()!r} there and {_line(theirs, i).strip()!r} in {out / 'spec.net'} "
        f"(resume with {out / 'spec.net'}, or start a new run)"
    )


def _line(lines: list[str], i: int) -> str:
    return lines[i] if i < len(lines) else "<end of file>"


def _check_flags(opts: TrainOptions, stored: dict[str, Any], run_constants: dict[str, Any], out: Path) -> None:
    for key in RUN_OPTIONS:
        given = getattr(opts, key)
        if given is None or (key == "sync_bn" and given is False) or _same(key, given, stored[key]):
            continue
        shown = "x".join(map(str, stored[key])) if key == "input" else stored[key]
        raise UsageError(
            f"--resume: --{key.replace('_', '-')} {given} contradicts the run in {out}, which has "
            f"{key.replace('_', ' ')} {shown} (leave the flag out to continue the same run)"
        )
    for name, given in opts.constants.items():
        if name in run_constants and _jsonable(given) != run_constants[name]:
            raise UsageError(
                f"--resume: --set {name}={given} contradicts the run in {out}, which has {name} = {run_constants[name]}"
            )


def _same(key: str, given: Any, run_value: Any) -> bool:
    if key == "data":
        a, b = dataset_key(str(given)), dataset_key(str(run_value))
        return a == b if a is not None or b is not None else Path(given).resolve() == Path(run_value).resolve()
    if key == "input":
        return tuple(parse_size(given) if isinstance(given, str) else given) == tuple(run_value)
    return bool(given == run_value)


def _merged(opts: TrainOptions, stored: dict[str, Any]) -> TrainOptions:
    """The run's own options, with the flags that may differ taken from `opts`."""
    run = {k: stored[k] for k in RUN_OPTIONS}
    run.update(
        input=tuple(stored["input"]),
        constants={**stored["constants"], **opts.constants},
        epochs=opts.epochs if opts.epochs is not None else stored["epochs"],
        data_dir=opts.data_dir if opts.data_dir is not None else stored.get("data_dir"),
        precision=stored["precision"] if opts.precision == "auto" else opts.precision,
    )
    run.update({k: stored.get(k) for k in OVERRIDES if getattr(opts, k) is None})
    return replace(opts, **run)


def _checkpoint(out: Path, stored_text: str, log: Log) -> dict[str, Any] | None:
    path = out / "checkpoint.pt"
    if not path.exists():
        log(f"--resume: {out} has no checkpoint yet: starting its run again from the beginning")
        return None
    checkpoint = load_checkpoint(path)
    if checkpoint.get("spec") != stored_text:
        raise DataError(f"{path}: its spec differs from {out / 'spec.net'}; the folder holds two runs")
    return checkpoint


def check_schedule_length(resumed: Resumed, train: TrainSpec, inferred: frozenset[str]) -> None:
    """A schedule whose length was inferred from the epoch count cannot be stretched half-way through a run:
    the learning rates already used would no longer be the schedule's."""
    if train.epochs == resumed.stored_epochs:
        return
    s = train.schedule
    if isinstance(s, OneCycleLR) or (isinstance(s, CosineAnnealingLR) and "T_max" in inferred):
        length = "total_steps" if isinstance(s, OneCycleLR) else "T_max"
        raise UsageError(
            f"--resume: --epochs {train.epochs} would change the run's {s.kind()}, whose length "
            f"({length}) follows from its {resumed.stored_epochs} epochs: the learning rate already "
            f"used would no longer match the schedule. Start a new run with --epochs {train.epochs}"
            + (", or write T_max in the spec" if length == "T_max" else "")
        )


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))
