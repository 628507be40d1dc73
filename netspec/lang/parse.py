"""Stage 1: text -> syntax tree.

The grammar lives in `grammar.lark`; the parser is built once, lazily (LALR, positions kept), with Lark's tables
cached on disk. Lark's exceptions are turned into `SpecError` here, at the boundary, so no later stage ever sees a
Lark type. A Lark Transformer builds the tree of `syntax` bottom-up, positions from each rule's meta.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple

import lark
from lark import Token, Transformer, v_args

from ..errors import Location, SpecError, UsageError
from .hints import short
from .syntax import (
    Arg,
    BinOp,
    BlockDef,
    Call,
    Composite,
    Const,
    ConstDef,
    Expr,
    Hole,
    Item,
    ListExpr,
    Named,
    Neg,
    Num,
    Param,
    Program,
    Ref,
    Repeat,
    Setting,
    Step,
    Str,
    Template,
    TupleExpr,
)

MAX_SOURCE_CHARS = 1_000_000
MAX_INPUT_DIM = 65_536  # the same limit as the command line's --input
MAX_NESTING = 100


def cache_dir() -> Path:
    """Where Lark keeps the parser's tables: `$NETSPEC_CACHE`, else ~/.cache/netspec."""
    return Path(os.environ.get("NETSPEC_CACHE") or Path.home() / ".cache" / "netspec")


@functools.lru_cache(maxsize=1)
def parser() -> lark.Lark:
    """The LALR parser of `grammar.lark`, with two start rules: `start` (a spec) and `hole` (a name's hole)."""
    text = resources.files("netspec.lang").joinpath("grammar.lark").read_text(encoding="utf-8")
    options: dict[str, Any] = dict(
        parser="lalr", propagate_positions=True, maybe_placeholders=True, start=["start", "hole"]
    )
    # Building the LALR tables takes ~0.3 s; Lark caches them in a file keyed by the grammar, the options and Lark's
    # version. The file lives in our own cache folder (not a shared temp dir), so no other user can plant one.
    key = hashlib.sha256(f"{text}{sorted(options.items())}{lark.__version__}".encode()).hexdigest()[:16]
    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return lark.Lark(text, cache=str(folder / f"grammar-{key}.lark"), **options)
    except OSError:  # a read-only home: build the tables every time
        return lark.Lark(text, **options)


def _check_text(text: str | bytes) -> str:
    if isinstance(text, bytes):
        raw = text
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            # line/column of the first bad byte
            before = raw[: e.start]
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


def read_spec(path: str | os.PathLike[str]) -> tuple[bytes, str]:
    """A spec file's bytes and its name; a UsageError when it cannot be read."""
    p = Path(path)
    try:
        return p.read_bytes(), str(p)
    except FileNotFoundError:
        raise UsageError(f"{p}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{p}: is a directory, not a spec file") from None
    except OSError as e:  # also a name no file can have (too long, say): shown cut to a line
        raise UsageError(f"{short(str(p))}: cannot read ({e.strerror})") from None


def normalize_source(text: str | bytes) -> str:
    """The text as the parser sees it: UTF-8 decoded, BOM dropped, CRLF and CR turned into LF."""
    return _check_text(text).replace("\r\n", "\n").replace("\r", "\n")


def parse(text: str | bytes, filename: str | None = None) -> Program:
    """Parse spec text into a `Program`. Raises `SpecError` (with file, line and column) on any syntax error."""
    try:
        source = normalize_source(text)
    except SpecError as e:
        shown = text if isinstance(text, str) else text.decode("utf-8", "replace")
        raise e.attach(filename, shown.replace("\r\n", "\n").replace("\r", "\n")) from None
    try:
        _check_nesting(source)
        return _parse(source)
    except SpecError as e:
        raise e.attach(filename, source) from None
    except RecursionError:
        raise SpecError("the spec is nested too deeply", Location(1, 1), code="E004").attach(filename, source) from None


def _parse(text: str) -> Program:
    try:
        tree = parser().parse(text, start="start")
    except lark.UnexpectedInput as err:
        from .syntax_errors import syntax_error  # imported only for a spec with a mistake

        raise syntax_error(err, text) from None
    program: Program = _transform(_Builder(), tree)
    return program


def _transform(builder: _Builder, tree: lark.Tree[lark.Token]) -> Any:
    """Run the builder; a SpecError (or a RecursionError) raised inside it comes out as itself, not as Lark's
    VisitError wrapper."""
    try:
        return builder.transform(tree)
    except lark.exceptions.VisitError as e:
        if isinstance(e.orig_exc, (SpecError, RecursionError)):
            raise e.orig_exc from None
        raise


_NESTING = re.compile(r"#[^\n]*|'[^'\n]*'|\"[^\"\n]*\"|[\[\](){}\n]")


def _check_nesting(text: str) -> None:
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
                )
        elif tok in ")]}":
            depth = max(0, depth - 1)


def _location(where: Any, line_shift: int = 0, column_shift: int = 0) -> Location:
    """The Location of a Lark token or a rule's meta; the end column is kept when it is on the same line."""
    line = getattr(where, "line", None) or 1
    col = getattr(where, "column", None) or 1
    end_line = getattr(where, "end_line", None)
    end_col = getattr(where, "end_column", None)
    if end_line != line or end_col is None:
        return Location(line + line_shift, col + column_shift)
    return Location(line + line_shift, col + column_shift, end_col + column_shift)


def _int(text: str, loc: Location) -> int:
    # Python refuses to convert integers of over 4,300 digits; anything past 19 digits is too large here anyway
    if len(text) > 19:
        raise SpecError(f"this integer is too large ({len(text):,} digits)", loc, code="E022")
    return int(text)


def _plain(name: str, loc: Location, what: str) -> None:
    if "{" in name:
        raise SpecError(
            f"{what} name cannot hold a {{...}} template",
            loc,
            hint="templates such as conv{i} name layers, not constants, blocks or variables",
            code="E011",
        )


# ---------------------------------------------------------------------------------------------------------------
# Builder: Lark's tree -> the dataclasses above
# ---------------------------------------------------------------------------------------------------------------


class _Section(NamedTuple):
    """A top-level statement, on its way into the Program."""

    kind: str  # "network", "input", "const", "block", "layers", "forward", "train"
    value: Any
    at: Location  # what the Program records as the section's place
    loc: Location  # the whole statement


class _Shortcut(NamedTuple):
    items: tuple[Item, ...]


_HOLE = re.compile(r"\{([^{}]*)\}")
_BINOPS = {"add": "+", "sub": "-", "mul": "*", "floordiv": "//", "truediv": "/", "mod": "%"}


@v_args(meta=True)
class _Builder(Transformer[Token, Any]):
    """Lark's tree -> dataclasses, bottom-up. Positions come from each rule's meta; `line_shift` and
    `column_shift` place the tree of a name's hole, parsed on its own, where the hole is in the file."""

    def __init__(self, line_shift: int = 0, column_shift: int = 0):
        super().__init__()
        self.line_shift, self.column_shift = line_shift, column_shift

    def _loc(self, where: Any) -> Location:
        return _location(where, self.line_shift, self.column_shift)

    # ---- the file and its sections ------------------------------------------------------------------------
    def start(self, meta: Any, children: list[_Section]) -> Program:
        return _program(children)

    def network(self, meta: Any, children: list[Token]) -> _Section:
        return _Section("network", str(children[0]), self._loc(children[0]), self._loc(meta))

    def input(self, meta: Any, children: list[Token]) -> _Section:
        tok = children[0]
        at = self._loc(tok)
        dims = tuple(_int(p, at) for p in str(tok).split("x"))
        if not all(1 <= d <= MAX_INPUT_DIM for d in dims):
            raise SpecError(
                f"the input size {tok} has a dimension {'of 0' if 0 in dims else f'over {MAX_INPUT_DIM:,}'}",
                at,
                hint=f"channels, height and width are each 1 to {MAX_INPUT_DIM:,}: input 3x32x32",
                code="E013",
            )
        return _Section("input", dims, at, self._loc(meta))

    def const(self, meta: Any, children: list[Any]) -> _Section:
        name_tok, value = children
        at = self._loc(name_tok)
        _plain(str(name_tok), at, "a constant")
        return _Section("const", ConstDef(str(name_tok), value, at), at, self._loc(meta))

    def block_def(self, meta: Any, children: list[Any]) -> _Section:
        name_tok, *rest = children
        name_loc = self._loc(name_tok)
        _plain(str(name_tok), name_loc, "a block")
        params = tuple(c for c in rest if isinstance(c, Param))
        _check_params(params)
        items = tuple(c for c in rest if c is not None and not isinstance(c, Param))
        block = BlockDef(str(name_tok), params, items, self._loc(meta), name_loc)
        return _Section("block", block, name_loc, self._loc(meta))

    def param(self, meta: Any, children: list[Any]) -> Param:
        tok, default = children
        _plain(str(tok), self._loc(tok), "a parameter")
        return Param(str(tok), default, self._loc(tok))

    def layers(self, meta: Any, children: list[Any]) -> _Section:
        loc = self._loc(meta)
        return _Section("layers", _items(children), loc, loc)

    def forward(self, meta: Any, children: list[Any]) -> _Section:
        loc = self._loc(meta)
        return _Section("forward", tuple(children), loc, loc)

    def train(self, meta: Any, children: list[Setting]) -> _Section:
        loc = self._loc(meta)
        return _Section("train", tuple(children), loc, loc)

    def setting(self, meta: Any, children: list[Any]) -> Setting:
        key, value = children
        return Setting(str(key), value, self._loc(meta), self._loc(key))

    # ---- layers ---------------------------------------------------------------------------------------------
    def named(self, meta: Any, children: list[Any]) -> Named:
        name_tok, body = children
        return Named(self._template(name_tok), body, self._loc(meta))

    def sequential(self, meta: Any, children: list[Any]) -> Composite:
        return Composite("Sequential", _items(children), self._loc(meta))

    def residual(self, meta: Any, children: list[Any]) -> Composite:
        shortcut = children[-1].items if children and isinstance(children[-1], _Shortcut) else None
        body = [c for c in children if not isinstance(c, _Shortcut)]
        return Composite("Residual", _items(body), self._loc(meta), shortcut)

    def shortcut_body(self, meta: Any, children: list[Any]) -> _Shortcut:
        return _Shortcut(_items(children))

    def repeat(self, meta: Any, children: list[Any]) -> Repeat:
        var, start, _range, stop, *body = children
        _plain(str(var), self._loc(var), "a repeat variable")
        return Repeat(str(var), start, stop, _items(body), self._loc(meta), self._loc(var))

    def call(self, meta: Any, children: list[Any]) -> Call:
        name_tok, *args = children
        name = str(name_tok)
        _plain(name, self._loc(name_tok), "a layer or block")
        seen_keyword = False
        for a in args:
            if a is None:
                continue
            if a.name is None and seen_keyword:
                raise SpecError(
                    "a positional argument follows a keyword argument",
                    a.loc,
                    hint=f"write positional arguments first, as in Python: {name}(16, kernel_size=3), or name this one",
                    code="E031",
                )
            seen_keyword = seen_keyword or a.name is not None
        present = tuple(a for a in args if a is not None)
        return Call(name, present, self._loc(meta), self._loc(name_tok))

    def positional(self, meta: Any, children: list[Any]) -> Arg:
        return Arg(None, children[0], self._loc(meta))

    def keyword(self, meta: Any, children: list[Any]) -> Arg:
        key, value = children
        return Arg(str(key), value, self._loc(meta), self._loc(key))

    # ---- forward ------------------------------------------------------------------------------------------
    def step(self, meta: Any, children: list[Token]) -> Step:
        tok = children[0]
        return Step(self._template(tok), self._loc(tok))

    def residual_step(self, meta: Any, children: list[Token]) -> Step:
        return Step(self._template(children[0]), self._loc(meta), residual=True)

    def repeat_steps(self, meta: Any, children: list[Any]) -> Repeat:
        return self.repeat(meta, children)

    # ---- values -------------------------------------------------------------------------------------------
    def integer(self, meta: Any, children: list[Token]) -> Num:
        loc = self._loc(meta)
        return Num(_int(str(children[0]), loc), loc)

    def decimal(self, meta: Any, children: list[Token]) -> Num:
        return Num(float(children[0]), self._loc(meta))

    def string(self, meta: Any, children: list[Token]) -> Str:
        return Str(str(children[0])[1:-1], self._loc(meta))

    def true(self, meta: Any, children: list[Token]) -> Const:
        return Const(True, self._loc(meta))

    def false(self, meta: Any, children: list[Token]) -> Const:
        return Const(False, self._loc(meta))

    def none(self, meta: Any, children: list[Token]) -> Const:
        return Const(None, self._loc(meta))

    def ref(self, meta: Any, children: list[Token]) -> Ref:
        return Ref(str(children[0]), self._loc(meta))

    def neg(self, meta: Any, children: list[Any]) -> Neg:
        return Neg(children[0], self._loc(meta))

    def tuple_expr(self, meta: Any, children: list[Any]) -> TupleExpr:
        return TupleExpr(_present(children), self._loc(meta))

    def list_expr(self, meta: Any, children: list[Any]) -> ListExpr:
        return ListExpr(_present(children), self._loc(meta))

    def __default__(self, data: Any, children: list[Any], meta: Any) -> Any:
        if data in _BINOPS:  # add, sub, ...: `left op right`, the token kept only for '/'
            left, *op, right = children
            return BinOp(_BINOPS[data], left, right, self._loc(meta), self._loc(op[0]) if op else None)
        if data == "hole":
            return children[0]
        raise AssertionError(data)  # pragma: no cover - every rule has its method

    # ---- name templates -----------------------------------------------------------------------------------
    def _template(self, tok: Token) -> Template:
        """A name and the expressions of its holes, each parsed from the grammar's `hole` rule."""
        text, loc = str(tok), self._loc(tok)
        parts: list[str | Hole] = []
        at = 0
        for m in _HOLE.finditer(text):
            if m.start() > at:
                parts.append(text[at : m.start()])
            parts.append(Hole(m.group(1), _hole(m.group(1), loc, column=loc.column + m.start(1))))
            at = m.end()
        if at < len(text) or not parts:
            parts.append(text[at:])
        return Template(text, loc, tuple(parts))


def _hole(text: str, template: Location, column: int) -> Expr:
    """The expression of one `{...}` hole, parsed on its own and placed at its column in the file."""
    try:
        tree = parser().parse(text, start="hole")
    except lark.UnexpectedInput:
        raise SpecError(
            f"cannot read {{{text}}} in the name template",
            template,
            hint="holes hold names and integers joined by + - *",
            code="E040",
        ) from None
    expr: Expr = _transform(_Builder(template.line - 1, column - 1), tree)
    return expr


def _present(children: list[Any]) -> tuple[Any, ...]:
    return tuple(c for c in children if c is not None)


def _items(children: list[Any]) -> tuple[Item, ...]:
    return tuple(c for c in children if c is not None)


def _check_params(params: tuple[Param, ...]) -> None:
    for i, p in enumerate(params):
        if any(q.name == p.name for q in params[:i]):
            raise SpecError(f"parameter {p.name!r} is listed twice", p.loc, code="E010")
        if p.default is None and any(q.default is not None for q in params[:i]):
            raise SpecError(
                f"parameter {p.name!r} without a default follows one with a default",
                p.loc,
                hint="put parameters with defaults last, as in Python",
                code="E010",
            )


def _program(sections: list[_Section]) -> Program:
    """The top-level statements in one Program: constants and blocks by name, each section at most once."""
    consts: dict[str, ConstDef] = {}
    blocks: dict[str, BlockDef] = {}
    once: dict[str, _Section] = {}
    for s in sections:
        if s.kind == "const":
            if s.value.name in consts:
                raise SpecError(
                    f"constant {s.value.name!r} is defined twice (first at line {consts[s.value.name].loc.line})",
                    s.at,
                    hint="remove one definition, or use --set NAME=VALUE to override",
                    code="E010",
                )
            consts[s.value.name] = s.value
        elif s.kind == "block":
            if s.value.name in blocks:
                raise SpecError(f"block {s.value.name!r} is defined twice", s.at, code="E010")
            blocks[s.value.name] = s.value
        else:
            if s.kind in once:
                raise SpecError(
                    f"a second `{s.kind}` section (the first is at line {once[s.kind].at.line})",
                    Location(s.loc.line, s.loc.column, s.loc.column + len(s.kind)),
                    hint="merge the two sections into one",
                    code="E010",
                )
            once[s.kind] = s
    fields: dict[str, Any] = {}
    for kind, s in once.items():
        fields[kind], fields[f"{kind}_loc"] = s.value, s.at
    return Program(consts=consts, blocks=blocks, **fields)
