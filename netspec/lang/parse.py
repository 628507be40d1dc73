"""Stage 1: text -> syntax tree.

The grammar lives in `grammar.lark` (its parser: `grammar`). The text is checked first (UTF-8, no NUL, a length and
a bracket depth a spec can have); Lark's exceptions are turned into `SpecError` here, at the boundary, so no later
stage ever sees a Lark type (`syntax_errors` words them). `builder` turns Lark's tree into the syntax tree.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

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


def parse_tree(text: str | bytes, filename: str | None = None) -> tuple[str, lark.Tree[lark.Token]]:
    """The text as the parser reads it, and Lark's tree of it with every token kept (keywords and punctuation too),
    for a tool that lays the text out again (`netspec fmt`). The text is parsed by `parse` first, so a mistake is
    the same located `SpecError`; the tree is the same grammar's."""
    parse(text, filename)
    source = normalize_source(text)
    tree = parser(keep_all_tokens=True).parse(source, start="start", on_error=_KeywordAsName(source))
    return source, tree


def _parse(text: str) -> Program:
    try:
        tree = parser().parse(text, start="start", on_error=_KeywordAsName(text))
    except lark.UnexpectedInput as err:
        from .syntax_errors import syntax_error  # imported only for a spec with a mistake

        raise syntax_error(err, text) from None
    program: Program = transform(Builder(), tree)
    return program


# The words that begin a top-level item. They stay names everywhere else, but the LALR tables merge the lookaheads of
# the expression states of a top-level constant (which one of these may follow) with those of a module's value or a
# layer's call, so after `hidden = 4` or `a Conv2d(4, 1)` Lark's contextual lexer reads them as keywords.
_TOP_LEVEL_WORDS = frozenset({"network", "input", "block", "module", "layers", "forward", "train"})
_SPACE = re.compile(r"(?:\s|#[^\n]*)*")
_TOKEN = re.compile(r"[A-Za-z_]\w*|\d+|'[^'\n]*'|\"[^\"\n]*\"|.", re.S)


class _KeywordAsName:
    """Lark's `on_error` for such a keyword where only a name can stand (`block Sequential { ... }`, torchvision's
    name, after a module's value): it is read as the name. When the parse then fails at one of the next two tokens,
    the keyword was no name (`network N2` in `layers`, `forward {` after a missing `}`): the keyword's own error
    stands."""

    def __init__(self, text: str):
        self.text = text
        self.pending: tuple[lark.UnexpectedToken, Any, tuple[int, ...]] | None = None

    def __call__(self, err: lark.UnexpectedInput) -> bool:
        if self.pending is not None:
            first, state, soon = self.pending
            self.pending = None
            token = getattr(err, "token", None)
            at = getattr(token, "start_pos", None) if token is not None else getattr(err, "pos_in_stream", None)
            if (at if at is not None else len(self.text)) in soon:
                first.interactive_parser = state  # as it was when the keyword failed, for syntax_errors
                raise first
            return False
        if not isinstance(err, lark.UnexpectedToken):
            return False
        tok = err.token
        if tok.type == "NAME" or str(tok) not in _TOP_LEVEL_WORDS or "NAME" not in err.expected:
            return False
        live: Any = err.interactive_parser
        state = live.copy()  # the parser as it failed, for the keyword's error if that is what stands
        live.feed_token(lark.Token.new_borrow_pos("NAME", str(tok), tok))
        self.pending = (err, state, self.next_tokens(tok.end_pos, 2))
        return True

    def next_tokens(self, pos: int, n: int) -> tuple[int, ...]:
        """Where the next `n` tokens after `pos` start (roughly, as the lexer would read them; the end of the text
        counts as one)."""
        starts = []
        for _ in range(n):
            pos = _SPACE.match(self.text, pos).end()  # type: ignore[union-attr]
            starts.append(pos)
            m = _TOKEN.match(self.text, pos)
            if m is None:
                break
            pos = m.end()
        return tuple(starts)


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
