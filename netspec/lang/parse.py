"""Stage 1: text -> syntax tree.

The grammar lives in `grammar.lark` (its parser: `grammar`). The text is checked first (UTF-8, no NUL, a length and
a bracket depth a spec can have); Lark's exceptions are turned into `SpecError` here, at the boundary, so no later
stage ever sees a Lark type (`syntax_errors` words them). `builder` turns Lark's tree into the syntax tree.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import lark

from ..errors import Location, SpecError, UsageError
from .builder import Builder, transform
from .grammar import parser
from .hints import short
from .syntax import Program

MAX_SOURCE_CHARS = 1_000_000
MAX_NESTING = 100


def _check_text(text: str | bytes) -> str:
    if isinstance(text, bytes):
        raw = text
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            # line/column of the first bad byte
            before = raw[: e.start]
            line = before.count(b"\n") + 1
            col = e.start - (before.rfind(b"\n") + 1) + 1
            raise SpecError(
                "the file is not valid UTF-8 text", Location(line, col), hint="a spec is a UTF-8 text file", code="E003"
            ) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    if "\x00" in text:
        idx = text.index("\x00")
        line = text.count("\n", 0, idx) + 1
        col = idx - (text.rfind("\n", 0, idx) + 1) + 1
        raise SpecError(
            "the file holds a NUL byte: it looks binary, not a spec",
            Location(line, col),
            hint="a spec is a UTF-8 text file",
            code="E003",
        )
    if len(text) > MAX_SOURCE_CHARS:
        raise SpecError(
            f"the spec is {len(text):,} characters long; the limit is {MAX_SOURCE_CHARS:,}", Location(1, 1), code="E003"
        )
    return text


def read_spec(path: str | os.PathLike[str]) -> tuple[bytes, str]:
    """A spec file's bytes and its name; a UsageError when it cannot be read."""
    p = Path(path)
    try:
        return p.read_bytes(), str(p)
    except FileNotFoundError:
        raise UsageError(f"{p}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{p}: is a directory, not a spec file") from None
    except OSError as e:  # also a name no file can have (too long, say): shown cut to a line
        raise UsageError(f"{short(str(p))}: cannot read ({e.strerror})") from None


def normalize_source(text: str | bytes) -> str:
    """The text as the parser sees it: UTF-8 decoded, BOM dropped, CRLF and CR turned into LF."""
    return _check_text(text).replace("\r\n", "\n").replace("\r", "\n")


def parse(text: str | bytes, filename: str | None = None) -> Program:
    """Parse spec text into a `Program`. Raises `SpecError` (with file, line and column) on any syntax error."""
    try:
        source = normalize_source(text)
    except SpecError as e:
        shown = text if isinstance(text, str) else text.decode("utf-8", "replace")
        raise e.attach(filename, shown.replace("\r\n", "\n").replace("\r", "\n")) from None
    try:
        _check_nesting(source)
        return _parse(source)
    except SpecError as e:
        raise e.attach(filename, source) from None
    except RecursionError:
        raise SpecError("the spec is nested too deeply", Location(1, 1), code="E004").attach(filename, source) from None


def _name_for_keyword(text: str) -> Callable[[lark.UnexpectedInput], bool]:
    """Where the parser takes a name, a keyword's word is that name (unless a '{' follows it: a section, `train {`,
    in the wrong place). LALR merges the parser's states after a value at the top level and in a module, so after
    `dim = in_channels` in a module the word `block` (a child's name in torchvision's ConvNeXt) was read as the
    keyword that starts a block's definition."""

    def retry(err: lark.UnexpectedInput) -> bool:
        if not isinstance(err, lark.UnexpectedToken) or "NAME" not in err.expected or err.token.type == "NAME":
            return False
        word, end = str(err.token), err.token.end_pos
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", word) or end is None or text[end:].lstrip().startswith("{"):
            return False
        err.interactive_parser.feed_token(lark.Token.new_borrow_pos("NAME", word, err.token))
        return True

    return retry


def _parse(text: str) -> Program:
    try:
        tree = parser().parse(text, start="start", on_error=_name_for_keyword(text))
    except lark.UnexpectedInput as err:
        from .syntax_errors import syntax_error  # imported only for a spec with a mistake

        raise syntax_error(err, text) from None
    program: Program = transform(Builder(), tree)
    return program


_NESTING = re.compile(r"#[^\n]*|'[^'\n]*'|\"[^\"\n]*\"|[\[\](){}\n]")


def _check_nesting(text: str) -> None:
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
                raise SpecError(
                    f"brackets are nested more than {MAX_NESTING} deep",
                    Location(line, col, col + 1),
                    hint="flatten the expression or the Sequential nesting",
                    code="E004",
                )
        elif tok in ")]}":
            depth = max(0, depth - 1)
