"""Step 4: fold repeated groups into `repeat`s and `block`s, wherever that makes the spec shorter.

Greedy: at each level, the repeat or block that saves the most lines (then characters, as rendered) is applied,
until none saves anything; then the insides of composites and repeats are folded the same way. A block's body is
folded for repeats too. Forward steps fold into repeats only, judged by characters.

Items are compared as token lists in which only the integers inside names are bare ints: those are what a repeat may
count (`resblock1_1 ... resblock1_4`) and what a block's `id` is made of (`conv2_0`, `batchnorm2_0` -> `2_0`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import count
from typing import Any

from ..lang import LAYERS
from .convert import RESERVED
from .items import (
    IBlock,
    IComp,
    Ident,
    ILayer,
    IRep,
    IUse,
    Name,
    NamePart,
    Var,
    children,
    common_id,
    layer_names,
    map_ints,
    tokens,
    used_names,
    value_key,
    with_id,
)
from .render import LINE_WIDTH, cost, inline, render_block, render_items, render_steps

MAX_BLOCK = 16  # layers in a block, at most
_VAR_NAMES = ("i", "j", "k", "n", "m", "t", "u", "v", "w")
_PARAM_NAMES = {
    "out_channels": "out",
    "out_features": "out",
    "kernel_size": "k",
    "padding": "pad",
    "num_groups": "groups",
    "output_size": "size",
    "negative_slope": "slope",
}

Cost = tuple[int, int]  # lines, characters


def _first_key(cls: str) -> str:
    spec = LAYERS.get(cls)
    return spec.POSITIONAL[0] if spec is not None and spec.POSITIONAL else "arg"


# ---- candidates --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Shape:
    """A block occurrence, abstracted: its layers without values or id, its values in order (with the argument
    each is given for), and its id."""

    skeleton: tuple[Any, ...]
    values: list[tuple[str, Any]]
    id: Name | None


@dataclass
class _Candidate:
    saving: Cost
    spans: list[tuple[int, int, Any]]  # (start, end, the item that replaces items[start:end])
    block: IBlock | None = None


@dataclass
class _Signatures:
    """Per item: its cost, its shape (alike but for integers in names), its coarse shape (alike but for names and
    values), and the integers in its names."""

    costs: list[Cost]
    shape: list[int]
    coarse: list[int]
    ints: list[list[int]]


def _sum(costs: Sequence[Cost]) -> Cost:
    return sum(c[0] for c in costs), sum(c[1] for c in costs)


class Folder:
    """Greedy folding of one spec's items; `blocks` collects the blocks it makes."""

    def __init__(self, reserved: set[str], steps: bool = False):
        self.blocks: dict[str, IBlock] = {}
        self.reserved = set(reserved)
        self.steps = steps  # folding forward steps: shorter in characters
        self._bodies: dict[tuple[Any, ...], tuple[Any, ...]] = {}  # block bodies folded, by (body, params)

    def cost(self, items: Sequence[Any], indent: int) -> Cost:
        if self.steps:
            n = cost(render_steps(items, indent))[1]
            return n, n
        return cost(render_items(items, indent))

    # -- driver -----------------------------------------------------------------------------------------------------

    def fold(
        self, items: Sequence[Any], indent: int, reserved: frozenset[str] = frozenset(), blocks: bool = True
    ) -> tuple[Any, ...]:
        """The items folded, the best candidate first, until none saves anything; then their insides."""
        items = list(items)
        while True:
            sig = self.signatures(items, indent)
            cands = list(self.repeat_candidates(items, sig, indent, reserved))
            if blocks and not self.steps:
                cands += list(self.block_candidates(items, sig, indent))
            best = None
            for c in cands:
                if c.saving[0] > 0 and (best is None or c.saving > best.saving):
                    best = c
            if best is None:
                break
            if best.block is not None:
                self.blocks[best.block.name] = best.block
            for s, e, new in reversed(best.spans):
                items[s:e] = [new]
        return tuple(self.fold_inside(it, indent, reserved, blocks) for it in items)

    def fold_inside(self, it: Any, indent: int, reserved: frozenset[str], blocks: bool) -> Any:
        if isinstance(it, IComp):
            its = self.fold(it.items, indent + 4, reserved, blocks)
            sc = None if it.shortcut is None else self.fold(it.shortcut, indent + 4, reserved, blocks)
            return IComp(it.name, it.composite, its, sc)
        if isinstance(it, IRep):
            return IRep(it.var, it.lo, it.hi, self.fold(it.items, indent + 4, reserved | {it.var}, False))
        return it

    def signatures(self, items: list[Any], indent: int) -> _Signatures:
        sig = _Signatures([self.cost([it], indent) for it in items], [], [], [])
        kinds: dict[tuple[Any, ...], int] = {}
        for it in items:
            out: list[Any] = []
            tokens(it, out)
            sig.ints.append([t for t in out if type(t) is int])
            sig.shape.append(kinds.setdefault(tuple(t if type(t) is not int else None for t in out), len(kinds)))
            # names and values left out: block occurrences differ in them
            rough = tuple(
                x[:2] if x[0] in ("L", "U") else x
                for x in out
                if isinstance(x, tuple) and x[0] not in ("name", "p", "anon")
            )
            sig.coarse.append(kinds.setdefault(("coarse", *rough), len(kinds)))
        return sig

    # -- repeat -----------------------------------------------------------------------------------------------------

    def repeat_candidates(
        self, items: list[Any], sig: _Signatures, indent: int, reserved: frozenset[str]
    ) -> Iterator[_Candidate]:
        """Runs of m >= 2 groups of p items, alike but for integers in names that count up by one together."""
        n, shape, ints = len(items), sig.shape, sig.ints
        for p in range(1, n // 2 + 1):
            covered: set[int] = set()
            for a in range(0, n - 2 * p + 1):
                if a in covered or shape[a : a + p] != shape[a + p : a + 2 * p]:
                    continue
                base = [v for j in range(a, a + p) for v in ints[j]]
                nxt = [v for j in range(a + p, a + 2 * p) for v in ints[j]]
                steps = [y - x for x, y in zip(base, nxt)]
                if any(d not in (0, 1) for d in steps):
                    continue
                m = 2
                while (
                    a + (m + 1) * p <= n
                    and shape[a + m * p : a + (m + 1) * p] == shape[a : a + p]
                    and [v for j in range(a + m * p, a + (m + 1) * p) for v in ints[j]]
                    == [x + d * m for x, d in zip(base, steps)]
                ):
                    m += 1
                covered.update(a + k * p for k in range(1, m))
                yield self.make_repeat(items, sig.costs, (a, p, m), steps, indent, reserved)

    def make_repeat(
        self,
        items: list[Any],
        costs: list[Cost],
        run: tuple[int, int, int],
        steps: list[int],
        indent: int,
        reserved: frozenset[str],
    ) -> _Candidate:
        """`repeat` over the run of m groups of p items from a; `steps` says which name integers count up."""
        a, p, m = run
        group = items[a : a + p]
        used: set[str] = set()
        for it in group:
            used_names(it, used)
        var = next(
            v
            for v in _VAR_NAMES + tuple(f"i{k}" for k in range(2, 100))
            if v not in used and v not in reserved and v not in self.reserved
        )
        ints: list[int] = []
        for it in group:
            out: list[Any] = []
            tokens(it, out)
            ints += [t for t in out if type(t) is int]
        moving = [v for v, s in zip(ints, steps) if s == 1]
        lo = moving[0] if moving else 1
        counter = iter(range(len(ints)))

        def f(part: int) -> NamePart:
            k = next(counter)
            return Var(var, part - lo) if steps[k] == 1 else part

        rep = IRep(var, lo, lo + m - 1, tuple(map_ints(it, f) for it in group))
        before = _sum(costs[a : a + m * p])
        if self.steps:
            after = self.cost([rep], indent)
        else:
            one = inline(rep)
            if one is not None and indent + len(one) <= LINE_WIDTH:
                after = (1, len(one))
            else:
                body = _sum(costs[a : a + p])
                after = (body[0] + 2, body[1] + len(f"repeat {var} in {lo}..{lo + m - 1} {{") + 1)
        saving = (before[0] - after[0], before[1] - after[1])
        if self.steps and after[1] * 3 > before[1] * 2:
            saving = (0, 0)  # forward steps: a repeat must save a third of the characters to read better
        return _Candidate(saving, [(a, a + m * p, rep)])

    # -- block ------------------------------------------------------------------------------------------------------

    def taken(self, name: str) -> bool:
        """Whether a new block may not take this name."""
        return name in self.blocks or name in self.reserved or name in RESERVED

    def block_candidates(self, items: list[Any], sig: _Signatures, indent: int) -> Iterator[_Candidate]:
        """Groups of p items that occur at least twice with the same layers, differing in an id and in values."""
        n, coarse = len(items), sig.coarse
        memo: dict[tuple[int, int], _Shape | None] = {}

        def ab(s: int, p: int) -> _Shape | None:
            if (s, p) not in memo:
                memo[(s, p)] = _abstract(items[s : s + p], self.blocks)
            return memo[(s, p)]

        for p in range(1, min(n // 2, MAX_BLOCK) + 1):
            taken: set[int] = set()
            for a in range(0, n - 2 * p + 1):
                if a in taken:
                    continue
                starts = _repeats_of(coarse, a, p)
                if len(starts) < 2:
                    continue
                first = ab(a, p)
                if first is None:
                    continue
                occ = [(a, first)]
                for s in starts[1:]:
                    other = ab(s, p)
                    if (
                        other is not None
                        and other.skeleton == first.skeleton
                        and (other.id is None) == (first.id is None)
                    ):
                        occ.append((s, other))
                if len(occ) < 2:
                    continue
                taken.update(s for s, _ in occ)
                cand = self.make_block(items, sig.costs, p, occ)
                if cand is not None:
                    yield cand

    def make_block(
        self, items: list[Any], costs: list[Cost], p: int, occ: list[tuple[int, _Shape]]
    ) -> _Candidate | None:
        """The block made of the occurrences `occ` of p items, with its uses and what it saves."""
        group = items[occ[0][0] : occ[0][0] + p]
        made = _parameters(occ, self.reserved, group)
        if made is None:
            return None
        params, slot_param = made
        id0 = occ[0][1].id
        all_params = (["id"] if id0 is not None else []) + params
        if not all_params:
            return None  # identical groups: a repeat's job
        body = _template(group, slot_param, id0)
        bname = _block_name(group, self.taken)
        uses = _uses(bname, occ, params, slot_param)
        before = _sum([c for s, _ in occ for c in costs[s : s + p]])
        use_chars = sum(len(inline(u) or "") for u in uses)
        # the body as it will be written: its own repeats folded
        key = (body, tuple(all_params))
        if key not in self._bodies:
            self._bodies[key] = self.fold(list(body), 4, frozenset(all_params), blocks=False)
        block = IBlock(bname, tuple(all_params), self._bodies[key])
        d = cost(render_block(block))
        after = (len(uses) + d[0] + 1, use_chars + d[1])
        saving = (before[0] - after[0], before[1] - after[1])
        return _Candidate(saving, [(s, s + p, u) for (s, _), u in zip(occ, uses)], block)


def _abstract(group: list[Any], blocks: dict[str, IBlock]) -> _Shape | None:
    """A candidate block occurrence, abstracted; None where it cannot be one.

    The id is the run of name parts every name in the group holds (conv2_0, batchnorm2_0 -> 2_0): the block's
    names are built from it. The values are every layer argument, in order, with the key it is given by.
    """
    names: list[Name] = []
    for it in group:
        layer_names(it, names)
    idsub = None
    if names:
        idsub = common_id(names)
        if idsub is None:
            return None
    values: list[tuple[str, Any]] = []
    skel: list[Any] = []

    def walk(it: Any) -> None:
        if isinstance(it, ILayer):
            skel.append(("L", it.cls, tuple(k for k, _ in it.args), with_id(it.name, idsub)))
            values.extend(((k or _first_key(it.cls)), v) for k, v in it.args)
        elif isinstance(it, IComp):
            sc = None if it.shortcut is None else len(it.shortcut)
            skel.append(("C", it.composite, len(it.items), sc, with_id(it.name, idsub)))
        elif isinstance(it, IRep):
            skel.append(("R", it.var, it.lo, it.hi, len(it.items)))
        elif isinstance(it, IUse):
            skel.append(("U", it.block, len(it.args)))
            params = blocks[it.block].params if it.block in blocks else ()
            values.extend((params[k] if k < len(params) else f"a{k}", v) for k, v in enumerate(it.args))
        else:  # pragma: no cover
            raise AssertionError(it)
        for c in children(it):
            walk(c)

    for it in group:
        walk(it)
    return _Shape(tuple(skel), values, idsub)


def _block_name(group: list[Any], taken: Callable[[str], bool]) -> str:
    """Initials of the group's names (conv, batchnorm, relu -> cbr), or of its layers where unnamed."""
    letters: list[str] = []
    for it in group:
        ch = _word(it)[0].lower()
        if not letters or letters[-1] != ch:
            letters.append(ch)
    base = "".join(letters)[:6]
    if len(base) < 2:
        base = base + "block"
    name = base
    k = 2
    while taken(name):
        name = f"{base}{k}"
        k += 1
    return name


def _repeats_of(coarse: list[int], a: int, p: int) -> list[int]:
    """Where the p items from a recur (coarsely alike), without overlapping, a included."""
    key = coarse[a : a + p]
    starts = [a]
    b = a + p
    while b + p <= len(coarse):
        if coarse[b : b + p] == key:
            starts.append(b)
            b += p
        else:
            b += 1
    return starts


def _parameters(
    occ: list[tuple[int, _Shape]], reserved: set[str], group: list[Any]
) -> tuple[list[str], dict[int, str]] | None:
    """The block's parameters besides `id`, and the parameter of each value slot that differs between the uses;
    None where a string differs (names are passed only as the one id)."""
    vals0 = occ[0][1].values
    params: list[str] = []
    slot_param: dict[int, str] = {}
    vec_param: dict[tuple[Any, ...], str] = {}
    taken = set(reserved) | {"id"}
    for it in group:
        used_names(it, taken)
    for j in range(len(vals0)):
        vec = tuple(value_key(o.values[j][1]) for _, o in occ)
        if len(set(vec)) == 1:
            continue
        if any(isinstance(o.values[j][1], str) for _, o in occ):
            return None
        if vec in vec_param:
            slot_param[j] = vec_param[vec]
            continue
        base = _PARAM_NAMES.get(vals0[j][0], vals0[j][0])
        pname = base
        k = 2
        while pname in params or pname in taken or pname in RESERVED:
            pname = f"{base}{k}"
            k += 1
        params.append(pname)
        vec_param[vec] = pname
        slot_param[j] = pname
    return params, slot_param


def _template(group: list[Any], slot_param: dict[int, str], id0: Name | None) -> tuple[Any, ...]:
    """The block's body: the first occurrence with its id and its varying values replaced by parameters."""
    counter = count()  # the value slots, in the order `abstract` lists them

    def value(v: Any) -> Any:
        j = next(counter)
        return Ident(slot_param[j]) if j in slot_param else v

    def walk(it: Any) -> Any:
        if isinstance(it, ILayer):
            return ILayer(with_id(it.name, id0), it.cls, tuple((k, value(v)) for k, v in it.args))
        if isinstance(it, IComp):
            nm = with_id(it.name, id0)
            its = tuple(walk(c) for c in it.items)
            sc = None if it.shortcut is None else tuple(walk(c) for c in it.shortcut)
            return IComp(nm, it.composite, its, sc)
        if isinstance(it, IRep):
            return IRep(it.var, it.lo, it.hi, tuple(walk(c) for c in it.items))
        if isinstance(it, IUse):
            return IUse(it.block, tuple(value(v) for v in it.args))
        raise AssertionError(it)  # pragma: no cover

    return tuple(walk(it) for it in group)


def _uses(bname: str, occ: list[tuple[int, _Shape]], params: list[str], slot_param: dict[int, str]) -> list[IUse]:
    """The block's uses: the id (an int where every id reads as one), then each parameter's value."""
    id0 = occ[0][1].id
    ids = ["".join(str(x) for x in o.id or ()) for _, o in occ] if id0 is not None else []
    as_int = all(s.isdigit() and (s == "0" or not s.startswith("0")) for s in ids)
    uses = []
    for k, (_, o) in enumerate(occ):
        args: list[Any] = [int(ids[k]) if as_int else ids[k]] if id0 is not None else []
        first_for: dict[str, Any] = {}
        for j in range(len(occ[0][1].values)):
            if j in slot_param and slot_param[j] not in first_for:
                first_for[slot_param[j]] = o.values[j][1]
        args += [first_for[pn] for pn in params]
        uses.append(IUse(bname, tuple(args)))
    return uses


def _word(it: Any) -> str:
    """The word a block's name takes an initial from: the item's name, else its class."""
    if isinstance(it, (ILayer, IComp)) and it.name is not None:
        word = next((x for x in it.name if isinstance(x, str) and x[:1].isalpha()), None)
        return word or (it.cls if isinstance(it, ILayer) else it.composite)
    if isinstance(it, ILayer):
        return it.cls
    if isinstance(it, IComp):
        return it.composite
    if isinstance(it, IUse):
        return it.block
    return "r"
