"""How fast `netspec train` is, against the usual hand-written loop, on this machine.

    python benchmarks/train_speed.py                         # generates CIFAR-10-format data in a temp folder
    python benchmarks/train_speed.py --data-dir ~/.cache/netspec --runs 3 --images 4096 --test 500

1. End to end, whole processes, alternated: `netspec train SPEC --data cifar10 --epochs 1 --train-limit N
   --test-limit M` (startup, data loading, one epoch, the test pass with the spec's test batch, plots and
   checkpoint included) against `benchmarks/handwritten_loop.py` (PIL images, torchvision transforms, a DataLoader
   with 2 workers, fp32, the same net and settings). Prints seconds, images/s and the ratio.
2. In process: netspec's epoch time against the time of the model's forward/backward/optimizer steps alone on the
   same batches: the share of epoch time netspec spends outside the model.
3. The machine's limit: the measured matrix-multiply rate in the precision netspec runs (bf16 where native, else
   fp32) divided by 6 x the forward MACs per image (2 FLOPs per MAC forward, 4 backward), and netspec's training
   rate as a share of it.

Data: the CIFAR-10 files in --data-dir if they are there, else CIFAR-10's real on-disk format (pickled batches)
written to a temp folder with images from netspec's `shapes` generator.
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def write_cifar_format(folder: Path, n_train: int, n_test: int) -> None:
    """CIFAR-10's real layout: cifar-10-batches-py/data_batch_1..5, test_batch, batches.meta (python pickles)."""
    from netspec.training.data import load_data

    data = load_data("shapes", size=(32, 32), train_limit=n_train, test_limit=n_test, seed=0)
    out = folder / "cifar-10-batches-py"
    out.mkdir(parents=True, exist_ok=True)
    train = data.train_images.reshape(n_train, -1).numpy()
    labels = data.train_labels.tolist()
    parts = np.array_split(np.arange(n_train), 5)
    for i, idx in enumerate(parts, 1):
        batch = {
            b"batch_label": f"training batch {i} of 5".encode(),
            b"labels": [labels[j] for j in idx],
            b"data": train[idx],
            b"filenames": [f"{j}.png".encode() for j in idx],
        }
        (out / f"data_batch_{i}").write_bytes(pickle.dumps(batch, protocol=2))
    test = {
        b"batch_label": b"testing batch 1 of 1",
        b"labels": data.test_labels.tolist(),
        b"data": data.test_images.reshape(n_test, -1).numpy(),
        b"filenames": [f"{j}.png".encode() for j in range(n_test)],
    }
    (out / "test_batch").write_bytes(pickle.dumps(test, protocol=2))
    meta = {b"label_names": [c.encode() for c in data.classes], b"num_cases_per_batch": n_train // 5, b"num_vis": 3072}
    (out / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))


def timed(cmd: list[str], cwd: Path) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return seconds


def matmul_rate(dtype: torch.dtype, n: int = 1024, repeat: int = 20) -> float:
    """FLOP/s of the best of several n x n matrix multiplications."""
    a = torch.randn(n, n).to(dtype)
    b = torch.randn(n, n).to(dtype)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def in_process(spec: str, data_dir: Path, n: int, batch: int) -> dict:
    """netspec's epoch (augmentation, normalization, steps) vs the model's steps alone on identical batches."""
    import threading

    import netspec
    from netspec.training.augment import BatchAugment
    from netspec.training.batch import channel_stats
    from netspec.training.data import load_data
    from netspec.training.device import resolve_precision
    from netspec.training.loop import Compute, TrainLoop, train_epoch
    from netspec.training.optim import make_optimizer

    compiled = netspec.load(spec)
    t = compiled.train.model_copy(update={"batch_size": batch})
    device = torch.device("cpu")
    precision = resolve_precision("auto", device)
    data = load_data("cifar10", data_dir, train_limit=n, test_limit=10, download=False)
    model = compiled.module.to(memory_format=torch.channels_last)
    opt = make_optimizer(t.optimizer, model.parameters())
    augment = BatchAugment(t.augment, (32, 32))
    compute = Compute(device, precision, True, channel_stats(t.normalize.mean, t.normalize.std, 3, device))

    def loop(images: torch.Tensor, labels: torch.Tensor) -> TrainLoop:
        return TrainLoop(model, opt, None, False, None, images, labels, augment, compute, t, progress=False)

    never = threading.Event()
    train_epoch(loop(data.train_images[:batch], data.train_labels[:batch]), 1, never)  # warm up oneDNN's caches
    t0 = time.perf_counter()
    train_epoch(loop(data.train_images, data.train_labels), 1, never)
    epoch_s = time.perf_counter() - t0
    batches = [compute.inputs(data.train_images[i : i + batch]) for i in range(0, n, batch)]
    labels = [data.train_labels[i : i + batch] for i in range(0, n, batch)]
    t0 = time.perf_counter()
    for x, y in zip(batches, labels):
        with compute.autocast():
            logits = model(x)
        loss = torch.nn.functional.cross_entropy(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    model_s = time.perf_counter() - t0
    return {"epoch_s": epoch_s, "model_s": model_s, "precision": precision, "macs": compiled.shapes.total_macs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path)
    ap.add_argument("--spec", default=str(ROOT / "specs" / "cifar_best.net"))
    ap.add_argument("--images", type=int, default=4096)
    ap.add_argument("--test", type=int, default=500)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--skip-end-to-end", action="store_true")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="netspec-bench-"))
    data_dir = args.data_dir
    if data_dir is None or not (data_dir / "cifar-10-batches-py").exists():
        data_dir = tmp / "data"
        write_cifar_format(data_dir, args.images, args.test)
        print(f"data: CIFAR-10 format written to {data_dir} ({args.images} train / {args.test} test images)")
    print(
        f"machine: {torch.get_num_threads()} torch threads, torch {torch.__version__}, "
        f"{torch.cuda.get_device_name() if torch.cuda.is_available() else 'CPU only'}"
    )

    rows = []
    if not args.skip_end_to_end:
        ours, theirs = [], []
        for r in range(args.runs):
            out = tmp / f"run{r}"
            ours.append(
                timed(
                    [
                        sys.executable,
                        "-m",
                        "netspec",
                        "train",
                        args.spec,
                        "--data",
                        "cifar10",
                        "--data-dir",
                        str(data_dir),
                        "--epochs",
                        "1",
                        "--train-limit",
                        str(args.images),
                        "--test-limit",
                        str(args.test),
                        "--out",
                        str(out),
                        "--quiet",
                        "--no-download",
                    ],
                    ROOT,
                )
            )
            theirs.append(
                timed(
                    [
                        sys.executable,
                        str(ROOT / "benchmarks" / "handwritten_loop.py"),
                        "--data-dir",
                        str(data_dir),
                        "--spec",
                        args.spec,
                        "--images",
                        str(args.images),
                        "--test",
                        str(args.test),
                    ],
                    ROOT,
                )
            )
            print(f"run {r + 1}: netspec {ours[-1]:.1f} s, hand-written loop {theirs[-1]:.1f} s", flush=True)
        a, b = statistics.median(ours), statistics.median(theirs)
        rows.append(("end to end (median, whole process)", f"{a:.1f} s", f"{b:.1f} s", f"{b / a:.2f}x"))
        rows.append(("images/s end to end", f"{args.images / a:.1f}", f"{args.images / b:.1f}", ""))

    m = in_process(args.spec, data_dir, min(args.images, 2048), 256)
    dtype = torch.bfloat16 if m["precision"] == "bf16" else torch.float32
    rate = matmul_rate(dtype)
    limit = rate / (6 * m["macs"])
    n = min(args.images, 2048)
    ours_rate = n / m["epoch_s"]
    outside = (m["epoch_s"] - m["model_s"]) / m["epoch_s"]
    print()
    print("| measure | netspec | hand-written | ratio |")
    print("| --- | --- | --- | --- |")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print()
    print(f"matmul rate ({m['precision']}): {rate / 1e9:.1f} GFLOP/s; forward MACs per image: {m['macs']:,}")
    print(
        f"machine limit: {limit:.1f} images/s; netspec trains at {ours_rate:.1f} images/s = "
        f"{100 * ours_rate / limit:.0f}% of it"
    )
    print(
        f"epoch {m['epoch_s']:.2f} s, model steps alone {m['model_s']:.2f} s: "
        f"{100 * max(0.0, outside):.1f}% of epoch time outside forward/backward"
    )


if __name__ == "__main__":
    main()
