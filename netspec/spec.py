"""Stage 2: syntax tree -> a validated network description (no torch).

Here constants are evaluated (integer arithmetic in our own code, never `eval`), blocks are expanded, `repeat` is
unrolled, name templates are filled in, every layer's arguments are validated by its pydantic model, `forward` is
resolved against the declared names, and the `train` section becomes a `TrainSpec`. Every error is a `SpecError` at
the place in the file that caused it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from . import layers as L
from . import settings as S
from .errors import Location, SpecError, UsageError
from .parse import (Arg, BinOp, BlockDef, Call, Composite, Const, ConstDef, Expr, ListExpr, Named, Neg, Num,
                    Program, Ref, Repeat, Step, Str, Template, TupleExpr, did_you_mean, parse)

MAX_LAYERS = 20_000  # after expansion; a guard against `repeat i in 1..10**9`
MAX_INT = 2**62  # arithmetic stays far from overflow everywhere downstream


# ---------------------------------------------------------------------------------------------------------------
# Resolved description
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class Node:
    """One module of the network: a layer (`config` set) or a composite (`children` set)."""

    name: str
    kind: str  # "Conv2d", ..., "Sequential", "Residual"
    loc: Location  # the name (or the call, for an anonymous layer)
    config: L.LayerSpec | None = None
    children: list["Node"] = field(default_factory=list)
    shortcut: list["Node"] | None = None

    @property
    def is_composite(self) -> bool:
        return self.config is None


@dataclass(frozen=True)
class FStep:
    """One step of the run order: `module` (a declared child), `residual` (x + child(x)) or `function` (relu...)."""

    op: str
    name: str
    loc: Location


@dataclass
class Network:
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
    train_locs: dict[str, Location] = field(default_factory=dict)


@dataclass(frozen=True)
class CallValue:
    """A call written as a value (in `train`): `SGD(lr=0.1)`, `RandomCrop(padding=4)`."""

    name: str
    args: tuple[tuple[Any, Location], ...]
    kwargs: tuple[tuple[str, Any, Location], ...]
    loc: Location
    name_loc: Location


@dataclass(frozen=True)
class Symbol:
    """A bare word that names no constant (`data cifar10`): allowed only where a setting takes a name."""

    name: str
    loc: Location


# ---------------------------------------------------------------------------------------------------------------
# Evaluation of values
# ---------------------------------------------------------------------------------------------------------------


class Scope:
    """Names visible while expanding: repeat variables and block parameters over the spec's constants."""

    def __init__(self, values: dict[str, Any], parent: "Scope | None" = None):
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
            cycle = " -> ".join(self._evaluating[self._evaluating.index(name):] + [name])
            raise SpecError(f"constant {name!r} depends on itself ({cycle})", self.defs[name].loc,
                            hint="give one of these constants a plain value", code="E021")
        self._evaluating.append(name)
        try:
            value = evaluate(self.defs[name].value, self)
        finally:
            self._evaluating.pop()
        self.values[name] = value
        return True, value

    def names(self) -> list[str]:
        return list(self.defs) + list(self.overrides)

    def all(self) -> dict[str, Any]:
        return {name: self.lookup(name)[1] for name in list(self.defs) + [n for n in self.overrides
                                                                          if n not in self.defs]}


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
        raise SpecError(f"undefined name {expr.name!r}", expr.loc,
                        hint=hint or "define it at the top level: `name = value`, or pass --set NAME=VALUE",
                        code="E020")
    if isinstance(expr, Neg):
        v = _number(evaluate(expr.operand, scope), expr.loc, "-")
        return -v
    if isinstance(expr, BinOp):
        a = evaluate(expr.left, scope, symbols=symbols)
        b = evaluate(expr.right, scope, symbols=symbols)
        op = expr.op
        if isinstance(a, Symbol) or isinstance(b, Symbol):
            # a hyphenated bare word such as `data tiny-imagenet` reads as a subtraction: join it back
            if op == "-" and isinstance(a, Symbol) and isinstance(b, Symbol):
                return Symbol(f"{a.name}-{b.name}", a.loc)
            bad = a if isinstance(a, Symbol) else b
            raise SpecError(f"undefined name {bad.name!r}", bad.loc, code="E020")
        if op == "/":
            raise SpecError("'/' is not integer division", expr.loc,
                            hint="sizes are integers: write // for integer division", code="E022")
        if op == "+" and isinstance(a, str) and isinstance(b, str):
            return a + b
        a = _number(a, expr.left.loc, op)
        b = _number(b, expr.right.loc, op)
        if op in ("//", "%"):
            if not (isinstance(a, int) and isinstance(b, int)):
                raise SpecError(f"'{op}' needs integers", expr.loc, code="E022")
            if b == 0:
                raise SpecError("division by zero", expr.right.loc, code="E022")
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
                kwargs.append((a.name, v, a.name_loc or a.loc))
        return CallValue(expr.name, tuple(args), tuple(kwargs), expr.loc, expr.name_loc)
    raise AssertionError(expr)  # pragma: no cover


# ---------------------------------------------------------------------------------------------------------------
# Calls -> pydantic models
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
        raise SpecError(f"{call.name} takes at most {len(positional)} positional argument"
                        f"{'s' if len(positional) != 1 else ''}, got {len(call.args)}", loc,
                        hint=f"{signature}" + (f"; {', '.join(inferred)} is worked out from the input"
                                               if inferred else ""), code="E031")
    for (value, loc), name in zip(call.args, positional):
        values[name], locs[name] = value, loc
    for name, value, loc in call.kwargs:
        if name in values:
            raise SpecError(f"{call.name} got argument {name!r} twice", loc, code="E031")
        if name in inferred:
            raise SpecError(f"{name} of {call.name} is worked out from the input and is not written", loc,
                            hint=f"remove `{name}=...`; write {signature}", code="E032")
        if name not in fields:
            hint = did_you_mean(name, fields)
            raise SpecError(f"{call.name} has no argument {name!r}", loc,
                            hint=(hint + " " if hint else "") + f"{signature}", code="E033")
        values[name], locs[name] = value, loc
    for name, value in values.items():
        if isinstance(value, list):
            values[name] = tuple(value)  # lists and tuples are one thing to PyTorch's layer arguments
        if isinstance(value, (CallValue, Symbol)):
            raise SpecError(f"argument {name!r} of {call.name} cannot be {_type_name(value)}", locs[name],
                            code="E034")
    try:
        return model_cls.model_validate(values)
    except ValidationError as e:
        err = e.errors()[0]
        field_name = str(err["loc"][0]) if err["loc"] else None
        loc = locs.get(field_name, call.name_loc) if field_name else call.name_loc
        if err["type"] == "missing":
            raise SpecError(f"{call.name} needs argument {field_name!r}", call.name_loc,
                            hint=f"{signature}", code="E035") from None
        got = values.get(field_name)
        msg = err["msg"]
        msg = msg[0].lower() + msg[1:]
        raise SpecError(f"argument {field_name!r} of {call.name}: {msg}, got {got!r}", loc,
                        hint=_type_hint(model_cls, field_name), code="E036") from None


def _signature(model_cls) -> str:
    parts = []
    for name, f in model_cls.model_fields.items():
        parts.append(name if f.is_required() else f"{name}={f.default!r}")
    return f"{model_cls.__name__}({', '.join(parts)})"


def _type_hint(model_cls, field_name: str | None) -> str | None:
    if field_name is None or field_name not in model_cls.model_fields:
        return None
    ann = model_cls.model_fields[field_name].annotation
    text = repr(ann).replace("typing.", "").replace("Annotated[int, FieldInfo(annotation=NoneType, required=True, "
                                                     "metadata=[Ge(ge=1)])]", "int>=1")
    text = re.sub(r"Annotated\[(\w+), FieldInfo\([^\]]*metadata=\[(\w+)\((\w+)=([^)]*)\)\]\)\]",
                  lambda m: f"{m.group(1)} {_OPS.get(m.group(2), m.group(2))} {m.group(4)}", text)
    text = re.sub(r"Annotated\[(\w+), FieldInfo\([^\]]*\)\]", r"\1", text)
    text = text.replace("<class '", "").replace("'>", "").replace("NoneType", "None")
    return f"{field_name} takes {text}"


_OPS = {"Ge": ">=", "Gt": ">", "Le": "<=", "Lt": "<"}


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
            raise SpecError(f"{{{m.group(1)}}} in the name {t.text!r} is {_type_name(value)}; names hold integers "
                            f"and strings", t.loc, code="E040")
        return str(value)

    name = _HOLE.sub(fill, t.text)
    if not _VALID_NAME.match(name):
        raise SpecError(f"the name {t.text!r} becomes {name!r}, which is not a valid module name", t.loc,
                        hint="names hold letters, digits and '_'", code="E040")
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
                v: Any = int(f)
            elif re.match(r"^[A-Za-z_]\w*$", f):
                found, v = scope.lookup(f)
                if not found:
                    raise SpecError(f"undefined name {f!r} in the name template", loc,
                                    hint=did_you_mean(f, scope.names()) or
                                    "holes use block parameters, repeat variables and constants", code="E020")
            else:
                raise SpecError(f"cannot read {{{text}}} in the name template", loc,
                                hint="holes hold names and integers joined by + - *", code="E040")
            if value is None:
                value = v
            else:
                if not isinstance(v, int) or not isinstance(value, int) or isinstance(v, bool):
                    raise SpecError(f"'*' in {{{text}}} needs integers", loc, code="E040")
                value = value * v
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
        self.block_stack: list[str] = []

    def items(self, items, scope: Scope) -> list[Node]:
        out: list[Node] = []
        for item in items:
            self.item(item, scope, out)
        # anonymous children are named by position, as nn.Sequential names them
        for i, node in enumerate(out):
            if node.name == "":
                node.name = str(i)
        seen: dict[str, Node] = {}
        for node in out:
            if node.name in seen:
                first = seen[node.name].loc
                raise SpecError(f"the name {node.name!r} is used twice (first at line {first.line})", node.loc,
                                hint="each module needs its own name; in a repeat, put the variable in the name: "
                                     "conv{i}", code="E041")
            seen[node.name] = node
        return out

    def item(self, item, scope: Scope, out: list[Node]) -> None:
        if isinstance(item, Named):
            name = render_name(item.name, scope)
            if isinstance(item.body, Call) and item.body.name in self.prog.blocks:
                raise SpecError(f"{item.body.name!r} is a block: its layers carry their own names", item.name.loc,
                                hint=f"use it without a name: {item.body.name}(...), or wrap it: "
                                     f"{name} Sequential {{ {item.body.name}(...) }}", code="E042")
            out.append(self.body(item.body, name, item.name.loc, scope))
        elif isinstance(item, Call) and item.name in self.prog.blocks:
            self.expand_block(item, scope, out)
        elif isinstance(item, (Call, Composite)):
            out.append(self.body(item, "", item.loc, scope))
        elif isinstance(item, Repeat):
            for value in self.range(item, scope):
                for sub in item.items:
                    self.item(sub, Scope({item.var: value}, scope), out)
        else:  # pragma: no cover
            raise AssertionError(item)

    def range(self, rep: Repeat, scope: Scope) -> range:
        start = evaluate(rep.start, scope)
        stop = evaluate(rep.stop, scope)
        for v, e in ((start, rep.start), (stop, rep.stop)):
            if isinstance(v, bool) or not isinstance(v, int):
                raise SpecError(f"a repeat range needs integers, got {_type_name(v)}", e.loc, code="E043")
        if stop < start:
            raise SpecError(f"the range {start}..{stop} is empty", rep.start.loc,
                            hint="ranges include both ends and count up: 1..4 is 1, 2, 3, 4", code="E043")
        if stop - start + 1 > MAX_LAYERS:
            raise SpecError(f"the range {start}..{stop} repeats {stop - start + 1:,} times; the limit is "
                            f"{MAX_LAYERS:,}", rep.start.loc, code="E043")
        return range(start, stop + 1)

    def expand_block(self, call: Call, scope: Scope, out: list[Node]) -> None:
        block: BlockDef = self.prog.blocks[call.name]
        if call.name in self.block_stack:
            raise SpecError(f"block {call.name!r} uses itself", call.name_loc,
                            hint="blocks cannot be recursive: use repeat", code="E044")
        params = [p.name for p in block.params]
        bound: dict[str, Any] = {}
        positional = [a for a in call.args if a.name is None]
        if len(positional) > len(params):
            raise SpecError(f"block {call.name} takes {len(params)} argument{'s' if len(params) != 1 else ''}, "
                            f"got {len(positional)}", positional[len(params)].loc,
                            hint=f"block {call.name}({', '.join(params)}) is defined at line {block.loc.line}",
                            code="E045")
        for a, p in zip(positional, params):
            bound[p] = evaluate(a.value, scope)
        for a in call.args:
            if a.name is None:
                continue
            if a.name not in params:
                raise SpecError(f"block {call.name} has no parameter {a.name!r}", a.name_loc or a.loc,
                                hint=did_you_mean(a.name, params) or f"its parameters: {', '.join(params)}",
                                code="E045")
            if a.name in bound:
                raise SpecError(f"parameter {a.name!r} is given twice", a.name_loc or a.loc, code="E045")
            bound[a.name] = evaluate(a.value, scope)
        for p in block.params:
            if p.name not in bound:
                if p.default is None:
                    raise SpecError(f"block {call.name} needs argument {p.name!r}", call.name_loc,
                                    hint=f"block {call.name}({', '.join(params)}) is defined at line "
                                         f"{block.loc.line}", code="E045")
                bound[p.name] = evaluate(p.default, self.constants)
        self.block_stack.append(call.name)
        try:
            # a block sees its parameters and the spec's constants, not its caller's variables
            inner = Scope(bound, self.constants)
            for sub in block.items:
                self.item(sub, inner, out)
        finally:
            self.block_stack.pop()

    def body(self, body, name: str, loc: Location, scope: Scope) -> Node:
        self.count += 1
        if self.count > MAX_LAYERS:
            raise SpecError(f"the network has more than {MAX_LAYERS:,} modules", loc, code="E043")
        if isinstance(body, Composite):
            children = self.items(body.items, scope)
            shortcut = self.items(body.shortcut, scope) if body.shortcut is not None else None
            if body.kind == "Residual" and not children:
                raise SpecError("a Residual needs at least one layer in its body", body.loc, code="E046")
            return Node(name, body.kind, loc if name else body.loc, None, children, shortcut)
        call = evaluate(body, scope)
        assert isinstance(call, CallValue)
        return Node(name, call.name, loc if name else call.name_loc, layer_config(call, self.prog))


def layer_config(call: CallValue, prog: Program | None = None) -> L.LayerSpec:
    cls = L.LAYERS.get(call.name)
    if cls is None:
        choices = list(L.LAYERS) + list(L.COMPOSITES) + (list(prog.blocks) if prog else [])
        hint = did_you_mean(call.name, choices)
        if call.name in L.COMPOSITES:
            hint = f"{call.name} is written with braces: {call.name} {{ ... }}"
        elif hint is None:
            hint = "see `docs/language.md` for the layers netspec knows"
        raise SpecError(f"unknown layer {call.name!r}", call.name_loc, hint=hint, code="E030")
    return _validated(cls, call, "layer", inferred=cls.INFERRED)


# ---------------------------------------------------------------------------------------------------------------
# forward
# ---------------------------------------------------------------------------------------------------------------


def _forward(prog: Program, layers: list[Node], constants: Constants) -> list[FStep]:
    declared = {n.name: n for n in layers}
    steps: list[FStep] = []

    def walk(items, scope: Scope):
        for it in items:
            if isinstance(it, Repeat):
                rng = _Expander(prog, constants).range(it, scope)
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
                raise SpecError(f"{name!r} is not a layer declared in `layers`" +
                                ("" if it.residual else " nor a function"), it.name.loc,
                                hint=hint or f"functions: {', '.join(L.FUNCTIONS)}", code="E050")
            if len(steps) > MAX_LAYERS:
                raise SpecError(f"forward has more than {MAX_LAYERS:,} steps", it.loc, code="E043")

    walk(prog.forward or (), constants)
    used = {s.name for s in steps if s.op != "function"}
    for node in layers:
        if node.name not in used:
            raise SpecError(f"layer {node.name!r} is declared but never run in `forward`", node.loc,
                            hint=f"add {node.name} to the forward section, or remove the layer", code="E051")
    return steps


# ---------------------------------------------------------------------------------------------------------------
# train
# ---------------------------------------------------------------------------------------------------------------


def _train(prog: Program, constants: Constants, input_hw: tuple[int, int]) -> tuple[S.TrainSpec, dict]:
    values: dict[str, Any] = {}
    locs: dict[str, Location] = {}
    for st in prog.train or ():
        if st.key not in S.SETTING_KEYS:
            extra = ""
            if st.key in ("lr", "momentum", "weight_decay"):
                extra = f"; {st.key} is an argument of the optimizer: optimizer SGD({st.key}=...)"
            hint = did_you_mean(st.key, S.SETTING_KEYS)
            raise SpecError(f"unknown setting {st.key!r}{extra}", st.key_loc,
                            hint=hint or f"settings: {', '.join(S.SETTING_KEYS)}", code="E060")
        if st.key in values:
            raise SpecError(f"setting {st.key!r} is given twice", st.key_loc, code="E060")
        values[st.key] = evaluate(st.value, constants, symbols=True)
        locs[st.key] = st.value.loc
    out: dict[str, Any] = {}
    for key, value in values.items():
        loc = locs[key]
        if key == "data":
            if isinstance(value, Symbol):
                value = value.name
            if isinstance(value, CallValue) or not isinstance(value, str):
                raise SpecError("data takes a data set name or a path in quotes", loc,
                                hint=f"data sets: {', '.join(S.DATA_NAMES)}", code="E061")
            value = value.replace("_", "-") if value.replace("_", "-") in S.DATA_NAMES else value
            out[key] = value
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
            if not isinstance(value, (list, tuple)):
                value = [value]
            out[key] = tuple(_call_model(v, S.TRANSFORMS, "transform", loc) for v in value)
        else:
            if isinstance(value, (Symbol, CallValue)):
                raise SpecError(f"{key} takes {_type_name(S.TrainSpec.model_fields[key].default)}, not a name",
                                loc if not isinstance(value, Symbol) else value.loc, code="E061")
            out[key] = value
    # fill in what follows from the input, and check the augmented size equals the input size
    size = input_hw
    augs = []
    for i, t in enumerate(out.get("augment", ())):
        if isinstance(t, S.RandomCrop):
            if t.size is None:
                t = t.model_copy(update={"size": size})
            else:
                size = _pair(t.size)
        elif isinstance(t, S.Resize):
            size = _pair(t.size)
        augs.append(t)
    if "augment" in out:
        out["augment"] = tuple(augs)
        if size != input_hw:
            raise SpecError(f"the augmentation makes {size[0]}x{size[1]} images, but the input is "
                            f"{input_hw[0]}x{input_hw[1]}", locs["augment"],
                            hint="leave out RandomCrop's size: it is inferred from the input", code="E062")
    try:
        spec = S.TrainSpec(**out)
    except ValidationError as e:
        err = e.errors()[0]
        key = str(err["loc"][0])
        raise SpecError(f"setting {key!r}: {err['msg'][0].lower() + err['msg'][1:]}, got {values.get(key)!r}",
                        locs.get(key, prog.train_loc), code="E061") from None
    if isinstance(spec.schedule, S.CosineAnnealingLR) and spec.schedule.T_max is None:
        spec = spec.model_copy(update={"schedule": spec.schedule.model_copy(update={"T_max": spec.epochs})})
    if isinstance(spec.schedule, S.OneCycleLR) and spec.schedule.max_lr is None:
        spec = spec.model_copy(update={"schedule": spec.schedule.model_copy(update={"max_lr": spec.optimizer.lr})})
    return spec, locs


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)  # type: ignore[return-value]


def _call_model(value: Any, table: dict, what: str, loc: Location):
    if isinstance(value, Symbol):
        # a bare name such as `RandomHorizontalFlip` without parentheses
        value = CallValue(value.name, (), (), value.loc, value.loc)
    if not isinstance(value, CallValue):
        raise SpecError(f"expected a {what} such as {next(iter(table))}(...), got {_type_name(value)}", loc,
                        code="E063")
    cls = table.get(value.name)
    if cls is None:
        if what == "transform" and value.name in S.IMPLICIT_TRANSFORMS:
            hint = ("images are tensors from the start: leave ToTensor/ToPILImage out, and write normalization as "
                    "`normalize Normalize(mean=..., std=...)`")
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


def parse_override(text: str) -> tuple[str, Any]:
    """'classes=100' -> ('classes', 100); the value is read as a spec value (numbers, strings, tuples, ...)."""
    if "=" not in text:
        raise UsageError(f"--set {text!r}: expected NAME=VALUE, e.g. --set classes=100")
    name, _, value_text = text.partition("=")
    name = name.strip()
    if not re.fullmatch(r"[A-Za-z_]\w*", name):
        raise UsageError(f"--set {text!r}: {name!r} is not a constant name")
    try:
        prog = parse(f"{name} = {value_text}\n")
        value = evaluate(prog.consts[name].value, Constants({}, {}))
    except SpecError as e:
        raise UsageError(f"--set {text!r}: cannot read the value ({e.message})") from None
    if isinstance(value, (CallValue, Symbol)):
        raise UsageError(f"--set {text!r}: the value must be a number, string, boolean or tuple")
    return name, value


def elaborate(prog: Program, *, input: tuple[int, int, int] | None = None, constants: dict[str, Any] | None = None,
              filename: str | None = None, source: str | None = None) -> Network:
    """Turn a parsed program into a validated `Network` at the given input size (default: the spec's)."""
    overrides = dict(constants or {})
    for name in overrides:
        if name not in prog.consts:
            hint = did_you_mean(name, prog.consts)
            known = ", ".join(prog.consts) or "none"
            raise UsageError(f"--set {name}: the spec defines no constant {name!r}"
                             f" ({hint or 'its constants: ' + known})")
    consts = Constants(prog.consts, overrides)
    try:
        values = consts.all()
        if prog.layers is None:
            raise SpecError("the spec has no `layers` section", Location(1, 1),
                            hint="add `layers { name Layer(...) ... }`", code="E012")
        if input is None:
            input = prog.input
        if input is None:
            raise SpecError("the spec gives no input size", prog.network_loc or Location(1, 1),
                            hint="add a line such as `input 3x32x32` (C x H x W), or pass --input", code="E013")
        layers = _Expander(prog, consts).items(prog.layers, consts)
        if not layers:
            raise SpecError("the `layers` section is empty", prog.layers_loc, code="E012")
        if prog.forward is not None:
            steps = _forward(prog, layers, consts)
            explicit = True
        else:
            steps = [FStep("module", n.name, n.loc) for n in layers]
            explicit = False
        train, train_locs = _train(prog, consts, (input[1], input[2]))
        return Network(prog.network or "Net", tuple(input), prog.input_loc, layers, steps, explicit, train,  # type: ignore[arg-type]
                       values, filename, source, train_locs)
    except SpecError as e:
        raise e.attach(filename, source)


def load_spec(source: str | bytes, filename: str | None = None, *, input=None, constants=None) -> Network:
    """Parse and elaborate spec text."""
    prog = parse(source, filename)
    from .parse import normalize_source

    return elaborate(prog, input=input, constants=constants, filename=filename, source=normalize_source(source))
