"""A small model of layer stacks (`Layer`, `Seq`, `Res`, and the sugar `Rep`, `Blk`, `Fn`, `ResStep`), written as
spec text (`render_spec`, and `Writer` with the language's sugar: constants with arithmetic, `repeat`, blocks,
`forward`), and a torch reference that runs such a stack directly with `torch.nn` (in_channels & co. taken from the
real tensor).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import torch
from hypothesis import strategies as st
from torch import nn

# ----------------------------------------------------------------------------------------------------------------
# A model of layer stacks, rendered as spec text, and a torch reference that runs it without netspec
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layer:
    kind: str
    args: tuple = ()  # positional values, in PyTorch's order without the inferred argument
    kwargs: tuple = ()  # (name, value) pairs
    name: str | None = None


@dataclass(frozen=True)
class Seq:
    items: tuple
    name: str | None = None


@dataclass(frozen=True)
class Res:
    body: tuple
    shortcut: tuple | None = None
    name: str | None = None


def fmt_value(v: Any) -> str:
    """A Python value as spec text."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "None"
    if isinstance(v, str):
        return repr(v)
    if isinstance(v, (tuple, list)):
        inner = ", ".join(fmt_value(x) for x in v)
        return f"({inner},)" if len(v) == 1 else f"({inner})"
    if isinstance(v, float):
        return repr(v) if ("." in repr(v) or "e" in repr(v)) else repr(v) + ".0"
    return str(v)


def fmt_call(layer: Layer, value=fmt_value) -> str:
    parts = [value(a) for a in layer.args] + [f"{k}={value(v)}" for k, v in layer.kwargs]
    return f"{layer.kind}({', '.join(parts)})"


def render_items(items, indent: str = "    ") -> list[str]:
    """Plain rendering (no sugar): one line per layer, composites in braces."""
    out = []
    for it in items:
        prefix = f"{it.name} " if it.name else ""
        if isinstance(it, Layer):
            out.append(f"{indent}{prefix}{fmt_call(it)}")
        elif isinstance(it, Seq):
            out.append(f"{indent}{prefix}Sequential {{")
            out += render_items(it.items, indent + "    ")
            out.append(f"{indent}}}")
        else:
            out.append(f"{indent}{prefix}Residual {{")
            out += render_items(it.body, indent + "    ")
            if it.shortcut is None:
                out.append(f"{indent}}}")
            else:
                out.append(f"{indent}}} shortcut {{")
                out += render_items(it.shortcut, indent + "    ")
                out.append(f"{indent}}}")
    return out


def render_spec(items, input: tuple[int, int, int]) -> str:
    lines = [f"input {input[0]}x{input[1]}x{input[2]}", "layers {"] + render_items(items) + ["}"]
    return "\n".join(lines) + "\n"


class Stricter(Exception):
    """netspec refuses this on purpose although torch would run it (the reason is the message)."""


class TorchFailure(Exception):
    """torch itself refuses this stack (constructor or forward raised)."""


_INFERRED = {
    "Conv2d": "in_channels",
    "ConvTranspose2d": "in_channels",
    "BatchNorm2d": "num_features",
    "BatchNorm1d": "num_features",
    "GroupNorm": "num_channels",
    "Linear": "in_features",
    "LayerNorm": "normalized_shape",
    "LayerNorm2d": "normalized_shape",
}
_IMAGE_ONLY = (
    "Conv2d",
    "ConvTranspose2d",
    "BatchNorm2d",
    "MaxPool2d",
    "AvgPool2d",
    "AdaptiveAvgPool2d",
    "AdaptiveMaxPool2d",
    "Upsample",
    "ReflectionPad2d",
    "ReplicationPad2d",
    "ZeroPad2d",
    "Dropout2d",
)
# layers that need a (C, H, W) image and so refuse one made channels-last by a Permute, and layers over the last
# dimension, which refuse a (C, H, W) image (its last dimension is its width): netspec's rules, stricter than torch
_CHANNELS_FIRST = (*_IMAGE_ONLY, "GroupNorm", "LayerNorm2d")
_LAST_DIM = ("Linear", "LayerNorm")
_TORCH_POSITIONAL: dict[str, list[str]] = {}


def torch_class(kind: str) -> type[nn.Module]:
    """The class a layer kind is in torch: torch.nn's, or torchvision's for the layers torch.nn lacks (written out
    here, not taken from netspec's table, so that the reference does not share netspec's mistakes)."""
    if kind == "LayerNorm2d":
        from torchvision.models.convnext import LayerNorm2d

        return LayerNorm2d
    if kind in ("Permute", "StochasticDepth"):
        import torchvision.ops

        return getattr(torchvision.ops, kind)
    return getattr(nn, kind)


def torch_positional(kind: str) -> list[str]:
    """PyTorch's own positional order (from the constructor's signature), without the inferred argument."""
    if kind not in _TORCH_POSITIONAL:
        import inspect

        names = [
            p.name
            for p in inspect.signature(torch_class(kind)).parameters.values()
            if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD and p.name not in ("device", "dtype")
        ]
        _TORCH_POSITIONAL[kind] = [n for n in names if n != _INFERRED.get(kind)]
    return _TORCH_POSITIONAL[kind]


def _plain(v):
    if isinstance(v, list):
        return tuple(v)
    return v


_LAYOUT = "_netspec_layout"  # an attribute of a reference tensor: its layout, as netspec's walk tracks it


def layout(x: torch.Tensor) -> str:
    """`chw` (an image), `hwc` (an image made channels-last by a Permute) or `any`: netspec's layouts (see
    netspec/walk.py), which decide what it refuses although torch runs it."""
    return getattr(x, _LAYOUT, "chw" if x.dim() == 4 else "any")


def with_layout(y: torch.Tensor, value: str) -> torch.Tensor:
    setattr(y, _LAYOUT, value if y.dim() == 4 else "any")
    return y


def _layout_after(kind: str, kwargs: dict, x: torch.Tensor) -> str:
    if kind == "Permute":
        dims = tuple(d % 4 for d in kwargs["dims"])
        if layout(x) == "chw" and dims == (0, 2, 3, 1):
            return "hwc"
        if layout(x) == "hwc" and dims == (0, 3, 1, 2):
            return "chw"
        return "any"
    if kind in _CHANNELS_FIRST or x.dim() != 4:
        return "chw"
    return layout(x)


def _stricter(kind: str, kwargs: dict, x: torch.Tensor) -> str | None:
    """Why netspec refuses this layer on x although torch runs it, or None."""
    if kind in _IMAGE_ONLY and x.dim() != 4:
        if kind == "Dropout2d":
            return "Dropout2d on a tensor that is not C x H x W: torch only warns"
        return f"{kind} on a {x.dim() - 1}-D tensor per image: torch reads the batch as one unbatched image"
    if kind in _CHANNELS_FIRST and layout(x) == "hwc":
        return f"{kind} on a channels-last image: torch reads its width as the channels"
    if kind in _LAST_DIM and x.dim() == 4 and layout(x) == "chw":
        return f"{kind} on a C x H x W image: torch applies it to the last dimension, the width"
    if kind == "Flatten":
        start = kwargs.get("start_dim", 1)
        if start == 0 or start == -x.dim():
            return "Flatten(start_dim=0) merges the batch into the features"
    if kind == "Permute" and len(kwargs["dims"]) == x.dim() and kwargs["dims"][0] % x.dim() != 0:
        return "a Permute that moves the batch: torch mixes the images"
    return None


def ref_layer(layer: Layer, x: torch.Tensor, counts: list) -> torch.Tensor:
    """Run one layer with torch directly: in_channels & co. from the real tensor. Raises Stricter/TorchFailure."""
    kind = layer.kind
    kwargs = dict(zip(torch_positional(kind), map(_plain, layer.args)))
    kwargs.update({k: _plain(v) for k, v in layer.kwargs})
    stricter = _stricter(kind, kwargs, x)
    if kind in _INFERRED:
        if kind in _LAST_DIM:
            kwargs[_INFERRED[kind]] = x.shape[-1]
        elif kind in _IMAGE_ONLY and x.dim() == 3:
            kwargs[_INFERRED[kind]] = x.shape[0]  # as torch reads an unbatched image
        else:
            kwargs[_INFERRED[kind]] = x.shape[1]
    try:
        m = torch_class(kind)(**kwargs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            y = m(x)
            # and one image in eval mode, as torchinfo and inference run it: GroupNorm with one value per group
            # fails there (netspec refuses it), and so does BatchNorm(track_running_stats=False) with one value per
            # channel, which runs with larger batches (netspec accepts it: noted, the oracle skips torchinfo)
            try:
                if not stricter:  # (a batch read as one unbatched image has no "one image")
                    m.eval()(x[:1].clone())
            except Exception:
                if not (kind.startswith("BatchNorm") and kwargs.get("track_running_stats") is False):
                    raise
                counts.append("one image fails")
            m.train()
    except Exception as e:
        raise TorchFailure(f"{kind}: {type(e).__name__}: {e}") from e
    if stricter:  # torch ran it, netspec refuses it on purpose
        raise Stricter(stricter)
    counts.append(sum(p.numel() for p in m.parameters()))
    return with_layout(y, _layout_after(kind, kwargs, x))


@dataclass
class RefResult:
    output: tuple  # per image
    params: int
    single_image: bool  # whether it also runs on one image in eval mode (as torchinfo runs it)


def reference(items, input: tuple[int, int, int], batch: int = 2) -> RefResult:
    """The stack run with torch directly (a fresh module per layer, train mode, then one image in eval mode).
    Raises Stricter or TorchFailure."""
    counts: list = []
    with torch.no_grad():
        y = ref_items(items, torch.zeros(batch, *input), counts)
    return RefResult(tuple(y.shape[1:]), sum(c for c in counts if isinstance(c, int)), "one image fails" not in counts)


# ----------------------------------------------------------------------------------------------------------------
# More of the model: sugar that only changes how a stack is written
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rep:
    """`repeat i in start..stop { name{i} Kind(..., arg=a * i + b) }`: one layer per i."""

    start: int
    stop: int
    kind: str
    kwargs: tuple  # fixed (name, value) pairs
    affine: tuple  # (name, a, b): the argument is a * i + b
    name: str | None  # a name prefix: the layers are {name}{i}; None: anonymous

    def expand(self) -> tuple:
        out = []
        for i in range(self.start, self.stop + 1):
            kw = list(self.kwargs) + [(n, a * i + b) for n, a, b in self.affine]
            out.append(Layer(self.kind, (), tuple(kw), None if self.name is None else f"{self.name}{i}"))
        return tuple(out)


@dataclass(frozen=True)
class Blk:
    """A use of a block: its plain layers are written once in `block bK(...)`; `params` are (layer index, argument,
    parameter name) of the integer arguments passed at the call; `tag` fills the `{id}` in the layers' names."""

    layers: tuple  # of Layer (names None: anonymous; else the name template's prefix)
    params: tuple
    tag: int

    def expand(self) -> tuple:
        return tuple(
            Layer(ly.kind, (), ly.kwargs, None if ly.name is None else f"{ly.name}_{self.tag}") for ly in self.layers
        )

    def signature(self) -> tuple:
        """What the block's definition depends on (the same for two uses of one block)."""
        pset = {(i, a) for i, a, _ in self.params}
        return tuple(
            (ly.kind, ly.name, tuple((k, "@" if (j, k) in pset else v) for k, v in ly.kwargs))
            for j, ly in enumerate(self.layers)
        ) + (tuple(p for _, _, p in self.params),)


@dataclass(frozen=True)
class Fn:
    """A `forward` function step: relu, gelu, silu, sigmoid, tanh, flatten."""

    name: str


@dataclass(frozen=True)
class ResStep:
    """`residual name` in `forward`: x + item(x)."""

    item: Any


FUNCTIONS = {
    "relu": torch.relu,
    "gelu": nn.functional.gelu,
    "silu": nn.functional.silu,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "flatten": lambda x: torch.flatten(x, 1),
}


def _add(y, s, what):
    if y.shape != s.shape:
        try:
            y + s
        except Exception as e:
            raise TorchFailure(f"{what}: {e}") from e
        raise Stricter(f"{what} with different shapes: torch broadcasts them")
    return with_layout(y + s, layout(y))  # netspec's Residual gives its body's value


def ref_item(it, x: torch.Tensor, counts: list) -> torch.Tensor:
    if isinstance(it, Layer):
        return ref_layer(it, x, counts)
    if isinstance(it, Seq):
        return ref_items(it.items, x, counts)
    if isinstance(it, Res):
        y = ref_items(it.body, x, counts)
        s = x if it.shortcut is None else ref_items(it.shortcut, x, counts)
        return _add(y, s, "Residual")
    if isinstance(it, (Rep, Blk)):
        return ref_items(it.expand(), x, counts)
    if isinstance(it, Fn):
        y = FUNCTIONS[it.name](x)
        return with_layout(y, layout(x) if y.dim() == x.dim() else "any")
    if isinstance(it, ResStep):
        return _add(ref_item(it.item, x, counts), x, "residual step")
    raise AssertionError(it)


def ref_items(items, x: torch.Tensor, counts: list) -> torch.Tensor:
    for it in items:
        x = ref_item(it, x, counts)
    return x


@dataclass
class Case:
    text: str
    items: list
    input: tuple[int, int, int]
    load_input: str | None  # passed to load(input=...) when the text has no `input` line


_KEYWORD_CASES = {True: ["true", "True"], False: ["false", "False"], None: ["None", "none"]}


class Writer:
    """Writes a stack as spec text, choosing among the language's ways to say the same thing."""

    def __init__(self, draw):
        self.draw = draw
        self.consts: dict[str, str] = {}  # name -> its definition's text
        self.blocks: dict[tuple, tuple[str, list[str]]] = {}  # signature -> (name, parameter names)
        self.block_text: list[str] = []

    def d(self, strat):
        return self.draw(strat)

    def chance(self, p: float) -> bool:
        return self.d(st.integers(0, 99)) < p * 100

    def const(self, value_text: str) -> str:
        name = f"k{len(self.consts)}"
        self.consts[name] = value_text
        return name

    def int_expr(self, v: int, depth: int = 0) -> str:
        """Text that evaluates to the integer v: a literal, or arithmetic over constants."""
        if depth > 1 or not self.chance(0.3):
            return str(v) if v >= 0 else f"-{-v}"
        form = self.d(st.sampled_from(["const", "mul", "add", "sub", "floordiv", "mod", "neg", "paren"]))
        if form == "const":
            return self.const(self.int_expr(v, depth + 1))
        if form == "mul" and v != 0:
            m = self.d(st.sampled_from([d for d in (1, 2, 3, 4) if v % d == 0]))
            return f"{self.const(self.int_expr(v // m, depth + 1))} * {m}"
        if form == "add":
            b = self.d(st.integers(0, 5))
            return f"{self.int_expr(v - b, depth + 1)} + {b}"
        if form == "sub":
            b = self.d(st.integers(0, 5))
            rhs = self.int_expr(b, depth + 1)
            return f"{self.const(str(v + b))} - " + (rhs if rhs.isalnum() else f"({rhs})")
        if form == "floordiv":
            q, r = self.d(st.integers(1, 4)), self.d(st.integers(0, 3))
            r %= q
            return f"({v * q + r}) // {q}" if v * q + r >= 0 else f"-{-(v * q + r)} // {q}"
        if form == "mod" and v >= 0:
            m = v + self.d(st.integers(1, 5))
            return f"{v + m * self.d(st.integers(0, 3))} % {m}"
        if form == "neg":
            return f"-({-v})" if v > 0 else f"-{-v}" if v < 0 else "-0"
        return f"({self.int_expr(v, depth + 1)})"

    def value(self, v: Any) -> str:
        if isinstance(v, bool) or v is None:
            return self.d(st.sampled_from(_KEYWORD_CASES[v]))
        if isinstance(v, int):
            return self.int_expr(v)
        if isinstance(v, str):
            return f"'{v}'" if self.chance(0.5) else f'"{v}"'
        if isinstance(v, float):
            return fmt_value(v)
        if isinstance(v, tuple):
            inner = ", ".join(self.value(x) for x in v)
            return f"[{inner}]" if self.chance(0.3) else f"({inner})"
        raise AssertionError(v)

    def call(self, kind: str, kwargs: tuple, value=None) -> str:
        value = value or self.value
        order = torch_positional(kind)
        have = dict(kwargs)
        prefix = 0
        while prefix < len(order) and order[prefix] in have:
            prefix += 1
        npos = self.d(st.integers(0, prefix))
        pos = [value(have[n]) for n in order[:npos]]
        rest = [(k, v) for k, v in kwargs if k not in order[:npos]]
        rest = self.d(st.permutations(rest))
        return f"{kind}({', '.join(pos + [f'{k}={value(v)}' for k, v in rest])})"

    def items(self, items, indent: str) -> list[str]:
        out = []
        for it in items:
            out += self.item(it, indent)
        return out

    def item(self, it, indent: str) -> list[str]:
        prefix = f"{it.name} " if getattr(it, "name", None) else ""
        if isinstance(it, Layer):
            return [f"{indent}{prefix}{self.call(it.kind, it.kwargs)}"]
        if isinstance(it, Seq):
            return [f"{indent}{prefix}Sequential {{"] + self.items(it.items, indent + "  ") + [f"{indent}}}"]
        if isinstance(it, Res):
            lines = [f"{indent}{prefix}Residual {{"] + self.items(it.body, indent + "  ")
            if it.shortcut is None:
                return lines + [f"{indent}}}"]
            return lines + [f"{indent}}} shortcut {{"] + self.items(it.shortcut, indent + "  ") + [f"{indent}}}"]
        if isinstance(it, Rep):
            var = self.d(st.sampled_from(["i", "j", "n", "idx"]))

            def affine(a, b):
                if a == 0:
                    return self.int_expr(b)
                return self.d(st.sampled_from([f"{a} * {var} + {b}", f"{var} * {a} + {b}", f"{b} + {a} * {var}"]))

            args = tuple(it.kwargs) + tuple((n, ("@", a, b)) for n, a, b in it.affine)

            def value(v):
                return affine(v[1], v[2]) if isinstance(v, tuple) and v and v[0] == "@" else self.value(v)

            name = f"{it.name}{{{var}}} " if it.name else ""
            return [
                f"{indent}repeat {var} in {self.int_expr(it.start)}..{self.int_expr(it.stop)} {{",
                f"{indent}  {name}{self.call(it.kind, args, value)}",
                f"{indent}}}",
            ]
        if isinstance(it, Blk):
            return [f"{indent}{self.block_call(it)}"]
        raise AssertionError(it)

    def block_call(self, b: Blk) -> str:
        sig = b.signature()
        named = any(ly.name for ly in b.layers)
        if sig not in self.blocks:
            name = f"blk{len(self.blocks)}"
            params = [p for _, _, p in b.params] + (["id"] if named else [])
            lines = []
            pmap = {(i, a): p for i, a, p in b.params}
            for i, lay in enumerate(b.layers):
                args = tuple((k, ("@p", pmap[(i, k)]) if (i, k) in pmap else v) for k, v in lay.kwargs)

                def value(v):
                    return v[1] if isinstance(v, tuple) and v and v[0] == "@p" else self.value(v)

                lname = f"{lay.name}_{{id}} " if lay.name else ""
                lines.append(f"  {lname}{self.call(lay.kind, args, value)}")
            self.blocks[sig] = (name, params)
            self.block_text.append(f"block {name}({', '.join(params)}) {{\n" + "\n".join(lines) + "\n}")
        name, params = self.blocks[sig]
        values = [dict(b.layers[i].kwargs)[a] for i, a, _ in b.params] + ([b.tag] if named else [])
        args = list(zip(params, values))
        if self.chance(0.3):
            args = self.d(st.permutations(args))
            return f"{name}({', '.join(f'{p}={self.int_expr(v)}' for p, v in args)})"
        return f"{name}({', '.join(self.int_expr(v) for _, v in args)})"


def declared(items) -> list:
    """The top-level declarations behind a run order (ResStep wraps a declared item; Fn declares nothing)."""
    out = []
    for it in items:
        if isinstance(it, ResStep):
            out.append(it.item)
        elif not isinstance(it, Fn):
            out.append(it)
    return out


def item_names(it) -> list[str]:
    if isinstance(it, (Rep, Blk)):
        return [ly.name for ly in it.expand()]
    return [it.name]
