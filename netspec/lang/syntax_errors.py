"""Lark's syntax errors turned into located, readable `SpecError`s: what was expected, which bracket is never
closed, which keyword cannot be a name, what a Python word is doing in a spec. Imported only when a spec does not
parse, so a valid spec never pays for it.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from ..errors import Location, SpecError
from .syntax import parser

# How a terminal is named in "expected ..." hints; keywords and punctuation are shown as written.
_TERMINAL_NAMES = {
    "NAME": "a name",
    "INT": "an integer",
    "FLOAT": "a number",
    "STRING": "a string",
    "SIZE": "a size such as 3x32x32",
    "$END": "the end of the file",
}
_CLOSERS = {"LPAR": ")", "LBRACE": "}", "LSQB": "]"}
_OPENERS = {"RPAR": "LPAR", "RBRACE": "LBRACE", "RSQB": "LSQB"}
_SECTION_TOKENS = {
    "LAYERS": "layers",
    "FORWARD": "forward",
    "TRAIN": "train",
    "BLOCK": "block",
    "SEQUENTIAL": "Sequential",
    "RESIDUAL": "Residual",
    "SHORTCUT": "shortcut",
    "REPEAT": "repeat",
}
_VALUE_STARTS = {"NAME", "INT", "FLOAT", "STRING", "LPAR", "LSQB", "MINUS", "PLUS", "TRUE", "FALSE", "NONE"}

# Words of Python that a spec may be mistaken for: a spec is data and never runs code.
_PYTHON_WORDS = (
    "import",
    "from",
    "lambda",
    "def",
    "class",
    "exec",
    "eval",
    "return",
    "print",
    "with",
    "global",
    "async",
    "await",
    "while",
    "for",
    "if",
    "else",
    "elif",
    "try",
    "except",
    "raise",
    "del",
    "assert",
)


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


def _describe_expected(expected) -> str:
    names = sorted({t for t in (_terminal_text(e) for e in expected) if t})
    # keywords and punctuation first, then the classes of tokens ("a name", "an integer")
    names.sort(key=lambda n: (not n.startswith("'"), n))
    if not names:
        return ""
    if len(names) > 8:
        names = names[:8] + ["..."]
    return "expected " + ", ".join(names)


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
    return text[pos : pos + 40].lstrip(" \t")


# ---- which '{' is never closed: braces and indentation ------------------------------------------------------------
# The parser pairs each '}' with the innermost open '{', so a '}' left out surfaces later: at the end of the file, or
# at a line the open brace cannot hold (`train {` inside `layers`). As in Python, indentation tells which block was
# meant to end: a '}' that starts a line less indented than its '{' lines up with an outer brace, so the '{' it was
# paired with is the one left open; and a line at (or left of) an open '{'s indentation, where the parser would have
# taken a '}', is where that '{' should have been closed. Where indentation says nothing (a body not indented), the
# error stays the parser's.


class _Brace(NamedTuple):
    tok: Any  # the '{' token
    indent: int  # the indentation of the line its statement starts on
    owner: str  # " of `layers`", " of block b", ...


def _indent(line: str) -> int:
    """The width of a line's indentation, a tab to the next multiple of 8 as Python counts it."""
    line = line.expandtabs(8)
    return len(line) - len(line.lstrip(" "))


def _brace_owner(toks: list, i: int) -> str:
    """` of `layers``, ` of block b`, ` of `repeat`` for the '{' at toks[i], or ''."""
    prev = toks[i - 1] if i else None
    if prev is not None and prev.type in _SECTION_TOKENS:
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


def _braces(text: str, lines: list[str], first, end: int) -> tuple[list[_Brace], _Brace | None]:
    """Between the outermost '{' still open (`first`) and offset `end`: the '{'s open at `end`, outermost first, and
    the first '{' that a '}' closed from the start of a line less indented than the '{'s line."""
    import lark

    # lexed from the start of first's line (any line start is between tokens: strings and comments end with
    # their line), after as many newlines, so that lines and columns are the file's
    start = text.rfind("\n", 0, first.start_pos) + 1
    try:
        toks = list(parser().lex("\n" * (first.line - 1) + text[start:end]))
    except lark.UnexpectedInput:  # the parser read this text, so it lexes; should it not, the braces are unknown
        return [], None
    stack: list[_Brace] = []
    mismatched: list[_Brace] = []
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
            stack.append(_Brace(t, indent, _brace_owner(toks, i)))
        elif t.type == "RBRACE" and stack:
            opener = stack.pop()
            at = _indent(lines[line - 1])
            starts_line = not lines[line - 1][: t.column - 1].strip()
            if starts_line and at < opener.indent and any(b.indent <= at for b in stack):
                mismatched.append(opener)
    return stack, (mismatched[0] if mismatched else None)


def _dedent_line(lines: list[str], brace: _Brace, upto: int) -> int | None:
    """The first line after the brace's, up to line `upto`, indented no more than the brace's line: where its '}'
    belongs. Blank and comment lines are skipped."""
    for n in range(brace.tok.line + 1, min(upto, len(lines)) + 1):
        stripped = lines[n - 1].strip()
        if stripped and not stripped.startswith("#") and _indent(lines[n - 1]) <= brace.indent:
            return n
    return None


def _indented_body(lines: list[str], brace: _Brace) -> bool:
    """Whether the first line after the brace's is indented more than it: only then does indentation say anything."""
    for line in lines[brace.tok.line :]:
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            return _indent(line) > brace.indent
    return False


def _closes_at(err, line: int) -> bool:
    """Whether the parser, at the start of `line`, would have taken a '}': its state before the tokens and subtrees
    it read on that line (none of them reaches back to an earlier line), fed a '}'."""
    import lark

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


def _unclosed_brace(text: str, opened: list, end: int, line: int | None) -> tuple[_Brace, int | None] | None:
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


def syntax_error(err, text: str) -> SpecError:
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
        return SpecError(
            f"{str(tok)!r} is not part of the language",
            _span(tok),
            hint="a spec is data: nothing in it is run as Python, imported or looked up",
            code="E002",
        )
    if last_tok is not None and last_tok.type == "NAME" and str(last_tok) in _PYTHON_WORDS:
        return SpecError(
            f"{str(last_tok)!r} is not part of the language",
            _span(last_tok),
            hint="a spec is data: nothing in it is run as Python, imported or looked up",
            code="E002",
        )

    if tok.type == "$END":
        if opened and opened[-1][0].type == "LBRACE":
            found = _unclosed_brace(text, opened, len(text), None)
            if found is not None:
                brace, before = found
                return SpecError(
                    f"unexpected end of file: this '{{'{brace.owner} is never closed",
                    _span(brace.tok),
                    hint="add the missing '}'" + (f" before line {before}" if before else ""),
                    code="E002",
                )
        if opened:
            opener, prev = opened[-1]
            closer = _CLOSERS[opener.type]
            return SpecError(
                f"unexpected end of file: this '{opener}'{_owner(prev)} is never closed",
                _span(opener),
                hint=f"add the missing '{closer}'",
                code="E002",
            )
        return SpecError("unexpected end of file", loc, hint=expected_text or None, code="E002")

    value = str(tok)
    loc = _span(tok)
    msg = f"unexpected {value!r}"
    hint = expected_text or None

    if tok.type in _OPENERS and not any(o.type == _OPENERS[tok.type] for o, _ in opened):
        return SpecError(
            f"this '{value}' closes nothing",
            loc,
            hint=f"remove it, or add the '{_CLOSERS[_OPENERS[tok.type]]}' it is meant to close",
            code="E002",
        )
    closers = {"RPAR", "RSQB"} & set(expected)
    if closers and opened and opened[-1][0].type in ("LPAR", "LSQB"):
        opener, prev = opened[-1]
        closer = _CLOSERS[opener.type]
        in_call = isinstance(prev, lark.Token) and prev.type == "NAME" and opener.type == "LPAR"
        if in_call and tok.type == "NAME" and _after(text, tok).startswith("=") and "COMMA" in expected:
            return SpecError(
                f"unexpected {value!r}: a ',' is missing before it",
                loc,
                hint="arguments are separated by commas: Conv2d(16, kernel_size=3, padding=1)",
                code="E002",
            )
        if tok.line > opener.line and _line_start(text, tok.line, tok.column):
            return SpecError(
                f"this '{opener}'{_owner(prev)} is never closed",
                _span(opener),
                hint=f"add the missing '{closer}' before line {tok.line}",
                code="E002",
            )
        if tok.type in _VALUE_STARTS and "COMMA" in expected:
            return SpecError(
                f"unexpected {value!r}: a ',' is missing before it",
                loc,
                hint="arguments and items are separated by commas: (3, 3)",
                code="E002",
            )

    if any(o.type == "LBRACE" for o, _ in opened) and _closes_at(err, tok.line):
        # a line where the parser would have taken a '}', and cannot take what follows (`train {`, `x = 1`)
        found = _unclosed_brace(text, opened, tok.start_pos, tok.line)
        if found is not None:
            brace, before = found
            return SpecError(
                f"this '{{'{brace.owner} is never closed",
                _span(brace.tok),
                hint=f"add the missing '}}' before line {before or tok.line}",
                code="E002",
            )

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
                hint = (
                    f"a setting is written `key value`, without '=': {last_tok or 'epochs'} "
                    f"{examples.get(str(last_tok), '...')}"
                )
        elif section in ("layers", "block", "Sequential", "Residual", "shortcut", "repeat"):
            name = last_tok if last_tok is not None and last_tok.type == "NAME" else "name"
            hint = (
                f"a layer is written `name Layer(args)`, without '=': {name} Conv2d(...); "
                f"constants are defined at the top level"
            )
        elif last_tok is not None and last_tok.type in ("NETWORK", "INPUT", "LAYERS", "FORWARD", "TRAIN", "BLOCK"):
            return SpecError(
                f"{str(last_tok)!r} is a keyword and cannot name a constant",
                _span(last_tok),
                hint="choose another name",
                code="E002",
            )
        return SpecError(msg, loc, hint=hint, code="E002")
    if tok.type == "LPAR" and last_tok is not None and last_tok.type in ("SEQUENTIAL", "RESIDUAL", "SHORTCUT"):
        word = str(last_tok)
        return SpecError(
            msg, loc, hint=f"{word} holds its layers in braces: {word} {{ Conv2d(16, 3) ReLU() }}", code="E002"
        )
    if last_tok is not None and last_tok.type == "INPUT":
        return SpecError(msg, loc, hint="the input size is written CxHxW, without spaces: input 3x32x32", code="E002")
    if last_tok is not None and last_tok.type == "NETWORK":
        return SpecError(msg, loc, hint="a network's name is one word: network CifarNet", code="E002")
    if last_tok is not None and last_tok.type != "NAME" and str(last_tok) == "residual":  # `forward`'s keyword
        return SpecError(msg, loc, hint="`residual NAME` runs x + NAME(x): name a declared layer after it", code="E002")
    if tok.type == "SLASH":
        return SpecError(msg, loc, hint="integer division is written //", code="E002")
    if tok.type == "LBRACE":
        return SpecError(
            msg,
            loc,
            hint="a '{' here needs a keyword before it: Sequential { ... }, Residual { ... }, repeat i in 1..3 { ... }",
            code="E002",
        )
    if "LPAR" in expected and "NAME" not in expected and last_tok is not None and last_tok.type == "NAME":
        # `relu1 ReLU` followed by the next line: the call's parentheses are missing
        word = str(last_tok)
        return SpecError(
            f"{word!r} needs parentheses",
            _span(last_tok),
            hint=f"a layer is always called: {word}(), even without arguments",
            code="E002",
        )
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
            hint = (
                "at the top level, a line is `network NAME`, `input CxHxW`, a constant `name = value`, "
                "a block, or a section"
            )
        return SpecError(f"unexpected {str(last_tok)!r}", _span(last_tok), hint=hint, code="E002")
    if tok.type in ("RPAR", "RSQB", "COMMA") and last_tok is not None and last_tok.type == "EQUAL":
        return SpecError(msg, loc, hint="a value is missing after '='", code="E002")
    if (
        tok.type in ("COMMA", "RPAR")
        and last_tok is not None
        and last_tok.type in ("COMMA", "LPAR", "LSQB")
        and not (tok.type == "RPAR" and last_tok.type == "LPAR")
    ):
        return SpecError(msg, loc, hint="a value is missing before it", code="E002")
    if tok.type == "STAR" and text[getattr(tok, "end_pos", 0) :][:1] == "*":
        return SpecError(
            "unexpected '**'",
            Location(tok.line, tok.column, tok.column + 2),
            hint="there is no power operator: write the value, or a product such as 2 * 2 * 2",
            code="E002",
        )
    if tok.type == "COMMA" and "RPAR" not in expected and "RSQB" not in expected:
        return SpecError(msg, loc, hint="a tuple needs parentheses: (3, 3)", code="E002")
    if tok.type == "LPAR" and len(stack) >= 2 and isinstance(stack[-2], lark.Token) and stack[-2].type == "REPEAT":
        # `repeat Conv2d(...)`: `repeat` meant as a layer's name
        return SpecError(
            "'repeat' is a keyword and cannot name a layer",
            _span(stack[-2]),
            hint="choose another name, or write a repetition: repeat i in 1..3 { ... }",
            code="E002",
        )
    if (
        tok.type in _SECTION_TOKENS
        or tok.type in ("NETWORK", "INPUT", "IN")
        or (tok.type != "NAME" and value == "residual")
    ):
        return SpecError(
            f"unexpected keyword {value!r}",
            loc,
            hint=(expected_text + "; " if expected_text else "") + f"{value!r} is a keyword here and cannot be a name",
            code="E002",
        )
    return SpecError(msg, loc, hint=hint, code="E002")


def _unexpected_character(err, text: str, loc: Location) -> SpecError:
    pos = err.pos_in_stream
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
            from . import layers as L

            if last in L.LAYERS:
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
