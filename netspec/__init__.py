"""netspec: describe, compile and train image-classification networks from a text spec."""

from typing import Any

__version__ = "0.1.0"

from .errors import DataError, NetspecError, SpecError, UsageError

__all__ = [
    "DataError",
    "NetspecError",
    "SpecError",
    "UsageError",
    "__version__",
    "check",
    "checks",
    "from_module",
    "load",
    "loads",
    "train",
    "trains",
]


def __getattr__(name: str) -> Any:
    # lazy: `import netspec` and `netspec check` never import torch
    if name in ("load", "loads", "check", "checks", "Compiled"):
        from . import api

        return getattr(api, name)
    if name == "from_module":
        from .importer import fx

        return fx.from_module
    if name in ("train", "trains"):
        from .training import run

        return getattr(run, name)
    raise AttributeError(f"module 'netspec' has no attribute {name!r}")
