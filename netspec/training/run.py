"""The shared trainer: any spec, any data set, the spec's `train` settings (overridable), one run folder.

The data set is held as uint8 tensors on the training device and augmented a whole batch at a time (`augment`);
the model runs channels_last, under bf16 autocast on a GPU (on the CPU with `--precision bf16`). Every epoch writes
`checkpoint.pt` atomically and then appends a row to `metrics.csv`, so a killed run resumes from the last finished
epoch with `--resume` (`resume`) and ends with the numbers of an uninterrupted run: the data order and the
augmentation draws follow from the seed and the epoch (`loop`), the other random states are in the checkpoint.

Under `torchrun`, each process trains its shard of every global batch with DistributedDataParallel; rank 0 alone
writes the run folder, and the test set is split between the processes and evaluated once in total.

>>> results = netspec.train("specs/cifar_best.net", data="shapes", epochs=1, train_limit=512,
...                         test_limit=256, out="runs/try")                     # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import os
import shlex
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..build import build
from ..errors import UsageError
from .augment import BatchAugment
from .batch import channel_stats
from .checkpoint import load_weights, rng_state, save_checkpoint, seed_everything, set_rng_state
from .device import Dist, close_distributed, init_distributed, resolve_device, resolve_precision
from .ema import ema_state, load_ema, make_ema
from .loop import Compute, Diverged, Evaluation, Interrupted, TrainLoop, evaluate_model, per_class, train_epoch
from .optim import OVERRIDES, make_optimizer, make_schedule, override, param_groups
from .prepare import Prepared, prepare
from .report import Log, write_architecture, write_report
from .resume import Resumed, check_schedule_length, restore_run
from .run_folder import append_metrics, environment, holds_run, jsonable, new_run_dir, write_json, write_metrics
from .settings import Request, Resume, SpecSource, TrainOptions, plan, request
from .tensorboard import EpochWriter, require, run_hparams, write_hparams


@dataclass(frozen=True)
class Results:
    """results.json, and what `netspec.train` returns."""

    final_train_loss: float
    final_test_loss: float
    test_accuracy: float
    correct: int
    total: int
    per_class_accuracy: dict[str, float]
    epochs: int
    train_seconds: float
    out: str
    confusion_matrix: list[list[int]]  # [true class][predicted class]
    classes: list[str]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def train(path: str | os.PathLike[str] | None, **options: Any) -> dict[str, Any]:
    """Train the spec file at `path` with its `train` settings, overridden by `options` (the command line's flags
    as keywords: `data`, `epochs`, `lr`, `out`, `quiet`, `resume`, ...; `path` may be None with `resume=True`).
    Writes the run folder and returns results.json's content."""
    opts = TrainOptions.of(options)
    return run(plan(SpecSource.read(path) if path is not None else None, opts)).as_dict()


def trains(text: str | bytes, **options: Any) -> dict[str, Any]:
    """`train` for spec text: the run folder's spec.net holds the text."""
    opts = TrainOptions.of(options)
    return run(plan(SpecSource.of(text), opts)).as_dict()


def run(job: Request | Resume, on_epoch: Callable[[int, float], None] | None = None) -> Results:
    """A new run (a spec already checked by `settings.plan`) or the continuation of one. `on_epoch(epoch, test
    accuracy)` is called after each epoch is saved (a sweep's pruner: an exception it raises stops the run)."""
    dist = init_distributed(job.opts.device)
    try:
        return _run(job, dist, on_epoch)
    finally:
        close_distributed(dist)


@dataclass
class _Run:
    """A run in progress: what it trains, where it writes, and the metrics rows so far."""

    out: Path
    p: Prepared
    opts: TrainOptions
    model: nn.Module  # the network itself, whose weights are saved and tested
    loop: TrainLoop
    test: tuple[torch.Tensor, torch.Tensor]  # images and labels, on the device
    settings: dict[str, Any]
    metrics: list[dict[str, Any]]
    log: Log
    tensorboard: EpochWriter | None = None  # --tensorboard, on the main process
    on_epoch: Callable[[int, float], None] | None = None

    def evaluate(self, split: tuple[torch.Tensor, torch.Tensor] | None = None) -> Evaluation:
        """The test set, or the images of `split` (the validation images)."""
        t, images = self.p.train, split or self.test
        model = self.loop.ema.module if self.loop.ema is not None else self.model  # `ema`: the average is tested
        return evaluate_model(model, *images, self.p.data.num_classes, t.test_batch_size, self.loop.compute)


def _run(job: Request | Resume, dist: Dist, on_epoch: Callable[[int, float], None] | None) -> Results:
    log = Log(job.opts.quiet, dist.main)
    if job.opts.tensorboard:
        require()  # before any data is read
    device = resolve_device(job.opts.device, dist)
    req, resumed = _request(job, log)
    precision = resolve_precision(req.opts.precision, device)
    if device.type == "cpu" and dist.enabled and "OMP_NUM_THREADS" not in os.environ:
        # processes sharing a CPU: split the cores instead of oversubscribing them (spinning threads are slow)
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // dist.world))
    p = prepare(req, log)
    if resumed is not None:
        check_schedule_length(resumed, p.train, p.net.train_inferred)
    out = Path(req.opts.out) if req.opts.out else new_run_dir(p.net.filename, p.train.data)
    if resumed is None and holds_run(out):  # every rank sees it: none is left waiting
        raise UsageError(f"{out} already holds a run: pass --resume to continue it, or choose another --out")
    if dist.main:
        out.mkdir(parents=True, exist_ok=True)
        log.attach(out / "log.txt")
    r = _start(p, req.opts, out, device, precision, dist, log)
    r.on_epoch = on_epoch
    start = _restore(r, resumed.checkpoint) if resumed is not None and resumed.checkpoint is not None else 1
    if dist.main:
        (out / "spec.net").write_text(p.net.source or "")  # exactly the text that ran; --resume compares SPEC with it
        write_architecture(out, p.net, p.table, log)
        write_json(out / "settings.json", r.settings)
        write_json(
            out / "env.json", environment(device, precision, dist, r.loop.compute.channels_last, req.opts.compile)
        )
    log(
        f"{p.net.name}: {p.table.total_params:,} parameters, {p.table.total_macs:,} MACs per image at "
        f"{'x'.join(map(str, p.net.input))}; {p.data.name}: {len(p.data.train_labels):,} train / "
        f"{len(p.data.test_labels):,} test images, {p.data.num_classes} classes; {device}, {precision}"
        f"{', channels_last' if r.loop.compute.channels_last else ''}"
    )
    log(f"run folder: {out}")
    if dist.main and req.opts.tensorboard:
        r.tensorboard = EpochWriter(out, r.metrics, resumed is not None)  # and the epochs it does not show yet
    try:
        return _train(r, start)
    finally:
        if r.tensorboard is not None:
            r.tensorboard.close()


def _request(job: Request | Resume, log: Log) -> tuple[Request, Resumed | None]:
    """A new run as it was checked, or a resumed one with its own spec and options."""
    if isinstance(job, Request):
        return job, None
    resumed = restore_run(job, log)
    return request(resumed.source, resumed.opts), resumed


# ---------------------------------------------------------------------------------------------------------------
# Model, optimizer, data on the device
# ---------------------------------------------------------------------------------------------------------------


def _start(
    p: Prepared, opts: TrainOptions, out: Path, device: torch.device, precision: str, dist: Dist, log: Log
) -> _Run:
    t, data = p.train, p.data
    seed_everything(t.seed)
    model = build(p.net, p.table)
    conv = any(isinstance(m, nn.Conv2d) for m in model.modules())
    channels_last = opts.channels_last if opts.channels_last is not None else conv
    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if dist.enabled and opts.sync_bn:
        import torch.distributed as tdist

        if tdist.get_backend() == "nccl":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        else:
            log("--sync-bn: SyncBatchNorm needs the NCCL backend (CUDA); BatchNorm stays per process")
    ema = make_ema(model, t.ema)  # of the model as it starts, on its device, before any wrapper
    optimizer = make_optimizer(t.optimizer, param_groups(model, t.no_decay_on_norms))
    steps_per_epoch = math.ceil(len(data.train_labels) / t.batch_size)
    scheduler, per_batch = make_schedule(t.schedule, optimizer, t.epochs, steps_per_epoch)
    stepped: nn.Module = model
    if dist.enabled:
        from torch.nn.parallel import DistributedDataParallel

        stepped = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if opts.compile:
        stepped = torch.compile(stepped)  # type: ignore[assignment]
    norm = t.normalize
    mean_std = channel_stats(norm.mean, norm.std, data.channels, device) if norm is not None else None
    compute = Compute(device, precision, channels_last, mean_std, dist, t.tta == "flip")
    loop = TrainLoop(
        model=stepped,
        optimizer=optimizer,
        scheduler=scheduler,
        per_batch=per_batch,
        scaler=torch.amp.GradScaler("cuda") if precision == "fp16" else None,
        images=data.train_images.to(device),
        labels=data.train_labels.to(device),
        augment=BatchAugment(t.augment, (p.net.input[1], p.net.input[2])),
        compute=compute,
        settings=t,
        progress=dist.main and not opts.quiet and sys.stderr.isatty(),
        ema=ema,
    )
    test = (data.test_images.to(device), data.test_labels.to(device))
    return _Run(out, p, opts, model, loop, test, _settings(p, opts, compute), [], log)


def _restore(r: _Run, ckpt: dict[str, Any]) -> int:
    """The checkpoint's weights, optimizer and schedule state, random states and metrics rows; the next epoch."""
    loop = r.loop
    load_weights(r.model, ckpt["model"], r.out / "checkpoint.pt")
    loop.optimizer.load_state_dict(ckpt["optimizer"])
    if loop.scheduler is not None and ckpt.get("scheduler") is not None:
        loop.scheduler.load_state_dict(ckpt["scheduler"])
    override(
        loop.optimizer, loop.scheduler, {k: getattr(r.opts, k) for k in OVERRIDES if getattr(r.opts, k) is not None}
    )
    if loop.scaler is not None and ckpt.get("scaler"):
        loop.scaler.load_state_dict(ckpt["scaler"])
    if loop.ema is not None and ckpt.get("ema") is not None:
        load_ema(loop.ema, ckpt["ema"])
    set_rng_state(ckpt["rng"])
    r.metrics.extend(json.loads(ckpt["metrics"]))
    if r.loop.compute.dist.main:
        write_metrics(r.out / "metrics.csv", r.metrics)  # the finished epochs' rows, exactly as they were
    r.log(f"resuming {r.out} after epoch {int(ckpt['epoch'])} of {r.p.train.epochs}")
    return int(ckpt["epoch"]) + 1


def _settings(p: Prepared, opts: TrainOptions, compute: Compute) -> dict[str, Any]:
    """settings.json: every resolved setting; under "options", what --resume restores."""
    t, data = p.train, p.data
    return {
        "spec": p.net.filename,
        "network": p.net.name,
        "input": list(p.net.input),
        "constants": p.constants,
        "data": data.name,
        "classes": data.classes,
        "train_images": len(data.train_labels),
        "test_images": len(data.test_labels),
        **t.describe(),
        "train_limit": opts.train_limit,
        "test_limit": opts.test_limit,
        "device": str(compute.device),
        "precision": compute.precision,
        "channels_last": compute.channels_last,
        "compile": opts.compile,
        "world_size": compute.dist.world,
        "params": p.table.total_params,
        "macs_per_image": p.table.total_macs,
        "options": {
            "data": t.data,
            "data_dir": opts.data_dir,
            "train_limit": opts.train_limit,
            "test_limit": opts.test_limit,
            "input": list(p.requested_input),
            "constants": p.constants,
            "epochs": t.epochs,
            "batch_size": t.batch_size,
            "test_batch_size": t.test_batch_size,
            "seed": t.seed,
            "precision": compute.precision,
            "sync_bn": opts.sync_bn,
            **{k: getattr(opts, k) for k in OVERRIDES},
        },
        "constant_values": jsonable(p.net.constants),
    }


# ---------------------------------------------------------------------------------------------------------------
# The epochs
# ---------------------------------------------------------------------------------------------------------------


def _train(r: _Run, start: int) -> Results:
    seconds = sum(float(row["seconds"]) for row in r.metrics)
    last: Evaluation | None = None
    with _stop_on_ctrl_c() as stop:
        try:
            for epoch in range(start, r.p.train.epochs + 1):
                last, took = _epoch(r, epoch, stop)
                seconds += took
                if r.on_epoch is not None:
                    r.on_epoch(epoch, last.accuracy)
        except Interrupted:
            spec = r.p.net.filename or str(r.out / "spec.net")
            display = ["--tensorboard"] if r.opts.tensorboard else []
            resume = shlex.join(["netspec", "train", spec, "--out", str(r.out), "--resume", *display])
            r.log(
                f"interrupted: the last finished epoch is saved in {r.out / 'checkpoint.pt'}; continue with\n  {resume}"
            )
            raise Interrupted(f"interrupted; continue with: {resume}") from None
    return _finish(r, last or r.evaluate(), seconds)  # a resumed finished run is tested once more


@contextmanager
def _stop_on_ctrl_c() -> Iterator[threading.Event]:
    """The first Ctrl-C stops the run at the next step boundary (the last finished epoch is saved); a second one
    interrupts at once."""
    stop = threading.Event()

    def on_sigint(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    main = threading.current_thread() is threading.main_thread()  # only the main thread may set handlers
    old = signal.signal(signal.SIGINT, on_sigint) if main else None
    try:
        yield stop
    finally:
        if old is not None:
            signal.signal(signal.SIGINT, old)


def _epoch(r: _Run, epoch: int, stop: threading.Event) -> tuple[Evaluation, float]:
    """Train, test, keep the checkpoint while it is good: (the test, the epoch's training seconds)."""
    t0 = time.perf_counter()
    e = train_epoch(r.loop, epoch, stop)
    if stop.is_set():
        raise Interrupted("interrupted")
    if r.loop.compute.device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    test = r.evaluate()
    finite = math.isfinite(test.loss) and all(
        bool(torch.isfinite(v).all()) for v in r.model.state_dict().values() if v.is_floating_point()
    )
    if not finite:
        raise _diverged_weights(epoch)
    n = len(r.p.data.train_labels)
    row = {
        "epoch": epoch,
        "train_loss": f"{e.loss:.6f}",
        "test_loss": f"{test.loss:.6f}",
        "test_accuracy": f"{test.accuracy:.6f}",
        "seconds": f"{seconds:.3f}",
        "images_per_s": f"{n / seconds:.1f}",
        "lr": f"{e.lr:.6g}",
    }
    if r.p.val is not None:
        v = r.evaluate(r.p.val)
        row.update(val_loss=f"{v.loss:.6f}", val_accuracy=f"{v.accuracy:.6f}")
    r.metrics.append(row)
    if r.loop.compute.dist.main:
        # the checkpoint first (it holds the metrics rows too), then the row: a kill between the two loses nothing,
        # as --resume rewrites metrics.csv from the checkpoint
        save_checkpoint(r.out / "checkpoint.pt", _checkpoint(r, epoch))
        append_metrics(r.out / "metrics.csv", row)
        if r.tensorboard is not None:
            r.tensorboard.write(row)
    r.log(
        f"epoch {epoch}/{r.p.train.epochs}  train_loss {e.loss:.4f}  test_loss {test.loss:.4f}  "
        f"test_acc {100 * test.accuracy:.2f}% ({test.correct}/{test.total})  {seconds:.1f}s  {n / seconds:,.0f} img/s"
    )
    return test, seconds


def _diverged_weights(epoch: int) -> Diverged:
    return Diverged(
        f"the weights became non-finite during epoch {epoch}: training diverged (try a smaller --lr); the last "
        f"good checkpoint is kept"
    )


def _checkpoint(r: _Run, epoch: int) -> dict[str, Any]:
    """Everything to evaluate the run or continue it: weights, optimizer, schedule, random states, metrics, spec."""
    loop, net = r.loop, r.p.net
    return {
        "epoch": epoch,
        "model": r.model.state_dict(),
        "optimizer": loop.optimizer.state_dict(),
        "scheduler": loop.scheduler.state_dict() if loop.scheduler is not None else None,
        "scaler": loop.scaler.state_dict() if loop.scaler is not None else None,
        "ema": ema_state(loop.ema) if loop.ema is not None else None,  # what evaluate and results test
        "rng": rng_state(),
        "spec": net.source,
        "filename": net.filename or "",
        "input": list(net.input),
        "constants": json.dumps(r.p.constants),
        "settings": json.dumps(r.settings, default=str),
        "classes": list(r.p.data.classes),
        "metrics": json.dumps(r.metrics),
    }


def _finish(r: _Run, test: Evaluation, seconds: float) -> Results:
    classes = r.p.data.classes
    results = Results(
        float(r.metrics[-1]["train_loss"]) if r.metrics else float("nan"),
        test.loss,
        test.accuracy,
        test.correct,
        test.total,
        per_class(test.confusion, classes),
        r.p.train.epochs,
        seconds,
        str(r.out),
        test.confusion.tolist(),
        list(classes),
    )
    if r.loop.compute.dist.main:
        payload = results.as_dict()
        write_json(r.out / "results.json", payload)
        write_report(r.out, r.settings, r.metrics, payload)
        if r.tensorboard is not None:
            scores = ("test_accuracy", "final_test_loss", "final_train_loss")
            write_hparams(r.out, run_hparams(r.settings), {k: payload[k] for k in scores}, r.p.train.epochs)
        r.log.result(
            f"final: train loss {results.final_train_loss:.6f}, test loss {test.loss:.4f}, test accuracy "
            f"{100 * test.accuracy:.2f}% ({test.correct}/{test.total}); report: {r.out / 'report.md'}"
        )
    return results
