"""Stage 2: syntax tree -> a validated network description (no torch).

Here constants are evaluated (integer arithmetic in our own code, never `eval`), blocks are expanded, `repeat` is
unrolled, name templates are filled in, every layer's arguments are validated against its model (pydantic has the
last word on any mistake: see `netspec.model`), `forward` is resolved against the declared names, and the `train`
section becomes a `TrainSpec`. Every error is a `SpecError` at the place in the file that caused it.
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import Location, SpecError, UsageError
from ..record import Factory, Record
from . import layers as L
from . import train_section as S
from .syntax import (
    BinOp,
    BlockDef,
    Call,
    Composite,
    Const,
    ConstDef,
    Expr,
    ListExpr,
    Named,
    Neg,
    Num,
    Program,
    Ref,
    Repeat,
    Step,
    Str,
    Template,
    TupleExpr,
    did_you_mean,
    parse,
)
from .validate import Invalid

MAX_LAYERS = 20_000  # after expansion; a guard against `repeat i in 1..10**9`
MAX_ITERATIONS = 100_000  # every repeat iteration, nested ones multiplied
MAX_STRING = 10_000  # characters of a string built with +
MAX_INT = 2**62  # arithmetic stays far from overflow everywhere downstream


# ---------------------------------------------------------------------------------------------------------------
# Resolved description
# ---------------------------------------------------------------------------------------------------------------


class Node(Record):
    """One module of the network: a layer (`config` set) or a composite (`children` set)."""

    name: str
    kind: str  # "Conv2d", ..., "Sequential", "Residual"
    loc: Location  # the name (or the call, for an anonymous layer)
    config: L.LayerSpec | None = None
    children: list[Node] = Factory(list)
    shortcut: list[Node] | None = None

    @property
    def is_composite(self) -> bool:
        return self.config is None


class FStep(Record, frozen=True):
    """One step of the run order: `module` (a declared child), `residual` (x + child(x)) or `function` (relu...)."""

    op: str
    name: str
    loc: Location


class Network(Record):
    name: str
    input: tuple[int, int, int]
    input_loc: Location | None
    layers: list[Node]
    forward: list[FStep]  # always set: the declaration order when the spec has no `forward`
    explicit_forward: bool
    train: S.TrainSpec
    constants: dict[str, Any]
    filename: str | None = None
    source: str | None = None
    train_locs: dict[str, Location] = Factory(dict)
    train_inferred: frozenset[str] = frozenset()  # schedule arguments filled in from epochs / lr


class CallValue(Record, frozen=True):
    """A call written as a value (in `train`): `SGD(lr=0.1)`, `RandomCrop(padding=4)`."""

    name: str
    args: tuple[tuple[Any, Location], ...]  # (value, location of the argument)
    kwargs: tuple[tuple[str, Any, Location, Location], ...]  # (name, value, location of the name, of `name=value`)
    loc: Location
    name_loc: Location


class Symbol(Record, frozen=True):
    """A bare word that names no constant (`data cifar10`): allowed only where a setting takes a name."""

    name: str
    loc: Location


# ---------------------------------------------------------------------------------------------------------------
# Evaluation of values
# ---------------------------------------------------------------------------------------------------------------


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
            value = evaluate(self.defs[name].value, self)
        finally:
            self._evaluating.pop()
        calls = (
            [value]
            if isinstance(value, CallValue)
            else [v for v in value if isinstance(v, CallValue)]
            if isinstance(value, (tuple, list))
            else []
        )
        allowed = {*S.OPTIMIZERS, *S.SCHEDULES, *S.TRANSFORMS, "Normalize"}
        for call in calls:
            # a constant may name a train setting (`opt = SGD(lr=0.1)`); any other call is refused here, even
            # when nothing uses the constant
            if call.name not in allowed:
                raise SpecError(
                    f"constant {name!r} holds a call of {call.name!r}; constants are numbers, strings, "
                    f"booleans, None, tuples, or an optimizer, schedule or transform",
                    call.name_loc,
                    hint="a spec is data: nothing in it is run; layers are written in `layers`",
                    code="E023",
                )
        self.values[name] = value
        return True, value

    def names(self) -> list[str]:
        return list(self.defs) + list(self.overrides)

    def all(self) -> dict[str, Any]:
        return {
            name: self.lookup(name)[1] for name in list(self.defs) + [n for n in self.overrides if n not in self.defs]
        }


def _type_name(v: Any) -> str:
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, int):
        return "an integer"
    if isinstance(v, float):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if v is None:
        return "None"
    if isinstance(v, tuple):
        return "a tuple"
    if isinstance(v, list):
        return "a list"
    return "a call"


def _number(v: Any, loc: Location, op: str) -> int | float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise SpecError(f"'{op}' needs numbers, not {_type_name(v)}", loc, code="E022")
    return v


def _plain_int(value: Any, expr: Expr) -> bool:
    """An integer written as digits (the `10` of `cifar-10`), not computed."""
    return isinstance(expr, Num) and isinstance(value, int) and not isinstance(value, bool)


def evaluate(expr: Expr, scope: Scope, *, symbols: bool = False) -> Any:
    """The value of an expression: int, float, str, bool, None, tuple, list or CallValue."""
    if isinstance(expr, Num):
        if isinstance(expr.value, int) and abs(expr.value) > MAX_INT:
            raise SpecError("this integer is too large", expr.loc, code="E022")
        return expr.value
    if isinstance(expr, (Str, Const)):
        return expr.value
    if isinstance(expr, Ref):
        found, value = scope.lookup(expr.name)
        if found:
            return value
        if symbols:
            return Symbol(expr.name, expr.loc)
        hint = did_you_mean(expr.name, scope.names())
        if hint is None and expr.name in L.LAYERS:
            hint = f"a layer is called with parentheses: {expr.name}()"
        raise SpecError(
            f"undefined name {expr.name!r}",
            expr.loc,
            hint=hint or "define it at the top level: `name = value`, or pass --set NAME=VALUE",
            code="E020",
        )
    if isinstance(expr, Neg):
        v = _number(evaluate(expr.operand, scope), expr.loc, "-")
        return -v
    if isinstance(expr, BinOp):
        a = evaluate(expr.left, scope, symbols=symbols)
        b = evaluate(expr.right, scope, symbols=symbols)
        op = expr.op
        if isinstance(a, Symbol) or isinstance(b, Symbol):
            # a hyphenated bare word such as `data tiny-imagenet` reads as a subtraction: join it back
            # (and `cifar-10`, `tiny-imagenet-200`: a word, a hyphen and a number)
            if op == "-" and isinstance(a, Symbol) and (isinstance(b, Symbol) or _plain_int(b, expr.right)):
                return Symbol(f"{a.name}-{getattr(b, 'name', b)}", expr.loc)
            bad = a if isinstance(a, Symbol) else b
            raise SpecError(f"undefined name {bad.name!r}", bad.loc, code="E020")
        if op == "/":
            if isinstance(a, int) and isinstance(b, int) and not isinstance(a, bool) and not isinstance(b, bool):
                hint = "sizes are integers: write // for integer division"
                if b and a % b == 0:
                    hint += f" ({a} // {b} = {a // b})"
            else:
                hint = "there is no '/' for numbers either: write the value itself, such as 0.05"
            raise SpecError("'/' is not integer division", expr.op_loc or expr.loc, hint=hint, code="E022")
        if op == "+" and isinstance(a, str) and isinstance(b, str):
            if len(a) + len(b) > MAX_STRING:
                raise SpecError(
                    f"this string would be {len(a) + len(b):,} characters long; the limit is {MAX_STRING:,}",
                    expr.loc,
                    code="E022",
                )
            return a + b
        a = _number(a, expr.left.loc, op)
        b = _number(b, expr.right.loc, op)
        if op in ("//", "%"):
            if not (isinstance(a, int) and isinstance(b, int)):
                raise SpecError(f"'{op}' needs integers", expr.loc, code="E022")
            if b == 0:
                what = f"{expr.right.name} is 0" if isinstance(expr.right, Ref) else None
                raise SpecError("division by zero" + (f": {what}" if what else ""), expr.right.loc, code="E022")
            result = a // b if op == "//" else a % b
        elif op == "+":
            result = a + b
        elif op == "-":
            result = a - b
        else:
            result = a * b
        if isinstance(result, int) and abs(result) > MAX_INT:
            raise SpecError("this value is too large", expr.loc, code="E022")
        return result
    if isinstance(expr, TupleExpr):
        return tuple(evaluate(e, scope, symbols=symbols) for e in expr.items)
    if isinstance(expr, ListExpr):
        return [evaluate(e, scope, symbols=symbols) for e in expr.items]
    if isinstance(expr, Call):
        args = []
        kwargs = []
        for a in expr.args:
            v = evaluate(a.value, scope, symbols=symbols)
            if a.name is None:
                args.append((v, a.loc))
            else:
                kwargs.append((a.name, v, a.name_loc or a.loc, a.loc))
        return CallValue(expr.name, tuple(args), tuple(kwargs), expr.loc, expr.name_loc)
    raise AssertionError(expr)  # pragma: no cover


# ---------------------------------------------------------------------------------------------------------------
# Calls -> argument models
# ---------------------------------------------------------------------------------------------------------------


def _validated(model_cls, call: CallValue, what: str, inferred: tuple[str, ...] = (), signature: str | None = None):
    """Map positional and keyword arguments onto the model's fields and validate; errors point at the argument."""
    fields = list(model_cls.model_fields)
    positional = model_cls.POSITIONAL
    signature = signature or _signature(model_cls)
    values: dict[str, Any] = {}
    locs: dict[str, Location] = {}
    if len(call.args) > len(positional):
        value, loc = call.args[len(positional)]
        if not positional:
            msg = f"{call.name} takes no positional arguments, got {len(call.args)}"
        else:
            msg = (
                f"{call.name} takes at most {len(positional)} positional argument"
                f"{'s' if len(positional) != 1 else ''}, got {len(call.args)}"
            )
        raise SpecError(
            msg,
            loc,
            hint=f"{signature}" + (f"; {', '.join(inferred)} is worked out from the input" if inferred else ""),
            code="E031",
        )
    for (value, loc), name in zip(call.args, positional):
        values[name], locs[name] = value, loc
    for name, value, name_loc, arg_loc in call.kwargs:
        if name in values:
            how = "positionally and by name" if name in positional[: len(call.args)] else "twice"
            raise SpecError(
                f"{call.name} got argument {name!r} {how}",
                name_loc,
                code="E031",
                hint=f"{signature}" if how != "twice" else "remove one of them",
            )
        if name in inferred:
            raise SpecError(
                f"{name} of {call.name} is worked out from the input and is not written",
                name_loc,
                hint=f"remove `{name}=...`; write {signature}",
                code="E032",
            )
        if name not in fields:
            hint = did_you_mean(name, fields)
            raise SpecError(
                f"{call.name} has no argument {name!r}",
                name_loc,
                hint=(hint + " " if hint else "") + f"{signature}",
                code="E033",
            )
        values[name], locs[name] = value, arg_loc
    for name, value in values.items():
        if isinstance(value, list):
            values[name] = tuple(value)  # lists and tuples are one thing to PyTorch's layer arguments
        if isinstance(value, (CallValue, Symbol)) or (
            isinstance(value, (list, tuple)) and any(isinstance(v, (CallValue, Symbol)) for v in value)
        ):
            raise SpecError(
                f"argument {name!r} of {call.name} cannot be {_type_name(value)}",
                locs[name],
                hint=_type_hint(model_cls, name),
                code="E034",
            )
    try:
        return model_cls.model_validate(values)
    except Invalid as e:
        err = _best_error(e.errors(), values)
        field_name = str(err["loc"][0]) if err["loc"] else None
        loc = locs.get(field_name, call.name_loc) if field_name else call.name_loc
        if err["type"] == "missing":
            raise SpecError(
                f"{call.name} needs argument {field_name!r}",
                call.name_loc,
                hint=f"{field_name} has no default: {signature}",
                code="E035",
            ) from None
        got = values.get(field_name)
        raise SpecError(
            f"argument {field_name!r} of {call.name} {_should(err['msg'])}, got {_show(got)}",
            loc,
            hint=_type_hint(model_cls, field_name),
            code="E036",
        ) from None


def _best_error(errors: list, values: dict) -> dict:
    """Of pydantic's errors for one value (one per member of a Union), the one that reads best for what was given."""
    for err in errors:
        if err["type"] == "missing":
            return err
    first = errors[0]
    field_errors = [e for e in errors if e["loc"][:1] == first["loc"][:1]]
    value = values.get(str(first["loc"][0])) if first["loc"] else None
    # a bound on the right kind of value ("should be >= 1") says more than "should be a tuple"
    wanted = []
    if isinstance(value, str):
        wanted = [e for e in field_errors if e["type"] in ("literal_error", "string_type")]
    elif isinstance(value, tuple):
        wanted = [e for e in field_errors if len(e["loc"]) > 2 or e["type"].startswith("too_")]
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        wanted = [
            e
            for e in field_errors
            if e["type"] in ("greater_than_equal", "greater_than", "less_than_equal", "less_than", "literal_error")
        ]
    return (wanted or field_errors)[0]


def _should(msg: str) -> str:
    """pydantic's "Input should be ..." -> "should be ..."; any other message -> "is not valid (...)"."""
    for prefix in ("Input should be ", "Input should "):
        if msg.startswith(prefix):
            return "should " + msg[len("Input should ") :]
    return f"is not valid ({msg[0].lower() + msg[1:]})" if msg else "is not valid"


def _show(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (CallValue, Symbol)):
        return value.name + ("(...)" if isinstance(value, CallValue) else "")
    return repr(value)


def _few(names: list[str], n: int = 8) -> str:
    names = list(dict.fromkeys(names))
    return ", ".join(names[:n]) + (", ..." if len(names) > n else "")


def _signature(model_cls) -> str:
    parts = []
    for name, f in model_cls.model_fields.items():
        parts.append(name if f.is_required() else f"{name}={_show(f.default)}")
    return f"{model_cls.__name__}({', '.join(parts)})"


def _type_hint(model_cls, field_name: str | None) -> str | None:
    if field_name is None or field_name not in model_cls.model_fields:
        return None
    f = model_cls.model_fields[field_name]
    return f"{field_name} takes {describe_type(f.annotation, f.metadata)}"


def describe_type(ann: Any, metadata: Any = (), plural: bool = False) -> str:
    """A field's type in words, for hints and docs: `an integer >= 1, or a pair of integers >= 1`."""
    import types
    import typing

    origin, args = typing.get_origin(ann), typing.get_args(ann)
    if origin is typing.Annotated:
        meta = [m for info in args[1:] for m in getattr(info, "metadata", [info])]
        return describe_type(args[0], [*metadata, *meta], plural)
    if origin in (typing.Union, getattr(types, "UnionType", typing.Union)):
        parts = []
        for a in args:
            if typing.get_origin(a) is typing.Literal:
                parts.extend(_show(v) for v in typing.get_args(a))
            else:
                parts.append(describe_type(a, metadata, plural))
        return _join_or(parts)
    if origin is typing.Literal:
        return _join_or([_show(v) for v in args])
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"{'tuples' if plural else 'a tuple'} of {describe_type(args[0], plural=True)}"
        inner = [describe_type(a, plural=True) for a in args]
        if len(inner) == 2 and inner[0] == inner[1]:
            return f"{'pairs' if plural else 'a pair'} of {inner[0]}"
        return f"{'tuples' if plural else 'a tuple'} ({', '.join(describe_type(a) for a in args)})"
    bounds = _bounds(metadata)
    if ann is bool:
        return "true or false"
    if ann is int:
        return ("integers" if plural else "an integer") + bounds
    if ann is float:
        return ("numbers" if plural else "a number") + bounds
    if ann is str:
        return "strings" if plural else "a string"
    if ann is type(None):
        return "None"
    return getattr(ann, "__name__", str(ann))


def _bounds(metadata) -> str:
    b = {}
    for m in metadata:
        for attr in ("ge", "gt", "le", "lt"):
            if getattr(m, attr, None) is not None:
                b[attr] = getattr(m, attr)
    lo = (">=", b["ge"]) if "ge" in b else (">", b["gt"]) if "gt" in b else None
    hi = ("<=", b["le"]) if "le" in b else ("<", b["lt"]) if "lt" in b else None
    if lo and hi and lo[0] == ">=" and hi[0] == "<=":
        return f" from {lo[1]:g} to {hi[1]:g}"
    return " and".join(f" {b[0]} {b[1]:g}" for b in (lo, hi) if b)


def _join_or(parts: list[str]) -> str:
    parts = list(dict.fromkeys(parts))
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " or " + parts[-1]


# ---------------------------------------------------------------------------------------------------------------
# Expansion of layers
# ---------------------------------------------------------------------------------------------------------------

_HOLE = re.compile(r"\{([^{}]*)\}")
_VALID_NAME = re.compile(r"^[A-Za-z0-9_]+$")


def render_name(t: Template, scope: Scope) -> str:
    """Fill the `{expr}` holes of a name template (`conv{id}`, `resblock{s}_{i+1}`)."""

    def fill(m: re.Match) -> str:
        value = _hole_value(m.group(1), scope, t.loc)
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise SpecError(
                f"{{{m.group(1)}}} in the name {t.text!r} is {_type_name(value)}; names hold integers and strings",
                t.loc,
                code="E040",
            )
        return str(value)

    name = _HOLE.sub(fill, t.text)
    if not _VALID_NAME.match(name):
        raise SpecError(
            f"the name {t.text!r} becomes {name!r}, which is not a valid module name",
            t.loc,
            hint="names hold letters, digits and '_'",
            code="E040",
        )
    return name


def _hole_value(text: str, scope: Scope, loc: Location) -> Any:
    # a hole holds names and integers joined by + - * (no spaces, no parentheses): parsed here by hand
    terms = re.split(r"([+-])", text)
    if terms and terms[0] == "":
        terms = ["0"] + terms
    total: Any = None
    sign = "+"
    for i, term in enumerate(terms):
        if i % 2 == 1:
            sign = term
            continue
        factors = term.split("*")
        value: Any = 1 if len(factors) > 1 else None
        for f in factors:
            if f.isdigit():
                if len(f) > 19:
                    raise SpecError(f"the integer in {{{text}}} is too large", loc, code="E040")
                v: Any = int(f)
            elif re.match(r"^[A-Za-z_]\w*$", f):
                found, v = scope.lookup(f)
                if not found:
                    raise SpecError(
                        f"undefined name {f!r} in the name template",
                        loc,
                        hint=did_you_mean(f, scope.names())
                        or "holes use block parameters, repeat variables and constants"
                        + (f"; here: {_few(scope.names())}" if scope.names() else ""),
                        code="E020",
                    )
            else:
                raise SpecError(
                    f"cannot read {{{text}}} in the name template",
                    loc,
                    hint="holes hold names and integers joined by + - *",
                    code="E040",
                )
            if value is None:
                value = v
            else:
                if not isinstance(v, int) or not isinstance(value, int) or isinstance(v, bool):
                    raise SpecError(f"'*' in {{{text}}} needs integers", loc, code="E040")
                value = value * v
                if abs(value) > MAX_INT:
                    raise SpecError(f"{{{text}}} is too large", loc, code="E040")
        if total is None:
            total = value if sign == "+" else -value
        else:
            if not (isinstance(total, int) and isinstance(value, int)):
                raise SpecError(f"'{sign}' in {{{text}}} needs integers", loc, code="E040")
            total = total + value if sign == "+" else total - value
    return total


class _Expander:
    def __init__(self, prog: Program, constants: Constants):
        self.prog = prog
        self.constants = constants
        self.count = 0
        self.iterations = 0
        self.block_stack: list[str] = []
        self.repeat_vars: list[str] = []
        # where a node's name came from: id(node) -> (name template, innermost repeat variable, innermost block)
        self.origins: dict[int, tuple[Location, str | None, str | None]] = {}
        # the outermost block call being expanded: the layers a block makes are located at its use, so an error
        # about one of them (its shape, its name) says which use
        self.site: Location | None = None

    def items(self, items, scope: Scope, owner: str = "network") -> list[Node]:
        """Expand `items` into nodes; `owner` is what holds them: "network", "Sequential" or "Residual"."""
        out: list[Node] = []
        for item in items:
            self.item(item, scope, out)
        # anonymous children are named by position, as nn.Sequential names them
        for i, node in enumerate(out):
            if node.name == "":
                node.name = str(i)
        seen: dict[str, Node] = {}
        for node in out:
            _check_module_name(node, owner)
            if node.name in seen:
                self.duplicate(seen[node.name], node)
            seen[node.name] = node
        return out

    def duplicate(self, first: Node, node: Node) -> None:
        """The error for two modules with one name, saying how the name came about."""
        msg = f"the name {node.name!r} is used twice (first at line {first.loc.line})"
        hint = "each module needs its own name: rename one of them"
        a, b = self.origins.get(id(first)), self.origins.get(id(node))
        if a is not None and b is not None and a[0] == b[0]:
            template, repeat_var, block = b
            if first.loc == node.loc and repeat_var is not None:
                msg = f"the name {node.name!r} is used twice: every pass of the repeat names a layer {node.name!r}"
                hint = (
                    f"put the repeat variable in the name: {template.text}{{{repeat_var}}} or "
                    f"{template.text}_{{{repeat_var}}}"
                )
            elif block is not None:
                hint = (
                    f"block {block} names this layer {template.text!r} every time it is used: put a parameter "
                    f"in the name, such as {template.text}{{id}}"
                )
        raise SpecError(msg, node.loc, hint=hint, code="E041")

    def item(self, item, scope: Scope, out: list[Node]) -> None:
        if isinstance(item, Named):
            name = render_name(item.name, scope)
            if isinstance(item.body, Call) and item.body.name in self.prog.blocks:
                raise SpecError(
                    f"{item.body.name!r} is a block: its layers carry their own names",
                    item.name.loc,
                    hint=f"use it without a name: {item.body.name}(...), or wrap it: "
                    f"{name} Sequential {{ {item.body.name}(...) }}",
                    code="E042",
                )
            node = self.body(item.body, name, item.name.loc, scope)
            self.origins[id(node)] = (
                item.name,
                self.repeat_vars[-1] if self.repeat_vars else None,
                self.block_stack[-1] if self.block_stack else None,
            )
            out.append(node)
        elif isinstance(item, Call) and item.name in self.prog.blocks:
            self.expand_block(item, scope, out)
        elif isinstance(item, (Call, Composite)):
            out.append(self.body(item, "", item.loc, scope))
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

    def range(self, rep: Repeat, scope: Scope) -> range:
        start = evaluate(rep.start, scope)
        stop = evaluate(rep.stop, scope)
        for v, e in ((start, rep.start), (stop, rep.stop)):
            if isinstance(v, bool) or not isinstance(v, int):
                raise SpecError(
                    f"a repeat range needs integers, got {_show(v)}",
                    e.loc,
                    hint="ranges count whole numbers, both ends included: 1..4",
                    code="E043",
                )
        span = _span(rep.start.loc, rep.stop.loc)
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
                code="E043",
            )
        # nested repeats multiply: count every iteration, also of bodies that make nothing
        self.iterations += stop - start + 1
        if self.iterations > MAX_ITERATIONS:
            raise SpecError(
                f"the repeats unroll to more than {MAX_ITERATIONS:,} iterations",
                span,
                hint="nested repeats multiply: keep the product of their ranges small",
                code="E043",
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
        params = [p.name for p in block.params]
        bound: dict[str, Any] = {}
        positional = [a for a in call.args if a.name is None]
        if len(positional) > len(params):
            raise SpecError(
                f"block {call.name} takes {len(params)} argument{'s' if len(params) != 1 else ''}, "
                f"got {len(positional)}",
                positional[len(params)].loc,
                hint=f"block {call.name}({', '.join(params)}) is defined at line {block.loc.line}",
                code="E045",
            )
        for a, p in zip(positional, params):
            bound[p] = evaluate(a.value, scope)
        for a in call.args:
            if a.name is None:
                continue
            if a.name not in params:
                raise SpecError(
                    f"block {call.name} has no parameter {a.name!r}",
                    a.name_loc or a.loc,
                    hint=did_you_mean(a.name, params) or f"its parameters: {', '.join(params)}",
                    code="E045",
                )
            if a.name in bound:
                raise SpecError(
                    f"block {call.name} got parameter {a.name!r} twice",
                    a.name_loc or a.loc,
                    hint="it is given positionally and by name; "
                    f"block {call.name}({', '.join(params)}) is defined at line {block.loc.line}",
                    code="E045",
                )
            bound[a.name] = evaluate(a.value, scope)
        earlier: dict[str, Any] = {}
        for p in block.params:
            if p.name not in bound:
                if p.default is None:
                    raise SpecError(
                        f"block {call.name} needs argument {p.name!r}",
                        call.name_loc,
                        hint=f"block {call.name}({', '.join(params)}) is defined at line {block.loc.line}",
                        code="E045",
                    )
                # a default sees the constants and the parameters before it: `block b(k=3, pad=k // 2)`
                bound[p.name] = evaluate(p.default, Scope(dict(earlier), self.constants))
            earlier[p.name] = bound[p.name]
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

    def body(self, body, name: str, loc: Location, scope: Scope) -> Node:
        self.count += 1
        if self.count > MAX_LAYERS:
            raise SpecError(f"the network has more than {MAX_LAYERS:,} modules", loc, code="E043")
        if isinstance(body, Composite):
            children = self.items(body.items, scope, body.kind)
            shortcut = self.items(body.shortcut, scope, "Sequential") if body.shortcut is not None else None
            if body.kind == "Residual" and not children:
                raise SpecError(
                    "a Residual needs at least one layer in its body",
                    body.loc,
                    hint="Residual { Conv2d(64, 3, padding=1) BatchNorm2d() }",
                    code="E046",
                )
            return Node(name, body.kind, self.site or (loc if name else body.loc), None, children, shortcut)
        call = evaluate(body, scope)
        assert isinstance(call, CallValue)
        config = layer_config(call, self.prog)
        return Node(name, call.name, self.site or (loc if name else call.name_loc), config)


def _span(first: Location, last: Location) -> Location:
    """From the start of `first` to the end of `last`, when both are on one line."""
    if first.line == last.line and last.end_column is not None:
        return Location(first.line, first.column, last.end_column)
    return first


# Attributes of every torch module (an instance of nn.Module): a child of that name cannot be registered.
# tests/test_language.py checks this list against the installed torch.
MODULE_ATTRIBUTES = frozenset(
    """
    T_destination add_module apply bfloat16 buffers call_super_init children compile cpu cuda double dump_patches
    eval extra_repr float forward get_buffer get_extra_state get_parameter get_submodule half ipu load_state_dict
    modules mtia named_buffers named_children named_modules named_parameters parameters register_backward_hook
    register_buffer register_forward_hook register_forward_pre_hook register_full_backward_hook
    register_full_backward_pre_hook register_load_state_dict_post_hook register_load_state_dict_pre_hook
    register_module register_parameter register_state_dict_post_hook register_state_dict_pre_hook requires_grad_
    set_extra_state set_submodule share_memory state_dict to to_empty train training type xpu zero_grad
""".split()
)
SEQUENTIAL_ATTRIBUTES = frozenset("append extend insert pop".split())  # methods of nn.Sequential


def _check_module_name(node: Node, owner: str) -> None:
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


def layer_config(call: CallValue, prog: Program | None = None) -> L.LayerSpec:
    cls = L.LAYERS.get(call.name)
    if cls is None:
        choices = list(L.LAYERS) + list(L.COMPOSITES) + (list(prog.blocks) if prog else [])
        hint = did_you_mean(call.name, choices)
        if call.name in L.COMPOSITES:
            hint = f"{call.name} is written with braces: {call.name} {{ ... }}"
        elif call.name in ("eval", "exec", "open", "getattr", "compile", "__import__", "globals", "import_module"):
            hint = "a spec is data: nothing in it is run as Python; layers come from netspec's own table"
        elif hint is None:
            hint = "see docs/language.md for the layers netspec knows"
        raise SpecError(f"unknown layer {call.name!r}", call.name_loc, hint=hint, code="E030")
    return _validated(cls, call, "layer", inferred=cls.INFERRED)


# ---------------------------------------------------------------------------------------------------------------
# forward
# ---------------------------------------------------------------------------------------------------------------


def _forward(prog: Program, layers: list[Node], constants: Constants) -> list[FStep]:
    declared = {n.name: n for n in layers}
    steps: list[FStep] = []
    ranges = _Expander(prog, constants)  # one counter for every repeat of the section

    def walk(items, scope: Scope):
        for it in items:
            if isinstance(it, Repeat):
                rng = ranges.range(it, scope)
                for v in rng:
                    walk(it.items, Scope({it.var: v}, scope))
                continue
            assert isinstance(it, Step)
            name = render_name(it.name, scope)
            if name in declared:
                steps.append(FStep("residual" if it.residual else "module", name, it.name.loc))
            elif name in L.FUNCTIONS and not it.residual:
                steps.append(FStep("function", name, it.name.loc))
            else:
                hint = did_you_mean(name, list(declared) + ([] if it.residual else list(L.FUNCTIONS)))
                if hint is None:
                    hint = f"declared layers: {_few(list(declared))}"
                    if not it.residual:
                        hint += f"; functions: {', '.join(L.FUNCTIONS)}"
                raise SpecError(
                    f"{name!r} is not a layer declared in `layers`" + ("" if it.residual else " nor a function"),
                    it.name.loc,
                    hint=hint,
                    code="E050",
                )
            if len(steps) > MAX_LAYERS:
                raise SpecError(f"forward has more than {MAX_LAYERS:,} steps", it.loc, code="E043")

    walk(prog.forward or (), constants)
    used = {s.name for s in steps if s.op != "function"}
    for node in layers:
        if node.name not in used:
            raise SpecError(
                f"layer {node.name!r} is declared but never run in `forward`",
                node.loc,
                hint=f"add {node.name} to the forward section, or remove the layer",
                code="E051",
            )
    return steps


# ---------------------------------------------------------------------------------------------------------------
# train
# ---------------------------------------------------------------------------------------------------------------


# Other spellings of the data set names, as `netspec.data` accepts them.
DATA_ALIASES = {
    "cifar-10": "cifar10",
    "cifar-100": "cifar100",
    "fashionmnist": "fashion-mnist",
    "tinyimagenet": "tiny-imagenet",
    "tiny-imagenet-200": "tiny-imagenet",
}

# settings that are arguments of something else, as people coming from a training script write them
_OPTIMIZER_ARGS = {
    "lr": "0.1",
    "momentum": "0.9",
    "weight_decay": "5e-4",
    "nesterov": "true",
    "dampening": "0.0",
    "betas": "(0.9, 0.999)",
    "eps": "1e-8",
}
_MISPLACED_SETTINGS = {
    **{k: f"{k} is an argument of the optimizer: optimizer SGD({k}={v})" for k, v in _OPTIMIZER_ARGS.items()},
    "learning_rate": "the learning rate is an argument of the optimizer: optimizer SGD(lr=0.1)",
    "scheduler": "write schedule CosineAnnealingLR()",
    "lr_scheduler": "write schedule CosineAnnealingLR()",
    "transforms": "write augment [RandomCrop(padding=4), RandomHorizontalFlip()]",
    "transform": "write augment [RandomCrop(padding=4), RandomHorizontalFlip()]",
    "augmentation": "write augment [RandomCrop(padding=4), RandomHorizontalFlip()]",
    "dataset": "write data cifar10",
    "mean": "write normalize Normalize(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))",
    "std": "write normalize Normalize(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))",
}


def _data_name(value: Any, loc: Location) -> str:
    """`data cifar10` (a bare name, checked here) or `data 'path/to/folder'` (a path, checked when loading)."""
    if isinstance(value, str):
        return value
    if isinstance(value, Symbol):
        key = value.name.lower().replace("_", "-")
        key = DATA_ALIASES.get(key, key)
        if key in S.DATA_NAMES:
            return key
        close = did_you_mean(value.name, S.DATA_NAMES)
        folder = "an image folder is written as a path in quotes: data 'path/to/folder'"
        hint = f"{close} ({folder})" if close else f"data sets: {', '.join(S.DATA_NAMES)}; {folder}"
        raise SpecError(f"unknown data set {value.name!r}", value.loc, hint=hint, code="E061")
    raise SpecError(
        f"data takes a data set name or a path in quotes, not {_type_name(value)}",
        loc,
        hint=f"data sets: {', '.join(S.DATA_NAMES)}",
        code="E061",
    )


def _train(prog: Program, constants: Constants, input_hw: tuple[int, int]) -> tuple[S.TrainSpec, dict, frozenset[str]]:
    values: dict[str, Any] = {}
    locs: dict[str, Location] = {}
    for st in prog.train or ():
        if st.key not in S.SETTING_KEYS:
            if st.key in _MISPLACED_SETTINGS:
                hint = _MISPLACED_SETTINGS[st.key]
            else:
                close = did_you_mean(st.key, S.SETTING_KEYS)
                hint = close or f"settings: {', '.join(S.SETTING_KEYS)}"
            raise SpecError(f"unknown setting {st.key!r}", st.key_loc, hint=hint, code="E060")
        if st.key in values:
            raise SpecError(
                f"setting {st.key!r} is given twice (first at line {locs[st.key].line})",
                st.key_loc,
                hint="remove one of them",
                code="E060",
            )
        values[st.key] = evaluate(st.value, constants, symbols=True)
        locs[st.key] = st.value.loc
    out: dict[str, Any] = {}
    augment_locs: list[Location] = []
    for key, value in values.items():
        loc = locs[key]
        if key == "data":
            out[key] = _data_name(value, loc)
        elif key == "optimizer":
            out[key] = _call_model(value, S.OPTIMIZERS, "optimizer", loc)
        elif key == "schedule":
            out[key] = None if value is None else _call_model(value, S.SCHEDULES, "schedule", loc)
        elif key == "normalize":
            if value is None:
                out[key] = None
            else:
                out[key] = _call_model(value, {"Normalize": S.Normalize}, "normalization", loc)
        elif key == "augment":
            if value is None:
                value = []
            if not isinstance(value, (list, tuple)):
                value = [value]
            out[key] = tuple(_call_model(v, S.TRANSFORMS, "transform", loc) for v in value)
            augment_locs = [getattr(v, "loc", loc) for v in value]
        else:
            field = S.TrainSpec.model_fields[key]
            if isinstance(value, (Symbol, CallValue)):
                raise SpecError(
                    f"{key} takes {describe_type(field.annotation, field.metadata)}, not {_type_name(value)}",
                    getattr(value, "loc", loc),
                    hint=f"undefined name {value.name!r}" if isinstance(value, Symbol) else None,
                    code="E061",
                )
            out[key] = value
    # fill in what follows from the input, and check the augmented size equals the input size
    size = input_hw
    augs = []
    size_loc = None
    for t, tloc in zip(out.get("augment", ()), augment_locs):
        if isinstance(t, S.RandomCrop):
            if t.size is None:
                t = t.model_copy(update={"size": size})
            else:
                size, size_loc = _pair(t.size), tloc
        elif isinstance(t, S.Resize):
            size, size_loc = _pair(t.size), tloc
        augs.append(t)
    if "augment" in out:
        out["augment"] = tuple(augs)
        if size != input_hw:
            raise SpecError(
                f"the augmentation makes {size[0]}x{size[1]} images, but the input is {input_hw[0]}x{input_hw[1]}",
                size_loc or locs["augment"],
                hint="leave out RandomCrop's size: it is inferred from the input",
                code="E062",
            )
    try:
        spec = S.TrainSpec.model_validate(out)  # strict: `batch_size '128'` is a mistake, not 128
    except Invalid as e:
        err = e.errors()[0]
        key = str(err["loc"][0])
        field = S.TrainSpec.model_fields.get(key)
        raise SpecError(
            f"setting {key!r} {_should(err['msg'])}, got {_show(values.get(key))}",
            locs.get(key, prog.train_loc),
            code="E061",
            hint=f"{key} takes {describe_type(field.annotation, field.metadata)}" if field else None,
        ) from None
    norm = spec.normalize
    if norm is not None and (len(norm.mean) != len(norm.std) or not norm.mean):
        raise SpecError(
            f"normalize has {len(norm.mean)} mean{'s' if len(norm.mean) != 1 else ''} and "
            f"{len(norm.std)} std{'s' if len(norm.std) != 1 else ''}",
            locs["normalize"],
            hint="give one mean and one std per channel: Normalize(mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))",
            code="E062",
        )
    inferred = frozenset(
        k for k in S.INFERRED_SCHEDULE_ARGS if spec.schedule is not None and getattr(spec.schedule, k, 0) is None
    )
    return S.infer_schedule(spec, inferred), locs, inferred


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)  # type: ignore[return-value]


def _call_model(value: Any, table: dict, what: str, loc: Location):
    if isinstance(value, Symbol):
        # a bare name such as `RandomHorizontalFlip` without parentheses
        value = CallValue(value.name, (), (), value.loc, value.loc)
    if not isinstance(value, CallValue):
        raise SpecError(
            f"expected a {what} such as {next(iter(table))}(...), got {_type_name(value)}", loc, code="E063"
        )
    cls = table.get(value.name)
    if cls is None:
        if what == "transform" and value.name == "Normalize":
            hint = "normalization is its own setting, for train and test: normalize Normalize(mean=..., std=...)"
        elif what == "transform" and value.name in S.IMPLICIT_TRANSFORMS:
            hint = (
                f"images are tensors from the start: {value.name} is implicit, leave it out "
                f"(and write normalization as `normalize Normalize(mean=..., std=...)`)"
            )
        else:
            hint = did_you_mean(value.name, table) or f"{what}s: {', '.join(table)}"
        raise SpecError(f"unknown {what} {value.name!r}", value.name_loc, hint=hint, code="E064")
    return _validated(cls, value, what)


# ---------------------------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------------------------


def parse_size(text: str) -> tuple[int, int, int]:
    """'3x32x32' -> (3, 32, 32); a UsageError for anything else (the CLI's --input)."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not m:
        raise UsageError(f"--input {text!r}: expected CxHxW, e.g. 3x32x32")
    dims = tuple(int(g) for g in m.groups())
    if any(d < 1 for d in dims):
        raise UsageError(f"--input {text!r}: every dimension must be at least 1")
    if any(d > 65536 for d in dims):
        raise UsageError(f"--input {text!r}: dimensions over 65,536 are not supported")
    return dims  # type: ignore[return-value]


def _short(text: str) -> str:
    """repr(text), cut to a readable length for a one-line error."""
    return repr(text) if len(text) <= 60 else repr(text[:40]) + f"... ({len(text):,} characters)"


def parse_override(text: str) -> tuple[str, Any]:
    """'classes=100' -> ('classes', 100); the value is read as a spec value (numbers, strings, tuples, ...)."""
    if "=" not in text:
        raise UsageError(f"--set {_short(text)}: expected NAME=VALUE, e.g. --set classes=100")
    name, _, value_text = text.partition("=")
    name = name.strip()
    if not re.fullmatch(r"[A-Za-z_]\w*", name):
        raise UsageError(f"--set {_short(text)}: {name!r} is not a constant name")
    try:
        prog = parse(f"{name} = {value_text}\n")
        value = evaluate(prog.consts[name].value, Constants({}, {}))
    except SpecError as e:
        raise UsageError(f"--set {_short(text)}: cannot read the value ({e.message})") from None
    if isinstance(value, (CallValue, Symbol)):
        raise UsageError(f"--set {_short(text)}: the value must be a number, string, boolean or tuple")
    return name, value


def elaborate(
    prog: Program,
    *,
    input: tuple[int, int, int] | None = None,
    constants: dict[str, Any] | None = None,
    filename: str | None = None,
    source: str | None = None,
) -> Network:
    """Turn a parsed program into a validated `Network` at the given input size (default: the spec's)."""
    overrides = dict(constants or {})
    for name in overrides:
        if name not in prog.consts:
            hint = did_you_mean(name, prog.consts)
            known = ", ".join(prog.consts) or "none"
            raise UsageError(
                f"--set {name}: the spec defines no constant {name!r} ({hint or 'its constants: ' + known})"
            )
    consts = Constants(prog.consts, overrides)
    try:
        if not (
            prog.network
            or prog.input
            or prog.consts
            or prog.blocks
            or prog.layers is not None
            or prog.forward is not None
            or prog.train is not None
        ):
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
        if input is None:
            input = prog.input
        if input is None:
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
            explicit = True
        else:
            steps = [FStep("module", n.name, n.loc) for n in layers]
            explicit = False
        train, train_locs, train_inferred = _train(prog, consts, (input[1], input[2]))
        return Network(
            prog.network or "Net",
            tuple(input),
            prog.input_loc,
            layers,
            steps,
            explicit,
            train,  # type: ignore[arg-type]
            values,
            filename,
            source,
            train_locs,
            train_inferred,
        )
    except SpecError as e:
        e.attach(filename, source)
        raise
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


def load_spec(source: str | bytes, filename: str | None = None, *, input=None, constants=None) -> Network:
    """Parse and elaborate spec text."""
    prog = parse(source, filename)
    from .syntax import normalize_source

    return elaborate(prog, input=input, constants=constants, filename=filename, source=normalize_source(source))
