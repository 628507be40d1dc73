"""The brackets the parser had open when it failed, and which '{' is never closed.

The parser pairs each '}' with the innermost open '{', so a '}' left out surfaces later: at the end of the file, or
at a line the open brace cannot hold (`train {` inside `layers`). As in Python, indentation tells which block was
meant to end: a '}' that starts a line less indented than its '{' lines up with an outer brace, so the '{' it was
paired with is the one left open; and a line at (or left of) an open '{'s indentation, where the parser would have
taken a '}', is where that '{' should have been closed. Where indentation says nothing (a body not indented), the
error stays the parser's.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import lark

from .grammar import parser

# the keywords that open a section or a composite with '{'
SECTION_TOKENS = {
    "LAYERS": "layers",
    "FORWARD": "forward",
    "TRAIN": "train",
    "BLOCK": "block",
    "SEQUENTIAL": "Sequential",
    "RESIDUAL": "Residual",
    "SHORTCUT": "shortcut",
    "REPEAT": "repeat",
}


CLOSERS = {"LPAR": ")", "LBRACE": "}", "LSQB": "]"}  # an opening bracket's token -> its closer
OPENERS = {"RPAR": "LPAR", "RBRACE": "LBRACE", "RSQB": "LSQB"}  # a closing bracket's token -> its opener's

Opened = list[tuple[Any, Any]]  # ('(' '{' '[' token, the token before it)


def open_delimiters(stack: list[Any]) -> Opened:
    """The '(' '{' '[' tokens read but not yet closed, outermost first, each with the token before it."""
    opened: Opened = []
    prev = None
    for item in stack:
        if isinstance(item, lark.Token):
            if item.type in CLOSERS:
                opened.append((item, prev))
            elif item.type in OPENERS and opened and opened[-1][0].type == OPENERS[item.type]:
                opened.pop()
        prev = item
    return opened


def owner(prev: Any) -> str:
    """`of layers`, `of Conv2d(...)` for the token read before an opening delimiter, or ''."""
    if not isinstance(prev, lark.Token):
        return ""
    if prev.type in SECTION_TOKENS:
        return f" of `{prev}`"
    if prev.type == "NAME":
        return f" of {prev}"
    return ""


def section(opened: Opened) -> str | None:
    """The innermost section or composite the parser is in: 'layers', 'train', 'Sequential', ... or None."""
    for tok, prev in reversed(opened):
        if tok.type == "LBRACE":
            if isinstance(prev, lark.Token) and prev.type in SECTION_TOKENS:
                return SECTION_TOKENS[prev.type]
            return "block" if isinstance(prev, lark.Token) and prev.type == "RPAR" else "repeat"
    return None


class Brace(NamedTuple):
    tok: Any  # the '{' token
    indent: int  # the indentation of the line its statement starts on
    owner: str  # " of `layers`", " of block b", ...


def _indent(line: str) -> int:
    """The width of a line's indentation, a tab to the next multiple of 8 as Python counts it."""
    line = line.expandtabs(8)
    return len(line) - len(line.lstrip(" "))


def _brace_owner(toks: list[Any], i: int) -> str:
    """` of `layers``, ` of block b`, ` of `repeat`` for the '{' at toks[i], or ''."""
    prev = toks[i - 1] if i else None
    if prev is not None and prev.type in SECTION_TOKENS:
        return f" of `{prev}`"
    depth = 0
    for j in range(i - 1, -1, -1):  # back to the start of the statement, over balanced parentheses
        t = toks[j]
        depth += {"RPAR": 1, "LPAR": -1}.get(t.type, 0)
        if depth == 0 and t.type in ("LBRACE", "RBRACE"):
            break
        if depth == 0 and t.type == "REPEAT":
            return " of `repeat`"
        if depth == 0 and t.type == "BLOCK" and j + 1 < i and toks[j + 1].type == "NAME":
            return f" of block {toks[j + 1]}"
    return ""


def _braces(text: str, lines: list[str], first: Any, end: int) -> tuple[list[Brace], Brace | None]:
    """Between the outermost '{' still open (`first`) and offset `end`: the '{'s open at `end`, outermost first, and
    the first '{' that a '}' closed from the start of a line less indented than the '{'s line."""
    # lexed from the start of first's line (any line start is between tokens: strings and comments end with
    # their line), after as many newlines, so that lines and columns are the file's
    start = text.rfind("\n", 0, first.start_pos) + 1
    try:
        toks: list[Any] = list(parser().lex("\n" * (first.line - 1) + text[start:end]))
    except lark.UnexpectedInput:  # the parser read this text, so it lexes; should it not, the braces are unknown
        return [], None
    stack: list[Brace] = []
    mismatched: list[Brace] = []
    parens, indent, line = 0, 0, 0
    for i, t in enumerate(toks):
        if t.line != line:
            line = t.line
            if parens == 0:  # a line continuing a ( ) keeps the indentation of the line that opened it
                indent = _indent(lines[line - 1])
        if t.type in ("LPAR", "LSQB"):
            parens += 1
        elif t.type in ("RPAR", "RSQB"):
            parens = max(0, parens - 1)
        elif t.type == "LBRACE":
            stack.append(Brace(t, indent, _brace_owner(toks, i)))
        elif t.type == "RBRACE" and stack:
            opener = stack.pop()
            at = _indent(lines[line - 1])
            starts_line = not lines[line - 1][: t.column - 1].strip()
            if starts_line and at < opener.indent and any(b.indent <= at for b in stack):
                mismatched.append(opener)
    return stack, (mismatched[0] if mismatched else None)


def _dedent_line(lines: list[str], brace: Brace, upto: int) -> int | None:
    """The first line after the brace's, up to line `upto`, indented no more than the brace's line: where its '}'
    belongs. Blank and comment lines are skipped."""
    for n in range(brace.tok.line + 1, min(upto, len(lines)) + 1):
        stripped = lines[n - 1].strip()
        if stripped and not stripped.startswith("#") and _indent(lines[n - 1]) <= brace.indent:
            return n
    return None


def _indented_body(lines: list[str], brace: Brace) -> bool:
    """Whether the first line after the brace's is indented more than it: only then does indentation say anything."""
    for line in lines[brace.tok.line :]:
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            return _indent(line) > brace.indent
    return False


def closes_at(err: lark.UnexpectedInput, line: int) -> bool:
    """Whether the parser, at the start of `line`, would have taken a '}': its state before the tokens and subtrees
    it read on that line (none of them reaches back to an earlier line), fed a '}'."""
    state = getattr(getattr(err, "interactive_parser", None), "parser_state", None)
    if state is None:
        return False
    states, values = list(state.state_stack), list(state.value_stack)
    while values:
        first = values[-1] if isinstance(values[-1], lark.Token) else getattr(values[-1], "meta", None)
        if getattr(first, "line", None) != line:
            break
        values.pop()
        states.pop()
    last = values[-1] if values else None
    last = last if isinstance(last, lark.Token) or last is None else getattr(last, "meta", None)
    if last is not None and (getattr(last, "end_line", None) or 0) >= line:
        return False  # a statement that began on an earlier line goes on on this one
    try:
        type(state)(state.parse_conf, state.lexer, states, values).feed_token(lark.Token("RBRACE", "}"))
    except lark.UnexpectedInput:
        return False
    return True


def unclosed_brace(text: str, opened: Opened, end: int, line: int | None) -> tuple[Brace, int | None] | None:
    """The '{' most likely left open, and the line its '}' belongs before, for an error at offset `end` on `line`
    (None: at the end of the file), given the parser's open delimiters. None where indentation does not tell."""
    first = next((o for o, _ in opened if o.type == "LBRACE"), None)
    if first is None:
        return None
    lines = text.split("\n")
    stack, suspect = _braces(text, lines, first, end)
    if not stack:
        return None
    at = None if line is None else _indent(lines[line - 1])
    if suspect is not None and (at is None or suspect.indent >= at):
        pick = suspect
    elif at is None:
        pick = stack[-1]
    else:
        fits = [b for b in stack if b.indent >= at and _indented_body(lines, b)]
        if not fits:
            return None
        pick = fits[-1]
    return pick, _dedent_line(lines, pick, len(lines) if line is None else line)
