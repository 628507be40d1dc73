"""checkpoint.pt: written whole or not at all, loaded without running any code.

A checkpoint holds only tensors, numbers, strings and lists (the settings and metrics as JSON text), which is what
`torch.load(..., weights_only=True)` accepts: a crafted pickle is refused before anything in it runs.

`spec_of` reads back what `netspec import CHECKPOINT` needs (the spec that ran and what the run changed in it), and
`check_weights` holds a recovered spec to the checkpoint's weights: the format is the trainer's, so its reading is
here, and the importer turns what it reads into spec text with the language alone.
"""

from __future__ import annotations

import json
import os
import pickle
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from ..build import build
from ..errors import DataError, UsageError
from ..lang import load_spec
from ..shapes import infer

CHECKPOINT_FORMAT = "netspec-checkpoint"
CHECKPOINT_VERSION = 1


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write to a temporary file in the same folder, flush it to disk, then rename: never a half-written file."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save({"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, **payload}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# What a refused or broken file can raise from inside torch.load: every one means "not a checkpoint we can use".
_UNREADABLE = (
    pickle.UnpicklingError,
    RuntimeError,
    EOFError,
    ValueError,
    AttributeError,
    TypeError,
    KeyError,
    IndexError,
    OSError,
    UnicodeDecodeError,
)


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a checkpoint safely: `weights_only=True` refuses any pickle that would run code."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such checkpoint") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a directory, not a checkpoint") from None
    except _UNREADABLE as e:
        raise DataError(
            f"{path}: not a netspec checkpoint, or not a safe one: {_refusal(e)}; nothing in it was run"
        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise DataError(f"{path}: not a netspec checkpoint")
    return ckpt


@dataclass(frozen=True)
class RunSpec:
    """The spec behind a checkpoint's weights: the text that ran, and what the run changed in it."""

    checkpoint: str  # the checkpoint's path
    text: str  # the spec's text, as it was given
    filename: str  # the name it was given under ("" for spec text)
    input: tuple[int, int, int]  # the input the network ran at: --input, with the data set's channels
    requested_input: tuple[int, int, int] | None  # --input, or the spec's own (None in a checkpoint without it)
    constants: dict[str, Any]  # the --set values, and `classes` where the data set decided it (JSON: lists)
    classes: int  # the data set's number of classes
    weights: dict[str, Any]  # the model's state_dict
    # the run's `normalize` (mean, std), as its settings give it, or None (pixels were scaled to [0, 1] only)
    normalize: tuple[list[float], list[float]] | None = None


def spec_of(path: str | os.PathLike[str]) -> RunSpec:
    """What a checkpoint (or a run folder's checkpoint.pt) says about the spec it was trained from."""
    p = Path(path)
    if p.is_dir():
        if not (p / "checkpoint.pt").is_file():
            raise UsageError(f"{path}: a folder without a checkpoint.pt (give a run folder or a checkpoint)")
        p = p / "checkpoint.pt"
    ckpt = load_checkpoint(p)
    try:
        settings = json.loads(ckpt["settings"])
        options, norm = settings.get("options", {}), settings.get("normalize")
        requested = options.get("input")
        return RunSpec(
            checkpoint=str(p),
            text=str(ckpt["spec"]),
            filename=str(ckpt.get("filename") or ""),
            input=_size(ckpt["input"]),
            requested_input=_size(requested) if requested is not None else None,
            constants=dict(json.loads(ckpt["constants"])),
            classes=len(ckpt["classes"]),
            weights=ckpt["model"],
            normalize=([float(m) for m in norm["mean"]], [float(s) for s in norm["std"]]) if norm else None,
        )
    except (KeyError, TypeError, ValueError, AttributeError):  # ValueError: json's JSONDecodeError too
        raise DataError(f"{p}: a netspec checkpoint without the spec, input or constants it ran with") from None


def _size(value: Any) -> tuple[int, int, int]:
    c, h, w = (int(v) for v in value)
    return c, h, w


def check_weights(text: str, run: RunSpec) -> None:
    """The spec `text`, compiled with no flags, must take the run's weights with `strict=True`."""
    net = load_spec(text, f"<the spec recovered from {run.checkpoint}>")
    load_weights(build(net, infer(net)), run.weights, run.checkpoint)


def _refusal(e: BaseException) -> str:
    """The line of torch's refusal that says what was refused (not its advice to load unsafely)."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    for ln in lines:
        if ln.startswith(("WeightsUnpickler error:", "Unsupported global", "Unsupported operand")):
            return ln[:200]
    return (lines[0][:200] if lines else type(e).__name__) if not isinstance(e, KeyError) else "not a torch file"


def load_weights(model: nn.Module, state: dict[str, Any], path: str | os.PathLike[str]) -> None:
    try:
        model.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError) as e:
        first = str(e).strip().splitlines()
        detail = " ".join(ln.strip() for ln in first[:3])[:300]
        raise DataError(f"{path}: its weights do not fit the network built from its spec ({detail})") from None


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """Every random state, in types `torch.load(weights_only=True)` accepts (tensors, numbers, lists, strings)."""
    np_state = cast(tuple[Any, ...], np.random.get_state(legacy=True))  # (kind, keys, pos, has_gauss, cached)
    py_state = random.getstate()
    state = {
        "python": [py_state[0], list(py_state[1]), py_state[2]],
        "numpy": [
            np_state[0],
            torch.from_numpy(np_state[1].astype(np.int64)),
            int(np_state[2]),
            int(np_state[3]),
            float(np_state[4]),
        ],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
