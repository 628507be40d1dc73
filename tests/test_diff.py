"""`netspec diff A.net B.net`: layers aligned by name then by content, argument, shape, parameter and MAC changes,
train settings, diff(1)'s exit codes (0 same, 1 different, 2 trouble), and no torch."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import netspec
import pytest
from netspec.cli import main

ROOT = Path(__file__).resolve().parents[1]
BEST = str(ROOT / "specs" / "cifar_best.net")
WORST = str(ROOT / "specs" / "cifar_worst.net")
RESNET18 = str(ROOT / "examples" / "zoo" / "resnet18.net")
RESNET50 = str(ROOT / "examples" / "zoo" / "resnet50.net")

BASE = """\
network Net
input 3x32x32
layers {
    conv1   Conv2d(16, 3, padding=1)
    bn1     BatchNorm2d()
    relu1   ReLU()
    conv2   Conv2d(32, 3, padding=1)
    bn2     BatchNorm2d()
    relu2   ReLU()
    pool    MaxPool2d(2)
    flatten Flatten()
    fc      Linear(10)
}
train {
    epochs    5
    optimizer SGD(lr=0.1, momentum=0.9)
    schedule  CosineAnnealingLR()
}
"""


def run(capsys, *args):
    with pytest.raises(SystemExit) as e:
        main(["diff", *map(str, args)])
    out, err = capsys.readouterr()
    return e.value.code, out, err


def spec(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def body(out):
    """The lines between the two headers and the total, the column header left out."""
    lines = out.splitlines()
    assert lines[0].startswith("--- ") and lines[1].startswith("+++ ")
    rest = [ln for ln in lines[2:] if not ln.startswith("total:")]
    return [ln.rstrip() for ln in rest if ln.split()[:2] != ["name", "layer"]]


def totals(out):
    return next(ln for ln in out.splitlines() if ln.startswith("total:"))


def cells(line):
    """A line's columns: the first keeps its mark and indentation (`+   2`)."""
    mark, rest = line[:2], line[2:]
    indent = len(rest) - len(rest.lstrip())
    first, *others = re.split(r"\s{2,}", rest.strip())
    return [(mark + " " * indent + first).strip(), *others]


# ---- the same network ----------------------------------------------------------------------------------------


def test_a_spec_against_itself_is_the_same_network(capsys):
    code, out, err = run(capsys, BEST, BEST)
    assert code == 0 and err == ""
    assert out.splitlines() == [
        f"--- {BEST}: CifarNet, input 3x32x32, output 10",
        f"+++ {BEST}: CifarNet, input 3x32x32, output 10",
        "same network and train settings",
        "total: params 2,441,728 (unchanged), MACs 285,242,752 (unchanged)",
    ]


WRITTEN_DIFFERENTLY = """\
# a block, a repeat, constants, a forward written out, and another layout
network Net
input 3x32x32
width = 16
classes = 10

block cbr(id, out) {
    conv{id} Conv2d(out, kernel_size=(3, 3), padding=(1, 1))   # (3, 3) is PyTorch's own form of 3
    bn{id}   BatchNorm2d()
    relu{id} ReLU()
}

layers {
    repeat i in 1..2 { cbr(i, width * i) }
    pool    MaxPool2d(kernel_size=2)
    flatten Flatten()
    fc      Linear(out_features=classes, bias=true)
}

forward {
    repeat i in 1..2 { conv{i} bn{i} relu{i} }
    pool flatten fc
}

train { epochs 5  optimizer SGD(0.1, 0.9)  schedule CosineAnnealingLR(T_max=5) }
"""


def test_specs_written_differently_that_build_the_same_network_are_the_same(tmp_path, capsys):
    a, b = spec(tmp_path, "a.net", BASE), spec(tmp_path, "b.net", WRITTEN_DIFFERENTLY)
    code, out, _ = run(capsys, a, b)
    assert code == 0, out
    assert body(out) == ["same network and train settings"]
    # the network's name is the class print(model) shows
    code, out, _ = run(capsys, a, spec(tmp_path, "n.net", BASE.replace("network Net", "network Other")))
    assert code == 1 and body(out) == ["~ network Net -> Other", "no layer differs"]
    # a module (a class of its own) is not the same network as its layers inline
    module = BASE.replace("layers {", "module Stem() {\n    c Conv2d(16, 3, padding=1)\n}\nlayers {")
    module = module.replace("conv1   Conv2d(16, 3, padding=1)", "conv1   Stem()")
    code, out, _ = run(capsys, a, spec(tmp_path, "m.net", module))
    assert code == 1
    assert [cells(ln)[:2] for ln in body(out)] == [["- conv1", "Conv2d(in_channels=3, out_channels=16, "
                                                     "kernel_size=3, padding=1)"], ["+ conv1", "Stem"]]  # fmt: skip


def test_the_same_network_at_another_input_differs(capsys):
    code, out, _ = run(capsys, BEST, BEST, "--input-b", "3x64x64")
    assert code == 1
    lines = body(out)
    assert lines[0] == "~ input 3x32x32 -> 3x64x64"
    assert ["~ ff5_1", "Linear(in_features 256 -> 1024)", "10", "+7,680", "+7,680"] in [cells(ln) for ln in lines]
    assert lines[-2:] == ["train:", "~ augment  [RandomCrop(size (32, 32) -> (64, 64)), RandomHorizontalFlip()]"]
    code, out, _ = run(capsys, BEST, BEST, "--input", "3x64x64")  # both at 64x64: the same
    assert code == 0


# ---- changes, aligned ------------------------------------------------------------------------------------------


def test_a_changed_argument(tmp_path, capsys):
    a = spec(tmp_path, "a.net", BASE)
    b = spec(tmp_path, "b.net", BASE.replace("conv2   Conv2d(32, 3, padding=1)", "conv2 Conv2d(32, 5, padding=2)"))
    code, out, _ = run(capsys, a, b)
    assert code == 1
    assert [cells(ln) for ln in body(out)] == [
        ["~ conv2", "Conv2d(kernel_size 3 -> 5, padding 1 -> 2)", "32x32x32", "+8,192", "+8,388,608"]
    ]
    # the numbers are `netspec check`'s: 16 x 32 x (25 - 9) weights, at each of 32 x 32 positions
    assert 16 * 32 * 16 == 8_192 and 8_192 * 32 * 32 == 8_388_608
    assert totals(out) == "total: params 87,114 -> 95,306 (+8,192), MACs 5,292,138 -> 13,680,746 (+8,388,608)"


def test_added_and_removed_layers_are_aligned_by_position(tmp_path, capsys):
    seq = BASE.replace(
        "    conv2   Conv2d(32, 3, padding=1)\n    bn2     BatchNorm2d()\n    relu2   ReLU()\n",
        "    stage2 Sequential { Conv2d(32, 3, padding=1)  ReLU()  Conv2d(32, 3, padding=1) }\n",
    )
    a = spec(tmp_path, "a.net", seq)
    # B: a BatchNorm2d inserted into the anonymous Sequential (its later children renumbered), bn1 removed,
    # conv1 renamed
    b_text = seq.replace("Conv2d(32, 3, padding=1)  ReLU()", "Conv2d(32, 3, padding=1)  BatchNorm2d()  ReLU()")
    b_text = b_text.replace("    bn1     BatchNorm2d()\n", "").replace("conv1 ", "stem ")
    code, out, _ = run(capsys, a, spec(tmp_path, "b.net", b_text))
    assert code == 1
    assert [cells(ln) for ln in body(out)] == [
        ["~ conv1 -> stem", "Conv2d", "16x32x32"],
        ["- bn1", "BatchNorm2d(num_features=16)", "16x32x32", "-32", "-32"],
        ["stage2", "Sequential", "32x32x32", "(+64)", "(+64)"],
        ["+   1", "BatchNorm2d(num_features=32)", "32x32x32", "+64", "+64"],
    ]


def test_changed_shapes_propagate(tmp_path, capsys):
    a = spec(tmp_path, "a.net", BASE)
    b = spec(tmp_path, "b.net", BASE.replace("Conv2d(16, 3", "Conv2d(24, 3"))
    code, out, _ = run(capsys, a, b)
    assert code == 1
    assert [cells(ln) for ln in body(out)] == [
        ["~ conv1", "Conv2d(out_channels 16 -> 24)", "16x32x32 -> 24x32x32", "+224", "+229,376"],
        ["~ bn1", "BatchNorm2d(num_features 16 -> 24)", "16x32x32 -> 24x32x32", "+16", "+16"],
        ["~ relu1", "ReLU", "16x32x32 -> 24x32x32"],
        ["~ conv2", "Conv2d(in_channels 16 -> 24)", "32x32x32", "+2,304", "+2,359,296"],
    ]


def test_param_and_mac_deltas_are_netspec_checks(capsys):
    _, ta = netspec.check(BEST)
    _, tb = netspec.check(WORST)
    code, out, _ = run(capsys, BEST, WORST)
    assert code == 1
    pa, pb, ma, mb = ta.total_params, tb.total_params, ta.total_macs, tb.total_macs
    assert (pa, pb, ma, mb) == (2_441_728, 7_712_118, 285_242_752, 542_681_646)
    assert totals(out) == f"total: params {pa:,} -> {pb:,} ({pb - pa:+,}), MACs {ma:,} -> {mb:,} ({mb - ma:+,})"
    # every parameter is in one line: the leaves changed, added or removed, and the added subtrees
    lines = [cells(ln) for ln in body(out)]
    top = [c for c in lines if not c[0][2:].startswith(" ")]
    deltas = [int(c[3].strip("()").replace(",", "")) for c in top if len(c) > 3]
    assert sum(deltas) == pb - pa
    assert ["~ ff5_1 -> ff_1", "Linear(in_features 256 -> 512, out_features 10 -> 512, bias false -> true)", "10 -> 512",
            "+260,096", "+260,096"] in lines  # fmt: skip
    assert [
        "+ resblock1_1",
        "x + Sequential { Conv2d, ReLU, Conv2d }(x)",
        "10x34x34",
        "(+1,820)",
        "(+2,103,920)",
    ] in lines


def test_a_forward_that_feeds_its_steps_otherwise(tmp_path, capsys):
    two = """network Two
input 3x8x8
layers { c1 Conv2d(4, 3, padding=1)  c2 Conv2d(4, 3, padding=1)  pool AdaptiveAvgPool2d(1) }
forward(x) {
    a = c1(x)
    b = c2(x)
    y = cat(a, b)
    return flatten(pool(y), 1)
}
"""
    a = spec(tmp_path, "a.net", two)
    renamed = two.replace("a = c1(x)", "first = c1(x)").replace("cat(a, b)", "cat(first, b)")
    assert run(capsys, a, spec(tmp_path, "r.net", renamed))[0] == 0  # values' names are the spec's own
    code, out, _ = run(capsys, a, spec(tmp_path, "b.net", two.replace("cat(a, b)", "cat(b, a)")))
    assert code == 1 and body(out) == ["~ forward(x): cat() takes other inputs", "no layer differs"]
    code, out, _ = run(capsys, a, spec(tmp_path, "c.net", two.replace("cat(a, b)", "cat(a, b, dim=2)")))
    assert code == 1
    assert [cells(ln) for ln in body(out)] == [
        ["~ y", "cat(dim 1 -> 2)", "8x8x8 -> 4x16x8"],
        ["~ pool", "AdaptiveAvgPool2d", "8x1x1 -> 4x1x1"],
        ["~ flatten", "flatten()", "8 -> 4"],
    ]


def test_a_modules_forward_that_feeds_its_steps_otherwise(tmp_path, capsys):
    text = """network M
input 4x8x8
module Blk(w) {
    a Conv2d(w, 3, padding=1)
    b Conv2d(w, 3, padding=1)
    forward(x) {
        y = a(x)
        z = b(x)
        return y + z
    }
}
layers { blk Blk(4)  pool AdaptiveAvgPool2d(1)  flat Flatten() }
"""
    a = spec(tmp_path, "a.net", text)
    code, out, _ = run(capsys, a, spec(tmp_path, "b.net", text.replace("z = b(x)", "z = b(y)")))
    assert code == 1 and [cells(ln) for ln in body(out)] == [
        ["~ blk", "Blk; forward(x): b takes other inputs", "4x8x8"]
    ]


def test_train_section_differences(tmp_path, capsys):
    a = spec(tmp_path, "a.net", BASE)
    train = """train {
    data       CIFAR-10
    epochs     8
    batch_size 64
    optimizer  SGD(lr=0.05, momentum=0.9)
    augment    [RandomCrop(padding=4)]
}
"""
    b = spec(tmp_path, "b.net", BASE[: BASE.index("train {")] + train)
    code, out, _ = run(capsys, a, b)
    assert code == 1
    assert body(out) == [
        "no layer differs",
        "train:",
        "~ data        shapes -> cifar10",
        "~ epochs      5 -> 8",
        "~ batch_size  128 -> 64",
        "~ optimizer   SGD(lr 0.1 -> 0.05)",
        "- schedule    CosineAnnealingLR(T_max=5)",
        "~ augment     [] -> [RandomCrop(size=(32, 32), padding=4)]",
    ]
    b = spec(tmp_path, "c.net", BASE.replace("SGD(lr=0.1, momentum=0.9)", "AdamW(lr=0.002)"))
    code, out, _ = run(capsys, a, b)
    assert body(out)[-1] == "~ optimizer  SGD(lr=0.1, momentum=0.9) -> AdamW(lr=0.002)"


# ---- the zoo ---------------------------------------------------------------------------------------------------


def test_resnet18_against_resnet34_by_set_b(capsys):
    code, out, _ = run(capsys, RESNET18, RESNET18, "--set-b", "blocks=(3, 4, 6, 3)")
    assert code == 1
    lines = [cells(ln) for ln in body(out)]
    assert [c[:2] for c in lines] == [
        ["layer1", "Sequential"],
        ["+   2", "BasicBlock(planes=64, stride=1)"],
        ["layer2", "Sequential"],
        ["+   2", "BasicBlock(planes=128, stride=1)"],
        ["+   3", "BasicBlock(planes=128, stride=1)"],
        ["layer3", "Sequential"],
        *[[f"+   {i}", "BasicBlock(planes=256, stride=1)"] for i in range(2, 6)],
        ["layer4", "Sequential"],
        ["+   2", "BasicBlock(planes=512, stride=1)"],
    ]
    assert totals(out) == (
        "total: params 11,689,512 -> 21,797,672 (+10,108,160), MACs 1,814,083,944 -> 3,663,779,432 (+1,849,695,488)"
    )
    # --set applies to both sides: the same network
    assert run(capsys, RESNET18, RESNET18, "--set", "blocks=(3, 4, 6, 3)")[0] == 0


def test_resnet18_against_resnet50_files(capsys):
    code, out, _ = run(capsys, RESNET18, RESNET50)
    assert code == 1
    lines = [cells(ln) for ln in body(out)]
    assert lines[:2] == [
        ["~ layer1", "Sequential", "64x56x56 -> 256x56x56", "(+67,840)", "(+205,523,200)"],
        ["-   0", "BasicBlock(planes=64, stride=1)", "64x56x56", "(-73,984)", "(-231,211,264)"],
    ]
    assert lines[-1] == ["~ fc", "Linear(in_features 512 -> 2048)", "1000", "+1,536,000", "+1,536,000"]
    _, t18 = netspec.check(RESNET18)
    _, t50 = netspec.check(RESNET50)
    assert f"params {t18.total_params:,} -> {t50.total_params:,}" in totals(out)


def test_the_examples_of_the_docs_are_real_output(capsys):
    text = (ROOT / "docs" / "tools.md").read_text()
    section = text[text.index("## diff") : text.index("## export")]
    examples = re.findall(r"```\n\$ (netspec diff [^\n]*)\n(.*?)```", section, re.S)
    assert len(examples) == 3
    for command, shown in examples:
        code, out, _ = run(capsys, *shlex.split(command)[2:])
        assert code == 1 and out == shown, command


# ---- trouble, usage, colour, no torch ------------------------------------------------------------------------


def test_a_spec_error_is_trouble_exit_2(tmp_path, capsys):
    bad = spec(tmp_path, "bad.net", BASE.replace("Linear(10)", "Linear(0)"))
    code, out, err = run(capsys, BEST, bad)
    assert code == 2 and out == ""
    assert err.startswith(f"{bad}:") and "error[" in err and "Linear(0)" in err
    code, _, err = run(capsys, BEST, BEST, "--set", "classes=0")
    assert code == 2 and "error[" in err


@pytest.mark.parametrize(
    "args, message",
    [
        ((BEST,), "Missing argument 'B.net'"),
        ((BEST, "no-such.net"), "no-such.net"),
        ((BEST, BEST, "--input", "3x32"), "expected CxHxW"),
        ((BEST, BEST, "--set", "classes"), "expected NAME=VALUE"),
        ((BEST, BEST, "--colour"), "No such option"),
    ],
)
def test_bad_usage_exits_2(capsys, args, message):
    code, out, err = run(capsys, *args)
    assert code == 2 and out == ""
    assert message in err and len(err.strip().splitlines()) == 1, err


def test_help(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0
    assert out.startswith("Usage: netspec diff [OPTIONS] A.net B.net")
    assert "0 the same network and settings, 1 they differ, 2 trouble" in out
    for option in ("--input-a", "--set-b", "--color / --no-color"):
        assert option in out


def test_colour_only_when_asked_or_on_a_terminal(tmp_path, capsys):
    a = spec(tmp_path, "a.net", BASE)
    b = spec(tmp_path, "b.net", BASE.replace("    bn1     BatchNorm2d()\n", ""))
    code, plain, _ = run(capsys, a, b)  # captured: not a terminal
    assert code == 1 and "\x1b[" not in plain
    code, coloured, _ = run(capsys, a, b, "--color")
    assert "\x1b[31m- bn1" in coloured
    assert re.sub(r"\x1b\[[0-9;]*m", "", coloured) == plain


def test_diff_imports_no_torch(tmp_path):
    code = (
        "import sys\nfrom netspec.cli import main\ntry:\n"
        f"    main(['diff', {BEST!r}, {WORST!r}])\nexcept SystemExit as e:\n"
        "    print('exit', e.code, 'torch' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.stdout.splitlines()[-1] == "exit 1 False", proc.stderr
