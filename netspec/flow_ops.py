"""Running a `forward(x) { ... }` in torch: the operations of `lang.ops` as torch calls, and a flow's steps.

A flow is compiled once, at build time, into a list of plain tuples (targets, what to call, inputs, options), so the
module's `forward` is a short loop over it: no spec objects at run time, and a simple loop for `torch.compile`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import stochastic_depth

from .lang import Flow

Tensor = torch.Tensor
# (targets, "child" or "op", the child's or the operation's name, input names, tensor keyword names, options, whether
# the input must be copied first: a child that writes in place, on a value a later step still reads)
Step = tuple[tuple[str, ...], str, str, tuple[str, ...], tuple[tuple[str, str], ...], dict[str, Any], bool]
OpFn = Callable[[list[Tensor], dict[str, Tensor], dict[str, Any], bool], Any]


def _cat(xs: list[Tensor], kw: dict[str, Tensor], o: dict[str, Any], training: bool) -> Tensor:
    return torch.cat(xs, dim=o["dim"])


def _pool(fn: Callable[..., Tensor]) -> OpFn:
    return lambda xs, kw, o, training: fn(xs[0], **o)


def _unary(fn: Callable[[Tensor], Tensor]) -> OpFn:
    return lambda xs, kw, o, training: fn(xs[0])


def _layer_norm(xs: list[Tensor], kw: dict[str, Tensor], o: dict[str, Any], training: bool) -> Tensor:
    shape = o["normalized_shape"]
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    return F.layer_norm(xs[0], shape, kw.get("weight"), kw.get("bias"), o["eps"])


def _permute(xs: list[Tensor], kw: dict[str, Tensor], o: dict[str, Any], training: bool) -> Tensor:
    return xs[0].permute(*o["dims"])


def _split(xs: list[Tensor], kw: dict[str, Tensor], o: dict[str, Any], training: bool) -> tuple[Tensor, ...]:
    sections = o["split_size_or_sections"]
    return torch.split(xs[0], list(sections) if isinstance(sections, tuple) else sections, dim=o["dim"])


OPS: dict[str, OpFn] = {
    "cat": _cat,
    "add": lambda xs, kw, o, training: xs[0] + xs[1],
    "mul": lambda xs, kw, o, training: xs[0] * xs[1],
    "flatten": lambda xs, kw, o, training: torch.flatten(xs[0], o["start_dim"], o["end_dim"]),
    "mean": lambda xs, kw, o, training: xs[0].mean(dim=o["dim"], keepdim=o["keepdim"]),
    "adaptive_avg_pool2d": lambda xs, kw, o, training: F.adaptive_avg_pool2d(xs[0], o["output_size"]),
    "max_pool2d": _pool(F.max_pool2d),
    "avg_pool2d": _pool(F.avg_pool2d),
    "chunk": lambda xs, kw, o, training: torch.chunk(xs[0], o["chunks"], dim=o["dim"]),
    "split": _split,
    "channel_shuffle": lambda xs, kw, o, training: F.channel_shuffle(xs[0], o["groups"]),
    "permute": _permute,
    "layer_norm": _layer_norm,
    "stochastic_depth": lambda xs, kw, o, training: stochastic_depth(xs[0], o["p"], o["mode"], training),
    "dropout": lambda xs, kw, o, training: F.dropout(xs[0], o["p"], training),
    "softmax": lambda xs, kw, o, training: F.softmax(xs[0], dim=o["dim"]),
    "leaky_relu": lambda xs, kw, o, training: F.leaky_relu(xs[0], o["negative_slope"]),
    "gelu": lambda xs, kw, o, training: F.gelu(xs[0], approximate=o["approximate"]),
    "relu": _unary(F.relu),
    "relu6": _unary(F.relu6),
    "silu": _unary(F.silu),
    "sigmoid": _unary(torch.sigmoid),
    "tanh": _unary(torch.tanh),
    "hardswish": _unary(F.hardswish),
    "hardsigmoid": _unary(F.hardsigmoid),
    "mish": _unary(F.mish),
    "elu": _unary(F.elu),
}


# operations whose result may share its input's memory: views, and what dropout and stochastic depth give back
# unchanged outside training (writing one in place writes the other)
VIEW_OPS = frozenset({"chunk", "split", "permute", "flatten", "dropout", "stochastic_depth"})


def compile_flow(
    flow: Flow, in_place: frozenset[str] = frozenset(), aliasing: frozenset[str] = frozenset()
) -> list[Step]:
    """The flow's steps as plain data, ending with a `return` step.

    `in_place` names the children that write their input in place (`ReLU(inplace=true)`), `aliasing` those that may
    give back their input itself or a view of it (an Identity, a Flatten, a Dropout, an in-place layer). An in-place
    child gets a copy of its input when a value that shares the input's memory (the input, a view of it, a chunk of
    the same tensor...) and was defined before it is read after it: so x is still x where it is read."""
    root: dict[str, str] = {flow.input: flow.input}  # a value -> the first value of its group sharing memory
    members: dict[str, list[tuple[str, int]]] = {flow.input: [(flow.input, -1)]}  # a group: (value, step defining it)
    last_read = {v: i for i, o in enumerate(flow.ops) for v in (*o.inputs, *(t for _, t in o.tensor_options))}
    last_read[flow.output] = len(flow.ops)
    steps: list[Step] = []
    for i, op in enumerate(flow.ops):
        options = op.options.args() if op.options is not None else {}
        group = root.get(op.inputs[0], op.inputs[0]) if op.inputs else None
        copy = (
            op.kind == "child"
            and op.name in in_place
            and any(at < i and last_read.get(v, -1) > i for v, at in members.get(group or "", ()))
        )
        shares = not copy and (
            (op.kind == "op" and op.name in VIEW_OPS) or (op.kind == "child" and op.name in aliasing)
        )
        for t in op.targets:
            root[t] = group if shares and group is not None else t
            members.setdefault(root[t], []).append((t, i))
        steps.append((op.targets, op.kind, op.name, op.inputs, op.tensor_options, options, copy))
    steps.append(((), "return", flow.output, (flow.input,), (), {}, False))
    return steps


def run_flow(module: nn.Module, steps: list[Step], x: Tensor) -> Tensor:
    """Run compiled steps: each reads its inputs by name (`@name`: the module's parameter) and binds its targets."""
    env: dict[str, Any] = {steps[-1][3][0]: x}

    def value(name: str) -> Any:
        return getattr(module, name[1:]) if name.startswith("@") else env[name]

    for targets, kind, name, inputs, tensor_kw, options, copy in steps:
        if kind == "return":
            return cast(Tensor, value(name))
        args = [value(i) for i in inputs]
        if kind == "child":
            out = cast(nn.Module, module._modules[name])(args[0].clone() if copy else args[0])
        else:
            out = OPS[name](args, {k: value(v) for k, v in tensor_kw}, options, module.training)
        if isinstance(out, tuple):  # chunk and split: a part per target (one part is a tuple of one too)
            for t, v in zip(targets, out):
                env[t] = v
        else:
            env[targets[0]] = out
    raise AssertionError("a compiled flow ends with its return step")  # pragma: no cover
