"""netspec.lang's argument models are plain pydantic models: strict, unknown arguments refused, immutable; pydantic
judges every value, and `validate.validated` words its verdict at the argument."""

from __future__ import annotations

import pickle
import types
import typing

import pytest
from netspec.lang import layers as L
from netspec.lang import train_section as S
from netspec.lang.validate import ArgModel
from pydantic import BaseModel, ValidationError

MODELS: list[type[BaseModel]] = [
    *L.LAYERS.values(),
    *S.OPTIMIZERS.values(),
    *S.SCHEDULES.values(),
    *S.TRANSFORMS.values(),
    S.Normalize,
    S.TrainSpec,
]


@pytest.mark.parametrize("cls", MODELS, ids=lambda c: c.__name__)
def test_every_model_is_strict_closed_and_frozen(cls):
    config = cls.model_config
    assert config["strict"] and config["extra"] == "forbid" and config["frozen"]
    if issubclass(cls, ArgModel):
        assert set(cls.POSITIONAL) <= set(cls.model_fields), cls.POSITIONAL
        assert not set(cls.INFERRED) & set(cls.model_fields)


@pytest.mark.parametrize("cls", MODELS, ids=lambda c: c.__name__)
def test_every_model_takes_its_own_defaults(cls):
    """A registry entry that cannot be built with its defaults (and its required arguments) is a declaration bug."""
    required = {name: _valid(f.annotation) for name, f in cls.model_fields.items() if f.is_required()}
    model = cls.model_validate(required)
    assert model == cls.model_validate(model.model_dump())


def _valid(annotation) -> object:
    """A value of the type: 1 for an integer (every bound here admits it), 1.0 for a number, tuples of those."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _valid(args[0])
    if origin is typing.Union or origin is types.UnionType:
        return _valid(args[0])
    if origin is tuple:
        return (_valid(args[0]),) if args[-1] is Ellipsis else tuple(_valid(a) for a in args)
    if origin is typing.Literal:
        return args[0]
    return 1.0 if annotation is float else 1


def test_mistakes_carry_pydantic_errors():
    with pytest.raises(ValidationError) as e:
        L.Conv2d.model_validate({"out_channels": 0, "kernel_size": 3})
    (err,) = e.value.errors()
    assert err["type"] == "greater_than_equal" and err["loc"] == ("out_channels",) and err["ctx"] == {"ge": 1}
    with pytest.raises(ValidationError) as e:
        L.Linear.model_validate({"out_features": 10, "bais": True})
    assert [x["type"] for x in e.value.errors()] == ["extra_forbidden"]
    with pytest.raises(ValidationError) as e:
        L.Linear.model_validate({})
    assert [x["type"] for x in e.value.errors()] == ["missing"]
    with pytest.raises(ValidationError):
        L.Linear.model_validate({"out_features": "10"})  # strict: '10' is not 10


def test_values_are_what_pydantic_makes_of_them():
    # pydantic takes 0 for Literal[False]; an int where a float goes becomes a float
    assert L.MaxPool2d.model_validate({"kernel_size": 2, "return_indices": 0}).return_indices is False
    assert type(L.LeakyReLU.model_validate({"negative_slope": 1}).negative_slope) is float


def test_instances_behave_like_frozen_models():
    a = L.Conv2d(out_channels=8, kernel_size=3)
    assert a == L.Conv2d.model_validate({"out_channels": 8, "kernel_size": 3})
    assert hash(a) == hash(L.Conv2d(kernel_size=3, out_channels=8))
    assert repr(a).startswith("Conv2d(out_channels=8, kernel_size=3, stride=1, padding=0")
    with pytest.raises(ValidationError, match="frozen"):
        a.stride = 2  # type: ignore[misc]
    b = a.model_copy(update={"stride": 2})
    assert (b.stride, a.stride) == (2, 1) and b != a
    assert pickle.loads(pickle.dumps(a)) == a
    assert a.args() == {
        "out_channels": 8,
        "kernel_size": 3,
        "stride": 1,
        "padding": 0,
        "dilation": 1,
        "groups": 1,
        "bias": True,
        "padding_mode": "zeros",
    }
    assert L.Conv2d.signature() == (
        "Conv2d(out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=true, padding_mode='zeros')"
    )
    t1, t2 = S.TrainSpec(), S.TrainSpec()
    assert t1.optimizer == S.SGD(lr=0.01, momentum=0.9) and t1 == t2  # a fresh default from the factory
    assert S.AdamW().weight_decay == 1e-2 and list(S.AdamW.model_fields) == list(S.Adam.model_fields)
