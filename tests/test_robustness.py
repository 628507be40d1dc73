"""Robustness and safety, checked the way a user meets them: through `netspec ...` (`netspec.cli.main`).

- every bad spec gets a located error (`FILE:LINE:COL: error[CODE]: ...`, exit 1), nothing else, and in under a second;
- nothing in a spec, a checkpoint or a data file runs code;
- absurd sizes are refused before anything is allocated;
- bad usage is one line and exit 2;
- bad data is a clear error naming the file, never a traceback.

Tests marked xfail(strict=True) pin down bugs found here and reported (the reason names the file and line); they
turn into failures, to be unmarked, once the bug is fixed.
"""

from __future__ import annotations

import gzip
import os
import pickle
import random
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from netspec.cli import main

from datafixtures import cifar_pickle, make_cifar10, make_image_folder, make_mnist

ROOT = Path(__file__).resolve().parents[1]
BEST = ROOT / "specs" / "cifar_best.net"
HEAD = "network T\ninput 3x32x32\n"
TAIL = "    flat  Flatten()\n    fc    Linear(10)\n"
TINY = "network Tiny\ninput 3x16x16\nclasses = 10\nlayers {\n    flat  Flatten()\n    fc    Linear(classes)\n}\n"
TRAIN_QUICK = ["--train-limit", "32", "--test-limit", "16", "--epochs", "1", "--quiet", "--no-download"]


def run(capsys, *args) -> tuple[int, str, str]:
    """`netspec ARGS` in-process: (exit code, stdout, stderr)."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    return e.value.code, out, err


def timed(capsys, *args, tries: int = 3) -> tuple[int, str, str, float]:
    """Like `run`, with the fastest wall time of up to `tries` runs (the machine is shared: one slow run is noise)."""
    best = float("inf")
    for _ in range(tries):
        t = time.perf_counter()
        result = run(capsys, *args)
        best = min(best, time.perf_counter() - t)
        if best < 0.5:
            break
    return (*result, best)


def assert_located(code: int, out: str, err: str, path: Path | str) -> re.Match:
    """Exit 1, nothing on stdout, and stderr a rendered spec error whose first line is `PATH:LINE:COL: error[CODE]: `."""
    assert "Traceback" not in err, err
    assert code == 1, err
    assert out == ""
    first = err.splitlines()[0] if err else ""
    m = re.match(rf"^{re.escape(str(path))}:(\d+):(\d+): error\[E\d{{3}}\]: \S", first)
    assert m, first
    return m


def assert_one_line(code: int, out: str, err: str, expect: int = 2) -> str:
    assert "Traceback" not in err, err
    assert code == expect, err
    assert out == ""
    lines = err.strip("\n").splitlines()
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture(scope="module", autouse=True)
def warm_up():
    """Import and compile what the first call would (lark's parser, pydantic models), so timings measure the work."""
    for args in (["check", str(BEST)], ["compile", str(BEST)]):
        try:
            main(args)
        except SystemExit:
            pass


# ---------------------------------------------------------------------------------------------------------------
# every bad spec: a located error, exit 1, under a second
# ---------------------------------------------------------------------------------------------------------------

_rng = random.Random(1)
LONG_ARG_NAME = "kernel_size_" + "x" * 86  # ~100 characters a keyword argument

BAD_SPECS: dict[str, bytes] = {
    "empty": b"",
    "comments_only": b"# nothing here\n# network T\n",
    "whitespace_only": b" \n\t\n\r\n",
    "binary_garbage": bytes(_rng.randrange(256) for _ in range(4096)),
    "nul_bytes": b"network T\ninput 3x32x32\x00\x00\nlayers { fc Linear(10) }\n",
    "invalid_utf8": b"network T\ninput 3x32x32\nlayers {\n    fc Linear(10)  # \xff\xfe\n}\n",
    "utf16": "network T\ninput 3x32x32\n".encode("utf-16"),
    "long_name_line": (HEAD + "layers {\n    " + "a" * 100_000 + "  Conv2D(16)\n" + TAIL + "}\n").encode(),
    "long_argument_list_line": (
        HEAD
        + "layers {\n    flat  Flatten()\n    fc    Linear(10, "
        + ", ".join(f"{LONG_ARG_NAME}{i:04d}=1" for i in range(1000))
        + ")\n}\n"
    ).encode(),
    "long_positional_list_line": (
        HEAD + "layers {\n    flat  Flatten()\n    fc    Linear(" + ", ".join(["'" + "x" * 95 + "'"] * 1000) + ")\n}\n"
    ).encode(),
    "long_string_line": (
        HEAD + "layers {\n    flat  Flatten()\n    fc    Linear(10, bias='" + "x" * 100_000 + "')\n}\n"
    ).encode(),
    "sequential_500_deep": (
        HEAD + "layers {\n" + "    s Sequential {\n" * 500 + TAIL + "    }\n" * 500 + "}\n"
    ).encode(),
    "anonymous_sequential_500_deep": (
        HEAD + "layers {\n" + "Sequential {\n" * 500 + "Linear(10)\n" + "}\n" * 500 + "}\n"
    ).encode(),
    "parentheses_10000_deep": (
        HEAD + "layers {\n    flat  Flatten()\n    fc    Linear(" + "(" * 10_000 + "0" + ")" * 10_000 + ")\n}\n"
    ).encode(),
    "parentheses_10000_unclosed": (HEAD + "width = " + "(" * 10_000 + "1\nlayers {\n" + TAIL + "}\n").encode(),
    "blocks_500_deep": (
        HEAD
        + "".join(f"block b{k}() {{ b{k + 1}() }}\n" for k in range(500))
        + "block b500() { r ReLU() }\nlayers {\n    b0()\n"
        + TAIL
        + "}\n"
    ).encode(),
    "repeat_a_trillion_times": (
        HEAD + "n = 1000000000000\nlayers {\n    repeat i in 1..n {\n        r{i} ReLU()\n    }\n" + TAIL + "}\n"
    ).encode(),
    "unknown_layer": (HEAD + "layers {\n    conv  Convolution2d(16, kernel_size=3)\n" + TAIL + "}\n").encode(),
    "unknown_argument": (HEAD + "layers {\n    conv  Conv2d(16, kernel=3)\n" + TAIL + "}\n").encode(),
    "unknown_keyword_of_flatten": (HEAD + "layers {\n    flat  Flatten(start=1)\n    fc    Linear(10)\n}\n").encode(),
    "wrong_type_string": (HEAD + "layers {\n    conv  Conv2d('16', kernel_size=3)\n" + TAIL + "}\n").encode(),
    "wrong_type_tuple": (HEAD + "layers {\n    flat  Flatten()\n    fc    Linear((10, 10))\n}\n").encode(),
    "wrong_type_bool": (HEAD + "layers {\n    flat  Flatten()\n    fc    Linear(10, bias='no')\n}\n").encode(),
    "negative_size": (HEAD + "layers {\n    flat  Flatten()\n    fc    Linear(-10)\n}\n").encode(),
    "zero_size": (HEAD + "layers {\n    conv  Conv2d(0, kernel_size=3)\n" + TAIL + "}\n").encode(),
    "zero_stride": (HEAD + "layers {\n    conv  Conv2d(8, kernel_size=3, stride=0)\n" + TAIL + "}\n").encode(),
    "negative_dropout": (
        HEAD + "layers {\n    flat  Flatten()\n    drop  Dropout(-0.1)\n    fc  Linear(10)\n}\n"
    ).encode(),
    "zero_input": b"network T\ninput 3x0x32\nlayers {\n    flat  Flatten()\n    fc    Linear(10)\n}\n",
    "cyclic_constants": (
        HEAD + "a = b + 1\nb = c * 2\nc = a\nlayers {\n    flat  Flatten()\n    fc  Linear(a)\n}\n"
    ).encode(),
    "self_referencing_constant": (HEAD + "a = a\nlayers {\n    flat  Flatten()\n    fc  Linear(a)\n}\n").encode(),
    "undefined_constant": (HEAD + "layers {\n    flat  Flatten()\n    fc    Linear(num_classes)\n}\n").encode(),
    "undefined_in_template": (HEAD + "layers {\n    conv{k}  Conv2d(8, kernel_size=3)\n" + TAIL + "}\n").encode(),
    "duplicate_layer_names": (HEAD + "layers {\n    fc  Flatten()\n    fc  Linear(10)\n}\n").encode(),
    "duplicate_names_in_sequential": (
        HEAD + "layers {\n    s Sequential {\n        r ReLU()\n        r ReLU()\n    }\n" + TAIL + "}\n"
    ).encode(),
    "duplicate_block": (
        HEAD + "block b() { r ReLU() }\nblock b() { s ReLU() }\nlayers {\n    b()\n" + TAIL + "}\n"
    ).encode(),
    "shape_linear_on_image": (HEAD + "layers {\n    fc  Linear(10)\n}\n").encode(),
    "shape_kernel_too_large": (HEAD + "layers {\n    conv  Conv2d(8, kernel_size=33)\n" + TAIL + "}\n").encode(),
    "shape_pool_to_nothing": (
        b"network T\ninput 3x4x4\nlayers {\n    p1 MaxPool2d(2)\n    p2 MaxPool2d(2)\n"
        b"    p3 MaxPool2d(2)\n    flat Flatten()\n    fc Linear(10)\n}\n"
    ),
    "shape_batchnorm_after_flatten": (
        HEAD + "layers {\n    flat  Flatten()\n    bn  BatchNorm2d()\n    fc  Linear(10)\n}\n"
    ).encode(),
    "forward_unknown_step": (HEAD + "layers {\n" + TAIL + "}\nforward {\n    flat softmax fc\n}\n").encode(),
    "train_unknown_setting": (HEAD + "layers {\n" + TAIL + "}\ntrain {\n    epoch 3\n}\n").encode(),
    "train_negative_lr": (HEAD + "layers {\n" + TAIL + "}\ntrain {\n    optimizer SGD(lr=-0.1)\n}\n").encode(),
}


@pytest.mark.parametrize("name", sorted(BAD_SPECS))
def test_bad_spec_is_a_located_error_in_under_a_second(name, tmp_path, capsys):
    spec = tmp_path / f"{name}.net"
    spec.write_bytes(BAD_SPECS[name])
    code, out, err, seconds = timed(capsys, "check", spec)
    m = assert_located(code, out, err, spec)
    lines = BAD_SPECS[name].count(b"\n") + 1
    assert 1 <= int(m.group(1)) <= lines, err
    assert seconds < 1.0, f"{name}: {seconds:.2f} s"


def test_truncated_specs_are_located_errors(tmp_path, capsys):
    """Every prefix of a real spec, cut at ~30 places: a complete spec (exit 0) or a located error, fast."""
    text = BEST.read_bytes()
    cuts = sorted({0, 1, len(text) - 1, *(len(text) * k // 30 for k in range(1, 30))})
    errors = 0
    for cut in cuts:
        spec = tmp_path / f"cut{cut}.net"
        spec.write_bytes(text[:cut])
        code, out, err, seconds = timed(capsys, "check", spec)
        assert seconds < 1.0, f"cut at {cut}: {seconds:.2f} s"
        if code == 0:  # the cut fell after `layers { ... }`: a shorter spec, still complete
            assert err == "" and "total:" in out
            continue
        assert_located(code, out, err, spec)
        errors += 1
    assert errors >= 25


@pytest.mark.parametrize("command", ["compile", "train"])
def test_bad_specs_are_located_errors_for_compile_and_train_too(command, tmp_path, capsys):
    for name in (
        "binary_garbage",
        "sequential_500_deep",
        "cyclic_constants",
        "duplicate_layer_names",
        "shape_linear_on_image",
        "unknown_layer",
    ):
        spec = tmp_path / f"{name}.net"
        spec.write_bytes(BAD_SPECS[name])
        extra = ["--out", tmp_path / "run", "--data", "shapes", *TRAIN_QUICK] if command == "train" else []
        code, out, err, seconds = timed(capsys, command, spec, *extra)
        assert_located(code, out, err, spec)
        assert seconds < 1.0, f"{command} {name}: {seconds:.2f} s"
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("where", ["argument", "input"])
def test_integer_of_thousands_of_digits_is_a_located_error(where, tmp_path, capsys):
    digits = "9" * 5000
    text = (
        HEAD + f"layers {{\n    flat  Flatten()\n    fc    Linear({digits})\n}}\n"
        if where == "argument"
        else f"network T\ninput 3x{digits}x3\nlayers {{\n" + TAIL + "}\n"
    )
    spec = tmp_path / "digits.net"
    spec.write_text(text)
    assert_located(*run(capsys, "check", spec), spec)


def test_many_short_positional_arguments_are_fast(tmp_path, capsys):
    spec = tmp_path / "positional.net"
    spec.write_text(HEAD + "layers {\n    flat  Flatten()\n    fc    Linear(" + ", ".join(["1"] * 4000) + ")\n}\n")
    code, out, err, seconds = timed(capsys, "check", spec, tries=3)
    assert_located(code, out, err, spec)
    assert seconds < 1.0, f"{seconds:.2f} s"


# ---------------------------------------------------------------------------------------------------------------
# no code runs from data
# ---------------------------------------------------------------------------------------------------------------


def _code_specs(marker: Path) -> dict[str, str]:
    touch = f"touch {marker}"
    layers = "layers {\n" + TAIL + "}\n"
    return {
        "dunder_import": HEAD + f"layers {{\n    flat  Flatten()\n    fc    Linear(__import__('os').system('{touch}'))"
        "\n}\n",
        "dunder_import_as_layer": HEAD + f"layers {{\n    x  __import__('os').system('{touch}')\n" + TAIL + "}\n",
        "exec_statement": HEAD + f"exec('import os; os.system(\"{touch}\")')\n" + layers,
        "exec_as_layer": HEAD + f"layers {{\n    x  exec('import os; os.system(\"{touch}\")')\n" + TAIL + "}\n",
        "eval_as_value": HEAD
        + f'width = eval(\'__import__("os").system("{touch}")\')\n'
        + "layers {\n    flat  Flatten()\n    fc    Linear(width)\n}\n",
        "lambda_constant": HEAD + f"f = lambda: __import__('os').system('{touch}')\n" + layers,
        "lambda_argument": HEAD + "layers {\n    flat  Flatten()\n    fc    Linear(lambda x: x)\n}\n",
        "yaml_python_tag": HEAD + f'layers: !!python/object/apply:os.system ["{touch}"]\n',
        "yaml_tag_in_layers": HEAD + f'layers {{\n    x  !!python/object/apply:os.system ["{touch}"]\n' + TAIL + "}\n",
        "dotted_torch_layer": HEAD + "layers {\n    conv  torch.nn.Conv2d(3, 16, 3)\n" + TAIL + "}\n",
        "dotted_os_system": HEAD + f"layers {{\n    x  os.system('{touch}')\n" + TAIL + "}\n",
        "dotted_constant": HEAD + "width = os.system\n" + layers,
        "import_statement": f"import os\nos.system('{touch}')\n" + HEAD + layers,
        "python_attribute": HEAD + "layers {\n    flat  Flatten()\n    fc  Linear(10).__class__.__bases__\n}\n",
        "dunder_layer_name": HEAD + "layers {\n    __class__  Flatten()\n    fc  Linear(10)\n}\n",
        "train_data_as_code": HEAD + layers + f"train {{\n    data  __import__('os').system('{touch}')\n}}\n",
        "optimizer_dotted": HEAD + layers + "train {\n    optimizer  torch.optim.SGD(lr=0.1)\n}\n",
        "transform_dotted": HEAD + layers + "train {\n    augment  [torchvision.transforms.ToTensor()]\n}\n",
    }


@pytest.mark.parametrize("command", ["check", "compile", "train"])
def test_no_code_runs_from_a_spec(command, tmp_path, capsys):
    marker = tmp_path / "PWNED"
    for name, text in _code_specs(marker).items():
        spec = tmp_path / f"{name}.net"
        spec.write_text(text)
        extra = ["--out", tmp_path / "run", "--data", "shapes", *TRAIN_QUICK] if command == "train" else []
        assert_located(*run(capsys, command, spec, *extra), spec)
        assert not marker.exists(), f"{name} ran code"


class _Evil:
    """A pickle that runs a shell command when loaded."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _evil_checkpoints(folder: Path, marker: Path) -> list[Path]:
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    plain = folder / "plain.pt"  # a raw pickle, as `pickle.dump` writes it
    with open(plain, "wb") as f:
        pickle.dump({"format": "netspec-checkpoint", "model": _Evil(marker)}, f, protocol=2)
    zipped = folder / "zipped.pt"  # torch.save's zip format, the pickle inside
    torch.save({"format": "netspec-checkpoint", "model": _Evil(marker)}, zipped)
    return [plain, zipped]


def test_crafted_checkpoint_is_refused_by_evaluate(tmp_path, capsys):
    marker = tmp_path / "PWNED"
    for ckpt in _evil_checkpoints(tmp_path / "ckpts", marker):
        line = assert_one_line(*run(capsys, "evaluate", ckpt, "--data", "shapes", "--test-limit", "8"), expect=1)
        assert line.startswith(f"netspec: error: {ckpt}: not a netspec checkpoint, or not a safe one"), line
        assert not marker.exists()
    # and as the checkpoint of a run folder
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "checkpoint.pt").write_bytes((tmp_path / "ckpts" / "zipped.pt").read_bytes())
    line = assert_one_line(*run(capsys, "evaluate", run_dir), expect=1)
    assert "not a safe one" in line and not marker.exists()


def test_crafted_checkpoint_is_refused_by_train_resume(tmp_path, capsys):
    import shutil

    marker = tmp_path / "PWNED"
    spec = tmp_path / "tiny.net"
    spec.write_text(TINY)
    good = tmp_path / "good"
    assert run(capsys, "train", spec, "--data", "shapes", "--out", good, *TRAIN_QUICK)[0] == 0
    for ckpt in _evil_checkpoints(tmp_path / "ckpts", marker):
        run_dir = tmp_path / f"run_{ckpt.stem}"
        shutil.copytree(good, run_dir)
        (run_dir / "metrics.csv").unlink()
        (run_dir / "checkpoint.pt").write_bytes(ckpt.read_bytes())
        line = assert_one_line(*run(capsys, "train", spec, "--out", run_dir, "--resume"), expect=1)
        assert f"{run_dir / 'checkpoint.pt'}: not a netspec checkpoint, or not a safe one" in line, line
        assert not marker.exists()
        assert not (run_dir / "metrics.csv").exists()


def test_crafted_cifar_file_is_refused(tmp_path, capsys):
    marker = tmp_path / "PWNED"
    written = make_cifar10(tmp_path / "data")
    (written.path / "data_batch_1").write_bytes(pickle.dumps({b"data": _Evil(marker)}, protocol=2))
    spec = tmp_path / "tiny.net"
    spec.write_text(TINY)
    line = assert_one_line(
        *run(
            capsys,
            "train",
            spec,
            "--data",
            "cifar10",
            "--data-dir",
            tmp_path / "data",
            "--out",
            tmp_path / "run",
            *TRAIN_QUICK,
        ),
        expect=1,
    )
    assert f"{written.path / 'data_batch_1'}: refusing to unpickle" in line, line
    assert not marker.exists()


# ---------------------------------------------------------------------------------------------------------------
# absurd sizes: refused before allocating
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["check", "compile", "train"])
def test_absurd_constant_is_refused_at_once(command, tmp_path, capsys):
    extra = ["--out", tmp_path / "run", "--data", "shapes", *TRAIN_QUICK] if command == "train" else []
    code, out, err, seconds = timed(capsys, command, BEST, "--set", "classes=1000000000000", *extra)
    m = assert_located(code, out, err, BEST)
    assert m.group(1) == "28"  # ff5_1  Linear(classes, bias=false)
    assert "would have 256,000,000,000,000 parameters" in err
    assert seconds < 2.0, f"{seconds:.2f} s"
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "text,message",
    [
        ("conv  Conv2d(100000000, kernel_size=3)", "would output 90,000,000,000 values per image"),
        ("conv  Conv2d(16, kernel_size=3, padding=1000000000)", "values per image: more than fits in memory"),
        ("flat  Flatten()\n    fc  Linear(1000000000000)", "would have 3,073,000,000,000,000 parameters"),
    ],
)
@pytest.mark.parametrize("command", ["compile", "train"])
def test_absurd_layer_is_refused_before_allocating(command, text, message, tmp_path, capsys):
    spec = tmp_path / "big.net"
    spec.write_text(HEAD + "layers {\n    " + text + "\n    flat2  Flatten()\n    fc2  Linear(10)\n}\n")
    extra = ["--out", tmp_path / "run", "--data", "shapes", *TRAIN_QUICK] if command == "train" else []
    code, out, err, seconds = timed(capsys, command, spec, *extra)
    assert_located(code, out, err, spec)
    assert message in err.splitlines()[0]
    assert seconds < 2.0, f"{seconds:.2f} s"


@pytest.mark.parametrize("command", ["compile", "train"])
def test_huge_input_on_a_conv_net_is_refused(command, tmp_path, capsys):
    extra = ["--out", tmp_path / "run", "--data", "shapes", *TRAIN_QUICK] if command == "train" else []
    code, out, err, seconds = timed(capsys, command, BEST, "--input", "3x65536x65536", *extra)
    assert_located(code, out, err, BEST)
    # the input itself (12,884,901,888 values), or else conv1's output (274,877,906,944 values), is too large
    assert "values per image: more than fits in memory" in err.splitlines()[0]
    assert seconds < 2.0, f"{seconds:.2f} s"


def test_absurd_size_costs_no_memory_in_a_fresh_process(tmp_path):
    """A fresh `netspec train` with an absurd --set: exit 1 at once, its peak memory far below a gigabyte."""
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec from the forking parent (pytest, large by then)
    code = (
        "import re, sys\nfrom netspec.cli import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n    code = e.code\n"
        "hwm = re.search(r'VmHWM:\\s*(\\d+)', open('/proc/self/status').read()).group(1)\n"
        "print(code, hwm)\n"
    )
    args = ["train", str(BEST), "--set", "classes=1000000000000", "--data", "shapes", "--out", str(tmp_path / "r")]
    t = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=tmp_path, timeout=120, check=False
    )
    seconds = time.perf_counter() - t
    exit_code, maxrss_kib = proc.stdout.split()
    assert exit_code == "1", proc.stderr
    assert (
        re.match(rf"{re.escape(str(BEST))}:28:5: error\[E\d{{3}}\]: ", proc.stderr) and "Traceback" not in proc.stderr
    )
    assert int(maxrss_kib) < 1_000_000, f"peak memory {int(maxrss_kib) // 1024} MiB"
    assert seconds < 30  # a Python start and netspec's imports, on a busy machine; nothing proportional to the size


def test_a_network_too_large_in_total_is_refused(tmp_path, capsys):
    spec = tmp_path / "total.net"
    spec.write_text(
        "network T\ninput 1x300x300\nlayers {\n    flat  Flatten()\n"
        "    repeat i in 1..100 {\n        fc{i}  Linear(90000)\n    }\n}\n"
    )
    assert_located(*run(capsys, "check", spec), spec)  # only `check`: `compile` would really allocate


# ---------------------------------------------------------------------------------------------------------------
# bad usage: one line, exit 2
# ---------------------------------------------------------------------------------------------------------------


def _usage_cases() -> list[tuple[str, list[str], str]]:
    spec = str(BEST)
    cases = []
    for cmd in ("check", "compile", "train"):
        cases += [
            (cmd, [cmd, "no/such/file.net"], "netspec: error: no/such/file.net: no such file"),
            (cmd, [cmd, "specs"], "netspec: error: specs: is a directory, not a spec file"),
            (cmd, [cmd, spec, "--input", "3x32"], "expected CxHxW"),
            (cmd, [cmd, spec, "--input", "threebythirtytwo"], "expected CxHxW"),
            (cmd, [cmd, spec, "--input", "3x32x32x32"], "expected CxHxW"),
            (cmd, [cmd, spec, "--input", "0x32x32"], "every dimension must be at least 1"),
            (cmd, [cmd, spec, "--input", "3x-32x32"], "expected CxHxW"),
            (cmd, [cmd, spec, "--input", "3x65537x32"], "dimensions over 65,536 are not supported"),
            (cmd, [cmd, spec, "--input", "3x" + "9" * 5000 + "x3"], "dimensions over 65,536 are not supported"),
            (cmd, [cmd, spec, "--bogus"], "No such option '--bogus'"),
            (cmd, [cmd, spec, "--set", "classes"], "expected NAME=VALUE"),
            (cmd, [cmd, spec, "--set", "clases=10"], "the spec defines no constant 'clases'"),
            (cmd, [cmd, spec, "--set", "classes=" + "9" * 5000], "this integer is too large"),
            (cmd, [cmd], "Missing argument 'SPEC'"),
        ]
    cases += [
        ("import", ["import", "no/such/module.txt"], "netspec: error: import no/such/module.txt: no such file"),
        ("import", ["import", "specs"], "netspec: error: import specs: is a directory"),
        ("import", ["import", "-", "--bogus"], "No such option '--bogus'"),
        ("import", ["import"], "Missing argument"),
        ("train", ["train", spec, "--resume"], "--resume needs --out DIR"),
        ("train", ["train", spec, "--epochs", "0"], "--epochs 0: must be >= 1"),
        ("train", ["train", spec, "--lr", "-1"], "must be a positive number"),
        ("train", ["train", spec, "--lr", "inf"], "'inf' is not a finite number"),
        ("train", ["train", spec, "--train-limit", "0"], "Invalid value for '--train-limit'"),
        ("train", ["train", spec, "--device", "tpu"], "Invalid value for '--device'"),
        ("train", ["train", spec, "--data", "cifar11"], "unknown data set 'cifar11'"),
        ("evaluate", ["evaluate", "no/such/run"], "no/such/run: no such run folder or checkpoint"),
        ("compare", ["compare", "specs"], "specs: not a finished run"),
        ("netspec", ["nosuchcommand"], "No such command 'nosuchcommand'"),
    ]
    return cases


@pytest.mark.parametrize(
    "command,args,message", _usage_cases(), ids=[f"{c}-{i}" for i, (c, _, _) in enumerate(_usage_cases())]
)
def test_bad_usage_is_one_line_and_exit_2(command, args, message, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    line = assert_one_line(*run(capsys, *args), expect=2)
    assert message in line, line
    assert len(line) < 400, line  # a 5,000-digit argument is shortened, not echoed whole


def test_netspec_alone_prints_its_help(capsys):
    code, out, err = run(capsys)
    assert code == 2 and err == ""
    assert out.startswith("Usage: netspec ") and "Commands:" in out


# ---------------------------------------------------------------------------------------------------------------
# bad data: a clear error naming the file
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture
def tiny(tmp_path) -> Path:
    spec = tmp_path / "tiny.net"
    spec.write_text(TINY)
    return spec


def _train_data(capsys, spec: Path, tmp_path: Path, *data_args) -> str:
    """Train on bad data: the one error line (exit 1), and no run folder left behind."""
    out = tmp_path / "run"
    code, stdout, err = run(capsys, "train", spec, "--out", out, *TRAIN_QUICK, *data_args)
    assert "Traceback" not in err, err
    assert code == 1, err
    assert stdout == ""
    assert not out.exists()
    return err.strip("\n")


@pytest.mark.parametrize(
    "name,expect",
    [
        ("cifar10", ["CIFAR-10 not found; downloading is disabled", "cifar-10-python.tar.gz", "cifar-10-batches-py/"]),
        ("cifar100", ["CIFAR-100 not found", "cifar-100-python.tar.gz"]),
        ("mnist", ["MNIST not found", "train-images-idx3-ubyte.gz", "mnist/"]),
        ("fashion-mnist", ["Fashion-MNIST not found", "fashion-mnist/"]),
        ("tiny-imagenet", ["Tiny ImageNet not found", "tiny-imagenet-200.zip", "tiny-imagenet-200/"]),
    ],
)
def test_missing_data_set_offline_names_where_the_files_go(name, expect, tiny, tmp_path, capsys, monkeypatch):
    from netspec.training import readers

    monkeypatch.setattr(readers, "SYSTEM_DIRS", {})  # Debian's dataset-fashion-mnist may be installed here
    empty = tmp_path / "EMPTY"
    empty.mkdir()
    err = _train_data(capsys, tiny, tmp_path, "--data", name, "--data-dir", empty)
    assert err.startswith("netspec: error: ")
    for piece in expect:
        assert piece in err, err
    assert str(empty) in err


def test_truncated_cifar_batch(tiny, tmp_path, capsys):
    written = make_cifar10(tmp_path / "data")
    batch = written.path / "data_batch_3"
    batch.write_bytes(batch.read_bytes()[:200])
    err = _train_data(capsys, tiny, tmp_path, "--data", "cifar10", "--data-dir", tmp_path / "data")
    assert err == f"netspec: error: {batch}: not a readable pickle (UnpicklingError: pickle data was truncated)"


def test_cifar_label_out_of_range(tiny, tmp_path, capsys):
    written = make_cifar10(tmp_path / "data")
    images = np.random.default_rng(0).integers(0, 256, (4, 3072), dtype=np.uint8)
    (written.path / "data_batch_2").write_bytes(
        cifar_pickle(
            {
                b"batch_label": b"training batch 2 of 5",
                b"labels": [3, 12, 1, 2],
                b"data": images,
                b"filenames": [b"a.png"] * 4,
            }
        )
    )
    err = _train_data(capsys, tiny, tmp_path, "--data", "cifar10", "--data-dir", tmp_path / "data")
    assert err == (f"netspec: error: {written.path / 'data_batch_2'}: label 12 of image 1 is out of range 0..9")


def test_cifar_batch_that_is_not_a_pickle(tiny, tmp_path, capsys):
    written = make_cifar10(tmp_path / "data")
    (written.path / "test_batch").write_bytes(b"<html>404 Not Found</html>")
    err = _train_data(capsys, tiny, tmp_path, "--data", "cifar10", "--data-dir", tmp_path / "data")
    assert err.startswith(f"netspec: error: {written.path / 'test_batch'}: not a readable pickle")


@pytest.mark.parametrize("damage", ["crc", "header", "truncated", "not_gzip"])
def test_corrupt_gz_idx_file(damage, tiny, tmp_path, capsys):
    written = make_mnist(tmp_path / "data")
    path = written.path / "train-images-idx3-ubyte.gz"
    blob = path.read_bytes()
    if damage == "crc":  # bytes changed inside the compressed stream
        path.write_bytes(blob[:30] + bytes(b ^ 0xFF for b in blob[30:60]) + blob[60:])
    elif damage == "header":  # a valid gzip of an idx header that claims 4 billion images of 4 billion pixels
        path.write_bytes(gzip.compress(bytes([0, 0, 8, 3]) + b"\xff" * 12 + b"\0" * 100))
    elif damage == "truncated":
        path.write_bytes(blob[: len(blob) // 2])
    else:
        path.write_bytes(b"not gzip at all")
    err = _train_data(capsys, tiny, tmp_path, "--data", "mnist", "--data-dir", tmp_path / "data")
    assert err.startswith(f"netspec: error: {path}: "), err
    assert "corrupt" in err or "truncated" in err, err


def test_mnist_label_out_of_range(tiny, tmp_path, capsys):
    from datafixtures import idx_bytes

    written = make_mnist(tmp_path / "data")
    labels = written.path / "train-labels-idx1-ubyte.gz"
    labels.write_bytes(gzip.compress(idx_bytes(np.array([1, 2, 3, 10, 4, 5, 6, 7], np.uint8))))
    err = _train_data(capsys, tiny, tmp_path, "--data", "mnist", "--data-dir", tmp_path / "data")
    assert err == f"netspec: error: {labels}: label 10 of item 3 is out of range 0..9"


def test_image_folder_with_a_class_without_images(tiny, tmp_path, capsys):
    root = tmp_path / "photos"
    make_image_folder(root)
    for f in (root / "train" / "dog").iterdir():
        f.unlink()
    (root / "train" / "dog" / "notes.txt").write_text("not an image")
    err = _train_data(capsys, tiny, tmp_path, "--data", root)
    assert err.startswith(f"netspec: error: {root / 'train' / 'dog'}: class folder has no images")


def test_image_folder_with_no_images_at_all(tiny, tmp_path, capsys):
    root = tmp_path / "photos"
    (root / "train").mkdir(parents=True)
    (root / "test").mkdir()
    err = _train_data(capsys, tiny, tmp_path, "--data", root)
    assert err.startswith(f"netspec: error: {root / 'train'}: no class subfolders")


def test_image_folder_with_a_broken_image(tiny, tmp_path, capsys):
    root = tmp_path / "photos"
    make_image_folder(root)
    broken = root / "train" / "cat" / "cat_000.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    err = _train_data(capsys, tiny, tmp_path, "--data", root)
    assert err.startswith(f"netspec: error: {broken}: cannot decode image")


# ---------------------------------------------------------------------------------------------------------------
# checkpoints that do not fit: clear errors (bugs found here, reported)
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> tuple[Path, Path]:
    """(spec, run folder) of one tiny finished run."""
    folder = tmp_path_factory.mktemp("finished")
    spec = folder / "tiny.net"
    spec.write_text(TINY)
    with pytest.raises(SystemExit) as e:
        main(["train", str(spec), "--data", "shapes", "--out", str(folder / "run"), *TRAIN_QUICK])
    assert e.value.code == 0
    return spec, folder / "run"


def test_resume_of_a_folder_without_a_run_is_a_usage_error(tiny, tmp_path, capsys):
    out = tmp_path / "fresh"
    out.mkdir()
    line = assert_one_line(*run(capsys, "train", tiny, "--data", "shapes", "--out", out, "--resume", *TRAIN_QUICK))
    assert line == (
        f"netspec: error: --resume: {out} holds no run (no settings.json or spec.net); start it without --resume"
    )
    assert list(out.iterdir()) == []


def test_checkpoint_that_is_a_text_file(tmp_path, capsys):
    bad = tmp_path / "checkpoint.pt"
    bad.write_text("hello\n")
    line = assert_one_line(*run(capsys, "evaluate", bad), expect=1)
    assert str(bad) in line


def test_resume_with_a_different_network(finished_run, tmp_path, capsys):
    import shutil

    _, run_dir = finished_run
    other = tmp_path / "other.net"
    other.write_text(TINY.replace("    fc    Linear(classes)", "    fc1   Linear(20)\n    fc    Linear(classes)"))
    resumed = shutil.copytree(run_dir, tmp_path / "run")
    line = assert_one_line(*run(capsys, "train", other, "--out", resumed, "--resume", "--epochs", "2"))
    assert f"--resume: {other} is not the spec of the run in {resumed}: line 6 is 'fc1   Linear(20)' there" in line
    # a checkpoint of another network dropped into a run folder: refused, not half-loaded
    foreign = tmp_path / "foreign"
    assert run(capsys, "train", other, "--data", "shapes", "--out", foreign, *TRAIN_QUICK)[0] == 0
    shutil.copy(foreign / "checkpoint.pt", resumed / "checkpoint.pt")
    line = assert_one_line(*run(capsys, "train", "--out", resumed, "--resume", "--epochs", "2"), expect=1)
    assert f"{resumed / 'checkpoint.pt'}: its spec differs from {resumed / 'spec.net'}" in line


def test_learning_rate_overflow_is_a_divergence(tmp_path, capsys):
    spec = tmp_path / "wild.net"
    spec.write_text(
        TINY + "train {\n    epochs 6\n    optimizer SGD(lr=0.01)\n    schedule ExponentialLR(gamma=1e15)\n}\n"
    )
    code, _, err = run(
        capsys,
        "train",
        spec,
        "--data",
        "shapes",
        "--out",
        tmp_path / "run",
        "--quiet",
        "--train-limit",
        "32",
        "--test-limit",
        "16",
    )
    assert code == 3 and "diverged" in err
