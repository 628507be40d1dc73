"""The layout rules of `netspec fmt`: Lark's tree of a spec, every token kept, -> a `doc` document.

Every token of the tree is written once, in order, with the spacing of its rule; the text between tokens (spaces and
comments, which the grammar ignores) is read back from the source, so every comment is kept where it was: one at
the end of a line stays after the token it followed, one on a line of its own stays above the token it preceded, at
that token's indentation. Blank lines are kept, at most one in a row, none just inside braces, and one around every
top-level section.

What stays as the author wrote it, read from the source (which keeps `fmt` idempotent):
- which statements share a line (`drop fc1 relu` in `forward`, `a = 1  b = 2`), while the line fits;
- a `{ ... }` written on one line (`Sequential { Linear(8)  ReLU() }`), while it fits and holds no comment;
- in `forward { }`, one space or two between steps on a line (`ff_1 relu  ff_2 relu`);
- a hyphenated word in a train setting (`data tiny-imagenet`), which the grammar reads as a subtraction.
Everything else is decided here: 4 spaces per level; the names of consecutive declarations (named layers, train
settings, constants' `=`) aligned; three or more consecutive uses of one block with the same kinds of arguments as a
table; calls and brackets broken where a line is over 100 columns (see `doc`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lark import Token, Tree

from .doc import BLANK, HARD, SOFT, SPACE, Doc, Fill, Group, Nest, Own, Suffix, width
from .fmt_rules import STATEMENTS, first_token, kids, last_token

PAGE = 100

_Item = tuple[bool, str]  # (is a comment, its text); (False, "") is a blank line
_BLANK: _Item = (False, "")
_BINARY = {"or_", "and_", "compare", "add", "sub", "mul", "floordiv", "truediv", "mod"}
_BODIES = {"block_def", "module_def", "layers", "forward", "flow", "train", "sequential", "residual", "repeat"}
_BODIES |= {"repeat_steps", "repeat_stmts_flow", "if_items", "if_stmts"}
_SECTIONS = {"block_def", "module_def", "layers", "forward", "flow", "train"}
_STEPS = {"step", "residual_step", "repeat_steps"}


class Layout:
    """One spec's tokens, the comments and blank lines between them, and the rules that lay them out."""

    def __init__(self, source: str, tree: Tree[Token]):
        self.tree = tree
        self.toks: list[Token] = sorted(
            tree.scan_values(lambda v: isinstance(v, Token)), key=lambda t: t.start_pos or 0
        )
        self.at = {t.start_pos: i for i, t in enumerate(self.toks)}
        n = len(self.toks)
        self.before: list[list[_Item]] = [[] for _ in range(n + 1)]  # [n]: after the last token
        self.after: list[str | None] = [None] * n
        self.led: set[int] = set()  # tokens whose comments above were written as the start of a statement
        self.used: set[int] = set()
        self.words = False  # in a train setting's value, where a bare word may hold hyphens
        self._read_gaps(source)

    def _read_gaps(self, source: str) -> None:
        end = 0
        for i in range(len(self.toks) + 1):
            start = self.toks[i].start_pos if i < len(self.toks) else len(source)
            segments = source[end:start].split("\n")
            if i == 0:
                own = segments if i == len(self.toks) else segments[:-1]
            else:
                tail = segments[0].strip()
                if tail:
                    self.after[i - 1] = tail
                own = segments[1:] if i == len(self.toks) else segments[1:-1]
            for s in own:
                item = (True, s.strip()) if s.strip() else _BLANK
                if item == _BLANK and self.before[i][-1:] == [_BLANK]:
                    continue
                self.before[i].append(item)
            if i < len(self.toks):
                end = self.toks[i].end_pos  # type: ignore[assignment]

    # ---- tokens ----------------------------------------------------------------------------------------------
    def idx(self, t: Token) -> int:
        return self.at[t.start_pos or 0]

    def tok(self, t: Token, suffix: bool = True) -> Doc:
        """A token, the comments on lines of their own above it (unless its statement wrote them) and the comment
        after it on its line."""
        i = self.idx(t)
        self.used.add(i)
        out: list[Doc] = [] if i in self.led else [Own(text) for is_c, text in self.before[i] if is_c]
        out.append(str(t))
        if suffix and self.after[i]:
            out.append(Suffix(self.after[i] or ""))
        return out

    def drop(self, t: Token) -> Doc:
        """A token left out (a trailing comma): its comments only."""
        i = self.idx(t)
        self.used.add(i)
        out: list[Doc] = [Own(text) for is_c, text in self.before[i] if is_c]
        return out + ([Suffix(self.after[i] or "")] if self.after[i] else [])

    def quiet(self, node: Any, upto: Any = None, one_line: bool = True) -> bool:
        """Whether `node` (through `upto`) is on one line of the source (unless not `one_line`), with no comment
        inside or above its tokens after the first; one after its last token may follow."""
        a, b = self.idx(first_token(node)), self.idx(last_token(upto if upto is not None else node))
        if one_line and self.toks[a].line != self.toks[b].line:
            return False
        inside = any(is_c for j in range(a + 1, b + 1) for is_c, _ in self.before[j])
        return not inside and all(self.after[j] is None for j in range(a, b))

    # ---- the file and its statements -------------------------------------------------------------------------
    def document(self) -> Doc:
        items = kids(self.tree)
        out = self.lines(items, 0)
        out += self.closing(len(self.toks), keep_first_blank=bool(items))
        return out

    def lines(self, items: Sequence[Any], level: int, braces: tuple[Token, Token] | None = None) -> list[Doc]:
        """Statements of one level (in `braces`, or the file's), one line (or one run of statements) after another,
        with their comments above them and the blank lines between them."""
        self.led.update(self.idx(first_token(node)) for node in items)  # their comments are written by `leading`
        top = braces is None
        units = self.units(items, level, braces)
        pads = self.pads(units, level)
        rows = self.tables(units, level)
        out: list[Doc] = []
        for u, unit in enumerate(units):
            section = top and u > 0 and any(n.data in _SECTIONS for n in (*unit, *units[u - 1]))
            if u or not top:
                out.append(HARD)
            out += self.leading(unit[0], first=u == 0, blank=section)
            if len(unit) > 1:
                out.append(self.run(unit, level))
            elif u in rows:
                out.append(self.row(unit[0], rows[u]))
            else:
                node = unit[0]
                flat = self.has_body(node) and self.quiet(node)
                flat = flat and self.fits(self.stmt(node, level, True, pads[u]), level)
                out.append(self.stmt(node, level, flat, pads[u]))
        return out

    def units(self, items: Sequence[Any], level: int, braces: tuple[Token, Token] | None) -> list[list[Any]]:
        """The statements in lines: those that shared a line of the source share one, if it fits (and if that line
        was not the line of a brace: a body on one line that does not fit has one statement a line)."""
        edges = {braces[0].line, braces[1].line} if braces else set()
        runs: list[list[Any]] = []
        for node in items:
            if runs and first_token(node).line == last_token(runs[-1][-1]).line:
                runs[-1].append(node)
            else:
                runs.append([node])
        out: list[list[Any]] = []
        for run in runs:
            inside = first_token(run[0]).line not in edges and last_token(run[-1]).line not in edges
            if len(run) > 1 and inside and self.quiet(run[0], run[-1]) and self.fits(self.run(run, level), level):
                out.append(run)
            else:
                out += [[node] for node in run]
        return out

    def run(self, unit: list[Any], level: int) -> Doc:
        out: list[Doc] = []
        for j, node in enumerate(unit):
            if j:
                out.append(self.between(unit[j - 1], node))
            out.append(self.stmt(node, level, True))
        return out

    def between(self, a: Any, b: Any) -> str:
        """Two spaces between statements on a line; between steps of a `forward`, one or two as written."""
        if a.data in _STEPS and b.data in _STEPS:
            gap = first_token(b).start_pos - last_token(a).end_pos  # type: ignore[operator]
            return "  " if gap >= 2 else " "
        return "  "

    @staticmethod
    def fits(doc: Doc, level: int) -> bool:
        return level * 4 + width(doc) <= PAGE

    def leading(self, node: Any, first: bool, blank: bool) -> list[Doc]:
        """The comments above a statement and the blank lines around them (one before a top-level section)."""
        items = list(self.before[self.idx(first_token(node))])
        if blank and items[:1] != [_BLANK]:
            items.insert(0, _BLANK)
        while first and items[:1] == [_BLANK]:
            items.pop(0)
        return [Own(text) if is_c else BLANK for is_c, text in items]

    def closing(self, i: int, keep_first_blank: bool) -> list[Doc]:
        """The comments above a closing brace (or the end of the file), at the level of what they follow."""
        items = list(self.before[i])
        self.led.add(i)
        while items[-1:] == [_BLANK]:
            items.pop()
        if not keep_first_blank and items[:1] == [_BLANK]:
            items.pop(0)
        return [Own(text) if is_c else BLANK for is_c, text in items]

    def pads(self, units: list[list[Any]], level: int) -> list[int | None]:
        """The spaces after the name of each declaration, so that consecutive ones (no blank line between them)
        of one kind line up: named layers and settings two spaces after the longest name, constants' `=`. A named
        `Sequential { ... }` on one line takes part while it fits the line (else it is laid out on its own)."""
        keys = [self.key(unit[0], level) if len(unit) == 1 else None for unit in units]
        while True:
            pads = self.columns(units, keys)
            wide = [
                u
                for u, unit in enumerate(units)
                if keys[u] and self.has_body(unit[0]) and not self.fits(self.stmt(unit[0], level, True, pads[u]), level)
            ]
            if not wide:
                return pads
            for u in wide:
                keys[u] = None

    def columns(self, units: list[list[Any]], keys: list[tuple[str, int] | None]) -> list[int | None]:
        pads: list[int | None] = [None] * len(units)
        u = 0
        while u < len(units):
            key = keys[u]
            if key is None:
                u += 1
                continue
            v = u + 1
            while v < len(units) and (k := keys[v]) and k[0] == key[0] and _BLANK not in self.before_of(units[v][0]):
                v += 1
            column = max(k[1] for k in keys[u:v] if k is not None)
            for w in range(u, v):
                kw = keys[w]
                assert kw is not None
                pads[w] = column - kw[1] + (1 if kw[0] == "const" else 2)
            u = v
        return pads

    def tables(self, units: list[list[Any]], level: int) -> dict[int, list[int]]:
        """Three or more consecutive uses of one block or layer, each on a line of its own with arguments of the same
        kinds (the same keywords in the same places), as a table: `stage(6,  24, 2, 2)` over `stage(6, 160, 3, 2)`. The
        column widths of each row of a table, by unit; none where a row would not fit."""
        sig = [self.signature(unit[0]) if len(unit) == 1 else None for unit in units]
        out: dict[int, list[int]] = {}
        u = 0
        while u < len(units):
            v = u + 1
            while v < len(units) and sig[u] and sig[v] == sig[u] and _BLANK not in self.before_of(units[v][0]):
                v += 1
            if v - u >= 3:
                widths = self.column_widths([unit[0] for unit in units[u:v]])
                if all(self.fits(self.row(unit[0], widths), level) for unit in units[u:v]):
                    out.update((w, widths) for w in range(u, v))
            u = v
        return out

    def column_widths(self, calls: list[Tree[Token]]) -> list[int]:
        """Each column's width: negative for one aligned to the right (numbers, but in the first column)."""
        rows = [self.args(call) for call in calls]
        widths = []
        for c, column in enumerate(zip(*rows)):
            w = max(width(self.expr(a)) for a in column)
            widths.append(-w if c and all(self.number(a) for a in column) else w)
        return widths

    def signature(self, node: Tree[Token]) -> tuple[str, ...] | None:
        """What makes uses the rows of one table: the name called, and each argument's keyword or ''."""
        if node.data != "call" or not self.quiet(node, one_line=False):
            return None
        return (str(kids(node)[0]), *(str(kids(a)[0]) if a.data == "keyword" else "" for a in self.args(node)))

    @staticmethod
    def args(call: Tree[Token]) -> list[Tree[Token]]:
        return [a for a in kids(call)[2:-1] if isinstance(a, Tree)]

    @staticmethod
    def number(arg: Tree[Token]) -> bool:
        value = kids(arg)[0]
        while isinstance(value, Tree) and value.data == "neg":
            value = kids(value)[1]
        return isinstance(value, Tree) and value.data in ("integer", "decimal")

    def row(self, call: Tree[Token], widths: list[int]) -> Doc:
        """A call as a row of its table: each argument and its comma padded to the column's width."""
        k = kids(call)
        values = self.args(call)
        commas = [c for c in k[2:-1] if isinstance(c, Token)]
        out: list[Doc] = [self.tok(k[0]), self.tok(k[1])]
        for n, (value, w) in enumerate(zip(values, widths)):
            cell = self.expr(value)
            pad = " " * (abs(w) - width(cell))
            if n == len(values) - 1:  # the last: a trailing comma left out
                out += [pad if w < 0 else "", cell, *(self.drop(c) for c in commas[n:])]
            else:
                out += [pad, cell, self.tok(commas[n]), " "] if w < 0 else [cell, self.tok(commas[n]), pad, " "]
        return out + [self.tok(k[-1])]

    def before_of(self, node: Any) -> list[_Item]:
        return self.before[self.idx(first_token(node))]

    def key(self, node: Tree[Token], level: int) -> tuple[str, int] | None:
        """The kind and width of what a declaration aligns on: a named layer's name (with `kept` and its size), a
        setting's key, a constant's name. A named composite only when it is laid out on one line on its own."""
        k = kids(node)
        if node.data in ("setting", "const"):
            return node.data, len(k[0])
        if node.data not in ("named", "kept"):
            return None
        if self.has_body(node) and not (self.quiet(node) and self.fits(self.stmt(node, level, True), level)):
            return None
        if node.data == "kept":
            return "named", sum(len(c) + 1 for c in k[:-1]) + len(kids(k[-1])[0])
        return "named", len(k[0])

    @staticmethod
    def has_body(node: Tree[Token]) -> bool:
        if node.data in ("named", "kept"):
            return Layout.has_body(kids(node)[-1])
        return node.data in _BODIES

    # ---- one statement ---------------------------------------------------------------------------------------
    def stmt(self, node: Tree[Token], level: int, flat: bool, pad: int | None = None) -> Doc:
        """A statement at `level`: on one line when `flat`; `pad`, the spaces after a declaration's name."""
        rule = STATEMENTS.get(node.data)
        if rule is not None:
            return rule(self, kids(node), level, flat, pad)
        return self.expr(node)  # a layer's call, or a block's or module's use

    def body(self, items: list[Any], open_: Token, close: Token, level: int, flat: bool) -> Doc:
        """`{ ... }`: on one line when `flat`, else one level in; `{ }` when empty."""
        i, j = self.idx(open_), self.idx(close)
        empty = not items and self.after[i] is None and not any(is_c for is_c, _ in self.before[j])
        if empty:
            return [self.tok(open_), " ", self.tok(close)]
        if flat:
            inner: list[Doc] = []
            for n, node in enumerate(items):
                inner += [self.between(items[n - 1], node)] if n else []
                inner.append(self.stmt(node, level + 1, True))
            return [self.tok(open_), " ", inner, " ", self.tok(close)]
        inside = self.lines(items, level + 1, (open_, close)) + self.closing(j, keep_first_blank=bool(items))
        return [self.tok(open_), Nest(inside), HARD, self.tok(close)]

    # ---- values ----------------------------------------------------------------------------------------------
    def expr(self, node: Any) -> Doc:
        if isinstance(node, Token):
            return self.tok(node)
        k, rule = kids(node), node.data
        if rule in _BINARY:
            space = "" if rule == "sub" and self.hyphenated(k) else " "
            return [self.expr(k[0]), space, self.tok(k[1]), space, self.expr(k[2])]
        if rule == "not_":
            return [self.tok(k[0]), " ", self.expr(k[1])]
        if rule in ("neg", "unary"):
            return [self.tok(k[0]), self.expr(k[1])]
        if rule == "index":
            return [self.expr(k[0]), self.tok(k[1]), self.expr(k[2]), self.tok(k[3])]
        if rule in ("atom", "tuple_expr", "list_expr"):
            return self.bracket(k[0], k[1:-1], k[-1], singleton=rule == "tuple_expr")
        if rule == "call":
            return [self.tok(k[0]), self.bracket(k[1], k[2:-1], k[-1])]
        if rule in ("keyword", "param") and len(k) == 3:  # name=value, no spaces
            return [self.tok(k[0]), self.tok(k[1]), self.expr(k[2])]
        assert len(k) == 1, rule  # integer, decimal, string, true, false, none, ref, positional, a bare param
        return self.expr(k[0])

    def hyphenated(self, k: list[Any]) -> bool:
        """Whether `a-b` is a hyphenated word of a train setting (`data tiny-imagenet`, `cifar-10`), written without
        spaces: it stays so."""
        left, minus, right = k
        tight = last_token(left).end_pos == minus.start_pos and minus.end_pos == first_token(right).start_pos
        return self.words and tight and left.data in ("ref", "sub") and right.data in ("ref", "integer")

    def bracket(self, open_: Token, inner: list[Any], close: Token, singleton: bool = False) -> Doc:
        """`(a, b)`, `[a, b]`, a call's arguments: on one line if they fit, else on the lines after the bracket, one
        level in, as many on a line as fit, and the closing bracket on a line of its own. No trailing comma, but
        the one of a tuple of one item."""
        values = [c for c in inner if isinstance(c, Tree)]
        commas = [c for c in inner if isinstance(c, Token)]
        if not values:
            return [self.tok(open_), *(self.drop(c) for c in commas), self.tok(close)]
        parts: list[Doc] = []
        for n, value in enumerate(values):
            if n:
                parts.append(SPACE)
            part = [self.expr(value)]
            if n < len(commas):
                keep = n < len(values) - 1 or (singleton and len(values) == 1)
                part.append(self.tok(commas[n]) if keep else self.drop(commas[n]))
            parts.append(part)
        after = self.after[self.idx(close)]
        group = Group([self.tok(open_), Nest([SOFT, Fill(tuple(parts))]), SOFT, self.tok(close, suffix=False)])
        return [group, Suffix(after)] if after else group


def layout(source: str, tree: Tree[Token]) -> Doc:
    """The document of a spec (its source as the parser read it, and Lark's tree of it with every token kept)."""
    lay = Layout(source, tree)
    doc = lay.document()
    missing = set(range(len(lay.toks))) - lay.used
    assert not missing, f"tokens left out: {[str(lay.toks[i]) for i in sorted(missing)]}"
    return doc
