"""The `netspec` command line.

Exit codes: 0 success, 1 a mistake in a spec or data (rendered with file, line, column and a caret), 2 bad usage
(one line), 3 training diverged, 130 interrupted (Ctrl-C). A user's mistake never shows a traceback.

Every failure reaches click as one `Failure` (a `click.ClickException`) carrying its text and exit code, so click's
own main loop shows it and exits; netspec's errors keep their exit codes, and Ctrl-C never falls through to
click's "Aborted!" (exit 1). `netspec check` imports no torch: torch is imported inside the commands that need it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, NoReturn

import click

from .errors import NetspecError, SpecError, UsageError


class Failure(click.ClickException):
    """A failure as netspec shows it: its text, once, and its exit code."""

    def __init__(self, text: str, exit_code: int, *, to_stdout: bool = False):
        super().__init__(text)
        self.exit_code = exit_code
        self.to_stdout = to_stdout

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(self.message, err=not self.to_stdout)


# click >= 8.2 raises this UsageError (its message being the whole help) for a group called without arguments
_NO_ARGS: Any = getattr(click.exceptions, "NoArgsIsHelpError", ())


@contextmanager
def _failures() -> Iterator[None]:
    """netspec's errors, Ctrl-C and click's usage errors, each as the `Failure` that shows it."""
    try:
        yield
    except NetspecError as e:
        text = e.render() if isinstance(e, SpecError) else f"netspec: error: {e}"
        raise Failure(text, e.exit_code) from e
    except KeyboardInterrupt:
        raise Failure("netspec: error: interrupted", 130) from None
    except _NO_ARGS as e:  # `netspec` alone: its help, not a usage error of twenty lines
        raise Failure(e.ctx.get_help() if e.ctx else "Usage: netspec COMMAND [ARGS]...", 2, to_stdout=True) from e
    except click.UsageError as e:
        command = e.ctx.command_path if e.ctx else "netspec"
        raise Failure(f"{command}: error: {e.format_message()} (see --help)", 2) from e


class NetspecGroup(click.Group):
    """The commands, with `import` loaded only when it runs (or when --help lists it), and every failure shown by
    `_failures`."""

    lazy: dict[str, tuple[str, str]] = {
        "import": ("netspec.importer", "import_command"),
        "draw": ("netspec.tools.draw", "draw_command"),
        "export": ("netspec.tools.export", "export_command"),
        "diff": ("netspec.tools.diff", "diff_command"),
        "fmt": ("netspec.tools.fmt", "fmt_command"),
        "sweep": ("netspec.sweep.command", "sweep_command"),
    }

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        with _failures():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx: click.Context) -> Any:
        with _failures():
            return super().invoke(ctx)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self.lazy))

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        # click suggests among the commands it has loaded: offer it every command, lazy ones included
        if args and not args[0].startswith("-") and self.get_command(ctx, args[0]) is None:
            raise click.exceptions.NoSuchCommand(args[0], possibilities=self.list_commands(ctx), ctx=ctx)
        return super().resolve_command(ctx, args)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy and name not in self.commands:
            import importlib

            module, attr = self.lazy[name]
            self.add_command(getattr(importlib.import_module(module), attr), name)
        return super().get_command(ctx, name)


@click.group(cls=NetspecGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="netspec", message="netspec %(version)s")
def cli() -> None:
    """Describe, compile and train image-classification networks from a .net spec.

    \b
    netspec check specs/cifar_best.net                 shapes, parameters and MACs, without torch
    netspec compile specs/cifar_best.net --summary     the torch module and torchinfo's summary
    netspec train specs/cifar_best.net --data cifar10  train with the spec's settings
    """


def main(argv: list[str] | None = None) -> NoReturn:
    """Entry point: run a command and exit with its code."""
    cli.main(args=argv, prog_name="netspec")
    raise AssertionError("click's main always exits")  # pragma: no cover


# ---------------------------------------------------------------------------------------------------------------
# Arguments shared by the commands
# ---------------------------------------------------------------------------------------------------------------


class _Finite(click.ParamType):
    """A float that is a number: `inf` and `nan` are no learning rates."""

    name = "X"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        x = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(x):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return x


input_option = click.option(
    "--input", "input_", metavar="CxHxW", help="Input size, e.g. 3x64x64 (overrides the spec's `input`)."
)
set_option = click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="NAME=VALUE",
    help="Override a constant of the spec, e.g. --set classes=100 (repeatable).",
)


def _data_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option(
        "--data",
        metavar="NAME|PATH",
        help="cifar10, cifar100, mnist, fashion-mnist, tiny-imagenet, shapes, or an image-folder path "
        "(default: the spec's `data`).",
    )(f)
    f = click.option(
        "--data-dir", metavar="DIR", help="Where data sets live (default: $NETSPEC_DATA, else ~/.cache/netspec)."
    )(f)
    f = click.option("--test-limit", type=click.IntRange(min=1), metavar="N", help="Use the first N test images.")(f)
    f = click.option("--no-download", is_flag=True, help="Never download; fail if the files are not there.")(f)
    f = click.option(
        "--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True, help="Where to run."
    )(f)
    return f


# ---------------------------------------------------------------------------------------------------------------
# check, compile: no torch before the spec holds
# ---------------------------------------------------------------------------------------------------------------


@cli.command()
@click.argument("spec")
@click.option(
    "--input",
    "input_",
    metavar="CxHxW[,CxHxW...]",
    help="Input size(s); several, comma-separated, are shown side by side.",
)
@set_option
def check(spec: str, input_: str | None, sets: tuple[str, ...]) -> None:
    """Parse, validate and infer every shape of SPEC; print the layer table. Needs no torch."""
    from .api import check as check_spec
    from .options import input_sizes, overrides
    from .table import shape_table, side_by_side

    sizes = input_sizes(input_)
    constants = overrides(sets)
    if sizes is None or len(sizes) == 1:
        net, table = check_spec(Path(spec), sizes[0] if sizes else None, constants)
        click.echo(shape_table(net, table))
        return
    from .lang import load_spec, read_spec
    from .shapes import fmt_shape, infer, smallest_inputs

    net = load_spec(*read_spec(spec), input=sizes[0], constants=constants)  # each size is inferred below
    tables: list[Any] = []
    for size in sizes:
        try:
            tables.append(infer(net, size))
        except SpecError as e:
            tables.append(e)
    click.echo(side_by_side(net, sizes, tables))
    square, smallest = smallest_inputs(net)
    if square is None or smallest is None:
        click.echo("smallest input: none up to 4096x4096")
    else:
        click.echo(f"smallest input: {fmt_shape(square)} (square); smallest H x W: {fmt_shape(smallest)}")
    errors = [t for t in tables if isinstance(t, SpecError)]
    if errors:
        raise errors[0]


@cli.command(name="compile")
@click.argument("spec")
@input_option
@set_option
@click.option("--summary", is_flag=True, help="Print torchinfo's summary at the input size instead.")
def compile_(spec: str, input_: str | None, sets: tuple[str, ...], summary: bool) -> None:
    """Compile SPEC to torch.nn modules and print the model exactly as `print(model)` does."""
    from .api import check as check_spec

    # validate and infer every shape before torch is imported: a mistake (an absurd size above all) is reported at
    # once, without the seconds and the memory that importing torch costs
    from .options import input_size, overrides

    net, table = check_spec(Path(spec), input_size(input_, "compile"), overrides(sets))
    from .build import build

    module = build(net, table)
    if not summary:
        click.echo(str(module))
        return
    import torchinfo

    stats = torchinfo.summary(
        module,
        input_size=(1, *table.input),
        verbose=0,
        device="cpu",
        col_names=("output_size", "num_params", "mult_adds"),
        depth=4,
    )
    text = str(stats)
    # torchinfo 1.8 formats its `Units` (a str Enum) with an f-string, which since Python 3.11 gives the member's
    # name ("Units.GIGABYTES") instead of its value ("G")
    for unit in torchinfo.Units:
        text = text.replace(f"({unit.__class__.__name__}.{unit.name})", f"({unit.value})")
    click.echo(text)


# ---------------------------------------------------------------------------------------------------------------
# train, evaluate, compare
# ---------------------------------------------------------------------------------------------------------------


@cli.command()
@click.argument("spec", required=False)
@_data_options
@click.option("--epochs", type=int, metavar="N", help="Override the spec's epochs.")
@click.option("--batch-size", type=int, metavar="N", help="Global batch size (all processes together).")
@click.option("--test-batch-size", type=int, metavar="N")
@click.option("--lr", type=_Finite(), help="Learning rate of the spec's optimizer.")
@click.option("--momentum", type=_Finite())
@click.option("--weight-decay", type=_Finite())
@click.option("--seed", type=int, metavar="N")
@click.option("--train-limit", type=click.IntRange(min=1), metavar="N", help="Use the first N training images.")
@click.option("--input", "input_", metavar="CxHxW", help="Training resolution (overrides the spec's `input`).")
@set_option
@click.option(
    "--precision",
    type=click.Choice(["auto", "fp32", "bf16", "fp16"]),
    default="auto",
    show_default=True,
    help="auto: bf16 on a GPU that has it (fp16 on older ones), fp32 on every CPU (see docs/performance.md).",
)
@click.option(
    "--channels-last/--no-channels-last",
    default=None,
    help="Memory format of activations (default: on for convolutional networks).",
)
@click.option("--compile", "compile_", is_flag=True, help="torch.compile the model.")
@click.option("--sync-bn", is_flag=True, help="SyncBatchNorm across processes (NCCL only).")
@click.option("--out", metavar="DIR", help="Run folder (default: a new folder under runs/).")
@click.option(
    "--resume",
    is_flag=True,
    help="Continue the run in --out from its last finished epoch, with its own settings (SPEC may be left out).",
)
@click.option("--quiet", is_flag=True, help="No progress bar and no per-epoch lines; the final result line stays.")
@click.option(
    "--tensorboard",
    is_flag=True,
    help="Also write TensorBoard event files to the run folder's tensorboard/: every metrics.csv column per epoch, "
    "and the settings and final metrics (HParams). Needs pip install 'netspec[tensorboard]'.",
)
def train(
    spec: str | None, input_: str | None, sets: tuple[str, ...], compile_: bool, no_download: bool, **flags: Any
) -> None:
    """Train SPEC with the settings of its `train` section; flags override them.

    Writes one run folder: spec.net, settings.json, env.json, metrics.csv, results.json, report.md, the plots,
    architecture.svg and checkpoint.pt. Under `torchrun --nproc_per_node N -m netspec train ...` it trains with DistributedDataParallel.
    """
    from .training.settings import SpecSource, TrainOptions, plan

    if spec is None and not flags["resume"]:
        raise click.UsageError("Missing argument 'SPEC'.")
    from .options import input_size, overrides

    input_size(input_, "train")
    opts = TrainOptions(input=input_, constants=overrides(sets), compile=compile_, download=not no_download, **flags)
    # a new run's spec is checked here, before torch is imported; a resumed run's is the one in its folder
    job = plan(SpecSource.read(spec) if spec is not None else None, opts)
    from .training.run import run

    run(job)


@cli.command()
@click.argument("run", metavar="RUN_DIR|CHECKPOINT")
@_data_options
@click.option("--batch-size", type=click.IntRange(min=1), metavar="N", help="Test batch size.")
@click.option(
    "--precision",
    type=click.Choice(["auto", "fp32", "bf16", "fp16"]),
    default=None,
    help="Default: the precision the run trained in.",
)
@click.option(
    "--tta",
    type=click.Choice(["flip", "none"]),
    default=None,
    help="Test-time augmentation. Default: as the run tested (its `tta` setting).",
)
@click.option(
    "--weights",
    type=click.Choice(["ema", "trained"]),
    default=None,
    help="The weights' moving average or the trained weights. Default: as the run tested (the average with `ema`).",
)
@click.option("--out", metavar="DIR", help="Also write evaluation.json and confusion_matrix.png here.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def evaluate(run: str, no_download: bool, as_json: bool, **options: Any) -> None:
    """Evaluate a trained model: test loss, accuracy, per-class accuracy, confusion matrix.

    By default it tests as the run did: the run's data set, test limit, precision, test-time augmentation and
    weights; --tta and --weights test the same model otherwise (what each adds).
    """
    if not Path(run).exists():
        raise UsageError(f"{run}: no such run folder or checkpoint")
    from .training.evaluate import evaluate as evaluate_run

    r = evaluate_run(run, download=not no_download, **options)
    click.echo(json.dumps(r, indent=2) if as_json else _evaluation_text(r))


def _evaluation_text(r: dict[str, Any]) -> str:
    from .training.report import pct

    limit = f"the first {r['test_limit']:,} test images" if r["test_limit"] else "every test image"
    lines = [
        f"checkpoint: {r['checkpoint']} (epoch {r['epoch']})",
        f"data: {r['data']}, {limit} ({r['total']:,}); precision: {r['precision']}"
        + (f"; tta: {r['tta']}" if r.get("tta") else "")
        + ("; weights: their moving average (ema)" if r.get("weights") == "ema" else ""),
        f"test loss: {r['test_loss']:.4f}",
        f"test accuracy: {100 * r['test_accuracy']:.2f}% ({r['correct']}/{r['total']})",
        *(f"Accuracy of {name}: {pct(acc)} %" for name, acc in r["per_class_accuracy"].items()),
    ]
    if len(r["classes"]) <= 20:
        lines.append("confusion matrix (rows: true, columns: predicted):")
        width = max(5, *(len(str(v)) for row in r["confusion_matrix"] for v in row)) + 1
        for name, row in zip(r["classes"], r["confusion_matrix"]):
            lines.append(f"  {name[:12]:>12} " + "".join(str(v).rjust(width) for v in row))
    return "\n".join(lines)


@cli.command()
@click.argument("runs", nargs=-1, required=True, metavar="RUN_DIR|SWEEP_DIR...")
@click.option("--out", metavar="FILE", default="compare.png", show_default=True, help="Where to write the curves.")
def compare(runs: tuple[str, ...], out: str) -> None:
    """Compare finished runs side by side: a table and overlaid curves. A sweep folder stands for its finished
    runs."""
    from .training.report import compare as compare_runs

    click.echo(compare_runs([Path(r) for r in runs], Path(out)))


if __name__ == "__main__":  # pragma: no cover
    main()
