"""`netspec diff A.net B.net`: two networks aligned layer by layer, `git diff` for architectures. No torch.

Both specs are checked as `netspec check` checks them, and their shape tables compared (see `align`): the layers
added (`+`), removed (`-`) and changed (`~`, with the arguments that changed, `out_channels 64 -> 128`), the output
shapes that moved, the parameters and MACs each change costs, the totals, and the settings of the `train` sections.

Two specs are the same network when they have the same layers (names, kinds, and arguments as validated, those
worked out from the input included) in the same run order at the input given: how the spec is written (blocks,
`repeat`, constants, `3` or `(3, 3)`, comments and layout) does not count. Exit codes are diff(1)'s: 0 the same
network and settings, 1 a difference, 2 trouble (a spec that does not check, or bad usage).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from ..api import check
from ..errors import SpecError
from ..lang import ArgModel, Network, TrainSpec, data_key, show
from ..options import overrides
from ..shapes import ShapeTable, fmt_shape
from ..table import render_table
from .align import Comparison, compare, same_value, tree, wiring_change

COLOURS = {"+": "green", "-": "red", "~": "yellow"}


@dataclass(frozen=True, slots=True)
class NetDiff:
    """What differs between two checked specs: the network's own lines, its layers, and its train settings."""

    a: tuple[Network, ShapeTable]
    b: tuple[Network, ShapeTable]
    network: list[str]  # "network CifarNet -> ResNet", "input 3x32x32 -> 3x64x64"
    layers: Comparison
    train: list[tuple[str, str, str]]  # (mark, setting, what): ("~", "epochs", "20 -> 30")

    @property
    def same(self) -> bool:
        return not (self.network or self.layers.changes or self.layers.renumbered or self.train)


def diff_networks(a: tuple[Network, ShapeTable], b: tuple[Network, ShapeTable]) -> NetDiff:
    """The differences from `a` to `b`, each a network and its shape table (`netspec.check`'s result)."""
    (na, ta), (nb, tb) = a, b
    network = []
    if na.name != nb.name:
        network.append(f"network {na.name} -> {nb.name}")
    if ta.input != tb.input:
        network.append(f"input {fmt_shape(ta.input)} -> {fmt_shape(tb.input)}")
    wiring = wiring_change(na.flow, nb.flow)
    if wiring:
        network.append(wiring)
    return NetDiff(a, b, network, compare(tree(ta), tree(tb)), train_changes(na.train, nb.train))


def train_changes(a: TrainSpec, b: TrainSpec) -> list[tuple[str, str, str]]:
    """The settings that differ, in the order of `TrainSpec`: (mark, setting, text)."""
    out = []
    for key in type(a).model_fields:
        x, y = getattr(a, key), getattr(b, key)
        if key == "data":
            x, y = data_key(x) or x, data_key(y) or y
        if same_value(x, y):
            continue
        if x is None or y is None:
            out.append(("+" if x is None else "-", key, _setting(y if x is None else x)))
        else:
            out.append(("~", key, _changed(x, y)))
    return out


def _changed(x: Any, y: Any) -> str:
    """`SGD(lr 0.1 -> 0.05)`, `[RandomCrop(size (32, 32) -> (64, 64)), RandomHorizontalFlip()]`, `5 -> 8`."""
    if isinstance(x, ArgModel) and type(x) is type(y):
        args = [f"{k} {show(v)} -> {show(w)}" for k, v in x.args().items() if not same_value(v, w := getattr(y, k))]
        return f"{x.kind()}({', '.join(args)})"
    if isinstance(x, tuple) and isinstance(y, tuple) and len(x) == len(y):
        if all(isinstance(v, ArgModel) and type(v) is type(w) for v, w in zip(x, y)):
            return "[" + ", ".join(_setting(v) if same_value(v, w) else _changed(v, w) for v, w in zip(x, y)) + "]"
    return f"{_setting(x)} -> {_setting(y)}"


def _setting(v: Any) -> str:
    """A setting as a spec writes it: `SGD(lr=0.1, momentum=0.9)`, `[RandomCrop(padding=4)]`, `cifar10`."""
    if isinstance(v, ArgModel):
        fields = type(v).model_fields
        args = [f"{k}={show(x)}" for k, x in v.args().items() if fields[k].is_required() or x != fields[k].default]
        return f"{v.kind()}({', '.join(args)})"
    if isinstance(v, tuple):
        return "[" + ", ".join(_setting(x) for x in v) + "]"
    return v if isinstance(v, str) else show(v)


# ---- the text -----------------------------------------------------------------------------------------------


def render(d: NetDiff, names: tuple[str, str]) -> list[tuple[str, str]]:
    """The lines of the diff, each with its mark (`+`, `-`, `~`, or `` for the rest) for colour."""
    lines = [(f"--- {names[0]}: {_about(*d.a)}", "head"), (f"+++ {names[1]}: {_about(*d.b)}", "head")]
    lines += [(f"~ {text}", "~") for text in d.network]
    if d.layers.changes:
        lines += _layer_lines(d.layers)
    elif d.layers.renumbered:
        lines.append((f"~ {d.layers.renumbered} anonymous layers renumbered", "~"))
    else:
        lines.append(("same network and train settings" if d.same else "no layer differs", ""))
    lines.append((_totals(d.a[1], d.b[1]), ""))
    if d.train:
        width = max(len(k) for _, k, _ in d.train)
        lines.append(("train:", ""))
        lines += [(f"{mark} {key.ljust(width)}  {text}", mark) for mark, key, text in d.train]
    return lines


def _about(net: Network, table: ShapeTable) -> str:
    return f"{net.name}, input {fmt_shape(table.input)}, output {fmt_shape(table.output)}"


def _layer_lines(layers: Comparison) -> list[tuple[str, str]]:
    rows = []
    for c in layers.changes:
        cells = [f"{c.mark} {'  ' * c.depth}{c.name}", c.layer, c.shape]
        for n in (c.params, c.macs):
            cells.append("" if n == 0 else f"{n:+,}" if c.leaf else f"({n:+,})")
        rows.append(cells)
    text = render_table(["  name", "layer", "output", "params", "MACs"], rows, {3, 4}).splitlines()
    return [(text[0], "")] + [(line, c.mark) for line, c in zip(text[2:], layers.changes)]


def _totals(a: ShapeTable, b: ShapeTable) -> str:
    def one(what: str, x: int, y: int) -> str:
        return f"{what} {x:,} -> {y:,} ({y - x:+,})" if x != y else f"{what} {x:,} (unchanged)"

    return f"total: {one('params', a.total_params, b.total_params)}, {one('MACs', a.total_macs, b.total_macs)}"


# ---- the command --------------------------------------------------------------------------------------------


def _checked(spec: str, size: str | None, sets: Sequence[str]) -> tuple[Network, ShapeTable]:
    """`netspec check` of one side; a spec that does not check is trouble here, exit 2, shown as check shows it."""
    try:
        return check(Path(spec), size, overrides(sets))
    except SpecError as e:  # the CLI's exit code for a spec error is 1, which for diff means "they differ"
        click.echo(e.render(), err=True)
        raise click.exceptions.Exit(2) from e


@click.command(name="diff", short_help="Compare two specs layer by layer, like git diff.")
@click.argument("a", metavar="A.net")
@click.argument("b", metavar="B.net")
@click.option("--input", "input_", metavar="CxHxW", help="Input size of both (default: each spec's `input`).")
@click.option("--input-a", metavar="CxHxW", help="Input size of A only.")
@click.option("--input-b", metavar="CxHxW", help="Input size of B only.")
@click.option("--set", "sets", multiple=True, metavar="NAME=VALUE", help="Override a constant of both (repeatable).")
@click.option("--set-a", multiple=True, metavar="NAME=VALUE", help="Override a constant of A only, after --set.")
@click.option("--set-b", multiple=True, metavar="NAME=VALUE", help="Override a constant of B only, after --set.")
@click.option("--color/--no-color", default=None, help="Colour the lines (default: when stdout is a terminal).")
def diff_command(
    a: str, b: str, input_: str | None, input_a: str | None, input_b: str | None, sets: tuple[str, ...],
    set_a: tuple[str, ...], set_b: tuple[str, ...], color: bool | None,
) -> None:  # fmt: skip
    """Compare the networks of A.net and B.net layer by layer, like `git diff`: layers added (+), removed (-) and
    changed (~), with their arguments, output shapes, parameters and MACs, and the train settings. Needs no torch.

    Exit status: 0 the same network and settings, 1 they differ, 2 trouble (a spec error, bad usage).

    \b
    netspec diff specs/cifar_best.net specs/cifar_worst.net
    netspec diff examples/zoo/resnet18.net examples/zoo/resnet18.net --set-b blocks="(3, 4, 6, 3)"
    """
    left = _checked(a, input_a or input_, [*sets, *set_a])
    right = _checked(b, input_b or input_, [*sets, *set_b])
    d = diff_networks(left, right)
    for text, mark in render(d, (a, b)):
        style = {"fg": COLOURS[mark]} if mark in COLOURS else {"bold": True} if mark == "head" else {}
        click.echo(click.style(text, **style) if style else text, color=color)
    if not d.same:
        raise click.exceptions.Exit(1)
