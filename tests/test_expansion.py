"""The language's expansion, construct by construct (docs/language.md is the reference): blocks, `repeat`, name
templates, reserved names and `forward`."""

from __future__ import annotations

import netspec
import pytest
from netspec.lang import MODULE_ATTRIBUTES, SEQUENTIAL_ATTRIBUTES

from spec_helpers import error_of, names, net_of, spec

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
    assert error_of(spec("layers { repeat i in 1..100000 { c{i} ReLU() } }")).code == "E048"
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
