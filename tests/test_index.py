"""Indexing a tuple or list value, `depths[0]`: how a spec writes a per-stage value of a family (blocks per stage of
a ResNet, convolutions per stage of a VGG), as Python does (from 0; a negative index counts from the end)."""

from __future__ import annotations

import netspec
import pytest
from netspec.lang import parse_override

from spec_helpers import error_of, spec

STAGES = spec("""
widths = (4, 8)
depths = (1, 2)
block stage(w, n) { repeat i in 1..n { Conv2d(w, 3, padding=1) ReLU() } }
layers {
    repeat s in 1..2 { stage(widths[s - 1], depths[s - 1]) }
    head Conv2d(widths[-1] * 2, 1)
}
""")


def _convs(text: str, **kw) -> list[int]:
    module = netspec.loads(text, **kw).module
    return [m.out_channels for m in module.modules() if hasattr(m, "out_channels")]


def test_items_of_tuple_constants_set_stages():
    assert _convs(STAGES) == [4, 8, 8, 16]


def test_a_tuple_from_the_command_line_is_indexed_the_same_way():
    name, value = parse_override("depths=(2, 1)")
    assert _convs(STAGES, constants={name: value}) == [4, 4, 8, 16]


def test_a_module_parameter_and_a_forward_argument_can_be_indexed():
    text = spec("""
sizes = [3, 2]
module M(ks) {
    conv Conv2d(4, ks[0], padding=ks[0] // 2)
    forward(x) { return max_pool2d(conv(x), sizes[-1]) }
}
layers { m M((3, 5)) }
""")
    assert netspec.checks(text)[1].output == (4, 4, 4)
    assert netspec.loads(text).module.m.conv.kernel_size == (3, 3)


def test_indexing_binds_tighter_than_arithmetic():
    text = spec("w = (2, 3)\nlayers { Conv2d(-w[0] + 2 * w[1] * w[-1], 1) }\n")
    assert _convs(text) == [16]


@pytest.mark.parametrize(
    "values,message,column",
    [
        ("d = (1, 2)\nx = d[2]", "index 2 is out of range: d has 2 items", 7),
        ("d = (1, 2)\nx = d[-3]", "index -3 is out of range: d has 2 items", 7),
        ("x = ()[0]", "index 0 is out of range: the tuple has 0 items", 8),
        ("x = (1, 2)[1.0]", "an index must be an integer, not a number", 12),
        ("x = (1, 2)[true]", "an index must be an integer, not a boolean", 12),
        ("d = 4\nx = d[0]", "only a tuple or list has items; d is an integer", 5),
        ("x = 'ab'[0]", "only a tuple or list has items; this is a string", 5),
    ],
)
def test_a_bad_index_is_a_located_error(values, message, column):
    e = error_of(spec(values + "\nlayers { Conv2d(x, 1) }\n"))
    assert (e.code, e.message) == ("E022", message)
    assert e.loc.line == values.count("\n") + 2 and e.loc.column == column


def test_a_tensor_is_not_indexed_in_a_forward():
    e = error_of(spec("module M() {\n conv Conv2d(4, 1)\n forward(x) { return conv(x)[0] }\n}\nlayers { m M() }\n"))
    assert e.code == "E050" and e.message == "this cannot be done to a tensor in a forward"
