"""Commands that need torch: train, evaluate, compare (and `import`, in `importer`).

The CLI group imports this module only when one of them runs or `--help` lists them (`cli.LazyGroup`), so
`netspec check` stays torch-free and fast.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from .cli import set_option
from .errors import UsageError


def _data_options(f):
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


@click.command()
@click.argument("spec", required=False)
@_data_options
@click.option("--epochs", type=int, metavar="N", help="Override the spec's epochs.")
@click.option("--batch-size", type=int, metavar="N", help="Global batch size (all processes together).")
@click.option("--test-batch-size", type=int, metavar="N")
@click.option("--lr", type=float, metavar="X", help="Learning rate of the spec's optimizer.")
@click.option("--momentum", type=float, metavar="X")
@click.option("--weight-decay", type=float, metavar="X")
@click.option("--seed", type=int, metavar="N")
@click.option("--train-limit", type=click.IntRange(min=1), metavar="N", help="Use the first N training images.")
@click.option("--input", "input_", metavar="CxHxW", help="Training resolution (overrides the spec's `input`).")
@set_option
@click.option(
    "--precision",
    type=click.Choice(["auto", "fp32", "bf16", "fp16"]),
    default="auto",
    show_default=True,
    help="auto: bf16 where the hardware has it natively, else fp32.",
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
def train(
    spec,
    data,
    data_dir,
    test_limit,
    no_download,
    device,
    epochs,
    batch_size,
    test_batch_size,
    lr,
    momentum,
    weight_decay,
    seed,
    train_limit,
    input_,
    sets,
    precision,
    channels_last,
    compile_,
    sync_bn,
    out,
    resume,
    quiet,
):
    """Train SPEC with the settings of its `train` section; flags override them.

    Writes one run folder: spec.net, settings.json, env.json, metrics.csv, results.json, report.md, the plots and
    checkpoint.pt. Under `torchrun --nproc_per_node N -m netspec train ...` it trains with DistributedDataParallel.
    """
    from .api import check as check_spec
    from .cli import _overrides, _sizes

    if resume and not out:
        raise UsageError("--resume needs --out DIR (the run folder to continue)")
    if spec is None and not resume:
        raise click.UsageError("Missing argument 'SPEC'.")
    sizes = _sizes(input_)
    if sizes and len(sizes) > 1:
        raise UsageError("train takes one --input size")
    if not resume:  # a resumed run's spec is the one in its folder, checked against SPEC by the trainer
        check_spec(Path(spec), sizes[0] if sizes else None, _overrides(sets))  # a bad spec fails before torch loads
    from .training.run import TrainOptions, run

    opts = TrainOptions(
        data=data,
        data_dir=data_dir,
        epochs=epochs,
        batch_size=batch_size,
        test_batch_size=test_batch_size,
        lr=lr,
        momentum=momentum,
        weight_decay=weight_decay,
        seed=seed,
        train_limit=train_limit,
        test_limit=test_limit,
        input=input_,
        constants=_overrides(sets),
        device=device,
        precision=precision,
        channels_last=channels_last,
        compile=compile_,
        sync_bn=sync_bn,
        out=out,
        resume=resume,
        download=not no_download,
        quiet=quiet,
        progress=not quiet,
    )
    run(Path(spec) if spec is not None else None, opts)


@click.command()
@click.argument("run", metavar="RUN_DIR|CHECKPOINT")
@_data_options
@click.option("--batch-size", type=click.IntRange(min=1), metavar="N", help="Test batch size.")
@click.option(
    "--precision",
    type=click.Choice(["auto", "fp32", "bf16", "fp16"]),
    default=None,
    help="Default: the precision the run trained in.",
)
@click.option("--out", metavar="DIR", help="Also write evaluation.json and confusion_matrix.png here.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def evaluate(run, data, data_dir, test_limit, no_download, device, batch_size, precision, out, as_json):
    """Evaluate a trained model: test loss, accuracy, per-class accuracy, confusion matrix.

    By default it tests as the run did: the run's data set, test limit and precision.
    """
    from .training.report import pct
    from .training.run import evaluate as evaluate_run

    if not Path(run).exists():
        raise UsageError(f"{run}: no such run folder or checkpoint")
    r = evaluate_run(
        run,
        data=data,
        data_dir=data_dir,
        test_limit=test_limit,
        batch_size=batch_size,
        device=device,
        precision=precision,
        download=not no_download,
        out=out,
    )
    if as_json:
        click.echo(json.dumps(r, indent=2))
        return
    limit = f"the first {r['test_limit']:,} test images" if r["test_limit"] else "every test image"
    click.echo(f"checkpoint: {r['checkpoint']} (epoch {r['epoch']})")
    click.echo(f"data: {r['data']}, {limit} ({r['total']:,}); precision: {r['precision']}")
    click.echo(f"test loss: {r['test_loss']:.4f}")
    click.echo(f"test accuracy: {pct(r['test_accuracy'])}% ({r['correct']}/{r['total']})")
    for name, acc in r["per_class_accuracy"].items():
        click.echo(f"Accuracy of {name}: {pct(acc)} %")
    classes = r["classes"]
    if len(classes) <= 20:
        click.echo("confusion matrix (rows: true, columns: predicted):")
        width = max(5, *(len(str(v)) for row in r["confusion_matrix"] for v in row)) + 1
        for name, row in zip(classes, r["confusion_matrix"]):
            click.echo(f"  {name[:12]:>12} " + "".join(str(v).rjust(width) for v in row))


@click.command()
@click.argument("runs", nargs=-1, required=True, metavar="RUN_DIR...")
@click.option("--out", metavar="FILE", default="compare.png", show_default=True, help="Where to write the curves.")
def compare(runs, out):
    """Compare finished runs side by side: a table and overlaid curves."""
    from .training.report import compare as compare_runs

    click.echo(compare_runs([Path(r) for r in runs], Path(out)))
