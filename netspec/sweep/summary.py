"""A sweep's results: `summary.csv` and the same table on the terminal, sorted by accuracy, and `pareto.png`.

The rows come from the study (the runs each trial recorded), so a sweep shared by several machines through one
`--storage` is summarized whole on any of them. Every run is a row, whatever its status; where a point ran with
several seeds, its rows also carry the mean and the spread (standard deviation) of accuracy over its finished seeds.
"""

from __future__ import annotations

import csv
import math
import statistics
from pathlib import Path
from typing import Any

from ..table import render_table

NUMBERS = ("params", "macs", "train_loss", "test_loss", "accuracy", "seconds")


def collect(study: Any) -> list[dict[str, Any]]:
    """One row per run folder: the last word of the trials that ran it (busy and surplus trials ran nothing)."""
    rows: dict[str, dict[str, Any]] = {}
    for t in study.get_trials(deepcopy=False):
        for r in t.user_attrs.get("runs", []):
            if r.get("status") == "busy" or "run" not in r:
                continue
            if r["run"] in rows and rows[r["run"]].get("status") == "finished" and r.get("status") != "finished":
                continue
            rows[r["run"]] = {**r, "trial": t.number}
    return _with_spread(list(rows.values()))


def _with_spread(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    points: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        points.setdefault(_point(r), []).append(r)
    if all(len(group) == 1 for group in points.values()):
        return rows
    for group in points.values():
        accs = [float(r["accuracy"]) for r in group if r.get("status") == "finished"]
        for r in group:
            r["seeds"] = len(group)
            r["accuracy_mean"] = statistics.fmean(accs) if accs else math.nan
            r["accuracy_spread"] = statistics.pstdev(accs) if len(accs) > 1 else (0.0 if accs else math.nan)
    return rows


def _point(r: dict[str, Any]) -> str:
    """A run's point without its seed: the runs of one point over several seeds share it."""
    values = {k: v for k, v in (r.get("values") or {}).items() if k.split(":")[-1] != "seed"}
    search = str(r["run"]).startswith("trial")
    return f"trial {r.get('trial')}" if search else ",".join(f"{k}={v}" for k, v in values.items())


def _order(r: dict[str, Any]) -> tuple[float, float, str]:
    mean = r.get("accuracy_mean", r.get("accuracy"))
    acc = r.get("accuracy")
    finished = r.get("status") == "finished"
    return (
        -(float(mean) if finished and mean is not None and mean == mean else -1.0),
        -(float(acc) if acc is not None else -1.0),
        str(r["run"]),
    )


def write_summary(out: Path, rows: list[dict[str, Any]], names: list[str]) -> str:
    """summary.csv in `out`, sorted by accuracy (mean accuracy where seeds vary); returns the same table as text."""
    rows = sorted(rows, key=_order)
    spread = any("seeds" in r for r in rows)
    extra = ["seeds", "accuracy_mean", "accuracy_spread"] if spread else []
    seed = [] if "seed" in names else ["seed"]
    fields = [*names, *seed, *NUMBERS, *extra, "epochs_done", "status", "run", "error"]
    with open(out / "summary.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for r in rows:
            values = r.get("values") or {}
            w.writerow(
                {**{n: values.get(n, "") for n in names}, **{k: _cell(r.get(k)) for k in fields if k not in names}}
            )
    return _table(rows, names, spread, seed)


def _cell(v: Any) -> Any:
    return "" if v is None else v


def _table(rows: list[dict[str, Any]], names: list[str], spread: bool, seed: list[str]) -> str:
    headers = [*names, *seed, "params", "MACs", "train loss", "test loss", "accuracy"]
    headers += ["mean ± spread"] if spread else []
    headers += ["time (s)", "status", "run"]
    body = []
    for r in rows:
        values = r.get("values") or {}
        line = [_shown(values.get(n, "")) for n in names] + [str(r.get("seed", "")) for _ in seed]
        line += [_int(r.get("params")), _int(r.get("macs"))]
        line += [_num(r.get("train_loss"), "{:.4f}"), _num(r.get("test_loss"), "{:.4f}")]
        line += [_num(r.get("accuracy"), "{:.2%}")]
        if spread:
            m, s = r.get("accuracy_mean"), r.get("accuracy_spread")
            line += [f"{_num(m, '{:.2%}')} ± {_num(s, '{:.2%}')}" if m is not None else "-"]
        line += [_num(r.get("seconds"), "{:.1f}"), str(r.get("status")), str(r["run"])]
        body.append(line)
    right = set(range(len(names), len(headers) - 2))
    return render_table(headers, body, right)


def _shown(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _int(v: Any) -> str:
    return "-" if v is None else f"{int(v):,}"


def _num(v: Any, fmt: str) -> str:
    return "-" if v is None or v != v else fmt.format(float(v))


# ---- pareto.png ------------------------------------------------------------------------------------------------


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """The indices of the points no other point beats: at most the cost, at least the accuracy, better in one.

    >>> pareto_front([(1, 0.5), (2, 0.4), (3, 0.9)])
    [0, 2]
    """
    front = []
    for i, (c, a) in enumerate(points):
        if not any((c2 <= c and a2 >= a) and (c2 < c or a2 > a) for c2, a2 in points):
            front.append(i)
    return front


MARKERS = {"finished": "o", "pruned": "v", "diverged": "x", "failed": "X", "interrupted": "s", "running": "s"}


def write_pareto(path: Path, rows: list[dict[str, Any]]) -> None:
    """Accuracy against parameters and against MACs; the finished runs' Pareto front joined and ringed. A run that
    did not finish is drawn at its last epoch's accuracy (at 0 without one), with its status's marker."""
    from ..training.report import plot_module

    plt = plot_module()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), dpi=100)
    drawn = [r for r in rows if r.get("params") is not None]
    for ax, key, xlabel in zip(axes, ("params", "macs"), ("parameters", "MACs per image")):
        for state in sorted({str(r.get("status")) for r in drawn}):
            rs = [r for r in drawn if str(r.get("status")) == state]
            xs = [float(r[key]) for r in rs]
            ys = [100 * _acc(r) for r in rs]
            ax.scatter(xs, ys, marker=MARKERS.get(state, "o"), label=f"{state} ({len(rs)})", alpha=0.8)
        done = [r for r in drawn if r.get("status") == "finished"]
        front = sorted(
            (float(done[i][key]), 100 * _acc(done[i])) for i in pareto_front([(float(r[key]), _acc(r)) for r in done])
        )
        if front:
            ax.plot(*zip(*front), color="black", linewidth=1, label="Pareto front")
            ax.scatter(*zip(*front), s=120, facecolors="none", edgecolors="black")
        if drawn and min(float(r[key]) for r in drawn) > 0:
            ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("test accuracy (%)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"{len(rows)} runs: accuracy against size and compute")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _acc(r: dict[str, Any]) -> float:
    v = r.get("accuracy")
    return 0.0 if v is None or v != v else float(v)
