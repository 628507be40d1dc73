"""netspec.lang.validate: the fast path accepts only what the pydantic models accept, returns what they return, and accepts
everything they would return; pydantic judges every mistake."""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from netspec.api import check
from netspec.lang import layers as L
from netspec.lang import train_section as S
from netspec.lang import validate as M

ROOT = Path(__file__).resolve().parents[1]

MODELS = [
    *L.LAYERS.values(),
    *S.OPTIMIZERS.values(),
    *S.SCHEDULES.values(),
    *S.TRANSFORMS.values(),
    S.Normalize,
    S.TrainSpec,
]

# values of every kind a spec can produce, and some near-misses (lists for tuples, 0 for False, huge ints)
INSTANCES = [
    S.SGD(),
    S.Adam(),
    S.AdamW(),
    S.StepLR(step_size=2),
    S.CosineAnnealingLR(),
    S.RandomCrop(padding=4),
    S.RandomHorizontalFlip(),
    S.Normalize(mean=(0.5,), std=(0.5,)),
    L.ReLU(),
]
STRINGS = sorted({"same", "valid", "zeros", "reflect", "circular", "none", "tanh", "cos", "linear", "cifar10", "", "x"})
scalars = st.one_of(
    st.integers(-3, 8),
    st.integers(),
    st.just(2**1100),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, 0.5, 1.0, 1e-5, -0.0, 0.999]),
    st.booleans(),
    st.none(),
    st.sampled_from(STRINGS),
    st.sampled_from(INSTANCES),
)
values = st.one_of(
    scalars,
    st.lists(scalars, max_size=3).map(tuple),
    st.lists(scalars, max_size=3),
    st.lists(st.sampled_from(INSTANCES), max_size=3).map(tuple),
)


def same(a, b) -> bool:
    """Equal, of the same types all the way down (1 is not 1.0), NaN equal to NaN."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b


def reference(cls, vals):
    try:
        return cls._reference(vals)
    except M.Invalid:
        return None


@st.composite
def calls(draw):
    cls = draw(st.sampled_from(MODELS))
    names = list(cls.model_fields)
    vals = {n: draw(values) for n in names if draw(st.booleans())}
    if draw(st.integers(0, 9)) == 0:
        vals["unknown_argument"] = 1
    return cls, vals


@settings(max_examples=1500, deadline=None)
@given(calls())
def test_fast_path_never_disagrees_with_pydantic(call):
    cls, vals = call
    fast, ref = cls._fast(vals), reference(cls, vals)
    if fast is not None:
        assert ref is not None, f"fast path accepted what pydantic refuses: {cls.__name__}({vals})"
        assert same(fast, ref), (fast, ref)
    if ref is not None:
        # whatever pydantic returns is canonical: the fast path takes it as it is
        again = cls._fast(ref)
        assert again is not None and same(again, ref), (cls.__name__, ref)


@pytest.mark.parametrize("cls", MODELS, ids=lambda c: c.__name__)
def test_every_annotation_has_a_fast_check_and_a_pydantic_model(cls):
    for f in cls.model_fields.values():
        M._compile(f.annotation)
    pm = M.pydantic_model(cls)
    assert list(pm.model_fields) == list(cls.model_fields)
    assert pm.model_config["extra"] == "forbid" and pm.model_config["strict"]
    for name, f in cls.model_fields.items():
        assert pm.model_fields[name].is_required() == f.is_required()


def test_mistakes_carry_pydantic_errors():
    with pytest.raises(M.Invalid) as e:
        L.Conv2d.model_validate({"out_channels": 0, "kernel_size": 3})
    (err,) = e.value.errors()
    assert err["type"] == "greater_than_equal" and err["loc"] == ("out_channels",) and err["ctx"] == {"ge": 1}
    with pytest.raises(M.Invalid) as e:
        L.Linear.model_validate({"out_features": 10, "bais": True})
    assert [x["type"] for x in e.value.errors()] == ["extra_forbidden"]
    with pytest.raises(M.Invalid) as e:
        L.Linear.model_validate({})
    assert [x["type"] for x in e.value.errors()] == ["missing"]


def test_near_misses_get_pydantic_verdict():
    # pydantic takes 0 for Literal[False]; the fast path leaves that to it, and the result is pydantic's
    assert L.MaxPool2d._fast({"kernel_size": 2, "return_indices": 0}) is None
    assert L.MaxPool2d.model_validate({"kernel_size": 2, "return_indices": 0}).return_indices is False
    # an int where a float goes becomes a float, on both paths
    assert type(L.LeakyReLU.model_validate({"negative_slope": 1}).negative_slope) is float


def test_instances_behave_like_frozen_models():
    a = L.Conv2d(out_channels=8, kernel_size=3)
    assert a == L.Conv2d.model_validate({"out_channels": 8, "kernel_size": 3})
    assert hash(a) == hash(L.Conv2d(kernel_size=3, out_channels=8))
    assert repr(a).startswith("Conv2d(out_channels=8, kernel_size=3, stride=1, padding=0")
    with pytest.raises(TypeError, match="immutable"):
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
    t1, t2 = S.TrainSpec(), S.TrainSpec()
    assert t1.optimizer == S.SGD(lr=0.01, momentum=0.9) and t1 == t2  # a fresh default from the factory
    assert S.AdamW().weight_decay == 1e-2 and list(S.AdamW.model_fields) == list(S.Adam.model_fields)


SPECS_AND_EXAMPLES = sorted((*(ROOT / "specs").glob("*.net"), *(ROOT / "examples").glob("*.net")))


@pytest.mark.parametrize("path", SPECS_AND_EXAMPLES, ids=lambda p: p.stem)
def test_specs_elaborate_the_same_through_pydantic_alone(path, monkeypatch):
    fast, _ = check(path)
    monkeypatch.setattr(M, "REFERENCE_ONLY", True)
    ref, _ = check(path)
    assert fast.layers == ref.layers and fast.train == ref.train
