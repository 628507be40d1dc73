"""Helpers of the language tests: a small spec's text, the network it makes, the error it raises."""

from __future__ import annotations

import netspec
import pytest
from netspec.errors import SpecError
from netspec.lang import Network, Node, load_spec


def spec(body: str, head: str = "input 3x8x8\n") -> str:
    return head + body


def net_of(text: str, **kw) -> Network:
    return load_spec(text, "t.net", **kw)


def error_of(text: str, **kw) -> SpecError:
    with pytest.raises(SpecError) as exc:
        netspec.checks(text, **kw)
    return exc.value


def names(nodes: tuple[Node, ...]) -> list[str]:
    return [n.name for n in nodes]
