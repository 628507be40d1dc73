"""The torch.fx importer: `netspec.from_module(model)` and `netspec import torchvision:NAME`.

Every imported spec is held against its model here, independently of the importer's own check: compiled at the
model's input size it has the model's state_dict keys and shapes, loads its weights with strict=True, gives its
outputs in eval mode, and has its layers' training settings. The default suite imports a representative dozen of
torchvision's CNNs at a small input; the slow suite imports all of them (every classification CNN, not the
transformer families) at 224, and inception_v3 at 299.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import netspec
import pytest
import torch
import torch.nn.functional as F
from netspec.cli import main
from netspec.errors import SpecError
from netspec.importer import from_torchvision, import_text
from netspec.importer.fx import torchvision_names
from torch import nn

from oracle import one_torch_thread
from zoo_harness import randomize, torchvision_model

ROOT = Path(__file__).resolve().parents[1]
_one_torch_thread = pytest.fixture(autouse=True, scope="module")(one_torch_thread)

DOZEN = [
    "resnet18",
    "resnext50_32x4d",
    "squeezenet1_1",
    "densenet121",
    "mobilenet_v2",
    "mobilenet_v3_small",
    "efficientnet_b0",
    "shufflenet_v2_x0_5",
    "mnasnet0_5",
    "regnet_y_400mf",
    "googlenet",
    "convnext_tiny",
]


def held_against(model: nn.Module, text: str, size: tuple[int, int, int]) -> nn.Module:
    """The spec compiled, checked against the model as a user would: keys, shapes, strict load, outputs, settings."""
    built = netspec.loads(text).module
    ours, theirs = built.state_dict(), model.state_dict()
    assert list(ours) == list(theirs)
    assert all(ours[k].shape == theirs[k].shape for k in theirs)
    built.load_state_dict(theirs, strict=True)
    model.eval(), built.eval()
    x = torch.randn(2, *size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want, got = model(x), built(x)
    assert (want - got).abs().max() <= 1e-4 * max(1.0, float(want.abs().max()))
    mine = dict(built.named_modules())
    for path, m in model.named_modules():
        for key in ("p", "eps", "momentum", "mode", "inplace", "stride", "padding", "groups", "ceil_mode"):
            if hasattr(m, key) and not m._modules:
                assert getattr(mine[path], key) == getattr(m, key), (path, key)
    return built


def tv_model(name: str) -> nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # googlenet's and inception's notes on weight initialization
        return torchvision_model(name)  # statistics and norms drawn at random, so that outputs tell layers apart


@pytest.mark.filterwarnings("error:netspec.from_module")  # the folded form must rebuild the model
@pytest.mark.parametrize("name", DOZEN)
def test_a_dozen_torchvision_models_import_exactly(name):
    model = tv_model(name)
    size = (3, 64, 64) if name != "googlenet" else (3, 96, 96)
    text = netspec.from_module(model, input=size)
    held_against(model, text, size)
    assert text.count("\n") < len(str(model).splitlines())  # shorter than print(model)


@pytest.mark.slow
@pytest.mark.filterwarnings("error:netspec.from_module")
@pytest.mark.parametrize("name", torchvision_names())
def test_every_torchvision_cnn_imports_exactly_at_its_size(name):
    model = tv_model(name)
    size = (3, 299, 299) if name == "inception_v3" else (3, 224, 224)
    text = netspec.from_module(model, input=size)
    held_against(model, text, size)
    if name.startswith(("alexnet", "vgg")):
        # no structure repeats in these, so nothing folds: the spec holds print(model)'s layers, and forward() too
        assert text.count("\n") <= len(str(model).splitlines()) + 10
    else:
        assert text.count("\n") < len(str(model).splitlines())


def test_the_list_holds_every_cnn_and_no_transformer():
    names = torchvision_names()
    assert len(names) == 68
    assert not any(n.startswith(("vit_", "swin_", "maxvit_")) for n in names)
    assert {"inception_v3", "googlenet", "regnet_y_128gf", "convnext_large"} <= set(names)


# ---- readable ------------------------------------------------------------------------------------------------------


def test_resnet50_reads_as_written():
    text, size = from_torchvision("resnet50", "3x64x64")
    assert size == (3, 64, 64)
    assert "module Bottleneck(" in text and "module ResNet" not in text and "network ResNet" in text
    assert "in_channels" not in text and "num_features" not in text and "in_features" not in text
    assert "BatchNorm2d()" in text  # PyTorch's defaults left out
    assert re.search(r"repeat i in 1\.\.\d+ \{ Bottleneck\(", text)  # the stages' repeated blocks


def test_densenet_is_dense_connectivity_in_a_repeat():
    text, _ = from_torchvision("densenet121", "3x64x64")
    assert "module _DenseBlock(n) {" in text
    assert "repeat i in 1..n { x = cat(x, denselayer{i}(x)) }" in text
    assert len(re.findall(r"^module _DenseBlock", text, re.M)) == 1  # one module for the four blocks


def test_shufflenet_channel_shuffle_is_one_call():
    text, _ = from_torchvision("shufflenet_v2_x0_5", "3x64x64")
    assert "channel_shuffle(" in text and "view" not in text and "transpose" not in text
    assert re.search(r"x1, x2 = chunk\(x, 2\)", text)


def test_convnext_layer_scale_is_a_parameter():
    text, _ = from_torchvision("convnext_tiny", "3x64x64")
    assert re.search(r"layer_scale Parameter\(\(\w+, 1, 1\), value=1e-06\)", text)
    assert "LayerNorm2d(eps=1e-06)" in text


def test_auxiliary_heads_are_kept_with_their_input():
    text, _ = from_torchvision("googlenet", "3x96x96")
    assert re.search(r"kept 512x\d+x\d+ aux1 InceptionAux", text)
    assert re.search(r"kept 528x\d+x\d+ aux2 InceptionAux", text)
    text, _ = from_torchvision("inception_v3", "3x299x299")
    assert "kept 768x17x17 AuxLogits InceptionAux" in text


# ---- what FX shows and modules do not ----------------------------------------------------------------------------


class Everything(nn.Module):
    """Functional calls of every kind, a gate, a parameter, chunks, a channel shuffle by hand, permutes."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8, eps=1e-3, momentum=0.3)
        self.gate = nn.Conv2d(8, 8, 1)
        self.scale = nn.Parameter(torch.full((8, 1, 1), 0.5))
        self.norm_w = nn.Parameter(torch.ones(8))
        self.norm_b = nn.Parameter(torch.zeros(8))
        self.drop = nn.Dropout(0.3)
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        x = F.relu(self.bn(self.conv(x)), inplace=True)
        x = x * torch.sigmoid(self.gate(x.mean((2, 3), keepdim=True)))
        x = x + self.scale * x
        a, b = x.chunk(2, dim=1)
        x = torch.cat([F.max_pool2d(a, 3, stride=1, padding=1), F.avg_pool2d(b, 3, 1, 1)], 1)
        n, c, h, w = x.size()
        x = x.view(n, 2, c // 2, h, w).transpose(1, 2).contiguous().view(n, -1, h, w)
        y = F.layer_norm(x.permute(0, 2, 3, 1), (8,), self.norm_w, self.norm_b, 1e-6).permute(0, 3, 1, 2)
        x = torch.cat([x, F.hardswish(y)], dim=1)
        x = F.dropout(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1), 0.2, self.training)
        return self.fc(self.drop(x))


def test_functional_calls_become_operations():
    model = Everything()
    randomize(model)
    text = netspec.from_module(model, input=(3, 8, 8))
    held_against(model, text, (3, 8, 8))
    for call in ("relu(", "sigmoid(", "mean(", "keepdim=true", "chunk(", "max_pool2d(", "avg_pool2d(",
                 "channel_shuffle(", "permute(", "layer_norm(", "weight=norm_w", "hardswish(", "dropout(",
                 "flatten(", "adaptive_avg_pool2d(", " * ", " + "):  # fmt: skip
        assert call in text, call
    assert "scale Parameter((8, 1, 1), value=0.5)" in text


def test_training_settings_come_from_the_modules():
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4, eps=0.01, momentum=0.5), nn.Flatten(), nn.Dropout(0.25),
        nn.Linear(4 * 6 * 6, 3),
    )  # fmt: skip
    text = netspec.from_module(model, input=(3, 8, 8))
    assert "BatchNorm2d(eps=0.01, momentum=0.5)" in text and "Dropout(p=0.25)" in text
    built = held_against(model, text, (3, 8, 8))
    assert dict(built.named_modules())["3"].p == 0.25


def test_image_to_image_layers_and_the_settings_print_does_not_show():
    """Padding, transposed convolutions, upsampling and PReLU in a module with a forward of its own; Upsample's
    align_corners and PReLU's init, which print(model) does not show, are read from the modules."""

    class Decoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.pad = nn.ReflectionPad2d((1, 2, 1, 0))
            self.conv = nn.Conv2d(3, 8, 3)
            self.act = nn.PReLU(8, init=0.1)
            self.up = nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1, groups=2)
            self.resize = nn.Upsample(size=(12, 10), mode="bilinear", align_corners=False)
            self.edge = nn.ReplicationPad2d(1)
            self.zero = nn.ZeroPad2d((0, 1, 0, 1))
            self.out = nn.LogSoftmax(dim=1)

        def forward(self, x):
            y = self.act(self.conv(self.pad(x)))
            z = self.zero(self.edge(self.resize(self.up(y))))
            return self.out(z) + z

    model = Decoder()
    randomize(model)
    text = netspec.from_module(model, input=(3, 8, 8))
    held_against(model, text, (3, 8, 8))
    for call in ("ReflectionPad2d((1, 2, 1, 0))", "PReLU(num_parameters=8, init=0.1)", "groups=2",
                 'Upsample(size=(12, 10), mode="bilinear", align_corners=false)', "LogSoftmax(dim=1)"):  # fmt: skip
        assert call in text, (call, text)


def test_the_model_keeps_its_mode():
    model = tv_model("squeezenet1_1").train()
    netspec.from_module(model, input=(3, 64, 64))
    assert all(m.training for m in model.modules())


def test_the_model_keeps_its_statistics():
    # googlenet's auxiliary heads are sized by a training-mode forward, which moves BatchNorm's running statistics
    model = tv_model("googlenet")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    netspec.from_module(model, input=(3, 96, 96))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


# ---- what the language cannot express ------------------------------------------------------------------------------


class DataDependent(nn.Module):
    def forward(self, x):
        return x if x.sum() > 0 else -x


class Upsample(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)

    def forward(self, x):
        return F.interpolate(self.conv(x), scale_factor=2.0)


class Buffered(nn.Module):
    def __init__(self, persistent: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)
        self.register_buffer("shift", torch.full((4, 1, 1), 0.5), persistent=persistent)

    def forward(self, x):
        return self.conv(x) + self.shift


class NeverRun(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)
        self.unused = nn.Conv2d(4, 4, 1)

    def forward(self, x):
        return self.conv(x)


@pytest.mark.parametrize(
    ("model", "code", "words"),
    [
        (DataDependent(), "E220", "cannot be traced by torch.fx"),
        (Upsample(), "E221", "interpolate"),
        (Buffered(), "E222", "buffer 'shift'"),
        (NeverRun(), "E223", "'unused' is never run"),
    ],
)
def test_what_cannot_be_expressed_is_a_located_error(model, code, words):
    with pytest.raises(SpecError) as exc:
        netspec.from_module(model, input=(3, 8, 8))
    assert exc.value.code == code and words in str(exc.value), exc.value.render()
    assert isinstance(exc.value, ValueError)


def test_a_buffer_is_a_parameter_nothing_trains():
    model = Buffered(persistent=True)
    text = netspec.from_module(model, input=(3, 8, 8))
    assert "shift Parameter((4, 1, 1), value=0.5, requires_grad=false)" in text
    built = held_against(model, text, (3, 8, 8))
    assert not built.shift.requires_grad and built.conv.weight.requires_grad


def test_the_unexpressible_call_names_the_module_node_and_source_line():
    outer = nn.Sequential(nn.Conv2d(3, 3, 1), Upsample())
    with pytest.raises(SpecError) as exc:
        netspec.from_module(outer, input=(3, 8, 8))
    message = exc.value.render()
    assert "'1'" in message and "FX node 'interpolate'" in message and "test_import_fx.py" in message, message


# ---- the command -------------------------------------------------------------------------------------------------


def run(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
        raise SystemExit(0)
    out, err = capsys.readouterr()
    return e.value.code or 0, out, err


def test_cli_imports_torchvision_and_the_spec_checks(tmp_path, capsys):
    out = tmp_path / "r18.net"
    code, _, err = run(["import", "torchvision:resnet18", "-o", str(out), "--input", "3x64x64"], capsys)
    assert code == 0, err
    assert "wrote" in err and "network ResNet, input 3x64x64" in err
    code, text, _ = run(["check", str(out)], capsys)
    assert code == 0 and "11,689,512" in text


def test_cli_errors_exit_1_without_a_traceback(capsys):
    code, _, err = run(["import", "torchvision:resnet51"], capsys)
    assert code == 1 and "Traceback" not in err
    assert "error[E224]: torchvision has no classification model 'resnet51'" in err
    assert "did you mean 'resnet50'" in err
    code, _, err = run(["import", "torchvision:resnet18", "--order", "order.txt"], capsys)
    assert code == 2 and "--order" in err


def test_the_printed_importer_is_unchanged():
    spec = import_text("Net(\n  (conv): Conv2d(3, 8, kernel_size=(3, 3))\n  (relu): ReLU()\n)\n").spec
    assert re.search(r"conv +Conv2d\(8, kernel_size=3\)", spec)


def test_the_docs_show_resnet50_as_it_imports():
    doc = (ROOT / "docs" / "import.md").read_text(encoding="utf-8")
    block = doc.split("<!-- BEGIN IMPORTED: torchvision:resnet50 -->\n```\n", 1)[1].split("```\n<!-- END", 1)[0]
    text, _ = from_torchvision("resnet50")
    assert block == text
    assert f"It is {text.count(chr(10))} lines against `print(model)`'s 176." in doc
