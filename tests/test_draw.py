"""`netspec draw`: the SVG's text read back (not its pixels), the folding and its expansion, merges as edges, the
page size and font sizes of the specs the docs show, DOT, PNG, the run folder's architecture.svg, exit codes."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pytest
from netspec.api import check
from netspec.cli import main

ROOT = Path(__file__).resolve().parents[1]
BEST = str(ROOT / "specs" / "cifar_best.net")
SVG = "{http://www.w3.org/2000/svg}"
A4 = (8.27, 11.69)

# merges of each kind: a module's concatenation (Fire), a gate (SE's scale * x), a learned parameter's scale and a
# residual sum over the network's named values
GATES = """
network Gates
input 3x8x8
module SE(squeeze) {
    pool AdaptiveAvgPool2d(1)
    fc1  Conv2d(squeeze, 1)
    fc2  Conv2d(in_channels, 1)
    forward(x) {
        scale = sigmoid(fc2(relu(fc1(pool(x)))))
        return scale * x
    }
}
module Fire(s, e) {
    squeeze Conv2d(s, 1)
    e1      Conv2d(e, 1)
    e3      Conv2d(e, 3, padding=1)
    forward(x) {
        y = relu(squeeze(x))
        return cat(relu(e1(y)), relu(e3(y)))
    }
}
layers {
    stem  Conv2d(8, 3, padding=1)
    fire  Fire(4, 8)
    se    SE(4)
    gamma Parameter((16, 1, 1), value=0.5)
    head  Linear(10)
}
forward(x) {
    y = se(fire(stem(x)))
    z = y + gamma * y
    return head(flatten(adaptive_avg_pool2d(z, 1), 1))
}
"""


def run(capsys, *args):
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    return e.value.code, out, err


class Drawing:
    """An SVG as netspec draws it, read back: the text of each group by its id, the boxes in order, the edges."""

    def __init__(self, path: Path):
        self.root = ET.parse(path).getroot()
        self.text = {}
        for g in self.root.iter(f"{SVG}g"):
            t = g.find(f"{SVG}text")
            if g.get("id") and t is not None:
                self.text[g.get("id")] = t.text or ""
        ids = [g.get("id") or "" for g in self.root.iter(f"{SVG}g")]
        self.boxes = [int(i.split("-")[1]) for i in ids if i.startswith("box-")]
        self.edges = {tuple(map(int, i.split("-")[1:])) for i in ids if i.startswith("edge-")}

    def box(self, n: int) -> tuple[str, str, str, str]:
        """(name, kind, arguments, output shape) of box n."""
        return tuple(self.text.get(f"{f}-{n}", "") for f in ("name", "kind", "args", "shape"))

    def find(self, kind: str, name: str = "") -> list[int]:
        return [n for n in self.boxes if self.box(n)[1] == kind and (not name or self.box(n)[0] == name)]

    def inputs(self, n: int) -> set[int]:
        return {s for s, t in self.edges if t == n}

    def marks(self) -> list[str]:
        return [t for i, t in self.text.items() if i.startswith("repeat-")]

    def size(self) -> tuple[float, float]:
        return tuple(float(self.root.get(k).removesuffix("pt")) / 72 for k in ("width", "height"))

    def font_sizes(self) -> list[float]:
        styles = [t.get("style", "") for t in self.root.iter(f"{SVG}text")]
        return [float(re.search(r"font-size: ([\d.]+)px", s).group(1)) for s in styles]


def draw(capsys, tmp_path, spec, *flags, name="d.svg") -> Drawing:
    out = tmp_path / name
    code, stdout, err = run(capsys, "draw", spec, "-o", out, *flags)
    assert code == 0, err
    assert stdout.startswith(f"{out}: ")
    return Drawing(out)


def test_a_box_per_layer_with_its_kind_arguments_and_shape(capsys, tmp_path):
    d = draw(capsys, tmp_path, BEST)
    # 30 rows; conv, batchnorm and relu of cbr("2_2") and cbr("4_2") are folded into those of 2_1 and 4_1
    assert len(d.boxes) == 1 + 30 - 6
    assert d.box(d.boxes[0]) == ("", "input", "", "3x32x32")
    assert d.box(d.boxes[1]) == ("conv1", "Conv2d", "64, k3 s1 p1", "64x32x32")
    assert d.find("MaxPool2d", "pool2") and d.box(d.find("MaxPool2d", "pool2")[0])[2:] == ("k2 s2 p0", "128x16x16")
    assert d.box(d.boxes[-1]) == ("ff5_1", "Linear", "10", "10")
    kinds = Counter(d.box(n)[1] for n in d.boxes)
    assert kinds == {"input": 1, "Conv2d": 6, "BatchNorm2d": 6, "ReLU": 6, "MaxPool2d": 4, "Flatten": 1, "Linear": 1}
    assert not {"conv2_2", "conv4_2"} & {d.box(n)[0] for n in d.boxes}
    assert sorted(d.marks()) == ["× 2", "× 2"]
    # a chain: each box takes the one before it
    assert all(d.inputs(b) == {a} for a, b in zip(d.boxes, d.boxes[1:]))


def test_the_title_holds_the_totals(capsys, tmp_path):
    _, table = check(BEST)
    d = draw(capsys, tmp_path, BEST)
    assert d.text["title-0"] == "CifarNet"
    assert d.text["title-1"] == "input 3x32x32 → output 10"
    assert d.text["title-2"] == f"{table.total_params:,} parameters, {table.total_macs:,} MACs per image"
    assert d.text["title-2"] == "2,441,728 parameters, 285,242,752 MACs per image"


def test_input_and_set_change_the_drawing(capsys, tmp_path):
    d = draw(capsys, tmp_path, BEST, "--input", "3x64x64", "--set", "classes=100")
    assert d.box(d.boxes[1])[3] == "64x64x64"
    assert d.box(d.boxes[-1])[2:] == ("100", "100")


def test_repeated_modules_fold_and_expand_opens_them(capsys, tmp_path):
    spec = ROOT / "examples" / "zoo" / "resnet18.net"
    folded = draw(capsys, tmp_path, spec, name="folded.svg")
    blocks = folded.find("BasicBlock")
    # layer1's two blocks are one box; the first block of each later stage (stride 2) differs from the second
    assert len(blocks) == 7 and folded.marks() == ["× 2"]
    assert folded.box(blocks[0]) == ("0–1", "BasicBlock", "planes=64, stride=1", "64x56x56")
    assert folded.text[f"repeat-{blocks[0]}"] == "× 2"
    assert folded.box(blocks[1])[1:] == ("BasicBlock", "planes=128, stride=2", "128x28x28")
    assert folded.inputs(blocks[1]) == {blocks[0]}
    opened = draw(capsys, tmp_path, spec, "--expand", name="opened.svg")
    assert not opened.marks() and not opened.find("BasicBlock")
    assert len(opened.find("Conv2d")) == 20  # the stem, 8 blocks of two, 3 projections
    headers = [t for i, t in opened.text.items() if i.startswith("head-") and not i.startswith("head-shape")]
    assert sum("BasicBlock" in h for h in headers) == 8


def test_blocks_repeated_in_a_chain_fold_as_one_frame(capsys, tmp_path):
    spec = ROOT / "examples" / "resnet_small.net"
    folded = draw(capsys, tmp_path, spec, name="folded.svg")
    # (Residual, ReLU) x 3 in stage 1, then x 2 in stages 2 and 3 after their downsampling block
    assert sorted(folded.marks()) == ["× 2", "× 2", "× 3"]
    relu = folded.find("ReLU", "stem_relu")[0]
    adds = folded.find("add")
    assert relu in folded.inputs(adds[0])  # the identity of the first Residual
    opened = draw(capsys, tmp_path, spec, "--expand", name="opened.svg")
    assert not opened.marks()
    assert len(opened.find("add")) == 9 and len(opened.find("Conv2d")) == 1 + 9 * 2 + 2


def test_merges_are_edges_from_each_input(capsys, tmp_path):
    spec = tmp_path / "gates.net"
    spec.write_text(GATES)
    d = draw(capsys, tmp_path, spec, "--expand")
    (cat,) = d.find("cat")
    assert {d.box(n)[1] for n in d.inputs(cat)} == {"relu"} and len(d.inputs(cat)) == 2
    squeeze_relu = d.find("relu", "y")[0]
    assert {d.box(n)[0] for n in d.boxes if squeeze_relu in d.inputs(n)} == {"e1", "e3"}
    gate, scale = d.find("mul")
    assert d.inputs(gate) == {d.find("sigmoid", "scale")[0], cat}  # scale * x: x is the Fire's output
    assert d.inputs(scale) == {d.find("Parameter", "gamma")[0], gate}
    assert d.inputs(d.find("add", "z")[0]) == {scale, gate}
    closed = draw(capsys, tmp_path, spec, name="closed.svg")
    assert [closed.box(n)[1:] for n in closed.find("Fire")] == [("Fire", "s=4, e=8", "16x8x8")]
    assert not closed.find("cat") and closed.find("SE")


@pytest.mark.parametrize(
    "spec",
    ["specs/cifar_best.net", "specs/cifar_worst.net", "examples/zoo/resnet50.net", "examples/zoo/densenet121.net"],
)
def test_the_folded_drawing_fits_an_a4_page_with_no_text_under_7pt(capsys, tmp_path, spec):
    d = draw(capsys, tmp_path, ROOT / spec)
    w, h = d.size()
    assert (w <= A4[0] and h <= A4[1]) or (w <= A4[1] and h <= A4[0]), (w, h)
    sizes = d.font_sizes()
    assert sizes and min(sizes) >= 7


def test_text_is_text(capsys, tmp_path):
    d = draw(capsys, tmp_path, BEST)
    assert not list(d.root.iter(f"{SVG}use"))  # glyphs drawn as paths would be <use> of <defs>
    assert "Conv2d" in (tmp_path / "d.svg").read_text()


def test_the_layout_measures_text_as_matplotlib_draws_it():
    # the layout computes every width from the monospaced font's advance; PNG text must be as wide (no hinting)
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from netspec.tools.drawing import FONT, SIZE, text_width

    line = "CNBlock layer_scale_value=1e-06, stochastic… × 3 384x14x14"
    with matplotlib.rc_context({"text.hinting": "none"}):
        fig = Figure(dpi=200)
        FigureCanvasAgg(fig)
        for weight in ("normal", "bold"):
            t = fig.text(0, 0, line, family=[FONT, "monospace"], fontsize=SIZE, fontweight=weight)
            width = t.get_window_extent(fig.canvas.get_renderer()).width / 200
            assert width == pytest.approx(text_width(line), rel=0.01)


def test_png(capsys, tmp_path):
    out = tmp_path / "best.png"
    code, stdout, _ = run(capsys, "draw", BEST, "-o", out)
    assert code == 0 and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "25 boxes, 1 column" in stdout


def test_the_default_file_is_named_after_the_spec(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, stdout, _ = run(capsys, "draw", BEST)
    assert code == 0 and stdout.startswith("cifar_best.svg: 25 boxes") and (tmp_path / "cifar_best.svg").is_file()


def _dot_nodes(text: str) -> tuple[list[str], list[tuple[str, str]]]:
    assert text.startswith('digraph "CifarNet" {') and text.rstrip().endswith("}")
    assert text.count("{") == text.count("}")
    nodes = re.findall(r"^\s*(n\d+) \[label=", text, re.M)
    edges = re.findall(r"^\s*(n\d+) -> (n\d+);$", text, re.M)
    return nodes, edges


def test_dot_source_on_stdout(capsys, tmp_path):
    code, out, _ = run(capsys, "draw", BEST, "--format", "dot")
    assert code == 0
    nodes, edges = _dot_nodes(out)
    assert len(nodes) == len(set(nodes)) == 25 == len(draw(capsys, tmp_path, BEST).boxes)
    assert len(edges) == 24 and {n for e in edges for n in e} <= set(nodes)
    assert out.count("subgraph cluster_") == 2 and out.count('label="× 2"') == 2
    assert 'n1 [label="conv1 Conv2d 64, k3 s1 p1\\n64x32x32"' in out


def test_dot_file_is_rendered_where_dot_is_on_path(capsys, tmp_path, monkeypatch):
    out, cp = tmp_path / "best.dot", shutil.which("cp")
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    code, stdout, _ = run(capsys, "draw", BEST, "-o", out)
    assert code == 0 and _dot_nodes(out.read_text())[0]
    assert "not rendered: no `dot` program on PATH" in stdout and not (tmp_path / "best.svg").exists()
    fake = tmp_path / "bin" / "dot"  # a Graphviz that copies its input, to see how it is called
    fake.parent.mkdir()
    fake.write_text(f'#!/bin/sh\n[ "$1" = -Tsvg ] && [ "$3" = -o ] && exec {cp} "$2" "$4"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", str(fake.parent))
    code, stdout, _ = run(capsys, "draw", BEST, "--format", "dot", "-o", out)
    assert code == 0 and f"rendered to {tmp_path / 'best.svg'} with dot" in stdout
    assert (tmp_path / "best.svg").read_text() == out.read_text()


def test_exit_codes_and_help(capsys, tmp_path):
    bad = tmp_path / "bad.net"
    bad.write_text("network Bad\ninput 3x8x8\nlayers {\n    conv Conv2d(4, kernel_size=3\n}\n")
    code, out, err = run(capsys, "draw", bad, "-o", tmp_path / "bad.svg")
    assert code == 1 and err.startswith(f"{bad}:4:16: error[E002]: this '(' of Conv2d is never closed") and not out
    assert not (tmp_path / "bad.svg").exists()
    for args in (["--no-such-flag"], ["-o", tmp_path / "x.pdf"], ["--format", "png", "-o", tmp_path / "x.svg"],
                 ["--input", "3x8"], ["--set", "classes"], ["--format", "dot", "-o", tmp_path / "x.svg"]):  # fmt: skip
        code, _, err = run(capsys, "draw", BEST, *args)
        assert code == 2 and err.startswith("netspec") and "Traceback" not in err, (args, err)
    code, _, err = run(capsys, "draw", tmp_path / "missing.net")
    assert code == 2 and "missing.net" in err
    code, _, err = run(capsys, "draw", BEST, "-o", tmp_path / "no" / "such" / "folder.svg")
    assert code == 2 and err.startswith("netspec: error: -o ") and "cannot write (No such file or directory)" in err
    code, out, _ = run(capsys, "draw", "--help")
    assert code == 0 and "--expand" in out and "--format [svg|png|dot]" in out and "× N" in out
    code, out, _ = run(capsys, "--help")
    assert "draw" in out


def test_drawing_needs_no_torch(tmp_path):
    probe = (
        "import sys\nfrom netspec.cli import main\n"
        f"try:\n    main(['draw', {BEST!r}, '-o', {str(tmp_path / 'x.svg')!r}])\nexcept SystemExit:\n    pass\n"
        "print('torch' in sys.modules)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True)
    assert proc.stdout.splitlines()[-1] == "False" and (tmp_path / "x.svg").is_file()


# ---- the run folder ---------------------------------------------------------------------------------------------


def test_a_run_folder_holds_its_architecture(tmp_path):
    from trainfixtures import TINY, train_cli

    spec = tmp_path / "tiny.net"
    spec.write_text(TINY)
    out = tmp_path / "run"
    train_cli(spec, out, "--data-dir", tmp_path, "--epochs", "1")
    d = Drawing(out / "architecture.svg")
    kinds = [d.box(n)[1] for n in d.boxes]
    assert kinds == ["input", "Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d", "Flatten", "Linear"]
    assert "![architecture](architecture.svg)" in (out / "report.md").read_text()


def test_a_drawing_that_fails_is_a_warning_not_the_end_of_the_run(tmp_path, monkeypatch):
    from netspec.training.report import Log, report_markdown, write_architecture

    def broken(*args, **kwargs):
        raise RuntimeError("no fonts today")

    monkeypatch.setattr("netspec.tools.draw.draw_network", broken)
    net, table = check(BEST)
    log = Log(quiet=True, main=True)
    write_architecture(tmp_path, net, table, log)
    assert log.lines == ["warning: architecture.svg was not drawn (RuntimeError: no fonts today)"]
    assert not (tmp_path / "architecture.svg").exists()
    results = {"final_train_loss": 1.0, "final_test_loss": 1.0, "test_accuracy": 0.5, "correct": 1, "total": 2}
    assert "architecture" not in report_markdown({}, {**results, "per_class_accuracy": {}})
