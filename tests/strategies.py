"""Hypothesis strategies that draw random layer stacks with the shape in view (each drawn layer is run with torch
as it is drawn) and write them as spec text (`stacks()`), for `test_fuzz.py`.
"""

from __future__ import annotations

from typing import Any

import torch
from hypothesis import strategies as st

from layer_stacks import (
    FUNCTIONS,
    Blk,
    Case,
    Fn,
    Layer,
    Rep,
    Res,
    ResStep,
    Seq,
    Stricter,
    TorchFailure,
    Writer,
    declared,
    item_names,
    layout,
    ref_item,
)

# ----------------------------------------------------------------------------------------------------------------
# Hypothesis: random stacks, drawn with the shape in view (run with torch as they are drawn), then written as text
# ----------------------------------------------------------------------------------------------------------------

IMAGE_KINDS = [
    "Conv2d",
    "Conv2d",
    "Conv2d",
    "BatchNorm2d",
    "GroupNorm",
    "MaxPool2d",
    "MaxPool2d",
    "AvgPool2d",
    "AdaptiveAvgPool2d",
    "AdaptiveMaxPool2d",
    "Dropout2d",
    "Flatten",
    "LayerNorm2d",
    "Permute",
    "Permute",
    "ConvTranspose2d",
    "Upsample",
    "ReflectionPad2d",
    "ReplicationPad2d",
    "ZeroPad2d",
]
ANY_KINDS = [
    "ReLU",
    "ReLU6",
    "LeakyReLU",
    "ELU",
    "GELU",
    "SiLU",
    "Hardswish",
    "Mish",
    "Sigmoid",
    "Tanh",
    "Identity",
    "Dropout",
    "Softmax",
    "Hardsigmoid",
    "StochasticDepth",
    "PReLU",
    "LogSoftmax",
]
FLAT_KINDS = ["Linear", "Linear", "Linear", "BatchNorm1d", "GroupNorm", "Flatten", "LayerNorm", "PReLU"]
# a channels-last image (after Permute((0, 2, 3, 1))): what ConvNeXt runs there, and the permute back
CHANNELS_LAST_KINDS = ["LayerNorm", "Linear", "Linear", "GELU", "Permute", "Permute"]
ALL_KINDS = sorted(set(IMAGE_KINDS + ANY_KINDS + FLAT_KINDS))


def _pair(lo: int, hi: int):
    return st.one_of(st.integers(lo, hi), st.tuples(st.integers(lo, hi), st.integers(lo, hi)))


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0][:6] or [1]


@st.composite
def layer_kwargs(draw, kind: str, shape: tuple) -> tuple:
    """Arguments for one layer: plausible for `shape`, sometimes not."""
    kw: dict[str, Any] = {}
    c = shape[0]
    side = max(shape[1:] or (1,))

    def maybe(name, strat, p=0.35):
        if draw(st.integers(0, 99)) < p * 100:
            kw[name] = draw(strat)

    if kind == "Conv2d":
        _conv2d_kwargs(draw, maybe, kw, c, side)
    elif kind in ("ConvTranspose2d", "Upsample"):
        _upsampling_kwargs(draw, maybe, kw, kind, c, side)
    elif kind in ("MaxPool2d", "AvgPool2d"):
        _pool_kwargs(draw, maybe, kw, kind, side)
    else:
        _other_kwargs(draw, maybe, kw, kind, c)
    return tuple(kw.items())


def _conv2d_kwargs(draw, maybe, kw: dict[str, Any], c: int, side: int) -> None:
    groups = draw(st.sampled_from(_divisors(c))) if draw(st.integers(0, 99)) < 25 else 1
    if draw(st.integers(0, 99)) < 5:
        groups = draw(st.integers(2, 4))  # often wrong
    kw["out_channels"] = groups * draw(st.integers(1, 4))
    kw["kernel_size"] = draw(st.one_of(_pair(1, 3), _pair(1, min(7, side + 2))))
    maybe("stride", _pair(1, 3))
    maybe("padding", st.one_of(_pair(0, 2), st.sampled_from(["same", "valid"])), 0.5)
    maybe("dilation", _pair(1, 2), 0.2)
    if groups != 1:
        kw["groups"] = groups
    maybe("bias", st.booleans(), 0.2)
    maybe("padding_mode", st.sampled_from(["zeros", "reflect", "replicate", "circular"]), 0.2)


def _upsampling_kwargs(draw, maybe, kw: dict[str, Any], kind: str, c: int, side: int) -> None:
    """Layers that make images larger: up to 2x a side while the image is small, and rarely past 32."""
    grow = side <= 16
    if kind == "ConvTranspose2d":
        groups = draw(st.sampled_from(_divisors(c))) if draw(st.integers(0, 99)) < 20 else 1
        kw["out_channels"] = groups * draw(st.integers(1, 3))
        kw["kernel_size"] = draw(_pair(1, 4))
        maybe("stride", _pair(1, 2) if grow else st.just(1))
        maybe("padding", _pair(0, 2), 0.5)
        maybe("output_padding", _pair(0, 1), 0.15)  # sometimes not below the stride: refused (E037), as torch does
        maybe("dilation", _pair(1, 2), 0.2)
        if groups != 1:
            kw["groups"] = groups
        maybe("bias", st.booleans(), 0.2)
        return
    scales = [2, 2.0, 1.5, (2.0, 1.0), 0.5, (0.5, 1.25)] if grow else [0.5, (1.0, 0.5), 0.25]
    if draw(st.booleans()):
        kw["scale_factor"] = draw(st.sampled_from(scales))
    else:
        kw["size"] = draw(_pair(1, 16))
    maybe("scale_factor", st.just(2.0), 0.05)  # with size: refused (E037), as torch does
    maybe("mode", st.sampled_from(["nearest", "bilinear"]), 0.5)
    maybe("align_corners", st.booleans(), 0.2)  # with 'nearest': refused (E037), as torch does


def _pool_kwargs(draw, maybe, kw: dict[str, Any], kind: str, side: int) -> None:
    kw["kernel_size"] = draw(_pair(1, min(4, side + 1)))
    maybe("stride", st.one_of(st.none(), _pair(1, 3)))
    maybe("padding", _pair(0, 2), 0.3)
    maybe("ceil_mode", st.booleans(), 0.3)
    if kind == "MaxPool2d":
        maybe("dilation", _pair(1, 2), 0.2)
        maybe("return_indices", st.just(False), 0.05)
    else:
        maybe("count_include_pad", st.booleans(), 0.3)
        maybe("divisor_override", st.one_of(st.none(), st.integers(1, 3)), 0.15)


def _other_kwargs(draw, maybe, kw: dict[str, Any], kind: str, c: int) -> None:
    if kind in ("BatchNorm2d", "BatchNorm1d"):
        maybe("eps", st.sampled_from([1e-5, 1e-3, 0.1]), 0.2)
        maybe("momentum", st.sampled_from([0.1, None, 0.5, 1.0]), 0.2)
        maybe("affine", st.booleans(), 0.3)
        maybe("track_running_stats", st.booleans(), 0.2)
    elif kind == "GroupNorm":
        kw["num_groups"] = draw(st.sampled_from(_divisors(c)) if draw(st.integers(0, 99)) < 80 else st.integers(1, 6))
        maybe("eps", st.sampled_from([1e-5, 0.01]), 0.2)
        maybe("affine", st.booleans(), 0.3)
    elif kind in ("ReLU", "ReLU6", "SiLU", "Hardswish", "Mish", "Hardsigmoid"):
        maybe("inplace", st.booleans(), 0.2)
    elif kind == "LeakyReLU":
        maybe("negative_slope", st.sampled_from([0.01, 0.2, -0.5, 1.0]))
        maybe("inplace", st.booleans(), 0.2)
    elif kind == "ELU":
        maybe("alpha", st.sampled_from([1.0, 0.5, 2.0]))
        maybe("inplace", st.booleans(), 0.2)
    elif kind == "GELU":
        maybe("approximate", st.sampled_from(["none", "tanh"]))
    elif kind in ("AdaptiveAvgPool2d", "AdaptiveMaxPool2d"):
        opt = st.one_of(st.none(), st.integers(1, 4))
        kw["output_size"] = draw(st.one_of(st.integers(1, 4), st.tuples(opt, opt)))
    elif kind in ("Dropout", "Dropout2d"):
        maybe("p", st.sampled_from([0.0, 0.1, 0.5, 1.0]))
        maybe("inplace", st.booleans(), 0.2)
    elif kind == "Flatten":
        maybe("start_dim", st.integers(-4, 3), 0.25)
        maybe("end_dim", st.integers(-4, 3), 0.15)
    elif kind == "Linear":
        kw["out_features"] = draw(st.integers(1, 10))
        maybe("bias", st.booleans(), 0.3)
    elif kind in ("Softmax", "LogSoftmax"):
        kw["dim"] = draw(st.one_of(st.just(1), st.integers(-4, 3), st.none()))
    elif kind in ("ReflectionPad2d", "ReplicationPad2d", "ZeroPad2d"):
        side = st.integers(0, 3)
        kw["padding"] = draw(st.one_of(side, st.tuples(side, side, side, side)))
    elif kind == "PReLU":  # one slope, one per channel, or (rarely) a count that fits neither
        maybe("num_parameters", st.sampled_from([c, c, 1, c + 1]), 0.6)
        maybe("init", st.sampled_from([0.25, 0.0, -0.5]), 0.2)
    elif kind in ("LayerNorm", "LayerNorm2d"):
        maybe("eps", st.sampled_from([1e-5, 1e-6, 0.1]), 0.3)
        maybe("elementwise_affine", st.booleans(), 0.2)
        if kind == "LayerNorm":
            maybe("bias", st.booleans(), 0.2)
    elif kind == "Permute":  # to channels-last and back, mostly; sometimes another order (or a wrong one)
        kw["dims"] = draw(
            st.sampled_from(
                [(0, 2, 3, 1), (0, 3, 1, 2), (0, 2, 3, 1), (0, 3, 1, 2), (0, 1, 3, 2), (0, 2, 1), (1, 0, 2, 3)]
            )
        )
    elif kind == "StochasticDepth":
        kw["p"] = draw(st.sampled_from([0.0, 0.2, 1.0]))
        kw["mode"] = draw(st.sampled_from(["row", "batch"]))


def _try(item, x: torch.Tensor):
    """The output of `item` on x with torch, or the Stricter/TorchFailure it raises."""
    try:
        with torch.no_grad():
            return ref_item(item, x, [])
    except (Stricter, TorchFailure) as e:
        return e


class _Gen:
    """Draws a stack while running it: keeps the tensor it would see next."""

    def __init__(self, draw, use_forward: bool):
        self.draw = draw
        self.use_forward = use_forward
        self.blocks: list[Blk] = []
        self.ntag = 0

    def d(self, strat):
        return self.draw(strat)

    def chance(self, p: float) -> bool:
        return self.d(st.integers(0, 99)) < p * 100

    def kind_for(self, x: torch.Tensor) -> str:
        if self.chance(0.08):
            return self.d(st.sampled_from(ALL_KINDS))
        if layout(x) == "hwc":
            return self.d(st.sampled_from(CHANNELS_LAST_KINDS))
        pool = (IMAGE_KINDS if x.dim() == 4 else FLAT_KINDS) + ANY_KINDS
        return self.d(st.sampled_from(pool))

    def layer(self, x: torch.Tensor, name=None) -> Layer:
        kind = self.kind_for(x)
        return Layer(kind, (), self.d(layer_kwargs(kind, tuple(x.shape[1:]))), name)

    def preserving(self, x: torch.Tensor) -> list:
        """1-3 layers that keep the shape of x (a body for an identity Residual)."""
        out = []
        for _ in range(self.d(st.integers(1, 3))):
            if x.dim() == 4:
                k = self.d(st.sampled_from([1, 3, 5]))
                choice = self.d(st.sampled_from(["conv", "conv", "bn", "act", "drop"]))
                if choice == "conv":
                    pad = self.d(st.sampled_from([k // 2, "same"]))
                    out.append(
                        Layer("Conv2d", (), (("out_channels", x.shape[1]), ("kernel_size", k), ("padding", pad)), None)
                    )
                    continue
                if choice == "bn":
                    out.append(Layer("BatchNorm2d"))
                    continue
            elif self.chance(0.5):
                out.append(Layer("Linear", (), (("out_features", x.shape[-1]),), None))
                continue
            kind = self.d(st.sampled_from(["ReLU", "GELU", "Dropout", "Tanh", "SiLU"]))
            out.append(Layer(kind, (), self.d(layer_kwargs(kind, tuple(x.shape[1:]))), None))
        return out

    def inner_names(self, items: list) -> tuple:
        """Anonymous, or some children named n0, n1, ... (unique among siblings)."""
        if not self.chance(0.3):
            return tuple(items)
        return tuple(
            type(it)(**{**it.__dict__, "name": f"n{j}"})
            if isinstance(it, (Layer, Seq, Res)) and self.chance(0.6)
            else it
            for j, it in enumerate(items)
        )

    def item(self, x: torch.Tensor, depth: int, top: bool):
        r = self.d(st.integers(0, 99)) / 100
        if depth < 2 and r < 0.10:
            return Seq(self.inner_names(self.stack(x, depth + 1, 1, 3)))
        if depth < 2 and r < 0.22:
            pattern = self.d(st.sampled_from(["identity", "identity", "projection", "random"]))
            if pattern == "identity":
                return Res(self.inner_names(self.preserving(x)))
            if pattern == "projection" and x.dim() == 4:
                c2, s = self.d(st.integers(1, 8)), self.d(st.sampled_from([1, 2, 2, 3]))
                body = [
                    Layer("Conv2d", (), (("out_channels", c2), ("kernel_size", 3), ("stride", s), ("padding", 1))),
                    Layer("BatchNorm2d"),
                    Layer("ReLU"),
                    Layer("Conv2d", (), (("out_channels", c2), ("kernel_size", 3), ("padding", 1))),
                ]
                short = [
                    Layer("Conv2d", (), (("out_channels", c2), ("kernel_size", 1), ("stride", s), ("bias", False)))
                ]
                if self.chance(0.5):
                    short.append(Layer("BatchNorm2d"))
                return Res(self.inner_names(body[: self.d(st.integers(1, 4))]), self.inner_names(short))
            body = self.stack(x, depth + 1, 1, 2)
            short = self.stack(x, depth + 1, 1, 2) if self.chance(0.5) else None
            return Res(self.inner_names(body), None if short is None else self.inner_names(short))
        if top and r < 0.34:
            return self.rep(x)
        if top and r < 0.44:
            return self.blk(x)
        if top and self.use_forward and r < 0.54:
            if self.chance(0.5):
                return ResStep(Seq(tuple(self.preserving(x))) if self.chance(0.5) else self.layer(x))
            return Fn(self.d(st.sampled_from(sorted(FUNCTIONS))))
        return self.layer(x)

    def rep(self, x: torch.Tensor) -> Rep:
        start = self.d(st.integers(0, 2))
        stop = start + self.d(st.integers(0, 2))
        a, b = self.d(st.integers(0, 2)), self.d(st.integers(1, 4))
        if x.dim() == 4 and self.chance(0.6):
            kind, fixed = "Conv2d", (("kernel_size", 3), ("padding", 1))
            affine = (("out_channels", a, b),)
        elif x.dim() == 2 and self.chance(0.6):
            kind, fixed, affine = "Linear", (), (("out_features", a, b),)
        else:
            kind = self.d(st.sampled_from(["ReLU", "Identity", "Dropout", "Tanh"]))
            fixed, affine = self.d(layer_kwargs(kind, tuple(x.shape[1:]))), ()
        name = f"r{self.ntag}_" if (self.use_forward or self.chance(0.6)) else None
        self.ntag += 1
        return Rep(start, stop, kind, fixed, affine, name)

    def blk(self, x: torch.Tensor, reuse: bool = False) -> Blk:
        tag = self.ntag
        self.ntag += 1
        if self.blocks and (reuse or self.chance(0.5)):  # a second use of an earlier block, with new values
            old = self.d(st.sampled_from(self.blocks))
            layers = list(old.layers)
            for i, arg, _ in old.params:
                kw = dict(layers[i].kwargs)
                kw[arg] = max(1, kw[arg] + self.d(st.integers(-1, 2)))
                layers[i] = Layer(layers[i].kind, (), tuple(kw.items()), layers[i].name)
            return Blk(tuple(layers), old.params, tag)
        layers, y = [], x
        named = self.use_forward or self.chance(0.5)
        for j in range(self.d(st.integers(1, 3))):
            lay = self.layer(y, f"b{tag}l{j}" if named else None)
            got = _try(lay, y)
            if isinstance(got, Exception):
                continue
            layers.append(lay)
            y = got
        if not layers:
            layers = [Layer("Identity", (), (), f"b{tag}l0" if named else None)]
        params = []
        for i, lay in enumerate(layers):
            for arg, v in lay.kwargs:
                if isinstance(v, int) and not isinstance(v, bool) and v >= 0 and self.chance(0.5):
                    params.append((i, arg, f"p{len(params)}"))
        blk = Blk(tuple(layers), tuple(params), tag)
        self.blocks.append(blk)
        return blk

    def stack(self, x: torch.Tensor, depth: int, lo: int, hi: int, top: bool = False) -> list:
        """lo..hi items that run on x; with some chance the last one fails (the case under test is a refusal)."""
        items: list = []
        n = self.d(st.integers(lo, hi))
        tries = 0
        while len(items) < n and tries < 3 * n + 3:
            tries += 1
            it = self.item(x, depth, top)
            got = _try(it, x)
            if isinstance(got, Exception):
                if self.chance(0.5):
                    items.append(it)  # a stack that torch (or netspec, on purpose) refuses
                    return items
                continue
            items.append(it)
            x = got
            if isinstance(it, Blk) and self.chance(0.6):  # the same block again, with other arguments
                again = self.blk(x, reuse=True)
                got = _try(again, x)
                if not isinstance(got, Exception):
                    items.append(again)
                    x = got
        if top and x.dim() == 4 and self.chance(0.4):
            # a classifier head: [AdaptiveAvgPool2d] Flatten, Linear (the usual end of an image network)
            head = (
                [Layer("AdaptiveAvgPool2d", (), (("output_size", self.d(st.sampled_from([1, 2, (1, 2)]))),))]
                if self.chance(0.5)
                else []
            )
            head += [Layer("Flatten"), Layer("Linear", (), (("out_features", self.d(st.integers(1, 10))),))]
            for it in head:
                got = _try(it, x)
                if isinstance(got, Exception):
                    break
                items.append(it)
                x = got
        if top and self.chance(0.3):
            # a last layer drawn for another shape: often one that torch (and so netspec) refuses
            kind = self.d(st.sampled_from(ALL_KINDS))
            other = (self.d(st.integers(1, 8)), self.d(st.integers(1, 16)), self.d(st.integers(1, 16)))
            items.append(Layer(kind, (), self.d(layer_kwargs(kind, other))))
        return items or [Layer("Identity")]


@st.composite
def stacks(draw) -> Case:
    """A random stack of layers written as spec text, with its model (for the torch reference)."""
    inp = (draw(st.integers(1, 4)), draw(st.integers(1, 14)), draw(st.integers(1, 14)))
    use_forward = draw(st.integers(0, 99)) < 25
    gen = _Gen(draw, use_forward)
    items = gen.stack(torch.zeros(2, *inp), 0, 1, 6, top=True)
    if all(isinstance(it, Fn) for it in items):
        items.append(Layer("Identity"))  # `layers` may not be empty
    # names: top-level layers and composites are named l0, l1, ... (all of them when `forward` lists them)
    named = []
    for i, it in enumerate(items):
        if isinstance(it, ResStep):
            it = ResStep(type(it.item)(**{**it.item.__dict__, "name": f"l{i}"}))
        elif isinstance(it, (Layer, Seq, Res)) and (use_forward or draw(st.integers(0, 99)) < 80):
            it = type(it)(**{**it.__dict__, "name": f"l{i}"})
        named.append(it)
    items = named
    w = Writer(draw)
    decl = declared(items)
    if use_forward:
        decl = draw(st.permutations(decl))
    body = w.items(decl, "  ")
    forward = None
    if use_forward:
        steps = []
        for it in items:
            if isinstance(it, Fn):
                steps.append(it.name)
            elif isinstance(it, ResStep):
                steps.append(f"residual {it.item.name}")
            elif isinstance(it, Rep):
                steps.append(f"repeat q in {it.start}..{it.stop} {{ {it.name}{{q}} }}")
            else:
                steps += item_names(it)
        forward = "forward {\n  " + " ".join(steps) + "\n}"
    parts = [w.d(st.sampled_from(["network Fuzz", ""]))]
    in_text = True
    load_input = None
    if draw(st.integers(0, 99)) < 15:
        load_input = f"{inp[0]}x{inp[1]}x{inp[2]}"
        in_text = False
    if in_text:
        parts.append(f"input {inp[0]}x{inp[1]}x{inp[2]}")
    layers = "layers {\n" + "\n".join(body) + "\n}"
    consts = [f"{k} = {v}" for k, v in w.consts.items()]
    consts = draw(st.permutations(consts))  # constants may be used before they are defined
    tail = [*w.block_text] + consts
    head_n = draw(st.integers(0, len(tail)))
    parts += tail[:head_n] + [layers] + ([forward] if forward else []) + tail[head_n:]
    text = "\n".join(p for p in parts if p) + "\n"
    return Case(text, items, inp, load_input)
