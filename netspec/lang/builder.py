"""Lark's parse tree -> the syntax tree of `syntax`, bottom-up: positions from each rule's meta, name holes parsed
from the grammar's second start rule, the top-level statements gathered into one `Program`."""

from __future__ import annotations

import re
from typing import Any, NamedTuple

import lark
from lark import Token, Transformer, v_args

from ..errors import Location, SpecError
from .grammar import parser
from .syntax import (
    Arg,
    Assign,
    BinOp,
    BlockDef,
    Call,
    Composite,
    Const,
    ConstDef,
    Expr,
    Flow,
    Hole,
    IfItems,
    IfStmts,
    Index,
    Item,
    Kept,
    ListExpr,
    ModuleDef,
    Named,
    Neg,
    Not,
    Num,
    Param,
    Program,
    Ref,
    Repeat,
    Return,
    Setting,
    Step,
    Str,
    Template,
    TupleExpr,
)

MAX_INPUT_DIM = 65_536  # the same limit as the command line's --input


def transform(builder: Builder, tree: lark.Tree[lark.Token]) -> Any:
    """Run the builder; a SpecError (or a RecursionError) raised inside it comes out as itself, not as Lark's
    VisitError wrapper."""
    try:
        return builder.transform(tree)
    except lark.exceptions.VisitError as e:
        if isinstance(e.orig_exc, (SpecError, RecursionError)):
            raise e.orig_exc from None
        raise


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


class _Else(NamedTuple):
    """The `else { ... }` of an `if` (an `else if` is one IfItems or IfStmts), on its way into its `if`."""

    items: tuple[Any, ...]


_HOLE = re.compile(r"\{([^{}]*)\}")
_BINOPS = {"add": "+", "sub": "-", "mul": "*", "floordiv": "//", "truediv": "/", "mod": "%"}


@v_args(meta=True)
class Builder(Transformer[Token, Any]):
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

    def module_def(self, meta: Any, children: list[Any]) -> _Section:
        name_tok, *rest = children
        name_loc = self._loc(name_tok)
        _plain(str(name_tok), name_loc, "a module")
        params = tuple(c for c in rest if isinstance(c, Param))
        _check_params(params)
        flows = [c.value for c in rest if isinstance(c, _Section) and c.kind == "flow"]
        if len(flows) > 1:
            raise SpecError(
                f"module {name_tok} has a second forward (the first is at line {flows[0].loc.line})",
                flows[1].loc,
                hint="a module has one run order",
                code="E010",
            )
        items = tuple(
            c.value if isinstance(c, _Section) else c
            for c in rest
            if c is not None and not isinstance(c, Param) and not (isinstance(c, _Section) and c.kind == "flow")
        )
        module = ModuleDef(str(name_tok), params, items, flows[0] if flows else None, self._loc(meta), name_loc)
        return _Section("module", module, name_loc, self._loc(meta))

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

    def if_items(self, meta: Any, children: list[Any]) -> IfItems:
        cond, *body = children
        orelse = body.pop() if body and isinstance(body[-1], _Else) else _Else(())
        return IfItems(cond, _items(body), orelse.items, self._loc(meta))

    def else_items(self, meta: Any, children: list[Any]) -> _Else:
        return _Else(_items(children))

    def kept(self, meta: Any, children: list[Any]) -> Kept:
        size, named = children
        dims = None
        if size is not None:
            at = self._loc(size)
            dims = tuple(_int(d, at) for d in str(size).split("x"))
            if not all(1 <= d <= MAX_INPUT_DIM for d in dims):
                raise SpecError(f"the input size {size} has a dimension out of range", at, code="E013")
        return Kept(named, self._loc(meta), dims)  # type: ignore[arg-type]

    def repeat(self, meta: Any, children: list[Any]) -> Repeat:
        var, start, _range, stop, *body = children
        _plain(str(var), self._loc(var), "a repeat variable")
        return Repeat(str(var), start, stop, _items(body), self._loc(meta), self._loc(var))

    def call(self, meta: Any, children: list[Any]) -> Call:
        name_tok, *args = children
        name = str(name_tok)
        template = self._template(name_tok) if "{" in name else None  # allowed only where a forward calls a child
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
        return Call(name, present, self._loc(meta), self._loc(name_tok), template)

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

    # ---- forward(x) { ... }: a run order over named values -----------------------------------------------
    def flow(self, meta: Any, children: list[Any]) -> _Section:
        name_tok, *stmts = children
        _plain(str(name_tok), self._loc(name_tok), "an input")
        loc = self._loc(meta)
        return _Section("flow", Flow(str(name_tok), _present(stmts), loc, self._loc(name_tok)), loc, loc)

    def assign(self, meta: Any, children: list[Any]) -> Assign:
        *targets, value = children
        for t in targets:
            _plain(str(t), self._loc(t), "a value")
        return Assign(tuple(str(t) for t in targets), value, self._loc(meta), tuple(self._loc(t) for t in targets))

    def return_stmt(self, meta: Any, children: list[Any]) -> Return:
        return Return(children[0], self._loc(meta))

    def if_stmts(self, meta: Any, children: list[Any]) -> IfStmts:
        cond, *body = children
        orelse = body.pop() if body and isinstance(body[-1], _Else) else _Else(())
        return IfStmts(cond, _items(body), orelse.items, self._loc(meta))

    def else_stmts(self, meta: Any, children: list[Any]) -> _Else:
        return _Else(_items(children))

    def repeat_stmts_flow(self, meta: Any, children: list[Any]) -> Repeat:
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

    def not_(self, meta: Any, children: list[Any]) -> Not:
        return Not(children[0], self._loc(meta))

    def compare(self, meta: Any, children: list[Any]) -> BinOp:
        left, op, right = children
        return BinOp(str(op), left, right, self._loc(meta), self._loc(op))

    def and_(self, meta: Any, children: list[Any]) -> BinOp:
        return BinOp("and", children[0], children[1], self._loc(meta))

    def or_(self, meta: Any, children: list[Any]) -> BinOp:
        return BinOp("or", children[0], children[1], self._loc(meta))

    def index(self, meta: Any, children: list[Any]) -> Index:
        target, index = children
        return Index(target, index, self._loc(meta))

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
    expr: Expr = transform(Builder(template.line - 1, column - 1), tree)
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
    modules: dict[str, ModuleDef] = {}
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
        elif s.kind in ("block", "module"):
            if s.value.name in blocks or s.value.name in modules:
                raise SpecError(f"{s.kind} {s.value.name!r} is defined twice", s.at, code="E010")
            (blocks if s.kind == "block" else modules)[s.value.name] = s.value
        else:
            section = "forward" if s.kind == "flow" else s.kind  # `forward { }` and `forward(x) { }` are one section
            if section in once:
                raise SpecError(
                    f"a second `{section}` section (the first is at line {once[section].at.line})",
                    Location(s.loc.line, s.loc.column, s.loc.column + len(section)),
                    hint="merge the two sections into one",
                    code="E010",
                )
            once[section] = s
    fields: dict[str, Any] = {}
    for s in once.values():
        fields[s.kind], fields[f"{s.kind}_loc"] = s.value, s.at
    return Program(consts=consts, blocks=blocks, modules=modules, **fields)
