"""A spec's network, or a run's trained model, written as an ONNX file or a torch.export program (.pt2), and held
against PyTorch: the file is loaded back (onnxruntime on the CPU, `torch.export.load`) and its outputs compared
with the module's on a random input.

ONNX goes through `torch.onnx.export(..., dynamo=True)`, PyTorch's recommended exporter (the default of the torch
netspec runs on): the module is captured by `torch.export` and translated by onnxscript. A run's model is exported
with its `normalize` inside the graph, so the file takes images scaled to [0, 1], as `ToTensor` gives them.

>>> from netspec.tools.exporting import export
>>> export("specs/cifar_best.net", "cifar_best.onnx").max_diff < 1e-4   # doctest: +SKIP
True
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..api import check
from ..build import build
from ..errors import NetspecError, UsageError
from ..lang import load_spec
from ..shapes import infer
from ..training.batch import channel_stats
from ..training.checkpoint import load_weights, spec_of
from .export import EXTRA

FORMATS = ("onnx", "pt2")

# The file's outputs must equal the module's within ATOL + RTOL * (the largest output's magnitude). Another
# library's float32 kernels sum in another order and the ONNX optimizer folds constants, which moves outputs by about
# 1e-6 of their size in these networks (measured on the report's specs and the zoo's), far below 1e-4; the bound is
# relative because a randomly initialized network's outputs are small (about 0.02 for specs/cifar_best.net).
ATOL, RTOL = 1e-6, 1e-4
EXAMPLE_BATCH = 2  # the batch traced for --dynamic-batch: neither of the sizes checked, so neither is baked in
CHECKED_BATCHES = {False: (1,), True: (1, 3)}


class ExportError(NetspecError):
    """An export that failed, or whose file does not compute what the module does (exit 1)."""


@dataclass(frozen=True)
class Exportable:
    """What is exported: the module (eval mode, CPU, float32) and what the report says about it."""

    module: nn.Module
    network: str  # the network's name
    input: tuple[int, int, int]
    weights: str  # where the weights come from, in words
    normalize: tuple[list[float], list[float]] | None  # the Normalize inside the graph (a run's), or None


@dataclass(frozen=True)
class Exported:
    """A written and verified file."""

    path: Path
    format: str
    what: Exportable
    runtime: str  # what loaded the file back: "onnxruntime" or "torch.export.load"
    batches: tuple[int, ...]  # the batch sizes it was checked at
    max_diff: float  # the largest absolute difference from PyTorch's outputs, over every batch checked
    dynamic_batch: bool
    opset: int | None  # ONNX's opset, for an ONNX file


class Normalized(nn.Module):
    """`(x - mean) / std`, then the network: a run's model as it trained, for images scaled to [0, 1]."""

    mean: Tensor
    std: Tensor

    def __init__(self, net: nn.Module, mean: Tensor, std: Tensor):
        super().__init__()
        self.net = net
        self.register_buffer("mean", mean.reshape(1, -1, 1, 1))  # (1, C, 1, 1)
        self.register_buffer("std", std.reshape(1, -1, 1, 1))  # (1, C, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.net((x - self.mean) / self.std)


def is_run(source: str | os.PathLike[str]) -> bool:
    """A run folder, or a checkpoint file (`*.pt`), rather than a spec."""
    p = Path(source)
    return p.is_dir() or p.suffix in (".pt", ".pth")


def from_spec(
    path: str | os.PathLike[str],
    input: tuple[int, int, int] | None = None,
    constants: Mapping[str, Any] | None = None,
    seed: int | None = None,
) -> Exportable:
    """The spec's network at `input`, weights initialized as torch does (from `seed`, when given)."""
    net, table = check(path, input, constants)
    with torch.random.fork_rng(devices=[]):  # a seed for these weights only, not for the caller's random numbers
        if seed is not None:
            torch.manual_seed(seed)
        module = build(net, table)
    weights = "random weights" if seed is None else f"random weights (seed {seed})"
    return Exportable(module.eval(), net.name, net.input, weights, None)


def from_run(
    path: str | os.PathLike[str],
    input: tuple[int, int, int] | None = None,
    constants: Mapping[str, Any] | None = None,
) -> Exportable:
    """A run's trained model, from its folder or checkpoint, with its Normalize in front when it had one: built
    from the spec, input and constants it ran with (--input and --set over them: the weights must still fit)."""
    run = spec_of(path)
    net = load_spec(
        run.text,
        run.filename or run.checkpoint,
        input=input or run.input,
        constants={**run.constants, **(constants or {})},
    )
    model = build(net, infer(net))
    load_weights(model, run.weights, run.checkpoint)
    weights = f"the weights of {run.checkpoint}"
    if run.normalize is None:  # the run scaled pixels to [0, 1] and did no more: neither does the graph
        return Exportable(model.eval(), net.name, net.input, weights, None)
    mean, std = channel_stats(*run.normalize, net.input[0], torch.device("cpu"))
    return Exportable(Normalized(model, mean, std).eval(), net.name, net.input, weights, (mean.tolist(), std.tolist()))


def default_output(source: str | os.PathLike[str], format: str) -> Path:
    """SPEC's stem, or the run folder's name, with the format's suffix, in the current folder."""
    p = Path(source).resolve()
    if p.is_dir():
        stem = p.name
    elif p.suffix in (".pt", ".pth") and p.stem == "checkpoint":  # runs/x/checkpoint.pt: the run's name, x
        stem = p.parent.name
    else:
        stem = p.stem
    return Path(f"{stem}.{format}")


def export(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str] | None = None,
    format: str = "onnx",
    input: tuple[int, int, int] | None = None,
    constants: Mapping[str, Any] | None = None,
    dynamic_batch: bool = False,
    seed: int | None = None,
) -> Exported:
    """Export a spec (bare network) or a run (trained, with its Normalize) to `output` and verify the file."""
    if format not in FORMATS:
        raise UsageError(f"--format {format!r}: expected one of {', '.join(FORMATS)}")
    what = from_run(source, input, constants) if is_run(source) else from_spec(source, input, constants, seed)
    path = Path(output) if output is not None else default_output(source, format)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write(what, path, format, dynamic_batch)


def write(what: Exportable, path: Path, format: str, dynamic_batch: bool) -> Exported:
    """Write `what` to `path`, load it back and compare its outputs with the module's; a file that does not
    verify is removed."""
    x = random_input(EXAMPLE_BATCH if dynamic_batch else 1, what.input)
    shapes = ({0: torch.export.Dim("batch", min=1)},) if dynamic_batch else None
    opset = None
    if format == "onnx":
        opset = write_onnx(what, x, path, shapes)
        runtime, run = "onnxruntime", onnx_runner(path)
    else:
        write_pt2(what, x, path, shapes)
        runtime, run = "torch.export.load", pt2_runner(path)
    batches = CHECKED_BATCHES[dynamic_batch]
    try:
        diff = max(compare(what, run, n) for n in batches)
    except ExportError:
        path.unlink(missing_ok=True)
        raise
    return Exported(path, format, what, runtime, batches, diff, dynamic_batch, opset)


def random_input(batch: int, size: tuple[int, int, int]) -> Tensor:
    """Uniform in [0, 1), as images are after ToTensor; the same every time."""
    return torch.rand((batch, *size), generator=torch.Generator().manual_seed(batch))


def _first_line(e: BaseException) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return (lines[0][:300] if lines else "") or type(e).__name__


def write_onnx(what: Exportable, x: Tensor, path: Path, shapes: tuple[dict[int, Any]] | None) -> int | None:
    """torch.onnx.export with the dynamo exporter; the weights inside the file (external data only past 2 GB)."""
    try:
        program = torch.onnx.export(
            what.module,
            (x,),
            dynamo=True,
            dynamic_shapes=shapes,
            input_names=["input"],
            output_names=["output"],
            verbose=False,
        )
    except ImportError as e:  # onnxscript missing, or too old for this torch
        raise UsageError(f"--format onnx: {_first_line(e)}; install the export extra: {EXTRA}") from None
    except Exception as e:  # torch.export's and the translation's many error types: one line, no traceback
        raise ExportError(f"torch.onnx.export could not export {what.network}: {_first_line(e)}") from None
    if program is None:  # only the TorchScript exporter returns None
        raise ExportError("torch.onnx.export returned no ONNX program")
    program.save(path, external_data=False)
    opset = program.model.opset_imports.get("")
    return int(opset) if opset is not None else None


def write_pt2(what: Exportable, x: Tensor, path: Path, shapes: tuple[dict[int, Any]] | None) -> None:
    try:
        program = torch.export.export(what.module, (x,), dynamic_shapes=shapes)
    except Exception as e:  # as for ONNX: torch.export's error types, as one line
        raise ExportError(f"torch.export could not export {what.network}: {_first_line(e)}") from None
    torch.export.save(program, path)


def onnx_runner(path: Path) -> Callable[[Tensor], Tensor]:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def run(x: Tensor) -> Tensor:
        return torch.from_numpy(session.run(None, {name: x.numpy()})[0])

    return run


def pt2_runner(path: Path) -> Callable[[Tensor], Tensor]:
    module = torch.export.load(path).module()

    def run(x: Tensor) -> Tensor:
        with torch.no_grad():
            return module(x)

    return run


def compare(what: Exportable, run: Callable[[Tensor], Tensor], batch: int) -> float:
    """The largest absolute difference between the file's outputs and the module's at one batch size; an
    ExportError past the tolerance."""
    x = random_input(batch, what.input)
    with torch.no_grad():
        expected = what.module(x)
    shown = "x".join(map(str, x.shape))
    try:
        got = run(x)
    except Exception as e:  # the runtime refusing the file: its error, as one line
        raise ExportError(f"the exported file does not run on a {shown} input: {_first_line(e)}") from None
    if got.shape != expected.shape:
        raise ExportError(f"the exported file gives outputs of shape {tuple(got.shape)}, not {tuple(expected.shape)}")
    diff = float((got.float() - expected).abs().max())
    tolerance = ATOL + RTOL * float(expected.abs().max())
    if not diff <= tolerance:  # NaN too
        raise ExportError(
            f"the exported file's outputs differ from PyTorch's by up to {diff:.3g} on a random {shown} input "
            f"(tolerance {tolerance:.3g}); the file was removed"
        )
    return diff
