"""The training epoch and the test pass, on data held on the device as uint8 tensors.

An epoch draws its data order and its augmentation from the run's seed and the epoch number alone, so a resumed run
trains exactly the batches an uninterrupted one would. Under `torchrun` every process draws the same global batch and
augmentation and keeps its own slice: the gradients are those of one process with the same global batch.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.optim.lr_scheduler import LRScheduler
from torch.optim.swa_utils import AveragedModel

from ..errors import NetspecError
from ..lang.train_section import TrainSpec
from .augment import BatchAugment
from .batch import normalize
from .device import Dist, autocast
from .ema import update_ema
from .optim import scaled_lr, warmup_factor


class Diverged(NetspecError):
    """The loss or the weights became NaN or infinite: the run stops, exit code 3."""

    exit_code = 3


class Interrupted(NetspecError):
    """Ctrl-C: the run stops after the current step, exit code 130."""

    exit_code = 130


@dataclass(frozen=True)
class Compute:
    """How batches run: on which device, in which precision and memory format, normalized how, split how."""

    device: torch.device
    precision: str
    channels_last: bool
    mean_std: tuple[Tensor, Tensor] | None  # per channel, on the device; None: pixels scaled to [0, 1]
    dist: Dist = field(default_factory=Dist)
    tta_flip: bool = False  # `tta flip`: a test pass averages the logits of each image and its horizontal mirror

    def inputs(self, x: Tensor) -> Tensor:
        """uint8 (N, C, H, W) -> the model's input: normalized float, in the memory format the model runs in."""
        x = x.float().div_(255) if self.mean_std is None else normalize(x, *self.mean_std)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def autocast(self) -> torch.autocast:
        return autocast(self.device, self.precision)


@dataclass(frozen=True)
class TrainLoop:
    """Everything an epoch of training uses."""

    model: nn.Module  # what the steps call: the DistributedDataParallel or compiled wrapper, if any
    optimizer: torch.optim.Optimizer
    scheduler: LRScheduler | None
    per_batch: bool  # the scheduler steps every batch (OneCycleLR), not every epoch
    scaler: torch.amp.GradScaler | None  # fp16 only
    images: Tensor  # (N, C, H, W) uint8, on the device
    labels: Tensor  # (N,) int64, on the device
    augment: BatchAugment
    compute: Compute
    settings: TrainSpec  # seed, batch_size, epochs, label_smoothing
    progress: bool  # a bar of \r frames: on a terminal only, where a log file gets the per-epoch line instead
    ema: AveragedModel | None = None  # `ema DECAY`: the weights' moving average, updated after every step


@dataclass(frozen=True)
class Epoch:
    loss: float  # the mean training loss over the epoch's images
    lr: float  # the rate the epoch's last step used (metrics.csv's `lr`)


def epoch_seed(seed: int, epoch: int, stream: int) -> int:
    """A distinct, reproducible seed per (run seed, epoch, stream): data order and augmentation never share one."""
    return (seed * 1_000_003 + epoch * 7_919 + stream * 104_729) % (2**63 - 1)


def _generator(device: torch.device, seed: int) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(seed)
    return g


def train_epoch(loop: TrainLoop, epoch: int, stop: threading.Event) -> Epoch:
    """One pass over the training images in the epoch's order; returns early, unfinished, once `stop` is set."""
    loop.model.train()
    t, device = loop.settings, loop.compute.device
    n = loop.images.shape[0]
    order = torch.randperm(n, generator=_generator(torch.device("cpu"), epoch_seed(t.seed, epoch, 0))).to(device)
    draws = _generator(device, epoch_seed(t.seed, epoch, 1))
    steps = math.ceil(n / t.batch_size)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    bar = _Progress(n, f"epoch {epoch}/{t.epochs}") if loop.progress else None
    pending: Tensor | None = None  # on CUDA a step's loss is checked one step later, so the check never stalls
    seen, lr = 0, loop.optimizer.param_groups[0]["lr"]
    for step in range(steps):
        idx = order[step * t.batch_size : (step + 1) * t.batch_size]
        x = loop.augment(loop.images[idx], generator=draws)  # (B, C, H, W) uint8, the whole global batch
        warmup = warmup_factor((epoch - 1) * steps + step, t.warmup * steps)
        lr = loop.optimizer.param_groups[0]["lr"] * warmup  # the rate this step uses
        loss = _step(loop, x, loop.labels[idx], epoch, step, warmup)
        if pending is not None and not bool(torch.isfinite(pending)):
            raise _diverged(pending, epoch, step)
        if device.type == "cpu" and not bool(torch.isfinite(loss)):
            raise _diverged(loss, epoch, step + 1)
        pending = loss if device.type != "cpu" else None
        loss_sum += loss.double()
        seen += x.shape[0]
        if bar is not None:
            bar.update(x.shape[0], loss_sum, seen, last=step == steps - 1)
        if stop.is_set():
            break
    if pending is not None and not bool(torch.isfinite(pending)):
        raise _diverged(pending, epoch, steps)
    if bar is not None:
        bar.close()
    if loop.compute.dist.enabled:
        import torch.distributed as tdist

        tdist.all_reduce(loss_sum)  # the sum over every rank's images; `seen` already counts the global batch
    if loop.scheduler is not None and not loop.per_batch and not stop.is_set():
        loop.scheduler.step()
    return Epoch(float(loss_sum) / max(1, seen), lr)


def _step(loop: TrainLoop, x: Tensor, y: Tensor, epoch: int, step: int, warmup: float) -> Tensor:
    """One optimizer step on this rank's slice of the global batch `x`, at the rate times `warmup`; returns the
    slice's summed loss / world."""
    dist, b = loop.compute.dist, x.shape[0]
    if dist.enabled:
        per = math.ceil(b / dist.world)
        x, y = x[dist.rank * per : (dist.rank + 1) * per], y[dist.rank * per : (dist.rank + 1) * per]
    with loop.compute.autocast():
        logits = loop.model(loop.compute.inputs(x))
    # the loss summed over this rank's images / the global batch size, times the world size: DDP's mean over ranks
    # then gives exactly the global batch's mean loss, also for an uneven last batch
    loss = F.cross_entropy(logits.float(), y, reduction="sum", label_smoothing=loop.settings.label_smoothing)
    loss = loss * (dist.world / b)
    loop.optimizer.zero_grad(set_to_none=True)
    with scaled_lr(loop.optimizer, warmup):  # around the step alone: a per-batch schedule steps as it would
        if loop.scaler is not None:
            loop.scaler.scale(loss).backward()
            loop.scaler.step(loop.optimizer)
            loop.scaler.update()
        else:
            loss.backward()
            try:
                loop.optimizer.step()
            except RuntimeError as e:  # e.g. a schedule pushed the rate past what float32 holds
                raise Diverged(
                    f"the optimizer step failed at epoch {epoch}, step {step + 1} ({str(e)[:120]}): "
                    f"training diverged (try a smaller --lr)"
                ) from None
    if loop.ema is not None:
        update_ema(loop.ema, loop.model)
    if loop.scheduler is not None and loop.per_batch:
        loop.scheduler.step()
    return loss.detach() * (b / dist.world)


def _diverged(loss: Tensor, epoch: int, step: int) -> Diverged:
    return Diverged(
        f"the loss became {float(loss)} at epoch {epoch}, step {step}: training diverged (try a smaller --lr)"
    )


class _Progress:
    """tqdm's bar over an epoch's images, with the running loss and images per second."""

    def __init__(self, total: int, title: str):
        from tqdm import tqdm

        self.bar = tqdm(total=total, desc=title, unit="img", leave=False, dynamic_ncols=True, file=sys.stderr)
        self.t0 = time.perf_counter()
        self.calls = 0

    def update(self, images: int, loss_sum: Tensor, seen: int, last: bool) -> None:
        self.bar.update(images)
        if self.calls % 10 == 0 or last:  # reading the loss waits for the device: not every step
            elapsed = max(time.perf_counter() - self.t0, 1e-9)
            self.bar.set_postfix(loss=f"{float(loss_sum) / seen:.4f}", img_s=f"{seen / elapsed:,.0f}")
        self.calls += 1

    def close(self) -> None:
        self.bar.close()


@dataclass(frozen=True)
class Evaluation:
    loss: float  # the mean cross-entropy over the test images
    correct: int
    total: int
    confusion: Tensor  # (classes, classes) int64 on the CPU: [true, predicted]

    @property
    def accuracy(self) -> float:
        return self.correct / max(1, self.total)


def evaluate_model(
    model: nn.Module, images: Tensor, labels: Tensor, num_classes: int, batch_size: int, compute: Compute
) -> Evaluation:
    """The model on the test set; under `torchrun` each process takes its part and the counts are summed."""
    model.eval()
    n, dist = images.shape[0], compute.dist
    lo, hi = 0, n
    if dist.enabled:
        per = math.ceil(n / dist.world)
        lo, hi = min(n, dist.rank * per), min(n, (dist.rank + 1) * per)
    loss_sum = torch.zeros((), dtype=torch.float64, device=compute.device)
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=compute.device)
    with torch.no_grad():
        for i in range(lo, hi, batch_size):
            x = images[i : min(i + batch_size, hi)].to(compute.device, non_blocking=True)
            y = labels[i : min(i + batch_size, hi)].to(compute.device, non_blocking=True)
            with compute.autocast():
                logits = model(compute.inputs(x)).float()
                if compute.tta_flip:  # (B, C, H, W): W mirrored
                    logits = (logits + model(compute.inputs(x.flip(3))).float()) / 2
            loss_sum += F.cross_entropy(logits.float(), y, reduction="sum").double()
            pred = logits.argmax(1)
            confusion += torch.bincount(y * num_classes + pred, minlength=num_classes**2).view(num_classes, num_classes)
    if dist.enabled:
        import torch.distributed as tdist

        tdist.all_reduce(loss_sum)
        tdist.all_reduce(confusion)
    total = int(confusion.sum())
    return Evaluation(float(loss_sum) / max(1, total), int(confusion.diag().sum()), total, confusion.cpu())


def per_class(confusion: Tensor, classes: list[str]) -> dict[str, float]:
    """Each class's accuracy: the share of its test images predicted as it (nan for a class without any)."""
    out = {}
    for i, name in enumerate(classes):
        total = int(confusion[i].sum())
        out[name] = (int(confusion[i, i]) / total) if total else float("nan")
    return out
