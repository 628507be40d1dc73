"""What an FX node calls, in the language's terms: an operation of `lang.ops` and its arguments.

torch has several spellings of one operation (`F.relu(x)`, `torch.relu(x)`, `x.relu()`; `torch.flatten(x, 1)`,
`x.flatten(1)`); each maps to the one operation of the language, its arguments bound to PyTorch's parameter names
and kept when they differ from the operation's defaults. Arguments that only say how torch computes (`inplace`) are
dropped; `training` too, since the language's `dropout` follows the module's mode, as `self.training` does.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
import torchvision.ops
from torch import fx

from ..lang import OPS


@dataclass(frozen=True)
class Sig:
    """An operation of the language and the names of torch's parameters, the tensors' first."""

    op: str
    params: tuple[str, ...]
    tensors: int = 1  # leading tensor parameters (cat: one list of them)
    dropped: tuple[str, ...] = ("inplace",)


def _act(name: str) -> Sig:
    return Sig(name, ("input", "inplace"))


# call_function targets
FUNCTIONS: dict[Any, Sig] = {
    torch.cat: Sig("cat", ("tensors", "dim")),
    torch.concat: Sig("cat", ("tensors", "dim")),
    torch.flatten: Sig("flatten", ("input", "start_dim", "end_dim")),
    torch.mean: Sig("mean", ("input", "dim", "keepdim")),
    torch.chunk: Sig("chunk", ("input", "chunks", "dim")),
    torch.split: Sig("split", ("tensor", "split_size_or_sections", "dim")),
    torch.permute: Sig("permute", ("input", "dims")),
    F.adaptive_avg_pool2d: Sig("adaptive_avg_pool2d", ("input", "output_size")),
    F.max_pool2d: Sig("max_pool2d", ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode")),
    F.avg_pool2d: Sig("avg_pool2d", ("input", "kernel_size", "stride", "padding", "ceil_mode", "count_include_pad")),
    torch._C._nn.avg_pool2d: Sig(
        "avg_pool2d", ("input", "kernel_size", "stride", "padding", "ceil_mode", "count_include_pad")
    ),
    F.channel_shuffle: Sig("channel_shuffle", ("input", "groups")),
    F.dropout: Sig("dropout", ("input", "p", "training", "inplace"), dropped=("training", "inplace")),
    torchvision.ops.stochastic_depth: Sig(
        "stochastic_depth", ("input", "p", "mode", "training"), dropped=("training",)
    ),
    F.layer_norm: Sig("layer_norm", ("input", "normalized_shape", "weight", "bias", "eps")),
    F.softmax: Sig("softmax", ("input", "dim")),
    torch.softmax: Sig("softmax", ("input", "dim")),
    F.leaky_relu: Sig("leaky_relu", ("input", "negative_slope", "inplace")),
    F.gelu: Sig("gelu", ("input", "approximate")),
    F.relu: _act("relu"),
    torch.relu: _act("relu"),
    F.relu6: _act("relu6"),
    F.silu: _act("silu"),
    F.hardswish: _act("hardswish"),
    F.hardsigmoid: _act("hardsigmoid"),
    F.mish: _act("mish"),
    F.elu: Sig("elu", ("input", "alpha", "inplace")),
    torch.sigmoid: _act("sigmoid"),
    F.sigmoid: _act("sigmoid"),
    torch.tanh: _act("tanh"),
    F.tanh: _act("tanh"),
}

# call_method targets: x.flatten(1), x.mean((2, 3)), ...
METHODS: dict[str, Sig] = {
    "flatten": Sig("flatten", ("self", "start_dim", "end_dim")),
    "mean": Sig("mean", ("self", "dim", "keepdim")),
    "chunk": Sig("chunk", ("self", "chunks", "dim")),
    "split": Sig("split", ("self", "split_size", "dim")),
    "permute": Sig("permute", ("self", "dims")),
    "relu": _act("relu"),
    "sigmoid": _act("sigmoid"),
    "tanh": _act("tanh"),
    "softmax": Sig("softmax", ("self", "dim")),
}

BINARY: dict[Any, str] = {
    operator.add: "+",
    operator.iadd: "+",
    torch.add: "+",
    operator.mul: "*",
    operator.imul: "*",
    torch.mul: "*",
}
BINARY_METHODS = {"add": "+", "add_": "+", "mul": "*", "mul_": "*"}

# torch's names for the language's fields, where they differ
_FIELD = {"split_size": "split_size_or_sections"}


def binary(n: fx.Node) -> str | None:
    """'+' or '*' for an addition or multiplication node, else None."""
    if n.op == "call_function":
        return BINARY.get(n.target)
    if n.op == "call_method":
        return BINARY_METHODS.get(str(n.target))
    return None


def signature(n: fx.Node) -> Sig | None:
    if n.op == "call_function":
        try:
            return FUNCTIONS.get(n.target)
        except TypeError:  # an unhashable target
            return None
    if n.op == "call_method":
        return METHODS.get(str(n.target))
    return None


def bind(n: fx.Node, sig: Sig) -> tuple[list[Any], dict[str, Any]]:
    """(the tensor arguments, the other arguments by the language's field names, defaults and dropped ones out)."""
    values: dict[str, Any] = dict(zip(sig.params, n.args))
    if len(n.args) > len(sig.params):  # x.permute(0, 2, 3, 1), x.view(...): the rest of the arguments as one tuple
        values[sig.params[-1]] = tuple(n.args[len(sig.params) - 1 :])
    values.update(n.kwargs)
    first = values.pop(sig.params[0])
    tensors = list(first) if isinstance(first, (list, tuple)) else [first]
    model = OPS[sig.op]
    fields: dict[str, Any] = {}
    for key, value in values.items():
        if key in sig.dropped:
            continue
        key = _FIELD.get(key, key)
        if key in model.TENSOR_KEYWORDS:
            fields[key] = value
            continue
        value = _plain(value)
        info = model.model_fields.get(key)
        if info is not None and not info.is_required() and value == info.default:
            continue
        fields[key] = value
    return tensors, fields


def _plain(value: Any) -> Any:
    """Lists as tuples, torch.Size as a tuple: the values a spec writes."""
    if isinstance(value, (list, tuple)):
        return tuple(_plain(v) for v in value)
    return value


def render_call(op: str, tensors: list[str], fields: dict[str, Any], text: Callable[[Any], str]) -> str:
    """`max_pool2d(x, 3, stride=2)`: the tensors, the first positional field (if given) by position, the rest by
    keyword, in the operation's field order."""
    model = OPS[op]
    parts = list(tensors)
    order = list(model.POSITIONAL) + [k for k in model.model_fields if k not in model.POSITIONAL]
    order += [k for k in model.TENSOR_KEYWORDS if k not in order]
    positional = True
    for key in order:
        if key not in fields:
            positional = False
            continue
        if positional and key == (model.POSITIONAL[0] if model.POSITIONAL else None):
            parts.append(text(fields[key]))
        else:
            parts.append(f"{key}={text(fields[key])}")
        positional = False
    return f"{op}({', '.join(parts)})"
