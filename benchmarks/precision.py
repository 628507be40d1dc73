"""bf16 against fp32 on the same work: does `--precision bf16` cost accuracy?

Each workload is trained with `--precision fp32` and with `--precision bf16` (forced: on a CPU without native bf16
it is emulated, with the same numerics, only slower), for several seeds. Prints every run, then the mean and spread
of each precision and the difference of the means. Speed is printed too, but it means something only where the CPU
has native bf16 (see the `native bf16` line).

Workloads (Fashion-MNIST: the idx files of Debian's `dataset-fashion-mnist` package, or --data-dir):
- `lenet5`: examples/lenet5.net on all 60,000 training and 10,000 test images;
- `cifar_best`: the report's best CIFAR-10 network (BatchNorm after every convolution) at 1x32x32, on the first
  5,000 training and 2,000 test images.

    apt-get install dataset-fashion-mnist    # once
    python benchmarks/precision.py [--workloads lenet5 cifar_best] [--seeds 0 1 2 3 4] [--epochs 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import netspec
import torch
from netspec.training.device import cpu_has_native_bf16

WORKLOADS = {
    "lenet5": dict(spec=ROOT / "examples" / "lenet5.net", options={}),
    "cifar_best": dict(
        spec=ROOT / "specs" / "cifar_best.net",
        options=dict(input="1x32x32", train_limit=5000, test_limit=2000, batch_size=128),
    ),
}


def _summary(values: list[float]) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.2f}% ± {spread:.2f} ({min(values):.2f}..{max(values):.2f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--workloads", nargs="+", choices=sorted(WORKLOADS), default=["lenet5", "cifar_best"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--epochs", type=int, default=3)
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, native bf16: {cpu_has_native_bf16()}")
    tmp = Path(tempfile.mkdtemp(prefix="netspec-precision-"))
    rows = []
    for name in args.workloads:
        w = WORKLOADS[name]
        acc: dict[str, list[float]] = {"fp32": [], "bf16": []}
        secs: dict[str, list[float]] = {"fp32": [], "bf16": []}
        for precision in ("fp32", "bf16"):
            for seed in args.seeds:
                t0 = time.perf_counter()
                r = netspec.train(
                    str(w["spec"]),
                    data="fashion-mnist",
                    data_dir=args.data_dir,
                    epochs=args.epochs,
                    seed=seed,
                    precision=precision,
                    out=str(tmp / f"{name}-{precision}-{seed}"),
                    quiet=True,
                    download=False,
                    **w["options"],
                )
                secs[precision].append(time.perf_counter() - t0)
                acc[precision].append(100 * r["test_accuracy"])
                print(
                    f"{name} {precision} seed {seed}: {acc[precision][-1]:.2f}% in {secs[precision][-1]:.0f} s",
                    flush=True,
                )
        diff = statistics.mean(acc["bf16"]) - statistics.mean(acc["fp32"])
        rows.append(
            (
                name,
                _summary(acc["fp32"]),
                _summary(acc["bf16"]),
                diff,
                statistics.median(secs["fp32"]) / statistics.median(secs["bf16"]),
            )
        )
    print()
    print(f"{args.epochs} epochs, seeds {' '.join(map(str, args.seeds))}; mean ± stdev (min..max) test accuracy")
    print()
    print("| workload | fp32 | bf16 | bf16 - fp32 | bf16 speed-up |")
    print("| --- | --- | --- | --- | --- |")
    for name, f32, b16, diff, speed in rows:
        print(f"| {name} | {f32} | {b16} | {diff:+.2f} points | {speed:.2f}x |")


if __name__ == "__main__":
    main()
