"""What elaboration makes of a spec: the `Network`, its modules (`Node`) and its run order (`FStep`). No torch.

`shapes` infers the sizes of a Network, `build` turns it into torch modules, `training` trains it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import Location
from .layers import LayerSpec
from .train_section import TrainSpec


@dataclass(frozen=True, slots=True, eq=False)
class Node:
    """One module of the network: a layer (`config` set) or a composite (`composite` and `children` set).

    Nodes compare by identity: two layers with equal arguments are still two modules (and a dict keyed by nodes, as
    `ShapeTable.inferred`, tells them apart).
    """

    name: str
    loc: Location  # the name (or the call, for an anonymous layer; the use, for a block's layer)
    config: LayerSpec | None = None
    composite: str | None = None  # "Sequential" | "Residual"
    children: tuple[Node, ...] = ()
    shortcut: tuple[Node, ...] | None = None  # a Residual's, when it has one

    @property
    def layer(self) -> str | None:
        """The layer's class name (`Conv2d`), None for a composite."""
        return None if self.config is None else self.config.kind()


@dataclass(frozen=True, slots=True)
class FStep:
    """One step of the run order: `module` (a declared child), `residual` (x + child(x)) or `function` (relu...)."""

    op: str
    name: str
    loc: Location


@dataclass(frozen=True, slots=True)
class Network:
    """A validated spec at one input size: its modules, their run order, its constants and its train settings."""

    name: str
    input: tuple[int, int, int]
    input_loc: Location | None
    layers: tuple[Node, ...]
    forward: tuple[FStep, ...]  # always set: the declaration order when the spec has no `forward`
    train: TrainSpec
    constants: dict[str, Any]
    filename: str | None = None
    source: str | None = None
    train_locs: dict[str, Location] = field(default_factory=dict)
    train_inferred: frozenset[str] = frozenset()  # schedule arguments filled in from epochs / lr
