"""`netspec import`: the click command around `import_text`, and around `recover_spec` for a checkpoint.

A checkpoint is told from printed text by its first bytes (a torch file is a zip, or an older pickle), never by its
name. Reading one needs torch and the trainer, which owns the format (`netspec.training.checkpoint.spec_of`): they
are imported inside the command, only for a checkpoint, so `import netspec.importer` loads no torch and the
importer's own modules use `lang` and `shapes` alone.
"""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import UsageError
from .pipeline import import_text
from .recover import recover_spec
from .solve import MisplacedError

# the first bytes of what torch.save writes: a zip file (PyTorch >= 1.6), or a pickle of protocol 2 or later
_TORCH_MAGIC = (b"PK\x03\x04", b"\x80")


def _read_arg(path: str, what: str) -> tuple[str | bytes, str]:
    """The bytes of FILE (or of standard input for `-`), and the name errors give it."""
    if path == "-":
        stream = click.get_binary_stream("stdin")
        return stream.read(), "<stdin>"
    p = Path(path)
    if p.is_dir():
        raise UsageError(f"{what} {path}: is a directory")
    try:
        return p.read_bytes(), path
    except FileNotFoundError:
        raise UsageError(f"{what} {path}: no such file") from None
    except OSError as e:
        raise UsageError(f"{what} {path}: cannot read ({e.strerror})") from None


def _is_checkpoint(path: str) -> bool:
    """A run folder, or a file whose first bytes are a torch file's."""
    p = Path(path)
    if p.is_dir():
        if (p / "checkpoint.pt").is_file():
            return True
        raise UsageError(f"import {path}: is a directory without a checkpoint.pt (give a run folder, or a file)")
    try:
        with open(p, "rb") as f:
            return f.read(4).startswith(_TORCH_MAGIC)
    except OSError:
        return False  # reported as the text is read


@click.command("import")
@click.argument("file", metavar="FILE|RUN|-")
@click.option("--name", metavar="NAME", help="The network's name (default: the printed class name).")
@click.option("-o", "--output", metavar="OUT.net", help="Write the spec here (default: standard output).")
@click.option(
    "--order",
    metavar="FILE",
    help="The run order, written as a spec's `forward { ... }` section (default: registration order).",
)
@click.option(
    "--input",
    "input_",
    metavar="CxHxW",
    help="Use this input size (it must fit the printed sizes) instead of the one chosen.",
)
def import_command(file: str, name: str | None, output: str | None, order: str | None, input_: str | None) -> None:
    """Turn FILE, a module as print(model) writes it (- for standard input), or torchvision:NAME, one of
    torchvision's classification models (traced with torch.fx, forward() included), into a .net spec; or recover
    the spec a run trained from its checkpoint (a checkpoint.pt, or a run folder).

    \b
    netspec import model.txt -o model.net
    netspec import model.txt --order order.txt    # order.txt: forward { conv1 bn1 relu ... }
    netspec import torchvision:resnet50 -o resnet50.net
    netspec import runs/x/checkpoint.pt -o x.net  # the spec that ran, its --set, --input and the data's
                                                  # classes and channels written in: it loads the weights

    Sizes that follow from the input are dropped, and so are arguments at PyTorch's defaults; repeated groups become
    blocks and repeats. The input size is the smallest common size (28, 32, 64, 96, 128, 224, 256, 299) at which every
    printed size fits, else the smallest; where it rests on the assumed run order, a warning says so.
    """
    if file.startswith("torchvision:"):
        if order is not None:
            raise UsageError("--order is for printed modules: a traced model's run order is its forward()")
        from .fx import from_torchvision

        spec, size = from_torchvision(file.split(":", 1)[1], input_, name_as=name)
        _write(spec, name or spec.split("network ", 1)[1].split()[0], size, output)
        return
    if file != "-" and _is_checkpoint(file):
        given = [flag for flag, v in (("--name", name), ("--order", order), ("--input", input_)) if v is not None]
        if given:
            raise UsageError(
                f"{', '.join(given)}: not for a checkpoint, whose spec is the one its run trained "
                f"(edit the recovered spec instead)"
            )
        _write(*_recovered(file), output)
        return
    text, filename = _read_arg(file, "import")
    if isinstance(text, bytes) and text.startswith(_TORCH_MAGIC):
        raise UsageError("import -: a checkpoint on standard input; give its path instead (netspec import RUN)")
    order_text = None
    if order is not None:
        order_text, _ = _read_arg(order, "--order")
    try:
        result = import_text(text, filename, name=name, order=order_text, order_filename=order, input=input_)
    except MisplacedError as e:
        for w in e.warnings:
            click.echo(f"netspec import: warning: {w}", err=True)
        raise
    for w in result.warnings:
        click.echo(f"netspec import: warning: {w}", err=True)
    _write(result.spec, result.name, result.input, output)


def _recovered(path: str) -> tuple[str, str, tuple[int, int, int]]:
    """The spec a checkpoint's run trained, checked against the checkpoint's weights: (text, name, input)."""
    from ..training.checkpoint import check_weights, spec_of  # torch, only for a checkpoint

    run = spec_of(path)
    result = recover_spec(
        run.text,
        run.filename or None,
        ran=run.input,
        constants=run.constants,
        origin=run.checkpoint,
        classes=run.classes,
        requested=run.requested_input,
    )
    check_weights(result.spec, run)  # strict: the recovered spec, compiled with no flags, takes every weight
    return result.spec, result.name, result.input


def _write(spec: str, name: str, input: tuple[int, int, int], output: str | None) -> None:
    if output is None:
        click.echo(spec, nl=False)
        return
    try:
        Path(output).write_text(spec)
    except OSError as e:
        raise UsageError(f"-o {output}: cannot write ({e.strerror})") from None
    click.echo(f"wrote {output} (network {name}, input {'x'.join(map(str, input))})", err=True)
