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
    """One module of the network: a layer (`config` set), a composite (`composite` and `children` set), or the use
    of a spec's `module` (`module` set: its children are made when its input shape is known, by `instantiate`).

    Nodes compare by identity: two layers with equal arguments are still two modules (and a dict keyed by nodes, as
    `ShapeTable.inferred`, tells them apart).
    """

    name: str
    loc: Location  # the name (or the call, for an anonymous layer; the use, for a block's layer)
    config: LayerSpec | None = None
    composite: str | None = None  # "Sequential" | "Residual" | "Module"
    children: tuple[Node, ...] = ()
    shortcut: tuple[Node, ...] | None = None  # a Residual's, when it has one
    module: ModuleUse | None = None  # a module's use
    kept: bool = False  # registered (its weights load) but never run: `kept aux Linear(10)`
    kept_input: tuple[int, ...] | None = None  # the input a kept module would take: `kept 512x14x14 aux1 ...`

    @property
    def layer(self) -> str | None:
        """The layer's class name (`Conv2d`), None for a composite."""
        return None if self.config is None else self.config.kind()


@dataclass(frozen=True, slots=True, eq=False)
class ModuleUse:
    """A `module`'s use, `fire2 Fire(16, 64, 64)`: its definition and its bound parameters. `context` is what
    instantiating it needs (the spec's blocks, modules and constants); opaque outside `lang`."""

    module: str  # the definition's name, also the class name print(model) shows
    args: dict[str, Any]
    context: Any


@dataclass(frozen=True, slots=True)
class FlowOp:
    """One step of a run order over named values: `out = name(inputs..., options)`.

    `kind` is "child" (a call of one of the module's children), "op" (an operation of `lang.ops.OPS`), or "param"
    (no step: the value is a learned parameter, for the table)."""

    targets: tuple[str, ...]  # the values it defines
    kind: str
    name: str  # the child's name, or the operation's
    inputs: tuple[str, ...]  # the tensor values it reads, positionally
    options: Any = None  # the operation's other arguments (its validated model), None for a child
    tensor_options: tuple[tuple[str, str], ...] = ()  # keyword arguments that are tensor values: weight=w
    loc: Location | None = None


@dataclass(frozen=True, slots=True)
class Flow:
    """A `forward(x) { ... }` with every name resolved: its input, its steps in run order, and its output."""

    input: str
    ops: tuple[FlowOp, ...]
    output: str
    loc: Location
    params: tuple[str, ...] = ()  # the learned parameters it reads (children of kind Parameter)


@dataclass(frozen=True, slots=True)
class Instance:
    """A module's use made concrete at one input shape: its children (registration order) and its run order (None:
    the children, but kept ones and parameters, run in order)."""

    children: tuple[Node, ...]
    flow: Flow | None


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
    forward: tuple[FStep, ...]  # always set: the declaration order when the spec has no `forward` (nor a flow)
    flow: Flow | None  # `forward(x) { ... }`: replaces `forward`
    train: TrainSpec
    constants: dict[str, Any]
    filename: str | None = None
    source: str | None = None
    train_locs: dict[str, Location] = field(default_factory=dict)
    train_inferred: frozenset[str] = frozenset()  # schedule arguments filled in from epochs / lr
