"""Golden error messages: every `tests/specs/errors/NAME.net` fails `netspec check` with exactly `NAME.err` on stderr.

Each .net file is one mistake a person makes; its first line says which. The .err file is the whole of stderr:
`FILE:LINE:COL: error[CODE]: MESSAGE`, the source line, a caret under the offending token, and `= help: ...` where a fix
is known. Paths are relative to the repository root, so the text is the same on every machine.

To rewrite the .err files after a deliberate change to a message, run
    NETSPEC_UPDATE_GOLDEN=1 python -m pytest tests/test_errors.py
and read the diff before committing it.
"""

from __future__ import annotations

import os
import random
import re
from pathlib import Path

import pytest
from netspec.cli import main
from netspec.errors import SpecError, UsageError
from netspec.lang import load_spec

ROOT = Path(__file__).resolve().parents[1]
ERRORS = ROOT / "tests" / "specs" / "errors"
CASES = sorted(p.stem for p in ERRORS.glob("*.net"))
UPDATE = os.environ.get("NETSPEC_UPDATE_GOLDEN") == "1"


def run_cli(args: list[str], capsys, monkeypatch) -> tuple[int, str, str]:
    """Run `netspec ARGS` in-process from the repository root: (exit code, stdout, stderr)."""
    monkeypatch.chdir(ROOT)
    with pytest.raises(SystemExit) as exc:
        main(args)
    out, err = capsys.readouterr()
    return exc.value.code, out, err


@pytest.mark.parametrize("name", CASES)
def test_error_message_is_golden(name, capsys, monkeypatch):
    path = f"tests/specs/errors/{name}.net"
    code, out, err = run_cli(["check", path], capsys, monkeypatch)
    golden = ERRORS / f"{name}.err"
    if UPDATE:
        golden.write_bytes(err.encode("utf-8"))
    assert err == golden.read_bytes().decode("utf-8")
    assert code == 1
    assert out == ""
    assert "Traceback" not in err
    assert err.startswith(f"{path}:") and re.search(r": error\[E\d{3}\]: ", err.splitlines()[0])


def test_every_case_has_its_golden_file_and_the_other_way_round():
    assert {p.stem for p in ERRORS.glob("*.err")} == set(CASES)
    assert len(CASES) >= 25


def test_every_case_states_its_mistake_on_its_first_line():
    for name in CASES:
        first = (ERRORS / f"{name}.net").read_bytes().split(b"\n")[0]
        assert first.startswith(b"# ") or name in ("empty_file",), name


# the same message on purpose: a file of comments is as empty as an empty file; CRLF and tabs change nothing
_TWINS = {
    "comments_only": "empty_file",
    "crlf_unknown_layer": "unknown_layer",
    "tabs_unknown_argument": "unknown_argument",
}


def test_cases_are_distinct_mistakes():
    # no two golden files report the same message and hint: each case tests something of its own
    heads = {}
    for name in CASES:
        if name in _TWINS:
            continue
        lines = (ERRORS / f"{name}.err").read_text(encoding="utf-8").splitlines()
        key = repr(
            (
                re.split(r": error\[E\d{3}\]: ", lines[0], maxsplit=1)[1],
                [ln for ln in lines if ln.startswith("  = help: ")],
            )
        )
        assert key not in heads, f"{name} and {heads.get(key)} report the same error"
        heads[key] = name


def test_errors_point_at_a_token_with_a_caret():
    # every error with a source line underlines something on it
    for name in CASES:
        lines = (ERRORS / f"{name}.err").read_text(encoding="utf-8").splitlines()
        if len(lines) >= 4 and lines[1].strip() == "|":
            source, caret = lines[2], lines[3]
            assert "^" in caret, name
            bar = source.index("| ") + 2
            assert caret.index("^") >= bar, name
            # the caret is under text, never past the end of the line (but the end of the file)
            assert caret.index("^") - bar <= len(source) - bar, name


def test_crlf_file_reports_the_same_place_as_the_lf_file(capsys, monkeypatch):
    crlf = (ERRORS / "crlf_unknown_layer.net").read_bytes()
    assert b"\r\n" in crlf, "git turned the CRLF fixture into LF: see tests/specs/errors/.gitattributes"
    _, _, err_crlf = run_cli(["check", "tests/specs/errors/crlf_unknown_layer.net"], capsys, monkeypatch)
    _, _, err_lf = run_cli(["check", "tests/specs/errors/unknown_layer.net"], capsys, monkeypatch)
    assert err_crlf.replace("crlf_unknown_layer", "unknown_layer") == err_lf
    assert "\r" not in err_crlf


def test_tabs_keep_the_caret_under_the_token():
    text = (ERRORS / "tabs_unknown_argument.err").read_text(encoding="utf-8").splitlines()
    source, caret = text[2], text[3]
    start = caret.index("^")
    assert source[start : start + len("kernal_size")] == "kernal_size"
    assert caret.count("^") == len("kernal_size")


# ---- a '{' never closed: indentation picks the brace --------------------------------------------------------------

_HEAD = "network Tiny\ninput 3x32x32\n"
_TAIL = "    flat Flatten()\n    fc Linear(10)\n"


@pytest.mark.parametrize(
    "body,where,message,hint",
    [
        # a '}' at column 1 closed the repeat: the repeat's '}' is the one missing, before the first line back at its indent
        (
            "layers {\n    repeat i in 1..3 {\n        c{i} Conv2d(16, 3, padding=1)\n"
            + _TAIL
            + "}\ntrain {\n    epochs 5\n}\n",
            (4, 22),
            "this '{' of `repeat` is never closed",
            "add the missing '}' before line 6",
        ),
        (
            "layers {\n" + _TAIL + "}\nforward {\n    flat\n    fc\ntrain {\n    epochs 5\n}\n",
            (7, 9),
            "this '{' of `forward` is never closed",
            "add the missing '}' before line 10",
        ),
        (
            "train {\n    epochs 5\nlayers {\n" + _TAIL + "}\n",
            (3, 7),
            "this '{' of `train` is never closed",
            "add the missing '}' before line 5",
        ),
        (
            "block b(c) {\n    conv Conv2d(c, 3)\n\nlayers {\n    b(16)\n" + _TAIL + "}\n",
            (3, 12),
            "this '{' of block b is never closed",
            "add the missing '}' before line 6",
        ),
        # both still open at `classes = 10`: the innermost one indented at least as much as that line
        (
            "layers {\n    seq Sequential {\n        ReLU()\n" + _TAIL + "\nclasses = 10\n",
            (4, 20),
            "this '{' of `Sequential` is never closed",
            "add the missing '}' before line 6",
        ),
        # at the end of the file too, when a '}' lined up with an outer brace
        (
            "layers {\n    seq Sequential {\n        ReLU()\n" + _TAIL + "}\n",
            (4, 20),
            "unexpected end of file: this '{' of `Sequential` is never closed",
            "add the missing '}' before line 6",
        ),
        # `train` indented inside layers, or a body without indentation: indentation says nothing, the message is as before
        (
            "layers {\n" + _TAIL + "    train {\n        epochs 5\n    }\n}\n",
            (6, 5),
            "unexpected keyword 'train'",
            None,
        ),
        ("layers {\nflat Flatten()\nfc Linear(10)\ntrain {\nepochs 5\n}\n", (6, 1), "unexpected keyword 'train'", None),
    ],
)
def test_a_brace_never_closed_is_found_by_indentation(body, where, message, hint):
    with pytest.raises(SpecError) as info:
        load_spec(_HEAD + body, "x.net")
    e = info.value
    assert ((e.loc.line, e.loc.column), e.message) == (where, message)
    if hint is not None:
        assert e.hint == hint


# ---- usage errors: one line, exit 2 ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args,message",
    [
        (
            ["check", "specs/cifar_best.net", "--set", "clases=100"],
            "netspec: error: --set clases: the spec defines no constant 'clases' (did you mean 'classes'?)\n",
        ),
        (
            ["check", "specs/cifar_best.net", "--set", "classes"],
            "netspec: error: --set 'classes': expected NAME=VALUE, e.g. --set classes=100\n",
        ),
        (
            ["check", "specs/cifar_best.net", "--input", "3x32"],
            "netspec: error: --input '3x32': expected CxHxW, e.g. 3x32x32\n",
        ),
        (
            ["check", "tests/specs/errors/no_such_file.net"],
            "netspec: error: tests/specs/errors/no_such_file.net: no such file\n",
        ),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(args, message, capsys, monkeypatch):
    code, out, err = run_cli(args, capsys, monkeypatch)
    assert (code, out, err) == (2, "", message)


# ---- no traceback, whatever the text -------------------------------------------------------------------------------

_PIECES = [
    "(",
    ")",
    "{",
    "}",
    "[",
    "]",
    ",",
    "=",
    "..",
    "//",
    "/",
    "*",
    "-",
    "%",
    "'x'",
    "1",
    "0",
    "-1",
    "3.5",
    "1e9",
    "i",
    "conv{i}",
    "{i}",
    "repeat i in 1..3 {",
    "residual",
    "Sequential {",
    "Residual {",
    "shortcut {",
    "None",
    "true",
    "Conv2d(",
    "Linear(",
    "ReLU()",
    "block b(x=1) {",
    "b()",
    "layers {",
    "forward {",
    "train {",
    "input 3x8x8",
    "\n",
    "#",
    ".",
    "classes",
    "relu",
    "flatten",
    "(None, 2)",
    "[1, 2]",
    "()",
    "99999999999999999999",
    "SGD(",
    "augment",
    "RandomCrop(",
    "data",
    "schedule",
    "CosineAnnealingLR()",
    "\t",
    "\r",
    "\ufeff",
    "\u00e9",
    "\x00",
    "_x",
    "training",
    "{s}_{i}",
    "kernel_size=",
    "padding='same'",
]


def test_mangled_specs_raise_spec_errors_only():
    """Random edits of real specs: each either loads or raises SpecError/UsageError; nothing else escapes."""
    texts = [p.read_text() for p in sorted((ROOT / "specs").glob("*.net")) + sorted((ROOT / "examples").glob("*.net"))]
    rng = random.Random(0)
    for _ in range(300):
        text = rng.choice(texts)
        for _ in range(rng.randint(1, 3)):
            pos = rng.randrange(len(text) + 1)
            if rng.random() < 0.4:
                text = text[:pos] + text[pos + rng.randint(1, 12) :]
            else:
                text = text[:pos] + rng.choice(_PIECES) + text[pos:]
        try:
            load_spec(text, "mangled.net")
        except SpecError as e:
            assert e.loc is not None and e.filename == "mangled.net"
            assert e.render().startswith("mangled.net:")
        except UsageError:  # pragma: no cover - load_spec raises it only for --set and --input
            pass
