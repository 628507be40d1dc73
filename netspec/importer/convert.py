"""Step 2: printed layers -> netspec's layers.

Every printed leaf is looked up in netspec's closed table of layers. Sizes that follow from the input
(`in_channels`, `num_features`, `in_features`, `num_channels`) are set aside in `PNode.printed`, to be checked by
`solve`; arguments equal to PyTorch's defaults are dropped; what is left is validated by the layer's argument model
and kept in `PNode.spec_args`, as the spec will write it.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError

from ..errors import Location, SpecError
from ..lang import LAYERS, LayerSpec, argument_error, check_conflict, did_you_mean
from .read import PArg, PNode, Reader, normalize_text
from .render import call_text, value_text

# torch's own positional order, where it is not netspec's inferred arguments followed by its POSITIONAL
_PRINTED_POSITIONAL = {"GroupNorm": ("num_groups", "num_channels", "eps", "affine")}

# arguments today's PyTorch prints that netspec's layers do not take, with the only value netspec can build
_PRINTED_ONLY: dict[str, dict[str, Any]] = {
    "BatchNorm2d": {"bias": True},
    "BatchNorm1d": {"bias": True},
    "GroupNorm": {"bias": True},
    "LayerNorm2d": {"bias": True},
    "ZeroPad2d": {"value": 0.0},  # PyTorch before 2.1 printed ZeroPad2d(padding=(1, 1, 1, 1), value=0.0)
}

# layers whose torch class stores these arguments with a value per side, which a spec writes once where they are
# equal: `kernel_size=(3, 3)` is `kernel_size=3`, `ReflectionPad2d((1, 1, 1, 1))` is `ReflectionPad2d(1)`
_PAD = ("padding",)
_PER_SIDE: dict[str, tuple[str, ...]] = {
    "Conv2d": ("kernel_size", "stride", "padding", "dilation"),
    "ConvTranspose2d": ("kernel_size", "stride", "padding", "output_padding", "dilation"),
    "ReflectionPad2d": _PAD,
    "ReplicationPad2d": _PAD,
    "ZeroPad2d": _PAD,
}

# PyTorch 0.2 and 0.3 printed MaxPool2d's values as pairs whatever it was given, and left out `padding=` when it was
# 0 and (0.2) `ceil_mode=`, both of which today's PyTorch always prints: a MaxPool2d printed without one of them is
# of that form, its pairs written once
_OLD_PAIRS = {"MaxPool2d": (("padding", "ceil_mode"), ("kernel_size", "stride", "padding", "dilation"))}

# arguments under the names older PyTorch printed them by: 0.2's pools print `MaxPool2d (size=(2, 2), ...)`
_OLD_NAMES = {"MaxPool2d": {"size": "kernel_size"}, "AvgPool2d": {"size": "kernel_size"}}

# torch.nn's losses (the classes of torch.nn.modules.loss): a model may register its criterion as a child, and
# print(model) lists it with the layers
LOSSES = frozenset(
    {
        "BCELoss",
        "BCEWithLogitsLoss",
        "CTCLoss",
        "CosineEmbeddingLoss",
        "CrossEntropyLoss",
        "GaussianNLLLoss",
        "HingeEmbeddingLoss",
        "HuberLoss",
        "KLDivLoss",
        "L1Loss",
        "LinearCrossEntropyLoss",
        "MSELoss",
        "MarginRankingLoss",
        "MultiLabelMarginLoss",
        "MultiLabelSoftMarginLoss",
        "MultiMarginLoss",
        "NLLLoss",
        "NLLLoss2d",
        "PoissonNLLLoss",
        "SmoothL1Loss",
        "SoftMarginLoss",
        "TripletMarginLoss",
        "TripletMarginWithDistanceLoss",
    }
)

# pools default their stride to the kernel size: MaxPool2d(kernel_size=2, stride=2) is MaxPool2d(2)
_POOLS = ("MaxPool2d", "AvgPool2d")

# words the spec grammar reserves: no child may carry these names
RESERVED = frozenset({"forward", "train", "repeat", "residual", "Sequential", "Residual"})
NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def same_value(a: Any, b: Any) -> bool:
    """Equal and of the same type (True is not 1, 2 is not 2.0: each prints differently), item by item in tuples."""
    if type(a) is not type(b):
        return False
    if isinstance(a, tuple):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    return bool(a == b)


def read_module(text: str, filename: str | None) -> tuple[PNode, Reader]:
    """Normalized printed text -> its tree, converted (and the reader, which locates errors in the text)."""
    reader = Reader(text, filename)
    root = reader.read()
    Converter(reader).root(root)
    return root, reader


def layer_call(printed: str) -> str:
    """One printed layer as a spec writes it: sizes from the input and PyTorch's defaults dropped.

    >>> layer_call("Conv2d(3, 64, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))")
    'Conv2d(64, kernel_size=3, padding=1)'
    """
    reader = Reader(normalize_text(printed.strip(), None), None)
    node, end = reader.module(0, "layer", None, 0)
    if reader.skip_ws(end) < len(reader.text) or not node.is_leaf:
        raise reader.error("expected one printed layer, such as `ReLU(inplace=True)`", end, code="E201")
    node.path = "layer"
    Converter(reader).node(node)
    return call_text(node.cls, node.spec_args)


class Converter:
    """Checks the printed tree's names and containers, and converts its layers in place."""

    def __init__(self, reader: Reader):
        self.r = reader

    def err(self, message: str, loc: Location | None, *, code: str, hint: str | None = None) -> SpecError:
        return self.r.error_at(message, loc, hint=hint, code=code)

    def root(self, root: PNode) -> None:
        if root.is_leaf:
            if root.cls in ("Sequential",) and not root.args:
                raise self.err("the printed module has no children", root.loc, code="E203")
            raise self.err(
                f"{root.cls}(...) is a single layer: a network prints its children as `(name): Layer(...)` lines",
                root.loc,
                hint=f"wrap it: nn.Sequential({root.cls}(...)) prints as one",
                code="E203",
            )
        if not root.children:
            raise self.err("the printed module has no children", root.loc, code="E203")
        self.children(root, root.children, root.cls == "Sequential")

    def children(self, parent: PNode, kids: list[PNode], positional: bool) -> None:
        seen: set[str] = set()
        for i, child in enumerate(kids):
            child.path = f"{parent.path}.{child.name}" if parent.path else child.name
            if child.name in seen:
                raise self.err(f"the name {child.name!r} is printed twice in {parent.cls}", child.name_loc, code="E203")
            seen.add(child.name)
            if positional and child.name == str(i):
                child.anonymous = True
            elif positional and child.name.isdigit():
                raise self.err(
                    f"child {child.path!r} is numbered out of place ({child.name} at position {i})",
                    child.name_loc,
                    hint="a spec numbers the unnamed layers of a Sequential 0, 1, 2, ...",
                    code="E204",
                )
            else:
                self.check_name(child)
            self.node(child)

    def check_name(self, child: PNode) -> None:
        if not NAME_RE.fullmatch(child.name) or child.name in RESERVED:
            why = "is a word of the spec language" if child.name in RESERVED else "is not a name a spec can write"
            raise self.err(
                f"the child name {child.name!r} {why}",
                child.name_loc,
                hint="names are letters, digits and '_', not starting with a digit; rename the child",
                code="E204",
            )

    def node(self, node: PNode) -> None:
        if node.cls in LOSSES:
            raise self.err(
                f"{node.path!r} is a {node.cls}: a loss is not part of the network; remove it from the print",
                node.loc,
                hint="print(model) lists every module registered in __init__, a criterion too; the spec is of the "
                "network alone",
                code="E213",
            )
        if node.count != 1:
            raise self.err(
                f"{node.path!r} is printed as {node.count} x {node.cls}: a ModuleList; netspec imports "
                f"nn.Sequential stacks only",
                node.name_loc,
                code="E205",
            )
        if node.cls == "Sequential":
            if node.is_leaf:
                if node.args:
                    raise self.err("Sequential takes no arguments", node.loc, code="E203")
                node.args = None  # `Sequential()`: an empty one
                return
            self.children(node, node.children, True)
        elif node.cls == "Residual":  # netspec's own composite, as compiled specs print it
            self.residual(node)
        elif node.cls not in LAYERS:
            self.unknown(node)
        elif not node.is_leaf:
            raise self.err(
                f"{node.path!r} is printed as a {node.cls} with children: not torch's {node.cls}", node.loc, code="E205"
            )
        else:
            self.layer(node)

    def residual(self, node: PNode) -> None:
        if node.is_leaf:
            raise self.err("a Residual needs a body", node.loc, code="E203")
        self.children(node, node.body, True)
        sc = [c for c in node.children if c.name == "shortcut"]
        if sc:
            s = sc[0]
            s.path = f"{node.path}.shortcut"
            self.node(s)
            if s.cls == "Sequential" and not s.is_leaf:
                node.shortcut = s.children
            else:
                s.anonymous = True
                node.shortcut = [s]

    def unknown(self, node: PNode) -> None:
        if not node.is_leaf:
            raise self.err(
                f"cannot import {node.path!r}: {node.cls} is not a Sequential, and a printed module "
                f"does not show the order its forward() runs its children in",
                node.loc,
                hint="netspec's composites are Sequential and Residual: write this part by hand as "
                "a block, or pass the module's layers as an nn.Sequential",
                code="E205",
            )
        hint = did_you_mean(node.cls, LAYERS) or f"netspec's layers: {', '.join(LAYERS)}"
        raise self.err(f"netspec has no layer {node.cls!r} (child {node.path!r})", node.loc, hint=hint, code="E206")

    # ---- one layer ---------------------------------------------------------------------------------------------

    def layer(self, node: PNode) -> None:
        cls = LAYERS[node.cls]
        values, locs = self.by_key(node, cls, node.args or [])
        kept = self.kept(node, cls, values, locs)
        self.validate(node, cls, kept, locs)
        # the first required argument positional, the rest by keyword: Conv2d(64, kernel_size=3, padding=1)
        fields = cls.model_fields
        first = cls.POSITIONAL[0] if cls.POSITIONAL else None
        args: list[tuple[str | None, Any]] = []
        for key in cls.POSITIONAL + tuple(k for k in fields if k not in cls.POSITIONAL):
            if key in kept:
                positional = key == first and fields[key].is_required()
                args.append((None if positional else key, kept[key]))
        node.spec_args = args

    def by_key(self, node: PNode, cls: type[LayerSpec], args: list[PArg]) -> tuple[dict[str, Any], dict[str, Location]]:
        """The printed arguments by name (positional ones in torch's order), and where each is printed."""
        order = _PRINTED_POSITIONAL.get(node.cls, cls.INFERRED + cls.POSITIONAL)
        renamed = _OLD_NAMES.get(node.cls, {})
        values: dict[str, Any] = {}
        locs: dict[str, Location] = {}
        npos = 0
        for a in args:
            if a.key is None:
                if npos >= len(order):
                    raise self.err(f"{node.cls} takes at most {len(order)} positional arguments", a.loc, code="E207")
                key = order[npos]
                npos += 1
            else:
                key = renamed.get(a.key, a.key)
            if key in values:
                raise self.err(f"{node.cls} is printed with {key!r} twice", a.loc, code="E207")
            values[key], locs[key] = a.value, a.loc
        return values, locs

    def kept(
        self, node: PNode, cls: type[LayerSpec], values: dict[str, Any], locs: dict[str, Location]
    ) -> dict[str, Any]:
        """The arguments the spec writes: inferred sizes set aside in `node.printed`, defaults dropped."""
        fields = cls.model_fields
        only = _PRINTED_ONLY.get(node.cls, {})
        pairs = _pairs(node.cls, values)
        kept: dict[str, Any] = {}
        for key, value in values.items():
            if key in cls.INFERRED:
                if isinstance(value, tuple) and len(value) == 1:  # LayerNorm's normalized_shape prints as (96,)
                    value = value[0]
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise self.err(
                        f"{key} of {node.cls} must be a positive integer, got {value!r}", locs[key], code="E207"
                    )
                node.printed[key] = value
            elif key in only:
                if not same_value(value, only[key]):
                    raise self.err(
                        f"netspec's {node.cls} cannot be built with {key}={value!r}",
                        locs[key],
                        hint=f"netspec's {node.cls} always has {key}={only[key]!r}",
                        code="E207",
                    )
            elif key not in fields:
                raise self.err(
                    f"netspec's {node.cls} has no argument {key!r} (child {node.path!r})",
                    locs[key],
                    hint=cls.signature(),
                    code="E207",
                )
            else:
                kept[key] = _single(value) if key in pairs else value
        for key in list(kept):
            if not fields[key].is_required() and same_value(kept[key], fields[key].default):
                del kept[key]
        if (
            node.cls in _POOLS
            and "stride" in kept
            and "kernel_size" in kept
            and same_value(kept["stride"], kept["kernel_size"])
        ):
            del kept["stride"]
        return kept

    def validate(self, node: PNode, cls: type[LayerSpec], kept: dict[str, Any], locs: dict[str, Location]) -> None:
        """The kept arguments must build netspec's layer, and be values a spec can write."""
        try:
            check_conflict(cls.model_validate(kept), node.cls, locs, node.loc)
        except ValidationError as e:  # worded by lang, as for a spec's own call
            err = argument_error(cls, node.cls, kept, locs, node.loc, e)
            raise err.attach(self.r.filename, self.r.text) from None
        except SpecError as e:
            raise e.attach(self.r.filename, self.r.text) from None
        for key, value in kept.items():
            try:
                value_text(value)
            except ValueError as e:
                raise self.err(f"argument {key!r} of {node.cls}: {e}", locs[key], code="E207") from None


def _pairs(cls: str, values: dict[str, Any]) -> tuple[str, ...]:
    """The arguments of a printed layer that torch printed as pairs of what it was given: written once."""
    if cls in _OLD_PAIRS and not all(key in values for key in _OLD_PAIRS[cls][0]):
        return _OLD_PAIRS[cls][1]
    return _PER_SIDE.get(cls, ())


def _single(value: Any) -> Any:
    """One integer stored for every side, as torch stores `kernel_size=3`, written once: (3, 3) -> 3."""
    if isinstance(value, tuple) and value and all(type(v) is int and v == value[0] for v in value):
        return value[0]
    return value
