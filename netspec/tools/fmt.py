"""`netspec fmt SPEC...`: every spec in one canonical layout, in place; `--check` and `--diff` change nothing.

The layout rules are in `fmt_layout` (Lark's tree of the spec, every token kept, laid out as a `doc` document),
from the same grammar as `netspec.lang.parse`. Whatever the rules do, a spec keeps its meaning and its comments: the
formatted text is parsed again and its syntax tree must be the original's, positions aside, and its comments the
same, in order, or the file is left as it is. A spec that does not parse is reported with its located error and
left as it is. No torch is imported.

    >>> print(format_text("layers{conv1 Conv2d(16,kernel_size = 3) # a comment\\nbn1 BatchNorm2d( )}"), end="")
    layers {
        conv1  Conv2d(16, kernel_size=3)  # a comment
        bn1    BatchNorm2d()
    }
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import click

from ..errors import Location, NetspecError, SpecError, UsageError
from ..lang import parse, parse_tree, read_spec
from .doc import render, text_of
from .fmt_layout import PAGE, layout


def format_text(text: str | bytes, filename: str | None = None) -> str:
    """The spec `text` in netspec's layout. Raises the located `SpecError` of a spec that does not parse."""
    source, tree = parse_tree(text, filename)
    try:
        doc = layout(source, tree)
    except RecursionError:  # as `parse` says for what it cannot nest as deep
        raise SpecError("the spec is nested too deeply", Location(1, 1), code="E004").attach(filename, source) from None
    out = text_of(render(doc, PAGE))
    try:
        same = _essence(parse(out)) == _essence(parse(source)) and _comments(out) == _comments(source)
    except SpecError:  # the formatted text does not even parse
        same = False
    if not same:
        raise NetspecError(
            f"{filename or '<spec>'}: the formatted text would mean another spec or lose a comment, so it is left as "
            "it is (a bug in netspec fmt: please report it, with the spec)"
        )
    return out


_COMMENT_OR_STRING = re.compile(r"'[^'\n]*'|\"[^\"\n]*\"|#[^\n]*")


def _comments(text: str) -> list[str]:
    return [m.group().rstrip() for m in _COMMENT_OR_STRING.finditer(text) if m.group().startswith("#")]


def _essence(node: Any) -> Any:
    """A syntax tree without its positions: what the spec means, as written."""
    if isinstance(node, Location):
        return None
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        return type(node).__name__, tuple(_essence(getattr(node, f.name)) for f in dataclasses.fields(node))
    if isinstance(node, dict):
        return tuple((k, _essence(v)) for k, v in node.items())
    if isinstance(node, (tuple, list)):
        return tuple(_essence(v) for v in node)
    return node


def spec_paths(args: tuple[str, ...]) -> list[Path]:
    """The files named, and every `*.net` under a folder named, each once, in order."""
    out: list[Path] = []
    for arg in args:
        p = Path(arg)
        if p.is_dir():
            out += sorted(q for q in p.rglob("*.net") if q.is_file())
        elif p.exists():
            out.append(p)
        else:
            raise UsageError(f"{arg}: no such file or folder")
    unique: dict[Path, Path] = {}
    for p in out:
        unique.setdefault(p.resolve(), p)
    return list(unique.values())


def _write(path: Path, text: str) -> None:
    """Replace the file at once (a temporary file renamed over it), keeping its permissions."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".fmt", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(text.encode("utf-8"))
        os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _diff(before: bytes, after: str, name: str) -> str:
    old = before.decode("utf-8", "replace").splitlines(keepends=True)
    lines = difflib.unified_diff(old, after.splitlines(keepends=True), fromfile=name, tofile=f"{name} (formatted)")
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


@click.command(name="fmt")
@click.argument("specs", nargs=-1, required=True, metavar="SPEC|DIR...")
@click.option("--check", is_flag=True, help="Change nothing; list the files that would change, and exit 1 if any.")
@click.option("--diff", "show_diff", is_flag=True, help="Change nothing; print what would change as a unified diff.")
def fmt_command(specs: tuple[str, ...], check: bool, show_diff: bool) -> None:
    """Lay out each SPEC (every *.net under a DIR) in netspec's one layout, in place.

    4 spaces a level, names aligned, one space after commas, lines broken at 100 columns where they can be;
    every comment is kept, on its line. A spec that does not parse is reported and left as it is (exit 1).
    """
    changed, failed = [], 0
    for path in spec_paths(specs):
        raw, name = read_spec(path)
        try:
            new = format_text(raw, name)
        except SpecError as e:
            click.echo(e.render(), err=True)
            failed += 1
            continue
        if new.encode("utf-8") == raw:
            continue
        changed.append(name)
        if show_diff:
            click.echo(_diff(raw, new, name), nl=False)
        elif check:
            click.echo(f"would reformat {name}")
        else:
            try:
                _write(path, new)
            except OSError as e:
                raise NetspecError(f"{name}: cannot write the formatted spec ({e.strerror})") from None
            click.echo(f"reformatted {name}")
    if check and changed:
        click.echo(f"netspec fmt: {len(changed)} file{'s' * (len(changed) != 1)} would be reformatted", err=True)
    if failed or (check and changed):
        raise click.exceptions.Exit(1)
