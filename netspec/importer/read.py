"""Step 1: the text `print(model)` writes -> a tree of `PNode`s, with the line and column of everything in it.

A small recursive-descent reader. Nesting is read from the parentheses, not the indentation (pasted and paginated
text loses its indentation), and arguments are read one by one with `ast.literal_eval`: nothing is evaluated. The
indentation, where the text kept it, only says where a bracket was left open. Every print format since PyTorch 0.2 is
read: `Sequential (` and `ReLU (inplace)` with a space, 0.2's `Linear (400 -> 120)`, and the bare flags of 1.1 and
older (`ReLU(inplace)`); the old names of arguments are `convert`'s.
"""

from __future__ import annotations

import ast
import re
import warnings
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from ..errors import Location, SpecError

MAX_TEXT_CHARS = 1_000_000
MAX_DEPTH = 100


@dataclass
class PArg:
    """One printed argument: `key` is None for a positional one."""

    key: str | None
    value: Any
    loc: Location


@dataclass(eq=False)
class PNode:
    """One module as printed: a leaf (`args` set) or a container (`children`).

    The reader fills in what the text says; `convert` fills in what the spec will write (`path`, `anonymous`,
    `spec_args`, `printed`, `shortcut`).
    """

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

    def leaves(self) -> Iterator[PNode]:
        if self.is_leaf:
            yield self
        else:
            for c in self.children:
                yield from c.leaves()

    def what(self) -> str:
        return f"{self.cls} {self.path!r}" if self.path else self.cls


def normalize_text(text: str | bytes, filename: str | None) -> str:
    """The text as the reader sees it: UTF-8 decoded, BOM dropped, LF line ends, tabs as one space; checked for
    size and for binary content."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise SpecError("the text is not valid UTF-8", Location(1, 1), code="E200", filename=filename) from None
    text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n").expandtabs(1)
    if len(text) > MAX_TEXT_CHARS:
        raise SpecError(
            f"the text is {len(text):,} characters long; the limit is {MAX_TEXT_CHARS:,}",
            Location(1, 1),
            code="E200",
            filename=filename,
        )
    if "\x00" in text:
        raise SpecError("the text holds a NUL byte: it looks binary", Location(1, 1), code="E200", filename=filename)
    return text


_ARROW = re.compile(r"\s*(\d+)\s*->\s*(\d+)\s*")  # PyTorch 0.2's Linear: `Linear (400 -> 120)`
_FLAG = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*")  # a bare word: `inplace`, as PyTorch 1.1 and older print it


def _unquoted(text: str, start: int, stop: int) -> Iterator[tuple[int, str, int]]:
    """The characters of text[start:stop] outside quotes, each with the depth of brackets it stands in."""
    depth, quote, i = 0, None, start
    while i < stop:
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        else:
            yield i, ch, depth
            depth += (ch in "([{") - (ch in ")]}")
        i += 1


def _segments(text: str) -> list[tuple[int, int]]:
    """The spans of `text` between its commas outside brackets and quotes."""
    cuts = [i for i, ch, depth in _unquoted(text, 0, len(text)) if ch == "," and depth == 0]
    bounds = [-1, *cuts, len(text)]
    return [(a + 1, b) for a, b in pairwise(bounds)]


@dataclass
class _Bracket:
    """A container's '(' (a position in the text), and the ')' the reader closed it with (None while open)."""

    cls: str
    open: int
    close: int | None = None


class Reader:
    """A recursive-descent reader for `Class(args)` / `Class(\\n (name): Class(...) ... \\n)` in normalized text."""

    _IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
    _COUNT = re.compile(r"(\d+) x ")
    _WORD = re.compile(r"\S+")

    def __init__(self, text: str, filename: str | None):
        self.text = text
        self.filename = filename
        self.line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
        self.brackets: list[_Bracket] = []  # every container's brackets, in the order they open

    def loc(self, pos: int, end: int | None = None) -> Location:
        line = bisect_right(self.line_starts, pos)
        col = pos - self.line_starts[line - 1] + 1
        end_col = None if end is None else col + max(1, end - pos)
        return Location(line, col, end_col)

    def error(self, message: str, pos: int, *, code: str, hint: str | None = None, end: int | None = None) -> SpecError:
        """An error at position `pos` (to `end`) of the text."""
        return self.error_at(message, self.loc(min(pos, len(self.text)), end), hint=hint, code=code)

    def error_at(self, message: str, loc: Location | None, *, code: str, hint: str | None = None) -> SpecError:
        """An error at `loc` in the text (None: about the text as a whole)."""
        return SpecError(message, loc, hint=hint, code=code, filename=self.filename, source=self.text)

    def skip_ws(self, pos: int) -> int:
        while pos < len(self.text) and self.text[pos] in " \t\n":
            pos += 1
        return pos

    def skip_blank(self, pos: int) -> int:
        while pos < len(self.text) and self.text[pos] in " \t":
            pos += 1
        return pos

    def read(self) -> PNode:
        """The whole text: one module, with nothing after it."""
        pos = self.skip_ws(0)
        if pos >= len(self.text):
            raise self.error(
                "no module here: expected text as print(model) writes it, e.g. `Net(` ... `)`", 0, code="E201"
            )
        root, end = self.module(pos, "", None, 0)
        rest = self.skip_ws(end)
        if rest < len(self.text):
            closed = self.loc(end - 1)
            raise self.error(
                f"text after the end of the printed module ({root.cls} closes at line {closed.line})",
                rest,
                hint="a stray ')' may have closed the module early (a page break in the copied text?): remove it",
                code="E201",
            )
        return root

    def module(self, pos: int, name: str, name_loc: Location | None, depth: int) -> tuple[PNode, int]:
        """The module printed at `pos`, and the position after its closing ')'."""
        text = self.text
        if depth > MAX_DEPTH:
            raise self.error("the printed module is nested too deeply", pos, code="E201")
        m = self._IDENT.match(text, pos)
        if not m:
            raise self.error("expected a module such as `Conv2d(...)`", pos, end=self._word_end(pos), code="E201")
        cls = m.group()
        node = PNode(name, cls, self.loc(pos, m.end()), name_loc)
        p = self.skip_blank(m.end())  # PyTorch 0.2 and 0.3 print `Sequential (` and `ReLU (inplace)`
        if p >= len(text) or text[p] != "(":
            raise self.error(f"expected '(' after {cls}", m.end(), code="E201")
        q = self.skip_blank(p + 1)
        if q < len(text) and text[q] != "\n":
            return self.leaf(node, p)
        return self.container(node, p, q, depth)

    def container(self, node: PNode, open_pos: int, pos: int, depth: int) -> tuple[PNode, int]:
        """A container's `(name): Module(...)` lines, from its '(' at `open_pos` up to its closing ')'."""
        text = self.text
        bracket = _Bracket(node.cls, open_pos)
        self.brackets.append(bracket)
        while True:
            pos = self.skip_ws(pos)
            if pos >= len(text):
                raise self.unclosed(node)
            c = text[pos]
            if c == ")":
                bracket.close = pos
                return node, pos + 1
            if c != "(":
                raise self.error(
                    f"expected `(name): Module(...)` or the ')' that closes {node.cls}(",
                    pos,
                    end=self._word_end(pos),
                    code="E201",
                )
            child, pos = self.child(pos, depth)
            node.children.append(child)

    def unclosed(self, node: PNode) -> SpecError:
        """The text ends inside `node`: said where the indentation shows a bracket was left open, else at the end."""
        left = self.left_open()
        if left is not None:
            bracket, line = left
            return self.error(
                f"{bracket.cls}( is not closed: by the indentation it ends before line {line}, where its ')' is missing",
                bracket.open,
                hint="print(model) prints a module's ')' on a line of its own, indented as the line that opens it",
                code="E201",
            )
        return self.error(
            f"the text ends inside {node.cls}( opened at line {node.loc.line}: a ')' is missing",
            len(self.text.rstrip()),
            hint="the printed text looks cut short",
            code="E201",
        )

    def left_open(self) -> tuple[_Bracket, int] | None:
        """The first container closed by a ')' that, by the indentation, is not its own, and the line its lines end
        before. print(model) indents a container's children deeper than its own line and its ')' as deep; text that
        lost its indentation says nothing (None)."""
        if not self._indented():
            return None
        for bracket in self.brackets:
            if bracket.close is None:  # still open where the text ends: an inner one took its ')'
                continue
            line = self.loc(bracket.open).line
            indent = self._indent(line) or 0  # the line that opens the bracket is never blank
            closed_at = self.loc(bracket.close).line
            for k in range(line + 1, len(self.line_starts) + 1):
                ind = self._indent(k)
                if ind is None or ind > indent:
                    continue
                if k != closed_at or ind != indent:
                    return bracket, k
                break
        return None

    def _indent(self, line: int) -> int | None:
        """The indentation of a line (1-based), None for a blank one."""
        start = self.line_starts[line - 1]
        end = self.line_starts[line] - 1 if line < len(self.line_starts) else len(self.text)
        body = self.text[start:end]
        return None if not body.strip() else len(body) - len(body.lstrip(" "))

    def _indented(self) -> bool:
        """Whether the text kept its indentation: a line after the first is indented deeper than the first."""
        first = self.loc(self.skip_ws(0)).line
        top = self._indent(first) or 0
        return any((self._indent(k) or 0) > top for k in range(first + 1, len(self.line_starts) + 1))

    def child(self, pos: int, depth: int) -> tuple[PNode, int]:
        """`(name): Module(...)` or `(0-3): 4 x Module(...)` at `pos`."""
        text = self.text
        eol = text.find("\n", pos)
        eol = len(text) if eol < 0 else eol
        close = text.find(")", pos, eol)
        if close < 0:
            raise self.error("expected `(name): Module(...)`: the child name is not closed", pos, code="E201")
        child_name = text[pos + 1 : close]
        child_loc = self.loc(pos + 1, close)
        r = close + 1
        if r >= len(text) or text[r] != ":":
            raise self.error(f"expected ':' after ({child_name})", r, code="E201")
        r = self.skip_blank(r + 1)
        count = 1
        mc = self._COUNT.match(text, r)
        if mc:
            count = int(mc.group(1))
            r = mc.end()
        child, end = self.module(r, child_name, child_loc, depth + 1)
        child.count = count
        return child, end

    def _word_end(self, pos: int) -> int:
        m = self._WORD.match(self.text, pos)
        return m.end() if m else pos + 1

    def leaf(self, node: PNode, open_pos: int) -> tuple[PNode, int]:
        """`Class(args)` on one line: find the matching ')' (quotes and brackets respected) and read the args."""
        text = self.text
        eol = text.find("\n", open_pos)
        for i, ch, depth in _unquoted(text, open_pos + 1, len(text) if eol < 0 else eol):
            if depth == 0 and ch in ")]}":
                if ch != ")":
                    raise self.error(f"unmatched {ch!r} in the arguments of {node.cls}", i, code="E202")
                node.args = self.arguments(node, text[open_pos + 1 : i], open_pos + 1)
                return node, i + 1
        raise self.error(
            f"the arguments of {node.cls}( are not closed on their line",
            open_pos,
            hint="the printed text looks cut short, or a line was broken in two",
            code="E201",
        )

    def _pos(self, src: str, base: int, col: int) -> int:
        # ast's columns count UTF-8 bytes; the whole call is on line 1 of `src`
        return base + len(src.encode()[:col].decode(errors="ignore")) - 2

    def arguments(self, node: PNode, args_text: str, base: int) -> list[PArg]:
        """The arguments between the parentheses, read as the arguments of a Python call `f(...)`; and the forms of
        older PyTorch: 0.2's `Linear (400 -> 120)`, and the bare flags of 1.1 and older (`ReLU(inplace)`,
        `LeakyReLU(negative_slope=0.2, inplace)`), which are set to True."""
        arrow = _ARROW.fullmatch(args_text)
        if arrow:
            return [PArg(None, int(arrow[k]), self.loc(base + arrow.start(k), base + arrow.end(k))) for k in (1, 2)]
        args_text, flags = self._flags(args_text, base)
        return self._call_arguments(node, args_text, base) + flags

    def _flags(self, args_text: str, base: int) -> tuple[str, list[PArg]]:
        """The bare words among the arguments, as flags set to True, and the text with them blanked out (so the
        columns of the rest stay where they are printed)."""
        chars = list(args_text)
        flags: list[PArg] = []
        for start, end in _segments(args_text):
            m = _FLAG.fullmatch(args_text, start, end)
            if not m or m[1] in ("True", "False", "None"):
                continue
            flags.append(PArg(m[1], True, self.loc(base + m.start(1), base + m.end(1))))
            comma = end if end < len(args_text) else start - 1  # its comma: the one after it, else before it
            for k in [*range(start, end), *([comma] if comma >= 0 else [])]:
                chars[k] = " "
        return "".join(chars), flags

    def _call_arguments(self, node: PNode, args_text: str, base: int) -> list[PArg]:
        """The arguments read as those of a Python call `f(...)`, each with `ast.literal_eval`."""
        src = f"f({args_text})"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # SyntaxWarning for `1x`: the SyntaxError that may follow is ours
                tree = ast.parse(src, mode="eval")
        except SyntaxError as e:
            col = max(0, min((e.offset or 1) - 3, len(args_text)))
            raise self.error(f"cannot read the arguments of {node.cls}: {e.msg}", base + col, code="E202") from None
        except (RecursionError, MemoryError, ValueError):
            raise self.error(f"cannot read the arguments of {node.cls}", base, code="E202") from None
        call = tree.body
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "f"):
            raise self.error(f"cannot read the arguments of {node.cls}", base, code="E202")
        out: list[PArg] = []
        for a in call.args:
            if isinstance(a, ast.Starred):
                raise self.error(
                    f"cannot read the arguments of {node.cls}", self._pos(src, base, a.col_offset), code="E202"
                )
            out.append(PArg(None, self.literal(node, a, src, base), self._arg_loc(src, base, a)))
        for kw in call.keywords:
            if kw.arg is None:
                raise self.error(
                    f"cannot read the arguments of {node.cls}", self._pos(src, base, kw.col_offset), code="E202"
                )
            out.append(PArg(kw.arg, self.literal(node, kw.value, src, base), self._arg_loc(src, base, kw)))
        return out

    def _arg_loc(self, src: str, base: int, a: ast.expr | ast.keyword) -> Location:
        start = self._pos(src, base, a.col_offset)
        end = self._pos(src, base, a.end_col_offset) if a.end_col_offset is not None else None
        return self.loc(start, end)

    def literal(self, node: PNode, a: ast.expr, src: str, base: int) -> Any:
        """One argument's value: a Python literal, or a bare word as a string."""
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
            code="E202",
        )
