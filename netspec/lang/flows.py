"""`forward(x) { ... }`: a run order over named values, resolved into a `Flow` of steps (no torch).

A forward assigns values (`y = bn1(conv1(x))`, `a, b = chunk(x, 2)`) and returns one. A call names one of the
module's children (which takes one tensor) or an operation of `ops.OPS`; `a + b` and `a * b` on tensors are `add`
and `mul`. `if` and `repeat` are decided here, from constants, parameters and the input's shape: a condition never
depends on a tensor. Nested calls are unrolled into steps whose values have internal names (`%1`, ...).

Checked here, each at the place written: a value used before it is defined, a value defined and never used, a call
of a name that is neither a child nor an operation, a forward that returns nothing, a child declared and never run
(unless it is marked `kept`), and the arguments of every operation (pydantic, as for layers). Shapes are `shapes`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import Location, SpecError
from .functions import PURE_FUNCTIONS
from .hints import did_you_mean, few
from .network import Flow, FlowOp, Node
from .ops import OPS
from .syntax import Arg, Assign, BinOp, Call, Expr, IfStmts, Index, Neg, Not, Ref, Repeat, Return, TupleExpr
from .syntax import Flow as FlowDef
from .validate import CallValue, validated
from .values import Scope, condition, render_name, value_of

MAX_STEPS = 20_000


@dataclass
class _Value:
    """One definition of a value: its internal name, the name written, and where."""

    internal: str
    written: str | None  # None for the unnamed results of nested calls
    loc: Location


@dataclass(frozen=True, slots=True)
class _Tensors:
    """What a tensor expression gives: one value, or several (chunk, split) to unpack."""

    names: tuple[str, ...]
    loc: Location


@dataclass
class _Builder:
    children: dict[str, Node]
    span: Callable[[Repeat, Scope], Iterable[int]]
    ops: list[FlowOp] = field(default_factory=list)
    values: dict[str, _Value] = field(default_factory=dict)  # the name written -> its current definition
    defs: list[_Value] = field(default_factory=list)
    called: set[str] = field(default_factory=set)
    params: set[str] = field(default_factory=set)
    assigned: dict[str, Location] = field(default_factory=dict)  # every name the forward assigns, where first
    temps: int = 0
    output: str | None = None

    # ---- statements ----------------------------------------------------------------------------------------
    def run(self, stmts: Sequence[Any], scope: Scope) -> bool:
        """Run the statements until one returns (True then)."""
        for s in stmts:
            if isinstance(s, Return):
                self.output = self.one(self.tensor(s.value, scope), s.value.loc)
                return True
            if isinstance(s, Assign):
                self.assign(s, scope)
            elif isinstance(s, IfStmts):
                if self.run(s.then if self.condition(s.cond, scope) else s.orelse, scope):
                    return True
            elif isinstance(s, Repeat):
                for v in self.span(s, scope):
                    if self.run(s.items, Scope({s.var: v}, scope)):
                        return True
            if len(self.ops) > MAX_STEPS:
                raise SpecError(f"the forward has more than {MAX_STEPS:,} steps", s.loc, code="E048")
        return False

    def assign(self, s: Assign, scope: Scope) -> None:
        got = self.tensor(s.value, scope, len(s.targets))
        if len(s.targets) != len(got.names):
            n = len(got.names)
            raise SpecError(
                f"{len(s.targets)} name{'s' if len(s.targets) != 1 else ''} for {n} value{'s' if n != 1 else ''}",
                s.loc,
                hint="chunk and split give one value per part: a, b = chunk(x, 2)" if n > 1 else None,
                code="E056",
            )
        for target, loc, internal in zip(s.targets, s.target_locs, got.names):
            if target in self.params or target in self.children:
                raise SpecError(
                    f"{target!r} names a {'parameter' if target in self.params else 'child'} of the module: a "
                    f"value needs a name of its own",
                    loc,
                    code="E041",
                )
            self.define(target, loc, internal)

    def define(self, written: str, loc: Location, internal: str) -> None:
        """`written` now names the value `internal` (the result of the last step, or an existing value)."""
        fresh = self.ops and internal in self.ops[-1].targets and internal.startswith("%")
        name = self.fresh_name(written) if fresh else internal
        if fresh:  # the step's unnamed result takes the name written: no copy
            last = self.ops[-1]
            self.ops[-1] = FlowOp(
                tuple(name if t == internal else t for t in last.targets),
                last.kind,
                last.name,
                last.inputs,
                last.options,
                last.tensor_options,
                last.loc,
            )
        value = _Value(name, written, loc)
        self.values[written] = value
        self.defs.append(value)

    def fresh_name(self, written: str) -> str:
        taken = {d.internal for d in self.defs}
        if written not in taken:
            return written
        k = 2
        while f"{written}.{k}" in taken:
            k += 1
        return f"{written}.{k}"

    def condition(self, cond: Expr, scope: Scope) -> bool:
        if self.mentions_tensor(cond):
            raise SpecError(
                "a condition is decided before the network runs: it cannot depend on a tensor",
                cond.loc,
                hint="conditions use constants, parameters and the input's shape: if stride == 1 { ... }",
                code="E058",
            )
        return condition(cond, scope)

    # ---- expressions ----------------------------------------------------------------------------------------
    def mentions_tensor(self, e: Any) -> bool:
        if isinstance(e, Ref):
            return e.name in self.values or e.name in self.params
        if isinstance(e, Call):
            return e.template is not None or e.name in self.children or e.name in OPS
        if isinstance(e, BinOp):
            return self.mentions_tensor(e.left) or self.mentions_tensor(e.right)
        if isinstance(e, (Neg, Not)):
            return self.mentions_tensor(e.operand)
        if isinstance(e, TupleExpr):
            return any(self.mentions_tensor(i) for i in e.items)
        if isinstance(e, Index):
            return self.mentions_tensor(e.target) or self.mentions_tensor(e.index)
        return False

    def tensor(self, e: Expr, scope: Scope, names: int = 1) -> _Tensors:
        """The tensor value(s) an expression gives, its steps appended; `names`: how many it is assigned to."""
        if isinstance(e, Ref):
            return _Tensors((self.read(e),), e.loc)
        if isinstance(e, Call):
            return self.call(e, scope, names)
        if isinstance(e, BinOp) and e.op in ("+", "*") and self.mentions_tensor(e):
            a = self.one(self.tensor(e.left, scope), e.left.loc)
            b = self.one(self.tensor(e.right, scope), e.right.loc)
            return self.emit(
                "op", "add" if e.op == "+" else "mul", (a, b), OPS["add" if e.op == "+" else "mul"](), (), e.loc
            )
        if self.mentions_tensor(e):
            raise SpecError(
                "this cannot be done to a tensor in a forward",
                e.loc,
                hint="tensors are added (a + b), multiplied (a * b), or passed to a child or an operation",
                code="E050",
            )
        raise SpecError(
            f"a tensor is needed here, and {value_of(e, scope)!r} is a constant",
            e.loc,
            hint="forward(x) names its input x; values are the results of calls: y = conv1(x)",
            code="E052",
        )

    def one(self, t: _Tensors, loc: Location) -> str:
        if len(t.names) != 1:
            raise SpecError(
                f"this gives {len(t.names)} values: unpack them first",
                loc,
                hint="a, b = chunk(x, 2)",
                code="E056",
            )
        return t.names[0]

    def read(self, ref: Ref) -> str:
        if ref.name in self.values:
            return self.values[ref.name].internal
        if ref.name in self.params:
            return "@" + ref.name
        if ref.name in self.children:
            raise SpecError(
                f"{ref.name!r} is a child of the module: call it on a value, {ref.name}(x)",
                ref.loc,
                code="E052",
            )
        if ref.name in self.assigned:
            at = self.assigned[ref.name]
            raise SpecError(
                f"the value {ref.name!r} is used before it is defined",
                ref.loc,
                hint=f"it is defined at line {at.line}: compute it before this line",
                code="E052",
            )
        known = list(self.values) + sorted(self.params)
        raise SpecError(
            f"no value named {ref.name!r} is defined here",
            ref.loc,
            hint=did_you_mean(ref.name, known) or f"values so far: {few(known)}",
            code="E052",
        )

    def call(self, call: Call, scope: Scope, names: int = 1) -> _Tensors:
        name = render_name(call.template, scope) if call.template is not None else call.name
        if name in self.children:
            return self.child_call(name, call, scope)
        if name in OPS:
            return self.op_call(name, call, scope, names)
        hint = did_you_mean(name, [*self.children, *OPS])
        if name in PURE_FUNCTIONS:
            hint = f"{name}() computes a constant, not a tensor"
        raise SpecError(
            f"{name!r} is not a child of this module nor an operation",
            call.name_loc,
            hint=hint or f"children: {few(self.children)}; operations: {few(OPS)}",
            code="E050",
        )

    def child_call(self, name: str, call: Call, scope: Scope) -> _Tensors:
        child = self.children[name]
        if child.kept:
            raise SpecError(
                f"{name!r} is marked kept: it is registered but never run",
                call.name_loc,
                hint=f"remove `kept` from {name} to run it",
                code="E057",
            )
        if child.layer == "Parameter":
            raise SpecError(f"{name!r} is a parameter, not a module: use it as a value", call.name_loc, code="E050")
        if len(call.args) != 1 or call.args[0].name is not None:
            raise SpecError(
                f"a child is called on one tensor: {name}(x)", call.loc, hint=f"{name} is a {_what(child)}", code="E031"
            )
        x = self.one(self.tensor(call.args[0].value, scope), call.args[0].loc)
        self.called.add(name)
        return self.emit("child", name, (x,), None, (), call.name_loc)

    def op_call(self, name: str, call: Call, scope: Scope, names: int = 1) -> _Tensors:
        model = OPS[name]
        positional = [a for a in call.args if a.name is None]
        count = len(positional) if model.TENSORS is None else model.TENSORS
        if len(positional) < max(count, 1):
            raise SpecError(
                f"{name}() takes {'one or more tensors' if model.TENSORS is None else _tensors(count)} first",
                call.loc,
                hint=model.signature(),
                code="E031",
            )
        if model.TENSORS is None:  # cat(a, b, ..., dim=1): every positional argument is a tensor
            tensor_args, rest = positional, []
        else:
            tensor_args, rest = positional[:count], positional[count:]
        inputs = tuple(self.one(self.tensor(a.value, scope), a.loc) for a in tensor_args)
        tensor_kw = tuple(
            (a.name, self.one(self.tensor(a.value, scope), a.loc))
            for a in call.args
            if a.name is not None and a.name in model.TENSOR_KEYWORDS
        )
        kw = [a for a in call.args if a.name is not None and a.name not in model.TENSOR_KEYWORDS]
        options = validated(model, _call_value(name, rest, kw, call, scope))
        return self.emit("op", name, inputs, options, tensor_kw, call.name_loc, names)

    def emit(
        self, kind: str, name: str, inputs: tuple[str, ...], options: Any, tensor_kw: tuple[tuple[str, str], ...],
        loc: Location, names: int = 1,
    ) -> _Tensors:  # fmt: skip
        parts = _outputs(name, options, names)
        targets = []
        for _ in range(parts):
            self.temps += 1
            targets.append(f"%{self.temps}")
        self.ops.append(FlowOp(tuple(targets), kind, name, inputs, options, tensor_kw, loc))
        return _Tensors(tuple(targets), loc)


def _outputs(name: str, options: Any, names: int) -> int:
    """How many values a step gives: a part per chunk or section, else one. A split by size, `a, b = split(x, 16)`,
    gives as many parts as the size of its dimension makes, known only to shapes: here it gives the `names` it is
    assigned to, and shapes checks that the dimension makes that many."""
    if name == "chunk":
        return int(options.chunks)
    if name == "split":
        sections = options.split_size_or_sections
        return len(sections) if isinstance(sections, tuple) else names
    return 1


def _tensors(n: int) -> str:
    return "one tensor" if n == 1 else f"{n} tensors"


def _what(node: Node) -> str:
    return node.layer or node.composite or "module"


def _call_value(name: str, positional: list[Arg], keywords: list[Arg], call: Call, scope: Scope) -> CallValue:
    args = tuple((value_of(a.value, scope), a.loc) for a in positional)
    kwargs = tuple((a.name or "", value_of(a.value, scope), a.name_loc or a.loc, a.loc) for a in keywords)
    return CallValue(name, args, kwargs, call.loc, call.name_loc)


def resolve_flow(
    flow: FlowDef, children: Sequence[Node], scope: Scope, span: Callable[[Repeat, Scope], Iterable[int]]
) -> Flow:
    """The run order of `flow` over `children`, every name resolved and checked (see the module's docstring)."""
    b = _Builder({c.name: c for c in children}, span)
    b.params = {c.name for c in children if c.layer == "Parameter"}
    b.values[flow.input] = _Value(flow.input, flow.input, flow.input_loc)
    b.defs.append(b.values[flow.input])
    b.assigned = _assigned(flow.stmts)
    if not b.run(flow.stmts, scope) or b.output is None:
        last = next((d.written for d in reversed(b.defs) if d.written is not None), flow.input)
        raise SpecError(
            "this forward returns nothing",
            Location(flow.loc.line, flow.loc.column, flow.loc.column + len("forward")),
            hint=f"end it with `return` and the value the module gives: return {last}",
            code="E054",
        )
    _check_used(b, flow)
    return Flow(flow.input, tuple(b.ops), b.output, flow.loc, tuple(sorted(b.params)))


def _assigned(stmts: Sequence[Any], out: dict[str, Location] | None = None) -> dict[str, Location]:
    """Every name the statements assign (in both branches of an `if`, in repeats), where it is first assigned."""
    out = {} if out is None else out
    for s in stmts:
        if isinstance(s, Assign):
            for target, loc in zip(s.targets, s.target_locs):
                out.setdefault(target, loc)
        elif isinstance(s, IfStmts):
            _assigned(s.then, out)
            _assigned(s.orelse, out)
        elif isinstance(s, Repeat):
            _assigned(s.items, out)
    return out


def _check_used(b: _Builder, flow: FlowDef) -> None:
    read = {i for op in b.ops for i in (*op.inputs, *(v for _, v in op.tensor_options))} | {b.output}
    for d in b.defs:
        if d.written is not None and d.internal not in read:
            what = "the input" if d.internal == flow.input else "the value"
            raise SpecError(
                f"{what} {d.written!r} is never used",
                d.loc,
                hint="use it, or remove what computes it",
                code="E053",
            )
    for name, child in b.children.items():
        if child.kept:
            continue
        used = name in b.called or ("@" + name) in read
        if not used:
            what = "parameter" if child.layer == "Parameter" else "child"
            how = "used in" if child.layer == "Parameter" else "run by"
            raise SpecError(
                f"{what} {name!r} is declared but never {how} the forward",
                child.loc,
                hint=f"use {name} in the forward, remove it, or mark it `kept {name} ...` to keep its weights",
                code="E051",
            )
