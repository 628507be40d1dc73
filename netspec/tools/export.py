"""`netspec export`: the click command around `netspec.tools.exporting.export`.

Nothing here imports torch (`netspec --help` loads this module to list the command); a missing ONNX package is
reported before torch is imported, as a usage error (exit 2) that names the command that installs it.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import click

from ..errors import UsageError
from ..options import input_size, overrides

ONNX_PACKAGES = ("onnx", "onnxscript", "onnxruntime")
EXTRA = "pip install 'netspec[export]'"
SUFFIXES = {".onnx": "onnx", ".pt2": "pt2"}


def require_onnx() -> None:
    """onnx, onnxscript and onnxruntime, the `export` extra: a UsageError naming the command that installs them."""
    missing = []
    for name in ONNX_PACKAGES:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise UsageError(
            f"export --format onnx needs {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} not "
            f"installed: {EXTRA} (--format pt2 needs torch alone)"
        )


def choose_format(format: str | None, output: str | None) -> str:
    """--format, else the one -o's suffix names, else onnx."""
    implied = SUFFIXES.get(Path(output).suffix.lower()) if output else None
    if format and implied and format != implied:
        raise UsageError(f"-o {output}: a .{implied} file, but --format {format}")
    return format or implied or "onnx"


@click.command("export")
@click.argument("source", metavar="SPEC|RUN_DIR")
@click.option(
    "-o",
    "--output",
    metavar="FILE",
    help="Where to write (default: SPEC's stem, or the run folder's name, with .onnx or .pt2, in this folder).",
)
@click.option(
    "--format",
    "format_",
    type=click.Choice(["onnx", "pt2"]),
    help="onnx (torch.onnx.export, dynamo; needs pip install 'netspec[export]') or pt2 (torch.export). "
    "Default: -o's suffix, else onnx.",
)
@click.option("--input", "input_", metavar="CxHxW", help="Input size (default: the spec's, or the run's).")
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="NAME=VALUE",
    help="Override a constant of the spec (repeatable); a run's weights must still fit.",
)
@click.option("--dynamic-batch", is_flag=True, help="Any batch size (default: a batch of 1).")
@click.option("--seed", type=int, metavar="N", help="A spec's random weights from this seed (default: unseeded).")
def export_command(
    source: str,
    output: str | None,
    format_: str | None,
    input_: str | None,
    sets: tuple[str, ...],
    dynamic_batch: bool,
    seed: int | None,
) -> None:
    """Export SPEC's network, or a run's trained model (RUN_DIR or its checkpoint.pt), to ONNX or torch.export's
    .pt2, and verify the file: loaded back (onnxruntime on the CPU, torch.export.load), its outputs must equal
    PyTorch's on a random input.

    A run is exported with its Normalize inside the graph: the file takes images scaled to [0, 1], as ToTensor
    gives them. A spec is exported with random weights.

    \b
    netspec export specs/cifar_best.net                     cifar_best.onnx, batch size 1
    netspec export runs/x --dynamic-batch -o x.onnx         the trained model, any batch size
    netspec export specs/tiny_best.net --format pt2         tiny_best.pt2, for torch.export.load
    """
    fmt = choose_format(format_, output)
    size, constants = input_size(input_, "export"), overrides(sets)
    if not Path(source).exists():
        raise UsageError(f"{source}: no such spec, run folder or checkpoint")
    if seed is not None and (Path(source).is_dir() or Path(source).suffix in (".pt", ".pth")):
        raise UsageError("--seed is for a spec: a run exports its trained weights")
    if fmt == "onnx":
        require_onnx()
    from .exporting import export  # torch, from here on

    done = export(source, output, fmt, size, constants, dynamic_batch, seed)
    click.echo(_report(done))


def _report(done: Any) -> str:
    """What was written, what it takes, and how it was verified."""
    what = done.what
    size = "x".join(map(str, what.input))
    kind = f"ONNX opset {done.opset}" if done.opset else ("ONNX" if done.format == "onnx" else "torch.export program")
    mb = done.path.stat().st_size / 1e6
    batch = "any batch size" if done.dynamic_batch else "batch size 1"
    lines = [f"exported {what.network} at {size} ({what.weights}) to {done.path}: {kind}, {mb:.1f} MB, {batch}"]
    if what.normalize is not None:
        mean, std = (", ".join(f"{v:g}" for v in vs) for vs in what.normalize)
        lines.append(
            f"input: images scaled to [0, 1], as ToTensor gives them; the run's Normalize(mean=({mean}), "
            f"std=({std})) is inside the graph"
        )
    shapes = [f"{n}x{size}" for n in done.batches]
    inputs = f"a random {shapes[0]} input" if len(shapes) == 1 else f"random {' and '.join(shapes)} inputs"
    lines.append(f"verified with {done.runtime}: max abs difference {done.max_diff:.2g} on {inputs}")
    return "\n".join(lines)
