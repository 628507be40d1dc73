"""Where a run computes: the processes under `torchrun`, the device, the precision and autocast."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import UsageError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Dist:
    """This process's place among the processes `torchrun` started (one process: rank 0 of 1)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def init_distributed(device: str) -> Dist:
    """Join the process group `torchrun` describes in the environment (WORLD_SIZE > 1), or stay alone."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch.distributed as tdist

    uses_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if not tdist.is_initialized():
        tdist.init_process_group(backend="nccl" if uses_cuda else "gloo")
    return Dist(tdist.get_rank(), tdist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def close_distributed(dist: Dist) -> None:
    if dist.enabled:
        import torch.distributed as tdist

        if tdist.is_initialized():
            tdist.destroy_process_group()


def cpu_has_native_bf16() -> bool:
    """True where the CPU computes bf16 natively (AVX512-BF16 or AMX); elsewhere bf16 is emulated and slower."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(f in flags for f in (" avx512_bf16", " amx_bf16"))


def resolve_device(name: str, dist: Dist | None = None) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise UsageError("--device cuda: no CUDA device is available")
        index = dist.local_rank if dist is not None and dist.enabled else torch.cuda.current_device()
        torch.cuda.set_device(index)
        return torch.device("cuda", index)
    if name != "cpu":
        raise UsageError(f"--device {name!r}: expected auto, cpu or cuda")
    return torch.device("cpu")


def resolve_precision(name: str, device: torch.device) -> str:
    """fp32, bf16 or fp16. `auto` is bf16 on a GPU that has it (fp16 on older ones) and fp32 on every CPU: on the CPU,
    bf16 lost 1.2 points of test accuracy on the mean of five seeds of a BatchNorm network (docs/performance.md),
    more than the 0.5 we accept for a default, so it is an option there (`--precision bf16`, about twice as fast
    where the CPU has native bf16)."""
    if name not in PRECISIONS:
        raise UsageError(f"--precision {name!r}: expected auto, fp32, bf16 or fp16")
    if name != "auto":
        if name == "fp16" and device.type == "cpu":
            raise UsageError("--precision fp16 needs a CUDA device; use bf16 or fp32 on the CPU")
        return name
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "fp32"


def autocast(device: torch.device, precision: str) -> torch.autocast:
    """The forward pass's autocast: off in fp32, where every op runs in float32 as written."""
    dtype = _AUTOCAST_DTYPES.get(precision)
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)
