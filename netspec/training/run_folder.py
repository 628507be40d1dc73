"""The run folder's files: settings.json, env.json, metrics.csv, results.json (report.md and the plots are
`report`'s, checkpoint.pt is `checkpoint`'s). Each is replaced whole or appended to, never half-written."""

from __future__ import annotations

import csv
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from .device import Dist, cpu_has_native_bf16

METRIC_FIELDS = ["epoch", "train_loss", "test_loss", "test_accuracy", "seconds", "images_per_s", "lr"]
VAL_FIELDS = ["val_loss", "val_accuracy"]  # with `validation N` only, after train_loss


def metric_fields(row: dict[str, Any]) -> list[str]:
    """metrics.csv's columns for rows like `row`: the validation columns only for a run that holds images out."""
    return METRIC_FIELDS[:2] + VAL_FIELDS + METRIC_FIELDS[2:] if "val_loss" in row else METRIC_FIELDS


def new_run_dir(spec_path: str | None, data_name: str) -> Path:
    """`runs/<spec>-<data>-<time>/`, numbered when two runs start in the same second."""
    stem = Path(spec_path).stem if spec_path else "spec"
    return numbered(Path("runs") / f"{stem}-{Path(data_name).name}-{time.strftime('%Y%m%d-%H%M%S')}")


def numbered(base: Path) -> Path:
    """`base`, or `base-2`, `base-3`, ... : the first that does not exist yet."""
    out, i = base, 1
    while out.exists():
        i += 1
        out = Path(f"{base}-{i}")
    return out


def holds_run(out: Path) -> bool:
    return any((out / f).exists() for f in ("settings.json", "metrics.csv"))


def jsonable(value: Any) -> Any:
    """`value` as it reads back from JSON (tuples become lists, anything else its str)."""
    return json.loads(json.dumps(value, default=str))


def write_json(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def write_metrics(path: Path, rows: list[dict[str, Any]]) -> None:
    """metrics.csv rewritten from the rows a checkpoint holds (a resumed run's finished epochs, as they were)."""
    tmp = path.with_name(path.name + ".tmp")
    fields = metric_fields(rows[0] if rows else {})
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in fields})
    os.replace(tmp, path)


def append_metrics(path: Path, row: dict[str, Any]) -> None:
    new = not path.exists()
    fields = metric_fields(row)
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        if new:
            w.writeheader()
        w.writerow({k: row.get(k, "") for k in fields})
        f.flush()
        os.fsync(f.fileno())


def environment(device: torch.device, precision: str, dist: Dist, channels_last: bool, compiled: bool) -> dict:
    """env.json: the versions, the machine and how the run computed."""
    env: dict[str, Any] = {
        "netspec": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "precision": precision,
        "channels_last": channels_last,
        "compile": compiled,
        "world_size": dist.world,
        "cpu_native_bf16": cpu_has_native_bf16(),
    }
    try:
        import torchvision

        env["torchvision"] = torchvision.__version__
    except Exception:  # pragma: no cover
        pass
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
        env["cuda"] = torch.version.cuda
        env["cudnn_benchmark"] = torch.backends.cudnn.benchmark
    return env
