"""The Python API: `netspec.load(path)` / `netspec.loads(text)` and `netspec.check(path)` / `netspec.checks(text)`.

>>> import netspec
>>> net = netspec.load("specs/cifar_best.net", input="3x64x64")
>>> net.module.ff5_1.in_features
1024
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import UsageError
from .lang import Network, TrainSpec, input_size, load_spec, read_spec
from .shapes import ShapeTable, infer

Size = str | Sequence[int] | None


def check(path: str | os.PathLike[str], input: Size = None, constants: Mapping[str, Any] | None = None
          ) -> tuple[Network, ShapeTable]:  # fmt: skip
    """Parse, validate and infer the shapes of the spec file at `path`, without torch. Raises SpecError (a mistake
    in the spec) or UsageError (no such file, a bad input size or constant)."""
    if isinstance(path, str) and ("\n" in path or "{" in path):  # a spec's text always has `layers { ... }`
        raise UsageError("netspec.check and netspec.load take a spec file's path; for spec text, use checks or loads")
    text, filename = read_spec(path)
    return _checked(text, filename, input, constants)


def checks(text: str | bytes, input: Size = None, constants: Mapping[str, Any] | None = None
           ) -> tuple[Network, ShapeTable]:  # fmt: skip
    """`check` for spec text."""
    return _checked(text, None, input, constants)


def _checked(
    text: str | bytes, filename: str | None, input: Size, constants: Mapping[str, Any] | None
) -> tuple[Network, ShapeTable]:
    net = load_spec(text, filename, input=input_size(input), constants=dict(constants or {}))
    return net, infer(net)


@dataclass(frozen=True, slots=True)
class Compiled:
    """What `netspec.load` returns: the validated network, its shape table, and the torch module."""

    network: Network
    shapes: ShapeTable
    module: Any  # torch.nn.Module

    @property
    def train(self) -> TrainSpec:
        return self.network.train


def load(path: str | os.PathLike[str], input: Size = None, constants: Mapping[str, Any] | None = None) -> Compiled:
    """Compile the spec file at `path` to a torch module at `input` ("3x64x64" or (3, 64, 64); default: the
    spec's), with `constants` overriding the spec's."""
    return _compiled(*check(path, input, constants))


def loads(text: str | bytes, input: Size = None, constants: Mapping[str, Any] | None = None) -> Compiled:
    """`load` for spec text."""
    return _compiled(*checks(text, input, constants))


def _compiled(net: Network, table: ShapeTable) -> Compiled:
    from .build import build  # torch is imported here, not by `check`

    return Compiled(net, table, build(net, table))
