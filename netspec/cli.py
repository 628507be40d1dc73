"""The `netspec` command line.

Exit codes: 0 success, 1 a mistake in a spec or data (rendered with file, line, column and a caret), 2 bad usage
(one line), 3 training diverged, 130 interrupted. A user's mistake never shows a traceback.
`netspec check` imports no torch: every torch import happens inside the commands that need it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from .errors import NetspecError, SpecError, UsageError


def _sizes(text: str | None) -> list[tuple[int, int, int]] | None:
    from .lang import parse_size

    if text is None:
        return None
    parts = [p for p in text.split(",")]
    if not all(p.strip() for p in parts):
        raise UsageError(f"--input {text!r}: expected CxHxW, or several separated by commas")
    sizes = []
    for p in parts:
        try:
            sizes.append(parse_size(p))
        except ValueError:  # int() refuses numbers of over 4,300 digits
            raise UsageError(f"--input {_short(p)}: dimensions over 65,536 are not supported") from None
    return sizes


def _overrides(items: tuple[str, ...]) -> dict[str, Any]:
    from .lang import parse_override

    out = {}
    for s in items:
        try:
            name, value = parse_override(s)
        except ValueError:  # int() refuses numbers of over 4,300 digits
            raise UsageError(f"--set {_short(s)}: cannot read the value (this integer is too large)") from None
        out[name] = value
    return out


def _short(text: str) -> str:
    """repr(text), cut to a readable length for a one-line error."""
    return repr(text) if len(text) <= 60 else repr(text[:40]) + f"... ({len(text):,} characters)"


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


class LazyGroup(click.Group):
    """Commands whose modules are imported only when they run (or when --help lists them), keeping `check` light."""

    lazy: dict[str, tuple[str, str]] = {
        "train": ("netspec.commands", "train"),
        "evaluate": ("netspec.commands", "evaluate"),
        "compare": ("netspec.commands", "compare"),
        "import": ("netspec.importer.core", "import_command"),
    }

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(self.lazy))

    def resolve_command(self, ctx, args):
        # click suggests among the commands it has loaded: offer it every command, lazy ones included
        if args and not args[0].startswith("-") and self.get_command(ctx, args[0]) is None:
            raise click.exceptions.NoSuchCommand(args[0], possibilities=self.list_commands(ctx), ctx=ctx)
        return super().resolve_command(ctx, args)

    def get_command(self, ctx, name):
        if name in self.lazy and name not in self.commands:
            import importlib

            module, attr = self.lazy[name]
            self.add_command(getattr(importlib.import_module(module), attr), name)
        return super().get_command(ctx, name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="netspec", message="netspec %(version)s")
def cli() -> None:
    """Describe, compile and train image-classification networks from a .net spec.

    \b
    netspec check specs/cifar_best.net                 shapes, parameters and MACs, without torch
    netspec compile specs/cifar_best.net --summary     the torch module and torchinfo's summary
    netspec train specs/cifar_best.net --data cifar10  train with the spec's settings
    """


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
    from .table import shape_table, side_by_side

    sizes = _sizes(input_)
    constants = _overrides(sets)
    if sizes is None or len(sizes) == 1:
        net, table = check_spec(Path(spec), sizes[0] if sizes else None, constants)
        click.echo(shape_table(net, table))
        return
    from .lang import load_spec, read_spec
    from .shapes import infer, smallest_inputs

    net = load_spec(*read_spec(spec), input=sizes[0], constants=constants)  # each size is inferred below
    tables = []
    for size in sizes:
        try:
            tables.append(infer(net, size))
        except SpecError as e:
            tables.append(e)
    click.echo(side_by_side(net, sizes, tables))
    square, smallest = smallest_inputs(net)
    if square is None:
        click.echo("smallest input: none up to 4096x4096")
    else:
        from .shapes import fmt_shape

        click.echo(f"smallest input: {fmt_shape(square)} (square); smallest H x W: {fmt_shape(smallest)}")
    if any(isinstance(t, SpecError) for t in tables):
        raise next(t for t in tables if isinstance(t, SpecError))


@cli.command(name="compile")
@click.argument("spec")
@input_option
@set_option
@click.option("--summary", is_flag=True, help="Print torchinfo's summary at the input size instead.")
def compile_(spec: str, input_: str | None, sets: tuple[str, ...], summary: bool) -> None:
    """Compile SPEC to torch.nn modules and print the model exactly as `print(model)` does."""
    from .api import check as check_spec

    sizes = _sizes(input_)
    if sizes and len(sizes) > 1:
        raise UsageError("compile takes one --input size")
    # validate and infer every shape before torch is imported: a mistake (an absurd size above all) is reported at
    # once, without the seconds and the memory that importing torch costs
    net, table = check_spec(Path(spec), sizes[0] if sizes else None, _overrides(sets))
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


# click >= 8.2 raises this UsageError (its message being the whole help) for a group called without arguments
_NO_ARGS = getattr(click.exceptions, "NoArgsIsHelpError", ())


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, render netspec's errors, and choose the exit code."""
    try:
        cli.main(args=argv, prog_name="netspec", standalone_mode=False)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except _NO_ARGS as e:  # `netspec` alone: its help, not a usage error of twenty lines
        click.echo(e.ctx.get_help() if e.ctx else "Usage: netspec COMMAND [ARGS]... (see --help)")
        sys.exit(2)
    except click.UsageError as e:
        # one line, like every usage error of ours
        cmd = e.ctx.command_path if e.ctx else "netspec"
        click.echo(f"{cmd}: error: {e.format_message()} (see --help)", err=True)
        sys.exit(2)
    except click.Abort:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except SpecError as e:
        click.echo(e.render(), err=True)
        sys.exit(1)
    except UsageError as e:
        click.echo(f"netspec: error: {e}", err=True)
        sys.exit(2)
    except NetspecError as e:
        click.echo(f"netspec: error: {e}", err=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)
    sys.exit(0)


if __name__ == "__main__":  # pragma: no cover
    main()
