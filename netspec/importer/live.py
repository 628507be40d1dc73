"""`from_sequential`: a live nn.Module -> spec text, through the text print(model) writes, checked beyond that text.

A live module shows what its text hides: subclasses, shared modules, parameters held outside any layer, and
arguments print(model) does not print (AvgPool2d's `ceil_mode`, MaxPool2d's `return_indices`, Hardswish's
`inplace`). Each is refused by its dotted path, with a `ModuleImportError`. The only module here that imports torch.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..errors import SpecError
from ..lang import LAYERS
from .convert import read_module, same_value
from .pipeline import import_text
from .read import PNode

if TYPE_CHECKING:
    from torch import nn


class ModuleImportError(SpecError, ValueError):
    """A part of a live module that a spec cannot express (a SpecError that is also a ValueError)."""


def from_sequential(module: nn.Module, input: str | Sequence[int] | None = None, name: str | None = None) -> str:
    """The spec text of a live `nn.Module` built from nn.Sequential stacks and netspec's layers.

    The top-level module may be of any class, but its forward() cannot be seen: its children are assumed to run in
    registration order (the header comment says so), with a flatten added before a classifier that needs one.
    Raises `ModuleImportError` (a SpecError and a ValueError) naming the first part, by dotted path, that a spec
    cannot express.

    >>> import torch.nn as nn
    >>> print(from_sequential(nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU())).splitlines()[-4:])
    ['layers {', '    Conv2d(8, kernel_size=3)', '    ReLU()', '}']
    """
    from torch import nn

    if not isinstance(module, nn.Module):
        raise TypeError(f"from_sequential takes an nn.Module, not {type(module).__name__}")
    label = f"<{type(module).__name__} module>"
    _check_parts(module, label)
    text = _module_text(module)
    result = import_text(
        text,
        label,
        name=name,
        input=input,
        source=f"a live {type(module).__name__} module (netspec.importer.from_sequential)",
        live=True,
    )
    _check_hidden(module, text, label)
    for w in result.warnings:
        warnings.warn(w, stacklevel=2)
    return result.spec


def _fail(label: str, path: str, message: str) -> ModuleImportError:
    return ModuleImportError(f"cannot express {path!r}: {message}", None, code="E212", filename=label)


def _check_parts(module: Any, label: str) -> None:
    """Every part is an nn.Sequential (keeping Sequential's forward()), netspec's Residual or one of netspec's own
    torch layers, holds no weights of its own, and is used once."""
    from torch import nn

    from ..build import TORCH_LAYERS, Residual

    for path, m in module.named_modules(remove_duplicate=False):
        own = list(m._parameters.items()) + list(m._buffers.items())
        kind = type(m)
        if path == "" or (isinstance(m, nn.Sequential) and kind.forward is nn.Sequential.forward) or kind is Residual:
            if own and kind not in TORCH_LAYERS.values():
                raise _fail(
                    label,
                    path or "(top)",
                    f"it holds its own parameter or buffer {own[0][0]!r}, which no spec layer holds",
                )
            continue
        cls = kind.__name__
        if cls in TORCH_LAYERS and kind is TORCH_LAYERS[cls]:
            continue
        if isinstance(m, nn.Sequential):
            raise _fail(label, path, f"{cls} is an nn.Sequential with its own forward(), which a spec cannot express")
        if cls in TORCH_LAYERS:
            raise _fail(label, path, f"{cls} is a subclass of torch's {cls} ({kind.__module__}.{kind.__qualname__})")
        raise _fail(
            label, path, f"{cls} is not among netspec's layers ({', '.join(TORCH_LAYERS)}) and is not an nn.Sequential"
        )
    seen: dict[nn.Module, str] = {}
    for path, m in module.named_modules(remove_duplicate=False):
        if m in seen and path:
            raise _fail(label, path, f"it is the same module as {seen[m]!r}: a spec cannot share weights")
        seen[m] = path


def _module_text(module: Any) -> str:
    """print(model)'s text, with nn.Sequential subclasses that keep Sequential's forward() printed as Sequential."""
    from torch import nn

    def rep(m: nn.Module, name: str | None) -> str:
        children = list(m._modules.items())
        if not children:
            return repr(m)
        keeps_forward = isinstance(m, nn.Sequential) and type(m).forward is nn.Sequential.forward
        cls = "Sequential" if name is not None and keeps_forward else m._get_name()
        lines = [f"{cls}("]
        extra = m.extra_repr()
        if extra:
            lines += ["  " + ln for ln in extra.split("\n")]
        for key, child in children:
            if child is None:
                continue
            body = rep(child, key).split("\n")
            lines.append(f"  ({key}): " + body[0])
            lines += ["  " + ln for ln in body[1:]]
        lines.append(")")
        return "\n".join(lines)

    return rep(module, None)


def _check_hidden(module: Any, text: str, label: str) -> None:
    """Arguments print(model) does not show (AvgPool2d's ceil_mode, MaxPool2d's return_indices, ...) must be at
    their defaults, or the spec would build a different layer: compare every layer's plain attributes."""
    import torch

    from ..build import TORCH_LAYERS

    root, _ = read_module(text, None)

    def walk(pn: PNode, m: Any, path: str) -> None:
        if not pn.is_leaf:
            kids = dict(m._modules)
            for c in pn.children:
                walk(c, kids[c.name], f"{path}.{c.name}" if path else c.name)
            return
        kwargs = {**pn.printed, **{k or LAYERS[pn.cls].POSITIONAL[0]: v for k, v in pn.spec_args}}
        with torch.device("meta"):
            ref = TORCH_LAYERS[pn.cls](**kwargs)
        for key, value in vars(m).items():
            if key.startswith("_") or key == "training":
                continue
            if isinstance(value, (bool, int, float, str, tuple, type(None))):
                if not _same_attr(getattr(ref, key, object()), value):
                    raise ModuleImportError(
                        f"cannot express {path!r}: its {key}={value!r} does not show in print(model), and "
                        f"netspec's {pn.cls} would have {key}={getattr(ref, key, None)!r}",
                        None,
                        code="E212",
                        filename=label,
                    )

    walk(root, module, "")


def _same_attr(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return True  # both NaN
    return same_value(a, b)
