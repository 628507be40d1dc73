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
from torchvision.models.convnext import LayerNorm2d
from torchvision.ops import Permute, StochasticDepth

from .flow_ops import Step, compile_flow, run_flow
from .lang import FStep, Network, Node
from .shapes import ShapeTable, infer

TORCH_LAYERS: dict[str, type[nn.Module]] = {
    "Conv2d": nn.Conv2d,
    "ConvTranspose2d": nn.ConvTranspose2d,
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
    "PReLU": nn.PReLU,
    "Sigmoid": nn.Sigmoid,
    "Tanh": nn.Tanh,
    "Identity": nn.Identity,
    "MaxPool2d": nn.MaxPool2d,
    "AvgPool2d": nn.AvgPool2d,
    "AdaptiveAvgPool2d": nn.AdaptiveAvgPool2d,
    "AdaptiveMaxPool2d": nn.AdaptiveMaxPool2d,
    "Upsample": nn.Upsample,
    "ReflectionPad2d": nn.ReflectionPad2d,
    "ReplicationPad2d": nn.ReplicationPad2d,
    "ZeroPad2d": nn.ZeroPad2d,
    "Dropout": nn.Dropout,
    "Dropout2d": nn.Dropout2d,
    "Flatten": nn.Flatten,
    "Linear": nn.Linear,
    "Softmax": nn.Softmax,
    "LogSoftmax": nn.LogSoftmax,
    "Hardsigmoid": nn.Hardsigmoid,
    "LayerNorm": nn.LayerNorm,
    "LayerNorm2d": LayerNorm2d,
    "Permute": Permute,
    "StochasticDepth": StochasticDepth,
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

    _flow: list[Step] | None = None  # set by `build` for a network with `forward(x) { ... }`

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._flow is not None:
            return run_flow(self, self._flow, x)
        for op, name in self._steps:
            if op == "module":
                x = cast(nn.Module, self._modules[name])(x)
            elif op == "residual":
                x = x + cast(nn.Module, self._modules[name])(x.clone() if name in self._copy_input else x)
            else:
                x = _FUNCTIONS[name](x)
        return x


class SpecModule(nn.Module):
    """A spec's `module`: its children (and learned parameters) named as in the spec; it runs its forward, or its
    children in order. `build` makes a subclass per definition, named after it, so print(model) shows `Fire(`."""

    def __init__(
        self,
        children: list[tuple[str, nn.Module]],
        params: list[tuple[str, nn.Parameter]],
        flow: list[Step] | None,
        order: list[str],
    ):
        super().__init__()
        for name, module in children:
            self.add_module(name, module)
        for name, param in params:
            self.register_parameter(name, param)
        self._flow = flow
        self._order = order

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._flow is not None:
            return run_flow(self, self._flow, x)
        for name in self._order:
            x = cast(nn.Module, self._modules[name])(x)
        return x


def _module(node: Node, table: ShapeTable, classes: dict[str, type[SpecModule]]) -> nn.Module:
    """The torch module of a node; its children's names were checked by the spec stage (`layers.MODULE_ATTRIBUTES`),
    so registering them cannot clash with a torch attribute."""
    if node.config is not None:
        assert node.layer is not None
        cls = TORCH_LAYERS[node.layer]
        kwargs = {**table.inferred.get(node, {}), **node.config.args()}
        if node.layer == "Permute":  # torchvision's Permute takes a list
            kwargs["dims"] = list(kwargs["dims"])
        return cls(**kwargs)
    if node.module is not None:
        return _spec_module(node, table, classes)
    children = [(c.name, _module(c, table, classes)) for c in node.children]
    if node.composite == "Sequential":
        return nn.Sequential(OrderedDict(children))
    shortcut = None
    if node.shortcut is not None:
        items = [(c.name, _module(c, table, classes)) for c in node.shortcut]
        shortcut = items[0][1] if len(items) == 1 and items[0][0] == "0" else nn.Sequential(OrderedDict(items))
    return Residual(children, shortcut)


def build(net: Network, table: ShapeTable | None = None) -> SpecModel:
    """Compile `net` (at its input size unless a table for another size is given) into a `SpecModel`."""
    if table is None:
        table = infer(net)
    classes: dict[str, type[SpecModule]] = {}
    children = _children(net.layers, table, classes)
    cls = type(net.name, (SpecModel,), {"__doc__": f"The network {net.name}, compiled by netspec."})
    model: SpecModel = cls(net.name, children, net.forward)
    if net.flow is not None:
        model._flow = compile_flow(net.flow, _in_place(children), _aliasing(children))
        for name, param in _parameters(net.layers):
            model.register_parameter(name, param)
    return model


def _children(
    nodes: Sequence[Node], table: ShapeTable, classes: dict[str, type[SpecModule]]
) -> list[tuple[str, nn.Module]]:
    """The modules of `nodes`, in declaration order; parameters are not modules (see `_parameters`)."""
    return [(n.name, _module(n, table, classes)) for n in nodes if n.layer != "Parameter"]


def _parameters(nodes: Sequence[Node]) -> list[tuple[str, nn.Parameter]]:
    out = []
    for n in nodes:
        if n.layer == "Parameter":
            cfg = n.config
            fill = torch.full(tuple(cfg.shape), float(cfg.value))  # type: ignore[union-attr]
            out.append((n.name, nn.Parameter(fill, requires_grad=cfg.requires_grad)))  # type: ignore[union-attr]
    return out


def _spec_module(node: Node, table: ShapeTable, classes: dict[str, type[SpecModule]]) -> SpecModule:
    """A spec's module: an instance of a class named after its definition (one class per definition)."""
    assert node.module is not None
    instance = table.instances[node]
    name = node.module.module
    if name not in classes:
        classes[name] = type(name, (SpecModule,), {"__doc__": f"The module {name} of a spec, compiled by netspec."})
    order = [c.name for c in instance.children if not c.kept and c.layer != "Parameter"]
    children = _children(instance.children, table, classes)
    flow = compile_flow(instance.flow, _in_place(children), _aliasing(children)) if instance.flow is not None else None
    return classes[name](children, _parameters(instance.children), flow, order)


def _in_place(children: list[tuple[str, nn.Module]]) -> frozenset[str]:
    return frozenset(name for name, m in children if _writes_in_place([m]))


_GIVE_BACK = (nn.Identity, nn.Flatten, Permute, nn.Dropout, nn.Dropout2d, StochasticDepth)


def _may_alias(m: nn.Module) -> bool:
    """Whether a module may give back its input itself, or a view of it: an Identity, a Flatten, a Permute, a
    dropout (outside training), an in-place layer, a chain of only such; a module with a run order of its own may."""
    if isinstance(m, SpecModule):
        return m._flow is not None or all(_may_alias(cast(nn.Module, m._modules[n])) for n in m._order)
    if isinstance(m, nn.Sequential):
        return all(_may_alias(c) for c in m)
    if isinstance(m, Residual):
        return False  # body(x) + shortcut(x): a new tensor
    return isinstance(m, _GIVE_BACK) or bool(getattr(m, "inplace", False))


def _aliasing(children: list[tuple[str, nn.Module]]) -> frozenset[str]:
    return frozenset(name for name, m in children if _may_alias(m))
