"""`netspec sweep SPEC --vary NAME=VALUES ...`: every train option, plus what to vary and how many trials."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from ..cli import train as train_command
from ..errors import UsageError

# train's options, shared as they are (their names, types, defaults and help); a sweep sets each run's folder and
# continues unfinished runs itself, and its runs are quiet
_SHARED = [p for p in train_command.params if p.name not in ("spec", "out", "resume", "quiet")]


def _seeds(text: str | None) -> tuple[int, ...]:
    if not text:
        return ()
    try:
        seeds = tuple(int(s) for s in text.split(","))
    except ValueError:
        raise UsageError(f"--seeds {text}: expected whole numbers separated by commas, e.g. --seeds 0,1,2") from None
    if len(set(seeds)) < len(seeds):
        raise UsageError(f"--seeds {text}: a seed is listed twice")
    return seeds


def default_out(spec: str) -> Path:
    """`runs/sweep-<spec>-<time>/`, numbered when two sweeps start in the same second."""
    from ..training.run_folder import numbered

    return numbered(Path("runs") / f"sweep-{Path(spec).stem}-{time.strftime('%Y%m%d-%H%M%S')}")


@click.command(name="sweep")
@click.argument("spec")
@click.option(
    "--vary",
    "vary",
    multiple=True,
    metavar="NAME=V1,V2|LO..HI[:log]",
    help="A constant of the spec or a train setting to vary: a list (a grid) or a range (a search). Repeatable. "
    "A name that is both is written const:NAME or train:NAME.",
)
@click.option(
    "--trials",
    type=click.IntRange(min=1),
    metavar="N",
    default=20,
    show_default=True,
    help="A search's total trials, over every process.",
)
@click.option("--seeds", metavar="S1,S2,...", help="Run each point once per seed and score the mean accuracy.")
@click.option("--storage", metavar="URL", help="An Optuna storage URL (default: a journal file in the sweep folder).")
@click.option("--no-prune", is_flag=True, help="A search prunes nothing (default: MedianPruner at each epoch).")
@click.option("--out", metavar="DIR", help="The sweep folder (default: runs/sweep-<spec>-<time>/); run again to go on.")
def sweep_command(
    spec: str,
    vary: tuple[str, ...],
    trials: int,
    seeds: str | None,
    storage: str | None,
    no_prune: bool,
    out: str | None,
    input_: str | None,
    sets: tuple[str, ...],
    compile_: bool,
    no_download: bool,
    **flags: Any,
) -> None:
    """Train SPEC at every point of a grid, or search a space, each point a run folder in one sweep folder.

    \b
    netspec sweep examples/resnet_small.net --vary width=8,16 --vary depth=2,3 --data shapes --epochs 2
    netspec sweep SPEC --vary width=8..64:log --vary lr=1e-3..1e-1:log --trials 20

    Every point is checked (shapes included) before anything trains. The sweep folder ends with summary.csv and
    pareto.png; running the same command again goes on where it stopped.
    """
    from ..options import input_size, overrides
    from ..training.settings import SpecSource, TrainOptions
    from .space import check_points, corners, grid, parse_axes
    from .study import Sweep, optuna_module

    optuna_module()  # before anything else: without Optuna, nothing can run
    input_size(input_, "sweep")
    source = SpecSource.read(spec)
    axes = parse_axes(vary, set(source.program.consts))
    base = TrainOptions(input=input_, constants=overrides(sets), compile=compile_, download=not no_download, **flags)
    sw = Sweep(source, base, axes, Path(out) if out else default_out(spec), _seeds(seeds), trials, not no_prune)
    points = corners(axes) if sw.is_search else grid(axes)
    check_points(source, base, axes, points)
    click.echo(
        f"{len(points)} {'corners of the search space' if sw.is_search else 'points'} checked; sweep folder: {sw.out}",
        err=True,
    )
    run_sweep(sw, points, storage)


sweep_command.params.extend(_SHARED)


def run_sweep(sw: Any, points: list[dict[str, Any]], storage: str | None) -> None:
    from .runner import run_grid, run_search
    from .summary import collect, write_pareto, write_summary

    def say(row: dict[str, Any]) -> None:
        acc = row.get("accuracy")
        shown = f"{100 * acc:.2f}%" if isinstance(acc, float) and acc == acc else "-"
        click.echo(f"{row['run']}: {row['status']}, accuracy {shown}", err=True)

    study = run_search(sw, storage, say) if sw.is_search else run_grid(sw, points, storage, say)
    rows = collect(study)
    text = write_summary(sw.out, rows, [a.name for a in sw.axes])
    write_pareto(sw.out / "pareto.png", rows)
    click.echo(text)
    click.echo(f"summary: {sw.out / 'summary.csv'}; plot: {sw.out / 'pareto.png'}")
