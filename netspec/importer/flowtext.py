"""A traced module's graph as the statements of `forward(x) { ... }`, written to be read.

A value used once is written inside the expression that uses it (`out = relu(bn1(conv1(x)))`), up to three calls
deep; a value used more than once, or deeper, gets a name. A name whose value is read for the last time by the
statement that defines a new one is given to the new value (`x = cat(x, denselayer1(x))`), as people write
forward()s; otherwise a new name (`out`, `out2`, ...). `chunk` and `split` assign their parts by name
(`x1, x2 = chunk(x, 2)`).

A graph that only calls the module's children, each once, in the order they are registered, each on the previous
one's output, is a chain: the module needs no forward (`chain`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

from torch import fx

from .fxcalls import binary, bind, render_call, signature
from .render import value_text
from .trace import fail, is_getitem

MAX_DEPTH = 3  # calls nested in one expression
_TUPLE_OPS = ("chunk", "split")


def chain(graph: fx.Graph, children: list[str]) -> bool:
    """Whether the graph runs `children` one after the other, in order, each once, on the previous output."""
    nodes = [n for n in graph.nodes if n.op not in ("placeholder", "output")]
    ph = [n for n in graph.nodes if n.op == "placeholder"]
    out = next(n for n in graph.nodes if n.op == "output")
    if len(ph) != 1 or [n.target for n in nodes] != children or any(n.op != "call_module" for n in nodes):
        return False
    prev = ph[0]
    for n in nodes:
        if n.args != (prev,) or n.kwargs:
            return False
        prev = n
    return out.args[0] is prev


@dataclass
class _Writer:
    graph: fx.Graph
    path: str
    children: set[str]
    params: set[str]
    expr: dict[fx.Node, str] = field(default_factory=dict)
    depth: dict[fx.Node, int] = field(default_factory=dict)
    binop: set[fx.Node] = field(default_factory=set)
    lines: list[str] = field(default_factory=list)
    taken: set[str] = field(default_factory=set)
    named: set[fx.Node] = field(default_factory=set)
    holder: dict[str, fx.Node] = field(default_factory=dict)  # name -> the value it holds now
    last_use: dict[fx.Node, int] = field(default_factory=dict)  # value -> index of the last line reading it

    def write(self) -> list[str]:
        order = [n for n in self.graph.nodes]
        inline = self._inlined(order)
        self._plan_last_uses(order, inline)
        for n in order:
            if n.op == "placeholder":
                self._name(n, "x")
            elif n.op == "output":
                self.lines.append(f"return {self._ref(n.args[0])}")
            elif is_getitem(n):
                continue  # named by the chunk or split it takes from
            elif n.op == "get_attr":
                if str(n.target) not in self.params:
                    raise fail(f"{self._where(n)} reads {n.target!r}, which is not a parameter of it", code="E221")
                self.expr[n], self.depth[n] = str(n.target), 0
            else:
                text = self._call(n)
                if n in inline:
                    self.expr[n] = text
                else:
                    self._assign(n, text)
        return self.lines

    # ---- what is written inline ------------------------------------------------------------------------------

    def _inlined(self, order: list[fx.Node]) -> set[fx.Node]:
        inline: set[fx.Node] = set()
        depth: dict[fx.Node, int] = {}
        for n in order:
            if n.op in ("placeholder", "output", "get_attr") or is_getitem(n):
                depth[n] = 0
                continue
            d = 1 + max((depth.get(a, 0) for a in _node_args(n) if a in inline), default=0)
            depth[n] = d
            users = list(n.users)
            if len(users) == 1 and d < MAX_DEPTH and not self._tuple_op(n) and users[0].op != "output":
                inline.add(n)
        return inline

    def _plan_last_uses(self, order: list[fx.Node], inline: set[fx.Node]) -> None:
        """For each value written with a name: the index of the last statement that reads it."""
        line_of: dict[fx.Node, int] = {}
        k = 0
        for n in order:
            if n.op in ("placeholder", "get_attr") or is_getitem(n):
                continue
            if n in inline:
                continue
            line_of[n] = k
            k += 1
        for n in reversed(order):  # an inlined value is read where its user is written
            if n in inline:
                line_of[n] = line_of[next(iter(n.users))]
        for n in order:
            for a in _node_args(n):
                at = line_of.get(n, -1)
                src = a.args[0] if is_getitem(a) else a
                if is_getitem(a):
                    self.last_use[a] = max(self.last_use.get(a, -1), at)
                if isinstance(src, fx.Node):
                    self.last_use[src] = max(self.last_use.get(src, -1), at)
        self._line_of = line_of

    # ---- a call -----------------------------------------------------------------------------------------------

    def _call(self, n: fx.Node) -> str:
        op = binary(n)
        if op is not None:
            a, b = n.args[0], n.args[1]
            if not (isinstance(a, fx.Node) and isinstance(b, fx.Node)) or n.kwargs:
                raise fail(
                    f"{self._where(n)}: {op} with a number, {_describe(n)}, cannot be written in a spec", code="E221"
                )
            self.binop.add(n)
            return f"{self._operand(a)} {op} {self._operand(b)}"
        if n.op == "call_module":
            target = str(n.target)
            if target not in self.children:
                raise fail(
                    f"{self._where(n)} calls {target!r}, a child's child: a spec's forward calls its own children",
                    code="E221",
                    hint="a ModuleList or ModuleDict iterated in forward() cannot be written in a spec",
                )
            if len(n.args) != 1 or n.kwargs:
                raise fail(
                    f"{self._where(n)} calls {target!r} with {len(n.args)} arguments: a child takes one", code="E221"
                )
            return f"{target}({self._ref(n.args[0])})"
        sig = signature(n)
        if sig is None:
            raise fail(
                f"{self._where(n)} calls {_describe(n)}, which the language has no operation for",
                code="E221",
                hint="a forward may call the module's children and the operations of docs/language.md "
                "(cat, add, mul, flatten, mean, pooling, chunk, split, channel_shuffle, permute, layer_norm, "
                "dropout, stochastic_depth, activations)",
            )
        tensors, fields = bind(n, sig)
        for key in ("weight", "bias"):
            if key in fields and isinstance(fields[key], fx.Node):
                fields[key] = _Raw(self._ref(fields[key]))
        return render_call(sig.op, [self._ref(t) for t in tensors], fields, _text)

    def _operand(self, a: Any) -> str:
        text = self._ref(a)
        return f"({text})" if a in self.binop and a not in self.named else text

    def _ref(self, a: Any) -> str:
        if isinstance(a, fx.Node):
            if a not in self.expr:
                raise fail(f"{self._where(a)}: {_describe(a)} is not a tensor the spec can name", code="E221")
            return self.expr[a]
        raise fail(f"{self.path or 'the model'}: a constant {a!r} where a tensor is expected", code="E221")

    # ---- names -------------------------------------------------------------------------------------------------

    def _assign(self, n: fx.Node, text: str) -> None:
        line = self._line_of[n]
        if self._tuple_op(n):
            parts = sorted((u for u in n.users if is_getitem(u)), key=lambda u: u.args[1])  # type: ignore[arg-type,return-value]
            count = _parts(n)
            if len(parts) != len(n.users) or [u.args[1] for u in parts] != list(range(count)):
                raise fail(f"{self._where(n)}: every part of {_describe(n)} must be used, each once", code="E221")
            names = [self._fresh(f"x{i + 1}", line, [n]) for i in range(count)]
            for u, name in zip(parts, names):
                self._name(u, name)
            self.lines.append(f"{', '.join(names)} = {text}")
            return
        name = self._fresh("out", line, self._reads(n))
        self.lines.append(f"{name} = {text}")
        self._name(n, name)

    def _fresh(self, base: str, line: int, args: list[fx.Node]) -> str:
        """A name for a value defined at `line`: the name of an argument read for the last time there, else new."""
        for name, held in self.holder.items():
            if held in args and self.last_use.get(held, -1) <= line and self.last_use.get(held, -1) >= 0:
                return name
        for name, held in self.holder.items():  # a name of this kind whose value nothing reads any more
            if self.last_use.get(held, -1) < line and name.rstrip("0123456789") == base.rstrip("0123456789"):
                return name
        name, k = base, 2
        while name in self.taken or name in self.children or name in self.params:
            name, k = f"{base}{k}", k + 1
        return name

    def _reads(self, n: fx.Node) -> list[fx.Node]:
        """The named values a statement reads, through the expressions written inside it."""
        out: list[fx.Node] = []
        for a in _node_args(n):
            if a in self.named:
                out.append(a)
            elif a in self.expr:
                out += self._reads(a)
        return out

    def _name(self, n: fx.Node, name: str) -> None:
        self.expr[n] = name
        self.named.add(n)
        self.taken.add(name)
        self.holder[name] = n

    def _tuple_op(self, n: fx.Node) -> bool:
        sig = signature(n)
        return sig is not None and sig.op in _TUPLE_OPS

    def _where(self, n: fx.Node) -> str:
        return f"{self.path!r}" if self.path else "the model"


class _Raw(str):
    """A value written as it is (a parameter's name in layer_norm's weight=)."""


def _text(v: Any) -> str:
    return str(v) if isinstance(v, _Raw) else value_text(v)


def _node_args(n: fx.Node) -> list[fx.Node]:
    return [a for a in n.all_input_nodes]


def _parts(n: fx.Node) -> int:
    return max(int(str(u.args[1])) for u in n.users if is_getitem(u)) + 1


def _describe(n: fx.Node) -> str:
    """`F.interpolate (FX node 'interpolate', model.py:12: return F.interpolate(x, scale_factor=2.0))`."""
    if isinstance(n.target, str):
        what = f".{n.target}()" if n.op == "call_method" else repr(n.target)
    else:
        module = getattr(n.target, "__module__", None) or ""
        short = {"torch.nn.functional": "F", "_operator": "operator"}.get(module, module)
        what = f"{short}.{getattr(n.target, '__name__', repr(n.target))}" if short else repr(n.target)
    return f"{what} (FX node {n.name!r}, {_source(n)})"


def _source(n: fx.Node) -> str:
    """The line of the model's source that made the node: `net.py:12: return F.interpolate(...)` (the first frame
    of the trace outside torch itself)."""
    trace = str(n.meta.get("stack_trace") or "").strip().splitlines()
    for i, line in enumerate(trace):
        m = re.match(r'\s*File "([^"]+)", line (\d+)', line)
        if m and not os.path.abspath(m.group(1)).startswith(_TORCH):
            code = trace[i + 1].strip() if i + 1 < len(trace) else ""
            return f"{os.path.basename(m.group(1))}:{m.group(2)}: {code}".rstrip(": ")
    return "no source line recorded"


_TORCH = os.path.dirname(os.path.abspath(fx.__file__)).rsplit(os.sep, 1)[0] + os.sep  # torch's own folder


def write_forward(graph: fx.Graph, path: str, children: set[str], params: set[str]) -> list[str]:
    """The statements of the module's forward(x) { ... }, without indentation."""
    return _Writer(graph, path, children, params).write()
