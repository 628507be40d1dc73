"""`netspec fmt`: one canonical layout, and three properties over every spec of the project and the fuzz corpus.

1. Idempotent: fmt(fmt(x)) == fmt(x).
2. The meaning is kept: the compiled module (print(model)), the shape table (names, shapes, parameters, MACs) and the
   train settings are those of the original (modules built on torch's meta device: nothing is allocated).
3. Every comment is kept, with its text, in order, where it was: between the same code (spaces and commas aside:
   all fmt changes), at the end of a line of code or on a line of its own as before.

Then the layout rules one by one (exact outputs), and the command (`--check`, `--diff`, exit codes, no torch).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import netspec
import pytest
from hypothesis import HealthCheck, given, settings
from netspec.cli import main
from netspec.errors import SpecError
from netspec.lang import parse
from netspec.tools.fmt import format_text

from strategies import stacks
from strategies_flows import flows
from test_fuzz import grammar_strategy

ROOT = Path(__file__).resolve().parents[1]
SPECS = sorted([*ROOT.glob("specs/*.net"), *(ROOT / "examples").rglob("*.net")])
FUZZ = settings(
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

_COMMENT_OR_STRING = re.compile(r"'[^'\n]*'|\"[^\"\n]*\"|#[^\n]*")


def comment_places(text: str) -> list[tuple[str, bool, str]]:
    """Each comment as (the code since the previous comment, without spaces and commas; whether it has a line of its
    own; its text). Read with a regular expression, not with fmt's own reading of the source."""
    text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    out, at = [], 0
    for m in _COMMENT_OR_STRING.finditer(text):
        if m.group().startswith("#"):
            own = not text[text.rfind("\n", 0, m.start()) + 1 : m.start()].strip()
            out.append((re.sub(r"[\s,]", "", text[at : m.start()]), own, m.group().rstrip()))
            at = m.end()
    return out


def meaning(text: str, input=None):
    """What a spec compiles to: the printed module, the shape table's rows and the train settings; or its error."""
    import torch

    try:
        with torch.device("meta"):
            compiled = netspec.loads(text, input=input)
    except SpecError as e:
        return "error", e.code
    table = compiled.shapes
    rows = [(r.path, r.layer, r.depth, r.in_shape, r.out_shape, r.params, r.macs, r.step) for r in table.rows]
    return str(compiled.module), rows, table.input, table.output, compiled.train.describe()


def assert_formats_well(text: str, input=None, compile: bool = True) -> str:
    out = format_text(text)
    assert format_text(out) == out, f"not idempotent:\n{out}"
    assert comment_places(out) == comment_places(text), f"comments moved:\n{text}\n---\n{out}"
    if compile:
        assert meaning(out, input) == meaning(text, input), f"meaning changed:\n{text}\n---\n{out}"
    return out


# ---- the properties, over the project's specs and the fuzz corpus -----------------------------------------------


@pytest.mark.parametrize("path", SPECS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_spec_of_the_project(path):
    text = path.read_text(encoding="utf-8")
    assert comment_places(text), "every spec of the project has comments"
    assert_formats_well(text)


def test_the_projects_specs_are_formatted():
    """What `.ci/run` checks with `netspec fmt --check specs examples` (the fixtures under tests/ keep their layout:
    it is what they test)."""
    unformatted = [str(p.relative_to(ROOT)) for p in SPECS if format_text(p.read_bytes()) != p.read_text("utf-8")]
    assert not unformatted, f"run: netspec fmt {' '.join(unformatted)}"


@settings(FUZZ, max_examples=20)
@given(case=stacks())
def test_generated_stacks(case):
    assert_formats_well(case.text, case.load_input)


@settings(FUZZ, max_examples=30)
@given(case=flows())
def test_generated_run_orders(case):
    assert_formats_well(case.text)


@settings(FUZZ, max_examples=60)
@given(text=grammar_strategy())
def test_texts_of_the_grammar(text):
    """Texts drawn from the grammar (with comments anywhere): a text that does not parse is refused with the parser's
    own error; one that parses formats well (its meaning: the shape table or the error of `netspec check`)."""
    try:
        parse(text)
    except SpecError as e:
        with pytest.raises(SpecError) as refused:
            format_text(text)
        assert refused.value.render() == e.render()
        return
    out = assert_formats_well(text, compile=False)
    assert _checked(out) == _checked(text)


def _checked(text: str):
    try:
        _, table = netspec.checks(text)
    except SpecError as e:
        return e.code
    except netspec.errors.UsageError:
        return "usage"
    return [(r.path, r.layer, r.out_shape, r.params, r.macs) for r in table.rows]


_NAME = r"(?:[A-Za-z_]\w*|\{[\w+\-*]+\})(?:\w+|\{[\w+\-*]+\})*"
_TOKEN = re.compile(
    rf"'[^'\n]*'|\"[^\"\n]*\"|#[^\n]*|\s+|{_NAME}|\d+x\d+x\d+|\d+\.\d+(?:[eE][+-]?\d+)?|\d+|\.\.|//|[=!<>]=|."
)


@pytest.mark.parametrize("where", ["end of line", "own line", "blank lines"])
@pytest.mark.parametrize("path", [ROOT / "specs" / "cifar_worst.net", ROOT / "examples" / "zoo" / "densenet121.net"])
def test_comments_and_blank_lines_between_any_two_tokens(path, where):
    """A comment (or blank lines) after every third token of a real spec: each stays where it was."""
    out, n = [], 0
    for m in _TOKEN.finditer(path.read_text(encoding="utf-8")):
        out.append(m.group())
        if m.group()[0] not in "# \n" and len(out) % 3 == 0:
            n += 1
            out.append({"end of line": f"  # c{n}\n", "own line": f"\n# o{n}\n", "blank lines": "\n\n\n"}[where])
    assert_formats_well("".join(out))


# ---- the layout rules ----------------------------------------------------------------------------------------------

RULES = {
    "spacing": (
        "input 3x8x8\nw=2*( 3+1 )//2\nlayers{\nconv1 Conv2d( 16 ,kernel_size = 3,padding=(1,1) )\nbn BatchNorm2d( )}",
        "input 3x8x8\nw = 2 * (3 + 1) // 2\n\nlayers {\n    conv1  Conv2d(16, kernel_size=3, padding=(1, 1))\n"
        "    bn     BatchNorm2d()\n}\n",
    ),
    "indentation and nesting": (
        "layers {\nres Residual {\n  Conv2d(8, 3, padding=1)\n      ReLU()\n} shortcut {\nConv2d(8, 1)\n}\n}",
        "layers {\n    res Residual {\n        Conv2d(8, 3, padding=1)\n        ReLU()\n    } shortcut {\n"
        "        Conv2d(8, 1)\n    }\n}\n",
    ),
    "aligned groups, split by blank lines and by another kind": (
        "a = 1\nlong_name = 2\n\nb = 3\nlayers {\nconv1 Conv2d(8, 3)\nbatchnorm1 BatchNorm2d()\nReLU()\n"
        "fc Linear(2)\n}\ntrain {\ndata cifar10\nbatch_size 64\n}",
        "a         = 1\nlong_name = 2\n\nb = 3\n\nlayers {\n    conv1       Conv2d(8, 3)\n"
        "    batchnorm1  BatchNorm2d()\n    ReLU()\n    fc  Linear(2)\n}\n\ntrain {\n    data        cifar10\n"
        "    batch_size  64\n}\n",
    ),
    "a comment line does not split a group; a one-line Sequential and kept join it": (
        "module M() {\nconv Conv2d(8, 1)\n# the rest\nkept 8x4x4 spare Conv2d(8, 1)\nblock Sequential { ReLU() }\n"
        "forward(x) { return block(conv(x)) }\n}",
        "module M() {\n    conv              Conv2d(8, 1)\n    # the rest\n    kept 8x4x4 spare  Conv2d(8, 1)\n"
        "    block             Sequential { ReLU() }\n    forward(x) { return block(conv(x)) }\n}\n",
    ),
    "blank lines: at most one, none inside braces, one around top-level sections": (
        "\n\nnetwork N\n\n\n\ninput 3x8x8\nlayers {\n\n\n  a ReLU()\n\n\n\n  b ReLU()\n\n}\n# train\ntrain {\n"
        "epochs 2\n}\n\n\n",
        "network N\n\ninput 3x8x8\n\nlayers {\n    a  ReLU()\n\n    b  ReLU()\n}\n\n# train\ntrain {\n"
        "    epochs  2\n}\n",
    ),
    "a long call: its arguments after the bracket, as many on a line as fit": (
        "layers {\n    first_convolution Conv2d(out_channels_of_the_stem * 2, kernel_size=(3, 3), stride=(2, 2), "
        "padding=(1, 1), bias=false, padding_mode='zeros')\n}",
        "layers {\n    first_convolution  Conv2d(\n        out_channels_of_the_stem * 2, kernel_size=(3, 3), "
        "stride=(2, 2), padding=(1, 1), bias=false,\n        padding_mode='zeros'\n    )\n}\n",
    ),
    "a long list breaks, its calls stay whole": (
        "train {\n    augment [RandomCrop(padding=4), RandomHorizontalFlip(), ColorJitter(brightness=0.4, "
        "contrast=0.4, saturation=0.4)]\n}",
        "train {\n    augment  [\n        RandomCrop(padding=4), RandomHorizontalFlip(),\n"
        "        ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4)\n    ]\n}\n",
    ),
    "a hand-wrapped call that fits is joined": (
        "layers {\n    Conv2d(8,\n           kernel_size=3,\n           padding=1)\n}",
        "layers {\n    Conv2d(8, kernel_size=3, padding=1)\n}\n",
    ),
    "trailing commas go, but a tuple of one keeps its own": (
        "m = (0.5,)\nlayers { Conv2d(8, 3,)  AdaptiveAvgPool2d((1, 1,)) }",
        "m = (0.5,)\n\nlayers { Conv2d(8, 3)  AdaptiveAvgPool2d((1, 1)) }\n",
    ),
    "one-line bodies stay while they fit; a too long one is laid out": (
        "layers {\n    s Sequential { Linear(8)  ReLU() }\n    repeat i in 1..2 { r{i} ReLU() }\n"
        "    t Sequential { Conv2d(16, 3, padding=1)  BatchNorm2d()  ReLU()  Conv2d(16, 3, padding=1)  BatchNorm2d() }\n"
        "    u Sequential {\n        ReLU()\n    }\n}",
        "layers {\n    s  Sequential { Linear(8)  ReLU() }\n    repeat i in 1..2 { r{i} ReLU() }\n    t Sequential {\n"
        "        Conv2d(16, 3, padding=1)\n        BatchNorm2d()\n        ReLU()\n        Conv2d(16, 3, padding=1)\n"
        "        BatchNorm2d()\n    }\n    u Sequential {\n        ReLU()\n    }\n}\n",
    ),
    "statements that share a line keep sharing it; forward steps keep one or two spaces": (
        "a = 1 b = 2\nlayers { x ReLU() y ReLU() }\nforward {\n    x   relu y\n    residual x\n}",
        "a = 1  b = 2\n\nlayers { x ReLU()  y ReLU() }\n\nforward {\n    x  relu y\n    residual x\n}\n",
    ),
    "if and else": (
        "layers { if 1 > 0 { a ReLU() } else { b ReLU() } }\nforward(x) {\nif 2 > 1 {\nreturn relu(x)\n} else if 1 > 2 "
        "{\nreturn x\n}\nreturn a(x)\n}",
        "layers { if 1 > 0 { a ReLU() } else { b ReLU() } }\n\nforward(x) {\n    if 2 > 1 {\n        return relu(x)\n"
        "    } else if 1 > 2 {\n        return x\n    }\n    return a(x)\n}\n",
    ),
    "a table: uses of one block, numbers to the right": (
        "layers {\n    stage(1, 16, 1, 'a')\n    stage(6, 160, 3, 'bcd')\n    stage(6, 24, 2, 'e')\n}",
        "layers {\n    stage(1,  16, 1, 'a')\n    stage(6, 160, 3, 'bcd')\n    stage(6,  24, 2, 'e')\n}\n",
    ),
    "two uses are no table": (
        'layers {\n    cbr("1", 64)\n    cbr("2_0", 128)\n}',
        'layers {\n    cbr("1", 64)\n    cbr("2_0", 128)\n}\n',
    ),
    "a hyphenated word of a setting stays whole; a subtraction has its spaces": (
        "n = 5\nlayers {\nLinear(n-1)\n}\ntrain {\ndata tiny-imagenet-200\n}",
        "n = 5\n\nlayers {\n    Linear(n - 1)\n}\n\ntrain {\n    data  tiny-imagenet-200\n}\n",
    ),
    "comments: at the end of their line (aligned), or on their own at the level of what follows": (
        "input 3x8x8 # the input\nclasses = 10      # the classes\n  # the layers\nlayers {\n"
        "conv Conv2d(8, 1) # a conv\n      # a note\n   fc Linear(classes)\n  # the end of layers\n}",
        "input 3x8x8   # the input\nclasses = 10  # the classes\n\n# the layers\nlayers {\n"
        "    conv  Conv2d(8, 1)  # a conv\n    # a note\n    fc    Linear(classes)\n    # the end of layers\n}\n",
    ),
    "a comment inside a call breaks it where the comment is": (
        "layers { Conv2d(8, # the width\n kernel_size=3) }",
        "layers {\n    Conv2d(\n        8,  # the width\n        kernel_size=3\n    )\n}\n",
    ),
    "a comment after a closing brace keeps its line, and `else` goes on the next": (
        "layers {\n    if 1 > 0 {\n        a ReLU()\n    } # positive\n    else {\n        b ReLU()\n    }\n}",
        "layers {\n    if 1 > 0 {\n        a  ReLU()\n    }  # positive\n    else {\n        b  ReLU()\n    }\n}\n",
    ),
    "a keyword as a name (torchvision's `block`)": (
        "module M() {\nblock Sequential { ReLU() }\nforward(x) { return block(x) }\n}\nlayers { m M() }",
        "module M() {\n    block  Sequential { ReLU() }\n    forward(x) { return block(x) }\n}\n\nlayers { m M() }\n",
    ),
    "CRLF, a byte-order mark and tabs": (
        "\ufeffinput 3x8x8\r\nlayers {\r\n\tfc\tLinear(3)\t# x\r\n}\r\n",
        "input 3x8x8\n\nlayers {\n    fc  Linear(3)  # x\n}\n",
    ),
    "no code": ("\n\n# only\n\n\n# comments\n\n", "# only\n\n# comments\n"),
    "nothing": ("\n \n", ""),
}


@pytest.mark.parametrize("rule", RULES)
def test_layout_rule(rule):
    text, want = RULES[rule]
    got = format_text(text)
    assert got == want, f"\n{got}"
    assert format_text(got) == got
    assert comment_places(got) == comment_places(text)


def test_a_line_over_100_columns_is_broken_where_it_can_be():
    for path in SPECS:
        out = format_text(path.read_text(encoding="utf-8"))
        for line in out.splitlines():
            code = line.split("  #")[0] if not line.lstrip().startswith("#") else ""
            assert len(code) <= 100, f"{path.name}: {line}"
    # an expression without brackets has nowhere to break: it stays whole
    long = "x = " + " + ".join(["a_long_constant_name"] * 6)
    assert format_text(long + "\n") == long + "\n"


def test_the_example_of_docs_tools_md():
    doc = (ROOT / "docs" / "tools.md").read_text(encoding="utf-8")
    before, after = (re.search(f"<!-- fmt: {w} -->\n```\n(.*?)```\n", doc, re.S).group(1) for w in ("before", "after"))
    assert format_text(before) == after
    assert_formats_well(before)


def test_the_example_in_the_docstring():
    import doctest

    import netspec.tools.fmt

    assert doctest.testmod(netspec.tools.fmt).failed == 0


def test_a_spec_that_does_not_parse_is_refused_with_its_located_error():
    with pytest.raises(SpecError) as e:
        format_text("layers {\n    conv1: Conv2d(16)\n}\n", "bad.net")
    assert e.value.render().startswith("bad.net:2:10: error[E001]: unexpected character ':'")


# ---- the command ---------------------------------------------------------------------------------------------------

UGLY = "input 3x8x8\nlayers{\nfc Linear( 3 )}\n"
PRETTY = "input 3x8x8\n\nlayers {\n    fc  Linear(3)\n}\n"


def run(capsys, *args):
    with pytest.raises(SystemExit) as e:
        main(["fmt", *map(str, args)])
    out, err = capsys.readouterr()
    return e.value.code, out, err


def test_fmt_formats_in_place_and_names_what_it_changed(tmp_path, capsys):
    ugly, pretty = tmp_path / "ugly.net", tmp_path / "pretty.net"
    ugly.write_text(UGLY)
    pretty.write_text(PRETTY)
    assert run(capsys, ugly, pretty) == (0, f"reformatted {ugly}\n", "")
    assert ugly.read_text() == PRETTY and pretty.read_text() == PRETTY
    assert run(capsys, ugly, pretty) == (0, "", "")


def test_check_changes_nothing_and_exits_1_with_the_files_that_would_change(tmp_path, capsys):
    ugly, pretty = tmp_path / "ugly.net", tmp_path / "pretty.net"
    ugly.write_text(UGLY)
    pretty.write_text(PRETTY)
    assert run(capsys, "--check", pretty) == (0, "", "")
    code, out, err = run(capsys, "--check", ugly, pretty)
    assert (code, out, err) == (1, f"would reformat {ugly}\n", "netspec fmt: 1 file would be reformatted\n")
    assert ugly.read_text() == UGLY


def test_diff_prints_a_unified_diff_and_changes_nothing(tmp_path, capsys):
    ugly = tmp_path / "ugly.net"
    ugly.write_text(UGLY)
    code, out, err = run(capsys, "--diff", ugly)
    assert code == 0 and err == "" and ugly.read_text() == UGLY
    assert out.startswith(f"--- {ugly}\n+++ {ugly} (formatted)\n@@ ")
    assert "-layers{\n-fc Linear( 3 )}\n+\n+layers {\n+    fc  Linear(3)\n+}\n" in out
    assert run(capsys, "--diff", "--check", ugly)[0] == 1


def test_folders_give_every_spec_under_them(tmp_path, capsys):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "deep.net").write_text(UGLY)
    (tmp_path / "a" / "top.net").write_text(UGLY)
    (tmp_path / "a" / "notes.txt").write_text(UGLY)
    code, out, _ = run(capsys, "--check", tmp_path / "a")
    assert code == 1 and out.splitlines() == [f"would reformat {tmp_path / 'a' / p}" for p in ("b/deep.net", "top.net")]


def test_a_spec_that_does_not_parse_is_reported_and_left_as_it_is(tmp_path, capsys):
    bad, ugly = tmp_path / "bad.net", tmp_path / "ugly.net"
    bad.write_text("layers {\n    conv1: Conv2d(16)\n}\n")
    ugly.write_text(UGLY)
    code, out, err = run(capsys, bad, ugly)
    assert code == 1 and out == f"reformatted {ugly}\n"
    assert err.startswith(f"{bad}:2:10: error[E001]: unexpected character ':'\n  |\n2 |     conv1: Conv2d(16)\n")
    assert bad.read_text() == "layers {\n    conv1: Conv2d(16)\n}\n" and ugly.read_text() == PRETTY


def test_a_file_that_cannot_be_written_is_an_error_not_a_traceback(tmp_path, capsys, monkeypatch):
    import netspec.tools.fmt

    def refuse(path, text):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(netspec.tools.fmt, "_write", refuse)
    ugly = tmp_path / "ugly.net"
    ugly.write_text(UGLY)
    code, out, err = run(capsys, ugly)
    assert (code, out) == (1, "")
    assert err == f"netspec: error: {ugly}: cannot write the formatted spec (Permission denied)\n"


def test_a_missing_file_is_a_usage_error(tmp_path, capsys):
    code, out, err = run(capsys, tmp_path / "nothing.net")
    assert (code, out) == (2, "") and err == f"netspec: error: {tmp_path / 'nothing.net'}: no such file or folder\n"


def test_fmt_imports_no_torch():
    probe = (
        "import sys\nfrom netspec.cli import main\ntry:\n    main(['fmt', '--check', 'specs'])\nexcept SystemExit:\n"
        "    pass\nprint(' '.join(sorted(sys.modules)))\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=True)
    assert "netspec.tools.fmt" in proc.stdout.split()
    assert not [m for m in proc.stdout.split() if m == "torch" or m.startswith("torch.")]
