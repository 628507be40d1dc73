"""Import a live PyTorch model through torch.fx: `netspec.from_module(model, input=(3, 224, 224))`.

A printed module shows the modules but not forward(); FX shows forward(). Each module of the model is traced by
itself (`trace`), written as a `module` of the spec with its children and its forward (`modtree`, `flowtext`), and
the spec written is then compiled and held against the model: the same state_dict keys and shapes, the weights
loaded with strict=True, the same outputs in eval mode, and every layer's settings (Dropout's p, BatchNorm's eps
and momentum, ...) the same. A spec that would not be the model is never returned.

`netspec import torchvision:NAME` builds the model through torchvision's own registry
(`torchvision.models.get_model`), a closed table of names: nothing named by the user is imported.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..errors import SpecError
from ..lang import input_size
from .convert import layer_call
from .modtree import Tree
from .trace import ImportTraceError, fail

__all__ = ["ImportTraceError", "from_module", "from_torchvision", "torchvision_names"]

_TRANSFORMERS = ("vit_", "swin_", "maxvit_")


def torchvision_names() -> list[str]:
    """torchvision's classification models that the importer takes: every CNN (not the transformer families)."""
    import torchvision

    return [n for n in torchvision.models.list_models(module=torchvision.models) if not n.startswith(_TRANSFORMERS)]


def from_torchvision(
    name: str, input: str | Sequence[int] | None = None, *, name_as: str | None = None
) -> tuple[str, tuple[int, int, int]]:
    """The spec text of torchvision's classification model `name` (built untrained), and the input it is written
    for: `input`, else the crop size of the model's default weights (299 for inception_v3), else 3x224x224."""
    import torchvision

    names = torchvision.models.list_models(module=torchvision.models)
    if name not in names:
        from ..lang import did_you_mean

        raise SpecError(
            f"torchvision has no classification model {name!r}",
            None,
            hint=did_you_mean(name, names) or f"one of: {', '.join(names)}",
            code="E224",
            filename=f"torchvision:{name}",
        )
    size = input_size(input) or _default_size(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # googlenet's and inception's notes on their initialization
        model = torchvision.models.get_model(name)
    source = f"torchvision:{name}"
    return from_module(model, size, name=name_as, source=source), size


def _default_size(name: str) -> tuple[int, int, int]:
    import torchvision

    try:
        weights = torchvision.models.get_model_weights(name)
        crop = weights.DEFAULT.transforms().crop_size
        side = int(crop[0])
    except (ValueError, AttributeError, IndexError, TypeError):
        side = 224
    return (3, side, side)


def from_module(
    module: nn.Module,
    input: str | Sequence[int] | None = (3, 224, 224),
    *,
    name: str | None = None,
    source: str | None = None,
) -> str:
    """The spec text of an FX-traceable `nn.Module`, checked to rebuild it exactly.

    Raises `ImportTraceError` (a SpecError and a ValueError) naming the module path and the FX node of a call the
    language cannot express, or saying that FX cannot trace the model.
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"from_module takes an nn.Module, not {type(module).__name__}")
    size = input_size(input)
    if size is None:
        raise ValueError("from_module needs the input size, e.g. input=(3, 224, 224)")
    modes = {m: m.training for m in module.modules()}
    label = f"<{type(module).__name__} module>" if source is None else source
    try:
        module.eval()
        last: SpecError | None = None
        for folded in (True, False):
            text = _write(module, size, name, source or f"a live {type(module).__name__} module", folded)
            problem = _differs(module, text, size)
            if problem is None:
                return text
            if folded:
                warnings.warn(
                    f"netspec.from_module: the spec with repeats does not rebuild the model ({problem}); it is "
                    f"written without them. Please report this.",
                    stacklevel=2,
                )
            last = fail(
                f"the spec written does not rebuild the model ({problem}): a bug in netspec, please report it",
                code="E219",
            )
        assert last is not None
        raise last
    except SpecError as e:
        raise e.attach(label, None) from None
    finally:
        for m, mode in modes.items():
            m.training = mode


def _write(module: nn.Module, size: tuple[int, int, int], name: str | None, source: str, folded: bool) -> str:
    from ..build import TORCH_LAYERS

    layers = {cls: key for key, cls in TORCH_LAYERS.items()}
    kept_sizes: dict[str, tuple[int, ...] | None] | None = None

    def kept_input(path: str) -> tuple[int, ...] | None:
        nonlocal kept_sizes
        if kept_sizes is None:
            kept_sizes = _inputs_in_training(module, size)
        return kept_sizes.get(path)

    def leaf_text(m: nn.Module, path: str) -> str:
        if type(m).__name__ == "Permute":
            dims: list[int] = vars(m)["dims"]  # torchvision's Permute does not print them
            return f"Permute({tuple(dims)})"
        return _hidden_settings(m, layer_call(repr(m)))

    tree = Tree(leaf_text, lambda m: type(m) in layers, kept_input, module.get_submodule, folded=folded)
    if type(module) is nn.Sequential:
        items, _ = tree.sequential_items(module, "")
        tree.write_classes()
        body, forward = items(), []
    else:
        root = tree.instance(module, "")
        tree.instances.remove(root)
        tree.write_classes()
        body, forward = root.decls(), root.forward[1:]
    net = name or type(module).__name__
    lines = [
        f"# {net}, imported from {source} by `netspec import` (torch.fx); it has the model's state_dict.",
        f"network {net}",
        f"input {size[0]}x{size[1]}x{size[2]}",
        "",
    ]
    for d in tree.definitions:
        lines += [*d, ""]
    lines += ["layers {", *["    " + ln if ln else "" for ln in body], "}"]
    if forward:
        lines += ["", *forward]
    return "\n".join(lines) + "\n"


def _hidden_settings(m: nn.Module, call: str) -> str:
    """Settings that print(model) does not show (Hardswish's inplace): added where they are not the default."""
    from ..lang import LAYERS
    from .render import value_text

    cls = call.split("(", 1)[0]
    fields = LAYERS[cls].model_fields
    extra = []
    for key, value in vars(m).items():
        info = fields.get(key)
        if info is None or info.is_required() or f"{key}=" in call or not isinstance(value, (bool, int, float, str)):
            continue
        if value != info.default:
            extra.append(f"{key}={value_text(value)}")
    if not extra:
        return call
    head, args = call[: call.index("(") + 1], call[call.index("(") + 1 : -1]
    return head + ", ".join([a for a in [args] if a] + extra) + ")"


def _inputs_in_training(module: nn.Module, size: tuple[int, int, int]) -> dict[str, tuple[int, ...] | None]:
    """The input each module takes in a training-mode forward (auxiliary heads run only there), per image."""
    seen: dict[str, tuple[int, ...] | None] = {}
    hooks = []
    for path, m in module.named_modules():
        if path:

            def hook(_m: nn.Module, args: tuple[Any, ...], path: str = path) -> None:
                if args and isinstance(args[0], torch.Tensor) and path not in seen:
                    seen[path] = tuple(args[0].shape[1:])

            hooks.append(m.register_forward_pre_hook(hook))
    # a training-mode forward updates BatchNorm's running statistics: the model's buffers are put back afterwards
    saved = [(b, b.detach().clone()) for b in module.buffers()]
    try:
        module.train()
        with torch.no_grad():
            module(torch.zeros(2, *size))
    except Exception:
        pass
    finally:
        module.eval()
        for h in hooks:
            h.remove()
        with torch.no_grad():
            for b, before in saved:
                b.copy_(before)
    return seen


def _differs(module: nn.Module, text: str, size: tuple[int, int, int]) -> str | None:
    """What differs between the model and the spec compiled (None: nothing)."""
    from ..api import loads

    try:
        built = loads(text).module
    except SpecError as e:
        return f"it does not compile: {e.render().splitlines()[0]}"
    ours, theirs = built.state_dict(), module.state_dict()
    if list(ours) != list(theirs):
        missing = [k for k in theirs if k not in ours][:3]
        extra = [k for k in ours if k not in theirs][:3]
        return f"state_dict keys differ: missing {missing}, extra {extra}" if missing or extra else "key order"
    for k in theirs:
        if ours[k].shape != theirs[k].shape:
            return f"{k}: {tuple(ours[k].shape)} vs {tuple(theirs[k].shape)}"
    built.load_state_dict(theirs, strict=True)
    built.eval()
    problem = _settings_differ(module, built)
    if problem:
        return problem
    x = torch.randn(2, *size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want, got = module(x), built(x)
    if not isinstance(want, torch.Tensor) or want.shape != got.shape:
        return "the outputs differ in shape"
    diff = float((want - got).abs().max())
    scale = max(1.0, float(want.abs().max()))
    if not math.isfinite(diff) or diff > 1e-4 * scale:
        return f"the outputs differ by {diff:.3g}"
    return None


def _settings_differ(module: nn.Module, built: nn.Module) -> str | None:
    """Every layer's plain settings (p, eps, momentum, stride, ...) must be the model's."""
    mine = dict(built.named_modules())
    for path, m in module.named_modules():
        other = mine.get(path)
        if other is None:
            return f"{path!r} is missing"
        if m._modules:
            continue
        for key, value in vars(m).items():
            if key.startswith("_") or key == "training" or not isinstance(value, (bool, int, float, str, tuple)):
                continue
            if not hasattr(other, key):  # an attribute a model sets for itself (inception's stddev for init)
                continue
            theirs = getattr(other, key)
            if key == "dims" and isinstance(theirs, list):
                theirs = tuple(theirs)
            if theirs != value and not (isinstance(value, float) and math.isnan(value)):
                return f"{path}.{key} is {theirs!r}, the model's {value!r}"
    return None
