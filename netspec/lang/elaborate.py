"""Stage 2: syntax tree -> a validated `Network` (no torch).

Here constants are evaluated, the items of `layers` are expanded (`expand`: blocks, `repeat`, `if`, name templates,
every layer's arguments validated against its model, see `validate`), `forward` is resolved against the declared
names (a list of steps, or a run order over named values: `flows`), and the `train` section becomes a `TrainSpec`.
A `module`'s use stays a reference to its definition until `shapes` knows its input (`modules.instantiate`). Every
error is a `SpecError` at the place in the file that caused it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from ..errors import Location, SpecError, UsageError
from .expand import MAX_LAYERS, Expander, need_a_forward, runs_in_order
from .flows import resolve_flow
from .hints import did_you_mean, few
from .layers import FUNCTIONS
from .modules import check_module_cycles
from .network import Flow, FStep, Network, Node
from .parse import normalize_source, parse
from .syntax import Program, Repeat, Step
from .train_section import train_spec
from .values import Constants, Scope, render_name, value_of

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
    ranges = Expander(prog, constants)  # one counter for every repeat of the section
    for it, name in forward_names(prog.forward or (), constants, ranges.range):
        steps.append(_step(it, name, declared))
        if len(steps) > MAX_LAYERS:
            raise SpecError(f"forward has more than {MAX_LAYERS:,} steps", it.loc, code="E048")
    used = {s.name for s in steps if s.op != "function"}
    for node in layers:
        if node.name not in used and runs_in_order(node):
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
    check_module_cycles(prog)
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
    layers = Expander(prog, consts).items(prog.layers, consts)
    if not layers:
        raise SpecError(
            "the `layers` section is empty",
            prog.layers_loc,
            hint="add layers: layers { flatten Flatten()  fc Linear(10) }",
            code="E012",
        )
    steps, flow = _run_order(prog, layers, consts)
    train, train_locs, inferred = train_spec(
        prog.train or (), lambda e: value_of(e, consts, symbols=True), (size[1], size[2]), prog.train_loc
    )
    return Network(
        name=prog.network or "Net",
        input=(size[0], size[1], size[2]),
        input_loc=prog.input_loc,
        layers=layers,
        forward=steps,
        flow=flow,
        train=train,
        constants=values,
        filename=filename,
        source=source,
        train_locs=train_locs,
        train_inferred=inferred,
    )


def _run_order(prog: Program, layers: tuple[Node, ...], consts: Constants) -> tuple[tuple[FStep, ...], Flow | None]:
    """The network's run order: `forward(x) { ... }`, `forward { ... }` steps, or its layers in order."""
    if prog.flow is not None:
        return (), resolve_flow(prog.flow, layers, consts, Expander(prog, consts).range)
    need_a_forward(layers, "the network")
    if prog.forward is not None:
        return _forward(prog, layers, consts), None
    return tuple(FStep("module", n.name, n.loc) for n in layers if runs_in_order(n)), None


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
