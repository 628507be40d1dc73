"""What a run shows: its log (stderr and log.txt), `report.md` in the report's layout, the plots (train loss, test
loss, test accuracy, learning rate, confusion matrix), and `compare` of several runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


class Log:
    """A run's log lines: on stderr (unless quiet) and in the run folder's log.txt; under `torchrun`, the main
    process alone shows anything."""

    def __init__(self, quiet: bool, main: bool):
        self.main = main
        self.quiet = quiet or not main
        self.path: Path | None = None
        self.lines: list[str] = []

    def attach(self, path: Path) -> None:
        """Write to `path` from now on, starting with what was logged before the run folder existed."""
        self.path = path
        with open(path, "a") as f:
            f.writelines(line + "\n" for line in self.lines)

    def result(self, msg: str) -> None:
        """The run's result: on stdout, even when quiet (the main process only)."""
        if self.main:
            print(msg, flush=True)
        self._write(msg)

    def warn(self, msg: str) -> None:
        """A warning: on stderr, even when quiet (the main process only)."""
        if self.main:
            print(f"warning: {msg}", file=sys.stderr, flush=True)
        self._write(f"warning: {msg}")

    def __call__(self, msg: str) -> None:
        if not self.quiet:
            print(msg, file=sys.stderr, flush=True)
        self._write(msg)

    def _write(self, msg: str) -> None:
        self.lines.append(msg)
        if self.path is not None:
            with open(self.path, "a") as f:
                f.write(msg + "\n")


def plot_module() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def _curve(
    path: Path, epochs: list[int], series: dict[str, list[float]], ylabel: str, title: str, log_y: bool = False
) -> None:
    plt = plot_module()
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for label, ys in series.items():
        ax.plot(epochs[: len(ys)], ys, marker="o", markersize=3, label=label)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    ax.set_ylabel(ylabel)
    if log_y and all(v > 0 for ys in series.values() for v in ys):
        ax.set_yscale("log")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if len(series) > 1:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def run_title(settings: dict) -> str:
    """What a run's plots are of: `cifar_best.net on shapes`."""
    spec = Path(settings.get("spec") or "").name or settings.get("network", "network")
    return f"{spec} on {Path(str(settings.get('data', '?'))).name}"


def confusion_plot(
    path: Path, confusion: list[list[int]], classes: list[str], title: str = "confusion matrix (row-normalized)"
) -> None:
    import numpy as np

    plt = plot_module()
    m = np.asarray(confusion, dtype=float)
    rows = m.sum(1, keepdims=True)
    frac = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
    n = len(classes)
    size = min(12, max(4, 0.45 * n + 2))
    fig, ax = plt.subplots(figsize=(size, size), dpi=100)
    im = ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
    if n <= 30:
        ax.set_xticks(range(n), classes, rotation=90, fontsize=8)
        ax.set_yticks(range(n), classes, fontsize=8)
        if n <= 12:
            for i in range(n):
                for j in range(n):
                    ax.text(
                        j,
                        i,
                        f"{int(m[i, j])}",
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="white" if frac[i, j] > 0.5 else "black",
                    )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


PLOTS = ("train_loss.png", "test_loss.png", "test_accuracy.png", "learning_rate.png", "confusion_matrix.png")


def write_plots(out: Path, settings: dict, metrics: list[dict], confusion: list[list[int]], classes: list[str]) -> None:
    epochs = [int(r["epoch"]) for r in metrics]
    name = run_title(settings)
    _curve(
        out / "train_loss.png",
        epochs,
        {"train": [float(r["train_loss"]) for r in metrics]},
        "loss",
        f"train loss: {name}",
    )
    _curve(
        out / "test_loss.png", epochs, {"test": [float(r["test_loss"]) for r in metrics]}, "loss", f"test loss: {name}"
    )
    _curve(
        out / "test_accuracy.png",
        epochs,
        {"test": [100 * float(r["test_accuracy"]) for r in metrics]},
        "accuracy (%)",
        f"test accuracy: {name}",
    )
    # metrics.csv's lr is the rate of each epoch's last step
    _curve(
        out / "learning_rate.png",
        epochs,
        {"lr": [float(r["lr"]) for r in metrics if r.get("lr")]},
        "learning rate (last step of the epoch)",
        f"learning rate: {name}",
    )
    confusion_plot(out / "confusion_matrix.png", confusion, classes, f"confusion matrix (row-normalized): {name}")


def write_architecture(out: Path, net: Any, table: Any, log: Log) -> None:
    """architecture.svg: the network as `netspec draw` draws it (folded). A drawing that fails costs a warning,
    never the run."""
    try:
        from ..tools.draw import draw_network

        draw_network(net, table, out / "architecture.svg")
    except Exception as e:  # a diagram is never worth a run
        log.warn(f"architecture.svg was not drawn ({type(e).__name__}: {e})")


def pct(x: float) -> str:
    return "nan" if x != x else f"{round(100 * x)}"


def report_markdown(settings: dict, results: dict, architecture: bool = False) -> str:
    """report.md: the settings, the augmentations and (apart from them) the normalization, the final numbers, the
    plots, and the network's diagram where `architecture` (architecture.svg was drawn)."""
    opt, sched, norm = settings.get("optimizer", {}), settings.get("schedule"), settings.get("normalize")
    augs = [f"{n}. {a['name']}({_args(a)})" for n, a in enumerate(settings.get("augment") or [], 1)]
    paragraphs = [
        f"# {settings.get('network', 'network')} on {settings.get('data')}",
        "Settings:",
        f"Batch size = {settings.get('batch_size')}",
        f"Test batch size = {settings.get('test_batch_size')}",
        f"Optimizer = {opt.get('name')}",
        f"Learning rate = {opt.get('lr')}",
        *([f"Momentum = {opt.get('momentum')}"] if "momentum" in opt else []),
        *([f"Weight decay = {opt.get('weight_decay')}"] if opt.get("weight_decay") else []),
        *([f"Schedule = {sched.get('name')}({_args(sched)})"] if sched else []),
        f"Number of epochs = {settings.get('epochs')}",
        f"Seed = {settings.get('seed')}",
        f"Input = {'x'.join(map(str, settings.get('input', [])))}",
        "Augmentations (training images only):",
        "\n".join(augs) or "none",
        # Normalize is no augmentation: it applies to every image, training and test alike
        f"Normalization = Normalize(mean={tuple(norm['mean'])}, std={tuple(norm['std'])})"
        if norm
        else "Normalization = none (pixels scaled to [0, 1])",
        "Performance:",
        f"Final train loss is **{results['final_train_loss']:.6f}**",
        f"Final test loss is **{results['final_test_loss']:.4f}**",
        f"Final test accuracy is **{pct(results['test_accuracy'])}% ({results['correct']}/{results['total']})**",
        "Detail description of accuracy:",
        *(f"Accuracy of {name}: {pct(acc)} %" for name, acc in results["per_class_accuracy"].items()),
        "![train loss](train_loss.png) ![test loss](test_loss.png) ![test accuracy](test_accuracy.png)",
        "![learning rate](learning_rate.png) ![confusion matrix](confusion_matrix.png)",
        *(["Architecture:", "![architecture](architecture.svg)"] if architecture else []),
    ]
    return "\n\n".join(paragraphs) + "\n"


def _args(call: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in call.items() if k != "name")


def write_report(out: Path, settings: dict, metrics: list[dict], results: dict) -> None:
    write_plots(out, settings, metrics, results["confusion_matrix"], results["classes"])
    (out / "report.md").write_text(report_markdown(settings, results, (out / "architecture.svg").is_file()))


# ---- compare ---------------------------------------------------------------------------------------------------


def load_run(path: Path) -> dict:
    from ..errors import UsageError

    if not path.is_dir():
        raise UsageError(f"{path}: not a run folder")
    try:
        results = json.loads((path / "results.json").read_text())
        settings = json.loads((path / "settings.json").read_text())
    except FileNotFoundError as e:
        raise UsageError(f"{path}: not a finished run ({Path(e.filename).name} is missing)") from None
    except json.JSONDecodeError as e:
        raise UsageError(f"{path}: a corrupt run file ({e})") from None
    import csv

    with open(path / "metrics.csv", newline="") as f:
        metrics = list(csv.DictReader(f))
    return {"path": path, "results": results, "settings": settings, "metrics": metrics}


def run_folders(paths: list[Path]) -> list[Path]:
    """The runs to compare: a run folder as it is, a sweep folder (no run of its own) as its finished runs."""
    out: list[Path] = []
    for p in map(Path, paths):
        inner = sorted(d for d in p.iterdir() if (d / "results.json").is_file()) if p.is_dir() else []
        sweep = (p / "sweep.json").is_file() or not (p / "settings.json").exists()
        out.extend(inner if sweep and inner else [p])
    return out


def _limit(value: Any) -> str:
    return "all" if value in (None, "") else f"{int(value):,}"


def compare(paths: list[Path], out: Path | None = None) -> str:
    """A table of the runs in `paths` (run folders, or sweep folders: their finished runs) and their curves."""
    runs = [load_run(p) for p in run_folders(paths)]
    headers = [
        "run",
        "spec",
        "data",
        "train",
        "test",
        "input",
        "epochs",
        "precision",
        "params",
        "MACs",
        "train loss",
        "test loss",
        "accuracy",
        "time (s)",
    ]
    rows = []
    for r in runs:
        s, res = r["settings"], r["results"]
        rows.append(
            [
                Path(r["path"]).name,
                Path(s.get("spec") or "-").name,
                Path(str(s.get("data"))).name,
                f"{s.get('train_images', 0):,}",
                f"{res['total']:,}",
                "x".join(map(str, s.get("input", []))),
                str(res.get("epochs", s.get("epochs"))),
                str(s.get("precision", "?")),
                f"{s.get('params', 0):,}",
                f"{s.get('macs_per_image', 0):,}",
                f"{res['final_train_loss']:.4f}",
                f"{res['final_test_loss']:.4f}",
                f"{100 * res['test_accuracy']:.2f}% ({res['correct']}/{res['total']})",
                f"{res.get('train_seconds', float('nan')):.1f}",
            ]
        )
    from ..table import render_table

    text = [render_table(headers, rows, right={3, 4, 6, 8, 9, 10, 11, 13})]
    test_sets = {
        (str(r["settings"].get("data")), r["results"]["total"], _limit(r["settings"].get("test_limit"))) for r in runs
    }
    if len(test_sets) > 1:
        text.append(
            "warning: these runs were tested on different data ("
            + "; ".join(f"{d}, {n:,} test images" for d, n, _ in sorted(test_sets))
            + "): their test numbers are not comparable"
        )
    target = out or Path("compare.png")
    _compare_plot(target, runs)
    text.append(f"curves: {target}")
    return "\n".join(text)


def _compare_plot(path: Path, runs: list[dict]) -> None:
    plt = plot_module()
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, 3, figsize=(15, 4), dpi=100)
    for r in runs:
        label = f"{Path(r['path']).name} ({run_title(r['settings'])})"
        ep = [int(m["epoch"]) for m in r["metrics"]]
        axes[0].plot(ep, [float(m["train_loss"]) for m in r["metrics"]], marker="o", markersize=3, label=label)
        axes[1].plot(ep, [float(m["test_loss"]) for m in r["metrics"]], marker="o", markersize=3, label=label)
        axes[2].plot(ep, [100 * float(m["test_accuracy"]) for m in r["metrics"]], marker="o", markersize=3, label=label)
    for ax, title, ylabel in zip(axes, ("train loss", "test loss", "test accuracy"), ("loss", "loss", "%")):
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
