"""Stage 3: static shape inference, without torch.

For every module, in run order: the incoming and outgoing shape (per image, batch left out), the parameter count,
the multiply-accumulates counted the way torchinfo counts them (a layer with weights: its parameters times the
output's spatial positions for convolutions, times one image otherwise; a layer without weights: 0), and the
arguments that follow from the input (`in_channels`, `num_features`, `in_features`, `num_channels`). The rules are
PyTorch's own formulas; `tests/test_shapes.py` checks them against torch for every layer kind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from math import prod
from typing import Any

from .errors import Location, SpecError
from .lang import LAYERS, Network, Node, pair
from .lang import layers as L

Shape = tuple[int, ...]

# A tensor or weight larger than this (elements, per image for activations) cannot be trained on any machine
# netspec targets: 2**33 fp32 elements is 32 GiB. Refused statically, before anything is allocated.
MAX_ELEMENTS = 2**33


class ShapeError(Exception):
    """A rule's refusal, said of the layer; located and worded as a SpecError by the walk below."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the shape table: a module (a leaf or a composite), or a `forward` function."""

    path: str  # "conv1", "resblock1_1.0"
    layer: str  # a class name ("Conv2d", "Sequential", "Residual") or, for a function step, its name ("relu")
    depth: int
    in_shape: Shape
    out_shape: Shape
    params: int
    macs: int
    loc: Location
    is_leaf: bool = True
    step: str = "module"  # how the forward order runs it: "module", "residual" (x + m(x)) or "function"
    node: Node | None = None  # the module; None for a function and for a shortcut's Sequential, which is no Node

    @property
    def label(self) -> str:
        """The table's `layer` column: `Conv2d`, `relu()`, `x + Sequential(x)`."""
        if self.step == "function":
            return f"{self.layer}()"
        if self.step == "residual":
            return f"x + {self.layer}(x)"
        return self.layer


@dataclass(frozen=True, slots=True)
class ShapeTable:
    input: Shape
    output: Shape
    rows: tuple[Row, ...]
    inferred: dict[Node, dict[str, int]] = field(default_factory=dict)  # node -> {"in_channels": 3, ...}

    @property
    def total_params(self) -> int:
        return sum(r.params for r in self.rows if r.is_leaf)

    @property
    def total_macs(self) -> int:
        return sum(r.macs for r in self.rows if r.is_leaf)


def fmt_shape(shape: Shape) -> str:
    return "x".join(str(d) for d in shape)


def _need_chw(kind: str, shape: Shape) -> tuple[int, int, int]:
    if len(shape) != 3:
        hint = None
        if len(shape) == 1:
            hint = f"{kind} works on (C, H, W) images; this tensor was already flattened"
        raise ShapeError(f"{kind} needs a C x H x W input", hint)
    return shape


# ---- the rules: (config, input shape) -> (output shape, params, macs, inferred arguments) ----------------------

Result = tuple[Shape, int, int, dict[str, int]]
Pair = int | tuple[int, int]


def _conv2d(cfg: L.Conv2d, shape: Shape) -> Result:
    c, h, w = _need_chw("Conv2d", shape)
    kh, kw = pair(cfg.kernel_size)
    sh, sw = pair(cfg.stride)
    dh, dw = pair(cfg.dilation)
    if c % cfg.groups or cfg.out_channels % cfg.groups:
        raise ShapeError(
            f"groups={cfg.groups} must divide both the {c} input channels and the {cfg.out_channels} output channels"
        )
    eh, ew = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    if cfg.padding == "same":
        if (sh, sw) != (1, 1):
            raise ShapeError("padding='same' needs stride 1", "use an integer padding with a stride")
        # torch pads (eh - 1) in all: (eh - 1) // 2 before, the rest (the larger half) after
        _check_padding_mode(cfg.padding_mode, eh - 1 - (eh - 1) // 2, ew - 1 - (ew - 1) // 2, h, w)
        ho, wo = h, w
    else:
        ph, pw = (0, 0) if cfg.padding == "valid" else pair(cfg.padding)
        if h + 2 * ph < eh or w + 2 * pw < ew:
            raise ShapeError(
                f"its {eh}x{ew} kernel (with dilation) is larger than the padded {h + 2 * ph}x{w + 2 * pw} input",
                "use a larger input, more padding or a smaller kernel",
            )
        _check_padding_mode(cfg.padding_mode, ph, pw, h, w)
        ho = (h + 2 * ph - eh) // sh + 1
        wo = (w + 2 * pw - ew) // sw + 1
    weight = cfg.out_channels * (c // cfg.groups) * kh * kw
    params = weight + (cfg.out_channels if cfg.bias else 0)
    return (cfg.out_channels, ho, wo), params, params * ho * wo, {"in_channels": c}


def _check_padding_mode(mode: str, ph: int, pw: int, h: int, w: int) -> None:
    """torch's F.pad limits: 'reflect' needs padding < the size, 'circular' padding <= the size; 'replicate' and
    'zeros' take any padding."""
    if mode == "reflect" and (ph >= h or pw >= w):
        raise ShapeError(
            f"padding_mode='reflect' pads {ph}x{pw}: it needs padding smaller than the {h}x{w} input",
            "use padding_mode='replicate' or 'zeros', or a larger input",
        )
    if mode == "circular" and (ph > h or pw > w):
        raise ShapeError(
            f"padding_mode='circular' pads {ph}x{pw}: it needs padding no larger than the {h}x{w} input",
            "use padding_mode='replicate' or 'zeros', or a larger input",
        )


def _batchnorm2d(cfg: L.BatchNorm2d, shape: Shape) -> Result:
    c, _, _ = _need_chw("BatchNorm2d", shape)
    params = 2 * c if cfg.affine else 0
    return shape, params, params, {"num_features": c}


def _batchnorm1d(cfg: L.BatchNorm1d, shape: Shape) -> Result:
    if len(shape) not in (1, 2):
        raise ShapeError(
            "BatchNorm1d needs a (C,) or (C, L) input", "use BatchNorm2d on C x H x W images, or Flatten() first"
        )
    c = shape[0]
    params = 2 * c if cfg.affine else 0
    return shape, params, params, {"num_features": c}


def _groupnorm(cfg: L.GroupNorm, shape: Shape) -> Result:
    if len(shape) < 1:
        raise ShapeError("GroupNorm needs a channel dimension")
    c = shape[0]
    if c % cfg.num_groups:
        raise ShapeError(f"num_groups={cfg.num_groups} must divide the {c} channels")
    if c // cfg.num_groups * prod(shape[1:]) == 1:
        # torch refuses it for one image ("Expected more than 1 value per channel"), in eval mode too; with more
        # images each group still normalizes a single value, so the layer outputs its bias whatever the input
        raise ShapeError(
            f"with num_groups={cfg.num_groups} each group holds a single value per image",
            "use fewer groups, or normalize before the spatial size shrinks to 1x1",
        )
    params = 2 * c if cfg.affine else 0
    return shape, params, params, {"num_channels": c}


def _same(cfg: Any, shape: Shape) -> Result:
    return shape, 0, 0, {}


def _pool_out(size: int, k: int, s: int, p: int, d: int, ceil: bool) -> int:
    # ATen's pooling_output_shape
    num = size + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil else 0)
    out = num // s + 1
    if ceil and (out - 1) * s >= size + p:
        out -= 1
    return out


def _pool(
    kind: str, shape: Shape, kernel: Pair, stride: Pair | None, padding: Pair, dilation: Pair, ceil: bool
) -> Result:
    c, h, w = _need_chw(kind, shape)
    kh, kw = pair(kernel)
    sh, sw = pair(stride if stride is not None else kernel)
    ph, pw = pair(padding)
    dh, dw = pair(dilation)
    if ph > kh // 2 or pw > kw // 2:
        raise ShapeError(
            f"padding {ph}x{pw} is more than half the {kh}x{kw} window", "padding may be at most kernel_size // 2"
        )
    ho = _pool_out(h, kh, sh, ph, dh, ceil)
    wo = _pool_out(w, kw, sw, pw, dw, ceil)
    if ho < 1 or wo < 1:
        raise ShapeError(
            f"its {kh}x{kw} window is larger than its {h}x{w} input",
            "use a larger input size, or remove a pooling layer before it",
        )
    return (c, ho, wo), 0, 0, {}


def _maxpool2d(cfg: L.MaxPool2d, shape: Shape) -> Result:
    return _pool("MaxPool2d", shape, cfg.kernel_size, cfg.stride, cfg.padding, cfg.dilation, cfg.ceil_mode)


def _avgpool2d(cfg: L.AvgPool2d, shape: Shape) -> Result:
    return _pool("AvgPool2d", shape, cfg.kernel_size, cfg.stride, cfg.padding, 1, cfg.ceil_mode)


def _adaptive(cfg: L.AdaptiveAvgPool2d | L.AdaptiveMaxPool2d, shape: Shape) -> Result:
    c, h, w = _need_chw(cfg.kind(), shape)
    size: int | tuple[int | None, int | None] | None = cfg.output_size  # None keeps that side
    oh, ow = pair(size)
    return (c, h if oh is None else oh, w if ow is None else ow), 0, 0, {}


def _dropout2d(cfg: L.Dropout2d, shape: Shape) -> Result:
    _need_chw("Dropout2d", shape)
    return shape, 0, 0, {}


def _flatten(cfg: L.Flatten, shape: Shape) -> Result:
    ndim = len(shape) + 1  # with the batch dimension
    start = cfg.start_dim + ndim if cfg.start_dim < 0 else cfg.start_dim
    end = cfg.end_dim + ndim if cfg.end_dim < 0 else cfg.end_dim
    if not (0 <= start < ndim) or not (0 <= end < ndim):
        raise ShapeError(f"dimensions {cfg.start_dim}..{cfg.end_dim} are out of range for a {ndim}-D batch")
    if start == 0:
        raise ShapeError("start_dim=0 would merge the batch into the features", "use Flatten() (start_dim=1)")
    if start > end:
        raise ShapeError(f"start_dim {cfg.start_dim} comes after end_dim {cfg.end_dim}")
    full = (1,) + shape
    out = full[:start] + (prod(full[start : end + 1]),) + full[end + 1 :]
    return out[1:], 0, 0, {}


def _linear(cfg: L.Linear, shape: Shape) -> Result:
    if len(shape) != 1:
        raise ShapeError("Linear needs a flat (F,) input", "add Flatten() before it")
    f = shape[0]
    params = f * cfg.out_features + (cfg.out_features if cfg.bias else 0)
    return (cfg.out_features,), params, params, {"in_features": f}


def _softmax(cfg: L.Softmax, shape: Shape) -> Result:
    if cfg.dim is not None and not (-(len(shape) + 1) <= cfg.dim <= len(shape)):
        raise ShapeError(f"dim={cfg.dim} is out of range")
    return shape, 0, 0, {}


Rule = Callable[[Any, Shape], Result]

RULES: dict[str, Rule] = {
    "Conv2d": _conv2d,
    "BatchNorm2d": _batchnorm2d,
    "BatchNorm1d": _batchnorm1d,
    "GroupNorm": _groupnorm,
    "MaxPool2d": _maxpool2d,
    "AvgPool2d": _avgpool2d,
    "AdaptiveAvgPool2d": _adaptive,
    "AdaptiveMaxPool2d": _adaptive,
    "Dropout2d": _dropout2d,
    "Flatten": _flatten,
    "Linear": _linear,
    "Softmax": _softmax,
}
RULES.update({name: _same for name in LAYERS if name not in RULES})


# ---- walking a network --------------------------------------------------------------------------------------------


class _Inferer:
    """Walks the run order, appending a row per module and function; on a mistake, what it has so far stays."""

    def __init__(self, net: Network):
        self.net = net
        self.rows: list[Row] = []
        self.inferred: dict[Node, dict[str, int]] = {}
        self.total_params = 0

    def node(self, node: Node, shape: Shape, path: str, depth: int) -> Shape:
        if node.config is None:
            return self.composite(node, shape, path, depth)
        assert node.layer is not None
        first_use = node not in self.inferred
        try:
            out, params, macs, inferred = RULES[node.layer](node.config, shape)
        except ShapeError as e:
            raise SpecError(
                f"{node.layer} {path!r} cannot take its {fmt_shape(shape)} input: {e.message}",
                node.loc,
                hint=e.hint,
                code="E070",
            ) from None
        if not first_use and self.inferred[node] != inferred:
            raise SpecError(
                f"{path!r} runs twice with inputs that need different sizes ({_args(self.inferred[node])}, then "
                f"{_args(inferred)})",
                node.loc,
                hint="a module has one set of weights: declare a second layer for the second place",
                code="E071",
            )
        self.inferred[node] = inferred
        self.check_size(node, path, out, params)
        if first_use:
            self.check_total(node, path, params)
        self.rows.append(
            Row(path, node.layer, depth, shape, out, params if first_use else 0, macs, node.loc, node=node)
        )
        return out

    def composite(self, node: Node, shape: Shape, path: str, depth: int) -> Shape:
        assert node.composite is not None
        at = len(self.rows)
        x = self.group(node.children, shape, path, node.composite, depth, node.loc, node)
        if node.composite != "Residual":
            return x
        s = shape
        if node.shortcut is not None:
            # the paths of build.Residual: a lone anonymous layer is the child `shortcut` itself, anything
            # else an nn.Sequential `shortcut` holding the layers by name, which gets a row of its own so the
            # table shows the shortcut's layers under it, as print(model) does
            if len(node.shortcut) == 1 and node.shortcut[0].name == "0":
                s = self.node(node.shortcut[0], s, f"{path}.shortcut", depth + 1)
            else:
                s = self.group(node.shortcut, s, f"{path}.shortcut", "Sequential", depth + 1, node.loc)
        if s != x:
            raise SpecError(
                f"the body of Residual {path!r} turns {fmt_shape(shape)} into {fmt_shape(x)}, "
                f"but x + body(x) needs {fmt_shape(s)}",
                node.loc,
                hint="keep the shape in the body, or add a projection: "
                "Residual { ... } shortcut { Conv2d(C, kernel_size=1, stride=S) }",
                code="E072",
            )
        self.total(at)  # the body's and the shortcut's
        return x

    def group(
        self,
        children: tuple[Node, ...],
        shape: Shape,
        path: str,
        kind: str,
        depth: int,
        loc: Location,
        node: Node | None = None,
    ) -> Shape:
        """A composite's row, then its children's rows one level deeper; its params and MACs are theirs summed."""
        at = len(self.rows)
        self.rows.append(Row(path, kind, depth, shape, shape, 0, 0, loc, is_leaf=False, node=node))
        x = shape
        for child in children:
            x = self.node(child, x, f"{path}.{child.name}", depth + 1)
        self.rows[at] = replace(self.rows[at], out_shape=x)
        self.total(at)
        return x

    def total(self, at: int) -> None:
        """Sum the params and MACs of the leaf rows after the composite row `at` into it."""
        sub = [r for r in self.rows[at + 1 :] if r.is_leaf]
        self.rows[at] = replace(self.rows[at], params=sum(r.params for r in sub), macs=sum(r.macs for r in sub))

    def check_total(self, node: Node, path: str, params: int) -> None:
        """Each layer within the limit is not enough: the whole network's weights must fit too."""
        self.total_params += params
        if self.total_params > MAX_ELEMENTS:
            total = self.total_params
            raise SpecError(
                f"with {node.layer} {path!r} the network would have {total:,} parameters in all "
                f"({total * 4 / 2**30:,.0f} GiB in fp32): more than any machine can train",
                node.loc,
                hint="check the sizes, repeats and constants (--set) of the network",
                code="E073",
            )

    def check_size(self, node: Node, path: str, out: Shape, params: int) -> None:
        if params > MAX_ELEMENTS:
            raise SpecError(
                f"{node.layer} {path!r} would have {params:,} parameters ({params * 4 / 2**30:,.0f} GiB "
                f"in fp32): more than any machine can train",
                node.loc,
                hint="check the sizes and constants (--set) feeding this layer",
                code="E073",
            )
        if prod(out) > MAX_ELEMENTS:
            raise SpecError(
                f"{node.layer} {path!r} would output {prod(out):,} values per image: more than fits in memory",
                node.loc,
                hint="check the sizes and constants feeding this layer",
                code="E073",
            )

    def run(self, input: Shape) -> Shape:
        """The network's output shape at `input`; the rows and inferred arguments are left in `self`."""
        by_name = {n.name: n for n in self.net.layers}
        if prod(input) > MAX_ELEMENTS:  # the input is an activation too
            raise SpecError(
                f"a {fmt_shape(input)} input has {prod(input):,} values per image: more than fits in memory",
                self.net.input_loc,
                hint="use a smaller input size",
                code="E073",
            )
        x = input
        for step in self.net.forward:
            if step.op == "function":
                out = (prod(x),) if step.name == "flatten" else x
                self.rows.append(Row(step.name, step.name, 0, x, out, 0, 0, step.loc, step="function"))
                x = out
            elif step.op == "module":
                x = self.node(by_name[step.name], x, step.name, 0)
            else:
                start = len(self.rows)
                y = self.node(by_name[step.name], x, step.name, 0)
                if y != x:
                    raise SpecError(
                        f"residual {step.name}: x + {step.name}(x) needs {step.name} to keep the shape "
                        f"{fmt_shape(x)}, but it gives {fmt_shape(y)}",
                        step.loc,
                        code="E072",
                    )
                self.rows[start] = replace(self.rows[start], step="residual")
        return x


def infer(net: Network, input: Shape | None = None) -> ShapeTable:
    """The shape table of `net` at `input` (default: the network's input). Raises SpecError on a shape mistake."""
    table, err = infer_partial(net, input)
    if err is not None:
        raise err
    return table


def infer_partial(net: Network, input: Shape | None = None) -> tuple[ShapeTable, SpecError | None]:
    """As `infer`, but a shape mistake is returned with the table of the rows before it (output: the last shape
    reached), for tools that want to know how far a network runs."""
    inferer = _Inferer(net)
    size = tuple(input or net.input)
    try:
        out = inferer.run(size)
    except SpecError as e:
        last = inferer.rows[-1].out_shape if inferer.rows else size
        return ShapeTable(size, last, tuple(inferer.rows), inferer.inferred), e.attach(net.filename, net.source)
    return ShapeTable(size, out, tuple(inferer.rows), inferer.inferred), None


def accepts(net: Network, input: Shape) -> bool:
    """Whether the network runs at this input size."""
    try:
        _Inferer(net).run(input)
    except SpecError:
        return False
    return True


def smallest_inputs(net: Network, limit: int = 4096) -> tuple[Shape | None, Shape | None]:
    """The smallest square input the network accepts, and the smallest H x W (by area) found near it."""
    c = net.input[0]
    square = None
    for s in range(1, limit + 1):
        if accepts(net, (c, s, s)):
            square = (c, s, s)
            break
    if square is None:
        return None, None
    s = square[1]
    best = square
    # shrink one side at a time while the other stays at the square size
    hmin = next((h for h in range(1, s + 1) if accepts(net, (c, h, s))), s)
    wmin = next((w for w in range(1, s + 1) if accepts(net, (c, s, w))), s)
    for cand in ((c, hmin, wmin), (c, hmin, s), (c, s, wmin)):
        if cand[1] * cand[2] < best[1] * best[2] and accepts(net, cand):
            best = cand
    return square, best


def _args(args: dict[str, int]) -> str:
    """`num_features=3`: the arguments worked out from an input."""
    return ", ".join(f"{k}={v}" for k, v in args.items())
