"""The shape oracle for modules and run orders (`module`, `forward(x) { ... }`, `if`, `kept`, `Parameter`, and every
operation of netspec/lang/ops.py): for each case, netspec's static table must be what torch computes
(`oracle.oracle`: every row's shapes, parameters and MACs), and the compiled module must compute what the same network
written directly with torch (and torchvision, whose own classes are used where it has them) computes, with the same
weights: the reference loads the compiled module's state_dict strictly (so the keys and shapes are torch's too), and
both run on one input, in eval mode and in train mode from one seed (dropout and stochastic depth draw alike).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import netspec
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from flow_specs import BLOCK_SPECS, OP_SPECS, Net, same_outputs, seq
from oracle import WARNING_FILTERS, one_torch_thread, oracle

pytestmark = WARNING_FILTERS
_one_torch_thread = pytest.fixture(autouse=True, scope="module")(one_torch_thread)


def check(text: str, reference: Callable[[], nn.Module], *, train: bool = True):
    """The oracle on `text`, the outputs against `reference()`, and `check`'s table (no torch) against `load`'s."""
    compiled = netspec.loads(text)
    oracle(compiled)
    with torch.no_grad():
        same_outputs(compiled, reference(), train=train)
    _, table = netspec.checks(text)
    assert [(r.path, r.in_shape, r.out_shape, r.params, r.macs) for r in table.rows] == [
        (r.path, r.in_shape, r.out_shape, r.params, r.macs) for r in compiled.shapes.rows
    ]
    return compiled


# ---- splits and chunks ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "stmts,fn",
    [
        ("a, b, d = split(x, 4)\n    return cat(d, b, a)", lambda x: torch.cat(torch.split(x, 4, 1)[::-1], 1)),
        ("a, b = split(x, 5)\n    return cat(b, a)", lambda x: torch.cat(torch.split(x, 5, 1)[::-1], 1)),
        ("a = split(x, 10)\n    return a", lambda x: x),
        ("a = split(x, 16)\n    return a", lambda x: x),
        ("return cat(split(x, 10), x)", lambda x: torch.cat([x, x], 1)),
        ("a = chunk(x, 1)\n    return a", lambda x: x),
        ("a, b = split(x, 6, 2)\n    return cat(b, a, dim=2)", lambda x: torch.cat(torch.split(x, 6, 2)[::-1], 2)),
    ],
    ids=["size-3-parts", "size-2-parts", "size-1-part", "size-over-the-dim", "size-in-a-call", "chunk-1", "dim-2"],
)
def test_split_by_size_and_single_parts(stmts, fn):
    """split(x, size) gives the parts torch.split gives (the last one smaller), as many as the names assigned; one
    part (of a chunk or a split) is a value, not a tuple of one."""
    text = f"input 10x8x3\nlayers {{ c Conv2d(10, 1) }}\nforward(x) {{\n    x = c(x)\n    {stmts}\n}}\n"
    check(text, lambda: Net(lambda m, x: fn(m.c(x)), c=nn.Conv2d(10, 10, 1)))


def test_split_by_size_into_another_number_of_parts_is_located():
    text = (
        "input 10x8x8\nlayers { c Conv2d(10, 1) }\nforward(x) {\n    a, b = split(c(x), 4)\n    return cat(b, a)\n}\n"
    )
    with pytest.raises(netspec.SpecError) as info:
        netspec.checks(text)
    err = info.value
    assert (err.code, err.loc.line, err.loc.column) == ("E056", 4, 12)
    assert err.message == "split() gives 3 parts here (4x8x8, 4x8x8, 2x8x8), for 2 names"


# ---- learned parameters -------------------------------------------------------------------------------------------


def test_a_module_run_twice_counts_its_parameters_once():
    text = """input 8x6x6
module Scale() {
    gamma Parameter((8, 1, 1), value=0.5)
    forward(x) { return x * gamma }
}
layers { m Scale() }
forward(x) { return m(m(x)) }
"""
    compiled = check(
        text,
        lambda: Net(
            lambda s, x: s.m(s.m(x)), m=Net(lambda s, x: x * s.gamma, gamma=nn.Parameter(torch.zeros(8, 1, 1)))
        ),
    )
    assert compiled.shapes.total_params == 8
    assert [r.params for r in compiled.shapes.rows if r.layer == "Parameter"] == [8, 0]


def test_a_parameter_in_functions_of_each_element():
    text = """input 8x6x6
module Gate() {
    g Parameter((8, 1, 1), value=0.5)
    conv Conv2d(8, 1)
    forward(x) { return x * sigmoid(g) + relu(dropout(g, 0.5)) * conv(x) }
}
layers { m Gate() }
"""

    def forward(s, x):
        return x * torch.sigmoid(s.g) + F.relu(F.dropout(s.g, 0.5, s.training)) * s.conv(x)

    check(
        text,
        lambda: nn.Sequential(
            OrderedDict(m=Net(forward, g=nn.Parameter(torch.zeros(8, 1, 1)), conv=nn.Conv2d(8, 8, 1)))
        ),
    )


@pytest.mark.parametrize(
    "expr,message",
    [
        ("cat(y, g)", "cat() takes activations, which have a batch dimension; 'g' has none: it is a learned parameter"),
        ("y + c(g)", "child 'c' takes activations, which have a batch dimension; 'g' has none"),
        ("y + flatten(g, 1)", "flatten() takes activations"),
        ("y + mean(sigmoid(g) * g, 1, keepdim=true)", "mul(...) has none: it is made from learned parameters alone"),
        ("y + stochastic_depth(g, 0.5, 'row')", "stochastic_depth() takes activations"),
        ("g + layer_norm(y, 6, weight=y)", "y is an activation, with a batch dimension: weight= and bias= take"),
    ],
)
def test_a_parameter_where_a_batch_is_needed_is_refused(expr, message):
    """torch would refuse these, or read the parameter's first dimension as the batch."""
    text = f"input 8x6x6\nmodule M() {{\n    g Parameter((8, 6, 6))\n    c Conv2d(8, 1)\n    forward(x) {{\n        y = c(x)\n        return {expr}\n    }}\n}}\nlayers {{ m M() }}\n"
    with pytest.raises(netspec.SpecError) as info:
        netspec.checks(text)
    assert message in info.value.message
    assert info.value.code in ("E057", "E070") and info.value.loc.line == 7


@pytest.mark.parametrize(
    "text,owner",
    [
        ("input 4x6x6\nlayers {\n    c Conv2d(4, 1)\n    g Parameter((4, 1, 1))\n}\n", "the network"),
        ("input 4x6x6\nlayers {\n    c Conv2d(4, 1)\n    g Parameter((4, 1, 1))\n}\nforward { c }\n", "the network"),
        ("input 4x6x6\nlayers {\n    c Conv2d(4, 1)\n    g Parameter((4, 1, 1))\n}\nforward { c g }\n", "the network"),
        (
            "input 4x6x6\nmodule M() {\n    c Conv2d(4, 1)\n    g Parameter((4, 1, 1))\n}\nlayers { m M() }\n",
            "module M",
        ),
    ],
    ids=["network", "network-forward-steps", "network-forward-step-names-it", "module"],
)
def test_a_parameter_without_a_forward_to_use_it_is_refused(text, owner):
    """It was left out of the network (or registered and never used; or, named as a step, failed at run time)."""
    with pytest.raises(netspec.SpecError) as info:
        netspec.checks(text)
    err = info.value
    assert (err.code, err.loc.line) == ("E057", 4)
    assert err.message == f"parameter 'g' is in {owner} without a `forward(x) {{ ... }}`: nothing can use it"


def test_a_kept_parameter_is_registered_and_never_used():
    text = "input 4x6x6\nmodule M() {\n    c Conv2d(4, 1)\n    kept g Parameter((4, 1, 1), value=2.0)\n}\nlayers { m M() }\n"
    compiled = check(
        text,
        lambda: nn.Sequential(
            OrderedDict(m=Net(lambda s, x: s.c(x), c=nn.Conv2d(4, 4, 1), g=nn.Parameter(torch.zeros(4, 1, 1))))
        ),
    )
    assert compiled.shapes.total_params == 24


# ---- in-place children ------------------------------------------------------------------------------------------

IN_PLACE = {
    # forward(x) { ... } over a child `r`, ReLU(inplace=true), and others; the reference computes on values
    "input-read-later": ("y = r(x)\n    return x + c(y)", lambda m, x: x + m.c(F.relu(x))),
    "read-first": ("return r(x) + x", lambda m, x: F.relu(x) + x),
    "result-only": (
        "y = r(c(x))\n    return cat(y, c(y))",
        lambda m, x: torch.cat([F.relu(m.c(x)), m.c(F.relu(m.c(x)))], 1),
    ),
    "a-chunk-of-x": (
        "a, b = chunk(x, 2)\n    return cat(a, x, r(b))",
        lambda m, x: torch.cat([x[:, :4], x, F.relu(x[:, 4:])], 1),
    ),
    "a-permute-of-x": (
        "y = r(permute(x, (0, 2, 3, 1)))\n    return x + permute(y, (0, 3, 1, 2))",
        lambda m, x: x + F.relu(x),
    ),
    "a-flatten-read-after": (
        "y = flatten(x, 1)\n    z = r(x)\n    return cat(y, flatten(z, 1), dim=1)",
        lambda m, x: torch.cat([x.flatten(1), F.relu(x).flatten(1)], 1),
    ),
    "dropout-gives-x-back": (
        "y = dropout(x, 0.5)\n    return x + r(y)",
        lambda m, x: x + F.relu(F.dropout(x, 0.5, m.training)),
    ),
    "identity-gives-x-back": ("y = i(x)\n    return x + r(y)", lambda m, x: x + F.relu(x)),
    "a-module-that-writes-its-input": ("return x + seq(x)", lambda m, x: x + m.seq[1](F.relu(x))),
}


@pytest.mark.parametrize("case", list(IN_PLACE))
def test_an_in_place_child_does_not_change_a_value_read_later(case):
    stmts, fn = IN_PLACE[case]
    text = f"""input 8x3x3
layers {{
    r ReLU(inplace=true)
    c Conv2d(8, 1)
    i Identity()
    seq Sequential {{ ReLU(inplace=true) Conv2d(8, 1) }}
}}
forward(x) {{
    {stmts}
}}
"""
    unused = [n for n in ("r", "c", "i", "seq") if f"{n}(" not in stmts]
    for n in unused:
        text = text.replace(f"    {n} ", f"    kept 8x3x3 {n} ")
    children = {
        "r": nn.ReLU(),
        "c": nn.Conv2d(8, 8, 1),
        "i": nn.Identity(),
        "seq": nn.Sequential(nn.ReLU(), nn.Conv2d(8, 8, 1)),
    }
    check(text, lambda: Net(fn, **children))


def test_in_place_children_copy_only_where_a_value_is_read_later():
    """A copy costs memory and time: Fire's in-place activations need none, and x is copied once for r(x) + x."""
    text = """input 8x3x3
layers {
    squeeze    Conv2d(4, 1)
    relu       ReLU(inplace=true)
    expand1x1  Conv2d(8, 1)
    expand3x3  Conv2d(8, 3, padding=1)
}
forward(x) {
    x = relu(squeeze(x))
    return cat(relu(expand1x1(x)), relu(expand3x3(x)), r(x) + x)
}
""".replace("r(x) + x", "relu(x) + x")
    compiled = netspec.loads(text)
    copies = [(name, inputs) for _, kind, name, inputs, _, _, copy in compiled.module._flow if copy]
    assert copies == [("relu", ("x.2",))]


# ---- names ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("word", ["block", "module", "network", "input", "layers"])
def test_a_keyword_names_a_child_after_a_value(word):
    """After `dim = in_channels` the parser read `block` (the name of a child of torchvision's CNBlock) as the
    keyword of a block's definition: where a name is taken, the word is a name."""
    text = f"input 8x5x6\nmodule M() {{\n    dim = in_channels\n    {word} Conv2d(dim, 1)\n    forward(x) {{ return {word}(x) }}\n}}\nlayers {{ m M() }}\n"
    check(text, lambda: seq(m=Net(lambda s, x: getattr(s, word)(x), **{word: nn.Conv2d(8, 8, 1)})))


# ---- messages -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body,message",
    [
        # a value is named as written; an unnamed one by the child that gave it its size (not the activation after)
        (
            "y = c(x)\n        return cat(relu(y), act(d(x)))",
            "cat() in 'm' along dim 1 needs every other dimension equal, but y gives 8x6x6 and d gives 8x4x4",
        ),
        (
            "return mul(c(x), mean(d(x), 1))",
            "mul() in 'm' needs shapes that broadcast (each dimension equal, or 1), but c is 8x6x6 and mean(...) is 4x4",
        ),
        (
            "a, b, e = chunk(c(x), 3)\n        return cat(a, b, e, d(x))",
            "chunk() in 'm' cannot cut c into 3 equal parts: it has 8 along dim 1",
        ),
        (
            "return max_pool2d(d(x), 5) + c(x)",
            "max_pool2d() in 'm' cannot take 8x4x4: its 5x5 window is larger than its 4x4 input",
        ),
        ("y = d(h)\n        h = c(x)\n        return y + h", "the value 'h' is used before it is defined"),
    ],
)
def test_messages_name_values_and_the_module(body, message):
    text = f"""input 8x6x6
module M() {{
    c Conv2d(8, 1)
    d Conv2d(8, 3)
    act ReLU()
    forward(x) {{
        {body}
    }}
}}
layers {{ m M() }}
"""
    text = text.replace("    act ReLU()\n", "    act ReLU()\n" if "act(" in body else "")
    with pytest.raises(netspec.SpecError) as info:
        netspec.checks(text)
    assert info.value.message == message


# ---- torchvision's building blocks (flow_specs.BLOCK_SPECS), and every operation (flow_specs.OP_SPECS) -------------


def _tv():
    """torchvision's model modules (imported when a case is built, not at collection)."""
    from torchvision.models import convnext, densenet, inception, mobilenetv2, resnet, shufflenetv2, squeezenet

    return convnext, densenet, inception, mobilenetv2, resnet, shufflenetv2, squeezenet


def _shuffle_net():
    *_, shufflenetv2, _ = _tv()
    unit1, unit2 = shufflenetv2.InvertedResidual(6, 8, 2), shufflenetv2.InvertedResidual(8, 8, 1)
    del unit2.branch1  # an empty Sequential in torchvision: no weights, and the spec declares it only with a stride
    return seq(down=unit1, unit=unit2)


def _basic_blocks():
    resnet = _tv()[4]
    down = nn.Sequential(nn.Conv2d(4, 8, 1, 2, bias=False), nn.BatchNorm2d(8))
    return seq(layer1=nn.Sequential(resnet.BasicBlock(4, 8, 2, down), resnet.BasicBlock(8, 8)))


def _inverted_residuals():
    mobilenetv2 = _tv()[3]
    return seq(
        features=nn.Sequential(mobilenetv2.InvertedResidual(4, 8, 2, 6), mobilenetv2.InvertedResidual(8, 8, 1, 1))
    )


def _cn_blocks():
    convnext = _tv()[0]
    return seq(stage=nn.Sequential(convnext.CNBlock(8, 0.5, 0.0), convnext.CNBlock(8, 1e-6, 0.25)))


def _se():
    from torchvision.ops import SqueezeExcitation

    return seq(conv=nn.Conv2d(3, 8, 3, padding=1), se=SqueezeExcitation(8, 4, scale_activation=nn.Hardsigmoid))


# the same blocks written with torchvision's own classes
BLOCK_REFERENCES: dict[str, Callable[[], nn.Module]] = {
    "fire": lambda: seq(fire2=_tv()[6].Fire(8, 4, 8, 8), fire3=_tv()[6].Fire(16, 6, 12, 4)),
    "basic-blocks": _basic_blocks,
    "inverted-residuals": _inverted_residuals,
    "squeeze-excitation": _se,
    "cn-blocks": _cn_blocks,
    "dense-block": lambda: seq(denseblock1=_tv()[1]._DenseBlock(3, 5, 2, 4, 0.0)),
    "shuffle-units": _shuffle_net,
    "inception-a": lambda: seq(Mixed_5b=_tv()[2].InceptionA(8, 4)),
}


@pytest.mark.parametrize("case", list(BLOCK_SPECS))
def test_torchvision_blocks(case):
    check(BLOCK_SPECS[case], BLOCK_REFERENCES[case])


def _pooling(m, x):
    y = F.max_pool2d(m.conv(x), 3, stride=2, padding=1, ceil_mode=True)
    y = F.avg_pool2d(y, 2, ceil_mode=True, count_include_pad=False)
    z = y.mean((2, 3), keepdim=True)
    return F.softmax(m.fc(torch.flatten(F.adaptive_avg_pool2d(y, (2, 1)) * z, 1)), 1)


def _activations(m, x):
    y = m.conv(x)
    a = F.relu(y) + F.relu6(y + y) + F.silu(y) + torch.sigmoid(y) + torch.tanh(y) + F.hardswish(y) + F.hardsigmoid(y)
    b = F.gelu(y) + F.gelu(y, approximate="tanh") + F.mish(y) + F.elu(y) + F.leaky_relu(y, 0.2) + F.leaky_relu(y)
    return a * b


def _dims(m, x):
    a = x.mean(-1)  # C x H
    b = torch.flatten(x, 2)  # C x (H * W)
    c = torch.cat([a, b], dim=-1)
    return torch.cat([m.l(c), m.l2(torch.flatten(torch.cat([x, x], dim=2), 2))], dim=2)


def _layer_norms(m, x):
    a, c = torch.split(x, [3, 5], 1)
    y = m.conv(c).permute(0, 2, 3, 1)
    y = F.layer_norm(y, (5,), m.w, m.b, 1e-6)
    z = F.layer_norm(a, (4, 5))
    return torch.cat([z, y.permute(0, 3, 1, 2)], 1)


def _dropouts(m, x):
    from torchvision.ops import stochastic_depth

    y = F.dropout(m.conv(x), 0.2, m.training)
    return x + stochastic_depth(y, 0.3, "batch", m.training) + stochastic_depth(y, 0.5, "row", m.training)


def _broadcasting(m, x):
    y = m.conv(x)
    s = torch.sigmoid(y.mean(1, keepdim=True))  # 1 x H x W: a spatial gate
    c = y.mean((2, 3), keepdim=True)  # C x 1 x 1
    return x + m.gamma * (y * s) + c * x


def _aux(in_channels: int) -> nn.Module:
    return Net(
        lambda s, x: s.fc(torch.flatten(F.adaptive_avg_pool2d(F.relu(s.conv(x)), (2, 2)), 1)),
        conv=nn.Conv2d(in_channels, 4, 1),
        fc=nn.Linear(16, 10),
    )


def _kept_heads():
    stage = Net(lambda s, x: F.relu(s.conv(x)), conv=nn.Conv2d(3, 8, 3, padding=1), aux=_aux(8))
    head = Net(
        lambda s, x: getattr(s, "2")(getattr(s, "0")(x)),
        **{"0": nn.Flatten(), "extra": nn.Sequential(nn.Flatten(), nn.Linear(32, 3)), "2": nn.Linear(128, 10)},
    )
    return Net(lambda s, x: s.head(s.pool(s.stage(x))), stage=stage, aux2=_aux(8), pool=nn.MaxPool2d(2), head=head)


OP_REFERENCES: dict[str, Callable[[], nn.Module]] = {
    "pooling": lambda: Net(_pooling, conv=nn.Conv2d(3, 8, 3, padding=1), fc=nn.Linear(16, 5)),
    "activations": lambda: Net(_activations, conv=nn.Conv2d(4, 4, 1)),
    "dimensions": lambda: Net(_dims, l=nn.Linear(18, 6), l2=nn.Linear(30, 6)),
    "layer-norms": lambda: Net(
        _layer_norms, w=nn.Parameter(torch.zeros(5)), b=nn.Parameter(torch.zeros(5)), conv=nn.Conv2d(5, 5, 1)
    ),
    "dropouts": lambda: Net(_dropouts, conv=nn.Conv2d(4, 4, 1)),
    "broadcasting": lambda: Net(
        _broadcasting, gamma=nn.Parameter(torch.zeros(4, 1, 1)), conv=nn.Conv2d(4, 4, 3, padding=1)
    ),
    "kept-heads": _kept_heads,
    "if-on-a-constant": lambda: Net(lambda m, x: x + m.conv(x), conv=nn.Conv2d(4, 4, 3, padding=1)),
}


@pytest.mark.parametrize("case", list(OP_SPECS))
def test_operations(case):
    check(OP_SPECS[case], OP_REFERENCES[case])


def test_every_operation_and_parameter_is_covered():
    """Every operation of lang.ops runs in a case above (as an operation row of a table), and so does a Parameter."""
    from netspec.lang import OPS

    ran: set[str] = set()
    for text in (*BLOCK_SPECS.values(), *OP_SPECS.values()):
        _, table = netspec.checks(text)
        ran |= {r.layer for r in table.rows if r.node is None and r.is_leaf} | {
            "Parameter" for r in table.rows if r.layer == "Parameter"
        }
    assert ran >= set(OPS) | {"Parameter"}, sorted(set(OPS) - ran)
