"""The `train` section: its settings as models (optimizer, schedule, augmentation, normalization), the data set
names, and the elaboration of the section into a `TrainSpec`.

Names and arguments are PyTorch's and torchvision's own (`SGD(lr=0.01, momentum=0.9)`, `RandomCrop(padding=4)`).
Sizes that follow from the input (RandomCrop's `size`, CosineAnnealingLR's `T_max`, OneCycleLR's `max_lr`) may be
left out and are filled in here.
"""

from collections.abc import Callable, Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from ..errors import Location, SpecError
from .hints import did_you_mean
from .syntax import Expr, Setting
from .validate import (
    STRICT,
    ArgModel,
    CallValue,
    NonNegFloat,
    NonNegInt,
    PosFloat,
    PosInt,
    PosPair,
    Prob,
    Symbol,
    pair,
    takes,
    type_name,
    validated,
    validated_settings,
)


# ---- optimizers -----------------------------------------------------------------------------------------------
class SGD(ArgModel):
    POSITIONAL = ("lr", "momentum", "dampening", "weight_decay", "nesterov")
    lr: PosFloat = 0.01
    momentum: NonNegFloat = 0.0
    dampening: NonNegFloat = 0.0
    weight_decay: NonNegFloat = 0.0
    nesterov: bool = False


class Adam(ArgModel):
    POSITIONAL = ("lr", "betas", "eps", "weight_decay")
    lr: PosFloat = 1e-3
    betas: tuple[Prob, Prob] = (0.9, 0.999)
    eps: PosFloat = 1e-8
    weight_decay: NonNegFloat = 0.0


class AdamW(Adam):
    weight_decay: NonNegFloat = 1e-2


OPTIMIZERS: dict[str, type[ArgModel]] = {c.__name__: c for c in (SGD, Adam, AdamW)}


# ---- learning-rate schedules (stepped once per epoch, except OneCycleLR: once per batch) ----------------------
class StepLR(ArgModel):
    POSITIONAL = ("step_size", "gamma")
    step_size: PosInt
    gamma: PosFloat = 0.1


class MultiStepLR(ArgModel):
    POSITIONAL = ("milestones", "gamma")
    milestones: tuple[PosInt, ...]
    gamma: PosFloat = 0.1


class ExponentialLR(ArgModel):
    POSITIONAL = ("gamma",)
    gamma: PosFloat


class CosineAnnealingLR(ArgModel):
    POSITIONAL = ("T_max", "eta_min")
    T_max: PosInt | None = None  # inferred: the number of epochs
    eta_min: NonNegFloat = 0.0


class OneCycleLR(ArgModel):
    POSITIONAL = ("max_lr",)
    max_lr: PosFloat | None = None  # inferred: the optimizer's lr
    pct_start: Prob = 0.3
    anneal_strategy: Literal["cos", "linear"] = "cos"
    div_factor: PosFloat = 25.0
    final_div_factor: PosFloat = 1e4


SCHEDULES: dict[str, type[ArgModel]] = {
    c.__name__: c for c in (StepLR, MultiStepLR, ExponentialLR, CosineAnnealingLR, OneCycleLR)
}


# ---- augmentation (train only) --------------------------------------------------------------------------------
class RandomCrop(ArgModel):
    POSITIONAL = ("size", "padding")
    size: PosPair | None = None  # inferred: the input's H x W
    padding: NonNegInt | tuple[NonNegInt, NonNegInt] = 0


class RandomHorizontalFlip(ArgModel):
    POSITIONAL = ("p",)
    p: Prob = 0.5


class RandomVerticalFlip(RandomHorizontalFlip):
    pass


class ColorJitter(ArgModel):
    POSITIONAL = ("brightness", "contrast", "saturation", "hue")
    brightness: NonNegFloat = 0.0
    contrast: NonNegFloat = 0.0
    saturation: NonNegFloat = 0.0
    hue: Annotated[float, Field(ge=0.0, le=0.5)] = 0.0


class RandomRotation(ArgModel):
    POSITIONAL = ("degrees",)
    degrees: NonNegFloat | tuple[float, float]


class Resize(ArgModel):
    POSITIONAL = ("size",)
    size: PosPair


TRANSFORMS: dict[str, type[ArgModel]] = {
    c.__name__: c for c in (RandomCrop, RandomHorizontalFlip, RandomVerticalFlip, ColorJitter, RandomRotation, Resize)
}

# written in the report's lists, but implicit here: images are tensors from the start
IMPLICIT_TRANSFORMS = ("ToTensor", "ToPILImage", "PILToTensor", "ToImage", "ToDtype", "Normalize")


class Normalize(ArgModel):
    POSITIONAL = ("mean", "std")
    mean: tuple[float, ...]
    std: tuple[PosFloat, ...]


class TrainSpec(BaseModel):
    """A run's settings. Every field has a default so a spec without a `train` section still trains."""

    model_config = STRICT

    data: str = "shapes"
    epochs: PosInt = 10
    batch_size: PosInt = 128
    test_batch_size: PosInt = 1000
    optimizer: SGD | Adam | AdamW = Field(default_factory=lambda: SGD(lr=0.01, momentum=0.9))
    schedule: StepLR | MultiStepLR | ExponentialLR | CosineAnnealingLR | OneCycleLR | None = None
    seed: NonNegInt = 0
    augment: tuple[
        RandomCrop | RandomHorizontalFlip | RandomVerticalFlip | ColorJitter | RandomRotation | Resize, ...
    ] = ()
    normalize: Normalize | None = None
    label_smoothing: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    validation: NonNegInt = 0  # training images held out, stratified by class, tested each epoch
    warmup: NonNegInt = 0  # epochs over which the rate rises linearly, step by step, to the schedule's
    no_decay_on_norms: bool = False  # weight decay on conv and linear weights only, not on norms and biases
    ema: Annotated[float, Field(gt=0.0, lt=1.0)] | None = None  # the weights' moving average, tested instead
    tta: Literal["flip"] | None = None  # test-time augmentation: flip averages the logits of an image and its mirror

    def describe(self) -> dict[str, Any]:
        """A plain-JSON view of the settings (for settings.json and reports)."""
        out: dict[str, Any] = {}
        for k in type(self).model_fields:
            v = getattr(self, k)
            if isinstance(v, ArgModel):
                out[k] = {"name": v.kind(), **v.args()}
            elif isinstance(v, tuple) and v and isinstance(v[0], ArgModel):
                out[k] = [{"name": t.kind(), **t.args()} for t in v]
            else:
                out[k] = v
        return out


SETTING_KEYS = tuple(TrainSpec.model_fields)


# ---- data sets ------------------------------------------------------------------------------------------------
DATA_NAMES = ("cifar10", "cifar100", "mnist", "fashion-mnist", "tiny-imagenet", "shapes")

# Other spellings of the names in DATA_NAMES (after lower-casing and "_" -> "-").
DATA_ALIASES = {
    "cifar-10": "cifar10",
    "cifar-100": "cifar100",
    "fashionmnist": "fashion-mnist",
    "tinyimagenet": "tiny-imagenet",
    "tiny-imagenet-200": "tiny-imagenet",
}


def data_key(name: str) -> str | None:
    """The canonical name of a built-in data set (`CIFAR_10` -> `cifar10`), or None when `name` is none of them."""
    key = name.strip().lower().replace("_", "-")
    key = DATA_ALIASES.get(key, key)
    return key if key in DATA_NAMES else None


# ---- schedules whose arguments follow from other settings -----------------------------------------------------
INFERRED_SCHEDULE_ARGS = ("T_max", "max_lr")


def infer_schedule(train: TrainSpec, inferred: frozenset[str]) -> TrainSpec:
    """Fill the schedule arguments the spec left to follow from other settings (`inferred` names them):
    CosineAnnealingLR's T_max is the number of epochs, OneCycleLR's max_lr the optimizer's lr. Run again after the
    command line changes epochs or lr, so an inferred value follows and a written one stays."""
    s = train.schedule
    upd: dict[str, Any] = {}
    if isinstance(s, CosineAnnealingLR) and "T_max" in inferred:
        upd["T_max"] = train.epochs
    if isinstance(s, OneCycleLR) and "max_lr" in inferred:
        upd["max_lr"] = train.optimizer.lr
    if s is None or not upd:
        return train
    return train.model_copy(update={"schedule": s.model_copy(update=upd)})


# ---- the section -> a TrainSpec -------------------------------------------------------------------------------
# settings that are arguments of something else, as people coming from a training script write them
_OPTIMIZER_ARGS = {
    "lr": "0.1",
    "momentum": "0.9",
    "weight_decay": "5e-4",
    "nesterov": "true",
    "dampening": "0.0",
    "betas": "(0.9, 0.999)",
    "eps": "1e-8",
}
_AUGMENT = "write augment [RandomCrop(padding=4), RandomHorizontalFlip()]"
_NORMALIZE = "write normalize Normalize(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))"
_MISPLACED_SETTINGS = {
    **{k: f"{k} is an argument of the optimizer: optimizer SGD({k}={v})" for k, v in _OPTIMIZER_ARGS.items()},
    "learning_rate": "the learning rate is an argument of the optimizer: optimizer SGD(lr=0.1)",
    "scheduler": "write schedule CosineAnnealingLR()",
    "lr_scheduler": "write schedule CosineAnnealingLR()",
    "transforms": _AUGMENT,
    "transform": _AUGMENT,
    "augmentation": _AUGMENT,
    "dataset": "write data cifar10",
    "mean": _NORMALIZE,
    "std": _NORMALIZE,
}

Located = tuple[Any, Location]


def train_spec(
    settings: Sequence[Setting], value_of: Callable[[Expr], Any], input_hw: tuple[int, int], section: Location | None
) -> tuple[TrainSpec, dict[str, Location], frozenset[str]]:
    """The settings of a `train` section (`value_of` evaluates a setting's expression) as a TrainSpec for an input
    of `input_hw`; also where each setting is written, and which schedule arguments were inferred."""
    values = _read(settings, value_of)
    locs = {key: loc for key, (_, loc) in values.items()}
    out: dict[str, Any] = {}
    for key, (value, loc) in values.items():
        out[key] = _setting(key, value, loc)
    if "augment" in out:
        out["augment"] = _sized(out["augment"], input_hw, locs["augment"])
    written = {key: value for key, (value, _) in values.items()}
    spec = validated_settings(TrainSpec, out, written, locs, section)  # strict: `batch_size '128'` is not 128
    _check_normalize(spec.normalize, locs.get("normalize"))
    inferred = frozenset(
        k for k in INFERRED_SCHEDULE_ARGS if spec.schedule is not None and getattr(spec.schedule, k, 0) is None
    )
    return infer_schedule(spec, inferred), locs, inferred


def _read(settings: Sequence[Setting], value_of: Callable[[Expr], Any]) -> dict[str, Located]:
    """Each setting's value and place; an unknown or repeated setting is an error at its key."""
    values: dict[str, Located] = {}
    for st in settings:
        if st.key not in SETTING_KEYS:
            hint = _MISPLACED_SETTINGS.get(st.key) or did_you_mean(st.key, SETTING_KEYS)
            raise SpecError(
                f"unknown setting {st.key!r}",
                st.key_loc,
                hint=hint or f"settings: {', '.join(SETTING_KEYS)}",
                code="E060",
            )
        if st.key in values:
            raise SpecError(
                f"setting {st.key!r} is given twice (first at line {values[st.key][1].line})",
                st.key_loc,
                hint="remove one of them",
                code="E060",
            )
        values[st.key] = (value_of(st.value), st.value.loc)
    return values


def _setting(key: str, value: Any, loc: Location) -> Any:
    """One setting's value, as TrainSpec takes it: a name, a model, a tuple of models, or the value itself."""
    if key == "data":
        return _data_name(value, loc)
    if key == "optimizer":
        return _call_model(value, OPTIMIZERS, "optimizer", loc)
    if key == "schedule":
        return None if value is None else _call_model(value, SCHEDULES, "schedule", loc)
    if key == "normalize":
        return None if value is None else _call_model(value, {"Normalize": Normalize}, "normalization", loc)
    if key == "tta":  # a bare word: `tta flip`
        return value.name if isinstance(value, Symbol) else value
    if key == "augment":
        items = [] if value is None else value if isinstance(value, (list, tuple)) else [value]
        return tuple((_call_model(v, TRANSFORMS, "transform", loc), getattr(v, "loc", loc)) for v in items)
    if isinstance(value, (Symbol, CallValue)):
        raise SpecError(
            f"{takes(TrainSpec, key)}, not {type_name(value)}",
            value.loc,
            hint=f"undefined name {value.name!r}" if isinstance(value, Symbol) else None,
            code="E061",
        )
    return value


def _data_name(value: Any, loc: Location) -> str:
    """`data cifar10` (a bare name, checked here) or `data 'path/to/folder'` (a path, checked when loading)."""
    if isinstance(value, str):
        return value
    if isinstance(value, Symbol):
        key = data_key(value.name)
        if key is not None:
            return key
        close = did_you_mean(value.name, DATA_NAMES)
        folder = "an image folder is written as a path in quotes: data 'path/to/folder'"
        hint = f"{close} ({folder})" if close else f"data sets: {', '.join(DATA_NAMES)}; {folder}"
        raise SpecError(f"unknown data set {value.name!r}", value.loc, hint=hint, code="E065")
    raise SpecError(
        f"data takes a data set name or a path in quotes, not {type_name(value)}",
        loc,
        hint=f"data sets: {', '.join(DATA_NAMES)}",
        code="E065",
    )


def _call_model(value: Any, table: dict[str, type[ArgModel]], what: str, loc: Location) -> ArgModel:
    if isinstance(value, Symbol):
        # a bare name such as `RandomHorizontalFlip` without parentheses
        value = CallValue(value.name, (), (), value.loc, value.loc)
    if not isinstance(value, CallValue):
        article = "an" if what[0] in "aeiou" else "a"
        raise SpecError(
            f"expected {article} {what} such as {next(iter(table))}(...), got {type_name(value)}", loc, code="E063"
        )
    cls = table.get(value.name)
    if cls is None:
        if what == "transform" and value.name == "Normalize":
            hint = "normalization is its own setting, for train and test: normalize Normalize(mean=..., std=...)"
        elif what == "transform" and value.name in IMPLICIT_TRANSFORMS:
            hint = (
                f"images are tensors from the start: {value.name} is implicit, leave it out "
                f"(and write normalization as `normalize Normalize(mean=..., std=...)`)"
            )
        else:
            hint = did_you_mean(value.name, table) or f"{what}s: {', '.join(table)}"
        raise SpecError(f"unknown {what} {value.name!r}", value.name_loc, hint=hint, code="E064")
    return validated(cls, value)


def _sized(augment: tuple[tuple[ArgModel, Location], ...], input_hw: tuple[int, int], loc: Location) -> tuple[Any, ...]:
    """The transforms with RandomCrop's size filled in (the size so far: the input's, or a Resize's); the images
    they make must have the input's size."""
    size, size_loc = input_hw, None
    out = []
    for t, tloc in augment:
        if isinstance(t, RandomCrop):
            if t.size is None:
                t = t.model_copy(update={"size": size})
            else:
                size, size_loc = pair(t.size), tloc
        elif isinstance(t, Resize):
            size, size_loc = pair(t.size), tloc
        out.append(t)
    if size != input_hw:
        raise SpecError(
            f"the augmentation makes {size[0]}x{size[1]} images, but the input is {input_hw[0]}x{input_hw[1]}",
            size_loc or loc,
            hint="leave out RandomCrop's size: it is inferred from the input",
            code="E062",
        )
    return tuple(out)


def _check_normalize(norm: Normalize | None, loc: Location | None) -> None:
    if norm is not None and (len(norm.mean) != len(norm.std) or not norm.mean):
        raise SpecError(
            f"normalize has {len(norm.mean)} mean{'s' if len(norm.mean) != 1 else ''} and "
            f"{len(norm.std)} std{'s' if len(norm.std) != 1 else ''}",
            loc,
            hint="give one mean and one std per channel: Normalize(mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))",
            code="E066",
        )
