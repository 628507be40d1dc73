"""A live model's module tree as spec text: one `module` per class, children as declared, forward as traced.

Every module is one of three kinds: one of netspec's layers (a line: `conv1 Conv2d(64, kernel_size=7, ...)`), a
plain `nn.Sequential` (written in place: `layer1 Sequential { ... }`), or a module of a class of its own, written
once as `module ClassName(parameters) { children; forward(x) { ... } }` and used as `ClassName(values)`.

The instances of a class are written alike where they can be: their bodies are compared with the numbers taken out,
and the numbers that differ between instances become the module's parameters (`Bottleneck(planes, stride)`), named
after the argument they are given for. Instances whose bodies differ otherwise (a Bottleneck with a downsample and
one without) are variants: `Bottleneck`, `Bottleneck_2`. Runs of lines that differ only in a counter fold into
`repeat`s (`repeat.fold`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from torch import fx, nn

from ..lang import LAYERS
from .align import align_defaults
from .flowtext import chain, write_forward
from .repeats import fold
from .trace import fail, list_called, trace

INDENT = "    "
# a number standing alone (not part of a name such as conv1, nor of a size such as 64x56x56)
_NUMBER = re.compile(r"(?<!\w)-?\d+(?:\.\d+)?(?:e[-+]?\d+)?(?!\w)(?!\.\d)")
_KEY_BEFORE = re.compile(r"(\w+)=$")
_CALL_BEFORE = re.compile(r"(\w+)\($")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*$")
_CHILD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:-[A-Za-z0-9_]+)*$")  # RegNet's block1-0 too
_USE_BEFORE = re.compile(r"([A-Za-z_]\w*)\(([^()]*)$")  # `Name(a, b, ` before a number: the call and its args
_DECLARED = re.compile(r"(?:kept (?:\S+ )?)?([A-Za-z_]\w*) [A-Z]")  # `conv1 Conv2d(...`: the child's name
Lazy = Callable[[], list[str]]  # lines, written once the classes they use are named


@dataclass
class Instance:
    """One module of a class of its own: its body lines, with the uses of its children as placeholders."""

    module: nn.Module
    path: str
    cls: str  # the Python class's name
    key: str  # the class, fully qualified
    body: Lazy = lambda: []
    decls: Lazy = lambda: []
    forward: list[str] = field(default_factory=list)
    height: int = 0
    definition: str = ""  # the module's name in the spec, set when its class is written
    args: tuple[str, ...] = ()  # the values of its definition's parameters


@dataclass
class Tree:
    """What the model's modules become: leaf layers' text, instances of classes, kept children's inputs."""

    leaf_text: Callable[[nn.Module, str], str]
    is_layer: Callable[[nn.Module], bool]
    kept_input: Callable[[str], tuple[int, ...] | None]
    module_at: Callable[[str], nn.Module]
    folded: bool = True  # runs folded into repeats (off: the plain form)
    instances: list[Instance] = field(default_factory=list)
    definitions: list[list[str]] = field(default_factory=list)
    list_inputs: set[str] = field(default_factory=set)  # paths of modules called with lists (see trace)
    parameter_names: dict[str, list[str]] = field(default_factory=dict)  # definition -> its parameters' names

    def fold(self, lines: list[str], numbered: bool) -> list[str]:
        return fold(lines, numbered) if self.folded else lines

    # ---- describing a module -----------------------------------------------------------------------------------

    def item(self, name: str | None, m: nn.Module, path: str) -> tuple[Lazy, int]:
        """What declares a child (a layer, a Sequential, a use), rendered later, and its height in the tree."""
        prefix = f"{name} " if name is not None else ""
        if not m._modules and self.is_layer(m):
            text = prefix + self.leaf_text(m, path)
            return (lambda: [text]), 0
        if type(m) is nn.Sequential:
            items, h = self.sequential_items(m, path)
            return (lambda: _sequential(prefix, items())), h
        inst = self.instance(m, path)
        return (lambda: [prefix + f"{inst.definition}({', '.join(inst.args)})"]), inst.height + 1

    def sequential_items(self, m: nn.Module, path: str) -> tuple[Lazy, int]:
        kids = [(k, c) for k, c in m._modules.items() if c is not None]
        numbered = [k for k, _ in kids] == [str(i) for i in range(len(kids))]
        items: list[Lazy] = []
        height = 0
        for k, c in kids:
            got, h = self.item(None if numbered else _child_name(k, path), c, _join(path, k))
            items.append(got)
            height = max(height, h)
        return (lambda: self.fold(_render(items), numbered)), height

    def instance(self, m: nn.Module, path: str) -> Instance:
        """A module of a class of its own: traced, its children declared, its forward written."""
        kind = type(m)
        inst = Instance(m, path, kind.__name__, f"{kind.__module__}.{kind.__qualname__}")
        self.instances.append(inst)
        if isinstance(m, nn.Sequential) and kind.forward is nn.Sequential.forward and path not in self.list_inputs:
            inst.body, inst.height = self.sequential_items(m, path)
            return inst
        traced = trace(m, path, list_input=path in self.list_inputs)
        for child in list_called(traced.graph):
            self.list_inputs.add(_join(path, child))
        kids = [(k, c) for k, c in m._modules.items() if c is not None]
        called = {str(n.target) for n in traced.graph.nodes if n.op == "call_module"}
        names = [k for k, _ in kids]
        params = self.parameters(m, path)
        decls: list[Lazy] = [_line(ln) for ln in params]
        for k, c in kids:
            got, h = self.item(_child_name(k, path), c, _join(path, k))
            decls.append(self.kept(got, _join(path, k)) if k not in called else got)
            inst.height = max(inst.height, h)
        forward: list[str] = []
        if not chain(traced.graph, names) or params:
            lines = write_forward(traced.graph, path, set(names), {p.split()[0] for p in params})
            forward = ["", *_forward_block(_return_inline(self.fold(lines, False)))]
        inst.decls = lambda: self.fold(_render(decls), False)
        inst.forward = forward
        inst.body = lambda: inst.decls() + forward
        return inst

    def parameters(self, m: nn.Module, path: str) -> list[str]:
        """A module's own parameters, and its buffers as parameters that nothing trains (`requires_grad=false`)."""
        lines = []
        persistent = [k for k, b in m._buffers.items() if b is not None and k not in m._non_persistent_buffers_set]
        for k in m._buffers:
            if m._buffers[k] is not None and k not in persistent:
                raise fail(
                    f"{path or 'the model'} holds a buffer {k!r} that is not in its state_dict: a spec's tensors are",
                    code="E222",
                    hint="a spec declares Parameters, which the state_dict holds",
                )
        for k, p in [*m._parameters.items(), *[(k, m._buffers[k]) for k in persistent]]:
            if p is None:
                continue
            if not p.is_floating_point():
                raise fail(f"{path or 'the model'} holds {k!r} of {p.dtype}: a spec's tensors are float", code="E222")
            shape = "(" + ", ".join(str(d) for d in p.shape) + ("," if p.dim() == 1 else "") + ")"
            flat = p.detach().flatten()
            same = flat.numel() > 0 and bool((flat == flat[0]).all())
            # the shortest decimal that gives the same float32 (1e-06, not 9.999999974752427e-07)
            value = f", value={_float32_text(flat[0].item())}" if same and float(flat[0]) != 0.0 else ""
            frozen = ", requires_grad=false" if k in persistent or not p.requires_grad else ""
            lines.append(f"{k} Parameter({shape}{value}{frozen})")
        return lines

    def kept(self, got: Lazy, path: str) -> Lazy:
        """A child the forward never runs (an auxiliary head): declared `kept`, with the input it would take."""
        size = self.kept_input(path)
        module = self.module_at(path)
        if size is None and _needs_input(module, self.is_layer):
            raise fail(
                f"{path!r} is never run by the forward, in eval mode or in training, so the input it takes (which "
                f"its sizes follow from) cannot be found",
                code="E223",
                hint="a spec keeps such a child with `kept CxHxW name ...`: write it by hand, or remove the child",
            )
        mark = "kept " + ("x".join(str(d) for d in size) + " " if size else "")

        def lines() -> list[str]:
            first, *rest = got()
            return [mark + first, *rest]

        return lines

    # ---- writing the classes -------------------------------------------------------------------------------------

    def write_classes(self) -> None:
        """Every class, lowest first: instances grouped by their bodies without numbers, parameters named."""
        by_class: dict[str, list[Instance]] = {}
        for inst in self.instances:
            by_class.setdefault(inst.key, []).append(inst)
        taken: set[str] = set()
        for key in sorted(by_class, key=lambda k: max(i.height for i in by_class[k])):
            group = by_class[key]
            bodies = align_defaults([i.body() for i in group])
            variants: dict[tuple[str, ...], list[int]] = {}
            for j, body in enumerate(bodies):
                variants.setdefault(tuple(_NUMBER.sub("#", ln) for ln in body), []).append(j)
            ranked = sorted(variants.values(), key=lambda members: -len(members))  # the commonest is plain Name
            plain = _children(bodies[ranked[0][0]])
            for v, members in enumerate(ranked):
                extra = [c for c in _children(bodies[members[0]]) if c not in plain]  # Bottleneck_downsample
                name = _definition_name(group[0].cls, v, taken, extra[0] if extra and v else None)
                taken.add(name)
                self._define(name, [group[j] for j in members], [bodies[j] for j in members])

    def _define(self, name: str, group: list[Instance], bodies: list[list[str]]) -> None:
        numbers = [[(m.start(), m.group()) for ln in body for m in [*_NUMBER.finditer(ln)]] for body in bodies]
        slots = list(zip(*[[v for _, v in ns] for ns in numbers]))  # per position: its value in each instance
        params: dict[tuple[str, ...], str] = {}
        names: dict[int, str] = {}
        for pos, values in enumerate(slots):
            if len(set(values)) == 1:
                continue
            if values not in params:
                params[values] = _param_name(bodies[0], pos, set(params.values()), self.parameter_names)
            names[pos] = params[values]
        lines = _substitute(bodies[0], names)
        self.parameter_names[name] = list(params.values())
        head = f"module {name}({', '.join(params.values())}) {{"
        self.definitions.append([head, *[INDENT + ln if ln else "" for ln in lines], "}"])
        for inst, _ in zip(group, bodies):
            inst.definition = name
        for j, inst in enumerate(group):
            inst.args = tuple(vals[j] for vals in params)


def _float32_text(x: float) -> str:
    """The shortest decimal that reads back as the same float32."""
    want = np.float32(x)
    for digits in range(1, 10):
        text = f"{x:.{digits}g}"
        if np.float32(float(text)) == want:
            return repr(float(text))
    return repr(x)


def _return_inline(lines: list[str]) -> list[str]:
    """`v = E` then `return v` is `return E` (not after a repeat, whose last line is its own)."""
    if len(lines) >= 2 and lines[-1].startswith("return ") and " = " in lines[-2]:
        name, expr = lines[-2].split(" = ", 1)
        if name == lines[-1][len("return ") :] and "," not in name and not lines[-2].startswith(("repeat", "}")):
            return [*lines[:-2], f"return {expr}"]
    return lines


def _forward_block(lines: list[str]) -> list[str]:
    """forward(x) { ... }, on one line when it is one short statement."""
    if len(lines) == 1 and len(lines[0]) <= 80:
        return [f"forward(x) {{ {lines[0]} }}"]
    return ["forward(x) {", *[INDENT + ln for ln in lines], "}"]


def _line(text: str) -> Lazy:
    return lambda: [text]


def _sequential(prefix: str, items: list[str]) -> list[str]:
    if not items:
        return [f"{prefix}Sequential {{ }}"]
    return [f"{prefix}Sequential {{", *[INDENT + ln for ln in items], "}"]


def _needs_input(m: nn.Module, is_layer: Callable[[nn.Module], bool]) -> bool:
    """Whether a module's sizes follow from its input: it, or a part of it, holds weights or is not a plain layer."""
    containers = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
    leaves = [c for c in m.modules() if not c._modules and not isinstance(c, containers)]
    return any(p is not None for p in m.parameters()) or any(not is_layer(c) for c in leaves)


def _render(items: list[Lazy]) -> list[str]:
    return [ln for it in items for ln in it()]


def _substitute(lines: list[str], names: dict[int, str]) -> list[str]:
    """The lines with the numbers at the given positions (counted over all lines) replaced by parameter names."""
    out, pos = [], 0
    for ln in lines:
        parts, last = [], 0
        for m in _NUMBER.finditer(ln):
            parts.append(ln[last : m.start()])
            parts.append(names.get(pos, m.group()))
            last, pos = m.end(), pos + 1
        out.append("".join(parts) + ln[last:])
    return out


def _param_name(lines: list[str], pos: int, taken: set[str], known: dict[str, list[str]]) -> str:
    """A parameter named after what it is given for: `stride=2` -> stride, `Conv2d(64` -> out_channels, `1..6` -> n;
    where that name is taken, prefixed with the child's name (`expand1x1_out_channels`)."""
    k = 0
    for ln in lines:
        for m in _NUMBER.finditer(ln):
            if k == pos:
                return _unique(_what(ln[: m.start()].rstrip(), known), _DECLARED.match(ln.strip()), taken)
            k += 1
    return _unique("size", None, taken)


def _what(before: str, known: dict[str, list[str]]) -> str:
    key, call = _KEY_BEFORE.search(before), _CALL_BEFORE.search(before)
    if before.endswith(".."):
        return "n"
    if key:
        return key.group(1)
    use = _USE_BEFORE.search(before)
    if use and use.group(1) in known:  # an argument of a module written above: its parameter's name
        index = use.group(2).count(",")
        names = known[use.group(1)]
        if index < len(names):
            return names[index]
    if call and call.group(1) in LAYERS and LAYERS[call.group(1)].POSITIONAL:
        return LAYERS[call.group(1)].POSITIONAL[0]  # Conv2d(64 -> out_channels, Dropout(0.2 -> p
    return "size"


def _unique(base: str, declared: re.Match[str] | None, taken: set[str]) -> str:
    if base in taken and declared is not None:
        base = f"{declared.group(1)}_{base}"
    name, i = base, 2
    while name in taken:
        name, i = f"{base}{i}", i + 1
    return name


def _children(body: list[str]) -> list[str]:
    """The names a module's body declares (its children), in order."""
    return [m.group(1) for ln in body if (m := _DECLARED.match(ln.strip())) is not None]


def _definition_name(cls: str, variant: int, taken: set[str], extra: str | None) -> str:
    """`Bottleneck`, a variant named after a child only it has (`Bottleneck_downsample`), or `Bottleneck_2`."""
    base = cls if _NAME.match(cls) else "Module"
    name = base if variant == 0 else f"{base}_{extra}" if extra and _NAME.match(extra) else f"{base}_{variant + 1}"
    i = variant + 2
    while name in taken:
        name, i = f"{base}_{i}", i + 1
    return name


def _child_name(k: str, path: str) -> str:
    if not _CHILD.match(k):
        raise fail(f"{_join(path, k)!r}: a child named {k!r} cannot be named in a spec", code="E221")
    return k


def _join(path: str, k: str) -> str:
    return f"{path}.{k}" if path else k


def graph_of(m: nn.Module) -> fx.Graph:  # for tests: one module's traced graph
    return trace(m, "").graph
