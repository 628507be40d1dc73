"""`import_text`: printed text -> spec text, the steps in order (read, convert, run order, solve, fold, render) and
a last check: the spec written must elaborate to exactly the network read from the text, or a plainer form of it
is written instead."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import SpecError, UsageError
from ..lang import Node, input_size, load_spec
from ..shapes import fmt_shape
from .convert import NAME_RE, RESERVED, read_module
from .fold import Folder
from .items import IComp, Ident, ILayer, IStep, SpecItem, split_name
from .order import RunStep, insert_flattens, normalize_order, read_order
from .read import PNode, Reader, normalize_text
from .render import render_block, render_items, render_steps, wrap_comment
from .solve import Flat, assumption_warning, flat_spec, no_fit, solve


@dataclass
class ImportResult:
    spec: str  # the .net text
    input: tuple[int, int, int]
    name: str
    warnings: list[str] = field(default_factory=list)  # what the input size rests on, where it rests on the order


@dataclass
class _RunOrder:
    steps: list[RunStep] | None  # None: registration order
    note: str  # what the header says of it
    flattens: list[str] = field(default_factory=list)  # what the header says of each Flatten added
    assumed: bool = False  # the top level's run order is assumed: print(model) does not show its forward()


def import_text(
    text: str | bytes,
    filename: str | None = None,
    *,
    name: str | None = None,
    order: str | bytes | None = None,
    order_filename: str | None = None,
    input: str | Sequence[int] | None = None,
    source: str | None = None,
    live: bool = False,
) -> ImportResult:
    """Turn printed-module text into spec text. Raises SpecError (file, line, column) where it cannot.

    `order` is the run order as a spec's `forward { ... }` section (without it: registration order); `input` an
    input size to use instead of the one chosen ("3x32x32" or (3, 32, 32)); `source` says where the text
    came from, for the header comment (default: the file name); `live` is set by `from_sequential`.
    """
    text = normalize_text(text, filename)
    root, reader = read_module(text, filename)
    net_name = _network_name(name, root)
    given = input_size(input)
    top = list(root.children)
    run = _run_order(reader, root, top, order, order_filename, live)
    try:
        flat = flat_spec(top, run.steps, net_name)
        search = solve(flat, given)
        size = search.size
        if size is None:
            raise no_fit(search, flat, top, run.steps, given, reader)
    except SpecError as e:
        e.attach(filename, text)
        raise
    # what the size rests on, where it rests on the run order (for a live module, the header says it)
    warning = assumption_warning(search, flat, top, root.cls) if run.assumed and given is None and not live else None
    what = source or basename(filename) or "a printed module"
    header = [f"# Imported by `netspec import` from {what}" + ("." if live else ", as print(model) shows it.")]
    for note in [run.note, search.note[0].upper() + search.note[1:] + ".", *run.flattens]:
        header += wrap_comment(note)
    spec = _Spec(header, net_name, fmt_shape(size), top, run.steps, _classes(flat))
    for cand in spec.candidates(order):
        if cand is not None and _elaborates_to(cand, flat):
            return ImportResult(cand, size, net_name, [warning] if warning else [])
    raise SpecError(
        "internal error: the imported spec does not elaborate to the printed module",
        None,
        code="E219",
        filename=filename,
    )  # pragma: no cover


def _network_name(name: str | None, root: PNode) -> str:
    """--name, else the printed class name, else `Net` where that is not a name a spec can write."""
    net_name = name or root.cls.split(".")[-1]
    if not NAME_RE.fullmatch(net_name) or net_name in RESERVED - {"Sequential", "Residual"}:
        if name:
            raise UsageError(f"--name {name!r}: a network name is letters, digits and '_'")
        net_name = "Net"
    return net_name


def _run_order(
    reader: Reader, root: PNode, top: list[PNode], order: str | bytes | None, order_filename: str | None, live: bool
) -> _RunOrder:
    """The run order of the children `top` (a Flatten may be added to them), and what the header says of it."""
    if order is not None:
        steps = read_order(order, order_filename, top)
        if root.cls == "Sequential" and any(pn.anonymous for pn in top):
            raise reader.error_at(
                "a forward section needs named children; this Sequential's children are numbered", root.loc, code="E209"
            )
        given = basename(order_filename) if order_filename else "the order"
        note = f"Run order: as given in {given} (the forward section below); print(model) does not show forward()."
        return _RunOrder(steps, note)
    if root.cls == "Sequential":
        return _RunOrder(None, "Run order: nn.Sequential's, the order the children are registered in.")
    added = [
        f"Added: `{fl.name} Flatten()` before {before!r}, whose Linear takes flat input: "
        f"a forward() that flattens with torch.flatten(x, 1) is assumed. A Flatten has no weights: "
        f"state_dict keys are unchanged."
        for fl, before in insert_flattens(top)
    ]
    if live:
        note = (
            f"Run order: assumed to be the order the children are registered in; "
            f"{root.cls}'s forward() cannot be seen (nn.Sequential stacks inside run in that order)."
        )
    else:
        note = (
            "Run order: assumed to be the order print(model) lists the children in, as print(model) "
            "does not show forward(); give another with --order FILE."
        )
    return _RunOrder(None, note, added, assumed=True)


def _classes(flat: Flat) -> PNode | None:
    """The last layer to run, when a Linear that runs once: it gets its size from a `classes` constant."""
    if not flat.runorder or flat.runorder[-1][0].cls != "Linear":
        return None
    last = flat.runorder[-1][0]
    if len(flat.runorder) > 1 and any(pn is last for pn, _ in flat.runorder[:-1]):
        return None
    return last


def basename(filename: str | None) -> str | None:
    """The file's name without its folders, for the header comment."""
    if not filename:
        return None
    return filename.replace("\\", "/").rsplit("/", 1)[-1]


# ---- writing the spec --------------------------------------------------------------------------------------------


def flat_items(nodes: Sequence[PNode], classes: PNode | None) -> list[SpecItem]:
    """The printed modules as items, unfolded; the `classes` layer's size written as the constant."""
    out: list[SpecItem] = []
    for pn in nodes:
        name = None if pn.anonymous else split_name(pn.name)
        if pn.is_leaf:
            args = tuple((k, Ident("classes") if pn is classes and (k is None) else v) for k, v in pn.spec_args)
            out.append(ILayer(name, pn.cls, args))
        else:
            composite = "Residual" if pn.cls == "Residual" else "Sequential"
            sc = None if pn.shortcut is None else tuple(flat_items(pn.shortcut, classes))
            out.append(IComp(name, composite, tuple(flat_items(pn.body, classes)), sc))
    return out


@dataclass
class _Spec:
    """What the spec says, to be written folded or not."""

    header: list[str]
    name: str
    input: str
    top: list[PNode]
    steps: list[RunStep] | None
    classes: PNode | None

    def candidates(self, order: str | bytes | None) -> Iterator[str | None]:
        """Folded; else with the order file's forward section as written; else unfolded."""
        yield self.write(fold=True)
        if order is not None:
            yield self.write(fold=True, verbatim=normalize_order(order))
        yield self.write(fold=False)

    def write(self, fold: bool, verbatim: str | None = None) -> str | None:
        items = flat_items(self.top, self.classes)
        out = self.header + [f"network {self.name}", f"input {self.input}"]
        if self.classes is not None:
            out.append(f"classes = {dict(self.classes.spec_args).get(None)}")
        folder = Folder({"classes"} if self.classes is not None else set())
        if fold:
            try:
                items = list(folder.fold(items, 4))
            except RecursionError:  # pragma: no cover
                return None
        for b in folder.blocks.values():
            out += ["", *render_block(b)]
        out += ["", "layers {", *render_items(items, 4), "}"]
        if self.steps is not None:
            out.append("")
            out += verbatim.splitlines() if verbatim is not None else self.forward(fold)
        return "\n".join(out) + "\n"

    def forward(self, fold: bool) -> list[str]:
        steps: list[Any] = [IStep(op == "residual", split_name(n)) for op, n, _ in self.steps or ()]
        if fold:
            steps = list(Folder(set(), steps=True).fold(steps, 4))
        return ["forward {", *render_steps(steps, 4), "}"]


def _signature(nodes: Sequence[Node]) -> tuple[Any, ...]:
    """What the network is, module by module: names, classes, arguments, children."""
    return tuple(
        (
            n.name,
            n.layer or n.composite,
            tuple(sorted((k, repr(v)) for k, v in n.config.args().items())) if n.config is not None else None,
            _signature(n.children),
            None if n.shortcut is None else _signature(n.shortcut),
        )
        for n in nodes
    )


def _elaborates_to(spec: str, flat: Flat) -> bool:
    """Whether the spec elaborates to exactly the network read from the text: modules, arguments and run order."""
    try:
        net = load_spec(spec, "<import>")
    except SpecError:
        return False
    same_steps = [(s.op, s.name) for s in net.forward] == [(s.op, s.name) for s in flat.net.forward]
    return same_steps and _signature(net.layers) == _signature(flat.net.layers)
