"""Optimizers and learning-rate schedules: the spec's names looked up in a table of torch classes.

The spec stage (`netspec.lang.train_section`) validates the arguments, which carry torch's own names, and fills in
those that follow from other settings (CosineAnnealingLR's `T_max`, OneCycleLR's `max_lr`); here they are passed
on as they are.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.optim import lr_scheduler

OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "SGD": torch.optim.SGD,
    "Adam": torch.optim.Adam,
    "AdamW": torch.optim.AdamW,
}

SCHEDULES: dict[str, type[lr_scheduler.LRScheduler]] = {
    "StepLR": lr_scheduler.StepLR,
    "MultiStepLR": lr_scheduler.MultiStepLR,
    "ExponentialLR": lr_scheduler.ExponentialLR,
    "CosineAnnealingLR": lr_scheduler.CosineAnnealingLR,
    "OneCycleLR": lr_scheduler.OneCycleLR,
}

# Stepped after every batch, and told the run's length; the others step once per epoch.
PER_BATCH = frozenset({"OneCycleLR"})

# The optimizer arguments the command line may override, also when resuming.
OVERRIDES = ("lr", "momentum", "weight_decay")


# The layers whose weights `no_decay_on_norms` decays: the others (norms, biases, a spec's Parameters) are not.
DECAYED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d, nn.Linear)


def make_optimizer(spec: Any, params: Iterable[nn.Parameter] | list[dict[str, Any]]) -> torch.optim.Optimizer:
    """`spec`: the validated optimizer of the spec's `train` section (`SGD(lr=0.01, momentum=0.9)`); `params`:
    the parameters, or the param groups of `param_groups`."""
    return OPTIMIZERS[spec.kind()](params, **spec.args())


def param_groups(model: nn.Module, no_decay_on_norms: bool) -> Iterable[nn.Parameter] | list[dict[str, Any]]:
    """The model's parameters; with `no_decay_on_norms`, as two groups: the weights of convolutions and linear
    layers (the optimizer's weight decay), then every other parameter, marked `no_decay`, with weight decay 0."""
    if not no_decay_on_norms:
        return model.parameters()
    decayed = {id(m.weight) for m in model.modules() if isinstance(m, DECAYED)}
    params = list(model.parameters())
    groups: list[dict[str, Any]] = [
        {"params": [p for p in params if id(p) in decayed]},
        {"params": [p for p in params if id(p) not in decayed], "weight_decay": 0.0, "no_decay": True},
    ]
    return [g for g in groups if g["params"]]


def make_schedule(
    spec: Any, optimizer: torch.optim.Optimizer, epochs: int, steps_per_epoch: int
) -> tuple[lr_scheduler.LRScheduler | None, bool]:
    """(scheduler, steps every batch) for the spec's schedule; (None, False) without one."""
    if spec is None:
        return None, False
    kind, args = spec.kind(), spec.args()
    per_batch = kind in PER_BATCH
    if per_batch:
        args.update(epochs=epochs, steps_per_epoch=steps_per_epoch)
    return SCHEDULES[kind](optimizer, **args), per_batch


def override(
    optimizer: torch.optim.Optimizer, scheduler: lr_scheduler.LRScheduler | None, values: dict[str, float]
) -> None:
    """Apply --lr, --momentum, --weight-decay to a restored optimizer (and its schedule's base rate): flags given
    with --resume win over the checkpoint, say a smaller --lr after a divergence."""
    for key, value in values.items():
        for group in optimizer.param_groups:
            if key == "weight_decay" and group.get("no_decay"):
                continue  # `no_decay_on_norms`: norms and biases stay undecayed
            if key in group:
                group[key] = value
                if key == "lr" and "initial_lr" in group:
                    group["initial_lr"] = value
    if scheduler is not None and "lr" in values:
        scheduler.base_lrs = [values["lr"] for _ in scheduler.base_lrs]


def warmup_factor(step: int, warmup_steps: int) -> float:
    """`warmup N`: the share of the schedule's rate that optimizer step `step` (0-based, counted over the run) uses:
    (step + 1) / warmup_steps, rising linearly to 1 at the last warm-up step, then 1."""
    return 1.0 if step >= warmup_steps else (step + 1) / warmup_steps


@contextmanager
def scaled_lr(optimizer: torch.optim.Optimizer, factor: float) -> Iterator[None]:
    """The optimizer's rates times `factor` for the steps taken inside, then restored exactly: the schedule never
    sees the warm-up, so it runs as it would without it, and a resumed run needs no warm-up state."""
    if factor == 1.0:
        yield
        return
    rates = [group["lr"] for group in optimizer.param_groups]
    for group, lr in zip(optimizer.param_groups, rates):
        group["lr"] = lr * factor
    try:
        yield
    finally:
        for group, lr in zip(optimizer.param_groups, rates):
            group["lr"] = lr
