"""Stage 2: syntax tree -> a validated `Network` (no torch).

Here constants are evaluated, blocks are expanded, `repeat` is unrolled, name templates are filled in, every layer's
arguments are validated against its model (pydantic, see `validate`), `forward` is resolved against the declared
names, and the `train` section becomes a `TrainSpec`. Every error is a `SpecError` at the place in the file that
caused it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, NamedTuple

from ..errors import Location, SpecError, UsageError
from .hints import did_you_mean, few
from .layers import COMPOSITES, FUNCTIONS, LAYERS, MODULE_ATTRIBUTES, SEQUENTIAL_ATTRIBUTES, LayerSpec
from .network import FStep, Network, Node
from .parse import normalize_source, parse
from .syntax import BlockDef, Call, Composite, Named, Program, Repeat, Step, Template
from .train_section import train_spec
from .validate import CallValue, show, validated
from .values import Constants, Scope, render_name, value_of

MAX_LAYERS = 20_000  # after expansion; a guard against `repeat i in 1..10**9`
MAX_ITERATIONS = 100_000  # every repeat iteration, nested ones multiplied

# ---------------------------------------------------------------------------------------------------------------
# Names
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


class _Expander:
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
        """Expand `items` into nodes; `owner` is what holds them: "network", "Sequential" or "Residual"."""
        out: list[Node] = []
        for item in items:
            self.item(item, scope, out)
        seen: dict[str, Node] = {}
        for node in out:
            _check_module_name(node, owner)
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

    def bind(self, block: BlockDef, call: Call, scope: Scope) -> dict[str, Any]:
        """The block's parameters bound to the call's arguments, and defaults for the rest."""
        params = [p.name for p in block.params]
        defined = f"block {call.name}({', '.join(params)}) is defined at line {block.loc.line}"
        positional = [a for a in call.args if a.name is None]
        if len(positional) > len(params):
            raise SpecError(
                f"block {call.name} takes {len(params)} argument{'s' if len(params) != 1 else ''}, "
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
                    f"block {call.name} has no parameter {a.name!r}", a.name_loc or a.loc, hint=hint, code="E045"
                )
            if a.name in bound:
                raise SpecError(
                    f"block {call.name} got parameter {a.name!r} twice",
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
                        f"block {call.name} needs argument {p.name!r}", call.name_loc, hint=defined, code="E045"
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
        call = value_of(body, scope)
        assert isinstance(call, CallValue)
        config = self.layer_config(call)
        return Node(name, self.site or (loc if named else call.name_loc), config=config)

    def layer_config(self, call: CallValue) -> LayerSpec:
        cls = LAYERS.get(call.name)
        if cls is None:
            hint = did_you_mean(call.name, [*LAYERS, *COMPOSITES, *self.prog.blocks])
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


# ---------------------------------------------------------------------------------------------------------------
# forward
# ---------------------------------------------------------------------------------------------------------------


def forward_names(
    items: Sequence[Step | Repeat], scope: Scope, span: Callable[[Repeat, Scope], Iterable[int]]
) -> Iterator[tuple[Step, str]]:
    """The steps of a `forward` section in run order, each with its name filled in: repeats unrolled, the values of
    each repeat's variable given by `span(repeat, scope)`. Lazily, so a caller that checks each step as it comes
    reports the first mistake in the order it is written."""
    for it in items:
        if isinstance(it, Repeat):
            for v in span(it, scope):
                yield from forward_names(it.items, Scope({it.var: v}, scope), span)
            continue
        yield it, render_name(it.name, scope)


def _forward(prog: Program, layers: tuple[Node, ...], constants: Constants) -> tuple[FStep, ...]:
    declared = {n.name: n for n in layers}
    steps: list[FStep] = []
    ranges = _Expander(prog, constants)  # one counter for every repeat of the section
    for it, name in forward_names(prog.forward or (), constants, ranges.range):
        steps.append(_step(it, name, declared))
        if len(steps) > MAX_LAYERS:
            raise SpecError(f"forward has more than {MAX_LAYERS:,} steps", it.loc, code="E048")
    used = {s.name for s in steps if s.op != "function"}
    for node in layers:
        if node.name not in used:
            raise SpecError(
                f"layer {node.name!r} is declared but never run in `forward`",
                node.loc,
                hint=f"add {node.name} to the forward section, or remove the layer",
                code="E051",
            )
    return tuple(steps)


def _step(it: Step, name: str, declared: dict[str, Node]) -> FStep:
    if name in declared:
        return FStep("residual" if it.residual else "module", name, it.name.loc)
    if name in FUNCTIONS and not it.residual:
        return FStep("function", name, it.name.loc)
    hint = did_you_mean(name, list(declared) + ([] if it.residual else list(FUNCTIONS)))
    if hint is None:
        hint = f"declared layers: {few(declared)}"
        if not it.residual:
            hint += f"; functions: {', '.join(FUNCTIONS)}"
    raise SpecError(
        f"{name!r} is not a layer declared in `layers`" + ("" if it.residual else " nor a function"),
        it.name.loc,
        hint=hint,
        code="E050",
    )


# ---------------------------------------------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------------------------------------------


def elaborate(
    prog: Program,
    *,
    input: tuple[int, int, int] | None = None,
    constants: dict[str, Any] | None = None,
    filename: str | None = None,
    source: str | None = None,
) -> Network:
    """Turn a parsed program into a validated `Network` at the given input size (default: the spec's)."""
    consts = Constants(prog.consts, _overrides(prog, constants or {}))
    try:
        return _network(prog, consts, input, filename, source)
    except SpecError as e:
        raise e.attach(filename, source) from None
    except RecursionError:
        # constants defined by a chain of thousands of others, or blocks nested thousands deep
        raise SpecError(
            "the spec is nested too deeply to evaluate",
            Location(1, 1),
            hint="constants and blocks may refer to each other a few hundred levels deep",
            code="E004",
            filename=filename,
            source=source,
        ) from None


def _overrides(prog: Program, overrides: dict[str, Any]) -> dict[str, Any]:
    for name in overrides:
        if name not in prog.consts:
            hint = did_you_mean(name, prog.consts)
            known = ", ".join(prog.consts) or "none"
            raise UsageError(
                f"--set {name}: the spec defines no constant {name!r} ({hint or 'its constants: ' + known})"
            )
    return dict(overrides)


def _network(
    prog: Program, consts: Constants, input: tuple[int, int, int] | None, filename: str | None, source: str | None
) -> Network:
    if prog == Program():
        raise SpecError(
            "the spec is empty",
            Location(1, 1),
            hint="a spec needs at least an input size and layers: "
            "input 3x32x32  layers { flatten Flatten()  fc Linear(10) }",
            code="E012",
        )
    values = consts.all()
    if prog.layers is None:
        raise SpecError(
            "the spec has no `layers` section",
            prog.network_loc or prog.input_loc or Location(1, 1),
            hint="add `layers { name Layer(...) ... }`",
            code="E012",
        )
    size = input or prog.input
    if size is None:
        raise SpecError(
            "the spec gives no input size",
            prog.network_loc or Location(1, 1),
            hint="add a line such as `input 3x32x32` (C x H x W), or pass --input",
            code="E013",
        )
    layers = _Expander(prog, consts).items(prog.layers, consts)
    if not layers:
        raise SpecError(
            "the `layers` section is empty",
            prog.layers_loc,
            hint="add layers: layers { flatten Flatten()  fc Linear(10) }",
            code="E012",
        )
    if prog.forward is not None:
        steps = _forward(prog, layers, consts)
    else:
        steps = tuple(FStep("module", n.name, n.loc) for n in layers)
    train, train_locs, inferred = train_spec(
        prog.train or (), lambda e: value_of(e, consts, symbols=True), (size[1], size[2]), prog.train_loc
    )
    return Network(
        name=prog.network or "Net",
        input=(size[0], size[1], size[2]),
        input_loc=prog.input_loc,
        layers=layers,
        forward=steps,
        train=train,
        constants=values,
        filename=filename,
        source=source,
        train_locs=train_locs,
        train_inferred=inferred,
    )


def load_spec(
    source: str | bytes,
    filename: str | None = None,
    *,
    input: tuple[int, int, int] | None = None,
    constants: dict[str, Any] | None = None,
) -> Network:
    """Parse and elaborate spec text (`filename` names it in errors)."""
    prog = parse(source, filename)
    return elaborate(prog, input=input, constants=constants, filename=filename, source=normalize_source(source))
