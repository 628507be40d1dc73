"""What a train run is asked to do, checked before torch is imported.

The spec is read and normalized once and parsed at most once (`SpecSource`); a new run's spec is elaborated at the
requested input and constants, and its shapes inferred, before any data is read (`Request`). The options override
the spec's `train` section, and the settings models of `netspec.lang.train_section` judge every value.

Nothing here imports torch: the CLI checks a spec with this module alone, so a mistake is reported at once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from ..errors import SpecError, UsageError
from ..lang import Network, Program, elaborate, normalize_source, parse, parse_size, read_spec
from ..lang import train_section as S
from ..shapes import ShapeTable, infer


@dataclass(frozen=True)
class TrainOptions:
    """The command line's flags, as keywords; None means "the spec's `train` section decides" (or, with `resume`,
    "the run's")."""

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
    input: str | tuple[int, int, int] | None = None
    constants: dict[str, Any] = field(default_factory=dict)
    device: str = "auto"
    precision: str = "auto"
    channels_last: bool | None = None  # None: on for convolutional networks
    compile: bool = False
    sync_bn: bool = False
    out: str | None = None
    resume: bool = False
    download: bool = True
    quiet: bool = False  # no progress bar and no per-epoch lines; warnings and the final result line stay
    tensorboard: bool = False  # also write RUN/tensorboard/ (a display flag: free on --resume)

    @classmethod
    def of(cls, options: dict[str, Any]) -> TrainOptions:
        """The options of `netspec.train(..., **options)`; a TypeError names any unknown one."""
        unknown = set(options) - set(cls.__dataclass_fields__)
        if unknown:
            raise TypeError(f"train() got unknown options: {', '.join(sorted(unknown))}")
        return cls(**options)


@dataclass(frozen=True)
class SpecSource:
    """A spec's text as the parser reads it (UTF-8, LF line ends) and its file name; parsed once, when first asked."""

    text: str
    filename: str | None = None

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> SpecSource:
        """The spec file at `path`; a UsageError when there is none."""
        return cls.of(*read_spec(path))

    @classmethod
    def of(cls, data: str | bytes, filename: str | None = None) -> SpecSource:
        try:
            return cls(normalize_source(data), filename)
        except SpecError as e:  # bytes that are not text: shown as the parser shows them
            shown = data if isinstance(data, str) else data.decode("utf-8", "replace")
            raise e.attach(filename, shown.replace("\r\n", "\n").replace("\r", "\n")) from None

    @cached_property
    def program(self) -> Program:
        return parse(self.text, self.filename)

    def elaborate(self, input: tuple[int, int, int] | None, constants: dict[str, Any]) -> Network:
        """The network at `input` (None: the spec's own) with `constants` overriding the spec's."""
        return elaborate(self.program, input=input, constants=constants, filename=self.filename, source=self.text)


@dataclass(frozen=True)
class Request:
    """A new run, checked without torch: the network at the requested input and constants, shapes inferred, and
    its `train` settings with the options applied. The data may still change its classes and channels."""

    source: SpecSource
    opts: TrainOptions
    net: Network
    table: ShapeTable
    train: S.TrainSpec


@dataclass(frozen=True)
class Resume:
    """Continue the run in `opts.out` with its own settings; `source`, when given, must be the spec it ran."""

    source: SpecSource | None
    opts: TrainOptions


def plan(source: SpecSource | None, opts: TrainOptions) -> Request | Resume:
    """What to run: a new run's spec is elaborated and checked here; a resumed run's, by `resume.restore_run`."""
    if opts.resume:
        if not opts.out:
            raise UsageError("--resume needs --out DIR (the run folder to continue)")
        return Resume(source, opts)
    if source is None:
        raise UsageError("no spec to train: give a SPEC file (or --resume with --out)")
    return request(source, opts)


def request(source: SpecSource, opts: TrainOptions) -> Request:
    size = parse_size(opts.input) if isinstance(opts.input, str) else opts.input
    net = source.elaborate(size, dict(opts.constants))
    table = infer(net)  # the spec as written (with --set) must hold before any data is read: fail fast, statically
    return Request(source, opts, net, table, resolve_train(net, opts))


# ---------------------------------------------------------------------------------------------------------------
# The spec's train settings with the options applied
# ---------------------------------------------------------------------------------------------------------------

SETTINGS_FLAGS = ("data", "epochs", "batch_size", "test_batch_size", "seed")
OPTIMIZER_FLAGS = ("lr", "momentum", "weight_decay")


def resolve_train(net: Network, opts: TrainOptions) -> S.TrainSpec:
    """The spec's train settings with the options' values, validated by the settings models as the spec's own
    values are; inferred schedule arguments (CosineAnnealingLR's T_max, OneCycleLR's max_lr) follow the new epochs
    and lr, written ones stay."""
    t = net.train
    given = {k: getattr(opts, k) for k in SETTINGS_FLAGS if getattr(opts, k) is not None}
    if isinstance(given.get("data"), os.PathLike):
        given["data"] = os.fspath(given["data"])
    optimizer = {k: getattr(opts, k) for k in OPTIMIZER_FLAGS if getattr(opts, k) is not None}
    if optimizer:
        given["optimizer"] = _validated(type(t.optimizer), {**t.optimizer.args(), **optimizer}, optimizer)
    if given:
        t = _validated(S.TrainSpec, {**{k: getattr(t, k) for k in S.TrainSpec.model_fields}, **given}, given)
    return S.infer_schedule(t, net.train_inferred)


def _validated(model: Any, values: dict[str, Any], given: dict[str, Any]) -> Any:
    """`model` validated from `values`; a mistake in one of the `given` flags is a UsageError naming the flag."""
    try:
        return model.model_validate(values)
    except ValueError as e:  # pydantic's ValidationError, or netspec's Invalid carrying its errors
        err = e.errors()[0]  # type: ignore[attr-defined]
        key = str(err["loc"][0])
        flag = "--" + key.replace("_", "-")
        if err["type"] == "extra_forbidden":
            raise UsageError(f"{flag}: {model.__name__} has no {key}") from None
        raise UsageError(f"{flag} {given.get(key)}: {_must(err)}") from None


_BOUNDS = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}


def _must(err: dict[str, Any]) -> str:
    """pydantic's error as a flag's rule: "must be >= 1", "must be a positive number"."""
    op = _BOUNDS.get(err["type"])
    if op is None:
        return err["msg"].replace("Input should", "must", 1)
    bound = next(iter(err["ctx"].values()))
    return "must be a positive number" if (op, bound) == (">", 0) else f"must be {op} {bound:g}"
