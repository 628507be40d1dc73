"""Step 3: solve for the input size with netspec's own static shape inference.

The printed tree is written as a plain spec (one module a line, no folding) and elaborated by `lang`; `shapes`
infers it at candidate input sizes, and a size is accepted when every inferred size (`in_channels`, ...) equals the
printed one. C comes from the first sized layer; square sizes are tried from 1x1 up, and of those that fit the
smallest common one (28, 32, ..., 299) is chosen, else the smallest; where none fits but a flat layer couples H and
W, pairs of the sides that got furthest are tried. Where the run order is assumed, `assumption_warning` says what the
size rests on. Where no size fits, the error points at the printed line of the layer that cannot fit, and names the
children that cannot run where they are registered.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..errors import Location, SpecError
from ..lang import Network, Node, load_spec
from ..shapes import Row, fmt_shape, infer, infer_partial
from .order import RunStep
from .read import PNode, Reader
from .render import call_text

MAX_SIDE = 1024  # square inputs are searched from 1x1 to this
MAX_PAIRS = 200  # H x W pairs tried where no square fits
COMMON_SIDES = (28, 32, 64, 96, 128, 224, 256, 299)  # the sides data sets and models are usually at: preferred

Size = tuple[int, int, int]

# the layers whose input size a printed module pins down, or constrains
_SIZED = (
    "Conv2d",
    "ConvTranspose2d",
    "PReLU",
    "ReflectionPad2d",
    "Linear",
    "BatchNorm2d",
    "BatchNorm1d",
    "GroupNorm",
    "Flatten",
    "MaxPool2d",
    "AvgPool2d",
    "AdaptiveAvgPool2d",
    "AdaptiveMaxPool2d",
)


class MisplacedError(SpecError):
    """No input size fits in registration order, and some top-level children are to blame: the error is said of
    the first of them, and `warnings` names them all."""

    def __init__(self, message: str, loc: Location | None, *, warnings: list[str], **kwargs: Any):
        super().__init__(message, loc, **kwargs)
        self.warnings = warnings


@dataclass
class Flat:
    """The unfolded spec of the printed tree (one module a line), elaborated, with the way back to the text."""

    net: Network
    line_map: dict[int, PNode]  # line of the unfolded spec -> the printed module written there
    runorder: list[tuple[PNode, Node]]  # (printed leaf, spec Node) in run order


def _flat_text(top: list[PNode], steps: list[RunStep] | None, name: str) -> tuple[str, dict[int, PNode]]:
    lines = [f"network {name}", "input 1x1x1", "layers {"]
    line_map: dict[int, PNode] = {}

    def emit(pn: PNode, indent: int) -> None:
        pad = " " * indent
        nm = "" if pn.anonymous else pn.name + " "
        if pn.is_leaf:
            lines.append(pad + nm + call_text(pn.cls, pn.spec_args))
            line_map[len(lines)] = pn
            return
        composite = "Residual" if pn.cls == "Residual" else "Sequential"
        lines.append(pad + nm + composite + " {")
        line_map[len(lines)] = pn
        for c in pn.body:
            emit(c, indent + 4)
        if pn.shortcut is not None:
            lines.append(pad + "} shortcut {")
            for c in pn.shortcut:
                emit(c, indent + 4)
        lines.append(pad + "}")

    for pn in top:
        emit(pn, 4)
    lines.append("}")
    if steps is not None:
        lines.append("forward {")
        for op, step_name, child in steps:
            lines.append(("    residual " if op == "residual" else "    ") + step_name)
            if child is not None:
                line_map[len(lines)] = child
        lines.append("}")
    return "\n".join(lines) + "\n", line_map


def flat_spec(top: list[PNode], steps: list[RunStep] | None, name: str) -> Flat:
    """The printed children `top`, in the run order `steps` (None: registration order), as an elaborated spec."""
    text, line_map = _flat_text(top, steps, name)
    try:
        net = load_spec(text, "<import>")
    except SpecError as e:
        # a printed value the language refuses: say so where it is printed
        pn = line_map.get(e.loc.line) if e.loc is not None else None
        if pn is None or pn.loc.line < 1:
            raise
        raise SpecError(
            f"{pn.what()} cannot be written in a spec: {e.message}", pn.loc, hint=e.hint, code=e.code
        ) from None
    by_name = {pn.name: pn for pn in top}
    nodes = {n.name: n for n in net.layers}
    runorder: list[tuple[PNode, Node]] = []

    def leaves(pn: PNode, node: Node) -> None:
        if pn.is_leaf:
            runorder.append((pn, node))
            return
        for pc, nc in zip(pn.body, node.children):
            leaves(pc, nc)
        for pc, nc in zip(pn.shortcut or (), node.shortcut or ()):
            leaves(pc, nc)

    for st in net.forward:
        if st.op != "function":
            leaves(by_name[st.name], nodes[st.name])
    return Flat(net, line_map, runorder)


# ---- one size ----------------------------------------------------------------------------------------------------


@dataclass
class Fit:
    """How far into the run order the printed sizes fit at one input size."""

    index: int  # how many leaves (in run order) fit; len(runorder) when all do
    pnode: PNode | None = None
    why: str = ""  # what goes wrong, said of pnode: "is printed with in_features=4096, but gets 1024 ..."
    spatial: tuple[int, ...] | None = None  # for a printed size that does not fit: the last C x H x W shape before it
    shape_error: bool = False  # the shapes cannot run at all (not a printed size that differs)


def fit(flat: Flat, size: Size) -> Fit:
    """How far into the run order the printed sizes fit at this input size."""
    table, err = infer_partial(flat.net, size)
    inferred = table.inferred
    for idx, (leaf, node) in enumerate(flat.runorder):
        got = inferred.get(node)
        if got is None:
            break
        for key, want in leaf.printed.items():
            if got.get(key) != want:
                spatial = None
                for r in table.rows:
                    if r.node is node:
                        break
                    spatial = next((sh for sh in (r.out_shape, r.in_shape) if len(sh) == 3), spatial)
                return Fit(
                    idx,
                    leaf,
                    f"is printed with {key}={want}, but gets {key}={got.get(key)} at input {fmt_shape(size)}",
                    spatial,
                )
    else:
        if err is None:
            return Fit(len(flat.runorder))
    idx = next((i for i, (_, node) in enumerate(flat.runorder) if node not in inferred), len(flat.runorder))
    assert err is not None
    pn = flat.line_map.get(err.loc.line) if err.loc is not None else None
    if pn is None and idx < len(flat.runorder):
        pn = flat.runorder[idx][0]
    why = re.sub(r"^(\w+) '[^']*' ", "", err.message)
    if why.startswith("residual ") or why.startswith("the body of"):
        why = "fails: " + why
    return Fit(idx, pn, f"{why} (at input {fmt_shape(size)})", shape_error=True)


# ---- the search --------------------------------------------------------------------------------------------------


@dataclass
class Squares:
    """The square sides that fit: every one from `smallest` to `high` (checked up to `limit`), and of the common
    sides those in `common`. The input chosen is the smallest common side that fits, else the smallest side."""

    smallest: int
    high: int
    limit: int
    common: list[int]

    @property
    def chosen(self) -> int:
        return self.common[0] if self.common else self.smallest

    def span(self) -> str:
        """The run of sides that fit, from the smallest: 'every square size from 22x22 to 23x23'."""
        s, hi = self.smallest, self.high
        if hi == s:
            return f"{s}x{s} and no other square size up to {self.limit}x{self.limit}"
        further = " (checked no further)" if hi == self.limit else ""
        return f"every square size from {s}x{s} {'up to ' if further else 'to '}{hi}x{hi}{further}"

    def others(self) -> str:
        """The common sides that fit beyond the run `span` names, or that none does, as a clause to add."""
        if not self.common:
            return f"; none of the common sizes ({', '.join(map(str, COMMON_SIDES))}) fits"
        beyond = [f"{k}x{k}" for k in self.common if k > self.high]
        if not beyond:
            return ""
        return f"; of the common sizes above that, {_sides(beyond)} {'fit' if len(beyond) > 1 else 'fits'} too"


def _sides(items: Iterable[object]) -> str:
    """'a, b and c'."""
    words = [str(i) for i in items]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


@dataclass
class Search:
    """The input size found (`size`, and a note on how) or, when none fits, the furthest failure."""

    size: Size | None
    note: str
    best: Fit  # the furthest failure, when there is no size
    sides: list[int]  # the square sides that got furthest
    squares: Squares | None = None  # the square sides that fit, where a square size was found


def _channels(flat: Flat) -> int | None:
    for pn, _ in flat.runorder:
        for key in ("in_channels", "num_features", "num_channels"):
            if key in pn.printed and pn.cls != "BatchNorm1d":
                return pn.printed[key]
        if "in_features" in pn.printed or (pn.cls == "BatchNorm1d" and pn.printed):
            raise SpecError(
                f"the first layer with a printed size is {pn.what()}, on flat input: netspec networks "
                f"take C x H x W images, and the input size cannot be told",
                pn.loc,
                hint="pass the input size with --input CxHxW",
                code="E208",
            )
    return None


def solve(flat: Flat, given: Size | None, sides: Iterable[int] | None = None) -> Search:
    """The input size: the smallest square that fits, else the smallest H x W found; else the furthest failure.
    `given` (--input) is checked instead of searched for; `sides` limits the square sides tried."""
    total = len(flat.runorder)
    if given is not None:
        found = fit(flat, given)
        if found.index == total:
            return Search(given, f"input {fmt_shape(given)}: as given (--input); it fits every printed size", found, [])
        return Search(None, "", found, [])
    c = _channels(flat)
    if c is None:
        return Search(
            (3, 32, 32), "input 3x32x32: an assumption; no printed size depends on the input size", Fit(total), []
        )
    best = Fit(-1)
    best_sides: list[int] = []
    fits: dict[int, Fit] = {}
    for s in sides if sides is not None else range(1, MAX_SIDE + 1):
        found = fits[s] = fit(flat, (c, s, s))
        if found.index == total:
            sq = _squares(flat, c, s)
            return Search((c, sq.chosen, sq.chosen), _square_note(flat, c, sq), found, [s], sq)
        if found.index > best.index:
            best, best_sides = found, [s]
        elif found.index == best.index:
            best_sides.append(s)
    return _rectangle(flat, c, best, best_sides, fits)


def _squares(flat: Flat, c: int, s: int) -> Squares:
    """The square sides that fit, `s` the smallest: the run from `s` (checked up to twice `s`), and the common ones."""
    total = len(flat.runorder)

    def fits(side: int) -> bool:
        return fit(flat, (c, side, side)).index == total

    limit = min(2 * s, MAX_SIDE)
    hi = s
    while hi + 1 <= limit and fits(hi + 1):
        hi += 1
    common = [k for k in COMMON_SIDES if s <= k <= hi or (hi < k <= MAX_SIDE and fits(k))]
    return Squares(s, hi, limit, common)


def _square_note(flat: Flat, c: int, sq: Squares) -> str:
    """How the square input was chosen, and which other square sides fit."""
    sizes = f"every printed size ({', '.join(_size_keys(flat))}) fits"
    s = sq.smallest
    if sq.chosen != s:
        common = ", ".join(map(str, COMMON_SIDES))
        why = f"the smallest of the common sizes ({common}) at which {sizes}; the printed sizes fit {sq.span()}"
    elif sq.high == s:
        why = f"the smallest square input at which {sizes}, and no other square size up to {sq.limit}x{sq.limit} does"
    else:
        why = f"the smallest square input at which {sizes}; so does {sq.span()}"
    return f"input {fmt_shape((c, sq.chosen, sq.chosen))}: {why}{sq.others()}"


def assumption_warning(search: Search, flat: Flat, top: list[PNode], root: str) -> str | None:
    """What the input size found rests on, where the children's run order is assumed: each runs once, in the order
    printed. A child without weights (a pool, an activation, dropout) may well run more than once in forward(), and
    forward() may pool with a function: either would take a larger input. None where no such child is printed."""
    sq = search.squares
    if sq is None or search.size is None:
        return None
    reusable = _weightless(flat, top, search.size)
    if not reusable:
        return None
    names = [pn.what() for pn in reusable[:3]]
    if len(reusable) > 3:
        names.append(f"{len(reusable) - 3} more")
    return (
        f"input {fmt_shape(search.size)} assumes that {root}'s children each run once, in the order print(model) "
        f"lists them: in that order the printed sizes fit {sq.span()}{sq.others()}. print(model) does not show "
        f"forward(): if it runs a child without weights ({_sides(names)}) more than once, or pools with a function, "
        f"the input is larger. Give the run order with --order FILE, and choose among the sizes that fit with "
        f"--input CxHxW"
    )


def _weightless(flat: Flat, top: list[PNode], size: Size) -> list[PNode]:
    """The printed top-level children without weights, those that change the size of their input first."""
    rows = {r.node: r for r in infer(flat.net, size).rows if r.is_leaf and r.node is not None}
    node_of = dict(flat.runorder)

    def leaf_rows(pn: PNode) -> list[Row]:
        return [rows[node_of[leaf]] for leaf in pn.leaves() if node_of.get(leaf) in rows]

    found = [pn for pn in top if pn.loc.line > 0 and all(r.params == 0 for r in leaf_rows(pn))]
    return sorted(found, key=lambda pn: not any(r.in_shape != r.out_shape for r in leaf_rows(pn)))


def _rectangle(flat: Flat, c: int, best: Fit, best_sides: list[int], fits: dict[int, Fit]) -> Search:
    """No square fits: where a flat layer's size couples H and W, try the sides that got that far in pairs."""
    pn = best.pnode
    if pn is not None and "in_features" in pn.printed:
        want = pn.printed["in_features"]
        shapes = {s: sh for s in best_sides if (sh := fits[s].spatial) is not None}
        pairs = sorted(
            ((h, w) for h in shapes for w in shapes if h != w and shapes[h][0] * shapes[h][1] * shapes[w][2] == want),
            key=lambda hw: (hw[0] * hw[1], abs(hw[0] - hw[1]), hw),
        )
        for h, w in pairs[:MAX_PAIRS]:
            if fit(flat, (c, h, w)).index == len(flat.runorder):
                note = (
                    f"input {fmt_shape((c, h, w))}: no square input fits the "
                    f"printed sizes; this is the smallest H x W found that does"
                )
                return Search((c, h, w), note, best, best_sides)
    return Search(None, "", best, best_sides)


def _size_keys(flat: Flat) -> list[str]:
    keys: list[str] = []
    for pn, _ in flat.runorder:
        for k in pn.printed:
            if k not in keys:
                keys.append(k)
    return keys


# ---- no size fits ------------------------------------------------------------------------------------------------


def no_fit(
    search: Search, flat: Flat, top: list[PNode], steps: list[RunStep] | None, given: Size | None, reader: Reader
) -> SpecError:
    """The error for a printed module that no input size fits; names modules registered out of their run order."""
    best = search.best
    pn = best.pnode
    loc = pn.loc if pn is not None and pn.loc.line > 0 else None
    what = pn.what() if pn is not None else "a layer"
    if given is not None:
        return reader.error_at(
            f"the printed sizes do not fit the input {fmt_shape(given)}: {what} {best.why}",
            loc,
            hint="leave out --input to search for a size that fits",
            code="E210",
        )
    if steps is None and pn is not None and search.sides:
        misplaced = _misplaced(search, flat, top, reader)
        if misplaced is not None:
            return misplaced
    hint = None
    if steps is None:
        hint = "print(model) does not show forward(): if the children run in another order, give it with --order"
    if pn is None:
        return reader.error_at(
            f"no input size up to {MAX_SIDE}x{MAX_SIDE} fits the printed sizes", None, hint=hint, code="E210"
        )
    return reader.error_at(f"no input size fits the printed sizes: {what} {best.why}", loc, hint=hint, code="E210")


def _misplaced(search: Search, flat: Flat, top: list[PNode], reader: Reader) -> SpecError | None:
    """In registration order: the top-level children that cannot run where they are registered, as an error that
    carries them as a warning; None when taking children out does not make the rest fit.

    Taking one out keeps the sizes that got as far as it as the only candidates, so each round checks just those.
    """
    best = search.best
    misplaced: list[PNode] = []
    rest = list(top)
    sub = search
    for _ in range(32):
        p = sub.best.pnode
        child = next((c for c in rest if p is c or (p in list(c.leaves()) and _first_sized(c) is p)), None)
        if child is None or len(rest) == 1:
            return None
        # a printed size that differs, with nothing sized after it, is a wrong size rather than a wrong place
        after = rest[rest.index(child) + 1 :]
        if not sub.best.shape_error and not any(_first_sized(c) for c in after):
            return None
        misplaced.append(child)
        rest.remove(child)
        sub = solve(flat_spec(rest, None, flat.net.name), None, sub.sides)
        if sub.size is not None:
            names = ", ".join(f"{c.name!r} (line {c.loc.line})" for c in misplaced)
            first = misplaced[0]
            why = best.why if first is best.pnode else "does not fit there"
            return MisplacedError(
                f"{first.what()} cannot run where it is registered: it {why}",
                first.loc,
                hint=f"print(model) does not show forward(), so import runs the children in registration "
                f"order, where {names} {'does' if len(misplaced) == 1 else 'do'} not fit (the rest fits "
                f"{fmt_shape(sub.size)}). Give the run order with --order FILE, written as "
                f"a spec's `forward {{ ... }}` section",
                code="E211",
                filename=reader.filename,
                source=reader.text,
                warnings=[f"in registration order these children cannot run where they are registered: {names}"],
            )
        if not sub.sides:
            return None
    return None


def _first_sized(child: PNode) -> PNode | None:
    for leaf in child.leaves():
        if leaf.printed or leaf.cls in _SIZED:
            return leaf
    return None
