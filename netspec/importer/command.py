"""`netspec import`: the click command around `import_text`."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import UsageError
from .pipeline import import_text
from .solve import MisplacedError


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


@click.command("import")
@click.argument("file", metavar="FILE|-")
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
    help="Use this input size (it must fit the printed sizes) instead of the smallest that fits.",
)
def import_command(file: str, name: str | None, output: str | None, order: str | None, input_: str | None) -> None:
    """Turn FILE, a module as print(model) writes it (- for standard input), or torchvision:NAME, one of
    torchvision's classification models (traced with torch.fx, forward() included), into a .net spec.

    \b
    netspec import model.txt -o model.net
    netspec import model.txt --order order.txt    # order.txt: forward { conv1 bn1 relu ... }
    netspec import torchvision:resnet50 -o resnet50.net

    Sizes that follow from the input are dropped, and so are arguments at PyTorch's defaults; repeated groups become
    blocks and repeats. The input size is the smallest at which every printed size fits.
    """
    if file.startswith("torchvision:"):
        if order is not None:
            raise UsageError("--order is for printed modules: a traced model's run order is its forward()")
        from .fx import from_torchvision

        spec, size = from_torchvision(file.split(":", 1)[1], input_, name_as=name)
        _write(spec, output, name or spec.split("network ", 1)[1].split()[0], size)
        return
    text, filename = _read_arg(file, "import")
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
    _write(result.spec, output, result.name, result.input)


def _write(spec: str, output: str | None, name: str, size: tuple[int, int, int]) -> None:
    if output is None:
        click.echo(spec, nl=False)
        return
    try:
        Path(output).write_text(spec)
    except OSError as e:
        raise UsageError(f"-o {output}: cannot write ({e.strerror})") from None
    click.echo(f"wrote {output} (network {name}, input {'x'.join(map(str, size))})", err=True)
