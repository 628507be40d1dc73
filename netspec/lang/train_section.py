"""The `train` section as argument models (see `netspec.model`): optimizer, schedule, augmentation, normalization.

Names and arguments are PyTorch's and torchvision's own (`SGD(lr=0.01, momentum=0.9)`, `RandomCrop(padding=4)`).
Sizes that follow from the input (RandomCrop's `size`, CosineAnnealingLR's `T_max`, OneCycleLR's `max_lr`) may be
left out and are filled in here.
"""

from typing import Annotated, ClassVar, Literal, Union

from .validate import Bounds, Factory, Model

PosInt = Annotated[int, Bounds(ge=1)]
NonNegInt = Annotated[int, Bounds(ge=0)]
PosFloat = Annotated[float, Bounds(gt=0.0)]
NonNegFloat = Annotated[float, Bounds(ge=0.0)]
Prob = Annotated[float, Bounds(ge=0.0, le=1.0)]
Size2 = Union[PosInt, tuple[PosInt, PosInt]]


class _Model(Model):
    POSITIONAL: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def kind(cls) -> str:
        return cls.__name__

    def args(self) -> dict:
        return {k: getattr(self, k) for k in type(self).model_fields}


# ---- optimizers -----------------------------------------------------------------------------------------------
class SGD(_Model):
    POSITIONAL = ("lr", "momentum", "dampening", "weight_decay", "nesterov")
    lr: PosFloat = 0.01
    momentum: NonNegFloat = 0.0
    dampening: NonNegFloat = 0.0
    weight_decay: NonNegFloat = 0.0
    nesterov: bool = False


class Adam(_Model):
    POSITIONAL = ("lr", "betas", "eps", "weight_decay")
    lr: PosFloat = 1e-3
    betas: tuple[Prob, Prob] = (0.9, 0.999)
    eps: PosFloat = 1e-8
    weight_decay: NonNegFloat = 0.0


class AdamW(Adam):
    weight_decay: NonNegFloat = 1e-2


OPTIMIZERS: dict[str, type[_Model]] = {c.__name__: c for c in (SGD, Adam, AdamW)}


# ---- learning-rate schedules (stepped once per epoch, except OneCycleLR: once per batch) ----------------------
class StepLR(_Model):
    POSITIONAL = ("step_size", "gamma")
    step_size: PosInt
    gamma: PosFloat = 0.1


class MultiStepLR(_Model):
    POSITIONAL = ("milestones", "gamma")
    milestones: tuple[PosInt, ...]
    gamma: PosFloat = 0.1


class ExponentialLR(_Model):
    POSITIONAL = ("gamma",)
    gamma: PosFloat


class CosineAnnealingLR(_Model):
    POSITIONAL = ("T_max", "eta_min")
    T_max: PosInt | None = None  # inferred: the number of epochs
    eta_min: NonNegFloat = 0.0


class OneCycleLR(_Model):
    POSITIONAL = ("max_lr",)
    max_lr: PosFloat | None = None  # inferred: the optimizer's lr
    pct_start: Prob = 0.3
    anneal_strategy: Literal["cos", "linear"] = "cos"
    div_factor: PosFloat = 25.0
    final_div_factor: PosFloat = 1e4


SCHEDULES: dict[str, type[_Model]] = {
    c.__name__: c for c in (StepLR, MultiStepLR, ExponentialLR, CosineAnnealingLR, OneCycleLR)
}


# ---- augmentation (train only) --------------------------------------------------------------------------------
class RandomCrop(_Model):
    POSITIONAL = ("size", "padding")
    size: Size2 | None = None  # inferred: the input's H x W
    padding: NonNegInt | tuple[NonNegInt, NonNegInt] = 0


class RandomHorizontalFlip(_Model):
    POSITIONAL = ("p",)
    p: Prob = 0.5


class RandomVerticalFlip(RandomHorizontalFlip):
    pass


class ColorJitter(_Model):
    POSITIONAL = ("brightness", "contrast", "saturation", "hue")
    brightness: NonNegFloat = 0.0
    contrast: NonNegFloat = 0.0
    saturation: NonNegFloat = 0.0
    hue: Annotated[float, Bounds(ge=0.0, le=0.5)] = 0.0


class RandomRotation(_Model):
    POSITIONAL = ("degrees",)
    degrees: NonNegFloat | tuple[float, float]


class Resize(_Model):
    POSITIONAL = ("size",)
    size: Size2


TRANSFORMS: dict[str, type[_Model]] = {
    c.__name__: c for c in (RandomCrop, RandomHorizontalFlip, RandomVerticalFlip, ColorJitter, RandomRotation, Resize)
}

# written in the report's lists, but implicit here: images are tensors from the start
IMPLICIT_TRANSFORMS = ("ToTensor", "ToPILImage", "PILToTensor", "ToImage", "ToDtype", "Normalize")


class Normalize(_Model):
    POSITIONAL = ("mean", "std")
    mean: tuple[float, ...]
    std: tuple[Annotated[float, Bounds(gt=0.0)], ...]


DATA_NAMES = ("cifar10", "cifar100", "mnist", "fashion-mnist", "tiny-imagenet", "shapes")


class TrainSpec(Model):
    """A run's settings. Every field has a default so a spec without a `train` section still trains."""

    data: str = "shapes"
    epochs: PosInt = 10
    batch_size: PosInt = 128
    test_batch_size: PosInt = 1000
    optimizer: SGD | Adam | AdamW = Factory(lambda: SGD(lr=0.01, momentum=0.9))
    schedule: StepLR | MultiStepLR | ExponentialLR | CosineAnnealingLR | OneCycleLR | None = None
    seed: NonNegInt = 0
    augment: tuple[
        RandomCrop | RandomHorizontalFlip | RandomVerticalFlip | ColorJitter | RandomRotation | Resize, ...
    ] = ()
    normalize: Normalize | None = None
    label_smoothing: Annotated[float, Bounds(ge=0.0, lt=1.0)] = 0.0

    def describe(self) -> dict:
        """A plain-JSON view of the settings (for settings.json and reports)."""
        out = {}
        for k in type(self).model_fields:
            v = getattr(self, k)
            if isinstance(v, _Model):
                out[k] = {"name": v.kind(), **v.args()}
            elif isinstance(v, tuple) and v and isinstance(v[0], _Model):
                out[k] = [{"name": t.kind(), **t.args()} for t in v]
            else:
                out[k] = v
        return out


SETTING_KEYS = tuple(TrainSpec.model_fields)


INFERRED_SCHEDULE_ARGS = ("T_max", "max_lr")


def infer_schedule(train: TrainSpec, inferred) -> TrainSpec:
    """Fill the schedule arguments the spec left to follow from other settings (`inferred` names them):
    CosineAnnealingLR's T_max is the number of epochs, OneCycleLR's max_lr the optimizer's lr. Run again after the
    command line changes epochs or lr, so an inferred value follows and a written one stays."""
    s = train.schedule
    upd = {}
    if isinstance(s, CosineAnnealingLR) and "T_max" in inferred:
        upd["T_max"] = train.epochs
    if isinstance(s, OneCycleLR) and "max_lr" in inferred:
        upd["max_lr"] = train.optimizer.lr
    return train.model_copy(update={"schedule": s.model_copy(update=upd)}) if upd else train
