"""Step 1: the text `print(model)` writes -> a tree of `PNode`s, with the line and column of everything in it.

A small recursive-descent reader. Nesting is read from the parentheses, not the indentation (pasted and paginated
text loses its indentation), and arguments are read one by one with `ast.literal_eval`: nothing is evaluated.
"""

from __future__ import annotations

import ast
import re
import warnings
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass, field
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


class Reader:
    """A recursive-descent reader for `Class(args)` / `Class(\\n (name): Class(...) ... \\n)` in normalized text."""

    _IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
    _COUNT = re.compile(r"(\d+) x ")
    _WORD = re.compile(r"\S+")

    def __init__(self, text: str, filename: str | None):
        self.text = text
        self.filename = filename
        self.line_starts = [0] + [m.end() for m in re.finditer("\n", text)]

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
        p = m.end()
        if p >= len(text) or text[p] != "(":
            raise self.error(f"expected '(' after {cls}", p, code="E201")
        q = self.skip_blank(p + 1)
        if q < len(text) and text[q] != "\n":
            return self.leaf(node, p)
        return self.container(node, q, depth)

    def container(self, node: PNode, pos: int, depth: int) -> tuple[PNode, int]:
        """A container's `(name): Module(...)` lines, up to its closing ')'."""
        text = self.text
        while True:
            pos = self.skip_ws(pos)
            if pos >= len(text):
                raise self.error(
                    f"the text ends inside {node.cls}( opened at line {node.loc.line}: a ')' is missing",
                    len(text.rstrip()),
                    hint="the printed text looks cut short",
                    code="E201",
                )
            c = text[pos]
            if c == ")":
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
                        raise self.error(f"unmatched {ch!r} in the arguments of {node.cls}", i, code="E202")
                    node.args = self.arguments(node, text[open_pos + 1 : i], open_pos + 1)
                    return node, i + 1
                depth -= 1
            i += 1
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
        """The arguments between the parentheses, read as the arguments of a Python call `f(...)`."""
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
