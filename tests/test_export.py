"""`netspec export`: every file is held against PyTorch here again, independently of the command's own check: ONNX
files run by onnxruntime, .pt2 files loaded by torch.export.load, a run's export fed images in [0, 1]."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import netspec
import onnxruntime
import pytest
import torch
from netspec.cli import main
from netspec.tools import exporting

from trainfixtures import TINY, train_cli

ROOT = Path(__file__).resolve().parents[1]
SPECS = sorted((ROOT / "specs").glob("*.net"))
ZOO = [ROOT / "examples" / "zoo" / "squeezenet1_1.net", ROOT / "examples" / "zoo" / "mobilenet_v3_small.net"]
# a run normalized with a different mean and std per channel: the exported graph must apply each to its channel
CIFAR_NORM = "Normalize(mean=(0.4914, 0.4822, 0.4465), std=(0.247, 0.243, 0.261))"


def run(capsys, *args):
    with pytest.raises(SystemExit) as e:
        main(["export", *map(str, args)])
    out, err = capsys.readouterr()
    return e.value.code, out, err


def seeded_module(spec, input=None, seed=0):
    """The module `netspec export SPEC --seed N` exports: the same weights, built here by the API."""
    torch.manual_seed(seed)
    return netspec.load(spec, input=input).module.eval()


def onnx_outputs(path, x):
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    return torch.from_numpy(session.run(None, {inp.name: x.numpy()})[0])


def assert_close(got, expected):
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-4)  # outputs are about 0.01 to 0.1


@pytest.mark.parametrize(
    "spec, input",
    [*((s, None) for s in SPECS), *((z, "3x64x64") for z in ZOO)],
    ids=lambda v: Path(v).stem if isinstance(v, Path) else str(v),
)
def test_spec_exports_to_onnx_that_onnxruntime_runs_as_torch_does(spec, input, tmp_path, capsys):
    out = tmp_path / "net.onnx"
    code, text, err = run(capsys, spec, "-o", out, "--seed", 0, *(["--input", input] if input else []))
    assert code == 0, err
    module = seeded_module(spec, input)
    size = tuple(int(d) for d in (input or "x".join(map(str, netspec.check(spec)[0].input))).split("x"))
    x = torch.rand(1, *size)
    with torch.no_grad():
        expected = module(x)
    assert_close(onnx_outputs(out, x), expected)
    shown = "x".join(map(str, size))
    assert f"at {shown} (random weights (seed 0)) to {out}: ONNX opset " in text
    assert "verified with onnxruntime: max abs difference " in text and f"on a random 1x{shown} input" in text


def test_dynamic_batch_runs_at_every_batch_size(tmp_path, capsys):
    out = tmp_path / "best.onnx"
    code, text, err = run(capsys, ROOT / "specs" / "cifar_best.net", "-o", out, "--seed", 1, "--dynamic-batch")
    assert code == 0, err
    assert "any batch size" in text and "on random 1x3x32x32 and 3x3x32x32 inputs" in text
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert isinstance(session.get_inputs()[0].shape[0], str)  # a named, symbolic batch dimension
    module = seeded_module(ROOT / "specs" / "cifar_best.net", seed=1)
    for n in (1, 5):
        x = torch.rand(n, 3, 32, 32)
        with torch.no_grad():
            assert_close(onnx_outputs(out, x), module(x))


def test_fixed_batch_is_batch_one(tmp_path, capsys):
    out = tmp_path / "best.onnx"
    assert run(capsys, ROOT / "specs" / "cifar_best.net", "-o", out)[0] == 0
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape == [1, 3, 32, 32]


def test_pt2_is_a_torch_export_program(tmp_path, capsys):
    spec = ROOT / "specs" / "cifar_worst.net"
    out = tmp_path / "worst.pt2"
    code, text, err = run(capsys, spec, "-o", out, "--seed", 2, "--dynamic-batch")  # the format from -o's suffix
    assert code == 0, err
    assert "torch.export program" in text and "verified with torch.export.load: max abs difference" in text
    loaded = torch.export.load(out).module()
    module = seeded_module(spec, seed=2)
    for n in (1, 4):
        x = torch.rand(n, 3, 32, 32)
        with torch.no_grad():
            torch.testing.assert_close(loaded(x), module(x))


def test_default_output_is_the_specs_stem_in_this_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, text, err = run(capsys, ROOT / "specs" / "cifar_worst.net", "--format", "pt2")
    assert code == 0, err
    assert (tmp_path / "cifar_worst.pt2").is_file() and "to cifar_worst.pt2:" in text


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A tiny real run (one epoch, fp32), normalized per channel."""
    folder = tmp_path_factory.mktemp("export-run")
    spec = folder / "tiny.net"
    spec.write_text(TINY.replace("Normalize(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))", CIFAR_NORM))
    train_cli(spec, folder / "tinyrun", "--epochs", "1")
    return folder / "tinyrun"


def trained_module(run_dir: Path):
    ckpt = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    module = netspec.loads(ckpt["spec"], input=tuple(ckpt["input"])).module
    module.load_state_dict(ckpt["model"])
    return module.eval()


def test_a_run_exports_its_trained_model_with_normalize_inside(trained, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, text, err = run(capsys, trained, "--dynamic-batch")
    assert code == 0, err
    out = tmp_path / "tinyrun.onnx"  # the run folder's name
    assert out.is_file()
    assert f"the weights of {trained / 'checkpoint.pt'}" in text
    assert "input: images scaled to [0, 1], as ToTensor gives them; the run's Normalize(mean=(0.4914, 0.4822, " in text
    images = torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8)
    x = images.float() / 255  # what ToTensor gives
    mean = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)
    std = torch.tensor([0.247, 0.243, 0.261]).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = trained_module(trained)((x - mean) / std)
    assert_close(onnx_outputs(out, x), expected)
    settings = json.loads((trained / "settings.json").read_text())
    assert settings["normalize"]["mean"] == [0.4914, 0.4822, 0.4465]


def test_a_checkpoint_exports_as_its_run_folder_does(trained, tmp_path, capsys):
    out = tmp_path / "tiny.pt2"
    code, _text, err = run(capsys, trained / "checkpoint.pt", "-o", out)
    assert code == 0, err
    x = torch.rand(1, 3, 16, 16)
    mean, std = torch.tensor([0.4914, 0.4822, 0.4465]), torch.tensor([0.247, 0.243, 0.261])
    with torch.no_grad():
        expected = trained_module(trained)((x - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1))
        torch.testing.assert_close(torch.export.load(out).module()(x), expected)


def test_a_run_whose_weights_do_not_fit_the_flags_is_exit_1(trained, tmp_path, capsys):
    code, _out, err = run(capsys, trained, "-o", tmp_path / "x.onnx", "--set", "classes=5")
    assert code == 1 and "its weights do not fit the network built from its spec" in err
    assert "Traceback" not in err and not (tmp_path / "x.onnx").exists()


def test_without_the_extra_the_error_names_the_install_command(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` raises ImportError
    code, out, err = run(capsys, ROOT / "specs" / "cifar_best.net", "-o", tmp_path / "x.onnx")
    assert code == 2 and out == ""
    assert err.strip() == (
        "netspec: error: export --format onnx needs onnxruntime, which is not installed: "
        "pip install 'netspec[export]' (--format pt2 needs torch alone)"
    )
    assert not (tmp_path / "x.onnx").exists()


def test_a_file_that_does_not_verify_is_an_error_and_is_removed(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(exporting, "ATOL", -1.0)  # no difference passes
    out = tmp_path / "worst.pt2"
    code, text, err = run(capsys, ROOT / "specs" / "cifar_worst.net", "-o", out)
    assert code == 1 and text == ""
    assert "the exported file's outputs differ from PyTorch's by up to" in err and "the file was removed" in err
    assert not out.exists()


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["nothing.net"], 2, "nothing.net: no such spec, run folder or checkpoint"),
        ([ROOT / "specs" / "cifar_best.net", "-o", "x.pt2", "--format", "onnx"], 2, "a .pt2 file, but --format onnx"),
        ([ROOT / "specs" / "cifar_best.net", "--format", "tflite"], 2, "'tflite' is not one of"),
        ([ROOT / "specs" / "cifar_best.net", "--input", "3x32"], 2, "expected CxHxW"),
        ([ROOT / "specs" / "cifar_best.net", "--set", "classes"], 2, "expected NAME=VALUE"),
        ([ROOT / "specs" / "cifar_best.net", "--input", "3x8x8"], 1, "error[E070]"),
        ([ROOT / "specs" / "cifar_best.net", "--set", "nope=1"], 2, "the spec defines no constant 'nope'"),
    ],
)
def test_exit_codes(args, code, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    got, _out, err = run(capsys, *args)
    assert got == code and message in err and "Traceback" not in err, err
    assert not list(tmp_path.iterdir())  # nothing written


def test_a_mistake_in_the_spec_is_exit_1_rendered_with_its_place(tmp_path, capsys):
    spec = tmp_path / "bad.net"
    spec.write_text("network Bad\ninput 3x32x32\nlayers {\n    conv Conv2d(8, kernel_size=3, padin=1)\n}\n")
    code, _out, err = run(capsys, spec, "-o", tmp_path / "bad.onnx")
    assert code == 1 and err.startswith(f"{spec}:4:") and "error[E033]" in err and "^" in err
    assert not (tmp_path / "bad.onnx").exists()


def test_seed_is_for_a_spec(trained, capsys):
    code, _out, err = run(capsys, trained, "--seed", 1)
    assert code == 2 and "--seed is for a spec" in err


def test_help(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0 and "Usage: netspec export [OPTIONS] SPEC|RUN_DIR" in out
    words = " ".join(out.split())  # as wrapped at any terminal width
    assert "--dynamic-batch" in words and "the file takes images scaled to [0, 1], as ToTensor gives them" in words
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0 and "export" in capsys.readouterr().out


def test_the_spec_export_is_the_same_for_the_same_seed(tmp_path):
    a = exporting.from_spec(ROOT / "specs" / "cifar_worst.net", seed=7).module.state_dict()
    b = exporting.from_spec(ROOT / "specs" / "cifar_worst.net", seed=7).module.state_dict()
    c = exporting.from_spec(ROOT / "specs" / "cifar_worst.net", seed=8).module.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
