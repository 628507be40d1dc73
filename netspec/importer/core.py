"""Import a printed PyTorch module (what `print(model)` writes) as a .net spec.

    netspec import model.txt -o model.net             # text as print(model) wrote it, today's or older PyTorch
    netspec import - --order order.txt < model.txt    # with the run order, as a `forward { ... }` section

The steps, each with its own section below:

1. Read the printed text with a small hand parser: nesting by parentheses, not indentation (pasted and paginated
   text loses its indentation), arguments read by `ast.literal_eval` one by one (nothing is evaluated).
2. Map every printed layer onto netspec's closed table: sizes that follow from the input (`in_channels`,
   `num_features`, `in_features`, `num_channels`) are set aside to be checked, and arguments equal to PyTorch's
   defaults are dropped.
3. Solve for the input size: netspec's own static shape inference runs the network at candidate sizes, and a size
   is accepted when every inferred size equals the printed one. The run order is the registration order (a printed
   module does not show `forward()`) unless `--order` gives it.
4. Fold repeated groups into `block`s and `repeat`s wherever that makes the spec shorter, render, and check that
   the rendered spec elaborates to exactly the network read from the text (else fall back to the plain form).

`from_module(module)` does the same for a live `nn.Module` made of `nn.Sequential` stacks and netspec's layers.
Nothing here imports torch, except `from_module`.
"""

from __future__ import annotations

import ast
import re
import warnings
from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Any

import click
from pydantic import ValidationError

from ..errors import Location, SpecError, UsageError
from ..lang import layers as L

MAX_TEXT_CHARS = 1_000_000
MAX_DEPTH = 100
MAX_SIDE = 1024  # square inputs are searched from 1x1 to this
LINE_WIDTH = 100

# torch's own positional order, where it is not netspec's inferred arguments followed by its POSITIONAL
_PRINTED_POSITIONAL = {"GroupNorm": ("num_groups", "num_channels", "eps", "affine")}

# arguments today's PyTorch prints that netspec's layers do not take, with the only value netspec can build
_PRINTED_ONLY = {"BatchNorm2d": {"bias": True}, "BatchNorm1d": {"bias": True}, "GroupNorm": {"bias": True}}

# layers whose torch class stores these arguments as pairs: `kernel_size=(3, 3)` is written `kernel_size=3`
_PAIRS = {"Conv2d": ("kernel_size", "stride", "padding", "dilation")}

# layers that work element by element on any shape: a flatten may move across them
_ELEMENTWISE = {
    "Dropout",
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
}

# words the spec grammar reserves: no child may carry these names
_RESERVED = {"forward", "train", "repeat", "residual", "Sequential", "Residual"}
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class ModuleImportError(SpecError, ValueError):
    """A part of a live module that a spec cannot express (a SpecError that is also a ValueError)."""


# ---------------------------------------------------------------------------------------------------------------
# 1. Printed text -> tree
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class PArg:
    key: str | None
    value: Any
    loc: Location


@dataclass(eq=False)
class PNode:
    """One module as printed: a leaf (`args` set) or a container (`children`)."""

    name: str  # the child name as printed; "" for the root
    cls: str
    loc: Location  # the class name
    name_loc: Location | None = None
    args: list[PArg] | None = None
    children: list[PNode] = field(default_factory=list)
    count: int = 1  # `(0-3): 4 x Linear(...)`, as ModuleList prints
    path: str = ""
    anonymous: bool = False  # named by its position in a Sequential: written without a name
    spec_args: list[tuple[str | None, Any]] = field(default_factory=list)  # what the spec writes
    printed: dict[str, int] = field(default_factory=dict)  # printed sizes netspec infers
    shortcut: list[PNode] | None = None  # for Residual

    @property
    def is_leaf(self) -> bool:
        return self.args is not None

    @property
    def body(self) -> list[PNode]:
        return [c for c in self.children if not (self.cls == "Residual" and c.name == "shortcut")]

    def leaves(self):
        if self.is_leaf:
            yield self
        else:
            for c in self.children:
                yield from c.leaves()

    def what(self) -> str:
        return f"{self.cls} {self.path!r}" if self.path else self.cls


class _Reader:
    """A recursive-descent reader for `Class(args)` / `Class(\\n (name): Class(...) ... \\n)`."""

    _IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
    _COUNT = re.compile(r"(\d+) x ")

    def __init__(self, text: str, filename: str | None):
        self.text = text
        self.filename = filename
        self.line_starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def loc(self, pos: int, end: int | None = None) -> Location:
        line = bisect_right(self.line_starts, pos)
        col = pos - self.line_starts[line - 1] + 1
        end_col = None if end is None else col + max(1, end - pos)
        return Location(line, col, end_col)

    def error(
        self, message: str, pos: int, hint: str | None = None, end: int | None = None, code: str = "E090"
    ) -> SpecError:
        return SpecError(
            message,
            self.loc(min(pos, len(self.text)), end),
            hint=hint,
            code=code,
            filename=self.filename,
            source=self.text,
        )

    def skip_ws(self, pos: int) -> int:
        while pos < len(self.text) and self.text[pos] in " \t\n":
            pos += 1
        return pos

    def skip_blank(self, pos: int) -> int:
        while pos < len(self.text) and self.text[pos] in " \t":
            pos += 1
        return pos

    def read(self) -> PNode:
        pos = self.skip_ws(0)
        if pos >= len(self.text):
            raise self.error(
                "no module here: expected text as print(model) writes it, e.g. `Net(` ... `)`", 0, code="E091"
            )
        root, end = self.module(pos, "", None, 0)
        rest = self.skip_ws(end)
        if rest < len(self.text):
            closed = self.loc(end - 1)
            raise self.error(
                f"text after the end of the printed module ({root.cls} closes at line {closed.line})",
                rest,
                hint="a stray ')' may have closed the module early (a page break in the copied text?): remove it",
                code="E092",
            )
        return root

    def module(self, pos: int, name: str, name_loc: Location | None, depth: int) -> tuple[PNode, int]:
        text = self.text
        if depth > MAX_DEPTH:
            raise self.error("the printed module is nested too deeply", pos, code="E091")
        m = self._IDENT.match(text, pos)
        if not m:
            raise self.error("expected a module such as `Conv2d(...)`", pos, end=self._word_end(pos), code="E091")
        cls = m.group()
        node = PNode(name, cls, self.loc(pos, m.end()), name_loc)
        p = m.end()
        if p >= len(text) or text[p] != "(":
            raise self.error(f"expected '(' after {cls}", p, code="E091")
        open_pos = p
        q = self.skip_blank(p + 1)
        if q < len(text) and text[q] != "\n":
            return self.leaf(node, open_pos)
        # a container: `(name): Module(...)` lines up to the closing `)`
        p = q
        while True:
            p = self.skip_ws(p)
            if p >= len(text):
                raise self.error(
                    f"the text ends inside {cls}( opened at line {node.loc.line}: a ')' is missing",
                    len(text.rstrip()),
                    hint="the printed text looks cut short",
                    code="E093",
                )
            c = text[p]
            if c == ")":
                return node, p + 1
            if c != "(":
                raise self.error(
                    f"expected `(name): Module(...)` or the ')' that closes {cls}(",
                    p,
                    end=self._word_end(p),
                    code="E091",
                )
            eol = text.find("\n", p)
            eol = len(text) if eol < 0 else eol
            close = text.find(")", p, eol)
            if close < 0:
                raise self.error("expected `(name): Module(...)`: the child name is not closed", p, code="E091")
            child_name = text[p + 1 : close]
            child_loc = self.loc(p + 1, close)
            r = close + 1
            if r >= len(text) or text[r] != ":":
                raise self.error(f"expected ':' after ({child_name})", r, code="E091")
            r = self.skip_blank(r + 1)
            count = 1
            mc = self._COUNT.match(text, r)
            if mc:
                count = int(mc.group(1))
                r = mc.end()
            child, p = self.module(r, child_name, child_loc, depth + 1)
            child.count = count
            node.children.append(child)

    def _word_end(self, pos: int) -> int:
        m = re.compile(r"\S+").match(self.text, pos)
        return m.end() if m else pos + 1

    def leaf(self, node: PNode, open_pos: int) -> tuple[PNode, int]:
        """`Class(args)` on one line: find the matching ')' (quotes and brackets respected) and read the args."""
        text = self.text
        i = open_pos + 1
        depth = 0
        quote = None
        while i < len(text) and text[i] != "\n":
            ch = text[i]
            if quote:
                if ch == "\\":
                    i += 1
                elif ch == quote:
                    quote = None
            elif ch in "'\"":
                quote = ch
            elif ch in "([{":
                depth += 1
            elif ch in ")]}":
                if depth == 0:
                    if ch != ")":
                        raise self.error(f"unmatched {ch!r} in the arguments of {node.cls}", i, code="E094")
                    node.args = self.arguments(node, text[open_pos + 1 : i], open_pos + 1)
                    return node, i + 1
                depth -= 1
            i += 1
        raise self.error(
            f"the arguments of {node.cls}( are not closed on their line",
            open_pos,
            hint="the printed text looks cut short, or a line was broken in two",
            code="E093",
        )

    def _pos(self, src: str, base: int, col: int) -> int:
        # ast's columns count UTF-8 bytes; the whole call is on line 1 of `src`
        return base + len(src.encode()[:col].decode(errors="ignore")) - 2

    def arguments(self, node: PNode, args_text: str, base: int) -> list[PArg]:
        src = f"f({args_text})"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # SyntaxWarning for `1x`: the SyntaxError that may follow is ours
                tree = ast.parse(src, mode="eval")
        except SyntaxError as e:
            col = max(0, min((e.offset or 1) - 3, len(args_text)))
            raise self.error(f"cannot read the arguments of {node.cls}: {e.msg}", base + col, code="E094") from None
        except (RecursionError, MemoryError, ValueError):
            raise self.error(f"cannot read the arguments of {node.cls}", base, code="E094") from None
        call = tree.body
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "f"):
            raise self.error(f"cannot read the arguments of {node.cls}", base, code="E094")
        out: list[PArg] = []
        for a in call.args:
            if isinstance(a, ast.Starred):
                raise self.error(
                    f"cannot read the arguments of {node.cls}", self._pos(src, base, a.col_offset), code="E094"
                )
            out.append(PArg(None, self.literal(node, a, src, base), self._arg_loc(src, base, a)))
        for kw in call.keywords:
            if kw.arg is None:
                raise self.error(
                    f"cannot read the arguments of {node.cls}", self._pos(src, base, kw.col_offset), code="E094"
                )
            out.append(PArg(kw.arg, self.literal(node, kw.value, src, base), self._arg_loc(src, base, kw)))
        return out

    def _arg_loc(self, src: str, base: int, a) -> Location:
        start = self._pos(src, base, a.col_offset)
        end = self._pos(src, base, a.end_col_offset) if a.end_col_offset is not None else None
        return self.loc(start, end)

    def literal(self, node: PNode, a: ast.expr, src: str, base: int) -> Any:
        try:
            return ast.literal_eval(a)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            pass
        if isinstance(a, ast.Name):
            # torch prints some strings without quotes: `padding=same`, `padding_mode=reflect`
            return a.id
        start = self._pos(src, base, a.col_offset)
        raise self.error(
            f"an argument of {node.cls} is not a plain value",
            start,
            end=self._pos(src, base, a.end_col_offset or a.col_offset + 1),
            hint="printed arguments are numbers, strings, booleans, None and tuples",
            code="E094",
        )


def read_printed(text: str, filename: str | None = None) -> PNode:
    """Parse printed-module text into a tree of `PNode`s (raises SpecError with file, line and column)."""
    text = _normalize(text, filename)
    return _Reader(text, filename).read()


def layer_call(printed: str) -> str:
    """One printed layer as a spec writes it: sizes from the input and PyTorch's defaults dropped.

    >>> layer_call("Conv2d(3, 64, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))")
    'Conv2d(64, kernel_size=3, padding=1)'
    """
    reader = _Reader(_normalize(printed.strip(), None), None)
    node, end = reader.module(0, "layer", None, 0)
    if reader.skip_ws(end) < len(reader.text) or not node.is_leaf:
        raise reader.error("expected one printed layer, such as `ReLU(inplace=True)`", end, code="E091")
    node.path = "layer"
    _Converter(reader).node(node)
    return _call(node.cls, tuple(node.spec_args))


def _normalize(text: str | bytes, filename: str | None) -> str:
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise SpecError("the text is not valid UTF-8", Location(1, 1), code="E091", filename=filename) from None
    text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n").expandtabs(1)
    if len(text) > MAX_TEXT_CHARS:
        raise SpecError(
            f"the text is {len(text):,} characters long; the limit is {MAX_TEXT_CHARS:,}",
            Location(1, 1),
            code="E091",
            filename=filename,
        )
    if "\x00" in text:
        raise SpecError("the text holds a NUL byte: it looks binary", Location(1, 1), code="E091", filename=filename)
    return text


# ---------------------------------------------------------------------------------------------------------------
# 2. Printed layers -> netspec's layers
# ---------------------------------------------------------------------------------------------------------------


def _same(a: Any, b: Any) -> bool:
    """Equal and of the same type (True is not 1, 2 is not 2.0: each prints differently), item by item in tuples."""
    if type(a) is not type(b):
        return False
    if isinstance(a, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


class _Converter:
    def __init__(self, reader: _Reader):
        self.r = reader

    def err(self, message: str, loc: Location | None, hint: str | None = None, code: str = "E095") -> SpecError:
        return SpecError(message, loc, hint=hint, code=code, filename=self.r.filename, source=self.r.text)

    def root(self, root: PNode) -> None:
        if root.is_leaf:
            if root.cls in ("Sequential",) and not root.args:
                raise self.err("the printed module has no children", root.loc, code="E095")
            raise self.err(
                f"{root.cls}(...) is a single layer: a network prints its children as `(name): Layer(...)` lines",
                root.loc,
                hint=f"wrap it: nn.Sequential({root.cls}(...)) prints as one",
                code="E095",
            )
        if not root.children:
            raise self.err("the printed module has no children", root.loc, code="E095")
        positional = root.cls == "Sequential"
        self.children(root, root.children, positional)

    def children(self, parent: PNode, kids: list[PNode], positional: bool) -> None:
        seen: set[str] = set()
        for i, child in enumerate(kids):
            child.path = f"{parent.path}.{child.name}" if parent.path else child.name
            if child.name in seen:
                raise self.err(f"the name {child.name!r} is printed twice in {parent.cls}", child.name_loc, code="E095")
            seen.add(child.name)
            if positional and child.name == str(i):
                child.anonymous = True
            elif positional and child.name.isdigit():
                raise self.err(
                    f"child {child.path!r} is numbered out of place ({child.name} at position {i})",
                    child.name_loc,
                    hint="a spec numbers the unnamed layers of a Sequential 0, 1, 2, ...",
                    code="E096",
                )
            else:
                self.check_name(child)
            self.node(child)

    def check_name(self, child: PNode) -> None:
        if not _NAME_RE.fullmatch(child.name) or child.name in _RESERVED:
            why = "is a word of the spec language" if child.name in _RESERVED else "is not a name a spec can write"
            raise self.err(
                f"the child name {child.name!r} {why}",
                child.name_loc,
                hint="names are letters, digits and '_', not starting with a digit; rename the child",
                code="E096",
            )

    def node(self, node: PNode) -> None:
        if node.count != 1:
            raise self.err(
                f"{node.path!r} is printed as {node.count} x {node.cls}: a ModuleList; netspec imports "
                f"nn.Sequential stacks only",
                node.name_loc,
                code="E097",
            )
        if node.cls == "Sequential":
            if node.is_leaf:
                if node.args:
                    raise self.err("Sequential takes no arguments", node.loc, code="E095")
                node.args = None  # `Sequential()`: an empty one
                return
            self.children(node, node.children, True)
            return
        if node.cls == "Residual":  # netspec's own composite, as compiled specs print it
            if node.is_leaf:
                raise self.err("a Residual needs a body", node.loc, code="E095")
            body = node.body
            self.children(node, body, True)
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
            return
        if node.cls not in L.LAYERS:
            from ..lang import did_you_mean

            if not node.is_leaf:
                raise self.err(
                    f"cannot import {node.path!r}: {node.cls} is not a Sequential, and a printed module "
                    f"does not show the order its forward() runs its children in",
                    node.loc,
                    hint="netspec's composites are Sequential and Residual: write this part by hand as "
                    "a block, or pass the module's layers as an nn.Sequential",
                    code="E097",
                )
            hint = did_you_mean(node.cls, L.LAYERS) or f"netspec's layers: {', '.join(L.LAYERS)}"
            raise self.err(f"netspec has no layer {node.cls!r} (child {node.path!r})", node.loc, hint=hint, code="E098")
        if not node.is_leaf:
            raise self.err(
                f"{node.path!r} is printed as a {node.cls} with children: not torch's {node.cls}", node.loc, code="E097"
            )
        self.layer(node)

    def layer(self, node: PNode) -> None:
        cls = L.LAYERS[node.cls]
        order = _PRINTED_POSITIONAL.get(node.cls, cls.INFERRED + cls.POSITIONAL)
        fields = cls.model_fields
        values: dict[str, Any] = {}
        locs: dict[str, Location] = {}
        npos = 0
        for a in node.args or ():
            if a.key is None:
                if npos >= len(order):
                    raise self.err(f"{node.cls} takes at most {len(order)} positional arguments", a.loc, code="E099")
                key = order[npos]
                npos += 1
            else:
                key = a.key
            if key in values:
                raise self.err(f"{node.cls} is printed with {key!r} twice", a.loc, code="E099")
            values[key], locs[key] = a.value, a.loc
        kept: dict[str, Any] = {}
        for key, value in values.items():
            if key in cls.INFERRED:
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise self.err(
                        f"{key} of {node.cls} must be a positive integer, got {value!r}", locs[key], code="E099"
                    )
                node.printed[key] = value
                continue
            only = _PRINTED_ONLY.get(node.cls, {})
            if key in only:
                if not _same(value, only[key]):
                    raise self.err(
                        f"netspec's {node.cls} cannot be built with {key}={value!r}",
                        locs[key],
                        hint=f"netspec's {node.cls} always has {key}={only[key]!r}",
                        code="E099",
                    )
                continue
            if key not in fields:
                raise self.err(
                    f"netspec's {node.cls} has no argument {key!r} (child {node.path!r})",
                    locs[key],
                    hint=cls.signature(),
                    code="E099",
                )
            if (
                key in _PAIRS.get(node.cls, ())
                and isinstance(value, tuple)
                and len(value) == 2
                and value[0] == value[1]
                and type(value[0]) is int
            ):
                value = value[0]
            kept[key] = value
        for key in list(kept):
            default = fields[key].default if not fields[key].is_required() else ...
            if default is not ... and _same(kept[key], default):
                del kept[key]
        # pools default their stride to the kernel size: MaxPool2d(kernel_size=2, stride=2) is MaxPool2d(2)
        if (
            node.cls in ("MaxPool2d", "AvgPool2d")
            and "stride" in kept
            and "kernel_size" in kept
            and _same(kept["stride"], kept["kernel_size"])
        ):
            del kept["stride"]
        try:
            cls.model_validate(kept)
        except ValidationError as e:
            err = e.errors(include_url=False)[0]
            key = str(err["loc"][0]) if err["loc"] else None
            msg = err["msg"][0].lower() + err["msg"][1:]
            if err["type"] == "missing":
                raise self.err(
                    f"{node.cls} is printed without {key!r}", node.loc, hint=cls.signature(), code="E099"
                ) from None
            raise self.err(
                f"argument {key!r} of {node.cls}: {msg}, got {kept.get(key)!r}", locs.get(key, node.loc), code="E099"
            ) from None
        for key, value in kept.items():
            try:
                _value(value)
            except ValueError as e:
                raise self.err(f"argument {key!r} of {node.cls}: {e}", locs[key], code="E099") from None
        # the first required argument positional, the rest by keyword: Conv2d(64, kernel_size=3, padding=1)
        first = cls.POSITIONAL[0] if cls.POSITIONAL else None
        args: list[tuple[str | None, Any]] = []
        for key in cls.POSITIONAL + tuple(k for k in fields if k not in cls.POSITIONAL):
            if key in kept:
                positional = key == first and fields[key].is_required()
                args.append((None if positional else key, kept[key]))
        node.spec_args = args


# ---------------------------------------------------------------------------------------------------------------
# Spec items (the form that gets folded and rendered)
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Var:
    """A repeat variable in a name: {i}, {i+1}."""

    name: str
    offset: int = 0


@dataclass(frozen=True)
class Ref:
    """A name used as a value (a block parameter, a constant); in a name template it renders as {name}."""

    name: str


@dataclass(frozen=True)
class ILayer:
    name: tuple | None  # parts: str | int | Var | Ref; None for an unnamed layer
    cls: str
    args: tuple  # ((key or None, value), ...)


@dataclass(frozen=True)
class IComp:
    name: tuple | None
    kind: str  # Sequential | Residual
    items: tuple
    shortcut: tuple | None = None


@dataclass(frozen=True)
class IRep:
    var: str
    lo: int
    hi: int
    items: tuple


@dataclass(frozen=True)
class IUse:
    block: str
    args: tuple  # values


@dataclass(frozen=True)
class IStep:
    residual: bool
    name: tuple


@dataclass(frozen=True)
class BlockDef:
    name: str
    params: tuple
    items: tuple


def _split_name(name: str) -> tuple:
    """'conv2_0' -> ('conv', 2, '_', 0): digit runs become ints (without a leading zero), which may vary."""
    parts: list = []
    for piece in re.split(r"(\d+)", name):
        if not piece:
            continue
        if piece.isdigit() and (piece == "0" or not piece.startswith("0")):
            parts.append(int(piece))
        elif parts and isinstance(parts[-1], str):
            parts[-1] += piece
        else:
            parts.append(piece)
    return tuple(parts)


def _name(parts: tuple | None) -> str:
    out = []
    for p in parts or ():
        if isinstance(p, Var):
            out.append(
                "{" + p.name + (f"+{p.offset}" if p.offset > 0 else f"-{-p.offset}" if p.offset < 0 else "") + "}"
            )
        elif isinstance(p, Ref):
            out.append("{" + p.name + "}")
        else:
            out.append(str(p))
    return "".join(out)


def _value(v: Any) -> str:
    """A value as the spec language writes it."""
    if isinstance(v, Ref):
        return v.name
    if v is True:
        return "true"
    if v is False:
        return "false"
    if v is None:
        return "None"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if v != v or v in (float("inf"), float("-inf")):
            raise ValueError(f"{v!r} cannot be written in a spec")
        text = repr(v)
        return text
    if isinstance(v, str):
        if "\n" in v or ('"' in v and "'" in v):
            raise ValueError(f"the string {v!r} cannot be written in a spec")
        return f"'{v}'" if '"' in v else f'"{v}"'
    if isinstance(v, (tuple, list)):
        inner = ", ".join(_value(x) for x in v)
        return f"({inner},)" if len(v) == 1 else f"({inner})"
    raise ValueError(f"{v!r} cannot be written in a spec")


def _call(cls: str, args: tuple) -> str:
    return f"{cls}(" + ", ".join(_value(v) if k is None else f"{k}={_value(v)}" for k, v in args) + ")"


# ---- rendering ---------------------------------------------------------------------------------------------------


def _inline(it) -> str | None:
    """The item on one line, or None where it takes several."""
    if isinstance(it, ILayer):
        body = _call(it.cls, it.args)
        return body if it.name is None else f"{_name(it.name)} {body}"
    if isinstance(it, IUse):
        return f"{it.block}(" + ", ".join(_value(v) for v in it.args) + ")"
    if isinstance(it, IComp):
        if it.shortcut is not None or len(it.items) > 2:
            return None
        parts = [_inline(c) for c in it.items]
        if any(p is None for p in parts) or any(isinstance(c, (IComp, IRep)) for c in it.items):
            return None
        body = f"{it.kind} {{ " + "  ".join(parts) + " }" if parts else f"{it.kind} {{ }}"
        return body if it.name is None else f"{_name(it.name)} {body}"
    if isinstance(it, IRep):
        if len(it.items) != 1 or isinstance(it.items[0], (IComp, IRep)):
            return None
        inner = _inline(it.items[0])
        return None if inner is None else f"repeat {it.var} in {it.lo}..{it.hi} {{ {inner} }}"
    raise AssertionError(it)


def _render_items(items, indent: int) -> list[str]:
    pad = " " * indent
    inline = [_inline(it) for it in items]
    # names in a column, over the items written on one line
    width = max(
        (
            len(_name(it.name))
            for it, one in zip(items, inline)
            if one is not None
            and isinstance(it, (ILayer, IComp))
            and it.name is not None
            and indent + len(one) <= LINE_WIDTH
        ),
        default=0,
    )
    lines: list[str] = []
    for it, one in zip(items, inline):
        if one is not None and isinstance(it, (ILayer, IComp)) and it.name is not None:
            name = _name(it.name)
            one = name + " " * (width - len(name) + 2) + one[len(name) + 1 :]
        if one is not None and indent + len(one) <= LINE_WIDTH:
            lines.append(pad + one)
            continue
        if isinstance(it, ILayer) or isinstance(it, IUse):
            lines.append(pad + (_inline(it) or ""))
        elif isinstance(it, IComp):
            head = (_name(it.name) + " " if it.name is not None else "") + it.kind + " {"
            lines.append(pad + head)
            lines += _render_items(it.items, indent + 4)
            if it.shortcut is not None:
                lines.append(pad + "} shortcut {")
                lines += _render_items(it.shortcut, indent + 4)
            lines.append(pad + "}")
        else:
            lines.append(pad + f"repeat {it.var} in {it.lo}..{it.hi} {{")
            lines += _render_items(it.items, indent + 4)
            lines.append(pad + "}")
    return lines


def _render_block(b: BlockDef) -> list[str]:
    return [f"block {b.name}({', '.join(b.params)}) {{"] + _render_items(b.items, 4) + ["}"]


def _step_text(st) -> str | None:
    if isinstance(st, IStep):
        return ("residual " if st.residual else "") + _name(st.name)
    inner = [_step_text(s) for s in st.items]
    if any(s is None for s in inner):
        return None
    text = f"repeat {st.var} in {st.lo}..{st.hi} {{ " + " ".join(inner) + " }"
    return text if len(text) <= 60 else None


def _render_steps(steps, indent: int) -> list[str]:
    pad = " " * indent
    lines: list[str] = []
    cur = ""
    for st in steps:
        text = _step_text(st)
        if text is None:
            if cur:
                lines.append(pad + cur)
                cur = ""
            lines.append(pad + f"repeat {st.var} in {st.lo}..{st.hi} {{")
            lines += _render_steps(st.items, indent + 4)
            lines.append(pad + "}")
            continue
        if cur and indent + len(cur) + 1 + len(text) > LINE_WIDTH:
            lines.append(pad + cur)
            cur = ""
        cur = f"{cur} {text}" if cur else text
    if cur:
        lines.append(pad + cur)
    return lines


def _cost(lines: list[str]) -> tuple[int, int]:
    return len(lines), sum(len(ln.strip()) for ln in lines)


# ---------------------------------------------------------------------------------------------------------------
# 4. Folding: repeats and blocks, wherever they make the spec shorter
# ---------------------------------------------------------------------------------------------------------------

_VAR_NAMES = ("i", "j", "k", "n", "m", "t", "u", "v", "w")
_PARAM_NAMES = {
    "out_channels": "out",
    "out_features": "out",
    "kernel_size": "k",
    "padding": "pad",
    "num_groups": "groups",
    "output_size": "size",
    "negative_slope": "slope",
}


def _vkey(v: Any) -> tuple:
    if isinstance(v, Ref):
        return ("ref", v.name)
    return ("v", type(v).__name__, repr(v))


def _name_tokens(parts: tuple | None, out: list) -> None:
    if parts is None:
        out.append(("anon",))
        return
    out.append(("name", len(parts)))
    for p in parts:
        out.append(p if type(p) is int else ("p", p if isinstance(p, str) else repr(p)))


def _tokens(it, out: list) -> None:
    """A flat token list where only the integers inside names are bare ints (the parts a repeat may count)."""
    if isinstance(it, ILayer):
        out.append(("L", it.cls, tuple((k, _vkey(v)) for k, v in it.args)))
        _name_tokens(it.name, out)
    elif isinstance(it, IComp):
        out.append(("C", it.kind, len(it.items), None if it.shortcut is None else len(it.shortcut)))
        _name_tokens(it.name, out)
        for c in it.items + (it.shortcut or ()):
            _tokens(c, out)
    elif isinstance(it, IRep):
        out.append(("R", it.var, it.lo, it.hi, len(it.items)))
        for c in it.items:
            _tokens(c, out)
    elif isinstance(it, IUse):
        out.append(("U", it.block, tuple(_vkey(v) for v in it.args)))
    elif isinstance(it, IStep):
        out.append(("S", it.residual))
        _name_tokens(it.name, out)
    else:  # pragma: no cover
        raise AssertionError(it)


def _map_name(parts: tuple | None, f) -> tuple | None:
    if parts is None:
        return None
    return tuple(f(p) if type(p) is int else p for p in parts)


def _map_ints(it, f):
    """The item with every integer name part replaced by f(part), in token order."""
    if isinstance(it, ILayer):
        return ILayer(_map_name(it.name, f), it.cls, it.args)
    if isinstance(it, IComp):
        name = _map_name(it.name, f)
        items = tuple(_map_ints(c, f) for c in it.items)
        sc = None if it.shortcut is None else tuple(_map_ints(c, f) for c in it.shortcut)
        return IComp(name, it.kind, items, sc)
    if isinstance(it, IRep):
        return IRep(it.var, it.lo, it.hi, tuple(_map_ints(c, f) for c in it.items))
    if isinstance(it, IStep):
        return IStep(it.residual, _map_name(it.name, f))
    return it


def _used_names(it, out: set) -> None:
    """Variable and parameter names an item refers to (so a new variable does not shadow them)."""

    def name(parts):
        for p in parts or ():
            if isinstance(p, (Var, Ref)):
                out.add(p.name)

    if isinstance(it, (ILayer, IComp, IStep)):
        name(it.name)
    if isinstance(it, ILayer):
        for _, v in it.args:
            if isinstance(v, Ref):
                out.add(v.name)
    if isinstance(it, IUse):
        for v in it.args:
            if isinstance(v, Ref):
                out.add(v.name)
    if isinstance(it, IRep):
        out.add(it.var)
    for c in getattr(it, "items", ()) + (getattr(it, "shortcut", None) or ()):
        _used_names(c, out)


class _Folder:
    """Greedy folding: at each level, apply the repeat or block that saves the most lines, until none does.

    Candidates are compared by their cost in lines (then characters) as rendered; forward steps count characters.
    """

    def __init__(self, reserved: set[str], steps: bool = False):
        self.blocks: dict[str, BlockDef] = {}
        self.reserved = set(reserved)
        self.steps = steps  # folding forward steps: shorter in characters
        self._bodies: dict[tuple, tuple] = {}  # block bodies folded, by (body, params)

    # -- cost ---------------------------------------------------------------------------------------------------

    def cost(self, items, indent: int) -> tuple[int, int]:
        if self.steps:
            n = _cost(_render_steps(items, indent))[1]
            return n, n
        return _cost(_render_items(items, indent))

    @staticmethod
    def _sum(costs) -> tuple[int, int]:
        return sum(c[0] for c in costs), sum(c[1] for c in costs)

    # -- repeat ---------------------------------------------------------------------------------------------------

    def repeat_candidates(
        self, items: list, costs: list, shape: list[int], ints: list[list[int]], indent: int, reserved
    ):
        """Runs of m >= 2 groups of p items, alike but for integers in names that count up by one together."""
        n = len(items)
        for p in range(1, n // 2 + 1):
            covered: set[int] = set()
            for a in range(0, n - 2 * p + 1):
                if a in covered or shape[a : a + p] != shape[a + p : a + 2 * p]:
                    continue
                base = [v for j in range(a, a + p) for v in ints[j]]
                nxt = [v for j in range(a + p, a + 2 * p) for v in ints[j]]
                steps = [y - x for x, y in zip(base, nxt)]
                if any(d not in (0, 1) for d in steps):
                    continue
                m = 2
                while (
                    a + (m + 1) * p <= n
                    and shape[a + m * p : a + (m + 1) * p] == shape[a : a + p]
                    and [v for j in range(a + m * p, a + (m + 1) * p) for v in ints[j]]
                    == [x + d * m for x, d in zip(base, steps)]
                ):
                    m += 1
                covered.update(a + k * p for k in range(1, m))
                yield self.make_repeat(items, costs, a, p, m, steps, indent, reserved)

    def make_repeat(self, items, costs, a, p, m, steps, indent, reserved):
        group = items[a : a + p]
        used: set[str] = set()
        for it in group:
            _used_names(it, used)
        var = next(
            v
            for v in _VAR_NAMES + tuple(f"i{k}" for k in range(2, 100))
            if v not in used and v not in reserved and v not in self.reserved
        )
        ints: list[int] = []
        for it in group:
            out: list = []
            _tokens(it, out)
            ints += [t for t in out if type(t) is int]
        moving = [v for v, s in zip(ints, steps) if s == 1]
        lo = moving[0] if moving else 1
        counter = iter(range(len(ints)))

        def f(part: int):
            k = next(counter)
            return Var(var, part - lo) if steps[k] == 1 else part

        rep = IRep(var, lo, lo + m - 1, tuple(_map_ints(it, f) for it in group))
        before = self._sum(costs[a : a + m * p])
        if self.steps:
            after = self.cost([rep], indent)
        else:
            one = _inline(rep)
            if one is not None and indent + len(one) <= LINE_WIDTH:
                after = (1, len(one))
            else:
                body = self._sum(costs[a : a + p])
                after = (body[0] + 2, body[1] + len(f"repeat {var} in {lo}..{lo + m - 1} {{") + 1)
        saving = (before[0] - after[0], before[1] - after[1])
        if self.steps and after[1] * 3 > before[1] * 2:
            saving = (0, 0)  # forward steps: a repeat must save a third of the characters to read better
        return saving, a, a + m * p, [rep], None

    # -- block ----------------------------------------------------------------------------------------------------

    @staticmethod
    def _names(it, out: list) -> None:
        if isinstance(it, (ILayer, IComp)) and it.name is not None:
            out.append(it.name)
        for c in getattr(it, "items", ()) + (getattr(it, "shortcut", None) or ()):
            _Folder._names(c, out)

    @staticmethod
    def _common_id(names: list[tuple]) -> tuple | None:
        """The longest run of name parts, starting and ending with an integer, that every name holds."""
        first = names[0]
        subs = []
        for i in range(len(first)):
            for j in range(i, len(first)):
                sub = first[i : j + 1]
                if type(sub[0]) is int and type(sub[-1]) is int:
                    subs.append(sub)
        subs.sort(key=len, reverse=True)
        for sub in subs:
            if all(_find(nm, sub) >= 0 for nm in names[1:]):
                return sub
        return None

    def abstract(self, group: list):
        """(skeleton, values, id) of a candidate block occurrence; None where it cannot be one.

        The id is the run of name parts every name in the group holds (conv2_0, batchnorm2_0 -> 2_0): the block's
        names are built from it. The values are every layer argument, in order, with the key it is given by.
        """
        names: list[tuple] = []
        for it in group:
            self._names(it, names)
        idsub = None
        if names:
            idsub = self._common_id(names)
            if idsub is None:
                return None
        values: list[tuple[str, Any]] = []
        skel: list = []

        def name(parts):
            return _with_id(parts, idsub)

        def walk(it):
            if isinstance(it, ILayer):
                skel.append(("L", it.cls, tuple(k for k, _ in it.args), name(it.name)))
                values.extend(((k or _first_key(it.cls)), v) for k, v in it.args)
            elif isinstance(it, IComp):
                skel.append(
                    ("C", it.kind, len(it.items), None if it.shortcut is None else len(it.shortcut), name(it.name))
                )
                for c in it.items + (it.shortcut or ()):
                    walk(c)
            elif isinstance(it, IRep):
                skel.append(("R", it.var, it.lo, it.hi, len(it.items)))
                for c in it.items:
                    walk(c)
            elif isinstance(it, IUse):
                skel.append(("U", it.block, len(it.args)))
                params = self.blocks[it.block].params if it.block in self.blocks else ()
                values.extend((params[k] if k < len(params) else f"a{k}", v) for k, v in enumerate(it.args))
            else:  # pragma: no cover
                raise AssertionError(it)

        for it in group:
            walk(it)
        return tuple(skel), values, idsub

    def block_candidates(self, items: list, costs: list, coarse: list[int], indent: int):
        """Groups of p items that occur at least twice with the same layers, differing in an id and in values."""
        n = len(items)
        memo: dict[tuple[int, int], Any] = {}

        def ab(s: int, p: int):
            if (s, p) not in memo:
                memo[(s, p)] = self.abstract(items[s : s + p])
            return memo[(s, p)]

        for p in range(1, min(n // 2, 16) + 1):
            taken: set[int] = set()
            for a in range(0, n - 2 * p + 1):
                if a in taken:
                    continue
                key = coarse[a : a + p]
                starts = [a]
                b = a + p
                while b + p <= n:
                    if coarse[b : b + p] == key:
                        starts.append(b)
                        b += p
                    else:
                        b += 1
                if len(starts) < 2:
                    continue
                first = ab(a, p)
                if first is None:
                    continue
                occ = [(a, first)]
                for s in starts[1:]:
                    other = ab(s, p)
                    if other is not None and other[0] == first[0] and (other[2] is None) == (first[2] is None):
                        occ.append((s, other))
                if len(occ) < 2:
                    continue
                taken.update(s for s, _ in occ)
                cand = self.make_block(items, costs, p, occ, indent)
                if cand is not None:
                    yield cand

    def make_block(self, items, costs, p, occ, indent):
        _, vals0, id0 = occ[0][1]
        nslots = len(vals0)
        params: list[str] = []
        slot_param: dict[int, str] = {}
        vec_param: dict[tuple, str] = {}
        reserved = set(self.reserved) | {"id"}
        group = items[occ[0][0] : occ[0][0] + p]
        for it in group:
            _used_names(it, reserved)
        for j in range(nslots):
            vec = tuple(_vkey(o[1][1][j][1]) for o in occ)
            if len(set(vec)) == 1:
                continue
            if any(isinstance(o[1][1][j][1], str) for o in occ):
                return None  # names passed as strings: only the one id a block's names are built from
            if vec in vec_param:
                slot_param[j] = vec_param[vec]
                continue
            base = _PARAM_NAMES.get(vals0[j][0], vals0[j][0])
            pname = base
            k = 2
            while pname in params or pname in reserved or pname in _RESERVED:
                pname = f"{base}{k}"
                k += 1
            params.append(pname)
            vec_param[vec] = pname
            slot_param[j] = pname
        all_params = (["id"] if id0 is not None else []) + params
        if not all_params:
            return None  # identical groups: a repeat's job
        # the template: the first occurrence with the id and the varying values replaced by parameters
        counter = iter(range(nslots))

        def value(v):
            j = next(counter)
            return Ref(slot_param[j]) if j in slot_param else v

        def name(parts):
            return _with_id(parts, id0)

        def walk(it):
            if isinstance(it, ILayer):
                return ILayer(name(it.name), it.cls, tuple((k, value(v)) for k, v in it.args))
            if isinstance(it, IComp):
                nm = name(it.name)
                its = tuple(walk(c) for c in it.items)
                sc = None if it.shortcut is None else tuple(walk(c) for c in it.shortcut)
                return IComp(nm, it.kind, its, sc)
            if isinstance(it, IRep):
                return IRep(it.var, it.lo, it.hi, tuple(walk(c) for c in it.items))
            if isinstance(it, IUse):
                return IUse(it.block, tuple(value(v) for v in it.args))
            raise AssertionError(it)  # pragma: no cover

        body = tuple(walk(it) for it in group)
        bname = self.block_name(group)
        ids = ["".join(str(x) for x in o[1][2]) for o in occ] if id0 is not None else []
        as_int = all(s.isdigit() and (s == "0" or not s.startswith("0")) for s in ids)
        uses = []
        for k, o in enumerate(occ):
            args: list = [int(ids[k]) if as_int else ids[k]] if id0 is not None else []
            first_for: dict[str, Any] = {}
            for j in range(nslots):
                if j in slot_param and slot_param[j] not in first_for:
                    first_for[slot_param[j]] = o[1][1][j][1]
            args += [first_for[pn] for pn in params]
            uses.append(IUse(bname, tuple(args)))
        before = self._sum(c for s, _ in occ for c in costs[s : s + p])
        use_chars = sum(len(_inline(u) or "") for u in uses)
        # the body as it will be written: its own repeats folded
        key = (body, tuple(all_params))
        if key not in self._bodies:
            self._bodies[key] = self.fold(list(body), 4, frozenset(all_params), blocks=False)
        block = BlockDef(bname, tuple(all_params), self._bodies[key])
        d = _cost(_render_block(block))
        after = (len(uses) + d[0] + 1, use_chars + d[1])
        saving = (before[0] - after[0], before[1] - after[1])
        return saving, [(s, s + p, u) for (s, _), u in zip(occ, uses)], block

    def block_name(self, group) -> str:
        """Initials of the group's names (conv, batchnorm, relu -> cbr), or of its layers where unnamed."""
        letters = []
        for it in group:
            if isinstance(it, (ILayer, IComp)) and it.name is not None:
                word = next((x for x in it.name if isinstance(x, str) and x[:1].isalpha()), None)
                word = word or (it.cls if isinstance(it, ILayer) else it.kind)
            elif isinstance(it, ILayer):
                word = it.cls
            elif isinstance(it, IComp):
                word = it.kind
            elif isinstance(it, IUse):
                word = it.block
            else:
                word = "r"
            ch = word[0].lower()
            if not letters or letters[-1] != ch:
                letters.append(ch)
        base = "".join(letters)[:6]
        if len(base) < 2:
            base = base + "block"
        name = base
        k = 2
        while name in self.blocks or name in self.reserved or name in _RESERVED:
            name = f"{base}{k}"
            k += 1
        return name

    # -- driver ---------------------------------------------------------------------------------------------------

    def fold(self, items: list, indent: int, reserved: frozenset = frozenset(), blocks: bool = True) -> tuple:
        items = list(items)
        while True:
            costs = [self.cost([it], indent) for it in items]
            kinds: dict[tuple, int] = {}
            shape: list[int] = []
            coarse: list[int] = []
            ints: list[list[int]] = []
            for it in items:
                out: list = []
                _tokens(it, out)
                ints.append([t for t in out if type(t) is int])
                shape.append(kinds.setdefault(tuple(t if type(t) is not int else None for t in out), len(kinds)))
                # names and values left out: block occurrences differ in them
                rough = tuple(
                    x[:2] if x[0] in ("L", "U") else x
                    for x in out
                    if isinstance(x, tuple) and x[0] not in ("name", "p", "anon")
                )
                coarse.append(kinds.setdefault(("coarse",) + rough, len(kinds)))
            best = None
            cands = list(self.repeat_candidates(items, costs, shape, ints, indent, reserved))
            if blocks and not self.steps:
                cands += list(self.block_candidates(items, costs, coarse, indent))
            for c in cands:
                if c[0][0] > 0 and (best is None or c[0] > best[0]):
                    best = c
            if best is None:
                break
            if best[-1] is None:  # a repeat
                _, a, b, new, _ = best
                items[a:b] = new
            else:
                _, spans, block = best
                self.blocks[block.name] = block
                for s, e, use in reversed(spans):
                    items[s:e] = [use]
        out_items = []
        for it in items:
            if isinstance(it, IComp):
                its = self.fold(list(it.items), indent + 4, reserved, blocks)
                sc = None if it.shortcut is None else self.fold(list(it.shortcut), indent + 4, reserved, blocks)
                it = IComp(it.name, it.kind, its, sc)
            elif isinstance(it, IRep):
                it = IRep(it.var, it.lo, it.hi, self.fold(list(it.items), indent + 4, reserved | {it.var}, False))
            out_items.append(it)
        return tuple(out_items)


def _with_id(parts: tuple | None, sub: tuple | None) -> tuple | None:
    """A name's parts with its block id `sub` replaced by the block's `id` parameter."""
    if parts is None or sub is None:
        return parts
    k = _find(parts, sub)
    return parts[:k] + (Ref("id"),) + parts[k + len(sub) :]


def _find(parts: tuple, sub: tuple) -> int:
    n = len(sub)
    for i in range(len(parts) - n + 1):
        if all(type(a) is type(b) and a == b for a, b in zip(parts[i : i + n], sub)):
            return i
    return -1


def _first_key(cls: str) -> str:
    spec = L.LAYERS.get(cls)
    return spec.POSITIONAL[0] if spec is not None and spec.POSITIONAL else "arg"


# ---------------------------------------------------------------------------------------------------------------
# 3. Solving for the input size
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class _Flat:
    """The unfolded spec of the printed tree (one module a line), elaborated, with the way back to the text."""

    text: str
    net: Any
    line_map: dict[int, PNode]
    runorder: list[tuple[PNode, Any]]  # (printed leaf, spec Node) in run order


def _flat_items(nodes: list[PNode], classes: PNode | None) -> list:
    out = []
    for pn in nodes:
        name = None if pn.anonymous else _split_name(pn.name)
        if pn.is_leaf:
            args = tuple((k, Ref("classes") if pn is classes and (k is None) else v) for k, v in pn.spec_args)
            out.append(ILayer(name, pn.cls, args))
        else:
            kind = "Residual" if pn.cls == "Residual" else "Sequential"
            sc = None if pn.shortcut is None else tuple(_flat_items(pn.shortcut, classes))
            out.append(IComp(name, kind, tuple(_flat_items(pn.body, classes)), sc))
    return out


def _flat(top: list[PNode], steps: list[tuple[str, str, PNode | None]] | None, name: str) -> _Flat:
    from ..lang import load_spec

    lines = [f"network {name}", "input 1x1x1", "layers {"]
    line_map: dict[int, PNode] = {}

    def emit(pn: PNode, indent: int) -> None:
        pad = " " * indent
        nm = "" if pn.anonymous else pn.name + " "
        if pn.is_leaf:
            lines.append(pad + nm + _call(pn.cls, tuple(pn.spec_args)))
            line_map[len(lines)] = pn
            return
        kind = "Residual" if pn.cls == "Residual" else "Sequential"
        lines.append(pad + nm + kind + " {")
        line_map[len(lines)] = pn
        for c in pn.body:
            emit(c, indent + 4)
        if pn.shortcut is not None:
            lines.append(pad + "} shortcut {")
            for c in pn.shortcut:
                emit(c, indent + 4)
        lines.append(pad + "}")

    for pn in top:
        emit(pn, 4)
    lines.append("}")
    if steps is not None:
        lines.append("forward {")
        for op, step_name, pn in steps:
            lines.append(("    residual " if op == "residual" else "    ") + step_name)
            if pn is not None:
                line_map[len(lines)] = pn
        lines.append("}")
    text = "\n".join(lines) + "\n"
    try:
        net = load_spec(text, "<import>")
    except SpecError as e:
        # a printed value the language refuses: say so where it is printed
        pn = line_map.get(e.loc.line) if e.loc is not None else None
        if pn is None or pn.loc.line < 1:
            raise
        raise SpecError(
            f"{pn.what()} cannot be written in a spec: {e.message}", pn.loc, hint=e.hint, code=e.code
        ) from None
    by_name = {pn.name: pn for pn in top}
    nodes = {n.name: n for n in net.layers}
    runorder: list[tuple[PNode, Any]] = []

    def leaves(pn: PNode, node) -> None:
        if pn.is_leaf:
            runorder.append((pn, node))
            return
        for pc, nc in zip(pn.body, node.children):
            leaves(pc, nc)
        for pc, nc in zip(pn.shortcut or (), node.shortcut or ()):
            leaves(pc, nc)

    for st in net.forward:
        if st.op != "function":
            leaves(by_name[st.name], nodes[st.name])
    return _Flat(text, net, line_map, runorder)


@dataclass
class _Fit:
    index: int  # how many leaves (in run order) fit; len(runorder) when all do
    pnode: PNode | None = None
    why: str = ""  # what goes wrong, said of pnode: "is printed with in_features=4096, but gets 1024 ..."
    spatial: tuple | None = None  # for a printed size that does not fit: the last C x H x W shape before it
    shape_error: bool = False  # the shapes cannot run at all (not a printed size that differs)


def _fit(flat: _Flat, size: tuple[int, int, int]) -> _Fit:
    """How far into the run order the printed sizes fit at this input size."""
    from ..shapes import fmt_shape, infer_partial

    table, err = infer_partial(flat.net, size)
    inferred = table.inferred
    for idx, (pn, node) in enumerate(flat.runorder):
        got = inferred.get(node)
        if got is None:
            break
        for key, want in pn.printed.items():
            if got.get(key) != want:
                spatial = None
                for r in table.rows:
                    if r.loc is node.loc:
                        break
                    spatial = next((sh for sh in (r.out_shape, r.in_shape) if len(sh) == 3), spatial)
                return _Fit(
                    idx,
                    pn,
                    f"is printed with {key}={want}, but gets {key}={got.get(key)} at input {fmt_shape(size)}",
                    spatial,
                )
    else:
        if err is None:
            return _Fit(len(flat.runorder))
    idx = next((i for i, (_, node) in enumerate(flat.runorder) if node not in inferred), len(flat.runorder))
    assert err is not None
    pn = flat.line_map.get(err.loc.line) if err.loc is not None else None
    if pn is None and idx < len(flat.runorder):
        pn = flat.runorder[idx][0]
    why = re.sub(r"^(\w+) '[^']*' ", "", err.message)
    if why.startswith("residual ") or why.startswith("the body of"):
        why = "fails: " + why
    return _Fit(idx, pn, f"{why} (at input {fmt_shape(size)})", shape_error=True)


def _channels(flat: _Flat) -> int | None:
    for pn, _ in flat.runorder:
        for key in ("in_channels", "num_features", "num_channels"):
            if key in pn.printed and pn.cls != "BatchNorm1d":
                return pn.printed[key]
        if "in_features" in pn.printed or (pn.cls == "BatchNorm1d" and pn.printed):
            raise SpecError(
                f"the first layer with a printed size is {pn.what()}, on flat input: netspec networks "
                f"take C x H x W images, and the input size cannot be told",
                pn.loc,
                hint="pass the input size with --input CxHxW",
                code="E100",
            )
    return None


@dataclass
class _Solution:
    size: tuple[int, int, int]
    note: str


@dataclass
class _Search:
    solution: _Solution | None
    best: _Fit  # the furthest failure, when there is no solution
    sides: list[int]  # the square sides that got furthest


def _solve(flat: _Flat, given: tuple[int, int, int] | None, sides=None) -> _Search:
    """The input size: the smallest square that fits, else the smallest H x W found; else the furthest failure."""
    from ..shapes import fmt_shape

    total = len(flat.runorder)
    if given is not None:
        fit = _fit(flat, given)
        if fit.index == total:
            return _Search(
                _Solution(given, f"input {fmt_shape(given)}: as given (--input); it fits every printed size"), fit, []
            )
        return _Search(None, fit, [])
    c = _channels(flat)
    if c is None:
        return _Search(
            _Solution((3, 32, 32), "input 3x32x32: an assumption; no printed size depends on the input size"),
            _Fit(total),
            [],
        )
    best = _Fit(-1)
    best_sides: list[int] = []
    fits: dict[int, _Fit] = {}
    for s in sides if sides is not None else range(1, MAX_SIDE + 1):
        fit = _fit(flat, (c, s, s))
        fits[s] = fit
        if fit.index == total:
            hi = s
            while hi + 1 <= min(2 * s, MAX_SIDE) and _fit(flat, (c, hi + 1, hi + 1)).index == total:
                hi += 1
            if hi == s:
                rng = f"{s}x{s} is the only square size that does"
            elif hi == min(2 * s, MAX_SIDE):
                rng = f"so does every square size from {s}x{s} up to {hi}x{hi} (checked no further)"
            else:
                rng = f"so does every square size from {s}x{s} to {hi}x{hi}"
            return _Search(
                _Solution(
                    (c, s, s),
                    f"input {fmt_shape((c, s, s))}: the smallest square input at which "
                    f"every printed size ({', '.join(_size_keys(flat))}) fits; {rng}",
                ),
                fit,
                [s],
            )
        if fit.index > best.index:
            best, best_sides = fit, [s]
        elif fit.index == best.index:
            best_sides.append(s)
    # no square fits: where a flat layer's size couples H and W, try the sides that got that far in pairs
    pn = best.pnode
    if pn is not None and "in_features" in pn.printed:
        want = pn.printed["in_features"]
        shapes = {s: fits[s].spatial for s in best_sides if fits[s].spatial is not None}
        pairs = sorted(
            ((h, w) for h in shapes for w in shapes if h != w and shapes[h][0] * shapes[h][1] * shapes[w][2] == want),
            key=lambda hw: (hw[0] * hw[1], abs(hw[0] - hw[1]), hw),
        )
        for h, w in pairs[:200]:
            if _fit(flat, (c, h, w)).index == total:
                return _Search(
                    _Solution(
                        (c, h, w),
                        f"input {fmt_shape((c, h, w))}: no square input fits the "
                        f"printed sizes; this is the smallest H x W found that does",
                    ),
                    best,
                    best_sides,
                )
    return _Search(None, best, best_sides)


def _size_keys(flat: _Flat) -> list[str]:
    keys: list[str] = []
    for pn, _ in flat.runorder:
        for k in pn.printed:
            if k not in keys:
                keys.append(k)
    return keys


# ---------------------------------------------------------------------------------------------------------------
# The run order
# ---------------------------------------------------------------------------------------------------------------


def _insert_flattens(top: list[PNode]) -> list[tuple[PNode, str]]:
    """Where, in registration order, a flat layer gets an image, add a Flatten before the top-level child holding it.

    torchvision's models (and many others) flatten with torch.flatten(x, 1) in forward(), which a printed module does
    not show. A Flatten module has no weights, so state_dict keys stay the same. Only a child whose layers before
    that flat layer all work element by element (Dropout, ReLU, ...) qualifies.
    """
    added: list[tuple[PNode, str]] = []
    rank = 3
    i = 0
    names = {pn.name for pn in top}
    while i < len(top):
        child = top[i]
        for k, leaf in enumerate(child.leaves()):
            if leaf.cls == "Flatten":
                start, end = dict(leaf.spec_args).get("start_dim", 1), dict(leaf.spec_args).get("end_dim", -1)
                if (start, end) != (1, -1):
                    return added
                rank = 1
            elif leaf.cls in ("Linear", "BatchNorm1d"):
                if rank == 3:
                    before = list(child.leaves())[:k]
                    if any(b.cls not in _ELEMENTWISE for b in before):
                        return added
                    name = "flatten"
                    n = 1
                    while name in names:
                        name = f"flatten_{n}"
                        n += 1
                    names.add(name)
                    fl = PNode(name, "Flatten", Location(0, 0), None, args=[], path=name)
                    top.insert(i, fl)
                    added.append((fl, child.name))
                    i += 1
                rank = 1
            elif leaf.cls in (
                "Conv2d",
                "BatchNorm2d",
                "MaxPool2d",
                "AvgPool2d",
                "AdaptiveAvgPool2d",
                "AdaptiveMaxPool2d",
                "Dropout2d",
                "GroupNorm",
            ):
                if rank != 3:
                    return added
        i += 1
    return added


def _read_order(text: str | bytes, filename: str | None, top: list[PNode]) -> list[tuple[str, str, PNode | None]]:
    """The run order from a `forward { ... }` section: (op, name, printed child) steps, repeats unrolled."""
    from ..lang import Constants, Repeat, Scope, did_you_mean, normalize_source, parse, render_name, value_of

    src = normalize_source(text)
    shift = 0  # lines added in front of the file's text
    try:
        prog = parse(src, filename)
    except SpecError:
        if re.search(r"\bforward\b", src):
            raise
        # the steps alone, without `forward { }` around them
        wrapped = "forward {\n" + src + "\n}\n"
        shift = 1
        try:
            prog = parse(wrapped, filename)
        except SpecError as e:
            if e.loc is not None and 2 <= e.loc.line <= src.count("\n") + 1:
                raise SpecError(
                    e.message,
                    Location(e.loc.line - 1, e.loc.column, e.loc.end_column),
                    hint=e.hint,
                    code=e.code,
                    filename=filename,
                    source=src,
                ) from None
            raise
    err_src = src

    def err(message, loc, hint=None, code="E101"):
        return SpecError(message, loc, hint=hint, code=code, filename=filename, source=err_src)

    if prog.forward is None:
        raise err(
            "the order file has no `forward { ... }` section",
            Location(1, 1),
            hint="write the run order as a spec's forward section: forward { conv1 relu pool1 ... }",
        )
    for what, loc in (
        ("layers", prog.layers_loc),
        ("train", prog.train_loc),
        ("network", prog.network_loc),
        ("input", prog.input_loc),
    ):
        if loc is not None:
            raise err(f"the order file gives the run order only; `{what}` comes from the printed module", loc)
    by_name = {pn.name: pn for pn in top}
    consts = Constants(prog.consts, {})
    steps: list[tuple[str, str, PNode | None]] = []

    def fix(loc: Location | None) -> Location:
        if loc is None or loc.line - shift < 1:
            return Location(1, 1)
        return Location(loc.line - shift, loc.column, loc.end_column)

    def walk(items, scope) -> None:
        for it in items:
            if isinstance(it, Repeat):
                try:
                    lo, hi = value_of(it.start, scope), value_of(it.stop, scope)
                except SpecError as e:
                    raise err(e.message, fix(e.loc), e.hint, e.code) from None
                if (
                    not all(isinstance(v, int) and not isinstance(v, bool) for v in (lo, hi))
                    or hi < lo
                    or hi - lo > 10_000
                ):
                    raise err(f"cannot repeat over {lo!r}..{hi!r}", fix(it.loc), code="E101")
                for v in range(lo, hi + 1):
                    walk(it.items, Scope({it.var: v}, scope))
                continue
            try:
                name = render_name(it.name, scope)
            except SpecError as e:
                raise err(e.message, fix(e.loc), e.hint, e.code) from None
            if name in by_name:
                steps.append(("residual" if it.residual else "module", name, by_name[name]))
            elif name in L.FUNCTIONS and not it.residual:
                steps.append(("function", name, None))
            else:
                hint = did_you_mean(name, list(by_name) + list(L.FUNCTIONS))
                raise err(
                    f"{name!r} is not a child of the printed module" + ("" if it.residual else " nor a function"),
                    fix(it.name.loc),
                    hint=hint or f"functions: {', '.join(L.FUNCTIONS)}",
                )
            if len(steps) > 20_000:
                raise err("the run order has more than 20,000 steps", fix(it.loc))

    walk(prog.forward, consts)
    used = {n for op, n, _ in steps if op != "function"}
    missing = [pn for pn in top if pn.name not in used]
    if missing:
        raise err(
            f"the run order never runs {', '.join(repr(pn.name) for pn in missing)}",
            fix(prog.forward_loc),
            hint="every child of the printed module must run at least once",
        )
    return steps


# ---------------------------------------------------------------------------------------------------------------
# Putting it together
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class ImportResult:
    spec: str  # the .net text
    input: tuple[int, int, int]
    name: str
    warnings: list[str] = field(default_factory=list)


def _wrap_comment(text: str, width: int = 110) -> list[str]:
    words = text.split()
    lines: list[str] = []
    cur = "#"
    for w in words:
        if len(cur) + 1 + len(w) > width and cur != "#":
            lines.append(cur)
            cur = "#   " + w
        else:
            cur = f"{cur} {w}"
    lines.append(cur)
    return lines


def _sig(nodes) -> tuple:
    return tuple(
        (
            n.name,
            n.layer or n.composite,
            tuple(sorted((k, repr(v)) for k, v in n.config.args().items())) if n.config is not None else None,
            _sig(n.children),
            None if n.shortcut is None else _sig(n.shortcut),
        )
        for n in nodes
    )


def import_text(
    text: str | bytes,
    filename: str | None = None,
    *,
    name: str | None = None,
    order: str | bytes | None = None,
    order_filename: str | None = None,
    input: Any = None,
    source: str | None = None,
    live: bool = False,
) -> ImportResult:
    """Turn printed-module text into spec text. Raises SpecError (file, line, column) where it cannot.

    `order` is the run order as a spec's `forward { ... }` section (without it: registration order); `input` an
    input size to use instead of the smallest that fits ("3x32x32" or (3, 32, 32)); `source` says where the text
    came from, for the header comment (default: the file name); `live` is set by `from_module`.
    """
    from ..lang import load_spec

    text = _normalize(text, filename)
    reader = _Reader(text, filename)
    root = reader.read()
    _Converter(reader).root(root)
    net_name = name or root.cls.split(".")[-1]
    if not _NAME_RE.fullmatch(net_name) or net_name in _RESERVED - {"Sequential", "Residual"}:
        if name:
            raise UsageError(f"--name {name!r}: a network name is letters, digits and '_'")
        net_name = "Net"
    given = None
    if input is not None:
        from ..lang import input_size

        given = input_size(input)
    top = list(root.children)
    notes: list[str] = []
    warns: list[str] = []
    steps = None
    if order is not None:
        steps = _read_order(order, order_filename, top)
        if root.cls == "Sequential" and any(pn.anonymous for pn in top):
            raise SpecError(
                "a forward section needs named children; this Sequential's children are numbered",
                root.loc,
                code="E101",
                filename=filename,
                source=text,
            )
        run_note = (
            f"Run order: as given in {_short(order_filename) if order_filename else 'the order'} "
            f"(the forward section below); print(model) does not show forward()."
        )
        added = []
    else:
        added = _insert_flattens(top) if root.cls != "Sequential" else []
        if root.cls == "Sequential":
            run_note = "Run order: nn.Sequential's, the order the children are registered in."
        elif live:
            run_note = (
                f"Run order: assumed to be the order the children are registered in; "
                f"{root.cls}'s forward() cannot be seen (nn.Sequential stacks inside run in that order)."
            )
        else:
            run_note = (
                "Run order: assumed to be the order print(model) lists the children in, as print(model) "
                "does not show forward(); give another with --order FILE."
            )
        for fl, before in added:
            notes.append(
                f"Added: `{fl.name} Flatten()` before {before!r}, whose Linear takes flat input: "
                f"a forward() that flattens with torch.flatten(x, 1) is assumed. A Flatten has no weights: "
                f"state_dict keys are unchanged."
            )

    try:
        flat = _flat(top, steps, net_name)
        search = _solve(flat, given)
        if search.solution is None:
            raise _no_fit(search, flat, top, steps, given, reader, warns)
    except SpecError as e:
        e.attach(filename, text)
        raise
    sol = search.solution

    # the last layer to run, when a Linear, gets its size from a `classes` constant
    classes = None
    if flat.runorder and flat.runorder[-1][0].cls == "Linear":
        classes = flat.runorder[-1][0]
        if len(flat.runorder) > 1 and any(pn is classes for pn, _ in flat.runorder[:-1]):
            classes = None
    header = [
        f"# Imported by `netspec import` from {source or _short(filename) or 'a printed module'}"
        + ("." if live else ", as print(model) shows it.")
    ]
    header_notes = [run_note, sol.note[0].upper() + sol.note[1:] + "."] + notes
    for note in header_notes:
        header += _wrap_comment(note)

    # folded; else with the order file's forward section as written; else unfolded: the first that elaborates to
    # exactly the network read from the text
    def candidates():
        yield _render(header, net_name, sol.size, top, steps, classes, True)
        if order is not None:
            yield _render(header, net_name, sol.size, top, steps, classes, True, verbatim=normalize_order(order))
        yield _render(header, net_name, sol.size, top, steps, classes, False)

    want_layers = _sig(flat.net.layers)
    want_steps = [(s.op, s.name) for s in flat.net.forward]
    for cand in candidates():
        if cand is None:
            continue
        try:
            net = load_spec(cand, "<import>")
        except SpecError:
            continue
        if _sig(net.layers) == want_layers and [(s.op, s.name) for s in net.forward] == want_steps:
            return ImportResult(cand, sol.size, net_name, warns)
    raise SpecError(
        "internal error: the imported spec does not elaborate to the printed module",
        None,
        code="E109",
        filename=filename,
    )  # pragma: no cover


def normalize_order(order: str | bytes) -> str | None:
    """The order text as a `forward { ... }` section (comments kept), for writing verbatim."""
    from ..lang import normalize_source

    src = normalize_source(order).strip("\n")
    return src if re.search(r"\bforward\b", src) else "forward {\n" + src + "\n}"


def _short(filename: str | None) -> str | None:
    if not filename:
        return None
    return filename.replace("\\", "/").rsplit("/", 1)[-1]


def _render(
    header: list[str],
    net_name: str,
    size,
    top: list[PNode],
    steps,
    classes: PNode | None,
    fold: bool,
    verbatim: str | None = None,
) -> str | None:
    from ..shapes import fmt_shape

    items = _flat_items(top, classes)
    out = header + [f"network {net_name}", f"input {fmt_shape(size)}"]
    if classes is not None:
        out.append(f"classes = {dict(classes.spec_args).get(None)}")
    folder = _Folder({"classes"} if classes is not None else set())
    if fold:
        try:
            items = list(folder.fold(items, 4))
        except RecursionError:  # pragma: no cover
            return None
    for b in folder.blocks.values():
        out.append("")
        out += _render_block(b)
    out.append("")
    out.append("layers {")
    out += _render_items(items, 4)
    out.append("}")
    if steps is not None:
        out.append("")
        if verbatim is not None:
            out += verbatim.splitlines()
        else:
            st = [IStep(op == "residual", _split_name(n)) for op, n, _ in steps]
            if fold:
                st = list(_Folder(set(), steps=True).fold(st, 4))
            out.append("forward {")
            out += _render_steps(st, 4)
            out.append("}")
    return "\n".join(out) + "\n"


def _no_fit(
    search: _Search, flat: _Flat, top: list[PNode], steps, given, reader: _Reader, warns: list[str]
) -> SpecError:
    """The error for a printed module that no input size fits; names modules registered out of their run order."""
    from ..shapes import fmt_shape

    best = search.best
    pn = best.pnode
    loc = pn.loc if pn is not None and pn.loc.line > 0 else None
    what = pn.what() if pn is not None else "a layer"

    def error(message, loc, hint=None, code="E102"):
        return SpecError(message, loc, hint=hint, code=code, filename=reader.filename, source=reader.text)

    if given is not None:
        return error(
            f"the printed sizes do not fit the input {fmt_shape(given)}: {what} {best.why}",
            loc,
            hint="leave out --input to search for a size that fits",
        )
    if steps is None and pn is not None and search.sides:
        # in registration order: the top-level children that cannot run where they are registered. Taking one out
        # keeps the sizes that got as far as it as the only candidates, so each round checks just those.
        misplaced: list[PNode] = []
        rest = list(top)
        sub = search
        for _ in range(32):
            p = sub.best.pnode
            child = next((c for c in rest if p is c or (p in list(c.leaves()) and _first_sized(c) is p)), None)
            if child is None or len(rest) == 1:
                break
            # a printed size that differs, with nothing sized after it, is a wrong size rather than a wrong place
            after = rest[rest.index(child) + 1 :]
            if not sub.best.shape_error and not any(_first_sized(c) for c in after):
                break
            misplaced.append(child)
            rest.remove(child)
            sub = _solve(_flat(rest, None, flat.net.name), None, sub.sides)
            if sub.solution is not None:
                names = ", ".join(f"{c.name!r} (line {c.loc.line})" for c in misplaced)
                warns.append(f"in registration order these children cannot run where they are registered: {names}")
                first = misplaced[0]
                why = best.why if first is pn else "does not fit there"
                e = error(
                    f"{first.what()} cannot run where it is registered: it {why}",
                    first.loc,
                    hint=f"print(model) does not show forward(), so import runs the children in registration "
                    f"order, where {names} {'does' if len(misplaced) == 1 else 'do'} not fit (the rest fits "
                    f"{fmt_shape(sub.solution.size)}). Give the run order with --order FILE, written as "
                    f"a spec's `forward {{ ... }}` section",
                    code="E103",
                )
                e.warnings = list(warns)  # type: ignore[attr-defined]
                return e
            if not sub.sides:
                break
    hint = None
    if steps is None:
        hint = "print(model) does not show forward(): if the children run in another order, give it with --order"
    if pn is None:
        return error(f"no input size up to {MAX_SIDE}x{MAX_SIDE} fits the printed sizes", None, hint=hint)
    return error(f"no input size fits the printed sizes: {what} {best.why}", loc, hint=hint)


def _first_sized(child: PNode) -> PNode | None:
    for leaf in child.leaves():
        if leaf.printed or leaf.cls in (
            "Conv2d",
            "Linear",
            "BatchNorm2d",
            "BatchNorm1d",
            "GroupNorm",
            "Flatten",
            "MaxPool2d",
            "AvgPool2d",
            "AdaptiveAvgPool2d",
            "AdaptiveMaxPool2d",
        ):
            return leaf
    return None


# ---------------------------------------------------------------------------------------------------------------
# From a live module
# ---------------------------------------------------------------------------------------------------------------


def _module_text(module) -> str:
    """print(model)'s text, with nn.Sequential subclasses that keep Sequential's forward() printed as Sequential."""
    from torch import nn

    def rep(m, name: str | None) -> str:
        children = list(m._modules.items())
        if not children:
            return repr(m)
        cls = (
            m._get_name()
            if name is None
            else (
                "Sequential"
                if isinstance(m, nn.Sequential) and type(m).forward is nn.Sequential.forward
                else m._get_name()
            )
        )
        lines = [f"{cls}("]
        extra = m.extra_repr()
        if extra:
            lines += ["  " + ln for ln in extra.split("\n")]
        for key, child in children:
            if child is None:
                continue
            body = rep(child, key).split("\n")
            lines.append(f"  ({key}): " + body[0])
            lines += ["  " + ln for ln in body[1:]]
        lines.append(")")
        return "\n".join(lines)

    return rep(module, None)


def from_module(module, input=None, name: str | None = None) -> str:
    """The spec text of a live `nn.Module` built from nn.Sequential stacks and netspec's layers.

    The top-level module may be of any class, but its forward() cannot be seen: its children are assumed to run in
    registration order (the header comment says so), with a flatten added before a classifier that needs one.
    Raises `ModuleImportError` (a SpecError and a ValueError) naming the first part, by dotted path, that a spec
    cannot express.

    >>> import torch.nn as nn
    >>> print(from_module(nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU())).splitlines()[-4:])
    ['layers {', '    Conv2d(8, kernel_size=3)', '    ReLU()', '}']
    """
    from torch import nn

    from ..build import TORCH_LAYERS, Residual

    def fail(path: str, message: str) -> ModuleImportError:
        return ModuleImportError(
            f"cannot express {path!r}: {message}", None, code="E104", filename=f"<{type(module).__name__} module>"
        )

    if not isinstance(module, nn.Module):
        raise TypeError(f"from_module takes an nn.Module, not {type(module).__name__}")
    for path, m in module.named_modules(remove_duplicate=False):
        own = list(m._parameters.items()) + list(m._buffers.items())
        kind = type(m)
        if path == "" or (isinstance(m, nn.Sequential) and kind.forward is nn.Sequential.forward) or kind is Residual:
            if own and kind not in TORCH_LAYERS.values():
                raise fail(
                    path or "(top)", f"it holds its own parameter or buffer {own[0][0]!r}, which no spec layer holds"
                )
            continue
        cls = kind.__name__
        if cls in TORCH_LAYERS and kind is TORCH_LAYERS[cls]:
            continue
        if isinstance(m, nn.Sequential):
            raise fail(path, f"{cls} is an nn.Sequential with its own forward(), which a spec cannot express")
        if cls in TORCH_LAYERS:
            raise fail(path, f"{cls} is a subclass of torch's {cls} ({kind.__module__}.{kind.__qualname__})")
        raise fail(path, f"{cls} is not among netspec's layers ({', '.join(TORCH_LAYERS)}) and is not an nn.Sequential")
    seen: dict[int, str] = {}
    for path, m in module.named_modules(remove_duplicate=False):
        if id(m) in seen and path:
            raise fail(path, f"it is the same module as {seen[id(m)]!r}: a spec cannot share weights")
        seen[id(m)] = path
    text = _module_text(module)
    result = import_text(
        text,
        f"<{type(module).__name__} module>",
        name=name,
        input=input,
        source=f"a live {type(module).__name__} module (netspec.importer.from_module)",
        live=True,
    )
    _check_hidden(module, text)
    for w in result.warnings:
        warnings.warn(w, stacklevel=2)
    return result.spec


def _check_hidden(module, text: str) -> None:
    """Arguments print(model) does not show (AvgPool2d's ceil_mode, MaxPool2d's return_indices, ...) must be at
    their defaults, or the spec would build a different layer: compare every layer's plain attributes."""
    import torch

    from ..build import TORCH_LAYERS

    reader = _Reader(text, None)
    root = reader.read()
    _Converter(reader).root(root)

    def walk(pn: PNode, m, path: str):
        if pn.is_leaf:
            cls = TORCH_LAYERS[pn.cls]
            kwargs = {**pn.printed, **{k or L.LAYERS[pn.cls].POSITIONAL[0]: v for k, v in pn.spec_args}}
            with torch.device("meta"):
                ref = cls(**kwargs)
            for key, value in vars(m).items():
                if key.startswith("_") or key == "training":
                    continue
                if isinstance(value, (bool, int, float, str, tuple, type(None))):
                    if not _same_attr(getattr(ref, key, object()), value):
                        raise ModuleImportError(
                            f"cannot express {path!r}: its {key}={value!r} does not show in print(model), and "
                            f"netspec's {pn.cls} would have {key}={getattr(ref, key, None)!r}",
                            None,
                            code="E104",
                            filename=f"<{type(module).__name__} module>",
                        )
            return
        kids = dict(m._modules)
        for c in pn.children:
            walk(c, kids[c.name], f"{path}.{c.name}" if path else c.name)

    walk(root, module, "")


def _same_attr(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return True  # both NaN
    return _same(a, b)


# ---------------------------------------------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------------------------------------------


def _read_arg(path: str, what: str) -> tuple[str | bytes, str]:
    if path == "-":
        stream = click.get_binary_stream("stdin")
        return stream.read(), "<stdin>"
    from pathlib import Path

    p = Path(path)
    if p.is_dir():
        raise UsageError(f"{what} {path}: is a directory")
    try:
        return p.read_bytes(), path
    except FileNotFoundError:
        raise UsageError(f"{what} {path}: no such file") from None
    except OSError as e:
        raise UsageError(f"{what} {path}: cannot read ({e.strerror})") from None


@click.command("import")
@click.argument("file", metavar="FILE|-")
@click.option("--name", metavar="NAME", help="The network's name (default: the printed class name).")
@click.option("-o", "--output", metavar="OUT.net", help="Write the spec here (default: standard output).")
@click.option(
    "--order",
    metavar="FILE",
    help="The run order, written as a spec's `forward { ... }` section (default: registration order).",
)
@click.option(
    "--input",
    "input_",
    metavar="CxHxW",
    help="Use this input size (it must fit the printed sizes) instead of the smallest that fits.",
)
def import_command(file: str, name: str | None, output: str | None, order: str | None, input_: str | None) -> None:
    """Turn FILE, a module as print(model) writes it (- for standard input), into a .net spec.

    \b
    netspec import model.txt -o model.net
    netspec import model.txt --order order.txt    # order.txt: forward { conv1 bn1 relu ... }

    Sizes that follow from the input are dropped, and so are arguments at PyTorch's defaults; repeated groups become
    blocks and repeats. The input size is the smallest at which every printed size fits.
    """
    text, filename = _read_arg(file, "import")
    order_text = None
    if order is not None:
        order_text, _ = _read_arg(order, "--order")
    try:
        result = import_text(text, filename, name=name, order=order_text, order_filename=order, input=input_)
    except SpecError as e:
        for w in getattr(e, "warnings", ()):
            click.echo(f"netspec import: warning: {w}", err=True)
        raise
    for w in result.warnings:
        click.echo(f"netspec import: warning: {w}", err=True)
    if output is None:
        click.echo(result.spec, nl=False)
        return
    from pathlib import Path

    try:
        Path(output).write_text(result.spec)
    except OSError as e:
        raise UsageError(f"-o {output}: cannot write ({e.strerror})") from None
    click.echo(f"wrote {output} (network {result.name}, input {'x'.join(map(str, result.input))})", err=True)
