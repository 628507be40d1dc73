"""The shape oracle on whole networks: `forward` with functions, reused modules and residual steps, projection
shortcuts, the report's specs at several sizes, torch's attribute names as module names, and in-place layers in a
residual (see test_shapes.py for the oracle itself)."""

from __future__ import annotations

from pathlib import Path

import netspec
import pytest
import torch
from torch import nn

from oracle import WARNING_FILTERS, assert_located, expect_shape_error, one_torch_thread, oracle

ROOT = Path(__file__).resolve().parents[1]

pytestmark = WARNING_FILTERS
_one_torch_thread = pytest.fixture(autouse=True, scope="module")(one_torch_thread)


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
    err = expect_shape_error(text, "twice")
    assert err.loc.line == 2
    c = nn.Conv2d(3, 8, 3)
    with pytest.raises(RuntimeError):
        c(c(torch.zeros(2, 3, 6, 6)))


def test_residual_step_changing_the_shape_is_refused():
    text = "input 3x6x6\nlayers { c Conv2d(8, 3) }\nforward { residual c }\n"
    err = expect_shape_error(text, "residual c")
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
