"""Stage 1: text -> syntax tree.

The grammar lives in `grammar.lark`; the parser is built once, lazily (LALR, positions kept). Lark's exceptions are
turned into `SpecError` here, at the boundary, so no later stage ever sees a Lark type. The tree is made of small
frozen dataclasses that carry their `Location`; nothing is evaluated yet (constants, blocks, repetition and name
templates are the next stage's work).
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import os
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Union

from .errors import Location, SpecError

# ---------------------------------------------------------------------------------------------------------------
# Syntax tree
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Num:
    value: int | float
    loc: Location


@dataclass(frozen=True)
class Str:
    value: str
    loc: Location


@dataclass(frozen=True)
class Const:
    """true / false / None."""

    value: bool | None
    loc: Location


@dataclass(frozen=True)
class Ref:
    """A name used as a value: a constant, a block parameter, a repeat variable (or a bare word like `cifar10`)."""

    name: str
    loc: Location


@dataclass(frozen=True)
class BinOp:
    op: str  # + - * // / %
    left: "Expr"
    right: "Expr"
    loc: Location
    op_loc: Location | None = None  # the operator itself (kept for '/'), for a caret on it


@dataclass(frozen=True)
class Neg:
    operand: "Expr"
    loc: Location


@dataclass(frozen=True)
class TupleExpr:
    items: tuple["Expr", ...]
    loc: Location


@dataclass(frozen=True)
class ListExpr:
    items: tuple["Expr", ...]
    loc: Location


@dataclass(frozen=True)
class Arg:
    """One argument of a call: `name` is None for a positional one."""

    name: str | None
    value: "Expr"
    loc: Location
    name_loc: Location | None = None


@dataclass(frozen=True)
class Call:
    """`Conv2d(64, kernel_size=3)`: a layer, a block's use, a transform or an optimizer."""

    name: str
    args: tuple[Arg, ...]
    loc: Location  # the whole call
    name_loc: Location  # just the name


Expr = Union[Num, Str, Const, Ref, BinOp, Neg, TupleExpr, ListExpr, Call]


@dataclass(frozen=True)
class Template:
    """A name that may hold `{expr}` holes: `conv{id}`, `resblock{s}_{i+1}`."""

    text: str
    loc: Location


@dataclass(frozen=True)
class Composite:
    kind: str  # "Sequential" | "Residual"
    items: tuple["Item", ...]
    loc: Location
    shortcut: tuple["Item", ...] | None = None


@dataclass(frozen=True)
class Named:
    name: Template
    body: Call | Composite
    loc: Location


@dataclass(frozen=True)
class Repeat:
    var: str
    start: Expr
    stop: Expr  # inclusive
    items: tuple  # of Item, or of Step inside `forward`
    loc: Location
    var_loc: Location | None = None


Item = Union[Named, Call, Composite, Repeat]


@dataclass(frozen=True)
class Step:
    name: Template
    loc: Location
    residual: bool = False


@dataclass(frozen=True)
class Param:
    name: str
    default: Expr | None
    loc: Location


@dataclass(frozen=True)
class BlockDef:
    name: str
    params: tuple[Param, ...]
    items: tuple[Item, ...]
    loc: Location
    name_loc: Location


@dataclass(frozen=True)
class Setting:
    key: str
    value: Expr
    loc: Location
    key_loc: Location


@dataclass(frozen=True)
class ConstDef:
    name: str
    value: Expr
    loc: Location


@dataclass
class Program:
    """A whole spec file, as written."""

    network: str | None = None
    network_loc: Location | None = None
    input: tuple[int, int, int] | None = None
    input_loc: Location | None = None
    consts: dict[str, ConstDef] = field(default_factory=dict)
    blocks: dict[str, BlockDef] = field(default_factory=dict)
    layers: tuple[Item, ...] | None = None
    layers_loc: Location | None = None
    forward: tuple | None = None  # of Step | Repeat
    forward_loc: Location | None = None
    train: tuple[Setting, ...] | None = None
    train_loc: Location | None = None


# ---------------------------------------------------------------------------------------------------------------
# Parser
# ---------------------------------------------------------------------------------------------------------------

MAX_SOURCE_CHARS = 1_000_000
MAX_INPUT_DIM = 65_536  # the same limit as the command line's --input


@functools.lru_cache(maxsize=1)
def _parser():
    import lark  # imported lazily: `netspec --help` stays fast

    text = resources.files("netspec").joinpath("grammar.lark").read_text(encoding="utf-8")
    options = dict(parser="lalr", propagate_positions=True, maybe_placeholders=True)
    # Building the LALR tables takes ~0.3 s; Lark caches them in a file keyed by the grammar, the options and Lark's
    # version. The file lives in our own cache folder (not a shared temp dir), so no other user can plant one.
    key = hashlib.sha256(f"{text}{sorted(options.items())}{lark.__version__}".encode()).hexdigest()[:16]
    cache_dir = Path(os.environ.get("NETSPEC_CACHE") or Path.home() / ".cache" / "netspec")
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        return lark.Lark(text, cache=str(cache_dir / f"grammar-{key}.lark"), **options)
    except OSError:  # a read-only home: build the tables every time
        return lark.Lark(text, **options)


def _loc_of(meta_or_token) -> Location:
    line = getattr(meta_or_token, "line", None) or 1
    col = getattr(meta_or_token, "column", None) or 1
    end_line = getattr(meta_or_token, "end_line", None)
    end_col = getattr(meta_or_token, "end_column", None)
    if end_line != line:
        end_col = None
    return Location(line, col, end_col)


def _tok(token) -> Location:
    return _loc_of(token)


# How a terminal is named in "expected ..." hints; keywords and punctuation are shown as written.
_TERMINAL_NAMES = {
    "NAME": "a name", "INT": "an integer", "FLOAT": "a number", "STRING": "a string",
    "SIZE": "a size such as 3x32x32", "$END": "the end of the file",
}
_CLOSERS = {"LPAR": ")", "LBRACE": "}", "LSQB": "]"}
_OPENERS = {"RPAR": "LPAR", "RBRACE": "LBRACE", "RSQB": "LSQB"}
_SECTION_TOKENS = {"LAYERS": "layers", "FORWARD": "forward", "TRAIN": "train", "BLOCK": "block",
                   "SEQUENTIAL": "Sequential", "RESIDUAL": "Residual", "SHORTCUT": "shortcut", "REPEAT": "repeat"}
_VALUE_STARTS = {"NAME", "INT", "FLOAT", "STRING", "LPAR", "LSQB", "MINUS", "PLUS", "TRUE", "FALSE", "NONE"}

KEYWORDS = ("network", "input", "block", "layers", "forward", "train", "repeat", "residual")

# Words of Python that a spec may be mistaken for: a spec is data and never runs code.
_PYTHON_WORDS = ("import", "from", "lambda", "def", "class", "exec", "eval", "return", "print", "with", "global",
                 "async", "await", "while", "for", "if", "else", "elif", "try", "except", "raise", "del", "assert")


def _terminal_text(name: str) -> str | None:
    if name in _TERMINAL_NAMES:
        return _TERMINAL_NAMES[name]
    try:
        term = _parser().get_terminal(name)
    except KeyError:
        return None
    if term.pattern.type == "str":
        return repr(term.pattern.value)
    return {"SLASH": "'/'", "RANGE": "'..'"}.get(name)


def _describe_expected(expected) -> str:
    names = sorted({t for t in (_terminal_text(e) for e in expected) if t})
    # keywords and punctuation first, then the classes of tokens ("a name", "an integer")
    names.sort(key=lambda n: (not n.startswith("'"), n))
    if not names:
        return ""
    if len(names) > 8:
        names = names[:8] + ["..."]
    return "expected " + ", ".join(names)


def _span(tok) -> Location:
    value = str(tok)
    end = tok.column + len(value) if value and "\n" not in value else None
    return Location(tok.line, tok.column, end)


def _value_stack(err) -> list:
    """What the LALR parser had read when it failed: tokens and finished subtrees, innermost last."""
    try:
        return list(err.interactive_parser.parser_state.value_stack)
    except AttributeError:
        return []


def _open_delimiters(stack) -> list:
    """The '(' '{' '[' tokens read but not yet closed, outermost first, each with the token before it."""
    import lark

    opened: list = []
    prev = None
    for item in stack:
        if isinstance(item, lark.Token):
            if item.type in _CLOSERS:
                opened.append((item, prev))
            elif item.type in _OPENERS and opened and opened[-1][0].type == _OPENERS[item.type]:
                opened.pop()
        prev = item
    return opened


def _owner(prev) -> str:
    """`of layers`, `of Conv2d(...)` for the token read before an opening delimiter, or ''."""
    import lark

    if not isinstance(prev, lark.Token):
        return ""
    if prev.type in _SECTION_TOKENS:
        return f" of `{prev}`"
    if prev.type == "NAME":
        return f" of {prev}"
    return ""


def _section(stack) -> str | None:
    """The innermost section or composite the parser is in: 'layers', 'train', 'Sequential', ... or None."""
    import lark

    for tok, prev in reversed(_open_delimiters(stack)):
        if tok.type == "LBRACE":
            if isinstance(prev, lark.Token) and prev.type in _SECTION_TOKENS:
                return _SECTION_TOKENS[prev.type]
            return "block" if isinstance(prev, lark.Token) and prev.type == "RPAR" else "repeat"
    return None


def _line_start(text: str, line: int, column: int) -> bool:
    """Whether only spaces come before this column on its line."""
    lines = text.split("\n")
    return 1 <= line <= len(lines) and not lines[line - 1][: column - 1].strip()


def _after(text: str, tok) -> str:
    """The text just after a token (spaces skipped), to tell `name=` from `name(`."""
    pos = getattr(tok, "end_pos", None)
    if pos is None:
        return ""
    return text[pos: pos + 40].lstrip(" \t")


def _syntax_error(err, text: str) -> SpecError:
    """Turn a Lark UnexpectedInput into one SpecError with a friendly message where the mistake is a known one."""
    import lark

    line = getattr(err, "line", None)
    col = getattr(err, "column", None)
    if not isinstance(line, int) or line < 1:
        # the end of the file: point just past the last character
        lines = text.split("\n")
        while len(lines) > 1 and not lines[-1].strip():
            lines.pop()
        line, col = len(lines), len(lines[-1].rstrip()) + 1
    loc = Location(line, col)
    if isinstance(err, lark.UnexpectedCharacters):
        return _unexpected_character(err, text, loc)
    if not isinstance(err, lark.UnexpectedToken):  # pragma: no cover - LALR raises only these two
        return SpecError(str(err).splitlines()[0], loc, code="E002")

    tok = err.token
    stack = _value_stack(err)
    last = stack[-1] if stack else None
    last_tok = last if isinstance(last, lark.Token) else None
    opened = _open_delimiters(stack)
    expected = err.expected
    expected_text = _describe_expected(expected)
    section = _section(stack)

    # Python where a spec was expected: `import os`, `from torch import nn`, `def f(x):`
    if tok.type == "NAME" and str(tok) in _PYTHON_WORDS:
        return SpecError(f"{str(tok)!r} is not part of the language", _span(tok),
                         hint="a spec is data: nothing in it is run as Python, imported or looked up", code="E002")
    if last_tok is not None and last_tok.type == "NAME" and str(last_tok) in _PYTHON_WORDS:
        return SpecError(f"{str(last_tok)!r} is not part of the language", _span(last_tok),
                         hint="a spec is data: nothing in it is run as Python, imported or looked up", code="E002")

    if tok.type == "$END":
        if opened:
            opener, prev = opened[-1]
            closer = _CLOSERS[opener.type]
            return SpecError(f"unexpected end of file: this '{opener}'{_owner(prev)} is never closed", _span(opener),
                             hint=f"add the missing '{closer}'", code="E002")
        return SpecError("unexpected end of file", loc, hint=expected_text or None, code="E002")

    value = str(tok)
    loc = _span(tok)
    msg = f"unexpected {value!r}"
    hint = expected_text or None

    if tok.type in _OPENERS and not any(o.type == _OPENERS[tok.type] for o, _ in opened):
        return SpecError(f"this '{value}' closes nothing", loc,
                         hint=f"remove it, or add the '{_CLOSERS[_OPENERS[tok.type]]}' it is meant to close",
                         code="E002")
    closers = {"RPAR", "RSQB"} & set(expected)
    if closers and opened and opened[-1][0].type in ("LPAR", "LSQB"):
        opener, prev = opened[-1]
        closer = _CLOSERS[opener.type]
        in_call = isinstance(prev, lark.Token) and prev.type == "NAME" and opener.type == "LPAR"
        if in_call and tok.type == "NAME" and _after(text, tok).startswith("=") and "COMMA" in expected:
            return SpecError(f"unexpected {value!r}: a ',' is missing before it", loc,
                             hint="arguments are separated by commas: Conv2d(16, kernel_size=3, padding=1)",
                             code="E002")
        if tok.line > opener.line and _line_start(text, tok.line, tok.column):
            return SpecError(f"this '{opener}'{_owner(prev)} is never closed", _span(opener),
                             hint=f"add the missing '{closer}' before line {tok.line}", code="E002")
        if tok.type in _VALUE_STARTS and "COMMA" in expected:
            return SpecError(f"unexpected {value!r}: a ',' is missing before it", loc,
                             hint="arguments and items are separated by commas: (3, 3)", code="E002")

    if tok.type == "EQUAL":
        if section == "train":
            key = stack[-2] if len(stack) >= 2 and last_tok is not None and last_tok.type == "NAME" else None
            key = str(key) if isinstance(key, lark.Token) and key.type == "NAME" else None
            if key == "normalize":
                hint = "write normalize Normalize(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))"
            elif key == "optimizer":
                hint = f"arguments go inside the optimizer's call: optimizer SGD({last_tok}=...)"
            elif key is not None:
                hint = f"keyword arguments go inside a call: {key} Name({last_tok}=...)"
            else:
                examples = {"data": "cifar10", "epochs": "10", "batch_size": "128", "seed": "0"}
                hint = (f"a setting is written `key value`, without '=': {last_tok or 'epochs'} "
                        f"{examples.get(str(last_tok), '...')}")
        elif section in ("layers", "block", "Sequential", "Residual", "shortcut", "repeat"):
            name = last_tok if last_tok is not None and last_tok.type == "NAME" else "name"
            hint = (f"a layer is written `name Layer(args)`, without '=': {name} Conv2d(...); "
                    f"constants are defined at the top level")
        elif last_tok is not None and last_tok.type in ("NETWORK", "INPUT", "LAYERS", "FORWARD", "TRAIN", "BLOCK"):
            return SpecError(f"{str(last_tok)!r} is a keyword and cannot name a constant", _span(last_tok),
                             hint="choose another name", code="E002")
        return SpecError(msg, loc, hint=hint, code="E002")
    if tok.type == "LPAR" and last_tok is not None and last_tok.type in ("SEQUENTIAL", "RESIDUAL", "SHORTCUT"):
        word = str(last_tok)
        return SpecError(msg, loc, hint=f"{word} holds its layers in braces: {word} {{ Conv2d(16, 3) ReLU() }}",
                         code="E002")
    if last_tok is not None and last_tok.type == "INPUT":
        return SpecError(msg, loc, hint="the input size is written CxHxW, without spaces: input 3x32x32",
                         code="E002")
    if last_tok is not None and last_tok.type == "NETWORK":
        return SpecError(msg, loc, hint="a network's name is one word: network CifarNet", code="E002")
    if last_tok is not None and last_tok.type != "NAME" and str(last_tok) == "residual":  # `forward`'s keyword
        return SpecError(msg, loc, hint="`residual NAME` runs x + NAME(x): name a declared layer after it",
                         code="E002")
    if tok.type == "SLASH":
        return SpecError(msg, loc, hint="integer division is written //", code="E002")
    if tok.type == "LBRACE":
        return SpecError(msg, loc, hint="a '{' here needs a keyword before it: Sequential { ... }, Residual { ... }, "
                                        "repeat i in 1..3 { ... }", code="E002")
    if "LPAR" in expected and "NAME" not in expected and last_tok is not None and last_tok.type == "NAME":
        # `relu1 ReLU` followed by the next line: the call's parentheses are missing
        word = str(last_tok)
        return SpecError(f"{word!r} needs parentheses", _span(last_tok),
                         hint=f"a layer is always called: {word}(), even without arguments", code="E002")
    if section is None and not opened and last_tok is not None and last_tok.type == "NAME" and "EQUAL" in expected:
        # a top-level word that does not start `name = value`: the word is the mistake, not what follows it
        before = stack[-2] if len(stack) >= 2 else None
        while getattr(before, "data", "").startswith("__") and before.children:  # Lark's helper for `_item*`
            before = before.children[-1]
        if getattr(before, "data", None) == "network":
            hint = "a network's name is one word: network CifarNet"
        elif tok.type == "NAME" and _after(text, tok).startswith("("):
            hint = "layers are written inside the `layers { ... }` section"
        else:
            hint = ("at the top level, a line is `network NAME`, `input CxHxW`, a constant `name = value`, "
                    "a block, or a section")
        return SpecError(f"unexpected {str(last_tok)!r}", _span(last_tok), hint=hint, code="E002")
    if tok.type in ("RPAR", "RSQB", "COMMA") and last_tok is not None and last_tok.type == "EQUAL":
        return SpecError(msg, loc, hint="a value is missing after '='", code="E002")
    if tok.type in ("COMMA", "RPAR") and last_tok is not None and last_tok.type in ("COMMA", "LPAR", "LSQB") \
            and not (tok.type == "RPAR" and last_tok.type == "LPAR"):
        return SpecError(msg, loc, hint="a value is missing before it", code="E002")
    if tok.type == "STAR" and text[getattr(tok, "end_pos", 0):][:1] == "*":
        return SpecError("unexpected '**'", Location(tok.line, tok.column, tok.column + 2),
                         hint="there is no power operator: write the value, or a product such as 2 * 2 * 2",
                         code="E002")
    if tok.type == "COMMA" and "RPAR" not in expected and "RSQB" not in expected:
        return SpecError(msg, loc, hint="a tuple needs parentheses: (3, 3)", code="E002")
    if tok.type == "LPAR" and len(stack) >= 2 and isinstance(stack[-2], lark.Token) and stack[-2].type == "REPEAT":
        # `repeat Conv2d(...)`: `repeat` meant as a layer's name
        return SpecError("'repeat' is a keyword and cannot name a layer", _span(stack[-2]),
                         hint="choose another name, or write a repetition: repeat i in 1..3 { ... }", code="E002")
    if tok.type in _SECTION_TOKENS or tok.type in ("NETWORK", "INPUT", "IN") or \
            (tok.type != "NAME" and value == "residual"):
        return SpecError(f"unexpected keyword {value!r}", loc,
                         hint=(expected_text + "; " if expected_text else "") +
                         f"{value!r} is a keyword here and cannot be a name", code="E002")
    return SpecError(msg, loc, hint=hint, code="E002")


def _unexpected_character(err, text: str, loc: Location) -> SpecError:
    pos = err.pos_in_stream
    ch = text[pos] if pos < len(text) else ""
    hint = None
    if ch in ("\"", "'"):
        end = text.find("\n", pos)
        end = len(text) if end < 0 else end
        return SpecError("unterminated string", Location(loc.line, loc.column, loc.column + (end - pos)),
                         hint=f"close it with {ch} on the same line: strings are written on one line", code="E001")
    if ch == ".":
        lo, hi = pos, pos
        while lo > 0 and (text[lo - 1].isalnum() or text[lo - 1] in "_."):
            lo -= 1
        while hi < len(text) and (text[hi].isalnum() or text[hi] in "_."):
            hi += 1
        word = text[lo:hi]
        if re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+", word):
            last = word.rsplit(".", 1)[1]
            from . import layers as L

            if last in L.LAYERS:
                fix = f"write the layer's own name: {last}(...)"
            else:
                fix = "layers, optimizers and transforms are written by their own names, such as Conv2d(...)"
            return SpecError(f"dotted names such as {word!r} are not part of the language",
                             Location(loc.line, loc.column - (pos - lo), loc.column + (hi - pos)),
                             hint=f"a spec is data: nothing is imported or looked up by a dotted path; {fix}",
                             code="E001")
        if pos + 1 < len(text) and text[pos + 1].isdigit():
            hint = "write a digit before the point: 0.5"
        elif pos > 0 and text[pos - 1].isdigit():
            hint = "write a digit after the point: 1.0"
        else:
            hint = "ranges are written with two dots: 1..4"
        return SpecError("unexpected '.'", loc, hint=hint, code="E001")
    msg = f"unexpected character {ch!r}"
    if ch == ":":
        hint = "a layer is written `name Layer(args)`, without ':'; a setting is written `key value`"
    elif ch == ";":
        hint = "statements need no ';'"
    elif ch == "*" and text[pos: pos + 2] == "**":
        hint = "there is no power operator: write the value, or a product"
    elif ch == "@":
        hint = "decorators are Python, and a spec is data"
    elif ch == "\t":  # pragma: no cover - tabs are whitespace
        hint = None
    elif not ch.isprintable():
        msg = f"unexpected character {ch!r} (U+{ord(ch):04X})" if ch else "unexpected character"
    elif ord(ch) > 127:
        msg = f"unexpected character {ch!r} (U+{ord(ch):04X})"
        hint = "names and operators are ASCII; non-ASCII text goes in strings and comments"
    return SpecError(msg, loc, hint=hint, code="E001")


def _check_text(text: str | bytes) -> str:
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            # line/column of the first bad byte
            before = text[: e.start]
            line = before.count(b"\n") + 1
            col = e.start - (before.rfind(b"\n") + 1) + 1
            raise SpecError("the file is not valid UTF-8 text", Location(line, col),
                            hint="a spec is a UTF-8 text file", code="E003") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    if "\x00" in text:
        idx = text.index("\x00")
        line = text.count("\n", 0, idx) + 1
        col = idx - (text.rfind("\n", 0, idx) + 1) + 1
        raise SpecError("the file holds a NUL byte: it looks binary, not a spec", Location(line, col),
                        hint="a spec is a UTF-8 text file", code="E003")
    if len(text) > MAX_SOURCE_CHARS:
        raise SpecError(f"the spec is {len(text):,} characters long; the limit is {MAX_SOURCE_CHARS:,}",
                        Location(1, 1), code="E003")
    return text


def normalize_source(text: str | bytes) -> str:
    """The text as the parser sees it: UTF-8 decoded, BOM dropped, CRLF and CR turned into LF."""
    text = _check_text(text)
    return text.replace("\r\n", "\n").replace("\r", "\n")


def parse(text: str | bytes, filename: str | None = None) -> Program:
    """Parse spec text into a `Program`. Raises `SpecError` (with file, line and column) on any syntax error."""
    import lark

    src = text
    try:
        text = normalize_source(text)
    except SpecError as e:
        shown = src if isinstance(src, str) else src.decode("utf-8", "replace")
        raise e.attach(filename, shown.replace("\r\n", "\n").replace("\r", "\n"))
    _check_nesting(text, filename)
    try:
        tree = _parser().parse(text)
    except lark.UnexpectedInput as err:
        raise _syntax_error(err, text).attach(filename, text) from None
    except RecursionError:
        raise SpecError("the spec is nested too deeply", Location(1, 1), code="E004").attach(filename, text) from None
    try:
        return _Builder(filename, text).program(tree)
    except SpecError as e:
        raise e.attach(filename, text)
    except RecursionError:
        raise SpecError("the spec is nested too deeply", Location(1, 1), code="E004").attach(filename, text) from None


MAX_NESTING = 100

_NESTING = re.compile(r"#[^\n]*|'[^'\n]*'|\"[^\"\n]*\"|[\[\](){}\n]")


def _check_nesting(text: str, filename: str | None) -> None:
    """Refuse brackets nested deeper than any real spec needs, at the bracket that goes too deep, before the
    parser spends seconds (or Python's recursion limit) on it."""
    depth, line, line_start = 0, 1, 0
    for m in _NESTING.finditer(text):
        tok = m.group()
        if tok == "\n":
            line, line_start = line + 1, m.end()
        elif tok in "([{":
            depth += 1
            if depth > MAX_NESTING:
                col = m.start() - line_start + 1
                raise SpecError(f"brackets are nested more than {MAX_NESTING} deep", Location(line, col, col + 1),
                                hint="flatten the expression or the Sequential nesting", code="E004"
                                ).attach(filename, text)
        elif tok in ")]}":
            depth = max(0, depth - 1)


class _Builder:
    """Walks Lark's tree into dataclasses. Hand-written rather than a Transformer so that positions are explicit."""

    def __init__(self, filename: str | None, text: str):
        self.filename = filename
        self.text = text

    def program(self, tree) -> Program:
        prog = Program()
        for node in tree.children:
            kind = node.data
            loc = _loc_of(node.meta)
            if kind == "network":
                self._once(prog.network_loc, "network", loc)
                prog.network, prog.network_loc = str(node.children[0]), _tok(node.children[0])
            elif kind == "input":
                self._once(prog.input_loc, "input", loc)
                tok = node.children[0]
                prog.input_loc = Location(tok.line, tok.column, tok.end_column)
                dims = tuple(_int(p, prog.input_loc) for p in str(tok).split("x"))
                if not all(1 <= d <= MAX_INPUT_DIM for d in dims):
                    raise SpecError(f"the input size {tok} has a dimension "
                                    f"{'of 0' if 0 in dims else f'over {MAX_INPUT_DIM:,}'}", prog.input_loc,
                                    hint=f"channels, height and width are each 1 to {MAX_INPUT_DIM:,}: input 3x32x32",
                                    code="E013")
                prog.input = dims  # type: ignore[assignment]
            elif kind == "const":
                name_tok = node.children[0]
                name = str(name_tok)
                self._plain(name, _tok(name_tok), "a constant")
                if name in prog.consts:
                    first = prog.consts[name].loc
                    raise SpecError(f"constant {name!r} is defined twice (first at line {first.line})", _tok(name_tok),
                                    hint="remove one definition, or use --set NAME=VALUE to override", code="E010")
                prog.consts[name] = ConstDef(name, self.expr(node.children[1]), _tok(name_tok))
            elif kind == "block_def":
                b = self.block_def(node)
                if b.name in prog.blocks:
                    raise SpecError(f"block {b.name!r} is defined twice", b.name_loc, code="E010")
                prog.blocks[b.name] = b
            elif kind == "layers":
                self._once(prog.layers_loc, "layers", loc)
                prog.layers, prog.layers_loc = self.items(node.children), loc
            elif kind == "forward":
                self._once(prog.forward_loc, "forward", loc)
                prog.forward, prog.forward_loc = tuple(self.step(c) for c in node.children), loc
            elif kind == "train":
                self._once(prog.train_loc, "train", loc)
                prog.train, prog.train_loc = tuple(self.setting(c) for c in node.children), loc
            else:  # pragma: no cover - the grammar has no other top-level rule
                raise AssertionError(kind)
        return prog

    @staticmethod
    def _once(previous: Location | None, what: str, loc: Location) -> None:
        if previous is not None:
            raise SpecError(f"a second `{what}` section (the first is at line {previous.line})",
                            Location(loc.line, loc.column, loc.column + len(what)),
                            hint="merge the two sections into one", code="E010")

    @staticmethod
    def _plain(name: str, loc: Location, what: str) -> None:
        if "{" in name:
            raise SpecError(f"{what} name cannot hold a {{...}} template", loc,
                            hint="templates such as conv{i} name layers, not constants, blocks or variables",
                            code="E011")

    def block_def(self, node) -> BlockDef:
        name_tok, *rest = node.children
        name = str(name_tok)
        self._plain(name, _tok(name_tok), "a block")
        params: list[Param] = []
        items = []
        for c in rest:
            if c is None:
                continue
            if getattr(c, "data", None) == "param":
                ptok, default = c.children
                pname = str(ptok)
                self._plain(pname, _tok(ptok), "a parameter")
                if any(p.name == pname for p in params):
                    raise SpecError(f"parameter {pname!r} is listed twice", _tok(ptok), code="E010")
                if default is None and any(p.default is not None for p in params):
                    raise SpecError(f"parameter {pname!r} without a default follows one with a default", _tok(ptok),
                                    hint="put parameters with defaults last, as in Python", code="E010")
                params.append(Param(pname, None if default is None else self.expr(default), _tok(ptok)))
            else:
                items.append(c)
        return BlockDef(name, tuple(params), self.items(items), _loc_of(node.meta), _tok(name_tok))

    def items(self, nodes) -> tuple[Item, ...]:
        return tuple(self.item(n) for n in nodes if n is not None)

    def item(self, node) -> Item:
        kind = node.data
        if kind == "named":
            name_tok, body = node.children
            return Named(Template(str(name_tok), _tok(name_tok)), self.body(body), _loc_of(node.meta))
        if kind == "repeat":
            var, start, _range, stop, *body = node.children
            self._plain(str(var), _tok(var), "a repeat variable")
            return Repeat(str(var), self.expr(start), self.expr(stop), self.items(body), _loc_of(node.meta), _tok(var))
        return self.body(node)

    def body(self, node) -> Call | Composite:
        if node.data == "call":
            return self.call(node)
        loc = _loc_of(node.meta)
        if node.data == "sequential":
            return Composite("Sequential", self.items(node.children), loc)
        if node.data == "residual":
            children = [c for c in node.children]
            shortcut = None
            if children and getattr(children[-1], "data", None) == "shortcut_body":
                shortcut = self.items(children[-1].children)
                children = children[:-1]
            elif children and children[-1] is None:
                children = children[:-1]
            return Composite("Residual", self.items(children), loc, shortcut)
        raise AssertionError(node.data)  # pragma: no cover

    def call(self, node) -> Call:
        name_tok, *args = node.children
        name = str(name_tok)
        self._plain(name, _tok(name_tok), "a layer or block")
        out: list[Arg] = []
        seen_keyword = False
        for a in args:
            if a is None:
                continue
            if a.data == "positional":
                if seen_keyword:
                    raise SpecError("a positional argument follows a keyword argument", _loc_of(a.meta),
                                    hint=f"write positional arguments first, as in Python: {name}(16, kernel_size=3), "
                                         f"or name this one", code="E031")
                out.append(Arg(None, self.expr(a.children[0]), _loc_of(a.meta)))
            else:
                ktok, v = a.children
                seen_keyword = True
                out.append(Arg(str(ktok), self.expr(v), _loc_of(a.meta), _tok(ktok)))
        return Call(name, tuple(out), _loc_of(node.meta), _tok(name_tok))

    def step(self, node):
        kind = node.data
        if kind == "step":
            tok = node.children[0]
            return Step(Template(str(tok), _tok(tok)), _tok(tok))
        if kind == "residual_step":
            tok = node.children[0]
            return Step(Template(str(tok), _tok(tok)), _loc_of(node.meta), residual=True)
        var, start, _range, stop, *body = node.children
        self._plain(str(var), _tok(var), "a repeat variable")
        return Repeat(str(var), self.expr(start), self.expr(stop), tuple(self.step(c) for c in body),
                      _loc_of(node.meta), _tok(var))

    def setting(self, node) -> Setting:
        ktok, v = node.children
        return Setting(str(ktok), self.expr(v), _loc_of(node.meta), _tok(ktok))

    _BINOPS = {"add": "+", "sub": "-", "mul": "*", "floordiv": "//", "truediv": "/", "mod": "%"}

    def expr(self, node) -> Expr:
        import lark

        if isinstance(node, lark.Token):  # pragma: no cover - every terminal is wrapped by an alias
            raise AssertionError(node)
        kind = node.data
        loc = _loc_of(node.meta)
        if kind == "int":
            return Num(_int(str(node.children[0]), loc), loc)
        if kind == "float":
            return Num(float(node.children[0]), loc)
        if kind == "string":
            return Str(str(node.children[0])[1:-1], loc)
        if kind == "true":
            return Const(True, loc)
        if kind == "false":
            return Const(False, loc)
        if kind == "none":
            return Const(None, loc)
        if kind == "ref":
            return Ref(str(node.children[0]), loc)
        if kind == "call":
            return self.call(node)
        if kind in self._BINOPS:
            left, *mid, right = node.children
            op_loc = _span(mid[0]) if mid else None
            return BinOp(self._BINOPS[kind], self.expr(left), self.expr(right), loc, op_loc)
        if kind == "neg":
            return Neg(self.expr(node.children[0]), loc)
        if kind == "tuple":
            return TupleExpr(tuple(self.expr(c) for c in node.children if c is not None), loc)
        if kind == "list":
            return ListExpr(tuple(self.expr(c) for c in node.children if c is not None), loc)
        raise AssertionError(kind)  # pragma: no cover


def _int(text: str, loc: Location) -> int:
    # Python refuses to convert integers of over 4,300 digits; anything past 19 digits is too large here anyway
    if len(text) > 19:
        raise SpecError(f"this integer is too large ({len(text):,} digits)", loc, code="E022")
    return int(text)


def did_you_mean(name: str, choices) -> str | None:
    """A `did you mean 'X'?` hint for a misspelt name (or `'X' or 'Y'` when two are about as close), or None."""
    choices = list(choices)
    lowered = {c.lower(): c for c in choices}
    if name.lower() in lowered and lowered[name.lower()] != name:
        return f"did you mean {lowered[name.lower()]!r}?"
    # a name with letters left out (RandomFlip for RandomHorizontalFlip) is a subsequence of what was meant
    longer = [c for c in choices if len(name) >= 4 and len(c) > len(name) and _subsequence(name.lower(), c.lower())]
    if 1 <= len(longer) <= 2:
        longer.sort(key=lambda c: -difflib.SequenceMatcher(None, name, c).ratio())
        ratios = [difflib.SequenceMatcher(None, name, c).ratio() for c in longer]
        if len(longer) == 2 and ratios[0] - ratios[1] >= 0.1:
            longer = longer[:1]
        return "did you mean " + " or ".join(repr(c) for c in longer) + "?"
    close = difflib.get_close_matches(name, choices, n=2, cutoff=0.6)
    if not close:
        return None
    if len(close) == 2:
        ratio = [difflib.SequenceMatcher(None, name, c).ratio() for c in close]
        if ratio[0] - ratio[1] < 0.1:
            return f"did you mean {close[0]!r} or {close[1]!r}?"
    return f"did you mean {close[0]!r}?"


def _subsequence(short: str, long: str) -> bool:
    it = iter(long)
    return all(ch in it for ch in short)
