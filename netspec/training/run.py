"""Stage 5: the shared trainer. Any spec, any data set, the spec's `train` settings (overridable), one run folder.

The data set is held as uint8 tensors on the training device and augmented a whole batch at a time
(`netspec.augment`); the model runs channels_last under bf16 autocast where the hardware has native bf16. Every
epoch appends a row to `metrics.csv` and then writes `checkpoint.pt` atomically, so a killed run resumes from the
last finished epoch with `--resume` and ends with the numbers of an uninterrupted run (the data order and the
augmentation draws are derived from the seed and the epoch; the other random states are in the checkpoint).

Under `torchrun`, each process trains its shard of every global batch with DistributedDataParallel; rank 0 alone
writes the run folder, and the test set is split between the processes and evaluated once in total.
"""

from __future__ import annotations

import csv
import json
import math
import os
import platform
import random
import shlex
import signal
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import __version__
from ..build import build
from ..errors import DataError, NetspecError, SpecError, UsageError
from ..lang import Network, load_spec, parse_size
from ..lang import train_section as S
from ..shapes import infer
from .augment import BatchAugment, normalize
from .data import load_data

CHECKPOINT_VERSION = 1
METRIC_FIELDS = ["epoch", "train_loss", "test_loss", "test_accuracy", "seconds", "images_per_s", "lr"]


class Diverged(NetspecError):
    """The loss became NaN or infinite: the run stops, exit code 3."""

    exit_code = 3


class Interrupted(NetspecError):
    exit_code = 130


@dataclass
class TrainOptions:
    """Command-line overrides; None means "the spec's `train` section decides" (or, with `resume`, "the run's")."""

    data: str | None = None
    data_dir: str | None = None
    epochs: int | None = None
    batch_size: int | None = None
    test_batch_size: int | None = None
    lr: float | None = None
    momentum: float | None = None
    weight_decay: float | None = None
    seed: int | None = None
    train_limit: int | None = None
    test_limit: int | None = None
    input: str | tuple | None = None
    constants: dict[str, Any] = field(default_factory=dict)
    device: str = "auto"
    precision: str = "auto"
    channels_last: bool | None = None  # None: on where it helps (CUDA, and CPU convolutions)
    compile: bool = False
    sync_bn: bool = False
    out: str | None = None
    resume: bool = False
    progress: bool = True
    download: bool = True
    quiet: bool = False


# ---------------------------------------------------------------------------------------------------------------
# Distributed set-up (torchrun)
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def _init_distributed(device_kind: str) -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch.distributed as tdist

    backend = "nccl" if device_kind == "cuda" else "gloo"
    if not tdist.is_initialized():
        tdist.init_process_group(backend=backend)
    return Dist(tdist.get_rank(), tdist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


# ---------------------------------------------------------------------------------------------------------------
# Device, precision
# ---------------------------------------------------------------------------------------------------------------


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
    if name not in ("auto", "fp32", "bf16", "fp16"):
        raise UsageError(f"--precision {name!r}: expected auto, fp32, bf16 or fp16")
    if name != "auto":
        if name == "fp16" and device.type == "cpu":
            raise UsageError("--precision fp16 needs a CUDA device; use bf16 or fp32 on the CPU")
        return name
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu_has_native_bf16() else "fp32"


def _autocast(device: torch.device, precision: str):
    if precision == "fp32":
        return nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


# ---------------------------------------------------------------------------------------------------------------
# Random state
# ---------------------------------------------------------------------------------------------------------------


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _rng_state() -> dict:
    """Every random state, in types `torch.load(weights_only=True)` accepts (tensors, numbers, lists, strings)."""
    np_state = np.random.get_state()
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


def _set_rng_state(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _generator(device: torch.device, seed: int) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(seed)
    return g


def epoch_seed(seed: int, epoch: int, stream: int) -> int:
    """A distinct, reproducible seed per (run seed, epoch, stream): data order and augmentation never share one."""
    return (seed * 1_000_003 + epoch * 7_919 + stream * 104_729) % (2**63 - 1)


# ---------------------------------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------------------------------


def _read_spec(spec: str | os.PathLike) -> tuple[str, str | None]:
    from ..lang import normalize_source, read_spec

    text, filename = read_spec(spec)
    return normalize_source(text), filename


def resolve_train(net: Network, opts: TrainOptions):
    """The spec's train settings with the command line's overrides applied."""
    t = net.train
    upd: dict[str, Any] = {}
    for key in ("epochs", "batch_size", "test_batch_size", "seed"):
        v = getattr(opts, key)
        if v is not None:
            if v < (0 if key == "seed" else 1):
                raise UsageError(f"--{key.replace('_', '-')} {v}: must be {'>= 0' if key == 'seed' else '>= 1'}")
            upd[key] = v
    if opts.data is not None:
        upd["data"] = opts.data
    opt_upd = {}
    for key in ("lr", "momentum", "weight_decay"):
        v = getattr(opts, key)
        if v is not None:
            if v < 0 or (key == "lr" and v == 0) or not math.isfinite(v):
                raise UsageError(f"--{key.replace('_', '-')} {v}: must be a positive number")
            if key not in type(t.optimizer).model_fields:
                raise UsageError(f"--{key.replace('_', '-')}: {t.optimizer.kind()} has no {key}")
            opt_upd[key] = float(v)
    if opt_upd:
        upd["optimizer"] = t.optimizer.model_copy(update=opt_upd)
    t = t.model_copy(update=upd)
    return S.infer_schedule(t, net.train_inferred)  # inferred T_max / max_lr follow the overridden epochs / lr


def make_optimizer(spec, params) -> torch.optim.Optimizer:
    kind = spec.kind()
    args = spec.args()
    if kind == "SGD":
        return torch.optim.SGD(params, **args)
    if kind == "Adam":
        return torch.optim.Adam(params, **args)
    if kind == "AdamW":
        return torch.optim.AdamW(params, **args)
    raise AssertionError(kind)  # the spec stage allows no other


def make_schedule(spec, optimizer, epochs: int, steps_per_epoch: int):
    """(scheduler, per_batch): OneCycleLR steps every batch, the others every epoch."""
    if spec is None:
        return None, False
    kind = spec.kind()
    a = spec.args()
    LR = torch.optim.lr_scheduler
    if kind == "StepLR":
        return LR.StepLR(optimizer, a["step_size"], a["gamma"]), False
    if kind == "MultiStepLR":
        return LR.MultiStepLR(optimizer, list(a["milestones"]), a["gamma"]), False
    if kind == "ExponentialLR":
        return LR.ExponentialLR(optimizer, a["gamma"]), False
    if kind == "CosineAnnealingLR":
        return LR.CosineAnnealingLR(optimizer, a["T_max"], a["eta_min"]), False
    if kind == "OneCycleLR":
        return LR.OneCycleLR(
            optimizer,
            max_lr=a["max_lr"],
            epochs=epochs,
            steps_per_epoch=steps_per_epoch,
            pct_start=a["pct_start"],
            anneal_strategy=a["anneal_strategy"],
            div_factor=a["div_factor"],
            final_div_factor=a["final_div_factor"],
        ), True
    raise AssertionError(kind)


# ---------------------------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------------------------


class Log:
    def __init__(self, quiet: bool, main: bool, path: Path | None = None):
        self.main = main
        self.quiet = quiet or not main
        self.path = path
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


@dataclass
class Prepared:
    """The spec elaborated for the data: network, shape table, train settings, the data, and what was asked for."""

    net: Network
    table: Any
    train: Any
    data: Any
    constants: dict[str, Any]  # the --set values, plus `classes` when the data set decided it
    requested_input: tuple[int, int, int]  # --input, or the spec's; the data set may change its channels


def prepare(text: str, filename: str | None, opts: TrainOptions, log: Log) -> Prepared:
    """Spec + data -> network, shapes, train settings and data, with the data's classes and channels applied."""
    constants = dict(opts.constants)
    input_ = parse_size(opts.input) if isinstance(opts.input, str) else opts.input
    net = load_spec(text, filename, input=input_, constants=constants)
    requested = tuple(net.input)
    infer(net)  # the spec as written (with --set) must hold before any data is read: fail fast, and statically
    t = resolve_train(net, opts)
    h, w = net.input[1], net.input[2]
    data = load_data(
        t.data,
        opts.data_dir,
        size=(h, w),
        train_limit=opts.train_limit,
        test_limit=opts.test_limit,
        download=opts.download,
        seed=t.seed,
    )
    for note in data.notes:
        log(f"data: {note}")
    # the data set decides the classes and the channels
    changed = False
    if "classes" in net.constants and net.constants["classes"] != data.num_classes:
        log(
            f"classes: {net.constants['classes']} in the spec, {data.num_classes} in {data.name}: using "
            f"{data.num_classes}"
        )
        constants["classes"] = data.num_classes
        changed = True
    if net.input[0] != data.channels:
        log(f"input channels: {net.input[0]} in the spec, {data.channels} in {data.name}: using {data.channels}")
        changed = True
    if changed:
        net = load_spec(text, filename, input=(data.channels, h, w), constants=constants)
        t = resolve_train(net, opts)
    table = infer(net)
    if table.output != (data.num_classes,):
        last = table.rows[-1]
        raise SpecError(
            f"the network outputs {'x'.join(map(str, table.output))} values per image, but "
            f"{data.name} has {data.num_classes} classes",
            last.loc,
            hint="end with Linear(classes) and define `classes = N` so the data set can set it",
            code="E090",
        ).attach(net.filename, net.source)
    if (
        t.normalize is not None
        and len(t.normalize.mean) not in (1, data.channels)
        and not (len(set(t.normalize.mean)) == 1 and len(set(t.normalize.std)) == 1)
    ):
        raise SpecError(
            f"normalize has {len(t.normalize.mean)} means for {data.channels}-channel images",
            net.train_locs.get("normalize"),
            code="E091",
        ).attach(net.filename, net.source)
    return Prepared(net, table, t, data, constants, requested)  # type: ignore[arg-type]


def _new_run_dir(spec_path: str | None, data_name: str) -> Path:
    stem = Path(spec_path).stem if spec_path else "spec"
    base = Path("runs") / f"{stem}-{Path(data_name).name}-{time.strftime('%Y%m%d-%H%M%S')}"
    out, i = base, 1
    while out.exists():
        i += 1
        out = Path(f"{base}-{i}")
    return out


# What makes a run the run it is: `--resume` restores these from settings.json's "options", and a flag given with
# --resume must agree with the stored value. Every other flag may differ: --data-dir (the data moved), --device,
# --compile, --channels-last, --quiet, --no-download, the optimizer overrides --lr/--momentum/--weight-decay, and
# --precision (with a warning). --epochs may grow, unless the schedule's length follows from it.
RUN_OPTIONS = ("data", "train_limit", "test_limit", "input", "batch_size", "test_batch_size", "seed", "sync_bn")
OVERRIDES = ("lr", "momentum", "weight_decay")


@dataclass
class Resumed:
    """A run folder to continue: its spec text, its options, its checkpoint (None: killed before the first one)."""

    out: Path
    text: str
    filename: str
    opts: TrainOptions
    stored_epochs: int
    checkpoint: dict | None

    @property
    def done(self) -> int:
        return int(self.checkpoint["epoch"]) if self.checkpoint is not None else 0


def _flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def _first_difference(a: str, b: str) -> tuple[int, str, str]:
    la, lb = a.split("\n"), b.split("\n")
    for i in range(max(len(la), len(lb))):
        x = la[i] if i < len(la) else "<end of file>"
        y = lb[i] if i < len(lb) else "<end of file>"
        if x != y:
            return i + 1, x.strip(), y.strip()
    return 0, "", ""  # pragma: no cover - only called on different texts


def restore_run(spec: str | os.PathLike | None, opts: TrainOptions, log: Log) -> Resumed:
    """The run in `opts.out`, with the flags of `opts` checked against it: the same run continues, or nothing does."""
    from .data import dataset_key

    out = Path(opts.out)
    settings_path = out / "settings.json"
    if not out.is_dir():
        raise UsageError(f"--resume: {out}: no such run folder")
    try:
        settings = json.loads(settings_path.read_text())
        stored: dict = settings["options"]
        stored_text = (out / "spec.net").read_text()
    except FileNotFoundError:
        raise UsageError(
            f"--resume: {out} holds no run (no settings.json or spec.net); start it without --resume"
        ) from None
    except (json.JSONDecodeError, KeyError, TypeError):
        raise UsageError(f"--resume: {settings_path} is not the settings of a netspec run") from None
    filename = str(out / "spec.net")
    if spec is not None:
        text, given_name = _read_spec(spec)
        if text != stored_text:
            line, ours, theirs = _first_difference(text, stored_text)
            raise UsageError(
                f"--resume: {spec} is not the spec of the run in {out}: line {line} is {ours!r} there "
                f"and {theirs!r} in {filename} (resume with {filename}, or start a new run)"
            )
        filename = given_name or filename

    def same(key: str, given: Any, run_value: Any) -> bool:
        if key == "data":
            a, b = dataset_key(str(given)), dataset_key(str(run_value))
            return a == b if a is not None or b is not None else Path(given).resolve() == Path(run_value).resolve()
        if key == "input":
            return tuple(parse_size(given) if isinstance(given, str) else given) == tuple(run_value)
        return given == run_value

    for key in RUN_OPTIONS:
        given = getattr(opts, key)
        if given is None or (key == "sync_bn" and given is False):
            continue
        if not same(key, given, stored[key]):
            shown = "x".join(map(str, stored[key])) if key == "input" else stored[key]
            raise UsageError(
                f"--resume: {_flag(key)} {given} contradicts the run in {out}, which has "
                f"{key.replace('_', ' ')} {shown} (leave the flag out to continue the same run)"
            )
    run_constants = settings.get("constant_values", {})
    for name, given in opts.constants.items():
        if name in run_constants and _jsonable(given) != run_constants[name]:
            raise UsageError(
                f"--resume: --set {name}={given} contradicts the run in {out}, which has {name} = {run_constants[name]}"
            )
    if opts.precision not in ("auto", stored["precision"]):
        log.warn(
            f"--resume with --precision {opts.precision}: the run trained in {stored['precision']}, so its "
            f"numbers will no longer match an uninterrupted run"
        )
    merged = TrainOptions(**{**asdict(opts), **{k: stored[k] for k in RUN_OPTIONS}})
    merged.input = tuple(stored["input"])
    merged.constants = {**stored["constants"], **opts.constants}
    merged.epochs = opts.epochs if opts.epochs is not None else stored["epochs"]
    merged.data_dir = opts.data_dir if opts.data_dir is not None else stored.get("data_dir")
    merged.precision = stored["precision"] if opts.precision == "auto" else opts.precision
    for key in OVERRIDES:
        if getattr(opts, key) is None:
            setattr(merged, key, stored.get(key))
    ckpt_path = out / "checkpoint.pt"
    checkpoint = load_checkpoint(ckpt_path) if ckpt_path.exists() else None
    if checkpoint is None:
        log(f"--resume: {out} has no checkpoint yet: starting its run again from the beginning")
    elif checkpoint.get("spec") != stored_text:
        raise DataError(f"{ckpt_path}: its spec differs from {out / 'spec.net'}; the folder holds two runs")
    resumed = Resumed(out, stored_text, filename, merged, int(stored["epochs"]), checkpoint)
    if merged.epochs < resumed.done:
        raise UsageError(
            f"--resume: --epochs {merged.epochs} is fewer than the {resumed.done} epochs the run in "
            f"{out} has already done"
        )
    return resumed


def check_schedule_length(resumed: Resumed, train, inferred: frozenset[str]) -> None:
    """A schedule whose length was inferred from the epoch count cannot be stretched half-way through a run."""
    from ..lang.train_section import CosineAnnealingLR, OneCycleLR

    if train.epochs == resumed.stored_epochs:
        return
    s = train.schedule
    if isinstance(s, OneCycleLR) or (isinstance(s, CosineAnnealingLR) and "T_max" in inferred):
        length = "total_steps" if isinstance(s, OneCycleLR) else "T_max"
        raise UsageError(
            f"--resume: --epochs {train.epochs} would change the run's {s.kind()}, whose length "
            f"({length}) follows from its {resumed.stored_epochs} epochs: the learning rate already "
            f"used would no longer match the schedule. Start a new run with --epochs {train.epochs}"
            + (", or write T_max in the spec" if length == "T_max" else "")
        )


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def save_checkpoint(path: Path, payload: dict) -> None:
    """Write to a temporary file in the same folder, flush it to disk, then rename: never a half-written file."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(payload, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Load a checkpoint safely: `weights_only=True` refuses any pickle that would run code."""
    import pickle

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such checkpoint") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a directory, not a checkpoint") from None
    except (
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
    ) as e:
        raise DataError(
            f"{path}: not a netspec checkpoint, or not a safe one: {_refusal(e)}; nothing in it was run"
        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != "netspec-checkpoint":
        raise DataError(f"{path}: not a netspec checkpoint")
    return ckpt


def _refusal(e: BaseException) -> str:
    """The line of torch's refusal that says what was refused (not its advice to load unsafely)."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    for ln in lines:
        if ln.startswith(("WeightsUnpickler error:", "Unsupported global", "Unsupported operand")):
            return ln[:200]
    return (lines[0][:200] if lines else type(e).__name__) if not isinstance(e, KeyError) else "not a torch file"


def _load_weights(model: nn.Module, state: dict, path) -> None:
    try:
        model.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError) as e:
        first = str(e).strip().splitlines()
        detail = " ".join(ln.strip() for ln in first[:3])[:300]
        raise DataError(f"{path}: its weights do not fit the network built from its spec ({detail})") from None


def _env(device: torch.device, precision: str, dist: Dist, channels_last: bool, compiled: bool) -> dict:
    env = {
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


@dataclass
class Results:
    final_train_loss: float
    final_test_loss: float
    test_accuracy: float
    correct: int
    total: int
    per_class_accuracy: dict[str, float]
    epochs: int
    train_seconds: float
    out: str
    confusion_matrix: list[list[int]]  # [true class][predicted class]
    classes: list[str]

    def as_dict(self) -> dict:
        return asdict(self)


def evaluate_model(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    batch_size: int,
    device: torch.device,
    precision: str,
    mean_std,
    channels_last: bool,
    dist: Dist | None = None,
) -> tuple[float, int, int, torch.Tensor]:
    """(mean loss, correct, total, confusion matrix [true, predicted]) over the test set, split between ranks."""
    model.eval()
    n = images.shape[0]
    lo, hi = 0, n
    if dist is not None and dist.enabled:
        per = math.ceil(n / dist.world)
        lo, hi = min(n, dist.rank * per), min(n, (dist.rank + 1) * per)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)
    with torch.no_grad():
        for i in range(lo, hi, batch_size):
            x = images[i : min(i + batch_size, hi)].to(device, non_blocking=True)
            y = labels[i : min(i + batch_size, hi)].to(device, non_blocking=True)
            x = _prepare_batch(x, mean_std, channels_last)
            with _autocast(device, precision):
                logits = model(x)
            loss_sum += F.cross_entropy(logits.float(), y, reduction="sum").double()
            pred = logits.argmax(1)
            confusion += torch.bincount(y * num_classes + pred, minlength=num_classes**2).view(num_classes, num_classes)
    if dist is not None and dist.enabled:
        import torch.distributed as tdist

        tdist.all_reduce(loss_sum)
        tdist.all_reduce(confusion)
    total = int(confusion.sum())
    correct = int(confusion.diag().sum())
    return float(loss_sum) / max(1, total), correct, total, confusion.cpu()


def channel_stats(mean: tuple, std: tuple, channels: int) -> tuple[tuple, tuple]:
    """Per-channel mean and std: one value (or equal values) apply to every channel of the data set."""
    if len(mean) != channels and len(set(mean)) == 1 and len(set(std)) == 1:
        mean, std = (mean[0],) * channels, (std[0],) * channels
    return tuple(mean), tuple(std)


def _prepare_batch(x: torch.Tensor, mean_std, channels_last: bool) -> torch.Tensor:
    # uint8 (N, C, H, W) -> normalized float, in the memory format the model runs in
    if mean_std is None:
        x = x.float().div_(255)
    else:
        x = normalize(x, *mean_std)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def _per_class(confusion: torch.Tensor, classes: list[str]) -> dict[str, float]:
    out = {}
    for i, name in enumerate(classes):
        total = int(confusion[i].sum())
        out[name] = (int(confusion[i, i]) / total) if total else float("nan")
    return out


def _write_metrics(path: Path, rows: list[dict]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=METRIC_FIELDS)
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in METRIC_FIELDS})
    os.replace(tmp, path)


def _append_metrics(path: Path, row: dict) -> None:
    new = not path.exists()
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=METRIC_FIELDS)
        if new:
            w.writeheader()
        w.writerow({k: row.get(k, "") for k in METRIC_FIELDS})
        f.flush()
        os.fsync(f.fileno())


def train(spec: str | os.PathLike, **options: Any) -> dict:
    """Train `spec` with its `train` settings, overridden by `options` (the CLI's flags, as keywords).

    Returns the results (the content of results.json) and writes the run folder.

    >>> results = netspec.train("specs/cifar_best.net", data="shapes", epochs=1, train_limit=512,
    ...                         test_limit=256, out="runs/try")                     # doctest: +SKIP
    """
    unknown = set(options) - set(TrainOptions.__dataclass_fields__)
    if unknown:
        raise TypeError(f"train() got unknown options: {', '.join(sorted(unknown))}")
    opts = TrainOptions(**options)
    return run(spec, opts).as_dict()


def run(spec: str | os.PathLike, opts: TrainOptions) -> Results:
    device_kind = "cuda" if (opts.device == "cuda" or (opts.device == "auto" and torch.cuda.is_available())) else "cpu"
    dist = _init_distributed(device_kind)
    try:
        return _run(spec, opts, dist)
    finally:
        if dist.enabled:
            import torch.distributed as tdist

            if tdist.is_initialized():
                tdist.destroy_process_group()


def _run(spec: str | os.PathLike | None, opts: TrainOptions, dist: Dist) -> Results:
    log = Log(opts.quiet, dist.main)
    device = resolve_device(opts.device, dist)
    resumed = None
    if opts.resume:
        if not opts.out:
            raise UsageError("--resume needs --out DIR (the run folder to continue)")
        resumed = restore_run(spec, opts, log)
        opts, text, filename = resumed.opts, resumed.text, resumed.filename
    elif spec is None:
        raise UsageError("no spec to train: give a SPEC file (or --resume with --out)")
    else:
        text, filename = _read_spec(spec)
    precision = resolve_precision(opts.precision, device)
    if device.type == "cpu" and dist.enabled and "OMP_NUM_THREADS" not in os.environ:
        # processes sharing a CPU: split the cores instead of oversubscribing them (spinning threads are slow)
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // dist.world))
    p = prepare(text, filename, opts, log)
    net, table, t, data, constants = p.net, p.table, p.train, p.data, p.constants
    if resumed is not None:
        check_schedule_length(resumed, t, net.train_inferred)

    # ---- the run folder --------------------------------------------------------------------------------------
    out = Path(opts.out) if opts.out else _new_run_dir(net.filename, t.data)
    ckpt_path = out / "checkpoint.pt"
    resume_from = resumed.checkpoint if resumed is not None else None
    if resumed is None and any((out / f).exists() for f in ("settings.json", "metrics.csv")):
        # every rank sees it: none is left waiting
        raise UsageError(f"{out} already holds a run: pass --resume to continue it, or choose another --out")
    if dist.main:
        out.mkdir(parents=True, exist_ok=True)
        log.attach(out / "log.txt")

    # ---- model, optimizer ------------------------------------------------------------------------------------
    seed_everything(t.seed)
    model = build(net, table)
    has_conv = any(isinstance(m, nn.Conv2d) for m in model.modules())
    channels_last = opts.channels_last if opts.channels_last is not None else has_conv
    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if dist.enabled and opts.sync_bn:
        import torch.distributed as tdist

        if tdist.get_backend() == "nccl":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        else:
            log("--sync-bn: SyncBatchNorm needs the NCCL backend (CUDA); BatchNorm stays per process")
    optimizer = make_optimizer(t.optimizer, model.parameters())
    n_train = data.train_images.shape[0]
    steps_per_epoch = math.ceil(n_train / t.batch_size)
    scheduler, per_batch = make_schedule(t.schedule, optimizer, t.epochs, steps_per_epoch)
    train_model: nn.Module = model
    if dist.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP

        train_model = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
    if opts.compile:
        train_model = torch.compile(train_model)
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None

    start_epoch = 1
    metrics: list[dict] = []
    if resume_from is not None:
        _load_weights(model, resume_from["model"], ckpt_path)
        optimizer.load_state_dict(resume_from["optimizer"])
        # flags given with --resume win over the checkpoint (say, a smaller --lr after a divergence)
        for key in ("lr", "momentum", "weight_decay"):
            value = getattr(opts, key)
            if value is not None:
                for group in optimizer.param_groups:
                    if key in group:
                        group[key] = value
                        if key == "lr" and "initial_lr" in group:
                            group["initial_lr"] = value
        if scheduler is not None and resume_from.get("scheduler") is not None:
            scheduler.load_state_dict(resume_from["scheduler"])
            if opts.lr is not None:
                scheduler.base_lrs = [opts.lr for _ in scheduler.base_lrs]
        if scaler is not None and resume_from.get("scaler"):
            scaler.load_state_dict(resume_from["scaler"])
        _set_rng_state(resume_from["rng"])
        start_epoch = int(resume_from["epoch"]) + 1
        metrics = json.loads(resume_from["metrics"])
        if dist.main:
            _write_metrics(out / "metrics.csv", metrics)  # the finished epochs' rows, exactly as they were
        log(f"resuming {out} after epoch {start_epoch - 1} of {t.epochs}")

    # ---- data on the device ----------------------------------------------------------------------------------
    train_x = data.train_images.to(device)
    train_y = data.train_labels.to(device)
    test_x = data.test_images.to(device)
    test_y = data.test_labels.to(device)
    size = (net.input[1], net.input[2])
    augment = BatchAugment([(a.kind(), a.args()) for a in t.augment], size)
    mean_std = channel_stats(t.normalize.mean, t.normalize.std, data.channels) if t.normalize else None
    if mean_std is not None:  # on the device once, not copied there every batch
        mean_std = tuple(torch.tensor(v, dtype=torch.float32, device=device) for v in mean_std)

    settings = {
        "spec": net.filename,
        "network": net.name,
        "input": list(net.input),
        "constants": constants,
        "data": data.name,
        "classes": data.classes,
        "train_images": n_train,
        "test_images": int(data.test_images.shape[0]),
        **t.describe(),
        "train_limit": opts.train_limit,
        "test_limit": opts.test_limit,
        "device": str(device),
        "precision": precision,
        "channels_last": channels_last,
        "compile": opts.compile,
        "world_size": dist.world,
        "params": table.total_params,
        "macs_per_image": table.total_macs,
        # what --resume restores (trainer.RUN_OPTIONS): the run's options as resolved, and every constant's value
        "options": {
            "data": t.data,
            "data_dir": opts.data_dir,
            "train_limit": opts.train_limit,
            "test_limit": opts.test_limit,
            "input": list(p.requested_input),
            "constants": constants,
            "epochs": t.epochs,
            "batch_size": t.batch_size,
            "test_batch_size": t.test_batch_size,
            "seed": t.seed,
            "precision": precision,
            "sync_bn": opts.sync_bn,
            **{k: getattr(opts, k) for k in OVERRIDES},
        },
        "constant_values": _jsonable(net.constants),
    }
    if dist.main:
        (out / "spec.net").write_text(text)  # exactly the text that ran; --resume compares SPEC with it
        _write_json(out / "settings.json", settings)
        _write_json(out / "env.json", _env(device, precision, dist, channels_last, opts.compile))
    log(
        f"{net.name}: {table.total_params:,} parameters, {table.total_macs:,} MACs per image at "
        f"{'x'.join(map(str, net.input))}; {data.name}: {n_train:,} train / {test_x.shape[0]:,} test images, "
        f"{data.num_classes} classes; {device}, {precision}{', channels_last' if channels_last else ''}"
    )
    log(f"run folder: {out}")

    # ---- Ctrl-C: finish cleanly at the next step boundary --------------------------------------------------------
    stop = {"flag": False}

    def on_sigint(signum, frame):
        if stop["flag"]:
            raise KeyboardInterrupt
        stop["flag"] = True

    old_handler = signal.signal(signal.SIGINT, on_sigint) if _main_thread() else None

    confusion = None
    test_loss, correct, total = float("nan"), 0, 0
    train_seconds = sum(float(r["seconds"]) for r in metrics)
    try:
        for epoch in range(start_epoch, t.epochs + 1):
            t0 = time.perf_counter()
            step_state: dict = {}
            train_loss = _train_epoch(
                train_model,
                optimizer,
                scheduler if per_batch else None,
                scaler,
                train_x,
                train_y,
                t,
                epoch,
                augment,
                mean_std,
                channels_last,
                device,
                precision,
                dist,
                opts,
                stop,
                step_state,
            )
            if stop["flag"]:
                raise Interrupted("interrupted")
            if scheduler is not None and not per_batch:
                scheduler.step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            seconds = time.perf_counter() - t0
            test_loss, correct, total, confusion = evaluate_model(
                model,
                test_x,
                test_y,
                data.num_classes,
                t.test_batch_size,
                device,
                precision,
                mean_std,
                channels_last,
                dist,
            )
            train_seconds += seconds
            # a checkpoint is kept only while it is good: finite weights and a finite test loss
            if not math.isfinite(test_loss) or not all(
                bool(torch.isfinite(v).all()) for v in model.state_dict().values() if v.is_floating_point()
            ):
                raise Diverged(
                    f"the weights became non-finite during epoch {epoch}: training diverged (try a "
                    f"smaller --lr); the last good checkpoint is kept"
                )
            row = {
                "epoch": epoch,
                "train_loss": f"{train_loss:.6f}",
                "test_loss": f"{test_loss:.6f}",
                "test_accuracy": f"{correct / max(1, total):.6f}",
                "seconds": f"{seconds:.3f}",
                "images_per_s": f"{n_train / seconds:.1f}",
                "lr": f"{step_state.get('lr', optimizer.param_groups[0]['lr']):.6g}",
            }
            metrics.append(row)
            if dist.main:
                # the checkpoint first (it holds the metrics rows too), then the row: a kill between the two
                # loses nothing, as --resume rewrites metrics.csv from the checkpoint
                save_checkpoint(
                    ckpt_path,
                    _checkpoint(
                        model,
                        optimizer,
                        scheduler,
                        scaler,
                        epoch,
                        text,
                        net,
                        constants,
                        settings,
                        data.classes,
                        metrics,
                    ),
                )
                _append_metrics(out / "metrics.csv", row)
            log(
                f"epoch {epoch}/{t.epochs}  train_loss {train_loss:.4f}  test_loss {test_loss:.4f}  "
                f"test_acc {100 * correct / max(1, total):.2f}% ({correct}/{total})  {seconds:.1f}s  "
                f"{n_train / seconds:,.0f} img/s"
            )
    except Interrupted:
        resume = shlex.join(["netspec", "train", net.filename or str(out / "spec.net"), "--out", str(out), "--resume"])
        log(f"interrupted: the last finished epoch is saved in {ckpt_path}; continue with\n  {resume}")
        raise Interrupted(f"interrupted; continue with: {resume}") from None
    finally:
        if old_handler is not None:
            signal.signal(signal.SIGINT, old_handler)

    if confusion is None:  # resumed a finished run: evaluate once more for the results
        test_loss, correct, total, confusion = evaluate_model(
            model, test_x, test_y, data.num_classes, t.test_batch_size, device, precision, mean_std, channels_last, dist
        )
    final_train = float(metrics[-1]["train_loss"]) if metrics else float("nan")
    results = Results(
        final_train,
        test_loss,
        correct / max(1, total),
        correct,
        total,
        _per_class(confusion, data.classes),
        t.epochs,
        train_seconds,
        str(out),
        confusion.tolist(),
        list(data.classes),
    )
    if dist.main:
        payload = results.as_dict()
        _write_json(out / "results.json", payload)
        from .report import write_report

        write_report(out, settings, metrics, payload)
        log.result(
            f"final: train loss {final_train:.6f}, test loss {test_loss:.4f}, test accuracy "
            f"{100 * correct / max(1, total):.2f}% ({correct}/{total}); report: {out / 'report.md'}"
        )
    return results


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _checkpoint(model, optimizer, scheduler, scaler, epoch, text, net, constants, settings, classes, metrics) -> dict:
    return {
        "format": "netspec-checkpoint",
        "version": CHECKPOINT_VERSION,
        "epoch": epoch,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "scaler": scaler.state_dict() if scaler is not None else None,
        "rng": _rng_state(),
        "spec": text,
        "filename": net.filename or "",
        "input": list(net.input),
        "constants": json.dumps(constants),
        "settings": json.dumps(settings, default=str),
        "classes": list(classes),
        "metrics": json.dumps(metrics),
    }


def _diverged(loss: torch.Tensor, epoch: int, step: int) -> Diverged:
    return Diverged(
        f"the loss became {float(loss)} at epoch {epoch}, step {step}: training diverged (try a smaller --lr)"
    )


def _train_epoch(
    model,
    optimizer,
    scheduler,
    scaler,
    train_x,
    train_y,
    t,
    epoch,
    augment,
    mean_std,
    channels_last,
    device,
    precision,
    dist: Dist,
    opts: TrainOptions,
    stop,
    state: dict | None = None,
) -> float:
    model.train()
    state = {} if state is None else state
    n = train_x.shape[0]
    order = torch.randperm(n, generator=_generator(torch.device("cpu"), epoch_seed(t.seed, epoch, 0)))
    order = order.to(device)
    aug_gen = _generator(device, epoch_seed(t.seed, epoch, 1))
    bs = t.batch_size
    steps = math.ceil(n / bs)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    seen = 0
    bar = None
    # a bar of \r frames only on a terminal: in a log file the per-epoch line is the progress
    if opts.progress and dist.main and not opts.quiet and sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(
            total=n, desc=f"epoch {epoch}/{t.epochs}", unit="img", leave=False, dynamic_ncols=True, file=sys.stderr
        )
    t0 = time.perf_counter()
    pending_check: torch.Tensor | None = None
    for step in range(steps):
        idx = order[step * bs : (step + 1) * bs]
        x = augment(train_x[idx], generator=aug_gen)  # (B, C, H, W) uint8, the whole global batch
        y = train_y[idx]
        b = x.shape[0]
        if dist.enabled:
            # every rank draws the same global batch and augmentation, then keeps its own slice: the same
            # gradients as one process with the same global batch
            per = math.ceil(b / dist.world)
            x, y = x[dist.rank * per : (dist.rank + 1) * per], y[dist.rank * per : (dist.rank + 1) * per]
        x = _prepare_batch(x, mean_std, channels_last)
        with _autocast(device, precision):
            logits = model(x)
        # the loss summed over this rank's images / the global batch size, times the world size: DDP's mean over
        # ranks then gives exactly the global batch's mean loss, also for an uneven last batch
        loss = F.cross_entropy(logits.float(), y, reduction="sum", label_smoothing=t.label_smoothing)
        loss = loss * (dist.world / b)
        optimizer.zero_grad(set_to_none=True)
        state["lr"] = optimizer.param_groups[0]["lr"]  # the rate this step uses (metrics.csv's `lr`)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            try:
                optimizer.step()
            except RuntimeError as e:  # e.g. a schedule pushed the rate past what float32 holds
                raise Diverged(
                    f"the optimizer step failed at epoch {epoch}, step {step + 1} ({str(e)[:120]}): "
                    f"training diverged (try a smaller --lr)"
                ) from None
        if scheduler is not None:
            scheduler.step()
        detached = loss.detach() * (b / dist.world)
        if pending_check is not None and not bool(torch.isfinite(pending_check)):
            raise _diverged(pending_check, epoch, step)
        # checked one step later on CUDA so that the check never stalls the GPU; at once on the CPU
        if device.type == "cpu" and not bool(torch.isfinite(detached)):
            raise _diverged(detached, epoch, step + 1)
        pending_check = detached if device.type != "cpu" else None
        loss_sum += detached.double()
        seen += b
        if bar is not None:
            bar.update(b)
            if step % 10 == 0 or step == steps - 1:
                elapsed = time.perf_counter() - t0
                bar.set_postfix(loss=f"{float(loss_sum) / seen:.4f}", img_s=f"{seen / max(elapsed, 1e-9):,.0f}")
        if stop["flag"]:
            break
    if pending_check is not None and not bool(torch.isfinite(pending_check)):
        raise _diverged(pending_check, epoch, steps)
    if bar is not None:
        bar.close()
    if dist.enabled:
        import torch.distributed as tdist

        tdist.all_reduce(loss_sum)  # the sum over every rank's images; `seen` already counts the global batch
    return float(loss_sum) / max(1, seen)


# ---------------------------------------------------------------------------------------------------------------
# evaluate: a trained model from its run folder or checkpoint alone
# ---------------------------------------------------------------------------------------------------------------


def evaluate(
    source: str | os.PathLike,
    data: str | None = None,
    data_dir: str | None = None,
    test_limit: int | None = None,
    batch_size: int | None = None,
    device: str = "auto",
    precision: str | None = None,
    download: bool = True,
    out: str | None = None,
) -> dict:
    """Test loss, accuracy, per-class accuracy and the confusion matrix of a checkpoint (or a run folder's).

    By default it tests as the run did: the run's data set, test limit, data folder and precision.
    """
    path = Path(source)
    if path.is_dir():
        path = path / "checkpoint.pt"
    ckpt = load_checkpoint(path)
    settings = json.loads(ckpt["settings"])
    run_options = settings.get("options", {})
    constants = json.loads(ckpt["constants"])
    net = load_spec(ckpt["spec"], ckpt.get("filename") or str(path), input=tuple(ckpt["input"]), constants=constants)
    table = infer(net)
    dev = resolve_device(device)
    prec = resolve_precision(precision or run_options.get("precision") or settings.get("precision", "fp32"), dev)
    name = data or settings["data"]
    same_data = data is None
    if same_data and test_limit is None:
        test_limit = run_options.get("test_limit")
    if same_data and data_dir is None:
        data_dir = run_options.get("data_dir")
    h, w = net.input[1], net.input[2]
    ds = load_data(
        name,
        data_dir,
        size=(h, w),
        train_limit=1,
        test_limit=test_limit,
        download=download,
        seed=int(settings.get("seed", 0)),
    )
    if ds.num_classes != table.output[0] or ds.channels != net.input[0]:
        raise DataError(
            f"{name} has {ds.num_classes} classes of {ds.channels}-channel images; the checkpoint's "
            f"network takes {net.input[0]} channels and predicts {table.output[0]} classes"
        )
    model = build(net, table)
    _load_weights(model, ckpt["model"], path)
    channels_last = bool(settings.get("channels_last"))
    model = model.to(dev)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    norm = settings.get("normalize")
    mean_std = channel_stats(tuple(norm["mean"]), tuple(norm["std"]), ds.channels) if norm else None
    loss, correct, total, confusion = evaluate_model(
        model,
        ds.test_images,
        ds.test_labels,
        ds.num_classes,
        batch_size or int(settings.get("test_batch_size", 256)),
        dev,
        prec,
        mean_std,
        channels_last,
    )
    result = {
        "checkpoint": str(path),
        "data": ds.name,
        "test_limit": test_limit,
        "precision": prec,
        "epoch": int(ckpt["epoch"]),
        "test_loss": loss,
        "test_accuracy": correct / max(1, total),
        "correct": correct,
        "total": total,
        "per_class_accuracy": _per_class(confusion, ds.classes),
        "confusion_matrix": confusion.tolist(),
        "classes": ds.classes,
    }
    if out:
        from .report import confusion_plot

        Path(out).mkdir(parents=True, exist_ok=True)
        _write_json(Path(out) / "evaluation.json", result)
        confusion_plot(Path(out) / "confusion_matrix.png", result["confusion_matrix"], ds.classes)
    return result
