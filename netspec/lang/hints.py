"""Small helpers for the wording of errors: did-you-mean suggestions, short lists, long values cut to a line."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(name: str, choices: Iterable[str]) -> str | None:
    """A `did you mean 'X'?` hint for a misspelt name (or `'X' or 'Y'` when two are about as close), or None.

    >>> did_you_mean("Conv2D", ["Conv2d", "Linear"])
    "did you mean 'Conv2d'?"
    """
    options = list(choices)
    lowered = {c.lower(): c for c in options}
    if name.lower() in lowered and lowered[name.lower()] != name:
        return f"did you mean {lowered[name.lower()]!r}?"
    # a name with letters left out (RandomFlip for RandomHorizontalFlip) is a subsequence of what was meant
    longer = [c for c in options if len(name) >= 4 and len(c) > len(name) and _subsequence(name.lower(), c.lower())]
    if 1 <= len(longer) <= 2:
        longer.sort(key=lambda c: -_ratio(name, c))
        if len(longer) == 2 and _ratio(name, longer[0]) - _ratio(name, longer[1]) >= 0.1:
            longer = longer[:1]
        return "did you mean " + " or ".join(repr(c) for c in longer) + "?"
    close = difflib.get_close_matches(name, options, n=2, cutoff=0.6)
    if not close:
        return None
    if len(close) == 2 and _ratio(name, close[0]) - _ratio(name, close[1]) < 0.1:
        return f"did you mean {close[0]!r} or {close[1]!r}?"
    return f"did you mean {close[0]!r}?"


def _ratio(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a, b).ratio()


def _subsequence(short: str, long: str) -> bool:
    it = iter(long)
    return all(ch in it for ch in short)


def few(names: Iterable[str], n: int = 8) -> str:
    """The first `n` distinct names, comma-separated, with `...` when there are more."""
    unique = list(dict.fromkeys(names))
    return ", ".join(unique[:n]) + (", ..." if len(unique) > n else "")


def short(text: str) -> str:
    """repr(text), cut to a readable length for a one-line error."""
    return repr(text) if len(text) <= 60 else repr(text[:40]) + f"... ({len(text):,} characters)"


def plural(n: int, word: str) -> str:
    """`1 argument`, `2 arguments`."""
    return f"{n} {word}{'' if n == 1 else 's'}"
