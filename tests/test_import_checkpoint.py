"""`netspec import CHECKPOINT`: the spec behind a run's weights, with what the run changed written in.

Tiny runs are trained with the real CLI (and the API), then their checkpoints imported: the recovered spec, compiled
with no flags, must take the checkpoint's weights with `strict=True` and compute what the run's network computes.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import netspec
import pytest
import torch
from netspec.build import build
from netspec.cli import main
from netspec.errors import UsageError
from netspec.importer import recover_spec
from netspec.lang import load_spec
from netspec.shapes import infer
from netspec.training.evaluate import evaluate

from datafixtures import make_mnist
from trainfixtures import TINY, crafted_checkpoint, train_cli

FAST = ["--epochs", "1", "--train-limit", "64", "--test-limit", "20"]

# TINY with a constant for the width, and 1000 classes where the data set has 10
WIDE = TINY.replace("classes = 10", "classes = 1000\nwidth = 4  # channels of conv").replace(
    "Conv2d(4,", "Conv2d(width,"
)

# no input line: the run gives --input; a tuple constant written over three lines, with a comment inside
TWO_CONVS = """network Two
widths = (4,
    6,  # the second conv
)
classes = 10
layers {
    conv1 Conv2d(widths[0], kernel_size=3, padding=1)
    relu1 ReLU()
    conv2 Conv2d(widths[1], kernel_size=3, padding=1)
    pool  AdaptiveAvgPool2d(1)
    flat  Flatten()
    fc    Linear(classes)  # the classifier
}
train {
    data shapes
    batch_size 32
    optimizer SGD(lr=0.05)
}
"""

# the last layer given a literal: run.py adapts only a `classes` constant, so this runs on 10 classes as written
LITERAL = TINY.replace("classes = 10\n", "").replace("Linear(classes)", "Linear(10)")


def run(capsys, *args) -> tuple[int, str, str]:
    """`netspec ARGS` in-process: (exit code, stdout, stderr)."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in args])
        raise SystemExit(0)
    out, err = capsys.readouterr()
    return e.value.code or 0, out, err


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Three finished one-epoch runs, each changing its spec in other ways (their run folders, by name)."""
    root = tmp_path_factory.mktemp("ckpt")
    (root / "wide.net").write_text(WIDE)
    (root / "two.net").write_text(TWO_CONVS)
    make_mnist(root, "mnist", n_train=20, n_test=10)
    # --set of a constant, --input other than the spec's, and 10 classes from the data for the spec's 1000
    train_cli(root / "wide.net", root / "wide", *FAST, "--set", "width=6", "--input", "3x20x20")
    # a 1-channel data set for a 3-channel spec, an input given only by --input, a tuple constant --set
    mnist = ["--data", "mnist", "--data-dir", root, "--no-download"]
    train_cli(root / "two.net", root / "two", *FAST, *mnist, "--input", "3x12x12", "--set", "widths=(5, 3)")
    # spec text through the API: nothing overridden
    netspec.trains(LITERAL, out=str(root / "literal"), quiet=True, precision="fp32", epochs=1, train_limit=64,
                   test_limit=20)  # fmt: skip
    return {"wide": root / "wide", "two": root / "two", "literal": root / "literal"}


def _imported(capsys, tmp_path: Path, run_dir: Path) -> Path:
    rec = tmp_path / "rec.net"
    code, out, err = run(capsys, "import", run_dir / "checkpoint.pt", "-o", rec)
    assert code == 0, err
    assert out == "" and err.startswith(f"wrote {rec} (network ")
    return rec


def _split(text: str) -> tuple[str, str]:
    """The header comment (its wrapped lines joined), and the text after it."""
    lines = text.split("\n")
    n = 1 + next(i for i, ln in enumerate(lines[1:]) if not ln.startswith("#   "))
    return " ".join(ln[1:].strip() for ln in lines[:n]), "\n".join(lines[n:])


def _run_network(ckpt: dict) -> torch.nn.Module:
    """The network the run trained, built as `netspec evaluate` builds it: the stored spec, input and constants."""
    net = load_spec(ckpt["spec"], input=tuple(ckpt["input"]), constants=json.loads(ckpt["constants"]))
    model = build(net, infer(net))
    model.load_state_dict(ckpt["model"])
    return model.eval()


@pytest.mark.parametrize(
    "name,header,lines",
    [
        (
            "wide",
            "--set width=6, classes = 10 (from the data), input 3x20x20 (--input)",
            ["input 3x20x20", "classes = 10", "width = 6  # channels of conv"],
        ),
        (
            "two",
            "--set widths=(5, 3), input 1x12x12 (--input 3x12x12, 1 channel from the data)",
            [
                "network Two",
                "input 1x12x12",
                "widths = (5, 3)",
                "classes = 10",
                "    fc    Linear(classes)  # the classifier",
            ],
        ),
        ("literal", "the spec as written (nothing was overridden)", ["input 3x16x16", "    fc    Linear(10)"]),
    ],
)
def test_the_recovered_spec_loads_the_weights_strictly_and_computes_the_same(runs, name, header, lines, tmp_path,
                                                                             capsys):  # fmt: skip
    ckpt_path = runs[name] / "checkpoint.pt"
    rec = _imported(capsys, tmp_path, runs[name])
    text = rec.read_text()
    assert _split(text)[0] == f"recovered from {ckpt_path}: {header}"
    assert all(ln in text.splitlines() for ln in lines), text
    ckpt = torch.load(ckpt_path, weights_only=True)
    module = netspec.load(rec).module.eval()  # no flags
    module.load_state_dict(ckpt["model"], strict=True)
    x = torch.rand(4, *ckpt["input"])
    with torch.no_grad():
        assert torch.equal(module(x), _run_network(ckpt)(x))


def test_the_rest_of_the_spec_is_kept_as_written(runs, tmp_path, capsys):
    ckpt = torch.load(runs["wide"] / "checkpoint.pt", weights_only=True)
    text = _imported(capsys, tmp_path, runs["wide"]).read_text()
    body = _split(text)[1]
    expected = ckpt["spec"].replace("input 3x16x16", "input 3x20x20").replace("classes = 1000", "classes = 10")
    assert body == expected.replace("width = 4", "width = 6")
    two = _imported(capsys, tmp_path, runs["two"]).read_text()
    assert "# the second conv" not in two  # a comment inside the value replaced goes with it
    assert _split(two)[1] == TWO_CONVS.replace("network Two\n", "network Two\ninput 1x12x12\n").replace(
        "(4,\n    6,  # the second conv\n)", "(5, 3)"
    )


def test_a_run_folder_and_standard_output(runs, tmp_path, capsys):
    code, from_folder, _ = run(capsys, "import", runs["two"])
    assert code == 0
    assert from_folder == _imported(capsys, tmp_path, runs["two"]).read_text()


def test_evaluate_of_the_recovered_spec_gives_the_runs_numbers(runs, tmp_path, capsys):
    # the checkpoint rewritten to hold the recovered spec with no overrides: `netspec evaluate` tests it as the run
    ckpt = torch.load(runs["wide"] / "checkpoint.pt", weights_only=True)
    rec = _imported(capsys, tmp_path, runs["wide"]).read_text()
    torch.save({**ckpt, "spec": rec, "constants": "{}"}, tmp_path / "rec.pt")
    ours = evaluate(tmp_path / "rec.pt")
    theirs = evaluate(runs["wide"])
    assert (ours["test_loss"], ours["correct"]) == (theirs["test_loss"], theirs["correct"])


# ---- recover_spec on text alone ----------------------------------------------------------------------------------

SPEC = """input 3x8x8  # the size
a = (1 + 2) * 3
b = 3 * (1 +
  2)
c = [1,
  2]
s = 'x'
p = 1
layers { flat Flatten()  fc Linear(a) }
"""


def _recovered(text: str, **constants) -> str:
    return recover_spec(text, "x.net", ran=(3, 8, 8), constants=constants, origin="ck.pt").spec.split("\n", 1)[1]


@pytest.mark.parametrize(
    "constants,old,new",
    [
        ({"a": 4}, "a = (1 + 2) * 3", "a = 4"),
        ({"b": 7}, "b = 3 * (1 +\n  2)", "b = 7"),
        ({"c": [3, 4]}, "c = [1,\n  2]", "c = [3, 4]"),  # a list stays a list where the spec has one
        ({"s": "y'"}, "s = 'x'", 's = "y\'"'),
        ({"p": 1.0}, "p = 1", "p = 1.0"),  # not the spec's 1: a float
    ],
)
def test_values_are_written_over_their_expression_alone(constants, old, new):
    assert _recovered(SPEC, **constants) == SPEC.replace(old, new)


def test_a_value_equal_to_the_specs_keeps_its_expression():
    assert _recovered(SPEC, a=9, c=[1, 2]) == SPEC
    r = recover_spec(SPEC, "x.net", ran=(3, 8, 8), constants={"a": 9}, origin="ck.pt")
    assert r.written == () and r.spec.startswith("# recovered from ck.pt: the spec as written")


def test_an_input_line_is_added_after_the_network_line():
    text = "network N  # ours\nlayers { flat Flatten()  fc Linear(10) }\n"
    r = recover_spec(text, None, ran=(1, 4, 4), constants={}, origin="ck.pt", requested=(3, 4, 4))
    assert r.spec.splitlines()[1:3] == ["network N  # ours", "input 1x4x4"]
    assert r.written == ("input 1x4x4 (--input 3x4x4, 1 channel from the data)",)
    bare = recover_spec("layers { fc Linear(10) }\n", None, ran=(5, 1, 1), constants={}, origin="ck.pt")
    assert bare.spec.splitlines()[1:] == ["input 5x1x1", "layers { fc Linear(10) }"]


@pytest.mark.parametrize(
    "constants,message",
    [
        ({"nosuch": 1}, "ck.pt: the run set the constant 'nosuch', which its spec does not define"),
        ({"s": "a'\""}, "ck.pt: cannot write the run's s into its spec (line 7): the string"),
        ({"a": float("nan")}, "ck.pt: cannot write the run's a into its spec (line 2): nan cannot be written"),
        ({"a": 9.0}, "ck.pt: the spec with the run's values written in does not hold: argument 'out_features'"),
    ],
)
def test_what_cannot_be_written_back_is_an_error(constants, message):
    with pytest.raises(UsageError) as e:
        recover_spec(SPEC, "x.net", ran=(3, 8, 8), constants=constants, origin="ck.pt")
    assert str(e.value).startswith(message), str(e.value)


# ---- what is not a checkpoint, or not one to trust ---------------------------------------------------------------


def test_a_crafted_pickle_is_refused_and_runs_nothing(tmp_path, capsys):
    bad, marker = crafted_checkpoint(tmp_path)
    for target in (bad, tmp_path):  # the file, and the folder holding it
        code, out, err = run(capsys, "import", target)
        assert code == 1 and out == "" and "Traceback" not in err
        assert "not a netspec checkpoint, or not a safe one" in err and "nothing in it was run" in err
    assert not marker.exists()


def test_files_that_are_not_checkpoints(runs, tmp_path, capsys):
    weights = tmp_path / "weights.pt"
    torch.save({"w": torch.zeros(2)}, weights)  # a torch file, but not a netspec checkpoint
    archive = tmp_path / "a.pt"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("x", "y")
    for path, message in (
        (weights, f"netspec: error: {weights}: not a netspec checkpoint\n"),
        (archive, f"netspec: error: {archive}: not a netspec checkpoint, or not a safe one"),
    ):
        code, out, err = run(capsys, "import", path)
        assert code == 1 and out == "" and err.startswith(message), err
    code, _, err = run(capsys, "import", tmp_path)
    assert code == 2 and "is a directory without a checkpoint.pt" in err
    code, _, err = run(capsys, "import", runs["wide"], "--input", "3x8x8")
    assert code == 2 and err == (
        "netspec: error: --input: not for a checkpoint, whose spec is the one its run trained "
        "(edit the recovered spec instead)\n"
    )


def test_a_checkpoint_on_standard_input_asks_for_its_path(runs, capsys, monkeypatch):
    import io
    import sys

    data = (runs["literal"] / "checkpoint.pt").read_bytes()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    code, _, err = run(capsys, "import", "-")
    assert code == 2 and "a checkpoint on standard input; give its path instead" in err


def test_a_checkpoint_whose_weights_or_constants_do_not_fit_is_refused(runs, tmp_path, capsys):
    ckpt = torch.load(runs["wide"] / "checkpoint.pt", weights_only=True)
    weights = dict(ckpt["model"])
    weights.pop("fc.bias")
    torch.save({**ckpt, "model": weights}, tmp_path / "w.pt")
    code, out, err = run(capsys, "import", tmp_path / "w.pt")
    assert code == 1 and out == "" and "its weights do not fit the network built from its spec" in err
    assert "Missing key(s) in state_dict" in err
    torch.save({**ckpt, "constants": json.dumps({"depth": 3})}, tmp_path / "c.pt")
    code, out, err = run(capsys, "import", tmp_path / "c.pt")
    assert code == 2 and "the run set the constant 'depth', which its spec does not define" in err
    torch.save({k: v for k, v in ckpt.items() if k != "spec"}, tmp_path / "s.pt")
    code, out, err = run(capsys, "import", tmp_path / "s.pt")
    assert code == 1 and "a netspec checkpoint without the spec, input or constants it ran with" in err
