"""A cache of parsed spec files, as Python caches bytecode: an unchanged spec is not parsed again.

Parsing is the one stage of `netspec check` that needs Lark, and importing Lark, loading its tables and building its
lexer cost more than the rest of a check together. So the syntax tree of a spec file is stored once parsed, under
`$NETSPEC_CACHE` (default `~/.cache/netspec`), in a file named by a hash of the spec's text and of the code that
parses it (`grammar.lark`, `parse.py`, `errors.py`): editing the spec or upgrading netspec gives a new key, never a
stale tree. Everything after parsing (constants, blocks, validation, shapes) runs every time: it depends on
`--input` and `--set`.

The file is JSON: records are written as their class name and fields, and read back through a closed table of the
syntax tree's classes; nothing in it is imported or executed. A file that cannot be read or decoded is ignored
(and the spec parsed); a cache folder that cannot be written is skipped. Past `MAX_ENTRIES` trees the oldest half
is removed.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from ..errors import Location
from ..record import Record
from . import syntax as P

FORMAT = 1
MAX_ENTRIES = 500  # the oldest trees go beyond this: a spec edited for months leaves one entry per saved version
_TYPES: dict[str, type[Record]] = {
    cls.__name__: cls
    for cls in (
        Location,
        P.Num,
        P.Str,
        P.Const,
        P.Ref,
        P.BinOp,
        P.Neg,
        P.TupleExpr,
        P.ListExpr,
        P.Arg,
        P.Call,
        P.Template,
        P.Composite,
        P.Named,
        P.Repeat,
        P.Step,
        P.Param,
        P.BlockDef,
        P.Setting,
        P.ConstDef,
        P.Program,
    )
}


_code_hash: str | None = None


def _key(text: str) -> str:
    global _code_hash
    if _code_hash is None:
        h = hashlib.sha256(f"netspec-parse-{FORMAT}".encode())
        here = Path(__file__).parent
        for name in ("grammar.lark", "syntax.py", "../errors.py", "../record.py"):
            h.update((here / name).read_bytes())
        _code_hash = h.hexdigest()
    return hashlib.sha256(f"{_code_hash}\0{text}".encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _path(text: str) -> Path:
    return P.cache_dir() / "parsed" / f"{_key(text)}.json"


def load(text: str) -> P.Program | None:
    """The cached tree of this (normalized) spec text, or None."""
    try:
        with open(_path(text), encoding="utf-8") as f:
            prog = _decode(json.load(f))
    except (OSError, ValueError, KeyError, TypeError, IndexError, RecursionError):
        return None
    return prog if isinstance(prog, P.Program) else None


def store(text: str, prog: P.Program) -> None:
    """Keep `prog` for the next parse of `text`; any failure only means no cache."""
    try:
        data = json.dumps(_encode(prog), separators=(",", ":"))
        path = _path(text)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp")
        tmp.write_text(data, encoding="utf-8")
        os.replace(tmp, path)  # atomic: a reader sees the whole file or none
        _prune(path.parent)
    except (OSError, ValueError, TypeError, RecursionError):
        pass


def _prune(folder: Path) -> None:
    entries = [e for e in os.scandir(folder) if e.name.endswith(".json")]
    if len(entries) > MAX_ENTRIES:
        entries.sort(key=lambda e: e.stat().st_mtime)
        for e in entries[: len(entries) - MAX_ENTRIES // 2]:
            try:
                os.unlink(e.path)
            except OSError:
                pass


def _encode(v: Any) -> Any:
    if isinstance(v, Record):
        return {"@": type(v).__name__, "f": [_encode(getattr(v, f)) for f in v._fields]}
    if isinstance(v, tuple):
        return [_encode(x) for x in v]
    if isinstance(v, dict):
        return {"@d": [[k, _encode(x)] for k, x in v.items()]}
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    raise TypeError(f"cannot cache a {type(v).__name__}")


def _decode(v: Any) -> Any:
    if isinstance(v, list):
        return tuple(_decode(x) for x in v)
    if isinstance(v, dict):
        if "@d" in v:
            return {k: _decode(x) for k, x in v["@d"]}
        cls, fields = _TYPES[v["@"]], v["f"]
        if len(fields) != len(cls._fields):  # every field written: a file from another layout is not a tree
            raise ValueError(f"{cls.__name__} has {len(cls._fields)} fields, not {len(fields)}")
        return cls(*[_decode(x) for x in fields])
    return v
