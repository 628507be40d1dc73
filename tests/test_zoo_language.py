"""Corners of the language that the zoo's specs reached (examples/zoo/): each test names the spec that needs it."""

from __future__ import annotations

import netspec
import pytest

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
