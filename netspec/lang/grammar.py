"""The parser of `grammar.lark`: built once, lazily (Lark's LALR, positions kept), its tables cached on disk."""

from __future__ import annotations

import functools
import hashlib
import os
from importlib import resources
from pathlib import Path
from typing import Any

import lark


def cache_dir() -> Path:
    """Where Lark keeps the parser's tables: `$NETSPEC_CACHE`, else ~/.cache/netspec."""
    return Path(os.environ.get("NETSPEC_CACHE") or Path.home() / ".cache" / "netspec")


@functools.lru_cache(maxsize=2)
def parser(keep_all_tokens: bool = False) -> lark.Lark:
    """The LALR parser of `grammar.lark`, with two start rules: `start` (a spec) and `hole` (a name's hole).

    With `keep_all_tokens` its trees keep every token, keywords and punctuation too: the same grammar and tables,
    for a tool that lays the text out again (`netspec fmt`)."""
    text = resources.files("netspec.lang").joinpath("grammar.lark").read_text(encoding="utf-8")
    options: dict[str, Any] = dict(
        parser="lalr",
        propagate_positions=True,
        maybe_placeholders=True,
        start=["start", "hole"],
        keep_all_tokens=keep_all_tokens,
    )
    # Building the LALR tables takes ~0.3 s; Lark caches them in a file keyed by the grammar, the options and Lark's
    # version. The file lives in our own cache folder (not a shared temp dir), so no other user can plant one.
    key = hashlib.sha256(f"{text}{sorted(options.items())}{lark.__version__}".encode()).hexdigest()[:16]
    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return lark.Lark(text, cache=str(folder / f"grammar-{key}.lark"), **options)
    except OSError:  # a read-only home: build the tables every time
        return lark.Lark(text, **options)
