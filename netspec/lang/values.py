"""Values: the names in scope, the spec's constants, and the evaluation of expressions.

An expression is arithmetic over constants, block and module parameters and repeat variables (`//` and `%` on
integers, `/` giving a float), an item of a tuple or list (`layers[0]`), comparisons, `and`/`or`/`not`, the closed
set of pure functions in `functions.py`, and the literals PyTorch layers take (numbers, strings, booleans, None,
tuples, lists, calls). It is evaluated here by netspec's own code, never by Python's `eval`; every result is checked
against `MAX_INT`, so sizes stay far from overflow downstream.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ..errors import Location, SpecError, UsageError
from .functions import PURE_FUNCTIONS, PURE_SIGNATURES
from .hints import did_you_mean, few, short
from .layers import LAYERS
from .parse import parse
from .syntax import (
    BinOp,
    Call,
    Const,
    ConstDef,
    Expr,
    Index,
    ListExpr,
    Neg,
    Not,
    Num,
    Ref,
    Str,
    Template,
    TupleExpr,
)
from .train_section import OPTIMIZERS, SCHEDULES, TRANSFORMS
from .validate import CallValue, Symbol, type_name

MAX_STRING = 10_000  # characters of a string built with +
MAX_INT = 2**62  # arithmetic stays far from overflow everywhere downstream


class Scope:
    """Names visible while expanding: repeat variables and block parameters over the spec's constants."""

    def __init__(self, values: dict[str, Any], parent: Scope | None = None):
        self.values = values
        self.parent = parent

    def lookup(self, name: str) -> tuple[bool, Any]:
        scope: Scope | None = self
        while scope is not None:
            if name in scope.values:
                return True, scope.values[name]
            scope = scope.parent
        return False, None

    def names(self) -> list[str]:
        out: list[str] = []
        scope: Scope | None = self
        while scope is not None:
            out.extend(scope.values)
            scope = scope.parent
        return out


# a constant may hold a train setting (`opt = SGD(lr=0.1)`), but no other call
_CALLS_IN_CONSTANTS = frozenset({*OPTIMIZERS, *SCHEDULES, *TRANSFORMS, "Normalize"})


class Constants(Scope):
    """The top-level constants, evaluated lazily so they may be written in any order; cycles are errors."""

    def __init__(self, defs: dict[str, ConstDef], overrides: dict[str, Any]):
        super().__init__({})
        self.defs = defs
        self.overrides = overrides
        self._evaluating: list[str] = []

    def lookup(self, name: str) -> tuple[bool, Any]:
        if name in self.values:
            return True, self.values[name]
        if name in self.overrides:
            self.values[name] = self.overrides[name]
            return True, self.values[name]
        if name not in self.defs:
            return False, None
        if name in self._evaluating:
            cycle = " -> ".join(self._evaluating[self._evaluating.index(name) :] + [name])
            raise SpecError(
                f"constant {name!r} depends on itself ({cycle})",
                self.defs[name].loc,
                hint="give one of these constants a plain value",
                code="E021",
            )
        self._evaluating.append(name)
        try:
            value = value_of(self.defs[name].value, self)
        finally:
            self._evaluating.pop()
        _check_calls(name, value)
        self.values[name] = value
        return True, value

    def names(self) -> list[str]:
        return list(self.defs) + list(self.overrides)

    def all(self) -> dict[str, Any]:
        """Every constant's value, in the order written (then the overrides the spec does not define)."""
        return {
            name: self.lookup(name)[1] for name in list(self.defs) + [n for n in self.overrides if n not in self.defs]
        }


def _check_calls(name: str, value: Any) -> None:
    """A call in a constant is refused here, even when nothing uses the constant, unless it is a train setting."""
    if isinstance(value, CallValue):
        calls = [value]
    elif isinstance(value, (tuple, list)):
        calls = [v for v in value if isinstance(v, CallValue)]
    else:
        calls = []
    for call in calls:
        if call.name not in _CALLS_IN_CONSTANTS:
            raise SpecError(
                f"constant {name!r} holds a call of {call.name!r}; constants are numbers, strings, "
                f"booleans, None, tuples, or an optimizer, schedule or transform",
                call.name_loc,
                hint="a spec is data: nothing in it is run; layers are written in `layers`",
                code="E023",
            )


def _number(v: Any, loc: Location, op: str) -> int | float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise SpecError(f"'{op}' needs numbers, not {type_name(v)}", loc, code="E022")
    return v


def _plain_int(value: Any, expr: Expr) -> bool:
    """An integer written as digits (the `10` of `cifar-10`), not computed."""
    return isinstance(expr, Num) and isinstance(value, int) and not isinstance(value, bool)


def value_of(expr: Expr, scope: Scope, *, symbols: bool = False) -> Any:
    """The value of an expression: int, float, str, bool, None, tuple, list or CallValue (and, with `symbols`, a
    Symbol for a bare word that names nothing)."""
    if isinstance(expr, Num):
        if isinstance(expr.value, int) and abs(expr.value) > MAX_INT:
            raise SpecError("this integer is too large", expr.loc, code="E022")
        return expr.value
    if isinstance(expr, (Str, Const)):
        return expr.value
    if isinstance(expr, Ref):
        return _ref(expr, scope, symbols)
    if isinstance(expr, Neg):
        return -_number(value_of(expr.operand, scope), expr.loc, "-")
    if isinstance(expr, Not):
        return not _truth(value_of(expr.operand, scope), expr.operand.loc, "not")
    if isinstance(expr, BinOp) and expr.op in ("and", "or"):
        left = _truth(value_of(expr.left, scope), expr.left.loc, expr.op)
        if left == (expr.op == "or"):  # Python's short circuit: the right side is not evaluated
            return left
        return _truth(value_of(expr.right, scope), expr.right.loc, expr.op)
    if isinstance(expr, BinOp):
        return _binop(expr, value_of(expr.left, scope, symbols=symbols), value_of(expr.right, scope, symbols=symbols))
    if isinstance(expr, TupleExpr):
        return tuple(value_of(e, scope, symbols=symbols) for e in expr.items)
    if isinstance(expr, ListExpr):
        return [value_of(e, scope, symbols=symbols) for e in expr.items]
    if isinstance(expr, Index):
        return _item(expr, value_of(expr.target, scope), value_of(expr.index, scope))
    if isinstance(expr, Call):
        return _call(expr, scope, symbols)
    raise AssertionError(expr)  # pragma: no cover


def _ref(expr: Ref, scope: Scope, symbols: bool) -> Any:
    found, value = scope.lookup(expr.name)
    if found:
        return value
    if symbols:
        return Symbol(expr.name, expr.loc)
    hint = did_you_mean(expr.name, scope.names())
    if hint is None and expr.name in LAYERS:
        hint = f"a layer is called with parentheses: {expr.name}()"
    raise SpecError(
        f"undefined name {expr.name!r}",
        expr.loc,
        hint=hint or "define it at the top level: `name = value`, or pass --set NAME=VALUE",
        code="E020",
    )


def _item(expr: Index, seq: Any, i: Any) -> Any:
    """`seq[i]`, as in Python (a negative index counts from the end), for a tuple or list only."""
    what = expr.target.name if isinstance(expr.target, Ref) else None
    if not isinstance(seq, (tuple, list)):
        raise SpecError(
            f"only a tuple or list has items; {what or 'this'} is {type_name(seq)}",
            expr.target.loc,
            hint="index a tuple: depths = (2, 2, 2, 2), then depths[0]",
            code="E022",
        )
    if isinstance(i, bool) or not isinstance(i, int):
        raise SpecError(f"an index must be an integer, not {type_name(i)}", expr.index.loc, code="E022")
    if not -len(seq) <= i < len(seq):
        raise SpecError(
            f"index {i} is out of range: {what or 'the ' + type_name(seq)[2:]} has {len(seq)} "
            f"item{'s' if len(seq) != 1 else ''}",
            expr.index.loc,
            hint=f"items count from 0: the first is [0], the last [{len(seq) - 1}]" if seq else None,
            code="E022",
        )
    return seq[i]


def _call(expr: Call, scope: Scope, symbols: bool) -> Any:
    if expr.template is not None:
        raise SpecError(
            "a layer, block or module name cannot hold a {...} template",
            expr.name_loc,
            hint="templates such as conv{i} name layers, and call them in a forward: conv{i}(x)",
            code="E011",
        )
    if expr.name in PURE_FUNCTIONS:
        return _pure(expr, scope)
    args = []
    kwargs = []
    for a in expr.args:
        v = value_of(a.value, scope, symbols=symbols)
        if a.name is None:
            args.append((v, a.loc))
        else:
            kwargs.append((a.name, v, a.name_loc or a.loc, a.loc))
    return CallValue(expr.name, tuple(args), tuple(kwargs), expr.loc, expr.name_loc)


def condition(expr: Expr, scope: Scope) -> bool:
    """The value of an `if`'s condition, which must be true or false."""
    value = value_of(expr, scope)
    if not isinstance(value, bool):
        raise SpecError(
            f"a condition must be true or false, not {type_name(value)}",
            expr.loc,
            hint="compare to make one: stride == 1, width != 64",
            code="E058",
        )
    return value


def _truth(v: Any, loc: Location, op: str) -> bool:
    if not isinstance(v, bool):
        raise SpecError(
            f"'{op}' needs true or false, not {type_name(v)}",
            loc,
            hint="compare to make a condition: width == 64, stride != 1",
            code="E022",
        )
    return v


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "==": lambda a, b: bool(a == b),
    "!=": lambda a, b: bool(a != b),
    "<": lambda a, b: bool(a < b),
    "<=": lambda a, b: bool(a <= b),
    ">": lambda a, b: bool(a > b),
    ">=": lambda a, b: bool(a >= b),
}


def _compare(expr: BinOp, a: Any, b: Any) -> bool:
    if expr.op in ("==", "!="):
        return _COMPARE[expr.op](a, b)
    if isinstance(a, str) and isinstance(b, str):
        return _COMPARE[expr.op](a, b)
    return _COMPARE[expr.op](_number(a, expr.left.loc, expr.op), _number(b, expr.right.loc, expr.op))


def _binop(expr: BinOp, a: Any, b: Any) -> Any:
    op = expr.op
    if isinstance(a, Symbol) or isinstance(b, Symbol):
        return _symbol_op(expr, a, b)
    if op in _COMPARE:
        return _compare(expr, a, b)
    if op == "+" and isinstance(a, str) and isinstance(b, str):
        if len(a) + len(b) > MAX_STRING:
            raise SpecError(
                f"this string would be {len(a) + len(b):,} characters long; the limit is {MAX_STRING:,}",
                expr.loc,
                code="E022",
            )
        return a + b
    x = _number(a, expr.left.loc, op)
    y = _number(b, expr.right.loc, op)
    result: int | float
    if op in ("//", "%"):
        if not (isinstance(x, int) and isinstance(y, int)):
            raise SpecError(f"'{op}' needs integers", expr.loc, code="E022")
        if y == 0:
            what = f"{expr.right.name} is 0" if isinstance(expr.right, Ref) else None
            raise SpecError("division by zero" + (f": {what}" if what else ""), expr.right.loc, code="E022")
        result = x // y if op == "//" else x % y
    elif op == "/":
        if y == 0:
            what = f"{expr.right.name} is 0" if isinstance(expr.right, Ref) else None
            raise SpecError("division by zero" + (f": {what}" if what else ""), expr.right.loc, code="E022")
        result = x / y  # a float, as in Python: sizes are integers, so `//` (or round, ceil) makes them
    elif op == "+":
        result = x + y
    elif op == "-":
        result = x - y
    else:
        result = x * y
    if isinstance(result, int) and abs(result) > MAX_INT:
        raise SpecError("this value is too large", expr.loc, code="E022")
    return result


def _symbol_op(expr: BinOp, a: Any, b: Any) -> Symbol:
    # a hyphenated bare word such as `data tiny-imagenet` reads as a subtraction: join it back
    # (and `cifar-10`, `tiny-imagenet-200`: a word, a hyphen and a number)
    if expr.op == "-" and isinstance(a, Symbol) and (isinstance(b, Symbol) or _plain_int(b, expr.right)):
        return Symbol(f"{a.name}-{getattr(b, 'name', b)}", expr.loc)
    bad = a if isinstance(a, Symbol) else b
    raise SpecError(f"undefined name {bad.name!r}", bad.loc, code="E020")


def _pure(expr: Call, scope: Scope) -> Any:
    fn, least, most = PURE_FUNCTIONS[expr.name]
    if any(a.name is not None for a in expr.args):
        named = next(a for a in expr.args if a.name is not None)
        raise SpecError(
            f"{expr.name}() takes its arguments by position",
            named.name_loc or named.loc,
            hint=PURE_SIGNATURES[expr.name],
            code="E025",
        )
    values = [value_of(a.value, scope) for a in expr.args]
    if len(values) < least or (most is not None and len(values) > most):
        count = f"{least}" if least == most else f"{least} or more" if most is None else f"{least} to {most}"
        raise SpecError(
            f"{expr.name}() takes {count} arguments, got {len(values)}",
            expr.loc,
            hint=PURE_SIGNATURES[expr.name],
            code="E025",
        )
    for v, a in zip(values, expr.args):
        _number(v, a.loc, expr.name)
    result = fn(*values)
    if isinstance(result, int) and abs(result) > MAX_INT:
        raise SpecError("this value is too large", expr.loc, code="E022")
    return result


# ---- name templates ----------------------------------------------------------------------------------------
_VALID_NAME = re.compile(r"^[A-Za-z0-9_]+(?:-[A-Za-z0-9_]+)*$")  # '-' as written in a name: RegNet's block1-0
_HOLE_TEXT = re.compile(r"^[A-Za-z0-9_]+$")


def render_name(t: Template, scope: Scope) -> str:
    """Fill the `{expr}` holes of a name template (`conv{id}`, `resblock{s}_{i+1}`)."""
    parts = []
    bad = False
    for part in t.parts:
        if isinstance(part, str):
            parts.append(part)
            continue
        for ref in _refs(part.value):
            if not scope.lookup(ref.name)[0]:
                names = scope.names()
                raise SpecError(
                    f"undefined name {ref.name!r} in the name template",
                    t.loc,
                    hint=did_you_mean(ref.name, names)
                    or "holes use block parameters, repeat variables and constants"
                    + (f"; here: {few(names)}" if names else ""),
                    code="E020",
                )
        value = value_of(part.value, scope)
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise SpecError(
                f"{{{part.text}}} in the name {t.text!r} is {type_name(value)}; names hold integers and strings",
                t.loc,
                code="E040",
            )
        parts.append(str(value))
        bad = not _HOLE_TEXT.match(parts[-1])  # a hole gives letters, digits and '_': conv{i-2} is not conv-1
    name = "".join(parts)
    if bad or not _VALID_NAME.match(name):
        raise SpecError(
            f"the name {t.text!r} becomes {name!r}, which is not a valid module name",
            t.loc,
            hint="names hold letters, digits and '_'",
            code="E040",
        )
    return name


def _refs(expr: Expr) -> Iterator[Ref]:
    """The names an expression uses, in the order written."""
    if isinstance(expr, Ref):
        yield expr
    elif isinstance(expr, BinOp):
        yield from _refs(expr.left)
        yield from _refs(expr.right)
    elif isinstance(expr, (Neg, Not)):
        yield from _refs(expr.operand)
    elif isinstance(expr, Index):
        yield from _refs(expr.target)
        yield from _refs(expr.index)
    elif isinstance(expr, (TupleExpr, ListExpr)):
        for item in expr.items:
            yield from _refs(item)
    elif isinstance(expr, Call):
        for arg in expr.args:
            yield from _refs(arg.value)


# ---- values from the command line ------------------------------------------------------------------------------
def parse_size(text: str) -> tuple[int, int, int]:
    """'3x32x32' -> (3, 32, 32); a UsageError for anything else (the CLI's --input)."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not m:
        raise UsageError(f"--input {text!r}: expected CxHxW, e.g. 3x32x32")
    c, h, w = (int(g) for g in m.groups())
    if min(c, h, w) < 1:
        raise UsageError(f"--input {text!r}: every dimension must be at least 1")
    if max(c, h, w) > 65536:
        raise UsageError(f"--input {text!r}: dimensions over 65,536 are not supported")
    return c, h, w


def input_size(value: str | Sequence[int] | None) -> tuple[int, int, int] | None:
    """An input size given as "CxHxW" or (C, H, W), checked; None stays None (the spec's own)."""
    if value is None:
        return None
    if isinstance(value, str):
        return parse_size(value)
    dims = tuple(int(v) for v in value)
    if len(dims) != 3:
        raise UsageError(f"input {value!r}: expected (C, H, W)")
    return parse_size("x".join(map(str, dims)))


def parse_override(text: str) -> tuple[str, Any]:
    """'classes=100' -> ('classes', 100); the value is read as a spec value (numbers, strings, tuples, ...)."""
    if "=" not in text:
        raise UsageError(f"--set {short(text)}: expected NAME=VALUE, e.g. --set classes=100")
    name, _, value_text = text.partition("=")
    name = name.strip()
    if not re.fullmatch(r"[A-Za-z_]\w*", name):
        raise UsageError(f"--set {short(text)}: {name!r} is not a constant name")
    try:
        prog = parse(f"{name} = {value_text}\n")
        value = value_of(prog.consts[name].value, Constants({}, {}))
    except SpecError as e:
        raise UsageError(f"--set {short(text)}: cannot read the value ({e.message})") from None
    if isinstance(value, (CallValue, Symbol)):
        raise UsageError(f"--set {short(text)}: the value must be a number, string, boolean or tuple")
    return name, value
