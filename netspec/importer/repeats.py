"""Runs of spec lines that differ only in a counter, folded into `repeat`s.

    denselayer1 _DenseLayer()                 repeat i in 1..3 { denselayer{i} _DenseLayer() }
    denselayer2 _DenseLayer()         ->
    denselayer3 _DenseLayer()

A counter is a number inside a name (`denselayer2`, `conv2_1`): lines whose text is the same with those numbers
taken out, and whose numbers each go up by one (or stay) from one repetition to the next, are one line in a
`repeat`. A group of several lines repeats the same way. Lines that open a `{` are taken with the lines up to their
`}` and never fold. In a Sequential of unnamed items (`numbered`), equal lines fold too: the items are numbered by
their place.
"""

from __future__ import annotations

import re

INDENT = "    "
MAX_PERIOD = 4
LINE_WIDTH = 100
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:-[A-Za-z0-9_]+)*")  # a name, RegNet's block1-0 too
_DIGITS = re.compile(r"\d+")


def _entries(lines: list[str]) -> list[list[str]]:
    """Lines grouped into items: a line that opens a brace goes with every line up to its close."""
    out: list[list[str]] = []
    depth = 0
    for ln in lines:
        if depth == 0:
            out.append([ln])
        else:
            out[-1].append(ln)
        depth += ln.count("{") - ln.count("}")
    return out


def _template(line: str) -> tuple[str, list[tuple[int, int, int]]]:
    """The line with the numbers in names marked, and those numbers: (start, end, value)."""
    slots: list[tuple[int, int, int]] = []
    for m in _IDENT.finditer(line):
        if m.group()[0].isupper() and line[m.end() : m.end() + 1] == "(":
            continue  # a layer's or module's class (InvertedResidual_3), not a counter
        for d in _DIGITS.finditer(m.group()):
            if d.group() != "0" and d.group().startswith("0"):
                continue
            slots.append((m.start() + d.start(), m.start() + d.end(), int(d.group())))
    parts, last = [], 0
    for a, b, _ in slots:
        parts += [line[last:a], "#"]
        last = b
    return "".join(parts) + line[last:], slots


def _run(entries: list[list[str]], s: int, p: int, numbered: bool) -> tuple[int, list[list[int]]]:
    """How many times the p items from s repeat, and each slot's step (0 or 1), per item of the group."""
    if s + p > len(entries) or any(len(e) != 1 for e in entries[s : s + p]):
        return 0, []
    heads = [_template(entries[s + q][0]) for q in range(p)]
    steps: list[list[int]] | None = None
    r = 1
    while s + (r + 1) * p <= len(entries):
        group = entries[s + r * p : s + (r + 1) * p]
        if any(len(e) != 1 for e in group):
            break
        found = [_template(e[0]) for e in group]
        if any(f[0] != h[0] for f, h in zip(found, heads)):
            break
        diffs = [[(b[2] - a[2]) for a, b in zip(h[1], f[1])] for h, f in zip(heads, found)]
        if any(d not in (0, r) for ds in diffs for d in ds):
            break
        these = [[0 if d == 0 else 1 for d in ds] for ds in diffs]
        if steps is None:
            steps = these
        elif these != steps:
            break
        r += 1
    if steps is None:
        return 1, []
    counted = any(1 in ds for ds in steps)
    if not counted and not numbered and not all("=" in entries[s + q][0] for q in range(p)):
        return 1, []  # equal declarations would be one name twice; equal statements may repeat
    return r, steps


def _write(entries: list[list[str]], s: int, p: int, r: int, steps: list[list[int]]) -> list[str]:
    lines = [entries[s + q][0] for q in range(p)]
    taken = {m.group() for ln in lines for m in _IDENT.finditer(ln)}
    var = next(v for v in ("i", "j", "k", "n", "t") if v not in taken)
    starts = [slot[2] for q in range(p) for slot, st in zip(_template(lines[q])[1], steps[q]) if st]
    lo = starts[0] if starts else 1
    body = []
    for q, ln in enumerate(lines):
        parts, last = [], 0
        for (a, b, v), st in zip(_template(ln)[1], steps[q]):
            if not st:
                continue
            off = v - lo
            hole = var if off == 0 else f"{var}{'+' if off > 0 else '-'}{abs(off)}"
            parts += [ln[last:a], "{" + hole + "}"]
            last = b
        body.append("".join(parts) + ln[last:])
    head = f"repeat {var} in {lo}..{lo + r - 1} {{"
    if p == 1 and len(head) + len(body[0]) + 3 <= LINE_WIDTH:
        return [f"{head} {body[0]} }}"]
    return [head, *[INDENT + b for b in body], "}"]


def fold(lines: list[str], numbered: bool) -> list[str]:
    """The lines with every run of at least three repetitions (two of a group of lines) folded into a repeat."""
    entries = _entries(lines)
    out: list[str] = []
    s = 0
    while s < len(entries):
        best = None
        for p in range(1, MAX_PERIOD + 1):
            r, steps = _run(entries, s, p, numbered)
            saved = r * p - (1 if p == 1 else p + 2)
            if r >= (3 if p == 1 else 2) and saved > 0 and (best is None or saved > best[0]):
                best = (saved, p, r, steps)
        if best is None:
            out += entries[s]
            s += 1
            continue
        _, p, r, steps = best
        out += _write(entries, s, p, r, steps)
        s += p * r
    return out
