"""The run order, which `print(model)` does not show.

Without `--order`, the children run in the order they are registered (nn.Sequential's own order, and an assumption
for any other top-level class), with a Flatten added where torchvision-style models flatten in forward(). With
`--order FILE`, the order is a spec's `forward { ... }` section (or just its steps), read by `lang`'s parser and
unrolled by `lang`'s forward walker; its errors point into the order file.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from ..errors import Location, SpecError
from ..lang import (
    FUNCTIONS,
    Constants,
    Program,
    Repeat,
    Scope,
    did_you_mean,
    forward_names,
    normalize_source,
    parse,
    value_of,
)
from ..rules import CHW_LAYERS  # layers that need a C x H x W input
from .read import PNode

MAX_STEPS = 20_000
MAX_REPEAT = 10_000  # a repeat over more than this many values is refused

# layers that work element by element on any shape: a flatten may move across them
ELEMENTWISE = frozenset(
    {"Dropout", "ReLU", "ReLU6", "LeakyReLU", "ELU", "GELU", "SiLU", "Hardswish", "Mish", "Sigmoid", "Tanh", "Identity"}
)


class RunStep(NamedTuple):
    """One step of the run order: `module` or `residual` runs a printed child, `function` a function (relu)."""

    op: str
    name: str
    child: PNode | None  # None for a function


# ---- registration order ------------------------------------------------------------------------------------------


def insert_flattens(top: list[PNode]) -> list[tuple[PNode, str]]:
    """Where, in registration order, a flat layer gets an image, add a Flatten before the top-level child holding it.

    torchvision's models (and many others) flatten with torch.flatten(x, 1) in forward(), which a printed module does
    not show. A Flatten module has no weights, so state_dict keys stay the same. Only a child whose layers before
    that flat layer all work element by element (Dropout, ReLU, ...) qualifies. Returns the Flattens added, each
    with the name of the child it runs before.
    """
    added: list[tuple[PNode, str]] = []
    rank = 3
    i = 0
    names = {pn.name for pn in top}
    while i < len(top):
        child = top[i]
        for k, leaf in enumerate(child.leaves()):
            if leaf.cls == "Flatten":
                start, end = dict(leaf.spec_args).get("start_dim", 1), dict(leaf.spec_args).get("end_dim", -1)
                if (start, end) != (1, -1):
                    return added
                rank = 1
            elif leaf.cls in ("Linear", "BatchNorm1d"):
                if rank == 3:
                    before = list(child.leaves())[:k]
                    if any(b.cls not in ELEMENTWISE for b in before):
                        return added
                    fl = _flatten(names)
                    top.insert(i, fl)
                    added.append((fl, child.name))
                    i += 1
                rank = 1
            elif leaf.cls in CHW_LAYERS and rank != 3:
                return added
        i += 1
    return added


def _flatten(names: set[str]) -> PNode:
    """A Flatten child named `flatten` (or `flatten_1`, ... where that is taken)."""
    name = "flatten"
    n = 1
    while name in names:
        name = f"flatten_{n}"
        n += 1
    names.add(name)
    return PNode(name, "Flatten", Location(0, 0), None, args=[], path=name)


# ---- an order file -----------------------------------------------------------------------------------------------


def read_order(text: str | bytes, filename: str | None, top: list[PNode]) -> list[RunStep]:
    """The run order from a `forward { ... }` section (or its steps alone), repeats unrolled, every step checked
    against the printed children `top` and netspec's functions."""
    src = normalize_source(text)
    prog, shift = _parse_order(src, filename)

    def err(message: str, loc: Location | None, hint: str | None = None, code: str = "E209") -> SpecError:
        return SpecError(message, loc, hint=hint, code=code, filename=filename, source=src)

    if prog.forward is None:
        raise err(
            "the order file has no `forward { ... }` section",
            Location(1, 1),
            hint="write the run order as a spec's forward section: forward { conv1 relu pool1 ... }",
        )
    for what, loc in (
        ("layers", prog.layers_loc),
        ("train", prog.train_loc),
        ("network", prog.network_loc),
        ("input", prog.input_loc),
    ):
        if loc is not None:
            raise err(f"the order file gives the run order only; `{what}` comes from the printed module", loc)
    try:
        return _steps(prog, top)
    except SpecError as e:
        # said of the order file as written, without the `forward {` line added in front of bare steps
        at = e.loc
        fixed = (
            Location(1, 1) if at is None or at.line - shift < 1 else Location(at.line - shift, at.column, at.end_column)
        )
        raise err(e.message, fixed, e.hint, e.code) from None


def _parse_order(src: str, filename: str | None) -> tuple[Program, int]:
    """The order file parsed, and how many lines were added in front of it (1 where the steps stand alone)."""
    try:
        return parse(src, filename), 0
    except SpecError:
        if re.search(r"\bforward\b", src):
            raise
    wrapped = "forward {\n" + src + "\n}\n"
    try:
        return parse(wrapped, filename), 1
    except SpecError as e:
        if e.loc is not None and 2 <= e.loc.line <= src.count("\n") + 1:
            raise SpecError(
                e.message,
                Location(e.loc.line - 1, e.loc.column, e.loc.end_column),
                hint=e.hint,
                code=e.code,
                filename=filename,
                source=src,
            ) from None
        raise


def _span(rep: Repeat, scope: Scope) -> range:
    """The values of a repeat variable in an order file."""
    lo, hi = value_of(rep.start, scope), value_of(rep.stop, scope)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (lo, hi)) or hi < lo or hi - lo > MAX_REPEAT:
        raise SpecError(f"cannot repeat over {lo!r}..{hi!r}", rep.loc, code="E209")
    return range(lo, hi + 1)


def _steps(prog: Program, top: list[PNode]) -> list[RunStep]:
    """The forward section's steps, resolved against the printed children; errors at the parsed text's lines."""
    by_name = {pn.name: pn for pn in top}
    steps: list[RunStep] = []
    for it, name in forward_names(prog.forward or (), Constants(prog.consts, {}), _span):
        if name in by_name:
            steps.append(RunStep("residual" if it.residual else "module", name, by_name[name]))
        elif name in FUNCTIONS and not it.residual:
            steps.append(RunStep("function", name, None))
        else:
            hint = did_you_mean(name, list(by_name) + list(FUNCTIONS))
            raise SpecError(
                f"{name!r} is not a child of the printed module" + ("" if it.residual else " nor a function"),
                it.name.loc,
                hint=hint or f"functions: {', '.join(FUNCTIONS)}",
                code="E209",
            )
        if len(steps) > MAX_STEPS:
            raise SpecError(f"the run order has more than {MAX_STEPS:,} steps", it.loc, code="E209")
    used = {s.name for s in steps if s.op != "function"}
    missing = [pn for pn in top if pn.name not in used]
    if missing:
        raise SpecError(
            f"the run order never runs {', '.join(repr(pn.name) for pn in missing)}",
            prog.forward_loc,
            hint="every child of the printed module must run at least once",
            code="E209",
        )
    return steps


def normalize_order(order: str | bytes) -> str:
    """The order text as a `forward { ... }` section (comments kept), for writing verbatim."""
    src = normalize_source(order).strip("\n")
    return src if re.search(r"\bforward\b", src) else "forward {\n" + src + "\n}"
