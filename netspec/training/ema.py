"""The `ema DECAY` setting: an exponential moving average of the weights, tested instead of the trained weights.

torch's `AveragedModel` with `get_ema_multi_avg_fn(decay)` keeps the average: after the first optimizer step it is
a copy of the weights, after each later one `ema = decay * ema + (1 - decay) * weights`. BatchNorm's running mean
and variance are averaged with the weights (`use_buffers=True`), so the averaged network's statistics match its
averaged weights; a count (`num_batches_tracked`) is not a weight and is copied. The average lives in the checkpoint
(`"ema"`), so a resumed run continues it and `netspec evaluate` tests it, as the run did.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


def make_ema(model: nn.Module, decay: float | None) -> AveragedModel | None:
    """The average of `model`'s weights (a copy, on its device and in its memory format); None without `ema`."""
    if decay is None:
        return None
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


@torch.no_grad()
def update_ema(ema: AveragedModel, model: nn.Module) -> None:
    """One step of the average, after an optimizer step of `model` (or of a wrapper with the same parameters)."""
    ema.update_parameters(model)
    for averaged, current in zip(ema.module.buffers(), model.buffers(), strict=True):
        if not averaged.is_floating_point():  # the lerp of a count would truncate: the count is the model's
            averaged.copy_(current)


def ema_state(ema: AveragedModel) -> dict[str, Any]:
    """What the checkpoint holds: the averaged weights (a state_dict like the model's) and the steps averaged."""
    return {"weights": ema.module.state_dict(), "steps": int(ema.n_averaged)}


def load_ema(ema: AveragedModel, state: dict[str, Any]) -> None:
    ema.module.load_state_dict(state["weights"])
    ema.n_averaged.fill_(int(state["steps"]))
