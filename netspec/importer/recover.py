"""A run's spec back from its checkpoint: the text that ran, with what the run changed written in.

A checkpoint keeps the spec's text as it was given, the input size the network ran at, and the constants the run
set: the `--set` values, and `classes` where the data set decided it (`netspec.training.checkpoint.spec_of` reads
them). `recover_spec` writes them into the text, in place, so that the spec compiled with no flags is the network
that was trained:

- each such constant's value: its expression, found by its location in the syntax tree, is replaced by the value
  (the rest of the line, comments and layout stay as they were);
- the `input` line, set to the size the network ran at (added after `network` when the spec had none);
- a comment at the top saying where the spec came from and what was written in.

The result is checked before it is returned: elaborated with no flags it must give the run's input and the run's
value of every constant the run set, or it is an error, never a spec that builds another network.

>>> spec = "input 3x8x8\\nclasses = 5  # ours\\nlayers { flat Flatten()  fc Linear(classes) }\\n"
>>> r = recover_spec(spec, "x.net", ran=(1, 8, 8), constants={"classes": 10}, classes=10,
...                  requested=(3, 8, 8), origin="run/checkpoint.pt")
>>> print(r.spec, end="")
# recovered from run/checkpoint.pt: classes = 10 (from the data), input 1x8x8 (1 channel from the data)
input 1x8x8
classes = 10  # ours
layers { flat Flatten()  fc Linear(classes) }
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import Location, SpecError, UsageError
from ..lang import Constants, Program, elaborate, normalize_source, parse
from .render import value_text, wrap_comment

_CLOSE = {"(": ")", "[": "]"}


@dataclass(frozen=True)
class Recovered:
    spec: str  # the .net text
    name: str  # the network's name
    input: tuple[int, int, int]
    written: tuple[str, ...]  # what was written in, as the header comment says it


def recover_spec(
    text: str,
    filename: str | None,
    *,
    ran: tuple[int, int, int],
    constants: dict[str, Any],
    origin: str,
    classes: int | None = None,
    requested: tuple[int, int, int] | None = None,
) -> Recovered:
    """The spec `text` with the run's `constants` and input size `ran` written in. `classes` is the data set's
    number of classes, `requested` the input the run asked for (--input, or the spec's own), both for the header
    only; `origin` names the checkpoint. Values read back from JSON may hold lists where the run had tuples: a
    list is written as a tuple unless the spec's own value is a list."""
    text = normalize_source(text)
    prog = parse(text, filename)
    starts = _line_starts(text)
    edits: list[tuple[int, int, str]] = []
    written: list[str] = []
    typed: dict[str, Any] = {}
    for name, value in constants.items():
        if name not in prog.consts:
            raise UsageError(f"{origin}: the run set the constant {name!r}, which its spec does not define")
        own = _own_value(prog, name)
        typed[name] = value = _typed(value, own)
        if own is not _UNKNOWN and _key(own) == _key(value):
            continue  # the spec's own value: its expression stays
        shown = _written(name, value, prog, origin)
        edits.append((*_span(prog.consts[name].value, text, starts, name, origin), shown))
        from_data = name == "classes" and value == classes
        written.append(f"classes = {shown} (from the data)" if from_data else f"--set {name}={shown}")
    if prog.input != ran:
        edits.append(_input_edit(prog, text, starts, _size(ran)))
        written.append(_input_note(prog.input, requested, ran))
    for start, end, new in sorted(edits, reverse=True):
        text = text[:start] + new + text[end:]
    header = f"recovered from {origin}: " + (", ".join(written) or "the spec as written (nothing was overridden)")
    spec = "\n".join(wrap_comment(header)) + "\n" + text
    name = _checked(spec, filename, ran, typed, origin)
    return Recovered(spec, name, ran, tuple(written))


# ---- values ------------------------------------------------------------------------------------------------------
class _Unknown:
    """The spec's own value of a constant that cannot be evaluated without the run's overrides."""


_UNKNOWN = _Unknown()


def _own_value(prog: Program, name: str) -> Any:
    try:
        return Constants(prog.consts, {}).lookup(name)[1]
    except (SpecError, RecursionError):
        return _UNKNOWN


def _typed(value: Any, like: Any) -> Any:
    """A value read back from JSON with its lists made tuples, or lists where the spec's own value has a list."""
    if not isinstance(value, list):
        return value
    same = isinstance(like, (list, tuple)) and len(like) == len(value)
    items = [_typed(v, like[i] if same else None) for i, v in enumerate(value)]
    return items if isinstance(like, list) else tuple(items)


def _key(value: Any) -> str:
    """Equal for equal values of the same types (10 is not 10.0, true is not 1), tuples and lists alike."""
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_key(v) for v in value) + "]"
    return f"{type(value).__name__}:{value!r}"


def _text(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_text(v) for v in value) + "]"
    if isinstance(value, tuple):
        inner = ", ".join(_text(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    return value_text(value)


def _written(name: str, value: Any, prog: Program, origin: str) -> str:
    try:
        return _text(value)
    except ValueError as e:
        line = prog.consts[name].loc.line
        raise UsageError(f"{origin}: cannot write the run's {name} into its spec (line {line}): {e}") from None


def _size(size: Sequence[int]) -> str:
    return "x".join(map(str, size))


# ---- places in the text ------------------------------------------------------------------------------------------
def _line_starts(text: str) -> list[int]:
    return [0] + [i + 1 for i, c in enumerate(text) if c == "\n"]


def _offset(starts: list[int], line: int, column: int) -> int:
    return starts[line - 1] + column - 1


def _ends(node: Any) -> Iterator[Location]:
    """The locations in an expression that know where they end: every token's (a location over several lines
    does not keep its end)."""
    for f in dataclasses.fields(node):
        value = getattr(node, f.name)
        for v in value if isinstance(value, tuple) else (value,):
            if isinstance(v, Location):
                if v.end_column is not None:
                    yield v
            elif dataclasses.is_dataclass(v):
                yield from _ends(v)


def _span(expr: Any, text: str, starts: list[int], name: str, origin: str) -> tuple[int, int]:
    """Where a constant's value is written: from its first character to its last token, and on to the brackets
    still open there (`(4,\\n 5,\\n)` ends at the `)`, which no token's location holds)."""
    start = _offset(starts, expr.loc.line, expr.loc.column)
    end = max([start + 1] + [_offset(starts, loc.line, loc.end_column or 0) for loc in _ends(expr)])
    for bracket in reversed(_unclosed(text[start:end])):
        end = _skip_blank(text, end)
        if not text.startswith(_CLOSE[bracket], end):
            raise UsageError(
                f"{origin}: cannot find the end of {name}'s value in its spec (line {expr.loc.line}) to write "
                f"the run's value there"
            )
        end += 1
    return start, end


def _unclosed(code: str) -> list[str]:
    """The brackets opened in `code` and not closed there (strings and comments skipped)."""
    stack: list[str] = []
    i = 0
    while i < len(code):
        c = code[i]
        if c in "'\"":
            i = code.find(c, i + 1)
            i = len(code) if i < 0 else i
        elif c == "#":
            i = code.find("\n", i)
            i = len(code) if i < 0 else i
        elif c in _CLOSE:
            stack.append(c)
        elif c in ")]" and stack:
            stack.pop()
        i += 1
    return stack


def _skip_blank(text: str, i: int) -> int:
    """Past spaces, newlines, comments and a trailing comma."""
    while i < len(text):
        if text[i].isspace() or text[i] == ",":
            i += 1
        elif text[i] == "#":
            i = text.find("\n", i)
            i = len(text) if i < 0 else i
        else:
            break
    return i


def _input_edit(prog: Program, text: str, starts: list[int], size: str) -> tuple[int, int, str]:
    """The `input` line's size replaced; or, in a spec without one, an `input` line after `network` (or first)."""
    if prog.input_loc is not None:
        loc = prog.input_loc
        return _offset(starts, loc.line, loc.column), _offset(starts, loc.line, loc.end_column or 0), size
    if prog.network_loc is None or prog.network_loc.end_column is None:
        return 0, 0, f"input {size}\n"
    after = _offset(starts, prog.network_loc.line, prog.network_loc.end_column)
    line_end = text.find("\n", after)
    line_end = len(text) if line_end < 0 else line_end
    rest = text[after:line_end].strip()
    if not rest or rest.startswith("#"):  # the network line holds nothing else: a line of its own after it
        return line_end, line_end, f"\ninput {size}"
    return after, after, f"\ninput {size}\n"


def _input_note(spec: tuple[int, int, int] | None, requested: tuple[int, int, int] | None,
                ran: tuple[int, int, int]) -> str:  # fmt: skip
    why = []
    if requested is not None and requested != spec:
        why.append("--input" if requested == ran else f"--input {_size(requested)}")
    if requested is not None and requested[0] != ran[0]:
        why.append(f"{ran[0]} channel{'s' if ran[0] != 1 else ''} from the data")
    return f"input {_size(ran)}" + (f" ({', '.join(why)})" if why else "")


# ---- the check -----------------------------------------------------------------------------------------------------
def _checked(spec: str, filename: str | None, ran: tuple[int, int, int], typed: dict[str, Any], origin: str) -> str:
    """The recovered spec, elaborated with no flags, must take the run's input and the run's value of every
    constant the run set (the rest of the text is the spec's own). Returns the network's name."""
    try:
        net = elaborate(parse(spec, filename), filename=filename, source=spec)
    except SpecError as e:
        raise UsageError(f"{origin}: the spec with the run's values written in does not hold: {e.message}") from None
    differ = [n for n, v in typed.items() if _key(v) != _key(net.constants.get(n, _UNKNOWN))]
    if net.input != ran or differ:
        what = f"value of {', '.join(differ)}" if differ else f"input ({_size(net.input)})"
        raise UsageError(f"{origin}: the spec with the run's values written in has another {what} than the run")
    return net.name
