"""A spec's `module`s: made concrete where their input is known (no torch).

`module Fire(squeeze, e1, e3) { ... }` defines a module class of its own; `fire2 Fire(16, 64, 64)` uses it. A use
is elaborated into a `Node` that refers to its definition and its bound parameters. Its body may depend on the
shape of its input (`in_channels`, `in_height`, `in_width`: a depthwise convolution's `groups`, a residual only
when the widths match), so `shapes`, which knows that shape, asks `instantiate` for the module's children and run
order. `lang` never imports `shapes`: the shape comes in as three integers.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from ..errors import SpecError
from .expand import Expander, need_a_forward
from .flows import resolve_flow
from .layers import SHAPE_NAMES
from .network import Instance, Node
from .syntax import Call, Composite, ConstDef, IfItems, Kept, ModuleDef, Named, Program, Repeat
from .values import Scope, value_of

MAX_DEPTH = 64  # modules inside modules: far more than any network nests


def shape_names(shape: Sequence[int]) -> dict[str, int]:
    """The names a module's body sees for its input: `in_channels`, and `in_height`, `in_width` for an image."""
    names = {"in_channels": shape[0]}
    if len(shape) == 3:
        names["in_height"], names["in_width"] = shape[1], shape[2]
    return names


def instantiate(node: Node, shape: Sequence[int]) -> Instance:
    """The children and run order of the module `node` uses, for an input of `shape` (per image)."""
    use = node.module
    assert use is not None, node
    prog, constants = use.context
    definition: ModuleDef = prog.modules[use.module]
    # the body sees its parameters, its input's shape and the spec's constants; its own values, once computed
    scope = Scope({**use.args, **shape_names(shape)}, constants)
    expander = Expander(prog, constants)
    children: list[Node] = []
    for item in definition.items:
        if isinstance(item, ConstDef):
            _check_value_name(item, scope, definition)
            scope = Scope({item.name: value_of(item.value, scope)}, scope)
        else:
            expander.item(item, scope, children)
    checked = expander.checked(children, "Module")
    flow = None
    if definition.flow is not None:
        flow = resolve_flow(definition.flow, checked, scope, expander.range)
    else:
        need_a_forward(checked, f"module {definition.name}")
    return Instance(checked, flow)


def _check_value_name(item: ConstDef, scope: Scope, definition: ModuleDef) -> None:
    if item.name in SHAPE_NAMES:
        raise SpecError(
            f"{item.name!r} is the shape of the module's input: it cannot be set",
            item.loc,
            hint="choose another name for this value",
            code="E010",
        )
    if any(p.name == item.name for p in definition.params):
        raise SpecError(
            f"{item.name!r} is a parameter of module {definition.name}: a value needs a name of its own",
            item.loc,
            code="E010",
        )


def check_module_cycles(prog: Program) -> None:
    """A module that uses itself, directly or through others (or through blocks), is refused where it does so: its
    instances would never end."""
    for name, definition in prog.modules.items():
        _walk(prog, definition.items, [name], set())


def _walk(prog: Program, items: Sequence[Any], chain: list[str], blocks: set[str]) -> None:
    for call in _calls(items):
        target = call.name
        if target in prog.blocks and target not in blocks:
            _walk(prog, prog.blocks[target].items, chain, blocks | {target})
        elif target in prog.modules:
            if target in chain:
                cycle = chain[chain.index(target) :] + [target]
                how = f" ({' -> '.join(cycle)})" if len(cycle) > 2 else ""
                raise SpecError(
                    f"module {target!r} uses itself{how}",
                    call.name_loc,
                    hint="modules cannot be recursive: repeat a module with `repeat i in 1..n { ... }`",
                    code="E044",
                )
            if len(chain) < MAX_DEPTH:
                _walk(prog, prog.modules[target].items, [*chain, target], blocks)


def _calls(items: Sequence[Any]) -> Iterator[Call]:
    """Every call written in these items (both branches of an `if`), in the order written."""
    for item in items:
        if isinstance(item, Kept):
            item = item.named
        if isinstance(item, Named):
            item = item.body
        if isinstance(item, Call):
            yield item
        elif isinstance(item, Composite):
            yield from _calls(item.items)
            yield from _calls(item.shortcut or ())
        elif isinstance(item, Repeat):
            yield from _calls(item.items)
        elif isinstance(item, IfItems):
            yield from _calls(item.then)
            yield from _calls(item.orelse)
