"""Shared helpers of `test_shapes.py` and `test_fuzz.py`.

* `oracle(compiled)`: the static shape table must agree EXACTLY with torch (shapes of every row, per-row and total
  parameters, torchinfo's parameter and mult-add totals).
* A small model of layer stacks (`Layer`, `Seq`, `Res`), a torch reference that runs such a stack directly with
  `torch.nn` (in_channels & co. taken from the real tensor), and hypothesis strategies that draw stacks and render
  them as spec text with the language's sugar (constants with arithmetic, `repeat`, blocks, `forward`).

Imported by the test modules as `strategies` (pytest puts `tests/` on sys.path: the folder has no __init__.py).
"""

from __future__ import annotations

import itertools
import math
import signal
import warnings
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import torch
import torchinfo
from hypothesis import strategies as st
from netspec.errors import SpecError
from torch import nn

# ----------------------------------------------------------------------------------------------------------------
# The oracle
# ----------------------------------------------------------------------------------------------------------------


def _is_function_row(row) -> bool:
    return row.step == "function"  # relu(), flatten(): `forward` functions, no module


def _torchinfo_macs(module: nn.Module, out_shape: tuple[int, ...]) -> int:
    """torchinfo's formula (LayerInfo.calculate_macs) for one call at batch size 1."""
    macs = 0
    for name, p in module.named_parameters(recurse=False):
        if name in ("weight", "bias"):
            if "Conv" in type(module).__name__:
                macs += p.numel() * math.prod(out_shape[2:])
            else:
                macs += p.numel()
    return macs


def oracle(compiled, *, batch: int = 2, use_torchinfo: bool = True) -> None:
    """Assert that `compiled.shapes` describes `compiled.module` exactly (see the module docstring)."""
    module, table = compiled.module, compiled.shapes
    inp = tuple(table.input)
    modules = dict(module.named_modules())
    calls: dict[str, list[tuple[tuple, tuple]]] = defaultdict(list)  # path -> [(in shape, out shape)] per call

    def hook(path):
        def fn(mod, args, out):
            calls[path].append((tuple(args[0].shape[1:]), tuple(out.shape[1:])))

        return fn

    handles = [m.register_forward_hook(hook(p)) for p, m in modules.items() if p]
    try:
        module.train()
        with torch.no_grad():
            out = module(torch.zeros(batch, *inp))
    finally:
        for h in handles:
            h.remove()
    assert tuple(out.shape) == (batch, *table.output), (tuple(out.shape), table.output)

    # every module row matches the k-th call of the module at its path, in order
    seen: dict[str, int] = defaultdict(int)
    for row in table.rows:
        if _is_function_row(row):
            continue
        assert row.path in modules, f"row {row.path!r} names no module; modules: {sorted(modules)}"
        k = seen[row.path]
        seen[row.path] += 1
        assert k < len(calls[row.path]), f"row {row.path!r} #{k}: the module ran only {len(calls[row.path])} times"
        real_in, real_out = calls[row.path][k]
        assert row.in_shape == real_in, (row.path, row.label, row.in_shape, real_in)
        assert row.out_shape == real_out, (row.path, row.label, row.out_shape, real_out)
        mod = modules[row.path]
        own = sum(p.numel() for p in mod.parameters())
        assert row.params == (own if k == 0 else 0), (row.path, row.params, own, k)
        if row.is_leaf:
            assert not any(True for _ in mod.children()), f"{row.path}: a leaf row on a composite module"
            assert row.macs == _torchinfo_macs(mod, (1, *real_out)), (row.path, row.label, row.macs)
    for path, got in calls.items():
        assert seen[path] == len(got), f"module {path!r} ran {len(got)} times but has {seen[path]} rows"

    # the top-level rows chain input -> output
    top = [r for r in table.rows if r.depth == 0]
    assert top and top[0].in_shape == inp and top[-1].out_shape == tuple(table.output)
    for a, b in itertools.pairwise(top):
        assert a.out_shape == b.in_shape, (a.path, a.out_shape, b.path, b.in_shape)

    total = sum(p.numel() for p in module.parameters())
    assert total == table.total_params, (total, table.total_params)

    if use_torchinfo:
        stats = torchinfo.summary(module, input_size=(1, *inp), verbose=0, mode="eval", device="cpu")
        assert stats.total_params == table.total_params, (stats.total_params, table.total_params)
        assert stats.total_mult_adds == table.total_macs, (stats.total_mult_adds, table.total_macs)


def line_count(text: str) -> int:
    """Lines of the text as the parser numbers them (CRLF and CR are line breaks; a final newline adds none)."""
    from netspec.lang import normalize_source

    try:
        norm = normalize_source(text)
    except SpecError:
        norm = text
    n = norm.count("\n") + 1
    if norm.endswith("\n"):
        n -= 1
    return max(n, 1)


def assert_located(err: SpecError, text: str) -> None:
    """A SpecError from spec text points at a line and column inside it, and renders."""
    assert err.loc is not None, f"no location: {err.message}"
    n = line_count(text)
    assert 1 <= err.loc.line <= n, (err.loc, n, err.message)
    assert err.loc.column >= 1, (err.loc, err.message)
    err.render()


class Timeout(Exception):
    pass


@contextmanager
def time_limit(seconds: float):
    """Fail (instead of hanging) when the body runs longer than `seconds` (SIGALRM: main thread, Unix)."""

    def handler(signum, frame):
        raise Timeout(f"took longer than {seconds} s")

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


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
    "BatchNorm2d": "num_features",
    "BatchNorm1d": "num_features",
    "GroupNorm": "num_channels",
    "Linear": "in_features",
}
_IMAGE_ONLY = ("Conv2d", "BatchNorm2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d", "Dropout2d")
_TORCH_POSITIONAL: dict[str, list[str]] = {}


def torch_positional(kind: str) -> list[str]:
    """PyTorch's own positional order (from the constructor's signature), without the inferred argument."""
    if kind not in _TORCH_POSITIONAL:
        import inspect

        names = [
            p.name
            for p in inspect.signature(getattr(nn, kind)).parameters.values()
            if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD and p.name not in ("device", "dtype")
        ]
        _TORCH_POSITIONAL[kind] = [n for n in names if n != _INFERRED.get(kind)]
    return _TORCH_POSITIONAL[kind]


def _plain(v):
    if isinstance(v, list):
        return tuple(v)
    return v


def ref_layer(layer: Layer, x: torch.Tensor, counts: list) -> torch.Tensor:
    """Run one layer with torch directly: in_channels & co. from the real tensor. Raises Stricter/TorchFailure."""
    kind = layer.kind
    kwargs = dict(zip(torch_positional(kind), map(_plain, layer.args)))
    kwargs.update({k: _plain(v) for k, v in layer.kwargs})
    stricter = None
    if kind in _IMAGE_ONLY and x.dim() != 4:
        stricter = f"{kind} on a {x.dim() - 1}-D tensor per image: torch reads the batch as one unbatched image"
        if kind == "Dropout2d":
            stricter = "Dropout2d on a tensor that is not C x H x W: torch only warns"
    if kind == "Linear" and x.dim() != 2:
        stricter = "Linear on an unflattened tensor: torch applies it to the last dimension"
    if kind == "Flatten":
        start = kwargs.get("start_dim", 1)
        if start == 0 or start == -x.dim():
            stricter = "Flatten(start_dim=0) merges the batch into the features"
    if kind in _INFERRED:
        if kind == "Linear":
            kwargs[_INFERRED[kind]] = x.shape[-1]
        elif kind in _IMAGE_ONLY and x.dim() == 3:
            kwargs[_INFERRED[kind]] = x.shape[0]  # as torch reads an unbatched image
        else:
            kwargs[_INFERRED[kind]] = x.shape[1]
    try:
        m = getattr(nn, kind)(**kwargs)
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
    return y


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


_FN = {
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
    return y + s


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
        return _FN[it.name](x)
    if isinstance(it, ResStep):
        return _add(ref_item(it.item, x, counts), x, "residual step")
    raise AssertionError(it)


def ref_items(items, x: torch.Tensor, counts: list) -> torch.Tensor:
    for it in items:
        x = ref_item(it, x, counts)
    return x


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
]
FLAT_KINDS = ["Linear", "Linear", "Linear", "BatchNorm1d", "GroupNorm", "Flatten"]
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
    elif kind in ("BatchNorm2d", "BatchNorm1d"):
        maybe("eps", st.sampled_from([1e-5, 1e-3, 0.1]), 0.2)
        maybe("momentum", st.sampled_from([0.1, None, 0.5, 1.0]), 0.2)
        maybe("affine", st.booleans(), 0.3)
        maybe("track_running_stats", st.booleans(), 0.2)
    elif kind == "GroupNorm":
        kw["num_groups"] = draw(st.sampled_from(_divisors(c)) if draw(st.integers(0, 99)) < 80 else st.integers(1, 6))
        maybe("eps", st.sampled_from([1e-5, 0.01]), 0.2)
        maybe("affine", st.booleans(), 0.3)
    elif kind in ("ReLU", "ReLU6", "SiLU", "Hardswish", "Mish"):
        maybe("inplace", st.booleans(), 0.2)
    elif kind == "LeakyReLU":
        maybe("negative_slope", st.sampled_from([0.01, 0.2, -0.5, 1.0]))
        maybe("inplace", st.booleans(), 0.2)
    elif kind == "ELU":
        maybe("alpha", st.sampled_from([1.0, 0.5, 2.0]))
        maybe("inplace", st.booleans(), 0.2)
    elif kind == "GELU":
        maybe("approximate", st.sampled_from(["none", "tanh"]))
    elif kind in ("MaxPool2d", "AvgPool2d"):
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
    elif kind == "Softmax":
        kw["dim"] = draw(st.one_of(st.just(1), st.integers(-4, 3), st.none()))
    return tuple(kw.items())


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
            return Fn(self.d(st.sampled_from(sorted(_FN))))
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


@dataclass
class Case:
    text: str
    items: list
    input: tuple[int, int, int]
    load_input: str | None  # passed to load(input=...) when the text has no `input` line


_KEYWORD_CASES = {True: ["true", "True"], False: ["false", "False"], None: ["None", "none"]}


class _Writer:
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


def _declared(items) -> list:
    """The top-level declarations behind a run order (ResStep wraps a declared item; Fn declares nothing)."""
    out = []
    for it in items:
        if isinstance(it, ResStep):
            out.append(it.item)
        elif not isinstance(it, Fn):
            out.append(it)
    return out


def _names(it) -> list[str]:
    if isinstance(it, (Rep, Blk)):
        return [ly.name for ly in it.expand()]
    return [it.name]


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
    w = _Writer(draw)
    decl = _declared(items)
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
                steps += _names(it)
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


# shared by the test modules that run many tiny networks
WARNING_FILTERS = [
    pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning"),
    pytest.mark.filterwarnings("ignore:Implicit dimension choice for softmax:UserWarning"),
]


def one_torch_thread():
    """Tiny tensors: one thread is ~10x faster than fighting over the shared cores (restored afterwards)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
