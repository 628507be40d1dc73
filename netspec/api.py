"""The Python API: `netspec.load(...)` and `netspec.check(...)`.

>>> import netspec
>>> net = netspec.load("specs/cifar_best.net", input="3x64x64")
>>> net.module.ff5_1.in_features
1024
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import UsageError
from .lang.elaborate import Network, load_spec, parse_size
from .record import Record
from .shapes import ShapeTable, infer


def read_source(source: str | os.PathLike) -> tuple[str | bytes, str | None]:
    """(text, filename): a Path, or a one-line string that names a file or ends in .net (and holds no `{`, which
    every spec's `layers { ... }` has), is read as a file; any other string is spec text."""
    if isinstance(source, os.PathLike) or (
        isinstance(source, str)
        and "\n" not in source
        and "{" not in source
        and (source.endswith(".net") or Path(source).is_file())
    ):
        path = Path(source)
        if path.is_dir():
            raise UsageError(f"{path}: is a directory, not a spec file")
        try:
            return path.read_bytes(), str(path)
        except FileNotFoundError:
            raise UsageError(f"{path}: no such file") from None
        except OSError as e:
            raise UsageError(f"{path}: cannot read ({e.strerror})") from None
    return source, None  # type: ignore[return-value]


def _input(value) -> tuple[int, int, int] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return parse_size(value)
    dims = tuple(int(v) for v in value)
    if len(dims) != 3:
        raise UsageError(f"input {value!r}: expected (C, H, W)")
    return parse_size("x".join(map(str, dims)))


def check(
    source: str | os.PathLike, input=None, constants: Mapping[str, Any] | None = None
) -> tuple[Network, ShapeTable]:
    """Parse, validate and infer shapes, without torch. Raises SpecError / UsageError."""
    text, filename = read_source(source)
    net = load_spec(text, filename, input=_input(input), constants=dict(constants or {}))
    return net, infer(net)


class Compiled(Record):
    """What `netspec.load` returns: the validated network, its shape table, and the torch module."""

    network: Network
    shapes: ShapeTable
    module: Any  # torch.nn.Module

    @property
    def train(self):
        return self.network.train


def load(source: str | os.PathLike, input=None, constants: Mapping[str, Any] | None = None) -> Compiled:
    """Compile a spec (a path or spec text) to a torch module at `input` ("3x64x64" or (3, 64, 64))."""
    from .build import build

    net, table = check(source, input, constants)
    return Compiled(net, table, build(net, table))
