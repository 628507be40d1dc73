"""Expansion of a spec's items into modules (no torch): blocks inlined, `repeat` unrolled, `if` decided, name
templates filled in, every layer's arguments validated, each module's name checked.

`Expander` does it for the network's `layers` (see `elaborate`) and for a module's body when its input shape is
known (see `modules`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any, NamedTuple

from ..errors import Location, SpecError
from .hints import did_you_mean
from .layers import COMPOSITES, LAYERS, MODULE_ATTRIBUTES, SEQUENTIAL_ATTRIBUTES, LayerSpec
from .network import ModuleUse, Node
from .syntax import BlockDef, Call, Composite, IfItems, Kept, ModuleDef, Named, Program, Repeat, Template
from .validate import CallValue, show, validated
from .values import Constants, Scope, condition, render_name, value_of

MAX_LAYERS = 20_000  # after expansion; a guard against `repeat i in 1..10**9`
MAX_ITERATIONS = 100_000  # every repeat iteration, nested ones multiplied

# ---------------------------------------------------------------------------------------------------------------


def _check_module_name(node: Node, owner: str) -> None:
    """A name torch can register: not `_...`, not an attribute of every module (or of the owner's class)."""
    name = node.name
    if name.startswith("_"):
        raise SpecError(
            f"the name {name!r} starts with '_'",
            node.loc,
            hint="names starting with '_' are reserved for torch's own attributes",
            code="E047",
        )
    if name in MODULE_ATTRIBUTES:
        raise SpecError(
            f"{name!r} cannot name a module: every torch module has an attribute {name!r}",
            node.loc,
            hint=f"choose another name, such as {name}1 or my_{name}",
            code="E047",
        )
    if owner == "Sequential" and name in SEQUENTIAL_ATTRIBUTES:
        raise SpecError(
            f"{name!r} cannot name a module inside a Sequential: nn.Sequential has a method {name!r}",
            node.loc,
            hint=f"choose another name, such as {name}1",
            code="E047",
        )
    if owner == "Residual" and name == "shortcut":
        raise SpecError(
            "'shortcut' cannot name a layer of a Residual's body: it names the shortcut",
            node.loc,
            hint="choose another name, or move the layer into `shortcut { ... }`",
            code="E047",
        )


# ---------------------------------------------------------------------------------------------------------------
# Expansion of layers
# ---------------------------------------------------------------------------------------------------------------


class _Origin(NamedTuple):
    """Where a named node's name came from: its template, the innermost repeat variable and block around it."""

    template: Template
    repeat_var: str | None
    block: str | None


class Expander:
    def __init__(self, prog: Program, constants: Constants):
        self.prog = prog
        self.constants = constants
        self.count = 0
        self.iterations = 0
        self.block_stack: list[str] = []
        self.repeat_vars: list[str] = []
        self.origins: dict[Node, _Origin] = {}
        # the outermost block call being expanded: the layers a block makes are located at its use, so an error
        # about one of them (its shape, its name) says which use
        self.site: Location | None = None

    def items(self, items: Sequence[Any], scope: Scope, owner: str = "network") -> tuple[Node, ...]:
        """Expand `items` into nodes; `owner` is what holds them: "network", "Sequential", "Residual", "Module"."""
        out: list[Node] = []
        for item in items:
            self.item(item, scope, out)
        return self.checked(out, owner)

    def checked(self, out: list[Node], owner: str) -> tuple[Node, ...]:
        """The nodes, their names checked: torch can register each, and no two are the same."""
        seen: dict[str, Node] = {}
        for node in out:
            _check_module_name(node, owner)
            if node.kept and owner not in ("network", "Module"):
                raise SpecError(
                    f"`kept` in a {owner}: a {owner} runs all its layers",
                    node.loc,
                    hint="keep a layer in a module (or the network) that has a forward",
                    code="E057",
                )
            if node.layer == "Parameter" and owner not in ("network", "Module"):
                raise SpecError(
                    f"a Parameter in a {owner}: only a forward can use one",
                    node.loc,
                    hint="declare it in a module, and use it by name in the module's forward",
                    code="E057",
                )
            if node.name in seen:
                self.duplicate(seen[node.name], node)
            seen[node.name] = node
        return tuple(out)

    def duplicate(self, first: Node, node: Node) -> None:
        """The error for two modules with one name, saying how the name came about."""
        msg = f"the name {node.name!r} is used twice (first at line {first.loc.line})"
        hint = "each module needs its own name: rename one of them"
        a, b = self.origins.get(first), self.origins.get(node)
        if a is not None and b is not None and a.template == b.template:
            template = b.template.text
            if first.loc == node.loc and b.repeat_var is not None:
                msg = f"the name {node.name!r} is used twice: every pass of the repeat names a layer {node.name!r}"
                hint = f"put the repeat variable in the name: {template}{{{b.repeat_var}}} or {template}_{{{b.repeat_var}}}"
            elif b.block is not None:
                hint = (
                    f"block {b.block} names this layer {template!r} every time it is used: put a parameter "
                    f"in the name, such as {template}{{id}}"
                )
        raise SpecError(msg, node.loc, hint=hint, code="E041")

    def item(self, item: Any, scope: Scope, out: list[Node]) -> None:
        """Append the nodes one item makes (a named or anonymous layer or composite, a block's use, a repeat)."""
        if isinstance(item, Named):
            out.append(self.named(item, scope))
        elif isinstance(item, Call) and item.name in self.prog.blocks:
            self.expand_block(item, scope, out)
        elif isinstance(item, (Call, Composite)):  # anonymous: named by position, as nn.Sequential names them
            out.append(self.body(item, str(len(out)), item.loc, scope, named=False))
        elif isinstance(item, IfItems):
            for sub in item.then if condition(item.cond, scope) else item.orelse:
                self.item(sub, scope, out)
        elif isinstance(item, Kept):
            node = self.named(item.named, scope)
            kept = replace(node, kept=True, kept_input=item.input)
            self.origins[kept] = self.origins.pop(node)
            out.append(kept)
        elif isinstance(item, Repeat):
            self.repeat_vars.append(item.var)
            try:
                for value in self.range(item, scope):
                    for sub in item.items:
                        self.item(sub, Scope({item.var: value}, scope), out)
            finally:
                self.repeat_vars.pop()
        else:  # pragma: no cover
            raise AssertionError(item)

    def named(self, item: Named, scope: Scope) -> Node:
        name = render_name(item.name, scope)
        if isinstance(item.body, Call) and item.body.name in self.prog.blocks:
            raise SpecError(
                f"{item.body.name!r} is a block: its layers carry their own names",
                item.name.loc,
                hint=f"use it without a name: {item.body.name}(...), or wrap it: "
                f"{name} Sequential {{ {item.body.name}(...) }}",
                code="E042",
            )
        node = self.body(item.body, name, item.name.loc, scope, named=True)
        self.origins[node] = _Origin(
            item.name,
            self.repeat_vars[-1] if self.repeat_vars else None,
            self.block_stack[-1] if self.block_stack else None,
        )
        return node

    def range(self, rep: Repeat, scope: Scope) -> range:
        """The values of a repeat variable (both ends included), within the limits on repetition."""
        start = value_of(rep.start, scope)
        stop = value_of(rep.stop, scope)
        for v, e in ((start, rep.start), (stop, rep.stop)):
            if isinstance(v, bool) or not isinstance(v, int):
                raise SpecError(
                    f"a repeat range needs integers, got {show(v)}",
                    e.loc,
                    hint="ranges count whole numbers, both ends included: 1..4",
                    code="E043",
                )
        span = _between(rep.start.loc, rep.stop.loc)
        if stop < start:
            raise SpecError(
                f"the range {start}..{stop} is empty",
                span,
                hint="ranges include both ends and count up: 1..4 is 1, 2, 3, 4",
                code="E043",
            )
        if stop - start + 1 > MAX_LAYERS:
            raise SpecError(
                f"the range {start}..{stop} repeats {stop - start + 1:,} times; the limit is {MAX_LAYERS:,}",
                span,
                code="E048",
            )
        # nested repeats multiply: count every iteration, also of bodies that make nothing
        self.iterations += stop - start + 1
        if self.iterations > MAX_ITERATIONS:
            raise SpecError(
                f"the repeats unroll to more than {MAX_ITERATIONS:,} iterations",
                span,
                hint="nested repeats multiply: keep the product of their ranges small",
                code="E048",
            )
        return range(start, stop + 1)

    def expand_block(self, call: Call, scope: Scope, out: list[Node]) -> None:
        block: BlockDef = self.prog.blocks[call.name]
        if call.name in self.block_stack:
            chain = self.block_stack[self.block_stack.index(call.name) :] + [call.name]
            how = f" ({' -> '.join(chain)})" if len(chain) > 2 else ""
            raise SpecError(
                f"block {call.name!r} uses itself{how}",
                call.name_loc,
                hint="blocks cannot be recursive: repeat a block with `repeat i in 1..n { ... }`",
                code="E044",
            )
        bound = self.bind(block, call, scope)
        self.block_stack.append(call.name)
        outer_site = self.site
        self.site = outer_site or call.name_loc
        try:
            # a block sees its parameters and the spec's constants, not its caller's variables
            inner = Scope(bound, self.constants)
            for sub in block.items:
                self.item(sub, inner, out)
        finally:
            self.block_stack.pop()
            self.site = outer_site

    def bind(self, block: BlockDef | ModuleDef, call: Call, scope: Scope) -> dict[str, Any]:
        """The block's (or module's) parameters bound to the call's arguments, and defaults for the rest."""
        params = [p.name for p in block.params]
        word = "module" if isinstance(block, ModuleDef) else "block"
        defined = f"{word} {call.name}({', '.join(params)}) is defined at line {block.loc.line}"
        positional = [a for a in call.args if a.name is None]
        if len(positional) > len(params):
            raise SpecError(
                f"{word} {call.name} takes {len(params)} argument{'s' if len(params) != 1 else ''}, "
                f"got {len(positional)}",
                positional[len(params)].loc,
                hint=defined,
                code="E045",
            )
        bound = {p: value_of(a.value, scope) for a, p in zip(positional, params)}
        for a in call.args:
            if a.name is None:
                continue
            if a.name not in params:
                hint = did_you_mean(a.name, params) or f"its parameters: {', '.join(params)}"
                raise SpecError(
                    f"{word} {call.name} has no parameter {a.name!r}", a.name_loc or a.loc, hint=hint, code="E045"
                )
            if a.name in bound:
                raise SpecError(
                    f"{word} {call.name} got parameter {a.name!r} twice",
                    a.name_loc or a.loc,
                    hint=f"it is given positionally and by name; {defined}",
                    code="E045",
                )
            bound[a.name] = value_of(a.value, scope)
        earlier: dict[str, Any] = {}
        for p in block.params:
            if p.name not in bound:
                if p.default is None:
                    raise SpecError(
                        f"{word} {call.name} needs argument {p.name!r}", call.name_loc, hint=defined, code="E045"
                    )
                # a default sees the constants and the parameters before it: `block b(k=3, pad=k // 2)`
                bound[p.name] = value_of(p.default, Scope(dict(earlier), self.constants))
            earlier[p.name] = bound[p.name]
        return bound

    def body(self, body: Call | Composite, name: str, loc: Location, scope: Scope, *, named: bool) -> Node:
        """The node for a layer call or a composite written at `loc`, named `name`; it is located at its name, or
        at the call (the composite) when anonymous, or at the block's use when a block makes it."""
        self.count += 1
        if self.count > MAX_LAYERS:
            raise SpecError(f"the network has more than {MAX_LAYERS:,} modules", loc, code="E048")
        if isinstance(body, Composite):
            children = self.items(body.items, scope, body.composite)
            shortcut = self.items(body.shortcut, scope, "Sequential") if body.shortcut is not None else None
            if body.composite == "Residual" and not children:
                raise SpecError(
                    "a Residual needs at least one layer in its body",
                    body.loc,
                    hint="Residual { Conv2d(64, 3, padding=1) BatchNorm2d() }",
                    code="E046",
                )
            at = self.site or (loc if named else body.loc)
            return Node(name, at, composite=body.composite, children=children, shortcut=shortcut)
        if body.name in self.prog.modules:  # a module's use: its body is made when its input shape is known
            args = self.bind(self.prog.modules[body.name], body, scope)
            use = ModuleUse(body.name, args, (self.prog, self.constants))
            return Node(name, self.site or (loc if named else body.name_loc), composite="Module", module=use)
        call = value_of(body, scope)
        if not isinstance(call, CallValue):
            raise SpecError(f"{body.name}() is a function, not a layer", body.name_loc, code="E030")
        config = self.layer_config(call)
        return Node(name, self.site or (loc if named else call.name_loc), config=config)

    def layer_config(self, call: CallValue) -> LayerSpec:
        cls = LAYERS.get(call.name)
        if cls is None:
            hint = did_you_mean(call.name, [*LAYERS, *COMPOSITES, *self.prog.blocks, *self.prog.modules])
            if call.name in COMPOSITES:
                hint = f"{call.name} is written with braces: {call.name} {{ ... }}"
            elif call.name in ("eval", "exec", "open", "getattr", "compile", "__import__", "globals", "import_module"):
                hint = "a spec is data: nothing in it is run as Python; layers come from netspec's own table"
            elif hint is None:
                hint = "see docs/language.md for the layers netspec knows"
            raise SpecError(f"unknown layer {call.name!r}", call.name_loc, hint=hint, code="E030")
        return validated(cls, call)


def _between(first: Location, last: Location) -> Location:
    """From the start of `first` to the end of `last`, when both are on one line."""
    if first.line == last.line and last.end_column is not None:
        return Location(first.line, first.column, last.end_column)
    return first


def runs_in_order(node: Node) -> bool:
    """Whether a child runs when its owner runs its children in order: not a kept one, nor a Parameter."""
    return not node.kept and node.layer != "Parameter"


def need_a_forward(nodes: Sequence[Node], owner: str) -> None:
    """A Parameter is read by name in a `forward(x) { ... }`: in a module (or network) without one, nothing uses it
    (and a step of `forward { ... }` cannot run it: it is no module)."""
    for node in nodes:
        if node.layer == "Parameter" and not node.kept:
            raise SpecError(
                f"parameter {node.name!r} is in {owner} without a `forward(x) {{ ... }}`: nothing can use it",
                node.loc,
                hint=f"give {owner} a forward that uses it by name: forward(x) {{ return x * {node.name} }}",
                code="E057",
            )
