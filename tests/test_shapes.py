"""The shape oracle: static inference (`netspec.shapes`, no torch) agrees EXACTLY with torch for every layer kind.

For each case a tiny spec is compiled with `netspec.load` and checked by `oracle.oracle`: the real output and
every row's real in/out shape (forward hooks, matched by module path), per-row and total parameters, the per-row
mult-adds by torchinfo's formula and torchinfo's own totals. Each case is also run by `layer_stacks.reference`, which
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

from layer_stacks import Layer, Res, Seq, Stricter, TorchFailure, reference, render_spec, torch_class, torch_positional
from oracle import WARNING_FILTERS, expect_shape_error, one_torch_thread, oracle

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
    # ---- ConvTranspose2d: (H - 1) * stride - 2 * padding + dilation * (k - 1) + output_padding + 1
    "convT": ((3, 5, 4), [L("ConvTranspose2d", 8, 3)]),
    "convT-stride2-pad-outpad": ((3, 5, 4), [L("ConvTranspose2d", 4, 3, stride=2, padding=1, output_padding=1)]),
    "convT-positional": ((4, 3, 5), [L("ConvTranspose2d", 6, (3, 2), (2, 3), (1, 0), (1, 2), 2, False, (2, 1))]),
    "convT-outpad-below-dilation": ((2, 3, 3), [L("ConvTranspose2d", 2, 2, output_padding=1, dilation=2)]),
    "convT-padding-to-1x1": ((1, 1, 1), [L("ConvTranspose2d", 2, 3, padding=1)]),
    "convT-depthwise": ((4, 4, 4), [L("ConvTranspose2d", 4, 4, stride=2, padding=1, groups=4, bias=False)]),
    "convT-after-conv": ((3, 8, 8), [L("Conv2d", 6, 3, stride=2, padding=1), L("ConvTranspose2d", 3, 2, stride=2)]),
    # ---- padding and upsampling (C, H, W) images
    "pads": (
        (3, 4, 5),
        [
            L("ReflectionPad2d", 1),
            L("ReflectionPad2d", (4, 0, 5, 1)),
            L("ReplicationPad2d", 3),
            L("ReplicationPad2d", (0, 1, 2, 3)),
            L("ZeroPad2d", 2),
            L("ZeroPad2d", padding=(1, 0, 0, 1)),
        ],
    ),
    "reflection-pad-just-fits": ((1, 2, 3), [L("ReflectionPad2d", (2, 2, 1, 1))]),
    "replication-pad-larger-than-input": ((1, 1, 1), [L("ReplicationPad2d", 5)]),
    "upsample-nearest": ((3, 4, 5), [L("Upsample", scale_factor=2)]),
    "upsample-fractions": ((3, 7, 5), [L("Upsample", scale_factor=1.5), L("Upsample", None, (0.5, 0.7))]),
    "upsample-size": ((3, 4, 5), [L("Upsample", 7), L("Upsample", (3, 9)), L("Upsample", size=2)]),
    "upsample-bilinear": (
        (2, 3, 4),
        [
            L("Upsample", scale_factor=2.0, mode="bilinear"),
            L("Upsample", size=(5, 5), mode="bilinear", align_corners=True),
            L("Upsample", None, 1.3, "bilinear", False, True),
        ],
    ),
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
    # ---- PReLU: one slope, or one per channel (dimension 1 of the batch)
    "prelu": ((3, 4, 5), [L("PReLU"), L("PReLU", 3), L("PReLU", num_parameters=3, init=0.1), L("PReLU", 1, -0.5)]),
    "prelu-flat": ((3, 2, 2), [FLAT, L("PReLU", 12), L("Linear", 5), L("PReLU"), L("PReLU", 5)]),
    "prelu-CL": ((3, 4, 5), [L("Flatten", 2), L("PReLU", 3)]),
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
            L("Hardsigmoid"),
            L("Hardsigmoid", True),
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
            L("Hardsigmoid", inplace=True),
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
    "logsoftmax": ((3, 4, 5), [L("LogSoftmax", 1), L("LogSoftmax", dim=-1), L("LogSoftmax")]),
    "logsoftmax-flat": ((3, 4, 5), [FLAT, L("Linear", 4), L("LogSoftmax", dim=1)]),
    # ---- layer normalization, permutes (channels-last images), stochastic depth
    "layernorm-flat": ((3, 2, 2), [FLAT, L("LayerNorm"), L("LayerNorm", 1e-6, False), L("LayerNorm", bias=False)]),
    "layernorm-CL": ((3, 4, 5), [L("Flatten", 2), L("LayerNorm", eps=0.1)]),
    "layernorm2d": ((4, 3, 5), [L("LayerNorm2d"), L("LayerNorm2d", 1e-6), L("LayerNorm2d", elementwise_affine=False)]),
    "permute": ((3, 4, 5), [L("Permute", (0, 2, 3, 1)), L("Permute", (0, 3, 1, 2)), L("Permute", [0, 1, -1, 2])]),
    "permute-then-conv": ((3, 4, 5), [L("Permute", (0, 1, 3, 2)), L("Conv2d", 2, 3)]),
    "permute-flat": ((3, 4, 5), [L("Flatten", 2), L("Permute", (0, 2, 1)), L("Linear", 3)]),
    "channels-last-block": (  # ConvNeXt's block: LayerNorm and Linear over the channels of a channels-last image
        (4, 5, 3),
        [
            L("Conv2d", 4, 3, padding=1, groups=4),
            L("Permute", (0, 2, 3, 1)),
            L("LayerNorm", eps=1e-6),
            L("Linear", 16),
            L("GELU"),
            L("Linear", 4),
            L("Permute", (0, 3, 1, 2)),
            L("BatchNorm2d"),
        ],
    ),
    "channels-last-flatten": ((2, 3, 3), [L("Permute", (0, 2, 3, 1)), L("Linear", 5), FLAT, L("Linear", 2)]),
    "stochastic-depth": (
        (3, 4, 4),
        [
            L("StochasticDepth", 0.2, "row"),
            L("StochasticDepth", p=0.5, mode="batch"),
            FLAT,
            L("StochasticDepth", 1.0, "row"),
        ],
    ),
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


# `Parameter` is not a module but a learned tensor (an nn.Parameter) that a forward reads by name: it cannot stand in
# a stack of layers, and there is no torch constructor whose arguments it mirrors (its own, `shape` and `value`, make
# torch.full(shape, value)). test_shapes_flows.py holds it against torch: its row, its count, and the forward using it.
NOT_MODULES = {"Parameter"}
MODULE_KINDS = sorted(set(Lmod.LAYERS) - NOT_MODULES)


def test_every_layer_kind_is_covered():
    kinds = {k for _, items in ACCEPT.values() for k in _flat_kinds(items)}
    assert kinds == set(MODULE_KINDS)


@pytest.mark.parametrize("kind", MODULE_KINDS)
def test_positional_order_is_pytorchs(kind):
    """`Conv2d(64, 3)` means what nn.Conv2d(in, 64, 3) means: POSITIONAL is a prefix of torch's own order."""
    cls = Lmod.LAYERS[kind]
    assert list(cls.POSITIONAL) == torch_positional(kind)[: len(cls.POSITIONAL)]
    assert set(cls.POSITIONAL) <= set(cls.model_fields)
    for name, f in cls.model_fields.items():  # defaults are torch's
        p = inspect.signature(torch_class(kind)).parameters.get(name)
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
    "convT-groups": ((3, 4, 4), [L("ConvTranspose2d", 4, 3, groups=2)], "groups"),
    "convT-padding-leaves-nothing": ((2, 2, 2), [L("ConvTranspose2d", 2, 1, padding=1)], "padding"),
    "convT-padding-leaves-nothing-one-side": ((2, 1, 5), [L("ConvTranspose2d", 2, 2, padding=(1, 0))], "padding"),
    "reflection-pad-equals-width": ((3, 4, 2), [L("ReflectionPad2d", 2)], "reflects more"),
    "reflection-pad-one-side-over-height": ((3, 1, 5), [L("ReflectionPad2d", (0, 0, 0, 1))], "reflects more"),
    "prelu-not-the-channels": ((3, 4, 4), [L("PReLU", 4)], "num_parameters"),
    "prelu-not-the-features": ((3, 2, 2), [FLAT, L("PReLU", 3)], "num_parameters"),
    "upsample-to-nothing": ((3, 4, 4), [L("Upsample", scale_factor=0.2)], "scale_factor"),
    "upsample-to-nothing-one-side": ((3, 4, 9), [L("Upsample", scale_factor=(0.1, 1.0))], "scale_factor"),
    "conv-after-flatten": ((3, 4, 4), [FLAT, L("Conv2d", 4, 3)], "C x H x W"),
    "convT-after-flatten": ((3, 4, 4), [FLAT, L("ConvTranspose2d", 4, 3)], "C x H x W"),
    "upsample-after-flatten": ((3, 4, 4), [FLAT, L("Upsample", scale_factor=2)], "C x H x W"),
    "bn2d-after-flatten": ((3, 4, 4), [FLAT, L("BatchNorm2d")], "C x H x W"),
    "maxpool-after-flatten": ((3, 4, 4), [FLAT, L("MaxPool2d", 2)], "C x H x W"),
    "adaptive-max-after-flatten": ((3, 4, 4), [FLAT, L("AdaptiveMaxPool2d", 1)], "C x H x W"),
    "bn1d-on-image": ((3, 4, 4), [L("BatchNorm1d")], "BatchNorm1d"),
    "layernorm2d-after-flatten": ((3, 4, 4), [FLAT, L("LayerNorm2d")], "C x H x W"),
    "permute-too-few-dims": ((3, 4, 4), [L("Permute", (0, 2, 1))], "dimensions"),
    "permute-not-an-order": ((3, 4, 4), [L("Permute", (0, 1, 1, 2))], "not an order"),
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
    "flatten-batch": ((3, 4, 4), [L("Flatten", 0)], "batch", "torch would merge the batch into the features"),
    "flatten-batch-negative": ((3, 4, 4), [L("Flatten", -4)], "batch", "the same with a negative start_dim"),
    "conv-on-CL": (
        (3, 4, 4),
        [L("Flatten", 2), L("Conv2d", 4, 1)],
        "C x H x W",
        "torch reads a 3-D batch as one unbatched image (the batch becomes the channels)",
    ),
    "dropout2d-flat": ((3, 4, 4), [FLAT, L("Dropout2d")], "C x H x W", "torch only warns"),
    "upsample-on-CL": (
        (3, 4, 4),
        [L("Flatten", 2), L("Upsample", scale_factor=2)],
        "C x H x W",
        "torch reads (N, C, L) as 1-D signals and upsamples L",
    ),
    "pad-after-flatten": (
        (3, 4, 4),
        [FLAT, L("ZeroPad2d", 1)],
        "C x H x W",
        "torch pads the last two dimensions of (N, F): the batch gets two images of zeros",
    ),
    "reflection-pad-on-CL": (
        (3, 4, 4),
        [L("Flatten", 2), L("ReflectionPad2d", 1)],
        "C x H x W",
        "torch reads a 3-D batch as one unbatched image",
    ),
    "pad-on-channels-last": (
        (3, 4, 4),
        [L("Permute", (0, 2, 3, 1)), L("ZeroPad2d", 1)],
        "channels-last",
        "torch pads the image's width and channels",
    ),
    "layernorm-on-image": (
        (3, 4, 4),
        [L("LayerNorm")],
        "last dimension",
        "torch normalizes each row of pixels over the width: almost always a forgotten Permute (or LayerNorm2d)",
    ),
    "linear-on-image-after-permute-back": (
        (3, 4, 4),
        [L("Permute", (0, 2, 3, 1)), L("Permute", (0, 3, 1, 2)), L("Linear", 10)],
        "flat",
        "a permute back to C x H x W: Linear would mix the width again",
    ),
    "conv-on-channels-last": (
        (3, 4, 4),
        [L("Permute", (0, 2, 3, 1)), L("Conv2d", 4, 1)],
        "channels-last",
        "torch reads the image's width as its channels",
    ),
    "layernorm2d-on-channels-last": (
        (3, 4, 4),
        [L("Permute", (0, 2, 3, 1)), L("LayerNorm2d")],
        "channels-last",
        "the same for the channels of LayerNorm2d",
    ),
    "permute-moves-the-batch": (
        (3, 4, 4),
        [L("Permute", (1, 0, 2, 3))],
        "batch",
        "torch mixes the images of a batch",
    ),
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


@pytest.mark.parametrize("case", list(REJECT_TORCH_TOO))
def test_torch_refusals_are_refused_statically(case):
    inp, items, fragment = REJECT_TORCH_TOO[case]
    items = _fix_names(items)
    text = render_spec(items, inp)
    err = expect_shape_error(text, fragment)
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
    expect_shape_error(text, fragment)
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
    assert nn.ZeroPad2d(1)(torch.zeros(2, 48)).shape == (4, 50)  # the batch padded too
    assert nn.Upsample(scale_factor=2)(torch.zeros(2, 3, 16)).shape == (2, 3, 32)  # 1-D signals
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
    err = expect_shape_error(text, "parameters")
    assert err.code == "E073"
    text = f"input 1x1x1\nlayers {{ a AdaptiveAvgPool2d({2**17}) }}\n"
    expect_shape_error(text, "values per image")
    assert MAX_ELEMENTS == 2**33
    # each layer within the limit, the network past it
    text = "input 1x300x300\nlayers {\n  f Flatten()\n  repeat i in 1..100 { fc{i} Linear(90000) }\n}\n"
    err = expect_shape_error(text, "parameters in all")
    assert err.code == "E073" and err.loc.line == 4
    # the input is an activation too, even when the first layer shrinks it at once
    text = "input 3x65536x65536\nlayers { p AvgPool2d(64) }\n"
    with pytest.raises(netspec.SpecError) as info:
        netspec.checks(text)
    assert info.value.code == "E073" and info.value.loc.line == 1
