"""torch.fx for the importer: each module of a model traced on its own, its children as leaves.

A model is imported module by module, as it was written: every module that is not one of netspec's layers is traced
by itself with `torch.fx`, every child it calls kept as a leaf, so its graph is its own `forward()` (what it calls,
in what order, with which operations between) and the spec gets one `module` per class. The graph is then put in the
language's terms:

- a child called with a list of tensors that it concatenates first (torchvision's `_DenseLayer`) is called with the
  concatenation instead, traced with a one-item list;
- ShuffleNet's channel shuffle, which FX records as `size`, `view`, `transpose`, `contiguous`, `view`, becomes one
  `channel_shuffle` call;
- a concatenation that extends an earlier one (`cat(x, a, b)` after `cat(x, a)`) reuses it: `x = cat(x, f(x))`;
- the concatenation of one tensor is that tensor, and what nothing uses is dropped.

Only this module and `fx` import torch.
"""

from __future__ import annotations

import inspect
import operator
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx as fx
from torch import nn
from torch.fx._symbolic_trace import PH

from ..errors import SpecError


class ImportTraceError(SpecError, ValueError):
    """A model, or a part of one, that the importer cannot trace or express (a SpecError and a ValueError)."""


def fail(message: str, code: str, hint: str | None = None) -> ImportTraceError:
    return ImportTraceError(message, None, hint=hint, code=code)


class _ChildTracer(fx.Tracer):
    """Every module called from the traced one is a leaf: the graph is that module's own forward(). The source line
    of each call is recorded, for errors."""

    record_stack_traces = True

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return True


@dataclass
class Traced:
    """One module's forward as a graph, in the language's terms."""

    graph: fx.Graph
    list_input: bool = False  # called with a list it concatenates first: the graph takes the concatenation


def trace(module: nn.Module, path: str, list_input: bool = False) -> Traced:
    """The module's forward, traced with its children as leaves (`list_input`: given a one-item list of tensors)."""
    concrete = None
    if list_input:
        first = next(iter(inspect.signature(module.forward).parameters))
        concrete = {first: [PH]}
    try:
        graph = _ChildTracer().trace(module, concrete_args=concrete)
    except Exception as e:
        raise fail(
            f"{_where(path)} ({type(module).__name__}) cannot be traced by torch.fx: {_first_line(e)}",
            code="E220",
            hint="FX traces a forward() without running it: control flow that depends on a tensor's values, or "
            "a call FX cannot record, stops it; such a model cannot be imported",
        ) from None
    if list_input:
        _take_concatenation(graph, path, module)
    _unwrap_output(graph)
    _channel_shuffles(graph)
    _calls_with_lists(graph)
    _single_cats(graph)
    _extend_cats(graph)
    _drop_unused(graph)
    return Traced(graph, list_input)


def list_called(graph: fx.Graph) -> set[str]:
    """The children a graph calls with a concatenation it made from a list (to be traced with list inputs)."""
    return {str(n.target) for n in graph.nodes if n.op == "call_module" and n.meta.get("netspec_list_call")}


# ---- the passes ------------------------------------------------------------------------------------------------


def _take_concatenation(graph: fx.Graph, path: str, module: nn.Module) -> None:
    """A module traced with a one-item list must begin by concatenating it: the graph then takes the result."""
    ph = [n for n in graph.nodes if n.op == "placeholder"]
    cats = [u for u in ph[0].users] if len(ph) == 1 else []
    if len(cats) != 1 or cats[0].target is not torch.cat or len(ph[0].users) != 1:
        raise fail(
            f"{_where(path)} ({type(module).__name__}) is called with a list of tensors, and does not begin by "
            f"concatenating it",
            code="E221",
            hint="a module of a spec takes one tensor",
        )
    cat = cats[0]
    cat.replace_all_uses_with(ph[0])
    graph.erase_node(cat)


def _unwrap_output(graph: fx.Graph) -> None:
    """`return [y]` (a traced list input makes the output a list) is `return y`."""
    out = next(n for n in graph.nodes if n.op == "output")
    value = out.args[0]
    if isinstance(value, (list, tuple)) and len(value) == 1:
        out.args = (value[0],)


def _calls_with_lists(graph: fx.Graph) -> None:
    """child([a, b, c]) -> child(cat(a, b, c)): the child is traced with a list input, whose cat is taken out."""
    for n in list(graph.nodes):
        if n.op != "call_module" or len(n.args) != 1 or not isinstance(n.args[0], (list, tuple)):
            continue
        items = list(n.args[0])
        with graph.inserting_before(n):
            cat = graph.call_function(torch.cat, (items, 1))
        n.args = (cat,)
        n.meta["netspec_list_call"] = True


def _single_cats(graph: fx.Graph) -> None:
    for n in list(graph.nodes):
        if n.op == "call_function" and n.target is torch.cat and isinstance(n.args[0], (list, tuple)):
            if len(n.args[0]) == 1:
                n.replace_all_uses_with(n.args[0][0])
                graph.erase_node(n)


def _extend_cats(graph: fx.Graph) -> None:
    """cat(x, a, b) after cat(x, a) (same dim) is cat(cat(x, a), b): DenseNet's x = cat(x, f(x))."""
    seen: list[tuple[fx.Node, list[Any]]] = []  # each cat with the items it concatenates, as traced
    for n in list(graph.nodes):
        if not (n.op == "call_function" and n.target is torch.cat and isinstance(n.args[0], (list, tuple))):
            continue
        items, dim = list(n.args[0]), _cat_dim(n)
        best: tuple[fx.Node, list[Any]] | None = None
        for m, prev in seen:
            if _cat_dim(m) == dim and 2 <= len(prev) < len(items) and items[: len(prev)] == prev:
                if best is None or len(prev) > len(best[1]):
                    best = (m, prev)
        if best is not None:
            n.args = ([best[0], *items[len(best[1]) :]], *n.args[1:])
        seen.append((n, items))


def _drop_unused(graph: fx.Graph) -> None:
    """Computations nothing uses (the sizes a channel shuffle read), last first; in-place ones stay."""
    for n in reversed(list(graph.nodes)):
        if n.users or n.op not in ("call_function", "call_method"):
            continue
        name = n.target if isinstance(n.target, str) else getattr(n.target, "__name__", "")
        if not name.endswith("_") and n.target not in (operator.iadd, operator.imul):
            graph.erase_node(n)


def _cat_dim(n: fx.Node) -> Any:
    return n.kwargs.get("dim", n.args[1] if len(n.args) > 1 else 0)


def _channel_shuffles(graph: fx.Graph) -> None:
    """view(x, b, g, c // g, h, w) -> transpose(1, 2) -> contiguous() -> view(b, -1, h, w): channel_shuffle(x, g)."""
    for n in list(graph.nodes):
        if not _is_method(n, "view") or len(n.args) != 6:
            continue
        x, groups = n.args[0], n.args[2]
        t = _only_user(n)
        if t is None or not (_is_transpose_1_2(t)):
            continue
        c = _only_user(t)
        if c is None or not _is_method(c, "contiguous"):
            continue
        v = _only_user(c)
        if v is None or not _is_method(v, "view") or not isinstance(groups, int) or not isinstance(x, fx.Node):
            continue
        with graph.inserting_before(v):
            shuffle = graph.call_function(torch.nn.functional.channel_shuffle, (x, groups))
        v.replace_all_uses_with(shuffle)
        for dead in (v, c, t, n):
            graph.erase_node(dead)


def _is_method(n: fx.Node, name: str) -> bool:
    return n.op == "call_method" and n.target == name


def _is_transpose_1_2(n: fx.Node) -> bool:
    if (n.op == "call_function" and n.target is torch.transpose) or _is_method(n, "transpose"):
        return tuple(n.args[1:3]) in ((1, 2), (2, 1))
    return False


def _only_user(n: fx.Node) -> fx.Node | None:
    users = list(n.users)
    return users[0] if len(users) == 1 else None


# ---- small helpers --------------------------------------------------------------------------------------------


def _where(path: str) -> str:
    return repr(path) if path else "the model"


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def is_getitem(n: fx.Node) -> bool:
    return n.op == "call_function" and n.target is operator.getitem
