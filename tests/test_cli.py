"""The command line: exit codes, exact outputs, one-line usage errors, and `check` without torch."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import netspec
import pytest
from netspec.cli import main

ROOT = Path(__file__).resolve().parents[1]
BEST = str(ROOT / "specs" / "cifar_best.net")


def run(capsys, *args):
    with pytest.raises(SystemExit) as e:
        main(list(args))
    out, err = capsys.readouterr()
    return e.value.code, out, err


def test_compile_prints_exactly_the_module(capsys):
    code, out, err = run(capsys, "compile", BEST)
    assert code == 0 and err == ""
    assert out == str(netspec.load(BEST).module) + "\n"
    code, out, _ = run(capsys, "compile", BEST, "--input", "3x64x64")
    assert "Linear(in_features=1024, out_features=10, bias=False)" in out
    code, out, _ = run(capsys, "compile", BEST, "--set", "classes=100")
    assert "Linear(in_features=256, out_features=100, bias=False)" in out


def test_compile_summary_is_torchinfos(capsys):
    code, out, _ = run(capsys, "compile", BEST, "--summary")
    assert code == 0
    assert "Total params: 2,441,728" in out and "Total mult-adds (M): 285.24" in out
    assert "Units." not in out
    # torchinfo names the model by its class: the network's own name, not netspec's base class
    assert any(line.split()[:2] == ["CifarNet", "[1,"] for line in out.splitlines())
    assert "SpecModel" not in out


def test_the_compiled_class_is_named_after_the_network_and_behaves_like_a_module():
    import copy
    import pickle

    import torch

    model = netspec.load(BEST).module
    assert type(model).__name__ == "CifarNet" and isinstance(model, netspec.build.SpecModel)
    twin = copy.deepcopy(model)
    assert type(twin) is type(model) and str(twin) == str(model)
    twin.load_state_dict(model.state_dict())
    x = torch.randn(2, 3, 32, 32)
    model.eval(), twin.eval()
    assert torch.equal(model(x), twin(x))
    with pytest.raises((pickle.PicklingError, AttributeError)):  # documented: save the state_dict instead
        pickle.dumps(model)


def test_a_mistyped_command_gets_a_suggestion(capsys):
    code, _, err = run(capsys, "trian", BEST)
    assert code == 2
    assert err.strip() == "netspec: error: No such command 'trian'. Did you mean 'train'? (see --help)"


def test_check_table_and_totals(capsys):
    code, out, err = run(capsys, "check", BEST)
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == "CifarNet: input 3x32x32, output 10"
    assert lines[1].split() == ["name", "layer", "output", "params", "MACs"]
    row = next(ln for ln in lines if ln.startswith("ff5_1"))
    assert row.split() == ["ff5_1", "Linear", "10", "2,560", "2,560"]
    assert lines[-1] == "total: 2,441,728 parameters, 285,242,752 MACs per image"


def test_check_several_sizes_side_by_side(capsys):
    code, out, _ = run(capsys, "check", BEST, "--input", "3x32x32,3x64x64,3x128x128")
    assert code == 0
    flat = next(ln for ln in out.splitlines() if ln.startswith("flatten5"))
    assert flat.split()[2::3] == ["256", "1024", "4096"]
    assert "smallest input: 3x32x32 (square); smallest H x W: 3x32x32" in out


def test_check_smallest_input_of_a_non_square_friendly_net(tmp_path, capsys):
    spec = tmp_path / "n.net"
    spec.write_text(
        "network N input 1x28x28 layers { c Conv2d(4, kernel_size=(1, 3)) p MaxPool2d((1, 2)) f Flatten() l Linear(2) }"
    )
    code, out, _ = run(capsys, "check", str(spec), "--input", "1x28x28,1x8x8")
    assert code == 0
    assert "smallest input: 1x4x4 (square); smallest H x W: 1x1x4" in out


def test_spec_error_exit_1_with_location(tmp_path, capsys):
    code, out, err = run(capsys, "compile", BEST, "--input", "3x8x8")
    assert code == 1 and out == ""
    assert err.startswith(f"{BEST}:26:5: error[E070]: MaxPool2d 'pool5' cannot take its 256x1x1 input")
    assert "Traceback" not in err and "^^^^^" in err and "= help:" in err


@pytest.mark.parametrize(
    "args,message",
    [
        (["check", "no/such.net"], "no/such.net: no such file"),
        (["check", "specs"], "specs: is a directory"),
        (["check", BEST, "--input", "3x32"], "expected CxHxW"),
        (["check", BEST, "--input", "0x32x32"], "at least 1"),
        (["check", BEST, "--input", "3x70000x32"], "over 65,536"),
        (["check", BEST, "--bogus"], "No such option"),
        (["check", BEST, "--set", "clases=3"], "no constant 'clases'"),
        (["check", BEST, "--set", "classes"], "expected NAME=VALUE"),
        (["compile", BEST, "--input", "3x32x32,3x64x64"], "one --input"),
        (["train", BEST, "--resume"], "--resume needs --out"),
        (["nosuchcommand"], "No such command 'nosuchcommand'"),
    ],
)
def test_usage_errors_exit_2_with_one_line(capsys, args, message):
    import os

    os.chdir(ROOT)
    code, _out, err = run(capsys, *args)
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert message in err


def test_help_on_every_command(capsys):
    for cmd in ("check", "compile", "train", "evaluate", "compare", "import", "draw", "fmt", "diff", "export", "sweep"):
        code, out, _ = run(capsys, cmd, "--help")
        assert code == 0 and "Usage: netspec " + cmd in out


SPECS_AND_EXAMPLES = sorted(str(p) for p in (*(ROOT / "specs").glob("*.net"), *(ROOT / "examples").glob("*.net")))


@pytest.mark.parametrize("spec", SPECS_AND_EXAMPLES, ids=lambda p: Path(p).stem)
def test_check_imports_no_torch(spec):
    """`check` stays light: it imports no torch."""
    code = (
        "import sys; from netspec.cli import main\n"
        f"try:\n    main(['check', {spec!r}])\nexcept SystemExit as e:\n"
        "    assert e.code == 0, e.code\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'torchvision', 'torchinfo'})\n"
        "assert not heavy, heavy\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr


def test_train_reports_a_bad_spec_before_importing_torch(tmp_path):
    spec = tmp_path / "bad.net"
    spec.write_text("network N\ninput 3x8x8\nlayers {\n    fc  Linear(10)\n    fc  Linear(10)\n}\n")
    code = (
        "import sys; from netspec.cli import main\n"
        f"try:\n    main(['train', {str(spec)!r}, '--epochs', '1'])\nexcept SystemExit as e:\n"
        "    assert e.code == 1, e.code\n"
        "assert 'torch' not in sys.modules\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert re.match(rf"{re.escape(str(spec))}:5:5: error\[E\d{{3}}\]: ", proc.stderr)


def test_python_m_netspec(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "netspec", "check", BEST], capture_output=True, text=True)
    assert proc.returncode == 0 and "total: 2,441,728 parameters" in proc.stdout


def _ctrl_c(*args, **kwargs):
    """A real SIGINT to this process, as Ctrl-C sends it, from inside a command."""
    signal.raise_signal(signal.SIGINT)


def test_ctrl_c_in_a_command_exits_130_not_clicks_aborted(capsys, monkeypatch):
    # click turns a KeyboardInterrupt that reaches it into "Aborted!" and exit 1: netspec's never does
    import netspec.table

    monkeypatch.setattr(netspec.table, "shape_table", _ctrl_c)
    code, out, err = run(capsys, "check", BEST)
    assert (code, out, err) == (130, "", "netspec: error: interrupted\n")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_ctrl_c_before_training_starts_exits_130(tmp_path, capsys, monkeypatch):
    import netspec.training.prepare

    monkeypatch.setattr(netspec.training.prepare, "load_data", _ctrl_c)  # the data is loaded in prepare.py
    code, _, err = run(capsys, "train", BEST, "--data", "shapes", "--out", str(tmp_path / "run"), "--quiet")
    assert (code, err) == (130, "netspec: error: interrupted\n")
    assert not (tmp_path / "run").exists()


def test_a_second_ctrl_c_stops_training_at_once_with_130(tmp_path, capsys, monkeypatch):
    # the first Ctrl-C asks the run to stop after the current step; a second one does not wait for it
    import netspec.training.run

    def two_ctrl_c(*args, **kwargs):
        _ctrl_c()
        _ctrl_c()
        raise AssertionError("the second Ctrl-C did not interrupt")

    monkeypatch.setattr(netspec.training.run, "train_epoch", two_ctrl_c)
    args = ["--train-limit", "32", "--test-limit", "16", "--quiet", "--precision", "fp32"]
    code, _, err = run(capsys, "train", BEST, "--data", "shapes", "--out", str(tmp_path / "run"), *args)
    assert (code, err) == (130, "netspec: error: interrupted\n")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the run's handler is gone


def test_ctrl_c_while_a_command_waits_for_input_exits_130():
    # a real Ctrl-C in a real process: `netspec import -` waiting on standard input
    proc = subprocess.Popen(
        [sys.executable, "-m", "netspec", "import", "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.time() + 60
        while "pipe" not in Path(f"/proc/{proc.pid}/wchan").read_text():  # blocked reading its stdin pipe
            if time.time() > deadline or proc.poll() is not None:
                pytest.skip("cannot tell when the process waits on its input")
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert (proc.returncode, out, err) == (130, "", "netspec: error: interrupted\n")
