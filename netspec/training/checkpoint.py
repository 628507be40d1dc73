"""checkpoint.pt: written whole or not at all, loaded without running any code.

A checkpoint holds only tensors, numbers, strings and lists (the settings and metrics as JSON text), which is what
`torch.load(..., weights_only=True)` accepts: a crafted pickle is refused before anything in it runs.
"""

from __future__ import annotations

import os
import pickle
import random
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from ..errors import DataError, UsageError

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
