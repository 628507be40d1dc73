"""`netspec evaluate`: a trained model tested from its run folder or its checkpoint alone.

By default it tests as the run did: the run's data set, test limit, data folder, precision, test-time augmentation
and weights (the moving average where the run kept one); the checkpoint holds the spec, input, constants and settings
the network is built from. `tta` and `weights` test it otherwise: what a trick adds, on the same trained model.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from ..build import build
from ..errors import DataError
from ..shapes import infer
from .batch import channel_stats
from .checkpoint import load_checkpoint, load_weights
from .data import ImageData, load_data
from .device import resolve_device, resolve_precision
from .loop import Compute, evaluate_model, per_class
from .run_folder import write_json
from .settings import SpecSource


def evaluate(
    source: str | os.PathLike[str],
    data: str | None = None,
    data_dir: str | None = None,
    test_limit: int | None = None,
    batch_size: int | None = None,
    device: str = "auto",
    precision: str | None = None,
    download: bool = True,
    out: str | None = None,
    tta: str | None = None,
    weights: str | None = None,
) -> dict[str, Any]:
    """Test loss, accuracy, per-class accuracy and the confusion matrix of a checkpoint (or a run folder's). `tta`
    ("flip", "none") and `weights` ("ema", "trained"): by default as the run tested."""
    path = Path(source)
    if path.is_dir():
        path = path / "checkpoint.pt"
    ckpt = load_checkpoint(path)
    settings = json.loads(ckpt["settings"])
    run = settings.get("options", {})
    tested = _weights(ckpt, weights, path)
    if tta is not None:  # else as the run tested
        settings["tta"] = None if tta == "none" else tta
    if data is None:  # the run's own test set
        test_limit = run.get("test_limit") if test_limit is None else test_limit
        data_dir = run.get("data_dir") if data_dir is None else data_dir
    spec = SpecSource(ckpt["spec"], ckpt.get("filename") or str(path))
    net = spec.elaborate(tuple(ckpt["input"]), json.loads(ckpt["constants"]))
    table = infer(net)
    dev = resolve_device(device)
    prec = resolve_precision(precision or run.get("precision") or settings.get("precision", "fp32"), dev)
    name = data or settings["data"]
    size, seed = (net.input[1], net.input[2]), int(settings.get("seed", 0))
    ds = load_data(name, data_dir, size=size, train_limit=1, test_limit=test_limit, download=download, seed=seed)
    _check_fits(name, ds, net.input[0], table.output[0])
    compute = _compute(settings, ds, dev, prec)
    model = _model(net, table, ckpt["ema"]["weights"] if tested == "ema" else ckpt["model"], path, compute)
    batch = batch_size or int(settings.get("test_batch_size", 256))
    test = evaluate_model(model, ds.test_images, ds.test_labels, ds.num_classes, batch, compute)
    result = {
        "checkpoint": str(path),
        "data": ds.name,
        "test_limit": test_limit,
        "precision": prec,
        "tta": settings.get("tta"),  # `tta flip` averages each image's logits with its mirror's
        "weights": tested,
        "epoch": int(ckpt["epoch"]),
        "test_loss": test.loss,
        "test_accuracy": test.accuracy,
        "correct": test.correct,
        "total": test.total,
        "per_class_accuracy": per_class(test.confusion, ds.classes),
        "confusion_matrix": test.confusion.tolist(),
        "classes": ds.classes,
    }
    if out:
        _write(Path(out), result)
    return result


def _check_fits(name: str, ds: ImageData, channels: int, classes: int) -> None:
    if ds.num_classes != classes or ds.channels != channels:
        raise DataError(
            f"{name} has {ds.num_classes} classes of {ds.channels}-channel images; the checkpoint's "
            f"network takes {channels} channels and predicts {classes} classes"
        )


def _model(net: Any, table: Any, weights: dict[str, Any], path: Path, compute: Compute) -> torch.nn.Module:
    """The network with the tested weights, on the device and in the memory format the test runs in."""
    model = build(net, table)
    load_weights(model, weights, path)
    model = model.to(compute.device)
    return model.to(memory_format=torch.channels_last) if compute.channels_last else model


def _weights(ckpt: dict[str, Any], weights: str | None, path: Path) -> str:
    """Which weights are tested: the moving average where the run kept one, unless `weights` says otherwise."""
    if weights == "ema" and not ckpt.get("ema"):
        raise DataError(f"{path}: the run kept no moving average of its weights (its spec has no `ema` setting)")
    if weights is None:
        return "ema" if ckpt.get("ema") else "trained"
    if weights not in ("ema", "trained"):
        raise ValueError(f"weights={weights!r}: expected 'ema' or 'trained'")
    return weights


def _compute(settings: dict[str, Any], ds: ImageData, device: torch.device, precision: str) -> Compute:
    norm = settings.get("normalize")
    mean_std = channel_stats(norm["mean"], norm["std"], ds.channels, device) if norm else None
    tta_flip = settings.get("tta") == "flip"
    return Compute(device, precision, bool(settings.get("channels_last")), mean_std, tta_flip=tta_flip)


def _write(out: Path, result: dict[str, Any]) -> None:
    from .report import confusion_plot

    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "evaluation.json", result)
    confusion_plot(out / "confusion_matrix.png", result["confusion_matrix"], result["classes"])
