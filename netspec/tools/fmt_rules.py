"""The statements of a spec as `netspec fmt` lays them out, one rule each: what goes between their tokens, where their
bodies are (see `fmt_layout.Layout.body`), and a few helpers over Lark's tree (every token kept)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lark import Token, Tree

from .doc import Doc

if TYPE_CHECKING:
    from .fmt_layout import Layout


def kids(node: Tree[Token]) -> list[Any]:
    return [c for c in node.children if c is not None]


def first_token(node: Any) -> Token:
    while isinstance(node, Tree):
        node = kids(node)[0]
    return node


def last_token(node: Any) -> Token:
    while isinstance(node, Tree):
        node = kids(node)[-1]
    return node


def is_token(node: Any, text: str) -> bool:
    return isinstance(node, Token) and str(node) == text


_Rule = Callable[["Layout", list[Any], int, bool, "int | None"], Doc]


def _keyword_and_name(lay: Layout, k: list[Any], level: int, flat: bool, pad: int | None) -> Doc:
    return [lay.tok(k[0]), " ", lay.tok(k[1])]  # network NAME, input SIZE, residual NAME


def _const(lay: Layout, k: list[Any], level: int, flat: bool, pad: int | None) -> Doc:
    return [lay.tok(k[0]), " " * (pad or 1), lay.tok(k[1]), " ", lay.expr(k[2])]


def _setting(lay: Layout, k: list[Any], level: int, flat: bool, pad: int | None) -> Doc:
    lay.words = True
    try:
        return [lay.tok(k[0]), " " * (pad or 1), lay.expr(k[1])]
    finally:
        lay.words = False


def _named(lay: Layout, k: list[Any], level: int, flat: bool, pad: int | None) -> Doc:
    return [lay.tok(k[0]), " " * (pad or 1), lay.stmt(k[1], level, flat)]


def _kept(lay: Layout, k: list[Any], level: int, flat: bool, pad: int | None) -> Doc:
    return [[lay.tok(c), " "] for c in k[:-1]] + [lay.stmt(k[-1], level, flat, pad)]


def _header_body(lay: Layout, k: list[Any], level: int, flat: bool, pad: int | None) -> Doc:
    """layers { }, forward { }, train { }, Sequential { }."""
    return [lay.tok(k[0]), " ", lay.body(k[2:-1], k[1], k[-1], level, flat)]


def _definition(lay: Layout, k: list[Any], level: int, flat: bool, pad: int | None) -> Doc:
    """block NAME(params) { }, module NAME(params) { }."""
    close = next(n for n in range(3, len(k)) if is_token(k[n], ")"))
    params = lay.bracket(k[2], k[3:close], k[close])
    return [
        lay.tok(k[0]),
        " ",
        lay.tok(k[1]),
        params,
        " ",
        lay.body(k[close + 2 : -1], k[close + 1], k[-1], level, flat),
    ]


def _flow(lay: Layout, k: list[Any], level: int, flat: bool, pad: int | None) -> Doc:
    head = [lay.tok(t) for t in k[:4]]  # forward ( x )
    return [head, " ", lay.body(k[5:-1], k[4], k[-1], level, flat)]


def _residual(lay: Layout, k: list[Any], level: int, flat: bool, pad: int | None) -> Doc:
    close = next(n for n in range(2, len(k)) if is_token(k[n], "}"))
    out = [lay.tok(k[0]), " ", lay.body(k[2:close], k[1], k[close], level, flat)]
    if close + 1 < len(k):  # shortcut { ... }
        word, open_, body, end = k[close + 1 :]
        out += [" ", lay.tok(word), " ", lay.body(kids(body), open_, end, level, flat)]
    return out


def _repeat(lay: Layout, k: list[Any], level: int, flat: bool, pad: int | None) -> Doc:
    word, var, in_, start, range_, stop, open_ = k[:7]
    head = [lay.tok(word), " ", lay.tok(var), " ", lay.tok(in_), " ", lay.expr(start), lay.tok(range_), lay.expr(stop)]
    return [head, " ", lay.body(k[7:-1], open_, k[-1], level, flat)]


def _if(lay: Layout, k: list[Any], level: int, flat: bool, pad: int | None) -> Doc:
    orelse = k[-1] if isinstance(k[-1], Tree) and k[-1].data.startswith("else") else None
    end = len(k) - 1 if orelse is not None else len(k)
    out = [lay.tok(k[0]), " ", lay.expr(k[1]), " ", lay.body(k[3 : end - 1], k[2], k[end - 1], level, flat)]
    if orelse is not None:
        e = kids(orelse)
        out += [" ", lay.tok(e[0]), " "]
        if is_token(e[1], "{"):
            out.append(lay.body(e[2:-1], e[1], e[-1], level, flat))
        else:  # else if
            out.append(lay.stmt(e[1], level, flat))
    return out


def _assign(lay: Layout, k: list[Any], level: int, flat: bool, pad: int | None) -> Doc:
    out: list[Doc] = []
    for t in k[:-2]:
        out += [lay.tok(t), " "] if is_token(t, ",") else [lay.tok(t)]
    return [out, " ", lay.tok(k[-2]), " ", lay.expr(k[-1])]


def _return(lay: Layout, k: list[Any], level: int, flat: bool, pad: int | None) -> Doc:
    return [lay.tok(k[0]), " ", lay.expr(k[1])]


def _step(lay: Layout, k: list[Any], level: int, flat: bool, pad: int | None) -> Doc:
    return lay.tok(k[0])


STATEMENTS: dict[str, _Rule] = {
    "network": _keyword_and_name,
    "input": _keyword_and_name,
    "residual_step": _keyword_and_name,
    "const": _const,
    "setting": _setting,
    "named": _named,
    "kept": _kept,
    "layers": _header_body,
    "forward": _header_body,
    "train": _header_body,
    "sequential": _header_body,
    "block_def": _definition,
    "module_def": _definition,
    "flow": _flow,
    "residual": _residual,
    "repeat": _repeat,
    "repeat_steps": _repeat,
    "repeat_stmts_flow": _repeat,
    "if_items": _if,
    "if_stmts": _if,
    "assign": _assign,
    "return_stmt": _return,
    "step": _step,
}
