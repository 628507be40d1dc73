"""The zoo's promise, checked against torchvision: a spec of examples/zoo/ compiled at the model's input size has
torchvision's state_dict (keys, order and shapes), loads its weights strictly, gives its outputs in eval mode, and
has its parameter count; its MACs are those of torchvision's weights metadata (`_ops`), to within 1%."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import netspec
import torch
import torchvision

ROOT = Path(__file__).resolve().parents[1]
ZOO = ROOT / "examples" / "zoo"


def torchvision_model(name: str) -> torch.nn.Module:
    """torchvision's model, with weights that make every layer count: its own initialization gives some of the
    mobile nets outputs of 1e-9 (zero-initialized biases, unit batch norms, tiny classifiers and layer scales), and
    a comparison of outputs that small would prove nothing. Normalizations, biases, running statistics and layer
    scales are drawn at random; convolution and linear weights keep torchvision's scale."""
    torch.manual_seed(0)
    return randomize(torchvision.models.get_model(name, weights=None).eval())


def randomize(model: torch.nn.Module) -> torch.nn.Module:
    """Normalizations, biases, running statistics and layer scales drawn at random (see `torchvision_model`)."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for key, t in model.state_dict().items():
            if not t.is_floating_point():
                continue
            if key.endswith(("running_var", "layer_scale")) or (key.endswith(".weight") and t.dim() == 1):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            elif key.endswith(("running_mean", ".bias")):
                t.copy_(torch.randn(t.shape, generator=g) * 0.1)
    return model


def check_against_torchvision(
    spec: str, name: str, constants: dict[str, Any] | None = None, size: int = 224, macs: bool = True
) -> netspec.api.Compiled:
    """Assert the zoo's promise for `examples/zoo/{spec}.net` (with `constants`) against torchvision's `name`."""
    tv = torchvision_model(name)
    net = netspec.load(ZOO / f"{spec}.net", input=(3, size, size), constants=constants or {})
    ours = net.module.eval()
    theirs_sd, ours_sd = tv.state_dict(), ours.state_dict()
    assert list(ours_sd) == list(theirs_sd), _key_diff(list(theirs_sd), list(ours_sd))
    bad = [k for k in theirs_sd if theirs_sd[k].shape != ours_sd[k].shape]
    assert not bad, [(k, tuple(theirs_sd[k].shape), tuple(ours_sd[k].shape)) for k in bad[:5]]
    ours.load_state_dict(theirs_sd, strict=True)
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want, got = tv(x), ours(x)
    assert got.shape == want.shape
    scale = float(want.abs().max())
    assert scale > 1e-2, f"outputs of {scale:g}: too small for the comparison to mean anything"
    assert float((got - want).abs().max()) < 1e-4 * scale
    assert net.shapes.total_params == sum(p.numel() for p in tv.parameters())
    if macs:
        meta = torchvision.models.get_model_weights(name).DEFAULT.meta
        assert abs(net.shapes.total_macs / 1e9 - meta["_ops"]) <= 0.01 * meta["_ops"], (
            net.shapes.total_macs,
            meta["_ops"],
        )
    return net


def _key_diff(want: list[str], got: list[str]) -> str:
    missing = [k for k in want if k not in got]
    extra = [k for k in got if k not in want]
    if not missing and not extra:
        first = next(i for i, (a, b) in enumerate(zip(want, got)) if a != b)
        return f"the order differs first at {first}: torchvision has {want[first]!r}, the spec {got[first]!r}"
    return f"missing from the spec: {missing[:8]}; not in torchvision: {extra[:8]}"
