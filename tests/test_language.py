"""The language, construct by construct (docs/language.md is the reference): each test writes a small spec and
checks what it becomes, down to the torch module where the construct reaches it."""

from __future__ import annotations

import re
from pathlib import Path

import netspec
import pytest
from netspec.errors import UsageError
from netspec.lang import (
    FUNCTIONS,
    LAYERS,
    describe_type,
    parse,
    parse_override,
    show,
)

from spec_helpers import error_of, names, net_of, spec

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "language.md"
EXAMPLES = sorted((ROOT / "examples").glob("*.net"))


# ---- documentation and examples ------------------------------------------------------------------------------------


def layer_table() -> list[str]:
    """The rows of the layer table of docs/language.md, as the code describes the layers today."""
    rows = []
    for name, cls in LAYERS.items():
        order = list(cls.POSITIONAL) + [n for n in cls.model_fields if n not in cls.POSITIONAL]
        args = []
        for n in order:
            f = cls.model_fields[n]
            star = "" if n in cls.POSITIONAL else "*"
            args.append(f"`{star}{n}`" if f.is_required() else f"`{star}{n}={show(f.default)}`")
        inferred = ", ".join(f"`{n}`" for n in cls.INFERRED) or "—"
        rows.append(f"| `{name}` | {', '.join(args) or '—'} | {inferred} | {cls.DOC} |")
    return rows


def test_every_layer_is_documented():
    doc = DOCS.read_text(encoding="utf-8")
    for name in LAYERS:
        assert f"`{name}`" in doc, name
    for name in FUNCTIONS:
        assert f"| `{name}` |" in doc, name


def test_layer_table_in_the_docs_matches_the_code():
    # if this fails, a layer changed: regenerate the table with layer_table() and paste it into docs/language.md
    doc = DOCS.read_text(encoding="utf-8")
    for row in layer_table():
        assert row in doc, row


def test_argument_types_in_the_docs_match_the_code():
    doc = DOCS.read_text(encoding="utf-8")
    for name, cls in LAYERS.items():
        for arg, f in cls.model_fields.items():
            described = describe_type(f.annotation, f.metadata)
            assert re.search(rf"\| `{arg}` \| {re.escape(described)} \|[^\n]*\b{name}\b", doc), (name, arg)


def test_error_examples_in_the_docs_are_real():
    doc = DOCS.read_text(encoding="utf-8")
    examples = re.findall(r"<!-- error: (\w+) -->\n```text\n(.*?)```", doc, flags=re.S)
    assert len(examples) >= 10
    for name, text in examples:
        golden = (ROOT / "tests" / "specs" / "errors" / f"{name}.err").read_text(encoding="utf-8")
        assert text == golden, name


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_checks_compiles_and_runs(path):
    import torch

    compiled = netspec.load(path)
    assert compiled.shapes.total_params > 0
    model = compiled.module.eval()
    x = torch.randn(2, *compiled.network.input)
    with torch.no_grad():
        y = model(x)
    assert tuple(y.shape) == (2, *compiled.shapes.output)
    assert sum(p.numel() for p in model.parameters()) == compiled.shapes.total_params
    text = path.read_text()
    assert text.startswith("#") and "train {" in text  # commented, with settings


def test_examples_are_what_they_claim():
    lenet = netspec.load(ROOT / "examples" / "lenet5.net")
    assert lenet.shapes.total_params == 61_706
    assert (lenet.network.input, lenet.shapes.output) == ((1, 28, 28), (10,))
    t = lenet.train
    assert (t.data, t.epochs, t.batch_size, t.optimizer.lr, t.optimizer.momentum) == (
        "fashion-mnist",
        5,
        128,
        0.05,
        0.9,
    )
    assert (t.normalize.mean, t.normalize.std) == ((0.2860,), (0.3530,))
    resnet = netspec.load(ROOT / "examples" / "resnet_small.net")
    assert resnet.shapes.total_params == 272_474  # ResNet-20
    assert type(resnet.module.res2_1).__name__ == "Residual" and resnet.module.res2_1.shortcut is not None
    assert resnet.module.res1_1.shortcut is None
    assert resnet.train.schedule.kind() == "CosineAnnealingLR" and resnet.train.schedule.T_max == 30
    deeper = netspec.load(ROOT / "examples" / "resnet_small.net", constants={"depth": 5})  # ResNet-32
    assert sum(1 for n in deeper.network.layers if n.composite == "Residual") == 15


# ---- constants and arithmetic --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expr,value",
    [
        ("2 + 3 * 4", 14),
        ("(2 + 3) * 4", 20),
        ("7 - 2 - 1", 4),
        ("100 // 7 // 2", 7),
        ("8 * 32 // 2", 128),
        ("-7 // 2", -4),
        ("-7 % 2", 1),
        ("17 // 5 * 5 + 17 % 5", 17),
        ("2 * -3", -6),
        ("- -3", 3),
        ("+4", 4),
        ("(1 + 2) * (3 + 4) // 5", 4),
        ("1.5 * 2", 3.0),
        ("0.1 + 0.2", 0.1 + 0.2),
        ("1e-3", 0.001),
        ("5e-4 * 2", 1e-3),
        ("'conv' + '1'", "conv1"),
        ("(3, 3)", (3, 3)),
        ("(0.5,)", (0.5,)),
        ("()", ()),
        ("[1, 2]", [1, 2]),
        ("(None, 2)", (None, 2)),
        ("true", True),
        ("True", True),
        ("false", False),
        ("None", None),
        ("none", None),
    ],
)
def test_arithmetic_and_values(expr, value):
    assert parse_override(f"x={expr}") == ("x", value)


def test_constants_in_any_order_and_derived():
    net = net_of(spec("hidden = width * 4 // 2\nwidth = base + 8\nbase = 8\nlayers { f Flatten() fc Linear(hidden) }"))
    assert net.constants == {"hidden": 32, "width": 16, "base": 8}
    assert net.layers[1].config.out_features == 32


@pytest.mark.parametrize(
    "text,code",
    [
        ("a = b + 1\nb = a * 2\nlayers { fc Linear(a) }", "E021"),
        ("a = 1 // 0\nlayers { fc Linear(a) }", "E022"),
        ("a = 10 / 2\nlayers { fc Linear(a) }", "E036"),  # 5.0: '/' gives a float, and sizes are integers
        ("a = 'x' * 2\nlayers { fc Linear(a) }", "E022"),
        ("a = 1.5 // 2\nlayers { fc Linear(a) }", "E022"),
        ("a = 4611686018427387904 * 4\nlayers { fc Linear(a) }", "E022"),
        ("layers { fc Linear(undefined) }", "E020"),
    ],
)
def test_constant_errors(text, code):
    assert error_of(spec(text)).code == code


# ---- --set ---------------------------------------------------------------------------------------------------------

WIDE = spec(
    "classes = 10\nwidth = 16\nhidden = 2 * width\n"
    "layers { c Conv2d(width, 3)  f Flatten()  h Linear(hidden)  out Linear(classes) }"
)


def test_set_overrides_a_constant_and_what_depends_on_it():
    compiled = netspec.loads(WIDE, constants={"classes": 100, "width": 8})
    m = compiled.module
    assert (m.c.out_channels, m.h.out_features, m.out.out_features) == (8, 16, 100)
    assert compiled.network.constants == {"classes": 100, "width": 8, "hidden": 16}


@pytest.mark.parametrize(
    "text,expected",
    [
        ("classes=100", ("classes", 100)),
        (" width = 2 * 32 ", ("width", 64)),
        ("mean=(0.5,)", ("mean", (0.5,))),
        ("act='tanh'", ("act", "tanh")),
        ("flag=true", ("flag", True)),
        ("lr=1e-3", ("lr", 0.001)),
        ("size=(None, 2)", ("size", (None, 2))),
    ],
)
def test_parse_override(text, expected):
    assert parse_override(text) == expected


@pytest.mark.parametrize("text", ["classes", "1x=3", "x=(", "x=SGD(lr=0.1)", "x=cifar10", "x="])
def test_parse_override_refuses(text):
    with pytest.raises(UsageError):
        parse_override(text)


def test_set_of_an_unknown_constant_is_a_usage_error():
    with pytest.raises(UsageError, match=r"no constant 'clases' \(did you mean 'classes'\?\)"):
        netspec.checks(WIDE, constants={"clases": 100})
    with pytest.raises(UsageError, match="its constants: none"):
        netspec.checks(spec("layers { f Flatten() }"), constants={"x": 1})


def test_load_takes_a_path_and_loads_takes_text(tmp_path):
    text = spec("layers { f Flatten() fc Linear(2) }")
    (tmp_path / "t.net").write_text(text)
    for path in (tmp_path / "t.net", str(tmp_path / "t.net")):
        net, _ = netspec.check(path)
        assert net.filename == str(tmp_path / "t.net")
    assert netspec.checks(text)[0].filename is None
    with pytest.raises(UsageError, match="for spec text, use checks or loads"):
        netspec.check(text)
    with pytest.raises(UsageError, match="no such file"):
        netspec.load(tmp_path / "missing.net")


def test_input_override_and_missing_input():
    net, table = netspec.checks(spec("layers { c Conv2d(4, 3) f Flatten() fc Linear(2) }"), input="1x10x10")
    assert table.rows[0].out_shape == (4, 8, 8) and net.input == (1, 10, 10)
    assert error_of("layers { f Flatten() }").code == "E013"
    net, _ = netspec.checks("layers { f Flatten() }", input=(3, 4, 4))
    assert net.input == (3, 4, 4)


# ---- layers, arguments ---------------------------------------------------------------------------------------------


def test_positional_arguments_follow_pytorch_order():
    m = netspec.loads(spec("layers { c Conv2d(16, 5, 2, 1, 1, 1, false, 'reflect') }")).module
    assert (
        m.c.in_channels,
        m.c.out_channels,
        m.c.kernel_size,
        m.c.stride,
        m.c.padding,
        m.c.bias,
        m.c.padding_mode,
    ) == (3, 16, (5, 5), (2, 2), (1, 1), None, "reflect")


def test_values_reach_the_torch_module_as_written():
    m = netspec.loads(
        spec("""layers {
        same   Conv2d(4, kernel_size=(1, 3), padding='same')
        valid  Conv2d(4, kernel_size=[3, 1], padding='valid', bias=False)
        pool   AdaptiveAvgPool2d((None, 2))
        gelu   GELU(approximate='tanh')
        bn     BatchNorm2d(momentum=None, eps=1e-3)
        flat   Flatten()
        soft   Softmax(dim=None)
    }""")
    ).module
    assert (m.same.kernel_size, m.same.padding) == ((1, 3), "same")
    assert (m.valid.kernel_size, m.valid.padding, m.valid.bias) == ((3, 1), "valid", None)
    assert m.pool.output_size == (None, 2)
    assert m.gelu.approximate == "tanh"
    assert (m.bn.momentum, m.bn.eps, m.bn.num_features) == (None, 1e-3, 4)
    assert m.soft.dim is None


def test_positional_after_keyword_is_refused():
    e = error_of(spec("layers { c Conv2d(16, kernel_size=3, 1) }"))
    assert e.code == "E031" and "positional argument follows a keyword" in e.message
    assert (e.loc.line, e.loc.column) == (2, 38)


def test_argument_errors_point_at_the_argument():
    e = error_of(spec("layers { c Conv2d(16, 3, padding=-1) }"))
    assert (e.loc.line, e.loc.column, e.loc.end_column) == (2, 26, 36)  # padding=-1
    e = error_of(spec("layers { c Conv2d(16, 3, paddin=1) }"))
    assert (e.loc.column, e.loc.end_column) == (26, 32) and "did you mean 'padding'?" in e.hint
    assert error_of(spec("layers { c Conv2d(16, 3, in_channels=3) }")).code == "E032"


@pytest.mark.parametrize(
    "call,at,fragment",
    [
        ("Upsample(size=4, scale_factor=2.0)", "scale_factor=2.0", "takes size or scale_factor, not both"),
        ("Upsample()", "Upsample", "needs size or scale_factor"),
        ("Upsample(mode='bilinear')", "Upsample", "needs size or scale_factor"),
        ("Upsample(scale_factor=2, align_corners=false)", "align_corners=false", "mode='bilinear' only"),
        ("Upsample(4, recompute_scale_factor=true)", "recompute_scale_factor=true", "with a scale_factor only"),
        ("ConvTranspose2d(4, 3, output_padding=1)", "output_padding=1", "smaller than stride=1 or dilation=1"),
        ("ConvTranspose2d(4, 3, stride=(2, 1), output_padding=(1, 1))", "output_padding=(1, 1)", "smaller than"),
    ],
)
def test_arguments_that_cannot_go_together_are_refused_at_the_argument(call, at, fragment):
    """Each is valid alone and refused by torch when the layer runs: E037, where the argument is written."""
    text = spec(f"layers {{ u {call} }}")
    e = error_of(text)
    assert e.code == "E037" and fragment in e.message, e.message
    line = text.splitlines()[e.loc.line - 1]
    assert line[e.loc.column - 1 : e.loc.end_column - 1] == at


def test_arguments_that_go_together_reach_torch():
    m = netspec.loads(
        spec("""layers {
        up  Upsample(None, (2, 1.5), 'bilinear', true)
        tc  ConvTranspose2d(4, 3, stride=(2, 1), output_padding=(1, 0), dilation=(1, 2))
        act PReLU(4, init=0.1)
    }""")
    ).module
    assert (m.up.scale_factor, m.up.mode, m.up.align_corners) == ((2.0, 1.5), "bilinear", True)
    assert (m.tc.in_channels, m.tc.output_padding, m.tc.dilation) == (3, (1, 0), (1, 2))
    assert m.act.num_parameters == 4 and float(m.act.weight.detach()[0]) == pytest.approx(0.1)


def test_prelu_takes_a_slope_per_channel_of_a_module_input_by_name():
    import torch

    text = """input 3x8x8
module Up(out) {
    PReLU(num_parameters=in_channels)
    ConvTranspose2d(out, kernel_size=2, stride=2)
    PReLU(num_parameters=out)
}
layers {
    a Up(16)
    b Up(4)
}
"""
    m = netspec.loads(text).module
    slopes = {path: p.num_parameters for path, p in m.named_modules() if isinstance(p, torch.nn.PReLU)}
    assert slopes == {"a.0": 3, "a.2": 16, "b.0": 16, "b.2": 4}
    assert netspec.loads(text, input="5x4x4").module.get_submodule("a.0").num_parameters == 5


def test_anonymous_layers_are_named_by_position():
    net = net_of(spec("layers { Conv2d(4, 3)  ReLU()  s Sequential { ReLU()  a ReLU()  Identity() } }"))
    assert names(net.layers) == ["0", "1", "s"]
    assert names(net.layers[2].children) == ["0", "a", "2"]


def test_comments_anywhere():
    text = """# head
input 3x8x8 # the input
layers { # open
    c Conv2d(   # a call over lines
        4,      # out_channels
        # a whole comment line between arguments
        kernel_size=3,
    )           # trailing comma allowed
    f Flatten() fc Linear(2)}
train { epochs 2 # two
}
# the end, without a newline"""
    net = net_of(text)
    assert names(net.layers) == ["c", "f", "fc"] and net.train.epochs == 2


def test_crlf_cr_and_bom_parse_identically():
    text = (ROOT / "examples" / "resnet_small.net").read_text()
    lf = parse(text)
    assert parse(text.replace("\n", "\r\n")) == lf
    assert parse(text.replace("\n", "\r")) == lf
    assert parse("\ufeff" + text) == lf
    assert parse(("\ufeff" + text.replace("\n", "\r\n")).encode("utf-8")) == lf


# ---- Sequential and Residual ---------------------------------------------------------------------------------------

COMPOSITES = spec("""layers {
    seq   Sequential { Conv2d(4, 3, padding=1)  act ReLU() }
    res   Residual { Conv2d(4, 3, padding=1)  BatchNorm2d() }
    down  Residual { Conv2d(8, 3, stride=2, padding=1) } shortcut { Conv2d(8, kernel_size=1, stride=2, bias=false) }
    proj  Residual { Conv2d(16, 1) } shortcut { p Conv2d(16, 1)  BatchNorm2d() }
}""")


def test_sequential_and_residual_print_as_modules():
    text = str(netspec.loads(COMPOSITES).module)
    assert (
        text
        == """Net(
  (seq): Sequential(
    (0): Conv2d(3, 4, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))
    (act): ReLU()
  )
  (res): Residual(
    (0): Conv2d(4, 4, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))
    (1): BatchNorm2d(4, eps=1e-05, momentum=0.1, affine=True, """
        + _bn_bias()
        + """track_running_stats=True)
  )
  (down): Residual(
    (0): Conv2d(4, 8, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1))
    (shortcut): Conv2d(4, 8, kernel_size=(1, 1), stride=(2, 2), bias=False)
  )
  (proj): Residual(
    (0): Conv2d(8, 16, kernel_size=(1, 1), stride=(1, 1))
    (shortcut): Sequential(
      (p): Conv2d(8, 16, kernel_size=(1, 1), stride=(1, 1))
      (1): BatchNorm2d(16, eps=1e-05, momentum=0.1, affine=True, """
        + _bn_bias()
        + """track_running_stats=True)
    )
  )
)"""
    )


def _bn_bias() -> str:
    # recent PyTorch prints BatchNorm's `bias=True`; older versions do not
    import torch

    return "bias=True, " if "bias=" in repr(torch.nn.BatchNorm2d(1)) else ""


def test_residual_computes_body_plus_shortcut():
    import torch

    torch.manual_seed(0)
    m = netspec.loads(COMPOSITES).module.eval()
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        y = m.seq(x)
        y = m.res._modules["1"](m.res._modules["0"](y)) + y  # identity shortcut
        y = m.down._modules["0"](y) + m.down.shortcut(y)  # projection
        y = m.proj._modules["0"](y) + m.proj.shortcut._modules["1"](m.proj.shortcut.p(y))
        assert torch.allclose(m(x), y)
    assert tuple(y.shape) == (2, 16, 4, 4)


def test_residual_shape_errors():
    e = error_of(spec("layers { r Residual { Conv2d(8, 3, padding=1) } }"))
    assert e.code == "E072" and (e.loc.line, e.loc.column) == (2, 10)
    assert error_of(spec("layers { r Residual { } }")).code == "E046"
