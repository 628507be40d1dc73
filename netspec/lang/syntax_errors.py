"""Lark's syntax errors turned into located, readable `SpecError`s: what was expected, which bracket is never
closed, which keyword cannot be a name, what a Python word is doing in a spec.

`syntax_error` tries a list of rules in order, each a small function that recognises one kind of mistake from what
the parser had read (`_Failure`) and returns its error, or None; the last resort is the parser's own "unexpected
X, expected ..." message.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import lark

from ..errors import Location, SpecError
from .brackets import (
    CLOSERS,
    OPENERS,
    SECTION_TOKENS,
    Opened,
    closes_at,
    open_delimiters,
    owner,
    section,
    unclosed_brace,
)
from .grammar import parser
from .layers import LAYERS

# How a terminal is named in "expected ..." hints; keywords and punctuation are shown as written.
_TERMINAL_NAMES = {
    "NAME": "a name",
    "INT": "an integer",
    "FLOAT": "a number",
    "STRING": "a string",
    "SIZE": "a size such as 3x32x32",
    "$END": "the end of the file",
}
_VALUE_STARTS = {"NAME", "INT", "FLOAT", "STRING", "LPAR", "LSQB", "MINUS", "PLUS", "TRUE", "FALSE", "NONE"}

# Words of Python that a spec may be mistaken for: a spec is data and never runs code.
_PYTHON_WORDS = frozenset(
    "import from lambda def class exec eval return print with global async await while for if else elif try "
    "except raise del assert".split()
)
_NOT_PYTHON = "a spec is data: nothing in it is run as Python, imported or looked up"


def _span(tok: Any) -> Location:
    """A token's place, the caret spanning its text."""
    value = str(tok)
    end = tok.column + len(value) if value and "\n" not in value else None
    return Location(tok.line, tok.column, end)


def _terminal_text(name: str) -> str | None:
    if name in _TERMINAL_NAMES:
        return _TERMINAL_NAMES[name]
    try:
        term = parser().get_terminal(name)
    except KeyError:
        return None
    if term.pattern.type == "str":
        return repr(term.pattern.value)
    return {"SLASH": "'/'", "RANGE": "'..'"}.get(name)


def _describe_expected(expected: set[str]) -> str:
    names = sorted({t for t in (_terminal_text(e) for e in expected) if t})
    # keywords and punctuation first, then the classes of tokens ("a name", "an integer")
    names.sort(key=lambda n: (not n.startswith("'"), n))
    if not names:
        return ""
    if len(names) > 8:
        names = names[:8] + ["..."]
    return "expected " + ", ".join(names)


def _value_stack(err: lark.UnexpectedInput) -> list[Any]:
    """What the LALR parser had read when it failed: tokens and finished subtrees, innermost last."""
    try:
        return list(err.interactive_parser.parser_state.value_stack)
    except AttributeError:
        return []


def _line_start(text: str, line: int, column: int) -> bool:
    """Whether only spaces come before this column on its line."""
    lines = text.split("\n")
    return 1 <= line <= len(lines) and not lines[line - 1][: column - 1].strip()


def _after(text: str, tok: Any) -> str:
    """The text just after a token (spaces skipped), to tell `name=` from `name(`."""
    pos = getattr(tok, "end_pos", None)
    if pos is None:
        return ""
    return text[pos : pos + 40].lstrip(" \t")


# ---------------------------------------------------------------------------------------------------------------
# The entry point and its rules
# ---------------------------------------------------------------------------------------------------------------


def syntax_error(err: lark.UnexpectedInput, text: str) -> SpecError:
    """Turn a Lark UnexpectedInput into one SpecError with a friendly message where the mistake is a known one."""
    line = getattr(err, "line", None)
    col = getattr(err, "column", None)
    if not isinstance(line, int) or line < 1:
        # the end of the file: point just past the last character
        lines = text.split("\n")
        while len(lines) > 1 and not lines[-1].strip():
            lines.pop()
        line, col = len(lines), len(lines[-1].rstrip()) + 1
    loc = Location(line, col or 1)
    if isinstance(err, lark.UnexpectedCharacters):
        return _unexpected_character(err, text, loc)
    if not isinstance(err, lark.UnexpectedToken):  # pragma: no cover - LALR raises only these two
        return SpecError(str(err).splitlines()[0], loc, code="E002")
    f = _Failure.of(err, text, loc)
    for rule in _RULES:
        found = rule(f)
        if found is not None:
            return found
    return f.error()


@dataclass
class _Failure:
    """What the parser had read when it failed on `tok`."""

    err: lark.UnexpectedToken
    text: str
    tok: Any  # the token it could not take
    stack: list[Any]  # the value stack: tokens and finished subtrees, innermost last
    last_tok: Any  # the last thing read, when it is a token
    opened: Opened
    expected: set[str]
    expected_text: str  # "expected ..." or ""
    section: str | None
    eof_loc: Location  # just past the last character, for an error at the end of the file

    @classmethod
    def of(cls, err: lark.UnexpectedToken, text: str, loc: Location) -> _Failure:
        stack = _value_stack(err)
        last = stack[-1] if stack else None
        opened = open_delimiters(stack)
        return cls(
            err,
            text,
            err.token,
            stack,
            last if isinstance(last, lark.Token) else None,
            opened,
            set(err.expected),
            _describe_expected(set(err.expected)),
            section(opened),
            loc,
        )

    @property
    def loc(self) -> Location:
        return _span(self.tok)

    @property
    def last_type(self) -> str | None:
        return None if self.last_tok is None else self.last_tok.type

    def error(self, hint: str | None = None, message: str | None = None) -> SpecError:
        """`unexpected X` at the token, with `hint` (default: what was expected)."""
        return SpecError(
            message or f"unexpected {str(self.tok)!r}", self.loc, hint=hint or self.expected_text or None, code="E002"
        )


Rule = Callable[[_Failure], SpecError | None]


def _python_word(f: _Failure) -> SpecError | None:
    """Python where a spec was expected: `import os`, `from torch import nn`, `def f(x):`."""
    for tok in (f.tok, f.last_tok):
        if tok is not None and tok.type == "NAME" and str(tok) in _PYTHON_WORDS:
            return SpecError(f"{str(tok)!r} is not part of the language", _span(tok), hint=_NOT_PYTHON, code="E002")
    return None


def _end_of_file(f: _Failure) -> SpecError | None:
    if f.tok.type != "$END":
        return None
    if f.opened and f.opened[-1][0].type == "LBRACE":
        found = unclosed_brace(f.text, f.opened, len(f.text), None)
        if found is not None:
            brace, before = found
            return SpecError(
                f"unexpected end of file: this '{{'{brace.owner} is never closed",
                _span(brace.tok),
                hint="add the missing '}'" + (f" before line {before}" if before else ""),
                code="E002",
            )
    if f.opened:
        opener, prev = f.opened[-1]
        return SpecError(
            f"unexpected end of file: this '{opener}'{owner(prev)} is never closed",
            _span(opener),
            hint=f"add the missing '{CLOSERS[opener.type]}'",
            code="E002",
        )
    return SpecError("unexpected end of file", f.eof_loc, hint=f.expected_text or None, code="E002")


def _closes_nothing(f: _Failure) -> SpecError | None:
    if f.tok.type in OPENERS and not any(o.type == OPENERS[f.tok.type] for o, _ in f.opened):
        return SpecError(
            f"this '{f.tok}' closes nothing",
            f.loc,
            hint=f"remove it, or add the '{CLOSERS[OPENERS[f.tok.type]]}' it is meant to close",
            code="E002",
        )
    return None


def _in_brackets(f: _Failure) -> SpecError | None:
    """Inside ( ) or [ ]: a ',' missing between arguments or items, or a bracket never closed."""
    if not ({"RPAR", "RSQB"} & f.expected) or not f.opened or f.opened[-1][0].type not in ("LPAR", "LSQB"):
        return None
    opener, prev = f.opened[-1]
    in_call = isinstance(prev, lark.Token) and prev.type == "NAME" and opener.type == "LPAR"
    missing_comma = f"unexpected {str(f.tok)!r}: a ',' is missing before it"
    if in_call and f.tok.type == "NAME" and _after(f.text, f.tok).startswith("=") and "COMMA" in f.expected:
        hint = "arguments are separated by commas: Conv2d(16, kernel_size=3, padding=1)"
        return SpecError(missing_comma, f.loc, hint=hint, code="E002")
    if f.tok.line > opener.line and _line_start(f.text, f.tok.line, f.tok.column):
        return SpecError(
            f"this '{opener}'{owner(prev)} is never closed",
            _span(opener),
            hint=f"add the missing '{CLOSERS[opener.type]}' before line {f.tok.line}",
            code="E002",
        )
    if f.tok.type in _VALUE_STARTS and "COMMA" in f.expected:
        hint = "arguments and items are separated by commas: (3, 3)"
        return SpecError(missing_comma, f.loc, hint=hint, code="E002")
    return None


def _brace_never_closed(f: _Failure) -> SpecError | None:
    """A line where the parser would have taken a '}', and cannot take what follows (`train {`, `x = 1`)."""
    if not any(o.type == "LBRACE" for o, _ in f.opened) or not closes_at(f.err, f.tok.line):
        return None
    found = unclosed_brace(f.text, f.opened, f.tok.start_pos, f.tok.line)
    if found is None:
        return None
    brace, before = found
    return SpecError(
        f"this '{{'{brace.owner} is never closed",
        _span(brace.tok),
        hint=f"add the missing '}}' before line {before or f.tok.line}",
        code="E002",
    )


_SETTING_EXAMPLES = {"data": "cifar10", "epochs": "10", "batch_size": "128", "seed": "0"}
_LAYER_SECTIONS = ("layers", "block", "Sequential", "Residual", "shortcut", "repeat")


def _equal_sign(f: _Failure) -> SpecError | None:
    """An '=' where a spec takes none: a setting, a layer, or a keyword used as a constant's name."""
    if f.tok.type != "EQUAL":
        return None
    last = f.last_tok
    if f.section == "train":
        key = f.stack[-2] if len(f.stack) >= 2 and f.last_type == "NAME" else None
        key = str(key) if isinstance(key, lark.Token) and key.type == "NAME" else None
        if key == "normalize":
            return f.error("write normalize Normalize(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))")
        if key == "optimizer":
            return f.error(f"arguments go inside the optimizer's call: optimizer SGD({last}=...)")
        if key is not None:
            return f.error(f"keyword arguments go inside a call: {key} Name({last}=...)")
        example = _SETTING_EXAMPLES.get(str(last), "...")
        return f.error(f"a setting is written `key value`, without '=': {last or 'epochs'} {example}")
    if f.section in _LAYER_SECTIONS:
        name = last if f.last_type == "NAME" else "name"
        return f.error(
            f"a layer is written `name Layer(args)`, without '=': {name} Conv2d(...); "
            f"constants are defined at the top level"
        )
    if f.last_type in ("NETWORK", "INPUT", "LAYERS", "FORWARD", "TRAIN", "BLOCK"):
        return SpecError(
            f"{str(last)!r} is a keyword and cannot name a constant",
            _span(last),
            hint="choose another name",
            code="E002",
        )
    return f.error()


def _after_keyword(f: _Failure) -> SpecError | None:
    """What follows `Sequential`, `input`, `network` or forward's `residual` is not what they take."""
    if f.tok.type == "LPAR" and f.last_type in ("SEQUENTIAL", "RESIDUAL", "SHORTCUT"):
        word = str(f.last_tok)
        return f.error(f"{word} holds its layers in braces: {word} {{ Conv2d(16, 3) ReLU() }}")
    if f.last_type == "INPUT":
        return f.error("the input size is written CxHxW, without spaces: input 3x32x32")
    if f.last_type == "NETWORK":
        return f.error("a network's name is one word: network CifarNet")
    if f.last_tok is not None and f.last_type != "NAME" and str(f.last_tok) == "residual":  # `forward`'s keyword
        return f.error("`residual NAME` runs x + NAME(x): name a declared layer after it")
    return None


def _operator_or_brace(f: _Failure) -> SpecError | None:
    if f.tok.type == "SLASH":
        return f.error("integer division is written //")
    if f.tok.type == "LBRACE":
        return f.error(
            "a '{' here needs a keyword before it: Sequential { ... }, Residual { ... }, repeat i in 1..3 { ... }"
        )
    return None


def _missing_parentheses(f: _Failure) -> SpecError | None:
    """`relu1 ReLU` followed by the next line: the call's parentheses are missing."""
    if "LPAR" in f.expected and "NAME" not in f.expected and f.last_type == "NAME":
        word = str(f.last_tok)
        return SpecError(
            f"{word!r} needs parentheses",
            _span(f.last_tok),
            hint=f"a layer is always called: {word}(), even without arguments",
            code="E002",
        )
    return None


def _top_level_word(f: _Failure) -> SpecError | None:
    """A top-level word that does not start `name = value`: the word is the mistake, not what follows it."""
    if f.section is not None or f.opened or f.last_type != "NAME" or "EQUAL" not in f.expected:
        return None
    before: Any = f.stack[-2] if len(f.stack) >= 2 else None
    while getattr(before, "data", "").startswith("__") and before.children:  # Lark's helper for `_item*`
        before = before.children[-1]
    if getattr(before, "data", None) == "network":
        hint = "a network's name is one word: network CifarNet"
    elif f.tok.type == "NAME" and _after(f.text, f.tok).startswith("("):
        hint = "layers are written inside the `layers { ... }` section"
    else:
        hint = "at the top level, a line is `network NAME`, `input CxHxW`, a constant `name = value`, a block, or a section"
    return SpecError(f"unexpected {str(f.last_tok)!r}", _span(f.last_tok), hint=hint, code="E002")


def _missing_value(f: _Failure) -> SpecError | None:
    if f.tok.type in ("RPAR", "RSQB", "COMMA") and f.last_type == "EQUAL":
        return f.error("a value is missing after '='")
    if (
        f.tok.type in ("COMMA", "RPAR")
        and f.last_type in ("COMMA", "LPAR", "LSQB")
        and not (f.tok.type == "RPAR" and f.last_type == "LPAR")
    ):
        return f.error("a value is missing before it")
    return None


def _power_or_tuple(f: _Failure) -> SpecError | None:
    if f.tok.type == "STAR" and f.text[getattr(f.tok, "end_pos", 0) :][:1] == "*":
        return SpecError(
            "unexpected '**'",
            Location(f.tok.line, f.tok.column, f.tok.column + 2),
            hint="there is no power operator: write the value, or a product such as 2 * 2 * 2",
            code="E002",
        )
    if f.tok.type == "COMMA" and "RPAR" not in f.expected and "RSQB" not in f.expected:
        return f.error("a tuple needs parentheses: (3, 3)")
    return None


def _keyword_as_name(f: _Failure) -> SpecError | None:
    before = f.stack[-2] if len(f.stack) >= 2 else None
    if f.tok.type == "LPAR" and isinstance(before, lark.Token) and before.type == "REPEAT":
        # `repeat Conv2d(...)`: `repeat` meant as a layer's name
        return SpecError(
            "'repeat' is a keyword and cannot name a layer",
            _span(before),
            hint="choose another name, or write a repetition: repeat i in 1..3 { ... }",
            code="E002",
        )
    value = str(f.tok)
    if (
        f.tok.type in SECTION_TOKENS
        or f.tok.type in ("NETWORK", "INPUT", "IN")
        or (f.tok.type != "NAME" and value == "residual")
    ):
        expected = f.expected_text + "; " if f.expected_text else ""
        return SpecError(
            f"unexpected keyword {value!r}",
            f.loc,
            hint=f"{expected}{value!r} is a keyword here and cannot be a name",
            code="E002",
        )
    return None


_RULES: tuple[Rule, ...] = (
    _python_word,
    _end_of_file,
    _closes_nothing,
    _in_brackets,
    _brace_never_closed,
    _equal_sign,
    _after_keyword,
    _operator_or_brace,
    _missing_parentheses,
    _top_level_word,
    _missing_value,
    _power_or_tuple,
    _keyword_as_name,
)


def _unexpected_character(err: lark.UnexpectedCharacters, text: str, loc: Location) -> SpecError:
    pos = err.pos_in_stream or 0
    ch = text[pos] if pos < len(text) else ""
    hint = None
    if ch in ('"', "'"):
        end = text.find("\n", pos)
        end = len(text) if end < 0 else end
        return SpecError(
            "unterminated string",
            Location(loc.line, loc.column, loc.column + (end - pos)),
            hint=f"close it with {ch} on the same line: strings are written on one line",
            code="E001",
        )
    if ch == ".":
        lo, hi = pos, pos
        while lo > 0 and (text[lo - 1].isalnum() or text[lo - 1] in "_."):
            lo -= 1
        while hi < len(text) and (text[hi].isalnum() or text[hi] in "_."):
            hi += 1
        word = text[lo:hi]
        if re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+", word):
            last = word.rsplit(".", 1)[1]
            if last in LAYERS:
                fix = f"write the layer's own name: {last}(...)"
            else:
                fix = "layers, optimizers and transforms are written by their own names, such as Conv2d(...)"
            return SpecError(
                f"dotted names such as {word!r} are not part of the language",
                Location(loc.line, loc.column - (pos - lo), loc.column + (hi - pos)),
                hint=f"a spec is data: nothing is imported or looked up by a dotted path; {fix}",
                code="E001",
            )
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
    elif ch == "*" and text[pos : pos + 2] == "**":
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
