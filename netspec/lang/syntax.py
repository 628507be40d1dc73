"""Stage 1: text -> syntax tree.

The grammar lives in `grammar.lark`; the parser is built once, lazily (LALR, positions kept). Lark's exceptions are
turned into `SpecError` here, at the boundary, so no later stage ever sees a Lark type. The tree is made of small
frozen dataclasses that carry their `Location`; nothing is evaluated yet (constants, blocks, repetition and name
templates are the next stage's work).
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import os
import re
from importlib import resources
from pathlib import Path
from typing import Union

from ..errors import Location, SpecError
from ..record import Factory, Record

# ---------------------------------------------------------------------------------------------------------------
# Syntax tree
# ---------------------------------------------------------------------------------------------------------------


class Num(Record, frozen=True):
    value: int | float
    loc: Location


class Str(Record, frozen=True):
    value: str
    loc: Location


class Const(Record, frozen=True):
    """true / false / None."""

    value: bool | None
    loc: Location


class Ref(Record, frozen=True):
    """A name used as a value: a constant, a block parameter, a repeat variable (or a bare word like `cifar10`)."""

    name: str
    loc: Location


class BinOp(Record, frozen=True):
    op: str  # + - * // / %
    left: Expr
    right: Expr
    loc: Location
    op_loc: Location | None = None  # the operator itself (kept for '/'), for a caret on it


class Neg(Record, frozen=True):
    operand: Expr
    loc: Location


class TupleExpr(Record, frozen=True):
    items: tuple[Expr, ...]
    loc: Location


class ListExpr(Record, frozen=True):
    items: tuple[Expr, ...]
    loc: Location


class Arg(Record, frozen=True):
    """One argument of a call: `name` is None for a positional one."""

    name: str | None
    value: Expr
    loc: Location
    name_loc: Location | None = None


class Call(Record, frozen=True):
    """`Conv2d(64, kernel_size=3)`: a layer, a block's use, a transform or an optimizer."""

    name: str
    args: tuple[Arg, ...]
    loc: Location  # the whole call
    name_loc: Location  # just the name


Expr = Union[Num, Str, Const, Ref, BinOp, Neg, TupleExpr, ListExpr, Call]


class Template(Record, frozen=True):
    """A name that may hold `{expr}` holes: `conv{id}`, `resblock{s}_{i+1}`."""

    text: str
    loc: Location


class Composite(Record, frozen=True):
    kind: str  # "Sequential" | "Residual"
    items: tuple[Item, ...]
    loc: Location
    shortcut: tuple[Item, ...] | None = None


class Named(Record, frozen=True):
    name: Template
    body: Call | Composite
    loc: Location


class Repeat(Record, frozen=True):
    var: str
    start: Expr
    stop: Expr  # inclusive
    items: tuple  # of Item, or of Step inside `forward`
    loc: Location
    var_loc: Location | None = None


Item = Union[Named, Call, Composite, Repeat]


class Step(Record, frozen=True):
    name: Template
    loc: Location
    residual: bool = False


class Param(Record, frozen=True):
    name: str
    default: Expr | None
    loc: Location


class BlockDef(Record, frozen=True):
    name: str
    params: tuple[Param, ...]
    items: tuple[Item, ...]
    loc: Location
    name_loc: Location


class Setting(Record, frozen=True):
    key: str
    value: Expr
    loc: Location
    key_loc: Location


class ConstDef(Record, frozen=True):
    name: str
    value: Expr
    loc: Location


class Program(Record):
    """A whole spec file, as written."""

    network: str | None = None
    network_loc: Location | None = None
    input: tuple[int, int, int] | None = None
    input_loc: Location | None = None
    consts: dict[str, ConstDef] = Factory(dict)
    blocks: dict[str, BlockDef] = Factory(dict)
    layers: tuple[Item, ...] | None = None
    layers_loc: Location | None = None
    forward: tuple | None = None  # of Step | Repeat
    forward_loc: Location | None = None
    train: tuple[Setting, ...] | None = None
    train_loc: Location | None = None


# ---------------------------------------------------------------------------------------------------------------
# Parser
# ---------------------------------------------------------------------------------------------------------------

MAX_SOURCE_CHARS = 1_000_000
MAX_INPUT_DIM = 65_536  # the same limit as the command line's --input


def cache_dir() -> Path:
    """netspec's own cache folder: Lark's tables and parsed specs (`$NETSPEC_CACHE`, else ~/.cache/netspec)."""
    return Path(os.environ.get("NETSPEC_CACHE") or Path.home() / ".cache" / "netspec")


@functools.lru_cache(maxsize=1)
def _parser():
    import lark  # imported lazily: `netspec --help` stays fast

    text = resources.files("netspec.lang").joinpath("grammar.lark").read_text(encoding="utf-8")
    options = dict(parser="lalr", propagate_positions=True, maybe_placeholders=True)
    # Building the LALR tables takes ~0.3 s; Lark caches them in a file keyed by the grammar, the options and Lark's
    # version. The file lives in our own cache folder (not a shared temp dir), so no other user can plant one.
    key = hashlib.sha256(f"{text}{sorted(options.items())}{lark.__version__}".encode()).hexdigest()[:16]
    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return lark.Lark(text, cache=str(folder / f"grammar-{key}.lark"), **options)
    except OSError:  # a read-only home: build the tables every time
        return lark.Lark(text, **options)


def _loc_of(meta_or_token) -> Location:
    line = getattr(meta_or_token, "line", None) or 1
    col = getattr(meta_or_token, "column", None) or 1
    end_line = getattr(meta_or_token, "end_line", None)
    end_col = getattr(meta_or_token, "end_column", None)
    if end_line != line:
        end_col = None
    return Location(line, col, end_col)


def _tok(token) -> Location:
    return _loc_of(token)


def _span(tok) -> Location:
    value = str(tok)
    end = tok.column + len(value) if value and "\n" not in value else None
    return Location(tok.line, tok.column, end)


def _check_text(text: str | bytes) -> str:
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            # line/column of the first bad byte
            before = text[: e.start]
            line = before.count(b"\n") + 1
            col = e.start - (before.rfind(b"\n") + 1) + 1
            raise SpecError(
                "the file is not valid UTF-8 text", Location(line, col), hint="a spec is a UTF-8 text file", code="E003"
            ) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    if "\x00" in text:
        idx = text.index("\x00")
        line = text.count("\n", 0, idx) + 1
        col = idx - (text.rfind("\n", 0, idx) + 1) + 1
        raise SpecError(
            "the file holds a NUL byte: it looks binary, not a spec",
            Location(line, col),
            hint="a spec is a UTF-8 text file",
            code="E003",
        )
    if len(text) > MAX_SOURCE_CHARS:
        raise SpecError(
            f"the spec is {len(text):,} characters long; the limit is {MAX_SOURCE_CHARS:,}", Location(1, 1), code="E003"
        )
    return text


def normalize_source(text: str | bytes) -> str:
    """The text as the parser sees it: UTF-8 decoded, BOM dropped, CRLF and CR turned into LF."""
    text = _check_text(text)
    return text.replace("\r\n", "\n").replace("\r", "\n")


def parse(text: str | bytes, filename: str | None = None) -> Program:
    """Parse spec text into a `Program`. Raises `SpecError` (with file, line and column) on any syntax error.

    A spec file's tree (`filename` given) is kept in `netspec.parsecache`, and an unchanged file is not parsed again.
    """
    src = text
    try:
        text = normalize_source(text)
    except SpecError as e:
        shown = src if isinstance(src, str) else src.decode("utf-8", "replace")
        e.attach(filename, shown.replace("\r\n", "\n").replace("\r", "\n"))
        raise
    _check_nesting(text, filename)
    if filename is not None:
        from . import parsecache

        prog = parsecache.load(text)
        if prog is not None:
            return prog
    prog = _parse(text, filename)
    if filename is not None:
        parsecache.store(text, prog)
    return prog


def _parse(text: str, filename: str | None) -> Program:
    import lark

    try:
        tree = _parser().parse(text)
    except lark.UnexpectedInput as err:
        from .syntax_errors import syntax_error  # imported only for a spec with a mistake

        raise syntax_error(err, text).attach(filename, text) from None
    except RecursionError:
        raise SpecError("the spec is nested too deeply", Location(1, 1), code="E004").attach(filename, text) from None
    try:
        return _Builder(filename, text).program(tree)
    except SpecError as e:
        e.attach(filename, text)
        raise
    except RecursionError:
        raise SpecError("the spec is nested too deeply", Location(1, 1), code="E004").attach(filename, text) from None


MAX_NESTING = 100

_NESTING = re.compile(r"#[^\n]*|'[^'\n]*'|\"[^\"\n]*\"|[\[\](){}\n]")


def _check_nesting(text: str, filename: str | None) -> None:
    """Refuse brackets nested deeper than any real spec needs, at the bracket that goes too deep, before the
    parser spends seconds (or Python's recursion limit) on it."""
    depth, line, line_start = 0, 1, 0
    for m in _NESTING.finditer(text):
        tok = m.group()
        if tok == "\n":
            line, line_start = line + 1, m.end()
        elif tok in "([{":
            depth += 1
            if depth > MAX_NESTING:
                col = m.start() - line_start + 1
                raise SpecError(
                    f"brackets are nested more than {MAX_NESTING} deep",
                    Location(line, col, col + 1),
                    hint="flatten the expression or the Sequential nesting",
                    code="E004",
                ).attach(filename, text)
        elif tok in ")]}":
            depth = max(0, depth - 1)


class _Builder:
    """Walks Lark's tree into dataclasses. Hand-written rather than a Transformer so that positions are explicit."""

    def __init__(self, filename: str | None, text: str):
        self.filename = filename
        self.text = text

    def program(self, tree) -> Program:
        prog = Program()
        for node in tree.children:
            kind = node.data
            loc = _loc_of(node.meta)
            if kind == "network":
                self._once(prog.network_loc, "network", loc)
                prog.network, prog.network_loc = str(node.children[0]), _tok(node.children[0])
            elif kind == "input":
                self._once(prog.input_loc, "input", loc)
                tok = node.children[0]
                prog.input_loc = Location(tok.line, tok.column, tok.end_column)
                dims = tuple(_int(p, prog.input_loc) for p in str(tok).split("x"))
                if not all(1 <= d <= MAX_INPUT_DIM for d in dims):
                    raise SpecError(
                        f"the input size {tok} has a dimension {'of 0' if 0 in dims else f'over {MAX_INPUT_DIM:,}'}",
                        prog.input_loc,
                        hint=f"channels, height and width are each 1 to {MAX_INPUT_DIM:,}: input 3x32x32",
                        code="E013",
                    )
                prog.input = dims  # type: ignore[assignment]
            elif kind == "const":
                name_tok = node.children[0]
                name = str(name_tok)
                self._plain(name, _tok(name_tok), "a constant")
                if name in prog.consts:
                    first = prog.consts[name].loc
                    raise SpecError(
                        f"constant {name!r} is defined twice (first at line {first.line})",
                        _tok(name_tok),
                        hint="remove one definition, or use --set NAME=VALUE to override",
                        code="E010",
                    )
                prog.consts[name] = ConstDef(name, self.expr(node.children[1]), _tok(name_tok))
            elif kind == "block_def":
                b = self.block_def(node)
                if b.name in prog.blocks:
                    raise SpecError(f"block {b.name!r} is defined twice", b.name_loc, code="E010")
                prog.blocks[b.name] = b
            elif kind == "layers":
                self._once(prog.layers_loc, "layers", loc)
                prog.layers, prog.layers_loc = self.items(node.children), loc
            elif kind == "forward":
                self._once(prog.forward_loc, "forward", loc)
                prog.forward, prog.forward_loc = tuple(self.step(c) for c in node.children), loc
            elif kind == "train":
                self._once(prog.train_loc, "train", loc)
                prog.train, prog.train_loc = tuple(self.setting(c) for c in node.children), loc
            else:  # pragma: no cover - the grammar has no other top-level rule
                raise AssertionError(kind)
        return prog

    @staticmethod
    def _once(previous: Location | None, what: str, loc: Location) -> None:
        if previous is not None:
            raise SpecError(
                f"a second `{what}` section (the first is at line {previous.line})",
                Location(loc.line, loc.column, loc.column + len(what)),
                hint="merge the two sections into one",
                code="E010",
            )

    @staticmethod
    def _plain(name: str, loc: Location, what: str) -> None:
        if "{" in name:
            raise SpecError(
                f"{what} name cannot hold a {{...}} template",
                loc,
                hint="templates such as conv{i} name layers, not constants, blocks or variables",
                code="E011",
            )

    def block_def(self, node) -> BlockDef:
        name_tok, *rest = node.children
        name = str(name_tok)
        self._plain(name, _tok(name_tok), "a block")
        params: list[Param] = []
        items = []
        for c in rest:
            if c is None:
                continue
            if getattr(c, "data", None) == "param":
                ptok, default = c.children
                pname = str(ptok)
                self._plain(pname, _tok(ptok), "a parameter")
                if any(p.name == pname for p in params):
                    raise SpecError(f"parameter {pname!r} is listed twice", _tok(ptok), code="E010")
                if default is None and any(p.default is not None for p in params):
                    raise SpecError(
                        f"parameter {pname!r} without a default follows one with a default",
                        _tok(ptok),
                        hint="put parameters with defaults last, as in Python",
                        code="E010",
                    )
                params.append(Param(pname, None if default is None else self.expr(default), _tok(ptok)))
            else:
                items.append(c)
        return BlockDef(name, tuple(params), self.items(items), _loc_of(node.meta), _tok(name_tok))

    def items(self, nodes) -> tuple[Item, ...]:
        return tuple(self.item(n) for n in nodes if n is not None)

    def item(self, node) -> Item:
        kind = node.data
        if kind == "named":
            name_tok, body = node.children
            return Named(Template(str(name_tok), _tok(name_tok)), self.body(body), _loc_of(node.meta))
        if kind == "repeat":
            var, start, _range, stop, *body = node.children
            self._plain(str(var), _tok(var), "a repeat variable")
            return Repeat(str(var), self.expr(start), self.expr(stop), self.items(body), _loc_of(node.meta), _tok(var))
        return self.body(node)

    def body(self, node) -> Call | Composite:
        if node.data == "call":
            return self.call(node)
        loc = _loc_of(node.meta)
        if node.data == "sequential":
            return Composite("Sequential", self.items(node.children), loc)
        if node.data == "residual":
            children = [c for c in node.children]
            shortcut = None
            if children and getattr(children[-1], "data", None) == "shortcut_body":
                shortcut = self.items(children[-1].children)
                children = children[:-1]
            elif children and children[-1] is None:
                children = children[:-1]
            return Composite("Residual", self.items(children), loc, shortcut)
        raise AssertionError(node.data)  # pragma: no cover

    def call(self, node) -> Call:
        name_tok, *args = node.children
        name = str(name_tok)
        self._plain(name, _tok(name_tok), "a layer or block")
        out: list[Arg] = []
        seen_keyword = False
        for a in args:
            if a is None:
                continue
            if a.data == "positional":
                if seen_keyword:
                    raise SpecError(
                        "a positional argument follows a keyword argument",
                        _loc_of(a.meta),
                        hint=f"write positional arguments first, as in Python: {name}(16, kernel_size=3), "
                        f"or name this one",
                        code="E031",
                    )
                out.append(Arg(None, self.expr(a.children[0]), _loc_of(a.meta)))
            else:
                ktok, v = a.children
                seen_keyword = True
                out.append(Arg(str(ktok), self.expr(v), _loc_of(a.meta), _tok(ktok)))
        return Call(name, tuple(out), _loc_of(node.meta), _tok(name_tok))

    def step(self, node):
        kind = node.data
        if kind == "step":
            tok = node.children[0]
            return Step(Template(str(tok), _tok(tok)), _tok(tok))
        if kind == "residual_step":
            tok = node.children[0]
            return Step(Template(str(tok), _tok(tok)), _loc_of(node.meta), residual=True)
        var, start, _range, stop, *body = node.children
        self._plain(str(var), _tok(var), "a repeat variable")
        return Repeat(
            str(var),
            self.expr(start),
            self.expr(stop),
            tuple(self.step(c) for c in body),
            _loc_of(node.meta),
            _tok(var),
        )

    def setting(self, node) -> Setting:
        ktok, v = node.children
        return Setting(str(ktok), self.expr(v), _loc_of(node.meta), _tok(ktok))

    _BINOPS = {"add": "+", "sub": "-", "mul": "*", "floordiv": "//", "truediv": "/", "mod": "%"}

    def expr(self, node) -> Expr:
        import lark

        if isinstance(node, lark.Token):  # pragma: no cover - every terminal is wrapped by an alias
            raise AssertionError(node)
        kind = node.data
        loc = _loc_of(node.meta)
        if kind == "int":
            return Num(_int(str(node.children[0]), loc), loc)
        if kind == "float":
            return Num(float(node.children[0]), loc)
        if kind == "string":
            return Str(str(node.children[0])[1:-1], loc)
        if kind == "true":
            return Const(True, loc)
        if kind == "false":
            return Const(False, loc)
        if kind == "none":
            return Const(None, loc)
        if kind == "ref":
            return Ref(str(node.children[0]), loc)
        if kind == "call":
            return self.call(node)
        if kind in self._BINOPS:
            left, *mid, right = node.children
            op_loc = _span(mid[0]) if mid else None
            return BinOp(self._BINOPS[kind], self.expr(left), self.expr(right), loc, op_loc)
        if kind == "neg":
            return Neg(self.expr(node.children[0]), loc)
        if kind == "tuple":
            return TupleExpr(tuple(self.expr(c) for c in node.children if c is not None), loc)
        if kind == "list":
            return ListExpr(tuple(self.expr(c) for c in node.children if c is not None), loc)
        raise AssertionError(kind)  # pragma: no cover


def _int(text: str, loc: Location) -> int:
    # Python refuses to convert integers of over 4,300 digits; anything past 19 digits is too large here anyway
    if len(text) > 19:
        raise SpecError(f"this integer is too large ({len(text):,} digits)", loc, code="E022")
    return int(text)


def did_you_mean(name: str, choices) -> str | None:
    """A `did you mean 'X'?` hint for a misspelt name (or `'X' or 'Y'` when two are about as close), or None."""
    choices = list(choices)
    lowered = {c.lower(): c for c in choices}
    if name.lower() in lowered and lowered[name.lower()] != name:
        return f"did you mean {lowered[name.lower()]!r}?"
    # a name with letters left out (RandomFlip for RandomHorizontalFlip) is a subsequence of what was meant
    longer = [c for c in choices if len(name) >= 4 and len(c) > len(name) and _subsequence(name.lower(), c.lower())]
    if 1 <= len(longer) <= 2:
        longer.sort(key=lambda c: -difflib.SequenceMatcher(None, name, c).ratio())
        ratios = [difflib.SequenceMatcher(None, name, c).ratio() for c in longer]
        if len(longer) == 2 and ratios[0] - ratios[1] >= 0.1:
            longer = longer[:1]
        return "did you mean " + " or ".join(repr(c) for c in longer) + "?"
    close = difflib.get_close_matches(name, choices, n=2, cutoff=0.6)
    if not close:
        return None
    if len(close) == 2:
        ratio = [difflib.SequenceMatcher(None, name, c).ratio() for c in close]
        if ratio[0] - ratio[1] < 0.1:
            return f"did you mean {close[0]!r} or {close[1]!r}?"
    return f"did you mean {close[0]!r}?"


def _subsequence(short: str, long: str) -> bool:
    it = iter(long)
    return all(ch in it for ch in short)
