"""The Fashion-MNIST recipe (examples/fmnist_fast.net), timed end to end as a user runs it, and its ablation.

Each run is a whole `netspec train` process on all 60,000 training and the standard 10,000 test images (the idx
files of Debian's `dataset-fashion-mnist` package, or `-- --data-dir DIR`); its time is the process's wall time
(start-up, loading, training, every epoch's test pass, plots and checkpoint). Prints the machine, each seed's time and
test accuracy, and their mean and median.

--ablation runs the recipe with one setting changed per row (one seed each, --ablation-seed), and prints what each
setting adds, in points and seconds, against the recipe run with the same seed.

--validation N holds N training images out (stratified, fixed by the seed) and prints their accuracy instead: this
is how the recipe was tuned. The test set is never used to choose anything.

    apt-get install dataset-fashion-mnist    # once
    python benchmarks/recipe_fmnist.py                    # seeds 0 1 2: the headline
    python benchmarks/recipe_fmnist.py --ablation         # one seed per row
    python benchmarks/recipe_fmnist.py --ablation -- --epochs 10   # every run with more `netspec train` options
    python benchmarks/recipe_fmnist.py --validation 5000  # tuning: held-out accuracy, the test set unused
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "examples" / "fmnist_fast.net"

# Each row: the recipe with one setting of its train section replaced (a line) or left out (None), trained anew.
# Test-time flip costs no training: its row tests the recipe's own run again with `netspec evaluate --tta none`.
ABLATIONS: dict[str, tuple[str, dict[str, str | None]]] = {
    "smoothing": ("no label smoothing", {"label_smoothing": None}),
    "flip": ("no horizontal flip in training", {"augment": "augment [RandomCrop(padding=2)]"}),
    "crop": ("no random crop", {"augment": "augment [RandomHorizontalFlip()]"}),
    "onecycle": ("cosine anneal instead of one-cycle", {"schedule": "schedule CosineAnnealingLR()"}),
}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    flags = ""
    try:
        info = Path("/proc/cpuinfo").read_text()
        cpu = re.search(r"^model name\s*:\s*(.+)$", info, re.M).group(1)  # type: ignore[union-attr]
        flags = "yes" if re.search(r"\b(avx512_bf16|amx_bf16)\b", info) else "no"
    except (OSError, AttributeError):
        pass
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return (
        f"machine: {cpu}, {os.cpu_count()} CPUs, native bf16: {flags or 'unknown'}, GPU: {gpu}; "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, Python {platform.python_version()}"
    )


def variant(text: str, changes: dict[str, str | None]) -> str:
    """The spec with each named setting of its train section replaced by a line, left out (None), or added."""
    lines = text.splitlines()
    for key, new in changes.items():
        at = [i for i, line in enumerate(lines) if re.match(rf"\s+{key}\b", line)]
        if at:
            indent = re.match(r"\s*", lines[at[0]]).group(0)  # type: ignore[union-attr]
            lines[at[0] : at[0] + 1] = [] if new is None else [indent + new]
        elif new is not None:  # added as the train section's last line
            end = max(i for i, line in enumerate(lines) if line.strip() == "}")
            lines.insert(end, "    " + new)
    return "\n".join(lines) + "\n"


def run(spec: Path, seed: int, out: Path, extra: list[str]) -> dict:
    """One whole `netspec train` process: its wall time, final accuracy and the held-out accuracy if any. A run
    already finished in `out` (an earlier call with the same --out) is read, not run again."""
    timing = out / "benchmark.json"
    if not timing.exists():
        cmd = [sys.executable, "-m", "netspec", "train", str(spec), "--seed", str(seed), "--out", str(out), "--quiet"]
        t0 = time.perf_counter()
        subprocess.run(cmd + extra, check=True, stdout=subprocess.DEVNULL)
        timing.write_text(json.dumps({"seconds": time.perf_counter() - t0, "command": cmd + extra}))
    seconds = json.loads(timing.read_text())["seconds"]
    results = json.loads((out / "results.json").read_text())
    with open(out / "metrics.csv") as f:
        last = list(csv.DictReader(f))[-1]
    val = last.get("val_accuracy")
    return {
        "seconds": seconds,
        "test": 100 * results["test_accuracy"],
        "val": 100 * float(val) if val else None,
        "train_seconds": results["train_seconds"],
    }


def no_tta(run_dir: Path) -> float:
    """The run's model tested again without test-time augmentation."""
    cmd = [sys.executable, "-m", "netspec", "evaluate", str(run_dir), "--tta", "none", "--json"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return 100 * json.loads(out)["test_accuracy"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spec", type=Path, default=RECIPE)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--ablation", action="store_true", help="one row per setting left out, one seed each")
    ap.add_argument("--ablation-seed", type=int, default=0)
    ap.add_argument(
        "--rows", nargs="+", choices=list(ABLATIONS), default=list(ABLATIONS), help="ablation rows (default: all)"
    )
    ap.add_argument("--validation", type=int, default=0, metavar="N", help="hold N training images out, report them")
    ap.add_argument(
        "--out",
        type=Path,
        default=None,
        help="where the run folders go (default: a temporary folder); runs already "
        "finished there are read, not run again",
    )
    ap.add_argument("extra", nargs="*", help="more `netspec train` options, after --, e.g. -- --device cuda")
    args = ap.parse_args()
    print(machine(), flush=True)
    tmp = args.out or Path(tempfile.mkdtemp(prefix="netspec-recipe-"))
    tmp.mkdir(parents=True, exist_ok=True)
    text = args.spec.read_text()
    if args.validation:
        text = variant(text, {"validation": f"validation {args.validation}"})
    which = "val" if args.validation else "test"
    specs = {"recipe": text}
    if args.ablation:
        specs |= {ABLATIONS[key][0]: variant(text, ABLATIONS[key][1]) for key in args.rows}
    rows: dict[str, list[dict]] = {}
    for name, spec_text in specs.items():
        path = tmp / (re.sub(r"\W+", "_", name).strip("_") + ".net")
        path.write_text(spec_text)
        seeds = args.seeds if name == "recipe" and not args.ablation else [args.ablation_seed]
        for seed in seeds:
            r = run(path, seed, tmp / f"{path.stem}-seed{seed}", args.extra)
            rows.setdefault(name, []).append(r)
            print(f"{name}, seed {seed}: {which} accuracy {r[which]:.2f}% in {r['seconds']:.0f} s", flush=True)
    print()
    print(f"{args.spec.relative_to(ROOT) if args.spec.is_relative_to(ROOT) else args.spec}; {which} accuracy")
    print()
    if not args.ablation:
        runs = rows["recipe"]
        acc, secs = [r[which] for r in runs], [r["seconds"] for r in runs]
        print("| seed | seconds | accuracy |")
        print("| --- | --- | --- |")
        for seed, r in zip(args.seeds, runs):
            print(f"| {seed} | {r['seconds']:.0f} | {r[which]:.2f}% |")
        spread = statistics.stdev(acc) if len(acc) > 1 else 0.0
        print(
            f"| mean | {statistics.mean(secs):.0f} (median {statistics.median(secs):.0f}) | "
            f"{statistics.mean(acc):.2f}% ± {spread:.2f} |"
        )
        return
    base = rows["recipe"][0]
    if not args.validation:  # the same trained model, tested without the flip
        rows["no test-time flip (tta none; same training)"] = [
            base | {"test": no_tta(tmp / f"recipe-seed{args.ablation_seed}")}
        ]
    print(f"| run (seed {args.ablation_seed}) | accuracy | points vs recipe | seconds | seconds vs recipe |")
    print("| --- | --- | --- | --- | --- |")
    for name, (r,) in rows.items():
        print(
            f"| {name} | {r[which]:.2f}% | {r[which] - base[which]:+.2f} | {r['seconds']:.0f} | "
            f"{r['seconds'] - base['seconds']:+.0f} |"
        )


if __name__ == "__main__":
    main()
