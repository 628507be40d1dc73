"""A small pretty-printer of documents (Wadler's "prettier printer", as prettier implements it), for `netspec fmt`.

A document is text, nested lists of documents (concatenation), and a few layout commands: `Line` (a space, or
nothing, when its group is flat; a new line when it breaks), `HARD` (always a new line), `Group` (flat when all of it
fits the rest of the line and holds no forced break, broken otherwise), `Nest` (one more indentation level on its
new lines), `Fill` (items separated by lines that break only where the next item does not fit), and comments:
`Suffix` (an end-of-line comment: no width, and the next text starts a new line) and `Own` (a comment on a line of
its own), `BLANK` (one empty line). `render` lays a document out in a width and returns its lines, each as code and
end-of-line comment; `text_of` joins them, end-of-line comments aligned.
"""

from __future__ import annotations

from dataclasses import dataclass, field

INDENT = 4
TOO_WIDE = 1 << 30  # the width of what cannot be flat


@dataclass(frozen=True)
class Line:
    flat: str = " "  # its text when its group is flat


@dataclass(frozen=True)
class Hard:
    """A new line, always (a blank line when `blank`)."""

    blank: bool = False


@dataclass(frozen=True)
class Suffix:
    text: str


@dataclass(frozen=True)
class Own:
    text: str


@dataclass(frozen=True)
class Nest:
    parts: Doc


@dataclass(frozen=True)
class Group:
    parts: Doc
    broken: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "broken", forces_break(self.parts))


@dataclass(frozen=True)
class Fill:
    parts: tuple[Doc, ...]  # item, separator, item, separator, ..., item


Doc = str | list["Doc"] | Line | Hard | Suffix | Own | Nest | Group | Fill
HARD = Hard()
BLANK = Hard(blank=True)
SOFT = Line("")
SPACE = Line(" ")
_FLAT, _BREAK = 0, 1


def forces_break(doc: Doc) -> bool:
    """Whether a document holds a new line that no layout can avoid (a hard line or a comment)."""
    if isinstance(doc, (Hard, Suffix, Own)):
        return True
    if isinstance(doc, list):
        return any(forces_break(d) for d in doc)
    if isinstance(doc, Group):
        return doc.broken
    if isinstance(doc, Nest):
        return forces_break(doc.parts)
    if isinstance(doc, Fill):
        return any(forces_break(d) for d in doc.parts)
    return False


def width(doc: Doc) -> int:
    """The width of a document laid out flat on one line (comments at the end of it count nothing)."""
    if isinstance(doc, str):
        return len(doc)
    if isinstance(doc, list):
        return sum(width(d) for d in doc)
    if isinstance(doc, Line):
        return len(doc.flat)
    if isinstance(doc, (Hard, Own)):
        return TOO_WIDE
    if isinstance(doc, (Group, Nest)):
        return width(doc.parts)
    if isinstance(doc, Fill):
        return sum(width(d) for d in doc.parts)
    return 0  # Suffix


_Cmd = tuple[int, int, Doc]  # indentation, mode, document


def _fits(first: _Cmd, rest: list[_Cmd], room: int, must_be_flat: bool = False) -> bool:
    """Whether `first` laid out flat, and what follows it up to the next new line, takes at most `room` columns."""
    todo = [first]
    at = len(rest)
    while room >= 0:
        if not todo:
            if must_be_flat or at == 0:
                return True
            at -= 1
            todo.append(rest[at])
            continue
        ind, mode, doc = todo.pop()
        if isinstance(doc, str):
            room -= len(doc)
        elif isinstance(doc, list):
            todo.extend((ind, mode, d) for d in reversed(doc))
        elif isinstance(doc, Line):
            if mode == _BREAK:
                return True
            room -= len(doc.flat)
        elif isinstance(doc, (Hard, Suffix, Own)):
            return True
        elif isinstance(doc, Group):
            if must_be_flat and doc.broken:
                return False
            todo.append((ind, _BREAK if doc.broken else mode, doc.parts))
        elif isinstance(doc, Nest):
            todo.append((ind, mode, doc.parts))
        elif isinstance(doc, Fill):
            todo.extend((ind, mode, d) for d in reversed(doc.parts))
    return False


class _Printer:
    """The lines laid out so far: each as code and its end-of-line comment."""

    def __init__(self, page: int):
        self.page = page
        self.lines: list[tuple[str, str | None]] = []
        self.code = ""
        self.comment: str | None = None
        self.closed = False  # a comment ends the current line: the next text starts a new one

    def newline(self, ind: int) -> None:
        self.lines.append((self.code.rstrip(), self.comment))
        self.code, self.comment, self.closed = " " * ind, None, False

    def text(self, ind: int, s: str) -> None:
        if self.closed:
            if not s.strip():
                return  # spaces before a new line are no part of it
            self.newline(ind)
        self.code += s

    def own(self, ind: int, s: str) -> None:
        if self.code.strip():
            self.newline(ind)
        self.code += s
        self.closed = True

    def suffix(self, s: str) -> None:
        self.comment = s if self.comment is None else f"{self.comment}  {s}"
        self.closed = True

    def blank(self, ind: int) -> None:
        if self.code.strip():
            self.newline(ind)
        self.newline(ind)

    def room(self) -> int:
        return self.page - len(self.code)


def render(doc: Doc, page: int = 100) -> list[tuple[str, str | None]]:
    """Lay `doc` out in `page` columns: its lines, each as (code, end-of-line comment or None)."""
    out = _Printer(page)
    cmds: list[_Cmd] = [(0, _BREAK, doc)]
    while cmds:
        ind, mode, d = cmds.pop()
        if isinstance(d, str):
            if d:
                out.text(ind, d)
        elif isinstance(d, list):
            cmds.extend((ind, mode, x) for x in reversed(d))
        elif isinstance(d, Hard):
            out.blank(ind) if d.blank else out.newline(ind)
        elif isinstance(d, Line):
            out.text(ind, d.flat) if mode == _FLAT else out.newline(ind)
        elif isinstance(d, Suffix):
            out.suffix(d.text)
        elif isinstance(d, Own):
            out.own(ind, d.text)
        elif isinstance(d, Nest):
            cmds.append((ind + INDENT, mode, d.parts))
        elif isinstance(d, Group):
            flat = not d.broken and (mode == _FLAT or _fits((ind, _FLAT, d.parts), cmds, out.room()))
            cmds.append((ind, _FLAT if flat else _BREAK, d.parts))
        elif isinstance(d, Fill):
            cmds.extend(_fill(ind, mode, d, out.room()))
    out.newline(0)
    return out.lines


def _fill(ind: int, mode: int, fill: Fill, room: int) -> list[_Cmd]:
    """The next commands of a fill (prettier's): its first item flat if it fits, the separator after it flat if the
    item after that fits too; the rest of the fill after them."""
    parts = fill.parts
    if not parts:
        return []
    first = parts[0]
    fits = mode == _FLAT or _fits((ind, _FLAT, first), [], room, must_be_flat=True)
    first_cmd = (ind, _FLAT if fits else _BREAK, first)
    if len(parts) == 1:
        return [first_cmd]
    sep, second = parts[1], parts[2]
    both = mode == _FLAT or _fits((ind, _FLAT, [first, sep, second]), [], room, must_be_flat=True)
    rest = (ind, mode, Fill(parts[2:]))
    return [rest, (ind, _FLAT if both else _BREAK, sep), first_cmd]


def text_of(lines: list[tuple[str, str | None]]) -> str:
    """The lines as text, each ending in a newline (no blank lines at the end). End-of-line comments are aligned
    in each stretch of lines of one indentation (no blank line, no comment line in it): two spaces after the
    longest code among the lines that have a comment."""
    out = [code for code, _ in lines]
    i = 0
    while i < len(lines):
        j = i + 1
        while j < len(lines) and _same_stretch(lines[i][0], lines[j][0]):
            j += 1
        stretch = [k for k in range(i, j) if lines[k][1] is not None]
        if stretch:
            column = max(len(lines[k][0]) for k in stretch) + 2
            for k in stretch:
                out[k] = (lines[k][0].ljust(column) if lines[k][0].strip() else lines[k][0]) + (lines[k][1] or "")
        i = j
    while out and not out[-1].strip():
        out.pop()
    return "".join(line + "\n" for line in out)


def _indent(code: str) -> int:
    return len(code) - len(code.lstrip())


def _same_stretch(a: str, b: str) -> bool:
    own_line = (a.strip() == "" or a.lstrip().startswith("#"), b.strip() == "" or b.lstrip().startswith("#"))
    return not any(own_line) and _indent(a) == _indent(b)
