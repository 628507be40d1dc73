"""The trials: a grid's points through Optuna's GridSampler, a search's through TPE with MedianPruner.

A grid is done when every point's runs are finished, pruned, diverged or failed in their folders. A point the study
counts as tried whose folder is not done (an interrupted run) is queued again, and continues from its checkpoint.

A search runs `--trials` trials in total over every process: a trial whose number is past the total (counting
neither interrupted trials nor surplus ones) is surplus and stops its process. Optuna's `MaxTrialsCallback` counts
finished trials only, so processes that start trials at once could together run more than the total; counting by
trial number, which the storage hands out one by one, cannot.
"""

from __future__ import annotations

import json
import os
from typing import Any

from .space import Axis
from .study import TERMINAL, Sweep, is_locked, open_study, optuna_module, read_state, run_point, score, status


def run_names(sw: Sweep, point: dict[str, Any], number: int | None = None) -> list[tuple[str, int | None]]:
    """The run folders of a point (a grid's, named by its values) or of a search's trial (by its number)."""
    from .space import folder_name

    stem = folder_name(point) if number is None else f"trial{number:04d}"
    if not sw.seeds:
        return [(stem, None)]
    return [(f"{stem}-seed{s}", s) for s in sw.seeds]


def _suggest(trial: Any, axes: list[Axis]) -> dict[str, Any]:
    point: dict[str, Any] = {}
    for a in axes:
        if not a.is_range:
            point[a.name] = trial.suggest_categorical(a.name, list(a.values))
        elif a.is_int:
            point[a.name] = trial.suggest_int(a.name, int(a.low or 0), int(a.high or 0), log=a.log)
        else:
            point[a.name] = trial.suggest_float(a.name, float(a.low or 0), float(a.high or 0), log=a.log)
    return point


def _record(trial: Any, rows: list[dict[str, Any]], state: str) -> None:
    trial.set_user_attr("runs", rows)
    trial.set_user_attr("status", state)


def _objective(sw: Sweep, say: Any) -> Any:
    optuna = optuna_module()

    def objective(trial: Any) -> float:
        point = _suggest(trial, sw.axes)
        if sw.is_search and _surplus(trial, sw.trials):
            _record(trial, [], "surplus")
            trial.study.stop()
            raise optuna.TrialPruned()
        rows: list[dict[str, Any]] = []
        names = run_names(sw, point, trial.number if sw.is_search else None)
        for i, (name, seed) in enumerate(names):
            report = _pruning(trial, i) if sw.is_search and sw.prune else None
            try:
                row = run_point(sw, point, name, seed, report)
            except BaseException:  # Ctrl-C, or an error that stops the sweep: the run is to be continued
                stopped = {**(read_state(sw.out / name) or {"run": name}), "status": "interrupted"}
                _record(trial, rows + [stopped], "interrupted")
                raise
            rows.append(row)
            _record(trial, rows, row["status"])
            if row["status"] != "busy":
                say(row)
            if sw.is_search and row["status"] != "finished":
                break
        states = {r["status"] for r in rows}
        overall = "finished" if states == {"finished"} else next(s for s in ("busy", *TERMINAL) if s in states)
        _record(trial, rows, overall)
        if overall == "pruned":
            raise optuna.TrialPruned()
        return score(rows)

    return objective


def _pruning(trial: Any, index: int) -> Any:
    """The hook the training loop calls after each epoch: the trial's steps run on over its seeds' runs."""
    optuna = optuna_module()

    def report(epoch: int, accuracy: float) -> None:
        step = index * 10_000 + epoch
        trial.report(accuracy, step)
        if trial.should_prune():
            raise optuna.TrialPruned()

    return report


def _surplus(trial: Any, total: int) -> bool:
    before = [
        t
        for t in trial.study.get_trials(deepcopy=False)
        if t.number < trial.number and t.user_attrs.get("status") not in ("surplus", "interrupted", "busy")
    ]
    return len(before) >= total


def run_grid(sw: Sweep, points: list[dict[str, Any]], storage: str | None, say: Any) -> Any:
    optuna = optuna_module()
    sampler = optuna.samplers.GridSampler({a.name: list(a.values) for a in sw.axes}, seed=sw.base.seed or 0)
    study = open_study(sw, storage, sampler, optuna.pruners.NopPruner())
    objective = _objective(sw, say)
    while True:
        # done: in this machine's run folders, or by a trial of the study (another machine's, through --storage)
        done = {_key(t.params) for t in study.get_trials(deepcopy=False) if t.user_attrs.get("status") in TERMINAL}
        todo = [
            p
            for p in points
            if _key(p) not in done and any(status(sw.out / n) not in TERMINAL for n, _ in run_names(sw, p))
        ]
        free = [p for p in todo if not any(is_locked(sw.out / n) for n, _ in run_names(sw, p))]
        if not free:
            return study
        trials = study.get_trials(deepcopy=False)
        tried = {_key(t.params) for t in trials if t.params}
        queued = {_key(t.system_attrs.get("fixed_params") or t.params) for t in trials if t.state.name == "WAITING"}
        if all(_key(p) in tried for p in free):  # the sampler would repeat a point: take an unfinished one
            again = [p for p in free if _key(p) not in queued]
            if again:
                study.enqueue_trial(again[0])
        study.optimize(objective, n_trials=1)


def _key(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, default=str)


def run_search(sw: Sweep, storage: str | None, say: Any) -> Any:
    optuna = optuna_module()
    # the sampler's draws differ between processes (else two processes started together would try the same
    # points); a trial's training is what is reproducible
    sampler = optuna.samplers.TPESampler(seed=(sw.base.seed or 0) * 1_000_003 + os.getpid())
    pruner = optuna.pruners.MedianPruner() if sw.prune else optuna.pruners.NopPruner()
    study = open_study(sw, storage, sampler, pruner)
    study.optimize(_objective(sw, say), n_trials=sw.trials)
    return study
