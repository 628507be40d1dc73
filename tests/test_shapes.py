"""The shape oracle: static inference (`netspec.shapes`, no torch) agrees EXACTLY with torch for every layer kind.

For each case a tiny spec is compiled with `netspec.load` and checked by `strategies.oracle`: the real output and
every row's real in/out shape (forward hooks, matched by module path), per-row and total parameters, the per-row
mult-adds by torchinfo's formula and torchinfo's own totals. Each case is also run by `strategies.reference`, which
builds the same stack from `torch.nn` directly (in_channels & co. from the real tensor), without netspec.

Cases torch refuses must be refused statically with a located SpecError; where netspec refuses something torch
would run, the reason is one of the documented `Stricter` ones and the test says so.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import netspec
import pytest
import torch
from netspec.lang import layers as Lmod
from netspec.shapes import MAX_ELEMENTS
from torch import nn

from strategies import (
    WARNING_FILTERS,
    Layer,
    Res,
    Seq,
    Stricter,
    TorchFailure,
    assert_located,
    one_torch_thread,
    oracle,
    reference,
    render_spec,
    torch_positional,
)

ROOT = Path(__file__).resolve().parents[1]

pytestmark = WARNING_FILTERS
_one_torch_thread = pytest.fixture(autouse=True, scope="module")(one_torch_thread)


def L(kind, *args, name=None, **kwargs):
    return Layer(kind, tuple(args), tuple(kwargs.items()), name)


FLAT = L("Flatten")

# (input, items): every case compiles, and torch runs it
ACCEPT = {
    # ---- Conv2d
    "conv": ((3, 9, 7), [L("Conv2d", 8, 3)]),
    "conv-stride2": ((3, 9, 7), [L("Conv2d", 8, 3, stride=2)]),
    "conv-stride-tuple": ((3, 9, 7), [L("Conv2d", 8, 3, stride=(2, 3))]),
    "conv-pad": ((3, 5, 5), [L("Conv2d", 8, 3, padding=1)]),
    "conv-pad-tuple": ((3, 5, 4), [L("Conv2d", 8, 3, padding=(0, 2))]),
    "conv-everything": ((3, 11, 13), [L("Conv2d", 8, (3, 5), stride=(1, 2), padding=(1, 2), dilation=(2, 1))]),
    "conv-positional": ((3, 10, 9), [L("Conv2d", 8, 3, 2, 1, 1, 1, False, "zeros")]),
    "conv-groups": ((6, 8, 8), [L("Conv2d", 9, 3, groups=3)]),
    "conv-depthwise-nobias": ((4, 8, 8), [L("Conv2d", 4, 3, groups=4, bias=False, padding=1)]),
    "conv-same": ((3, 7, 6), [L("Conv2d", 4, 3, padding="same")]),
    "conv-same-even": ((3, 7, 6), [L("Conv2d", 4, 4, padding="same")]),
    "conv-same-dilated": ((3, 5, 6), [L("Conv2d", 4, (2, 5), padding="same", dilation=2)]),
    "conv-same-bigger-than-input": ((2, 2, 3), [L("Conv2d", 4, 7, padding="same")]),
    "conv-valid": ((3, 7, 6), [L("Conv2d", 4, 3, padding="valid")]),
    "conv-1x1-on-1x1": ((1, 1, 1), [L("Conv2d", 4, 1)]),
    "conv-kernel-equals-input": ((3, 5, 5), [L("Conv2d", 2, 5)]),
    "conv-kernel-equals-padded": ((3, 3, 3), [L("Conv2d", 2, 5, padding=1)]),
    "conv-big-stride": ((3, 4, 9), [L("Conv2d", 2, 3, stride=5)]),
    "conv-reflect": ((3, 3, 3), [L("Conv2d", 2, 3, padding=2, padding_mode="reflect")]),
    "conv-replicate": ((3, 3, 4), [L("Conv2d", 2, 3, padding=1, padding_mode="replicate")]),
    "conv-replicate-large-pad": ((3, 2, 2), [L("Conv2d", 2, 3, padding=3, padding_mode="replicate")]),
    "conv-circular": ((3, 3, 3), [L("Conv2d", 2, 3, padding=(3, 1), padding_mode="circular")]),
    "conv-same-reflect": ((3, 4, 5), [L("Conv2d", 2, 5, padding="same", padding_mode="reflect")]),
    "conv-same-circular": ((3, 3, 3), [L("Conv2d", 2, 7, padding="same", padding_mode="circular")]),
    "conv-chain": ((3, 16, 12), [L("Conv2d", 8, 3, padding=1), L("Conv2d", 16, 3, stride=2), L("Conv2d", 4, 1)]),
    # ---- normalization
    "bn2d": ((3, 5, 4), [L("Conv2d", 6, 3, padding=1), L("BatchNorm2d")]),
    "bn2d-no-affine": ((3, 5, 4), [L("BatchNorm2d", affine=False)]),
    "bn2d-no-stats": ((3, 2, 1), [L("BatchNorm2d", 1e-3, None, True, False)]),
    "bn1d-flat": ((3, 4, 4), [FLAT, L("BatchNorm1d")]),
    "bn1d-CL": ((3, 4, 5), [L("Flatten", 2), L("BatchNorm1d", affine=False)]),
    "bn1d-after-linear": ((3, 2, 2), [FLAT, L("Linear", 7), L("BatchNorm1d", momentum=0.5)]),
    "groupnorm": ((4, 5, 5), [L("GroupNorm", 2)]),
    "groupnorm-1-no-affine": ((4, 5, 3), [L("GroupNorm", 1, affine=False)]),
    "groupnorm-per-channel": ((4, 2, 3), [L("GroupNorm", 4, 1e-3)]),
    "groupnorm-flat": ((3, 2, 2), [FLAT, L("GroupNorm", 3)]),
    "groupnorm-CL": ((6, 2, 2), [L("Flatten", 2), L("GroupNorm", 2)]),
    # ---- activations (image and flat)
    "activations": (
        (3, 4, 5),
        [
            L("ReLU"),
            L("ReLU", True),
            L("ReLU6"),
            L("LeakyReLU", 0.2),
            L("ELU", alpha=0.5),
            L("GELU", "tanh"),
            L("GELU"),
            L("SiLU"),
            L("Hardswish"),
            L("Mish", inplace=True),
            L("Sigmoid"),
            L("Tanh"),
            L("Identity"),
        ],
    ),
    "activations-flat": (
        (2, 3, 3),
        [
            FLAT,
            L("ReLU"),
            L("LeakyReLU", negative_slope=-0.5),
            L("ELU", 2.0, True),
            L("SiLU", True),
            L("Hardswish"),
            L("Mish"),
            L("Sigmoid"),
            L("Tanh"),
            L("Identity"),
            L("ReLU6", True),
        ],
    ),
    # ---- max pooling
    "maxpool2": ((3, 9, 7), [L("MaxPool2d", 2)]),
    "maxpool3s2": ((3, 9, 7), [L("MaxPool2d", 3, 2)]),
    "maxpool3s2p1": ((3, 9, 7), [L("MaxPool2d", 3, 2, 1)]),
    "maxpool-ceil": ((3, 8, 8), [L("MaxPool2d", 3, 2, 1, ceil_mode=True)]),
    "maxpool-ceil-odd": ((3, 7, 5), [L("MaxPool2d", 2, ceil_mode=True)]),
    "maxpool-ceil-last-window-in-padding": ((1, 5, 5), [L("MaxPool2d", 2, 2, 1, ceil_mode=True)]),
    "maxpool-dilated": ((2, 9, 8), [L("MaxPool2d", 3, stride=1, padding=1, dilation=2)]),
    "maxpool-tuples": ((2, 9, 8), [L("MaxPool2d", (2, 3), (1, 2), (1, 1))]),
    "maxpool-window-equals-input": ((3, 5, 5), [L("MaxPool2d", 5)]),
    "maxpool-on-1x1-with-padding": ((3, 1, 1), [L("MaxPool2d", 3, stride=2, padding=1)]),
    "maxpool-nonsquare-kernel": ((3, 2, 9), [L("MaxPool2d", (2, 4), ceil_mode=True)]),
    "maxpool-positional-all": ((3, 9, 9), [L("MaxPool2d", 3, 2, 1, 1, False, True)]),
    # ---- average pooling
    "avgpool2": ((3, 9, 7), [L("AvgPool2d", 2)]),
    "avgpool3s2p1": ((3, 9, 7), [L("AvgPool2d", 3, 2, 1)]),
    "avgpool-no-count-pad": ((3, 9, 7), [L("AvgPool2d", 3, 2, 1, count_include_pad=False)]),
    "avgpool-ceil": ((3, 7, 7), [L("AvgPool2d", 2, ceil_mode=True)]),
    "avgpool-ceil-last-window-in-padding": ((1, 5, 5), [L("AvgPool2d", 2, 2, 1, True)]),
    "avgpool-divisor": ((3, 6, 6), [L("AvgPool2d", 3, 1, 1, divisor_override=2)]),
    "avgpool-tuples": ((3, 6, 5), [L("AvgPool2d", (3, 1), (2, 1))]),
    "avgpool-positional-all": ((3, 8, 8), [L("AvgPool2d", 3, 2, 1, True, False, 3)]),
    # ---- adaptive pooling
    "adaptive-avg-1": ((3, 9, 7), [L("AdaptiveAvgPool2d", 1)]),
    "adaptive-avg-2x3": ((3, 9, 7), [L("AdaptiveAvgPool2d", (2, 3))]),
    "adaptive-avg-None-h": ((3, 9, 7), [L("AdaptiveAvgPool2d", (None, 2))]),
    "adaptive-avg-None-w": ((3, 9, 7), [L("AdaptiveAvgPool2d", (3, None))]),
    "adaptive-avg-None-None": ((3, 9, 7), [L("AdaptiveAvgPool2d", (None, None))]),
    "adaptive-avg-upsample": ((3, 3, 3), [L("AdaptiveAvgPool2d", 7)]),
    "adaptive-max-1": ((3, 9, 7), [L("AdaptiveMaxPool2d", 1)]),
    "adaptive-max-2x3": ((3, 9, 7), [L("AdaptiveMaxPool2d", (2, 3), False)]),
    "adaptive-max-None": ((3, 9, 7), [L("AdaptiveMaxPool2d", (None, 1))]),
    "adaptive-max-upsample": ((3, 2, 3), [L("AdaptiveMaxPool2d", 5)]),
    # ---- dropout
    "dropout": ((3, 4, 4), [L("Dropout"), L("Dropout", 0.1), L("Dropout", p=1.0), L("Dropout", 0.3, True)]),
    "dropout-flat": ((3, 4, 4), [FLAT, L("Dropout", 0.2)]),
    "dropout2d": ((3, 4, 4), [L("Dropout2d", 0.2), L("Dropout2d", p=0.0, inplace=True)]),
    # ---- flatten / linear / softmax
    "flatten": ((3, 4, 5), [FLAT]),
    "flatten-2": ((3, 4, 5), [L("Flatten", 2)]),
    "flatten-1-2": ((3, 4, 5), [L("Flatten", 1, 2)]),
    "flatten-negative": ((3, 4, 5), [L("Flatten", -3, -2)]),
    "flatten-2-3": ((3, 4, 5), [L("Flatten", 2, 3)]),
    "flatten-noop": ((3, 4, 5), [L("Flatten", 3)]),
    "flatten-twice": ((3, 4, 5), [L("Flatten", 2), FLAT]),
    "linear": ((3, 4, 5), [FLAT, L("Linear", 10)]),
    "linear-nobias": ((3, 4, 5), [FLAT, L("Linear", 3, False)]),
    "linear-chain": ((1, 1, 1), [FLAT, L("Linear", 5, bias=True), L("ReLU"), L("Linear", 2)]),
    "softmax-1": ((3, 4, 5), [L("Softmax", 1)]),
    "softmax-last": ((3, 4, 5), [L("Softmax", dim=-1)]),
    "softmax-first": ((3, 4, 5), [L("Softmax", -4)]),
    "softmax-flat": ((3, 4, 5), [FLAT, L("Linear", 4), L("Softmax", 1)]),
    # ---- composites
    "sequential": ((3, 8, 8), [Seq((L("Conv2d", 4, 3), L("ReLU"), Seq((L("MaxPool2d", 2),))))]),
    "sequential-named": ((3, 8, 8), [Seq((L("Conv2d", 4, 3, name="c"), L("ReLU", name="r")))]),
    "sequential-empty": ((3, 8, 8), [Seq(()), L("ReLU")]),
    "residual": ((4, 6, 5), [Res((L("Conv2d", 4, 3, padding=1), L("BatchNorm2d"), L("ReLU")))]),
    "residual-projection": (
        (3, 9, 7),
        [
            Res(
                (L("Conv2d", 16, 3, stride=2, padding=1), L("BatchNorm2d"), L("ReLU"), L("Conv2d", 16, 3, padding=1)),
                (L("Conv2d", 16, 1, stride=2),),
            )
        ],
    ),
    "residual-projection-bn": (
        (3, 8, 8),
        [Res((L("Conv2d", 8, 3, stride=2, padding=1),), (L("Conv2d", 8, 1, stride=2, bias=False), L("BatchNorm2d")))],
    ),
    "residual-named-shortcut": ((3, 8, 8), [Res((L("Conv2d", 8, 1),), (L("Conv2d", 8, 1, name="proj"),))]),
    "residual-composite-shortcut": (
        (3, 8, 8),
        [Res((L("Conv2d", 8, 1),), (Seq((L("Conv2d", 8, 1), L("BatchNorm2d"))),))],
    ),
    "residual-flat": ((3, 2, 2), [FLAT, Res((L("Linear", 12), L("ReLU")))]),
    "residual-nested": ((4, 6, 6), [Res((Res((L("Conv2d", 4, 3, padding=1),)), Seq((L("ReLU"),))))]),
    "anonymous-top-level": ((3, 8, 8), [L("Conv2d", 4, 3, name=""), L("ReLU", name="")]),
}


def _flat_kinds(items):
    for it in items:
        if isinstance(it, Layer):
            yield it.kind
        elif isinstance(it, Seq):
            yield from _flat_kinds(it.items)
        else:
            yield from _flat_kinds(it.body)
            yield from _flat_kinds(it.shortcut or ())


def test_every_layer_kind_is_covered():
    kinds = {k for _, items in ACCEPT.values() for k in _flat_kinds(items)}
    assert kinds == set(Lmod.LAYERS)


@pytest.mark.parametrize("kind", sorted(Lmod.LAYERS))
def test_positional_order_is_pytorchs(kind):
    """`Conv2d(64, 3)` means what nn.Conv2d(in, 64, 3) means: POSITIONAL is a prefix of torch's own order."""
    cls = Lmod.LAYERS[kind]
    assert list(cls.POSITIONAL) == torch_positional(kind)[: len(cls.POSITIONAL)]
    assert set(cls.POSITIONAL) <= set(cls.model_fields)
    for name, f in cls.model_fields.items():  # defaults are torch's
        p = inspect.signature(getattr(nn, kind)).parameters.get(name)
        assert p is not None, (kind, name)
        if not f.is_required():
            assert f.default == p.default, (kind, name, f.default, p.default)


def _fix_names(items):
    out = []
    for i, it in enumerate(items):
        if it.name is None:
            it = type(it)(**{**it.__dict__, "name": f"l{i}"})
        elif it.name == "":
            it = type(it)(**{**it.__dict__, "name": None})
        out.append(it)
    return out


@pytest.mark.parametrize("case", list(ACCEPT))
def test_static_shapes_agree_with_torch(case):
    inp, items = ACCEPT[case]
    items = _fix_names(items)
    text = render_spec(items, inp)
    compiled = netspec.loads(text)
    oracle(compiled)
    # and a stack built from torch.nn directly (no netspec) gives the same output and parameter count
    ref = reference(items, inp)
    assert ref.output == compiled.shapes.output
    assert ref.params == compiled.shapes.total_params
    assert ref.single_image
    # check() (no torch) gives the same table
    _, table = netspec.checks(text)
    assert [(r.path, r.in_shape, r.out_shape, r.params, r.macs) for r in table.rows] == [
        (r.path, r.in_shape, r.out_shape, r.params, r.macs) for r in compiled.shapes.rows
    ]


# ---- refusals --------------------------------------------------------------------------------------------------

# (input, items, the SpecError's message must contain this); torch refuses every one of these as well
REJECT_TORCH_TOO = {
    "maxpool-window-larger-than-input": ((3, 4, 4), [L("MaxPool2d", 5)], "larger than"),
    "maxpool-window-larger-nonsquare": ((3, 9, 4), [L("MaxPool2d", (2, 5))], "larger than"),
    "avgpool-window-larger-than-input": ((3, 4, 4), [L("AvgPool2d", 5)], "larger than"),
    "maxpool-dilated-window-larger": ((3, 5, 5), [L("MaxPool2d", 3, dilation=3)], "larger than"),
    "maxpool-padding-over-half": ((3, 8, 8), [L("MaxPool2d", 2, padding=2)], "half"),
    "maxpool-padding-over-half-tuple": ((3, 8, 8), [L("MaxPool2d", (3, 2), padding=(1, 2))], "half"),
    "avgpool-padding-over-half": ((3, 8, 8), [L("AvgPool2d", 3, padding=2)], "half"),
    "conv-kernel-larger-than-input": ((3, 4, 4), [L("Conv2d", 4, 5)], "larger than"),
    "conv-kernel-larger-than-padded": ((3, 2, 2), [L("Conv2d", 4, 5, padding=1)], "larger than"),
    "conv-dilated-kernel-larger": ((3, 6, 6), [L("Conv2d", 4, 3, dilation=3)], "larger than"),
    "conv-kernel-larger-one-side": ((3, 9, 4), [L("Conv2d", 4, (1, 5))], "larger than"),
    "conv-groups-in": ((3, 8, 8), [L("Conv2d", 4, 3, groups=2)], "groups"),
    "conv-groups-out": ((4, 8, 8), [L("Conv2d", 3, 3, groups=2)], "groups"),
    "conv-same-stride2": ((3, 8, 8), [L("Conv2d", 4, 3, stride=2, padding="same")], "stride"),
    "conv-reflect-pad-equals-input": ((3, 2, 2), [L("Conv2d", 4, 3, padding=2, padding_mode="reflect")], "padding"),
    "conv-reflect-pad-over-input": ((3, 2, 5), [L("Conv2d", 4, 3, padding=(3, 1), padding_mode="reflect")], "padding"),
    "conv-circular-pad-over-input": ((3, 2, 2), [L("Conv2d", 4, 7, padding=3, padding_mode="circular")], "padding"),
    "conv-same-reflect-too-small": ((3, 2, 2), [L("Conv2d", 4, 5, padding="same", padding_mode="reflect")], "padding"),
    "conv-same-circular-too-small": (
        (3, 2, 5),
        [L("Conv2d", 4, 7, padding="same", padding_mode="circular")],
        "padding",
    ),
    "conv-after-flatten": ((3, 4, 4), [FLAT, L("Conv2d", 4, 3)], "C x H x W"),
    "bn2d-after-flatten": ((3, 4, 4), [FLAT, L("BatchNorm2d")], "C x H x W"),
    "maxpool-after-flatten": ((3, 4, 4), [FLAT, L("MaxPool2d", 2)], "C x H x W"),
    "adaptive-max-after-flatten": ((3, 4, 4), [FLAT, L("AdaptiveMaxPool2d", 1)], "C x H x W"),
    "bn1d-on-image": ((3, 4, 4), [L("BatchNorm1d")], "BatchNorm1d"),
    "groupnorm-not-dividing": ((4, 5, 5), [L("GroupNorm", 3)], "num_groups"),
    "groupnorm-more-groups": ((2, 5, 5), [L("GroupNorm", 4)], "num_groups"),
    # one value per group: torch refuses it for one image (in eval mode too); with more, the output is the bias
    "groupnorm-one-value-per-group": ((4, 1, 1), [L("GroupNorm", 4)], "single value"),
    "groupnorm-one-value-per-group-flat": ((3, 2, 2), [FLAT, L("GroupNorm", 12)], "single value"),
    "flatten-start-out-of-range": ((3, 4, 4), [L("Flatten", 4)], "out of range"),
    "flatten-end-out-of-range": ((3, 4, 4), [L("Flatten", 1, -5)], "out of range"),
    "flatten-start-after-end": ((3, 4, 4), [L("Flatten", 3, 2)], "after"),
    "softmax-dim-out-of-range": ((3, 4, 4), [L("Softmax", 4)], "out of range"),
    "softmax-dim-negative-out-of-range": ((3, 4, 4), [FLAT, L("Softmax", -3)], "out of range"),
    "residual-changes-shape": ((3, 8, 8), [Res((L("Conv2d", 8, 3),))], "Residual"),
    "residual-changes-channels": ((3, 8, 8), [Res((L("Conv2d", 8, 3, padding=1),))], "Residual"),
    "residual-wrong-projection": (
        (3, 8, 8),
        [Res((L("Conv2d", 16, 3, stride=2, padding=1),), (L("Conv2d", 16, 1),))],
        "Residual",
    ),
}

# netspec refuses these although torch would run them: the reasons are deliberate
REJECT_STRICTER = {
    "linear-on-image": (
        (3, 4, 4),
        [L("Linear", 10)],
        "flat",
        "torch applies Linear to the last dimension (W) only: almost always a forgotten Flatten",
    ),
    "linear-on-CL": ((3, 4, 4), [L("Flatten", 2), L("Linear", 10)], "flat", "same: Linear on (C, L)"),
    "flatten-batch": ((3, 4, 4), [L("Flatten", 0)], "batch", "torch would merge the batch into the features"),
    "flatten-batch-negative": ((3, 4, 4), [L("Flatten", -4)], "batch", "the same with a negative start_dim"),
    "conv-on-CL": (
        (3, 4, 4),
        [L("Flatten", 2), L("Conv2d", 4, 1)],
        "C x H x W",
        "torch reads a 3-D batch as one unbatched image (the batch becomes the channels)",
    ),
    "dropout2d-flat": ((3, 4, 4), [FLAT, L("Dropout2d")], "C x H x W", "torch only warns"),
    "adaptive-avg-after-flatten": (
        (3, 4, 4),
        [FLAT, L("AdaptiveAvgPool2d", 1)],
        "C x H x W",
        "torch reads the (N, F) batch as one unbatched N x F image",
    ),
    "residual-broadcast": (
        (3, 8, 8),
        [Res((L("MaxPool2d", 8),))],
        "Residual",
        "torch broadcasts 3x1x1 + 3x8x8: a silent mistake",
    ),
}


def _expect_spec_error(text: str, fragment: str):
    with pytest.raises(netspec.SpecError) as info:
        netspec.checks(text)
    err = info.value
    assert_located(err, text)
    assert fragment in err.message, err.message
    assert err.code.startswith("E07"), err.code  # a shape error, not a syntax/validation one
    # load() refuses it the same way, before building anything
    with pytest.raises(netspec.SpecError):
        netspec.loads(text)
    return err


@pytest.mark.parametrize("case", list(REJECT_TORCH_TOO))
def test_torch_refusals_are_refused_statically(case):
    inp, items, fragment = REJECT_TORCH_TOO[case]
    items = _fix_names(items)
    text = render_spec(items, inp)
    err = _expect_spec_error(text, fragment)
    # the location is the failing layer's line
    bad_line = text.splitlines()[err.loc.line - 1]
    assert bad_line.strip() and not bad_line.startswith("input"), bad_line
    with pytest.raises(TorchFailure):
        reference(items, inp)


@pytest.mark.parametrize("case", list(REJECT_STRICTER))
def test_stricter_than_torch_by_design(case):
    inp, items, fragment, _why = REJECT_STRICTER[case]
    items = _fix_names(items)
    text = render_spec(items, inp)
    _expect_spec_error(text, fragment)
    with pytest.raises(Stricter):
        reference(items, inp)


def test_stricter_cases_really_run_in_torch():
    """The documented Stricter reasons are true: torch runs these (so refusing them is a choice, not a need)."""
    x = torch.zeros(2, 3, 4, 4)
    assert nn.Linear(4, 10)(x).shape == (2, 3, 4, 10)
    assert nn.Flatten(0)(x).shape == (96,)
    assert nn.Conv2d(2, 4, 1)(torch.zeros(2, 3, 16)).shape == (4, 3, 16)  # (N, C, L) read as (C, H, W)
    with pytest.warns(UserWarning):
        nn.Dropout2d()(torch.zeros(2, 48))
    assert nn.AdaptiveAvgPool2d(1)(torch.zeros(2, 48)).shape == (1, 1)  # (N, F) read as one N x F image
    assert (nn.MaxPool2d(8)(torch.zeros(2, 3, 8, 8)) + torch.zeros(2, 3, 8, 8)).shape == (2, 3, 8, 8)


def test_batchnorm_without_running_stats_on_one_value_per_channel():
    """Accepted (torch trains it with batches > 1), although one image cannot run it, even in eval mode: the one
    shape-valid network that torchinfo's batch-1 summary cannot run."""
    items = [L("AdaptiveAvgPool2d", 1, name="p"), L("BatchNorm2d", track_running_stats=False, name="bn")]
    c = netspec.loads(render_spec(items, (3, 5, 5)))
    oracle(c, use_torchinfo=False)
    assert not reference(items, (3, 5, 5)).single_image
    with pytest.raises(ValueError):
        c.module.eval()(torch.zeros(1, 3, 5, 5))


def test_too_large_is_refused_before_allocating():
    text = "input 3x4x4\nlayers { f Flatten() l Linear(2**40) }\n".replace("2**40", str(2**40))
    err = _expect_spec_error(text, "parameters")
    assert err.code == "E073"
    text = f"input 1x1x1\nlayers {{ a AdaptiveAvgPool2d({2**17}) }}\n"
    _expect_spec_error(text, "values per image")
    assert MAX_ELEMENTS == 2**33
    # each layer within the limit, the network past it
    text = "input 1x300x300\nlayers {\n  f Flatten()\n  repeat i in 1..100 { fc{i} Linear(90000) }\n}\n"
    err = _expect_spec_error(text, "parameters in all")
    assert err.code == "E073" and err.loc.line == 4
    # the input is an activation too, even when the first layer shrinks it at once
    text = "input 3x65536x65536\nlayers { p AvgPool2d(64) }\n"
    with pytest.raises(netspec.SpecError) as info:
        netspec.checks(text)
    assert info.value.code == "E073" and info.value.loc.line == 1


# ---- forward, module reuse, residual steps --------------------------------------------------------------------


def test_forward_with_functions_and_residual_steps():
    text = """
input 3x9x7
layers {
    head Linear(5)
    conv Conv2d(4, 3, padding=1)
    res Sequential { Conv2d(4, 3, padding=1) ReLU() }
    pool MaxPool2d(2, ceil_mode=true)
}
forward { conv relu residual res residual res pool gelu flatten silu head sigmoid tanh }
"""
    c = netspec.loads(text)
    oracle(c)
    assert c.shapes.output == (5,)
    kinds = [r.label for r in c.shapes.rows if r.depth == 0]
    assert kinds == [
        "Conv2d",
        "relu()",
        "x + Sequential(x)",
        "x + Sequential(x)",
        "MaxPool2d",
        "gelu()",
        "flatten()",
        "silu()",
        "Linear",
        "sigmoid()",
        "tanh()",
    ]
    # the same network by hand
    torch.manual_seed(0)
    x = torch.randn(2, 3, 9, 7)
    m = c.module
    y = torch.relu(m.conv(x))
    y = y + m.res(y)
    y = y + m.res(y)
    y = torch.tanh(torch.sigmoid(m.head(nn.functional.silu(torch.flatten(nn.functional.gelu(m.pool(y)), 1)))))
    assert torch.equal(m(x), y)


def test_module_reused_in_forward_counts_params_once_and_macs_twice():
    text = "input 4x6x6\nlayers { c Conv2d(4, 3, padding=1) }\nforward { c relu c }\n"
    c = netspec.loads(text)
    oracle(c)
    rows = [r for r in c.shapes.rows if r.path == "c"]
    assert [r.params for r in rows] == [148, 0] and rows[0].macs == rows[1].macs == 148 * 36


def test_module_reused_with_another_size_is_refused():
    text = "input 3x6x6\nlayers { c Conv2d(3, 3) }\nforward { c c }\n"
    netspec.loads(text)  # 3 -> 3 channels: fine twice
    text = "input 3x6x6\nlayers { c Conv2d(8, 3) }\nforward { c c }\n"
    err = _expect_spec_error(text, "twice")
    assert err.loc.line == 2
    c = nn.Conv2d(3, 8, 3)
    with pytest.raises(RuntimeError):
        c(c(torch.zeros(2, 3, 6, 6)))


def test_residual_step_changing_the_shape_is_refused():
    text = "input 3x6x6\nlayers { c Conv2d(8, 3) }\nforward { residual c }\n"
    err = _expect_spec_error(text, "residual c")
    assert err.loc.line == 3
    with pytest.raises(RuntimeError):
        x = torch.zeros(2, 3, 6, 6)
        x + nn.Conv2d(3, 8, 3)(x)


def test_residual_with_projection_shortcut_paths():
    text = """
input 3x32x32
layers {
    block Residual { Conv2d(16, 3, stride=2, padding=1) BatchNorm2d() ReLU() Conv2d(16, 3, padding=1) }
          shortcut { Conv2d(16, 1, stride=2) }
    head Sequential { AdaptiveAvgPool2d(1) Flatten() Linear(10) }
}
"""
    c = netspec.loads(text)
    oracle(c)
    paths = [r.path for r in c.shapes.rows]
    assert paths == [
        "block",
        "block.0",
        "block.1",
        "block.2",
        "block.3",
        "block.shortcut",
        "head",
        "head.0",
        "head.1",
        "head.2",
    ]
    assert c.shapes.output == (10,)
    row = c.shapes.rows[0]
    assert row.out_shape == (16, 16, 16) and row.params == 448 + 32 + 2320 + 64


def test_shortcut_of_several_layers_has_a_row_of_its_own():
    """The nn.Sequential `shortcut` is a row, its layers under it: the paths are the module's, and `check` shows
    the shortcut's layers apart from the body's."""
    from netspec.table import shape_table

    c = netspec.load(ROOT / "examples" / "resnet_small.net")
    oracle(c)
    paths = [r.path for r in c.shapes.rows if r.path.startswith("res2_1")]
    assert paths == ["res2_1"] + [f"res2_1.{i}" for i in range(5)] + [
        "res2_1.shortcut",
        "res2_1.shortcut.0",
        "res2_1.shortcut.1",
    ]
    modules = dict(c.module.named_modules())
    assert all(p in modules for p in paths)
    assert {k.rsplit(".", 1)[0] for k in c.module.state_dict() if k.startswith("res2_1.shortcut")} == {
        "res2_1.shortcut.0",
        "res2_1.shortcut.1",
    }
    lines = shape_table(*netspec.check(ROOT / "examples" / "resnet_small.net")).splitlines()
    start = lines.index(next(ln for ln in lines if ln.startswith("res2_1 ")))
    assert lines[start : start + 10] == [
        "res2_1      Residual           32x16x16  (14,528)  (3,670,208)",
        "  0         Conv2d             32x16x16     4,608    1,179,648",
        "  1         BatchNorm2d        32x16x16        64           64",
        "  2         ReLU               32x16x16         0            0",
        "  3         Conv2d             32x16x16     9,216    2,359,296",
        "  4         BatchNorm2d        32x16x16        64           64",
        "  shortcut  Sequential         32x16x16     (576)    (131,136)",
        "    0       Conv2d             32x16x16       512      131,072",
        "    1       BatchNorm2d        32x16x16        64           64",
        "relu2_1     ReLU               32x16x16         0            0",
    ]
    assert lines[-1] == "total: 272,474 parameters, 40,814,762 MACs per image"


# ---- the report's specs at several sizes ----------------------------------------------------------------------

SPEC_SIZES = [
    ("cifar_best", "3x32x32"),
    ("cifar_best", "3x64x64"),
    ("cifar_best", "1x33x47"),
    ("cifar_worst", "3x32x32"),
    ("cifar_worst", "3x31x45"),
    ("cifar_worst", "1x30x30"),
    ("tiny_best", "3x32x32"),
    ("tiny_best", "3x48x40"),
    ("tiny_deep", "3x64x64"),
    ("tiny_deep", "1x70x66"),
]


@pytest.mark.parametrize("name,size", SPEC_SIZES)
def test_report_specs_through_the_oracle(name, size):
    torch.manual_seed(0)
    c = netspec.load(ROOT / "specs" / f"{name}.net", input=size)
    oracle(c, batch=2)


@pytest.mark.parametrize(
    "name,size",
    [("cifar_best", "3x31x32"), ("cifar_worst", "3x29x29"), ("tiny_deep", "3x63x64"), ("tiny_best", "3x40x31")],
)
def test_report_specs_too_small_input_is_refused(name, size):
    with pytest.raises(netspec.SpecError) as info:
        netspec.check(ROOT / "specs" / f"{name}.net", input=size)
    text = (ROOT / "specs" / f"{name}.net").read_text()
    assert_located(info.value, text)
    assert info.value.filename.endswith(f"{name}.net")


def test_cifar_worst_sizes_match_the_report():
    c = netspec.load(ROOT / "specs" / "cifar_worst.net")
    out = {r.path: r.out_shape for r in c.shapes.rows if r.depth == 0}
    assert out["maxpool_1"] == (10, 17, 17)
    assert out["maxpool_2"] == (100, 8, 8)
    assert out["maxpool_3"] == (256, 4, 4)
    assert out["conv4"] == (512, 1, 1)
    assert c.shapes.output == (10,)


# ---- module names: whatever torch's classes call their own attributes is refused with a SpecError -------------


def _attribute_names():
    import re as _re

    from netspec.build import Residual, SpecModel

    names = set()
    for obj in (nn.Module(), nn.Sequential(), Residual([], None), SpecModel("Net", [], [])):
        names |= {n for n in dir(obj) if _re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", n)}
    return sorted(names)


@pytest.mark.parametrize("where", ["top", "sequential", "residual", "shortcut"])
def test_torch_attribute_names_are_refused_or_work(where):
    """No name may crash the build with torch's KeyError/TypeError (`training`, `_modules`, `_steps`, ...)."""
    wrap = {
        "top": "{name} ReLU()",
        "sequential": "s Sequential {{ {name} ReLU() }}",
        "residual": "r Residual {{ {name} ReLU() }}",
        "shortcut": "r Residual {{ ReLU() }} shortcut {{ {name} ReLU() Identity() }}",
    }[where]
    refused = 0
    for name in _attribute_names():
        text = f"input 3x4x4\nlayers {{ {wrap.format(name=name)} }}\n"
        try:
            c = netspec.loads(text)
        except netspec.SpecError as e:
            assert_located(e, text)
            refused += 1
            continue
        oracle(c, use_torchinfo=False)
    assert refused > 50


@pytest.mark.parametrize(
    "text",
    [
        "input 1x1x4\nlayers { r Residual { ReLU(inplace=true) } }\n",
        "input 1x1x4\nlayers { r Residual { Sequential { Identity() LeakyReLU(0.5, true) } } }\n",
        "input 1x1x4\nlayers { r Residual { Identity() } shortcut { ReLU(inplace=true) } }\n",
        "input 1x1x4\nlayers { r ReLU(inplace=true) }\nforward { residual r }\n",
    ],
    ids=["body", "nested", "shortcut", "forward-step"],
)
def test_residual_is_x_plus_body_even_with_inplace_layers(text):
    """An in-place layer must not overwrite x before `x + body(x)` reads it (build.py gives it a copy)."""
    c = netspec.loads(text)
    x = torch.tensor([[[[-1.0, 2.0, -3.0, 4.0]]]])
    m = c.module
    if "LeakyReLU" in text:
        want = x + nn.functional.leaky_relu(x, 0.5)
    else:
        want = x + torch.relu(x)
    assert torch.equal(m(x.clone()), want)
