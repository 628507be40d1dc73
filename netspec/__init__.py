"""netspec: describe, compile and train image-classification networks from a text spec."""

__version__ = "0.1.0"

from .errors import DataError, NetspecError, SpecError, UsageError

__all__ = ["DataError", "NetspecError", "SpecError", "UsageError", "__version__", "check", "load", "train"]


def __getattr__(name: str):
    # lazy: `import netspec` and `netspec check` never import torch
    if name in ("load", "check", "Compiled"):
        from . import api

        return getattr(api, name)
    if name == "train":
        from .training.run import train

        return train
    raise AttributeError(f"module 'netspec' has no attribute {name!r}")
