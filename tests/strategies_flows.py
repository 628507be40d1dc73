"""Hypothesis strategies that draw run orders, `forward(x) { ... }` over named values, with the shapes in view (each
step is run with torch as it is drawn), written as spec text with a reference network written directly in torch
(`flows()`), for `test_fuzz.py`.

A drawn spec has children (layers, in-place ones among them, some run twice, some `kept`), learned parameters, and
statements: calls of children, operations of every kind (cat, add, mul with broadcasting, chunk and split into
names, permutes to channels-last and back, layer_norm with parameters, pooling, means, gates), `if` and `else` on
the input's shape or a constant, at the top level or inside a `module` with its own forward. Every value is used: the
ones nothing else reads are pooled, flattened and joined by the return. Some specs hold one mistake on purpose (a
cat of other sizes, a gate that does not broadcast, a chunk that does not divide, a value or a child left unused,
a value read before it is defined): netspec must refuse those with a located error of the expected code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from hypothesis import strategies as st
from torch import nn

from flow_specs import Net

Env = dict[str, torch.Tensor]
Step = Callable[[Env, nn.Module], None]


@dataclass
class FlowCase:
    text: str
    reference: Callable[[], nn.Module] | None  # None: the spec holds a mistake
    codes: tuple[str, ...] = ()  # the codes the mistake may be reported with
    torch_refuses: bool = False  # whether torch fails on the mistake too (else netspec is stricter by design)
    notes: list[str] = field(default_factory=list)  # what was drawn, for hypothesis' events


_ACTIVATION_LAYERS = {
    "ReLU": (nn.ReLU, True),
    "ReLU6": (nn.ReLU6, True),
    "SiLU": (nn.SiLU, True),
    "Hardswish": (nn.Hardswish, True),
    "Hardsigmoid": (nn.Hardsigmoid, True),
    "GELU": (nn.GELU, False),
    "Tanh": (nn.Tanh, False),
}
_ACTIVATION_OPS = {
    "relu": F.relu,
    "relu6": F.relu6,
    "silu": F.silu,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "hardswish": F.hardswish,
    "hardsigmoid": F.hardsigmoid,
    "gelu": F.gelu,
    "mish": F.mish,
    "elu": F.elu,
    "leaky_relu": F.leaky_relu,
}


def _layout(t: torch.Tensor, hwc: set[int]) -> str:
    if t.dim() != 4:
        return "flat" if t.dim() == 2 else "other"
    return "hwc" if id(t) in hwc else "chw"


class _Gen:
    """Draws the statements of one forward, keeping the example tensors (batch 2) its values would hold."""

    def __init__(self, draw, x: torch.Tensor):
        self.draw = draw
        self.env: Env = {"x": x}
        self.order = ["x"]  # the values, in the order defined
        self.used: set[str] = set()
        self.hwc: set[str] = set()  # values that are channels-last images
        self.children: dict[str, tuple[str, Callable[[], nn.Module]]] = {}  # name -> (spec text, torch factory)
        self.live: dict[str, nn.Module] = {}  # the draw-time instances (a child run twice is one module)
        self.child_inputs: dict[str, tuple[int, ...]] = {}  # the input shape (and layout) a child was made for
        self.child_layout: dict[str, str] = {}
        self.kept: list[str] = []
        self.lines: list[str] = []
        self.steps: list[Step] = []
        self.n = 0
        self.notes: list[str] = []
        self.in_module = False

    # ---- drawing -------------------------------------------------------------------------------------------
    def d(self, strat):
        return self.draw(strat)

    def chance(self, p: float) -> bool:
        return self.d(st.integers(0, 99)) < p * 100

    def fresh(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}{self.n}"

    def kind(self, name: str) -> str:
        t = self.env[name]
        if t.dim() == 4:
            return "hwc" if name in self.hwc else "chw"
        return "flat" if t.dim() == 2 else "other"

    # ---- children and steps --------------------------------------------------------------------------------
    def child(self, text: str, factory: Callable[[], nn.Module], src: str) -> str:
        """Declare a child (or reuse one that took an input of this shape) and call it on `src`."""
        shape = tuple(self.env[src].shape[1:])
        same = [
            c
            for c, s in self.child_inputs.items()
            if s == shape
            and c not in self.kept
            and self.children[c][0] == text
            and self.child_layout[c] == self.kind(src)
        ]
        if same and self.chance(0.5):
            name = self.d(st.sampled_from(sorted(same)))
            self.notes.append("a child run twice")
        else:
            name = self.fresh("c")
            self.children[name] = (text, factory)
            self.live[name] = factory()
            self.child_inputs[name] = shape
            self.child_layout[name] = self.kind(src)
        return self.assign(f"{name}({src})", lambda env, m, n=name, s=src: getattr(m, n)(env[s]), [src])

    def assign(self, expr: str, fn: Callable[[Env, nn.Module], Any], reads: list[str], names: int = 1) -> str:
        """`v = expr` (or `a, b = expr`): run now on the example tensors, and as a step of the reference."""
        targets = [self.fresh("v") for _ in range(names)]
        self.lines.append(f"{', '.join(targets)} = {expr}")

        def step(env: Env, m: nn.Module, fn=fn, targets=targets) -> None:
            out = fn(env, m)
            for t, v in zip(targets, out if names > 1 else (out,)):
                env[t] = v

        with torch.no_grad():
            step(self.env, _Live(self.live))
        self.steps.append(step)
        self.used.update(reads)
        self.order += targets
        return targets[0]

    def pick(self, kinds: tuple[str, ...]) -> str | None:
        """A value of one of these kinds, recent ones more often."""
        names = [n for n in self.order if self.kind(n) in kinds]
        if not names:
            return None
        if self.chance(0.6):
            return names[-1]
        return self.d(st.sampled_from(names))

    def step(self) -> None:
        src = self.pick(("chw", "hwc", "flat"))
        assert src is not None
        kind = self.kind(src)
        if kind == "chw":
            self.image_step(src)
        elif kind == "hwc":
            self.channels_last_step(src)
        else:
            self.flat_step(src)

    def image_step(self, src: str) -> None:
        t = self.env[src]
        c, h, w = t.shape[1:]
        choice = self.d(
            st.sampled_from(
                "conv conv conv bn act act_op pool pool_op adaptive ln2d give_back gate param_gate chunk split "
                "shuffle permute cat cat add flatten softmax resize".split()
            )
        )
        if choice == "conv":
            groups = self.d(st.sampled_from([g for g in (1, 1, 2, 3, c) if c % g == 0]))
            out = groups * self.d(st.integers(1, 3))
            k = self.d(st.integers(1, min(3, h, w) if min(h, w) >= 1 else 1))
            stride = self.d(st.sampled_from([1, 1, 2]))
            pad = self.d(st.integers(0, k // 2))
            bias = self.chance(0.7)
            # in a module, the input's own width by name: Conv2d(in_channels, ..., groups=in_channels)
            named = self.in_module and src == "x" and self.chance(0.6)
            wide = "in_channels" if named and out == c else out
            grouped = "in_channels" if named and groups == c else groups
            text = f"Conv2d({wide}, kernel_size={k}, stride={stride}, padding={pad}, groups={grouped}, bias={str(bias).lower()})"
            self.child(text, lambda: nn.Conv2d(c, out, k, stride, pad, groups=groups, bias=bias), src)
        elif choice == "bn":
            self.child("BatchNorm2d()", lambda: nn.BatchNorm2d(c), src)
        elif choice == "resize":
            self.resize_step(src)
        elif choice == "act":
            name = self.d(st.sampled_from(sorted(_ACTIVATION_LAYERS)))
            cls, has_inplace = _ACTIVATION_LAYERS[name]
            inplace = has_inplace and self.chance(0.5)
            # the reference is not in place: a value is a value (netspec copies where one is read later)
            self.child(f"{name}({'inplace=true' if inplace else ''})", cls, src)
        elif choice == "act_op":
            self.activation_op(src)
        elif choice in ("pool", "pool_op"):
            k = self.d(st.integers(1, min(3, h, w)))
            stride = self.d(st.integers(1, 2))
            pad = self.d(st.integers(0, k // 2))
            ceil = self.chance(0.3)
            kind = self.d(st.sampled_from(["max", "avg"]))
            if choice == "pool":
                cls = nn.MaxPool2d if kind == "max" else nn.AvgPool2d
                text = f"{cls.__name__}({k}, stride={stride}, padding={pad}, ceil_mode={str(ceil).lower()})"
                self.child(text, lambda: cls(k, stride, pad, ceil_mode=ceil), src)
            else:
                fn = F.max_pool2d if kind == "max" else F.avg_pool2d
                self.assign(
                    f"{kind}_pool2d({src}, {k}, stride={stride}, padding={pad}, ceil_mode={str(ceil).lower()})",
                    lambda env, m: fn(env[src], k, stride, pad, ceil_mode=ceil),
                    [src],
                )
        elif choice == "adaptive":
            size = self.d(st.sampled_from([1, 2, (1, 2), (2, None)]))
            text = "None" if size is None else str(size).replace("None", "None")
            if self.chance(0.5):
                self.child(f"AdaptiveAvgPool2d({text})", lambda: nn.AdaptiveAvgPool2d(size), src)
            else:
                self.assign(
                    f"adaptive_avg_pool2d({src}, {text})", lambda env, m: F.adaptive_avg_pool2d(env[src], size), [src]
                )
        elif choice == "ln2d":
            from torchvision.models.convnext import LayerNorm2d

            self.child("LayerNorm2d(eps=1e-6)", lambda: LayerNorm2d(c, eps=1e-6), src)
        elif choice == "give_back":
            self.give_back(src)
        elif choice == "gate":  # squeeze and excitation in one line: x * sigmoid(mean(x, (2, 3), keepdim=true))
            self.assign(
                f"{src} * sigmoid(mean({src}, (2, 3), keepdim=true))",
                lambda env, m: env[src] * torch.sigmoid(env[src].mean((2, 3), keepdim=True)),
                [src],
            )
        elif choice == "param_gate":
            g = self.fresh("g")
            value = self.d(st.sampled_from([1e-6, 0.5, 1.0]))
            self.children[g] = (
                f"Parameter(({c}, 1, 1), value={value})",
                lambda: nn.Parameter(torch.full((c, 1, 1), value)),
            )
            self.live[g] = self.children[g][1]()
            if self.chance(0.5):
                self.assign(f"{g} * {src}", lambda env, m: getattr(m, g) * env[src], [src])
            else:
                self.assign(f"{src} + {g} * {src}", lambda env, m: env[src] + getattr(m, g) * env[src], [src])
        elif choice == "chunk" and c % 2 == 0:
            self.assign(f"chunk({src}, 2)", lambda env, m: torch.chunk(env[src], 2, 1), [src], names=2)
        elif choice == "split" and c >= 2:
            a = self.d(st.integers(1, c - 1))
            self.assign(
                f"split({src}, ({a}, {c - a}))", lambda env, m: torch.split(env[src], [a, c - a], 1), [src], names=2
            )
        elif choice == "shuffle":
            g = self.d(st.sampled_from([d for d in (1, 2, 3, 4) if c % d == 0]))
            self.assign(f"channel_shuffle({src}, {g})", lambda env, m: F.channel_shuffle(env[src], g), [src])
        elif choice == "permute":
            if self.chance(0.5):
                v = self.assign(f"permute({src}, (0, 2, 3, 1))", lambda env, m: env[src].permute(0, 2, 3, 1), [src])
            else:
                from torchvision.ops import Permute

                v = self.child("Permute((0, 2, 3, 1))", lambda: Permute([0, 2, 3, 1]), src)
            self.hwc.add(v)
        elif choice == "cat":
            others = [n for n in self.order if self.kind(n) == "chw" and self.env[n].shape[2:] == t.shape[2:]]
            more = self.d(st.lists(st.sampled_from(others), min_size=1, max_size=2))
            names = [src, *more]
            self.assign(f"cat({', '.join(names)})", lambda env, m: torch.cat([env[n] for n in names], 1), names)
        elif choice == "add":
            others = [n for n in self.order if self.env[n].shape == t.shape and self.kind(n) == "chw"]
            other = self.d(st.sampled_from(others))
            if self.chance(0.5):
                self.assign(f"{src} + {other}", lambda env, m: env[src] + env[other], [src, other])
            else:
                self.assign(f"add({src}, {other})", lambda env, m: env[src] + env[other], [src, other])
        elif choice == "flatten":
            if self.chance(0.5):
                self.assign(f"flatten({src}, 1)", lambda env, m: torch.flatten(env[src], 1), [src])
            else:
                self.child("Flatten()", nn.Flatten, src)
        elif choice == "softmax":
            self.assign(f"softmax({src}, 1)", lambda env, m: F.softmax(env[src], 1), [src])
        else:
            self.activation_op(src)

    def activation_op(self, src: str) -> None:
        name = self.d(st.sampled_from(sorted(_ACTIVATION_OPS)))
        fn = _ACTIVATION_OPS[name]
        v = self.assign(f"{name}({src})", lambda env, m: fn(env[src]), [src])
        if src in self.hwc:
            self.hwc.add(v)

    def give_back(self, src: str) -> None:
        """A step that gives its input back outside training (or a view of it): Identity, Dropout, dropout(),
        StochasticDepth, stochastic_depth(): an in-place child after one must not change the value before it."""
        from torchvision.ops import StochasticDepth, stochastic_depth

        p = self.d(st.sampled_from([0.0, 0.2, 0.5]))
        mode = self.d(st.sampled_from(["row", "batch"]))
        choice = self.d(st.sampled_from(["Identity", "Dropout", "dropout", "StochasticDepth", "stochastic_depth"]))
        if choice == "Identity":
            v = self.child("Identity()", nn.Identity, src)
        elif choice == "Dropout":
            v = self.child(f"Dropout({p})", lambda: nn.Dropout(p), src)
        elif choice == "StochasticDepth":
            v = self.child(f"StochasticDepth({p}, '{mode}')", lambda: StochasticDepth(p, mode), src)
        elif choice == "dropout":
            v = self.assign(f"dropout({src}, {p})", lambda env, m: F.dropout(env[src], p, m.training), [src])
        else:
            v = self.assign(
                f"stochastic_depth({src}, {p}, '{mode}')",
                lambda env, m: stochastic_depth(env[src], p, mode, m.training),
                [src],
            )
        if src in self.hwc:
            self.hwc.add(v)

    def channels_last_step(self, src: str) -> None:
        c = self.env[src].shape[-1]
        choice = self.d(st.sampled_from("ln linear layer_norm act back back".split()))
        if choice == "ln":
            v = self.child("LayerNorm(eps=1e-6)", lambda: nn.LayerNorm(c, eps=1e-6), src)
        elif choice == "linear":
            out = self.d(st.integers(1, 8))
            v = self.child(f"Linear({out})", lambda: nn.Linear(c, out), src)
        elif choice == "layer_norm":
            w, b = self.fresh("g"), self.fresh("g")
            for name, value in ((w, 1.0), (b, 0.0)):
                self.children[name] = (
                    f"Parameter(({c},), value={value})",
                    lambda value=value: nn.Parameter(torch.full((c,), value)),
                )
                self.live[name] = self.children[name][1]()
            v = self.assign(
                f"layer_norm({src}, ({c},), weight={w}, bias={b}, eps=1e-6)",
                lambda env, m: F.layer_norm(env[src], (c,), getattr(m, w), getattr(m, b), 1e-6),
                [src],
            )
        elif choice == "act":
            self.activation_op(src)
            return
        else:
            self.assign(f"permute({src}, (0, 3, 1, 2))", lambda env, m: env[src].permute(0, 3, 1, 2), [src])
            return
        self.hwc.add(v)

    def resize_step(self, src: str) -> None:
        """A layer of image-to-image networks: a pad, a transposed convolution, an upsampling, or a PReLU (in a
        module, one slope per channel of its input by name: PReLU(num_parameters=in_channels))."""
        c, h, w = self.env[src].shape[1:]
        small = max(h, w) <= 8  # grow small images only
        kind = self.d(st.sampled_from(["pad", "transposed", "upsample", "prelu"]))
        if kind == "pad":
            cls = self.d(st.sampled_from([nn.ReflectionPad2d, nn.ReplicationPad2d, nn.ZeroPad2d]))
            p = self.d(st.integers(0, min(h, w, 3) - 1))  # a reflection pads less than the image's sides
            self.child(f"{cls.__name__}({p})", lambda: cls(p), src)
        elif kind == "transposed":
            out, k, stride = self.d(st.integers(1, 4)), self.d(st.integers(1, 3)), 2 if small else 1
            pad = (k - 1) // 2  # no side shrinks to 0
            text = f"ConvTranspose2d({out}, kernel_size={k}, stride={stride}, padding={pad})"
            self.child(text, lambda: nn.ConvTranspose2d(c, out, k, stride, pad), src)
        elif kind == "upsample":
            scale, mode = (2.0 if small or min(h, w) < 2 else 0.5), self.d(st.sampled_from(["nearest", "bilinear"]))
            self.child(f'Upsample(scale_factor={scale}, mode="{mode}")', lambda: nn.Upsample(None, scale, mode), src)
        else:
            n = self.d(st.sampled_from([1, c]))
            named = self.in_module and src == "x" and n == c and self.chance(0.6)
            self.child(f"PReLU(num_parameters={'in_channels' if named else n})", lambda: nn.PReLU(n), src)

    def flat_step(self, src: str) -> None:
        f = self.env[src].shape[1]
        choice = self.d(st.sampled_from("linear linear ln bn act act_op give_back".split()))
        if choice == "linear":
            out = self.d(st.integers(1, 10))
            self.child(f"Linear({out})", lambda: nn.Linear(f, out), src)
        elif choice == "ln":
            self.child("LayerNorm()", lambda: nn.LayerNorm(f), src)
        elif choice == "bn":
            self.child("BatchNorm1d()", lambda: nn.BatchNorm1d(f), src)
        elif choice == "act":
            name = self.d(st.sampled_from(sorted(_ACTIVATION_LAYERS)))
            cls, has_inplace = _ACTIVATION_LAYERS[name]
            self.child(f"{name}({'inplace=true' if has_inplace and self.chance(0.5) else ''})", cls, src)
        elif choice == "act_op":
            self.activation_op(src)
        else:
            self.give_back(src)

    # ---- the end: every value used ---------------------------------------------------------------------------
    def finish(self) -> str:
        """The expression returned: the values nothing reads, each pooled and flattened when there are several."""
        unused = [n for n in self.order if n not in self.used]
        if len(unused) == 1:
            return unused[0]
        parts = []
        for n in unused:
            k = self.kind(n)
            if k == "chw":
                parts.append(f"flatten(adaptive_avg_pool2d({n}, 1), 1)")
            elif k == "hwc":
                parts.append(f"flatten(mean({n}, (1, 2)), 1)")
            else:
                parts.append(n)
        self.used.update(unused)
        return f"cat({', '.join(parts)})"

    def reference_return(self, unused: list[str]) -> Callable[[Env], torch.Tensor]:
        def out(env: Env) -> torch.Tensor:
            if len(unused) == 1:
                return env[unused[0]]
            parts = []
            for n in unused:
                t = env[n]
                if t.dim() == 4:
                    t = torch.flatten(F.adaptive_avg_pool2d(t, 1) if n not in self.hwc else t.mean((1, 2)), 1)
                parts.append(t)
            return torch.cat(parts, 1)

        return out


class _Live:
    """The draw-time children, as the reference's steps look them up (getattr)."""

    training = True

    def __init__(self, children: dict[str, Any]):
        self._c = children

    def __getattr__(self, name: str) -> Any:
        return self.__dict__["_c"][name]


def _mistake(
    gen: _Gen, draw, ret: str, out_fn: Callable[[Env], torch.Tensor], unused: list[str]
) -> tuple[str, tuple[str, ...], bool]:
    """One mistake on purpose: (the expression returned, the codes expected, whether torch refuses it too). The
    mistakes of shapes are made on the value the forward would return (`r`), so that every value is used."""
    r = gen.fresh("v")
    gen.lines.append(f"{r} = {ret}")
    with torch.no_grad():
        t = out_fn(gen.env)
    image = t.dim() == 4 and not (len(unused) == 1 and unused[0] in gen.hwc)
    size = t.shape[1] if image or t.dim() == 2 else t.shape[-1]  # channels, features, or a channels-last's C
    kind = draw(st.sampled_from(["cat", "mul", "chunk", "unused_value", "unused_child", "before", "kept_called"]))
    if kind == "cat" and image:  # a branch larger by 2: its padding
        b = gen.fresh("c")
        gen.children[b] = ("Conv2d(2, kernel_size=1, padding=1)", nn.Identity)
        return f"cat({r}, {b}({r}))", ("E074",), True
    if kind == "mul" and size > 1:  # a gate of one channel (or feature) too many (one would broadcast)
        b = gen.fresh("c")
        gen.children[b] = (f"Conv2d({size + 1}, kernel_size=1)" if image else f"Linear({size + 1})", nn.Identity)
        return f"{r} * {b}({r})", ("E075",), True
    if kind == "chunk":  # torch would cut unequal chunks
        n = next(k for k in (2, 3, 4, 5, 7) if t.shape[1] % k)
        parts = [gen.fresh("v") for _ in range(n)]
        gen.lines.append(f"{', '.join(parts)} = chunk({r}, {n})")
        return f"cat({', '.join(reversed(parts))})", ("E076",), False
    if kind in ("unused_value", "cat", "mul"):
        gen.lines.append(f"{gen.fresh('v')} = relu({r})")
        return r, ("E053",), False
    if kind == "unused_child":
        gen.children[gen.fresh("c")] = ("Identity()", nn.Identity)
        return r, ("E051",), False
    if kind == "kept_called":
        b = gen.fresh("c")
        gen.children[b] = ("Identity()", nn.Identity)
        gen.kept.append(b)
        return f"{b}({r})", ("E057",), False
    later = gen.fresh("v")  # read before the line that defines it
    gen.lines.insert(0, f"{gen.fresh('v')} = relu({later})")
    gen.lines.append(f"{later} = relu(x)")
    return r, ("E052",), True


@st.composite
def flows(draw) -> FlowCase:
    """A spec whose run order is drawn step by step, and the same network written with torch (see the module doc)."""
    c, h, w = draw(st.integers(1, 6)), draw(st.integers(1, 7)), draw(st.integers(1, 7))
    gen = _Gen(draw, torch.zeros(2, c, h, w))
    in_module = gen.in_module = draw(st.booleans())
    for _ in range(draw(st.integers(1, 7))):
        gen.step()
    if draw(st.integers(0, 99)) < 20:  # a kept child: registered, given the input it would take, never run
        src = gen.pick(("chw",))
        if src is not None:
            k = gen.fresh("c")
            cin = gen.env[src].shape[1]
            gen.children[k] = ("Conv2d(2, kernel_size=1)", lambda: nn.Conv2d(cin, 2, 1))
            gen.kept.append(k)
            gen.child_inputs[k] = tuple(gen.env[src].shape[1:])
    if not in_module and not any(n not in gen.kept for n in gen.children):  # `layers` may not be empty
        last = gen.order[-1]
        if gen.child("Identity()", nn.Identity, last) and last in gen.hwc:
            gen.hwc.add(gen.order[-1])
    unused = [n for n in gen.order if n not in gen.used]
    ret = gen.finish()
    out_fn = gen.reference_return(unused)
    mistake = _mistake(gen, draw, ret, out_fn, unused) if draw(st.integers(0, 99)) < 20 else None
    if mistake is not None:
        ret = mistake[0]
    # an `if` around the whole body, on the input's channels in a module or a constant at the top level: the
    # branch not taken holds something else, never looked at
    cond = None
    if draw(st.integers(0, 99)) < 30:
        cond = f"in_channels == {c}" if in_module else "k0 > 0"
    body = _render(gen, ret, cond)
    head = f"input {c}x{h}x{w}\n" + ("k0 = 1\n" if cond and not in_module else "")
    if in_module:
        text = head + "module Blk() {\n" + body + "}\nlayers {\n    b Blk()\n}\n"
    else:
        decl, forward = body.split("    forward(x) {\n", 1)
        text = head + "layers {\n" + decl + "}\nforward(x) {\n" + forward.rsplit("    }\n", 1)[0] + "}\n"
    notes = [
        *gen.notes,
        "module" if in_module else "top-level",
        *(["if"] if cond else []),
        *(["kept"] if gen.kept else []),
    ]
    if mistake is not None:
        return FlowCase(text, None, mistake[1], mistake[2], notes)
    children = dict(gen.children)
    steps = list(gen.steps)

    def reference() -> nn.Module:
        def forward(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
            env = {"x": x}
            for s in steps:
                s(env, m)
            return out_fn(env)

        body = Net(forward, **{n: f() for n, (_, f) in children.items()})
        return Net(lambda m, x: m.b(x), b=body) if in_module else body

    return FlowCase(text, reference, notes=notes)


def _render(gen: _Gen, ret: str, cond: str | None) -> str:
    decl = []
    for name, (text, _) in gen.children.items():
        if name in gen.kept and "Parameter" not in text and name in gen.child_inputs:
            size = "x".join(str(d) for d in gen.child_inputs[name])
            decl.append(f"    kept {size} {name} {text}")
        elif name in gen.kept:
            decl.append(f"    kept {name} {text}")
        else:
            decl.append(f"    {name} {text}")
    stmts = [f"        {line}" for line in gen.lines] + [f"        return {ret}"]
    if cond is not None:
        stmts = (
            [f"        if {cond} {{"]
            + ["    " + s for s in stmts]
            + ["        } else {", "            return cat(x, x)", "        }"]
        )
        decl = [f"    if {cond} {{"] + ["    " + d for d in decl] + ["    } else {", "        other Linear(3)", "    }"]
    return "\n".join(decl) + "\n    forward(x) {\n" + "\n".join(stmts) + "\n    }\n"
