"""The language, construct by construct (docs/language.md is the reference): each test writes a small spec and
checks what it becomes, down to the torch module where the construct reaches it."""

from __future__ import annotations

import re
from pathlib import Path

import netspec
import pytest
from netspec.errors import SpecError, UsageError
from netspec.lang import (
    FUNCTIONS,
    LAYERS,
    MODULE_ATTRIBUTES,
    SEQUENTIAL_ATTRIBUTES,
    describe_type,
    load_spec,
    parse,
    parse_override,
    show,
)

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "language.md"
EXAMPLES = sorted((ROOT / "examples").glob("*.net"))


def spec(body: str, head: str = "input 3x8x8\n") -> str:
    return head + body


def net_of(text: str, **kw):
    return load_spec(text, "t.net", **kw)


def error_of(text: str, **kw) -> SpecError:
    with pytest.raises(SpecError) as exc:
        netspec.checks(text, **kw)
    return exc.value


def names(nodes) -> list[str]:
    return [n.name for n in nodes]


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
        ("a = 10 / 2\nlayers { fc Linear(a) }", "E022"),
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


@pytest.mark.parametrize("text", ["classes", "1x=3", "x=(", "x=SGD(lr=0.1)", "x=cifar10", "x=", "x=1 / 2"])
def test_parse_override_refuses(text):
    with pytest.raises(UsageError):
        parse_override(text)


def test_set_of_an_unknown_constant_is_a_usage_error():
    with pytest.raises(UsageError, match=r"no constant 'clases' \(did you mean 'classes'\?\)"):
        netspec.checks(WIDE, constants={"clases": 100})
    with pytest.raises(UsageError, match="its constants: none"):
        netspec.checks(spec("layers { f Flatten() }"), constants={"x": 1})


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


# ---- blocks --------------------------------------------------------------------------------------------------------

BLOCKS = spec("""width = 4
block cbr(id, out, k=3, pad=k // 2) {
    conv{id}  Conv2d(out, kernel_size=k, padding=pad)
    relu{id}  ReLU()
}
block pair(s, c=width) {
    cbr(s + "a", c)
    cbr(s + "b", 2 * c, k=1)
}
layers {
    cbr(1, 8)
    cbr(id=2, out=8, k=5)
    pair("3")
    wrap Sequential { pair("4", c=2) }
}""")


def test_blocks_with_defaults_keywords_and_nesting():
    net = net_of(BLOCKS)
    assert names(net.layers) == ["conv1", "relu1", "conv2", "relu2", "conv3a", "relu3a", "conv3b", "relu3b", "wrap"]
    by = {n.name: n for n in net.layers}
    assert (by["conv1"].config.kernel_size, by["conv1"].config.padding) == (3, 1)
    assert (by["conv2"].config.kernel_size, by["conv2"].config.padding) == (5, 2)  # default from a parameter
    assert (by["conv3a"].config.out_channels, by["conv3b"].config.out_channels) == (4, 8)  # default = a constant
    assert by["conv3b"].config.kernel_size == 1
    assert names(by["wrap"].children) == ["conv4a", "relu4a", "conv4b", "relu4b"]
    assert by["wrap"].children[2].config.out_channels == 4


@pytest.mark.parametrize(
    "use,message",
    [
        ("cbr(1)", "block cbr needs argument 'out'"),
        ("cbr(1, 2, 3, 4, 5)", "block cbr takes 4 arguments, got 5"),
        ("cbr(1, 2, kk=3)", "block cbr has no parameter 'kk'"),
        ("cbr(1, 2, id=3)", "block cbr got parameter 'id' twice"),
        ("x cbr(1, 2)", "'cbr' is a block: its layers carry their own names"),
    ],
)
def test_block_use_errors(use, message):
    text = BLOCKS.replace("    cbr(1, 8)\n", f"    {use}\n")
    assert error_of(text).message == message


def test_blocks_see_their_parameters_and_constants_not_the_callers_variables():
    text = spec("block b() { c{i} Conv2d(4, 3) }\nlayers { repeat i in 1..2 { b() } }")
    e = error_of(text)
    assert e.code == "E020" and "'i'" in e.message
    e = error_of(spec("block a() { b() }\nblock b() { a() }\nlayers { a() }"))
    assert e.code == "E044" and e.message == "block 'a' uses itself (a -> b -> a)"


def test_errors_in_a_blocks_layers_point_at_the_use():
    text = spec("block b(c) { conv{c} Conv2d(c, 3) }\nlayers {\n  b(4)\n  f Flatten()\n  b(5)\n}")
    e = error_of(text)
    assert e.code == "E070" and (e.loc.line, e.loc.column) == (6, 3)  # the second use, after Flatten


# ---- repeat and name templates -------------------------------------------------------------------------------------


def test_repeat_is_inclusive_and_templates_fill_in():
    net = net_of(
        spec("""n = 3
layers {
    repeat i in 1..n { layer{i+1} Conv2d(4 * i, 1) }
    repeat s in 0..1 { repeat i in 1..2 { b{s}_{i} ReLU()  c{s*10+i} Identity() } }
    repeat i in 2..2 { Identity() }
}""")
    )
    assert names(net.layers) == [
        "layer2",
        "layer3",
        "layer4",
        "b0_1",
        "c1",
        "b0_2",
        "c2",
        "b1_1",
        "c11",
        "b1_2",
        "c12",
        "11",
    ]
    assert [n.config.out_channels for n in net.layers[:3]] == [4, 8, 12]


def test_repeat_errors():
    assert error_of(spec("layers { repeat i in 3..1 { c{i} ReLU() } }")).message == "the range 3..1 is empty"
    assert error_of(spec("layers { repeat i in 1..2.5 { c{i} ReLU() } }")).code == "E043"
    assert error_of(spec("layers { repeat i in 1..100000 { c{i} ReLU() } }")).code == "E043"
    e = error_of(spec("layers { repeat i in 1..2 { c ReLU() } }"))
    assert e.code == "E041" and e.hint == "put the repeat variable in the name: c{i} or c_{i}"


def test_string_parameters_make_names():
    net = net_of(spec('block b(id) { conv{id} Conv2d(4, 3, padding=1) }\nlayers { b("2_0") b(3) }'))
    assert names(net.layers) == ["conv2_0", "conv3"]


@pytest.mark.parametrize("name", sorted(MODULE_ATTRIBUTES)[:5] + ["training", "forward", "train", "_x"])
def test_reserved_names_are_refused(name):
    assert error_of(spec(f"layers {{ {name} ReLU() }}")).code == "E047"


def test_reserved_names_cover_torch():
    # a new torch attribute would break `compile` for a spec `check` accepts: keep the lists in step with torch
    import torch.nn as nn

    public = {n for n in dir(nn.Module()) if not n.startswith("_")}
    assert public <= MODULE_ATTRIBUTES, public - MODULE_ATTRIBUTES
    seq = {n for n in dir(nn.Sequential()) if not n.startswith("_")} - public
    assert seq <= SEQUENTIAL_ATTRIBUTES, seq - SEQUENTIAL_ATTRIBUTES
    assert error_of(spec("layers { s Sequential { pop ReLU() } }")).code == "E047"
    assert error_of(spec("layers { r Residual { shortcut ReLU() } }")).code == "E047"
    net_of(spec("layers { pop ReLU() }"))  # only a Sequential has `pop`


# ---- forward -------------------------------------------------------------------------------------------------------

FORWARD = spec(
    """layers {
    fc2   Linear(4)
    conv  Conv2d(1, 3, padding=1)
    r1    Sequential { Conv2d(1, 3, padding=1)  ReLU() }
    r2    Sequential { Conv2d(1, 3, padding=1) }
    fc1   Linear(4)                 # 1x2x2 = 4 features in, 4 out: it can run twice
}
forward {
    conv relu
    repeat i in 1..2 { residual r{i} }
    flatten fc1 tanh fc1 sigmoid fc2
}""",
    head="input 3x2x2\n",
)


def test_forward_runs_modules_functions_and_residual_steps():
    import torch

    compiled = netspec.loads(FORWARD)
    m = compiled.module.eval()
    assert [s.op for s in compiled.network.forward] == [
        "module",
        "function",
        "residual",
        "residual",
        "function",
        "module",
        "function",
        "module",
        "function",
        "module",
    ]
    assert list(m._modules) == ["fc2", "conv", "r1", "r2", "fc1"]  # declaration order
    x = torch.randn(3, 3, 2, 2)
    with torch.no_grad():
        y = torch.relu(m.conv(x))
        y = y + m.r1(y)
        y = y + m.r2(y)
        y = torch.sigmoid(m.fc1(torch.tanh(m.fc1(torch.flatten(y, 1)))))  # fc1 runs twice, one weight
        y = m.fc2(y)
        assert torch.allclose(m(x), y)


def test_without_forward_the_declaration_order_runs():
    net = net_of(spec("layers { f Flatten() a Linear(3) b Linear(2) }"))
    assert [(s.op, s.name) for s in net.forward] == [
        ("module", "f"),
        ("module", "a"),
        ("module", "b"),
    ]


@pytest.mark.parametrize(
    "fwd,code",
    [
        ("c nothere", "E050"),
        ("residual relu", "E050"),
        ("relu", "E051"),  # c is never run
        ("c residual d", "E072"),  # d changes the shape
    ],
)
def test_forward_errors(fwd, code):
    text = spec(f"layers {{ c Conv2d(4, 3, padding=1) d Conv2d(8, 3, padding=1) }}\nforward {{ {fwd} d }}")
    assert error_of(text).code == code


# ---- train ---------------------------------------------------------------------------------------------------------


def test_train_defaults():
    for text in (spec("layers { f Flatten() }"), spec("layers { f Flatten() }\ntrain { }")):
        t = net_of(text).train
        assert (t.data, t.epochs, t.batch_size, t.test_batch_size, t.seed, t.label_smoothing) == (
            "shapes",
            10,
            128,
            1000,
            0,
            0.0,
        )
        assert (t.optimizer.kind(), t.optimizer.lr, t.optimizer.momentum) == ("SGD", 0.01, 0.9)
        assert (t.schedule, t.augment, t.normalize) == (None, (), None)


def test_train_every_setting():
    t = net_of(
        spec("""opt = Adam(lr=3e-4, betas=(0.9, 0.99))
layers { f Flatten() }
train {
    data cifar100  epochs 7  batch_size 64  test_batch_size 500  seed 3  label_smoothing 0.1
    optimizer opt
    schedule MultiStepLR((3, 5), gamma=0.5)
    augment [RandomCrop(padding=(1, 2)), RandomHorizontalFlip(0.25), RandomVerticalFlip, ColorJitter(0.1, 0.2),
             RandomRotation((-10, 10))]
    normalize Normalize((0.5, 0.4, 0.3), (0.2, 0.2, 0.2))
}""")
    ).train
    assert (t.data, t.epochs, t.batch_size, t.test_batch_size, t.seed, t.label_smoothing) == (
        "cifar100",
        7,
        64,
        500,
        3,
        0.1,
    )
    assert (t.optimizer.kind(), t.optimizer.lr, t.optimizer.betas) == ("Adam", 3e-4, (0.9, 0.99))
    assert (t.schedule.kind(), t.schedule.milestones, t.schedule.gamma) == ("MultiStepLR", (3, 5), 0.5)
    assert [a.kind() for a in t.augment] == [
        "RandomCrop",
        "RandomHorizontalFlip",
        "RandomVerticalFlip",
        "ColorJitter",
        "RandomRotation",
    ]
    assert (t.augment[0].size, t.augment[0].padding, t.augment[1].p, t.augment[4].degrees) == (
        (8, 8),
        (1, 2),
        0.25,
        (-10, 10),
    )
    assert (t.normalize.mean, t.normalize.std) == ((0.5, 0.4, 0.3), (0.2, 0.2, 0.2))


@pytest.mark.parametrize(
    "word,name",
    [
        ("tiny-imagenet", "tiny-imagenet"),
        ("fashion-mnist", "fashion-mnist"),
        ("tiny_imagenet", "tiny-imagenet"),
        ("cifar-10", "cifar10"),
        ("CIFAR10", "cifar10"),
        ("'data/my folder'", "data/my folder"),
        ("mnist", "mnist"),
    ],
)
def test_data_names(word, name):
    assert net_of(spec(f"layers {{ f Flatten() }}\ntrain {{ data {word} }}")).train.data == name


def test_unknown_data_name_is_an_error_at_the_word():
    e = error_of(spec("layers { f Flatten() }\ntrain { data tiny-imagnet }"))
    assert e.code == "E061" and (e.loc.line, e.loc.column) == (3, 14) and "'tiny-imagenet'" in e.hint


def test_schedule_inference():
    t = net_of(spec("layers { f Flatten() }\ntrain { epochs 12 schedule CosineAnnealingLR() }")).train
    assert t.schedule.T_max == 12
    t = net_of(spec("layers { f Flatten() }\ntrain { epochs 12 schedule CosineAnnealingLR(5) }")).train
    assert t.schedule.T_max == 5
    t = net_of(spec("layers { f Flatten() }\ntrain { optimizer SGD(lr=0.2) schedule OneCycleLR() }")).train
    assert t.schedule.max_lr == 0.2
    t = net_of(spec("layers { f Flatten() }\ntrain { schedule None }")).train
    assert t.schedule is None


def test_random_crop_size_is_the_input_size():
    text = spec("layers { f Flatten() }\ntrain { augment [RandomCrop(padding=4)] }")
    assert net_of(text).train.augment[0].size == (8, 8)
    assert net_of(text, input=(3, 64, 48)).train.augment[0].size == (64, 48)
    assert net_of(text.replace("RandomCrop(padding=4)", "RandomCrop(8, padding=4)")).train.augment[0].size == 8
    e = error_of(text.replace("RandomCrop(padding=4)", "RandomCrop(6, padding=4)"))
    assert e.code == "E062" and (e.loc.line, e.loc.column) == (3, 18)
    assert "6x6 images, but the input is 8x8" in e.message


@pytest.mark.parametrize(
    "setting,code",
    [
        ("lr 0.1", "E060"),
        ("epochs 3 epochs 4", "E060"),
        ("epochs 0", "E061"),
        ("batch_size '128'", "E061"),
        ("epochs 2.5", "E061"),
        ("optimizer SDG()", "E064"),
        ("augment [ToTensor()]", "E064"),
        ("augment [Normalize((0.5,), (0.5,))]", "E064"),
        ("optimizer 'SGD'", "E063"),
        ("epochs ten", "E061"),
        ("normalize Normalize((0.5, 0.5), (0.5,))", "E062"),
        ("normalize Normalize((0.5,), (0.0,))", "E036"),
    ],
)
def test_train_errors(setting, code):
    assert error_of(spec(f"layers {{ f Flatten() }}\ntrain {{ {setting} }}")).code == code
