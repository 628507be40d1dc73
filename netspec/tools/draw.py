"""`netspec draw`: a diagram of a spec's network, from its static shape table (no torch, no Graphviz).

>>> from netspec.api import check
>>> from netspec.tools.draw import draw_network
>>> net, table = check("specs/cifar_best.net")
>>> draw_network(net, table, "/tmp/cifar_best.svg").columns
1

Each layer, operation and closed module is a box (kind, key arguments, output shape); edges follow the run order,
merges included; a spec's modules are closed boxes and repeats are folded ("× N") unless `expand`. The title
holds the parameter and MAC totals. `--format dot` writes Graphviz source instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import click

from ..errors import NetspecError, UsageError
from ..lang import Network, short
from ..options import overrides
from ..shapes import ShapeTable
from .diagram import boxes_of, diagram

FORMATS = {".svg": "svg", ".png": "png", ".dot": "dot", ".gv": "dot"}


@dataclass(frozen=True)
class Drawn:
    """What was drawn: the file, its box count, columns and size in inches (0 for DOT)."""

    path: Path
    boxes: int
    columns: int
    width: float
    height: float


def draw_network(
    net: Network, table: ShapeTable, path: str | Path, *, expand: bool = False, fmt: str | None = None
) -> Drawn:
    """Draw `net` (with its shape table) into `path`: SVG or PNG by its suffix, or `fmt` ("svg", "png", "dot")."""
    from .drawing import render

    path = Path(path)
    fmt = fmt or FORMATS.get(path.suffix.lower(), "svg")
    d = diagram(net, table, expand)
    count = sum(len(boxes_of(it)) for it in d.items)
    if fmt == "dot":
        from .dot import to_dot

        path.write_text(to_dot(d))
        return Drawn(path, count, 0, 0.0, 0.0)
    lay = render(d, path, fmt)
    return Drawn(path, count, len(lay.columns), lay.width, lay.height)


def _format(out: str | None, fmt: str | None) -> str:
    """The format asked for: --format, or -o's suffix, else SVG; a suffix that disagrees is a usage error."""
    if out is None:
        return fmt or "svg"
    suffix = Path(out).suffix.lower()
    if fmt is None:
        if suffix not in FORMATS:
            raise UsageError(f"-o {short(out)}: expected a .svg, .png or .dot file (or give --format)")
        return FORMATS[suffix]
    if (fmt == "dot" and suffix in (".svg", ".png")) or (fmt != "dot" and FORMATS.get(suffix) != fmt):
        raise UsageError(f"-o {short(out)} with --format {fmt}: the file must end in .{fmt}")
    return fmt


@click.command("draw")
@click.argument("spec")
@click.option("-o", "--output", metavar="FILE", help="FILE.svg, FILE.png or FILE.dot (default: SPEC's name, .svg).")
@click.option("--input", "input_", metavar="CxHxW", help="Input size, e.g. 3x64x64 (overrides the spec's `input`).")
@click.option(
    "--set", "sets", multiple=True, metavar="NAME=VALUE", help="Override a constant of the spec (repeatable)."
)
@click.option("--expand", is_flag=True, help="Open every module and unfold every repeat.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["svg", "png", "dot"]),
    help="Default: from -o's suffix, else svg. dot: Graphviz source (on standard output without -o).",
)
def draw_command(
    spec: str, output: str | None, input_: str | None, sets: tuple[str, ...], expand: bool, fmt: str | None
) -> None:
    """Draw SPEC's network: a box per layer (kind, key arguments, output shape), edges in run order with merges,
    modules closed and repeats folded as "× N" (--expand opens and unfolds them), the totals in the title. Drawn
    with matplotlib; --format dot writes Graphviz source, rendered to SVG where `dot` is on PATH. Needs no torch.

    \b
    netspec draw specs/cifar_best.net                      cifar_best.svg
    netspec draw examples/zoo/resnet50.net -o r50.png --expand
    netspec draw specs/cifar_best.net --format dot | dot -Tpdf -o cifar_best.pdf
    """
    from ..api import check

    kind = _format(output, fmt)
    if input_ is not None and "," in input_:
        raise UsageError("draw takes one --input size")
    net, table = check(Path(spec), input_, overrides(sets))
    if kind == "dot" and output is None:
        from .dot import to_dot

        click.echo(to_dot(diagram(net, table, expand)), nl=False)
        return
    target = Path(output) if output is not None else Path(Path(spec).stem + f".{kind}")
    try:
        drawn = draw_network(net, table, target, expand=expand, fmt=kind)
    except OSError as e:
        raise UsageError(f"-o {short(str(target))}: cannot write ({e.strerror or e})") from None
    if kind != "dot":
        size = f"{drawn.width:.2f} x {drawn.height:.2f} in"
        columns = f"{drawn.columns} column{'s' if drawn.columns != 1 else ''}"
        click.echo(f"{target}: {drawn.boxes} boxes, {columns}, {size}")
        return
    _render_dot(target)


def _render_dot(target: Path) -> None:
    import subprocess

    from .dot import render_dot

    svg = target.with_suffix(".svg")
    try:
        rendered = render_dot(target, svg)
    except subprocess.CalledProcessError as e:
        raise NetspecError(f"dot could not render {target}: {e.stderr.decode(errors='replace').strip()}") from None
    if rendered:
        click.echo(f"{target}: Graphviz source; rendered to {svg} with dot")
    else:
        click.echo(
            f"{target}: Graphviz source; not rendered: no `dot` program on PATH (install Graphviz, or draw "
            f"without --format dot, with matplotlib)"
        )
