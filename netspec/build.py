"""Stage 4: a validated network and its shape table -> plain `torch.nn` modules.

Layer names map to torch classes through a closed table (never `getattr` on a name from a spec). Children are
registered in declaration order with the spec's names, so `print(model)` reads like the spec; the model runs the
spec's `forward` order.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import cast

import torch
from torch import nn

from .lang import FStep, Network, Node
from .shapes import ShapeTable, infer

TORCH_LAYERS: dict[str, type[nn.Module]] = {
    "Conv2d": nn.Conv2d,
    "BatchNorm2d": nn.BatchNorm2d,
    "BatchNorm1d": nn.BatchNorm1d,
    "GroupNorm": nn.GroupNorm,
    "ReLU": nn.ReLU,
    "ReLU6": nn.ReLU6,
    "LeakyReLU": nn.LeakyReLU,
    "ELU": nn.ELU,
    "GELU": nn.GELU,
    "SiLU": nn.SiLU,
    "Hardswish": nn.Hardswish,
    "Mish": nn.Mish,
    "Sigmoid": nn.Sigmoid,
    "Tanh": nn.Tanh,
    "Identity": nn.Identity,
    "MaxPool2d": nn.MaxPool2d,
    "AvgPool2d": nn.AvgPool2d,
    "AdaptiveAvgPool2d": nn.AdaptiveAvgPool2d,
    "AdaptiveMaxPool2d": nn.AdaptiveMaxPool2d,
    "Dropout": nn.Dropout,
    "Dropout2d": nn.Dropout2d,
    "Flatten": nn.Flatten,
    "Linear": nn.Linear,
    "Softmax": nn.Softmax,
}

_FUNCTIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": torch.relu,
    "gelu": nn.functional.gelu,
    "silu": nn.functional.silu,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "flatten": lambda x: torch.flatten(x, 1),
}


def _writes_in_place(modules: Iterable[nn.Module]) -> bool:
    """Whether running these modules may overwrite their input: some layer was built with inplace=True."""
    return any(getattr(m, "inplace", False) for module in modules for m in module.modules())


class Residual(nn.Module):
    """out = body(x) + shortcut(x), where shortcut is the identity unless given (a projection when shapes change).

    The body's layers are children `0, 1, ...` (or their spec names), as in `nn.Sequential`; a shortcut, when
    present, is the child `shortcut`.
    """

    def __init__(self, body: list[tuple[str, nn.Module]], shortcut: nn.Module | None = None):
        super().__init__()
        for name, module in body:
            self.add_module(name, module)
        self._body_names = [name for name, _ in body]
        self.shortcut = shortcut
        # an in-place layer (ReLU(inplace=true) first in the body, ...) would overwrite x before x + body(x) reads
        # it: such a body gets its own copy of x
        self._copy_input = _writes_in_place([m for _, m in body] + ([shortcut] if shortcut is not None else []))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.clone() if self._copy_input else x
        for name in self._body_names:
            y = cast(nn.Module, self._modules[name])(y)
        s = x if self.shortcut is None else self.shortcut(x)
        return y + s


class SpecModel(nn.Module):
    """The compiled network: children named as in the spec, run in the spec's `forward` order.

    `build` returns an instance of a subclass named after the network (`CifarNet`), made for it, so that
    `print(model)`, torchinfo and profilers show the network's name. Such a class exists only in the process that
    built it: `deepcopy`, `state_dict`, `torch.compile` and DDP work, but `pickle.dumps(model)` (and
    `torch.save(model)`) fails with "Can't pickle <class 'netspec.build.CifarNet'>". Save `model.state_dict()`
    and rebuild the model from its spec, as netspec's checkpoints do.
    """

    def __init__(self, name: str, children: list[tuple[str, nn.Module]], steps: Sequence[FStep]):
        super().__init__()
        for child_name, module in children:
            self.add_module(child_name, module)
        # (kind, child name or function name) pairs; kept as plain data so torch.compile traces a simple loop
        self._steps: list[tuple[str, str]] = [(s.op, s.name) for s in steps]
        # `residual name` steps whose module writes in place: x + name(x) gives the module a copy of x
        children_by_name = dict(children)
        self._copy_input = frozenset(
            s.name for s in steps if s.op == "residual" and _writes_in_place([children_by_name[s.name]])
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for op, name in self._steps:
            if op == "module":
                x = cast(nn.Module, self._modules[name])(x)
            elif op == "residual":
                x = x + cast(nn.Module, self._modules[name])(x.clone() if name in self._copy_input else x)
            else:
                x = _FUNCTIONS[name](x)
        return x


def _module(node: Node, table: ShapeTable) -> nn.Module:
    """The torch module of a node; its children's names were checked by the spec stage (`layers.MODULE_ATTRIBUTES`),
    so registering them cannot clash with a torch attribute."""
    if node.config is not None:
        assert node.layer is not None
        cls = TORCH_LAYERS[node.layer]
        kwargs = {**table.inferred.get(node, {}), **node.config.args()}
        return cls(**kwargs)
    children = [(c.name, _module(c, table)) for c in node.children]
    if node.composite == "Sequential":
        return nn.Sequential(OrderedDict(children))
    shortcut = None
    if node.shortcut is not None:
        items = [(c.name, _module(c, table)) for c in node.shortcut]
        shortcut = items[0][1] if len(items) == 1 and items[0][0] == "0" else nn.Sequential(OrderedDict(items))
    return Residual(children, shortcut)


def build(net: Network, table: ShapeTable | None = None) -> SpecModel:
    """Compile `net` (at its input size unless a table for another size is given) into a `SpecModel`."""
    if table is None:
        table = infer(net)
    children = [(node.name, _module(node, table)) for node in net.layers]
    cls = type(net.name, (SpecModel,), {"__doc__": f"The network {net.name}, compiled by netspec."})
    model: SpecModel = cls(net.name, children, net.forward)
    return model
