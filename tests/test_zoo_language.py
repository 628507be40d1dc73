"""Corners of the language that the zoo's specs reached (examples/zoo/): each test names the spec that needs it."""

from __future__ import annotations

import netspec
import pytest
import torch

from spec_helpers import error_of

# ---- a top-level keyword is a name where only a name can stand -------------------------------------------------------
# torchvision names children `block` (MBConv, CNBlock, MobileNetV3's InvertedResidual) and `layers` (MNASNet). Lark's
# contextual lexer read such a word as a keyword after a module's value or a layer's call, where the LALR tables merge
# the lookaheads of a top-level constant's expression (which `block b(...)` may follow).

MODULE_WITH_VALUE = """network N
input 3x8x8
module M() {
    width = in_channels * 2
    block Sequential { Conv2d(width, 1) }
    forward(x) { return block(x) }
}
layers { m M() }
forward { m }
"""


def test_block_names_a_child_after_a_modules_value():  # efficientnet_b0.net: MBConv's `block`
    net = netspec.loads(MODULE_WITH_VALUE)
    assert [k for k in net.module.state_dict()] == ["m.block.0.weight", "m.block.0.bias"]
    assert net.module.m.block[0].out_channels == 6


@pytest.mark.parametrize("word", ["network", "input", "block", "module", "layers"])
def test_top_level_words_name_layers_after_a_layer(word):
    net = netspec.loads(f"network N\ninput 3x8x8\nlayers {{\n  a Conv2d(4, 1)\n  {word} Conv2d(4, 1)\n}}\n")
    assert [name for name, _ in net.module.named_children()] == ["a", word]


@pytest.mark.parametrize(
    "text, message",
    [
        # a `}` missing before the next section: the keyword is no name, and says so
        ("layers {\n  a Conv2d(4, 1)\n\nforward { a }\n", "this '{' of `layers` is never closed"),
        ("layers {\n  a Conv2d(4, 1)\n\ntrain {\n epochs 3\n}\n", "this '{' of `layers` is never closed"),
        ("module M() {\n  a Conv2d(4, 1)\n\nblock b(x) {\n Conv2d(x, 1)\n}\nlayers { m M() }\n", "is never closed"),
        ("layers {\n  a Conv2d(4, 1)\n  network N2\n}\n", "unexpected keyword 'network'"),
        ("layers {\n  a Conv2d(4, 1)\n  block\n}\n", "unexpected keyword 'block'"),
    ],
)
def test_a_keyword_that_is_no_name_keeps_its_error(text, message):
    err = error_of("network N\ninput 3x8x8\n" + text)
    assert message in err.message


@pytest.mark.parametrize("mistake", ["Conv2d(=3)", "Conv2d(width, 1)\n  Conv2d(=3)"])
def test_a_later_mistake_in_a_keyword_named_child_is_reported_where_it_is(mistake):
    err = error_of(MODULE_WITH_VALUE.replace("Conv2d(width, 1)", mistake))
    assert "keyword" not in err.message and err.loc.line == 5 + mistake.count("\n"), err


# ---- kept without an input: a layer that takes no size from it ------------------------------------------------------
# EfficientNet's MBConv makes a StochasticDepth in every block and runs it only on the residual path: in the other
# blocks it is kept. It has no weights and no size to work out, so it needs no `kept CxHxW`.

KEPT = """network N
input 4x8x8
module Block(stride) {
    conv Conv2d(4, 3, stride=stride, padding=1)
    if stride == 1 {
        stochastic_depth StochasticDepth(0.1, 'row')
    } else {
        kept stochastic_depth StochasticDepth(0.1, 'row')
    }
    forward(x) {
        if stride == 1 {
            return stochastic_depth(conv(x)) + x
        }
        return conv(x)
    }
}
layers {
    a Block(1)
    b Block(2)
}
forward { a b }
"""


def test_a_layer_without_sizes_is_kept_without_an_input():  # efficientnet_b0.net
    net = netspec.loads(KEPT)
    rows = {r.path: r for r in net.shapes.rows}
    assert rows["b.stochastic_depth"].step == "kept" and rows["b.stochastic_depth"].label == "StochasticDepth (kept)"
    assert (rows["b.stochastic_depth"].params, rows["b.stochastic_depth"].macs) == (0, 0)
    assert rows["a.stochastic_depth"].step == "module"
    assert net.shapes.output == (4, 4, 4)
    assert type(net.module.b.stochastic_depth).__name__ == "StochasticDepth"
    assert "stochastic_depth" in dict(net.module.b.named_children())
    x = torch.randn(2, 4, 8, 8)
    block = net.module.b.train()  # a StochasticDepth of p=1 that ran would zero every image
    block.stochastic_depth.p = 1.0
    assert torch.equal(block(x), block.conv(x))


@pytest.mark.parametrize("layer", ["Conv2d(4, 1)", "BatchNorm2d()", "Sequential { ReLU() BatchNorm2d() }"])
def test_a_layer_with_sizes_or_weights_still_needs_its_input(layer):
    err = error_of(KEPT.replace("kept stochastic_depth StochasticDepth(0.1, 'row')", f"kept stochastic_depth {layer}"))
    assert err.code == "E057", err
