"""`netspec import`: printed PyTorch modules back to specs, and `importer.from_sequential` for live ones.

The expected specs are `tests/golden/import/*.net`; after an intended change to the importer's output, rewrite them
with `NETSPEC_REGEN=1 python -m pytest tests/test_import.py -k golden_specs`.
"""

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import netspec
import pytest
from netspec.cli import cli, main
from netspec.errors import SpecError
from netspec.importer import ModuleImportError, from_sequential, import_command, import_text, layer_call

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).parent / "golden"
IMPORTED = GOLDEN / "import"
WORST_ORDER = IMPORTED / "cifar_worst.order"
REPORT = ["cifar_best", "cifar_worst", "tiny_best", "tiny_deep"]


@pytest.fixture(autouse=True, scope="module")
def _registered():
    # the lead registers the command on the CLI group; until then, the tests do
    if "import" not in cli.commands:
        cli.add_command(import_command, "import")


def run(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
        raise SystemExit(0)
    out, err = capsys.readouterr()
    return e.value.code or 0, out, err


def unmodernize(text: str) -> str:
    """The report's own text: undo tests/golden/from_report.py's modernize()."""
    text = re.sub(r"affine=(True|False), bias=True, track_running_stats", r"affine=\1, track_running_stats", text)
    return text.replace("Flatten(start_dim=1, end_dim=-1)", "Flatten()")


def flush_left(text: str) -> str:
    """The indentation lost, as in the report's paginated copy."""
    return "\n".join(line.strip() for line in text.splitlines()) + "\n"


def imported(name: str, text: str | None = None) -> str:
    text = (GOLDEN / f"{name}.txt").read_text() if text is None else text
    order = WORST_ORDER.read_text() if name == "cifar_worst" else None
    return import_text(text, f"{name}.txt", order=order, order_filename=WORST_ORDER.name).spec


# ---- the report's four modules ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", REPORT)
def test_report_modules_import_to_the_golden_specs(name):
    spec = imported(name)
    path = IMPORTED / f"{name}.net"
    if os.environ.get("NETSPEC_REGEN"):
        path.write_text(spec)
    assert spec == path.read_text()
    # the report's own text (older PyTorch: Flatten() and BatchNorm without bias=), even without indentation
    raw = unmodernize((GOLDEN / f"{name}.txt").read_text())
    assert "bias=True, track" not in raw and "Flatten()" in raw
    assert imported(name, raw) == spec
    assert imported(name, flush_left(raw)) == spec


# the same network as each PyTorch since 0.2 prints it (tests/golden/formats/); pytorch_2.txt is today's print
FORMATS = ["pytorch_0.2", "pytorch_0.3", "pytorch_1.1", "pytorch_2"]


@pytest.mark.parametrize("name", FORMATS)
def test_every_print_format_since_pytorch_0_2_imports_to_the_golden_spec(name):
    # 0.2: `Net (`, `ReLU (inplace)`, `Linear (8192 -> 256)`, `MaxPool2d (size=(2, 2), ...)`, `Dropout (p = 0.5)`;
    # 0.3: `Conv2d (3, 64, ...)`, `LeakyReLU(0.2, inplace)`, MaxPool2d's pairs; 1.1: `ReLU(inplace)` and
    # `LeakyReLU(negative_slope=0.2, inplace)`, bare flags after keywords
    text = (GOLDEN / "formats" / f"{name}.txt").read_text()
    spec = import_text(text, "net.txt").spec
    path = IMPORTED / "formats.net"
    if os.environ.get("NETSPEC_REGEN"):
        path.write_text(spec)
    assert spec == path.read_text()
    assert import_text(flush_left(text), "net.txt").spec == spec


def test_the_spec_of_every_print_format_compiles_to_todays_print(tmp_path, capsys):
    code, stdout, err = run(["compile", str(IMPORTED / "formats.net")], capsys)
    assert code == 0, err
    # the one difference: the Flatten added where forward() flattens (it has no weights)
    added = "  (flatten): Flatten(start_dim=1, end_dim=-1)\n"
    assert added in stdout and stdout.replace(added, "") == (GOLDEN / "formats" / "pytorch_2.txt").read_text()


@pytest.mark.parametrize("name", REPORT)
def test_imported_report_specs_compile_to_the_printed_module(name, tmp_path, capsys):
    out = tmp_path / f"{name}.net"
    argv = ["import", str(GOLDEN / f"{name}.txt"), "-o", str(out)]
    if name == "cifar_worst":
        argv += ["--order", str(WORST_ORDER)]
    code, stdout, err = run(argv, capsys)
    assert code == 0, err
    assert stdout == "" and f"wrote {out}" in err
    code, stdout, err = run(["compile", str(out)], capsys)
    assert code == 0, err
    assert stdout == (GOLDEN / f"{name}.txt").read_text()


def test_imported_specs_are_idiomatic_and_shorter_than_the_printed_modules():
    for name in REPORT:
        spec = (IMPORTED / f"{name}.net").read_text()
        code = [ln for ln in spec.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
        assert len(code) < len((GOLDEN / f"{name}.txt").read_text().splitlines()), name
        for gone in (
            "in_channels",
            "num_features",
            "in_features",
            "stride=",
            "eps=",
            "momentum=",
            "dilation",
            "(3, 3)",
        ):
            assert gone not in "\n".join(code), (name, gone)
        assert "# Run order:" in spec and "# Input " in spec
    best = (IMPORTED / "cifar_best.net").read_text()
    assert "block cbr(id, out) {" in best and '    cbr("2_0", 128)\n' in best
    assert "conv{id}       Conv2d(out, kernel_size=3, padding=1)" in best
    assert "ff5_1     Linear(classes, bias=false)" in best and "classes = 10" in best
    worst = (IMPORTED / "cifar_worst.net").read_text()
    assert "repeat i in 1..4 {\n        resblock{id}_{i} Sequential {" in worst
    assert "repeat i in 1..4 { batchnorm_{i} BatchNorm2d() }" in worst
    assert "repeat j in 1..4 { residual resblock{i}_{j} }" in worst


def test_the_input_size_is_solved_from_the_printed_sizes():
    inputs = {
        name: re.search(r"^input (\S+)$", (IMPORTED / f"{name}.net").read_text(), re.M).group(1) for name in REPORT
    }
    # Linear(in_features=4096) after /32 of pooling: 128x128 is the smallest square that fits
    assert inputs == {
        "cifar_best": "3x32x32",
        "tiny_best": "3x128x128",
        "tiny_deep": "3x64x64",
        "cifar_worst": "3x32x32",  # it fits 30x30 to 45x45: the common size 32 is chosen, not the smallest
    }
    assert "so does every square size from 128x128 to 159x159" in (IMPORTED / "tiny_best.net").read_text()
    # no square fits 2 x H x W = 12: the smallest H x W, as near square as it comes
    text = (
        "Net(\n  (conv): Conv2d(1, 2, kernel_size=(1, 1), stride=(1, 1))\n"
        "  (flat): Flatten(start_dim=1, end_dim=-1)\n"
        "  (fc): Linear(in_features=12, out_features=3, bias=True)\n)\n"
    )
    result = import_text(text, "rect.txt")
    assert result.input == (1, 2, 3) and "no square input fits" in result.spec
    assert netspec.loads(result.spec).module.fc.in_features == 12
    # --input picks another size that fits, and refuses one that does not
    assert import_text((GOLDEN / "tiny_best.txt").read_text(), input="3x150x150").input == (3, 150, 150)
    with pytest.raises(SpecError) as e:
        import_text((GOLDEN / "tiny_best.txt").read_text(), "tiny_best.txt", input="3x64x64")
    assert (e.value.loc.line, e.value.loc.column) == (31, 12)
    assert "in_features=4096, but gets in_features=1024" in e.value.message


# the PyTorch tutorial's CIFAR-10 Net: forward() runs `pool` after conv1 and after conv2, on 32x32 inputs
TUTORIAL_NET = """Net(
  (conv1): Conv2d(3, 6, kernel_size=(5, 5), stride=(1, 1))
  (pool): MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)
  (conv2): Conv2d(6, 16, kernel_size=(5, 5), stride=(1, 1))
  (fc1): Linear(in_features=400, out_features=120, bias=True)
  (fc2): Linear(in_features=120, out_features=84, bias=True)
  (fc3): Linear(in_features=84, out_features=10, bias=True)
)
"""

# PyTorch's MNIST example: forward() pools with F.max_pool2d(x, 2) after conv2, on 28x28 inputs
MNIST_NET = """Net(
  (conv1): Conv2d(1, 32, kernel_size=(3, 3), stride=(1, 1))
  (conv2): Conv2d(32, 64, kernel_size=(3, 3), stride=(1, 1))
  (dropout1): Dropout(p=0.25, inplace=False)
  (dropout2): Dropout(p=0.5, inplace=False)
  (fc1): Linear(in_features=9216, out_features=128, bias=True)
  (fc2): Linear(in_features=128, out_features=10, bias=True)
)
"""

ASSUMED = (
    "netspec import: warning: input {} assumes that {}'s children each run once, in the order print(model) lists them"
)
SETTLE = "Give the run order with --order FILE, and choose among the sizes that fit with --input CxHxW\n"


def imported_with_warning(text, size, tmp_path, capsys):
    """`netspec import` of a Net's print: exit 0 at `size`, with the warning that the size rests on the run order."""
    path = tmp_path / "net.txt"
    path.write_text(text)
    code, out, err = run(["import", str(path)], capsys)
    assert code == 0 and f"input {size}\n" in out
    assert err.startswith(ASSUMED.format(size, "Net")) and err.endswith(SETTLE)
    return path, out, err


def test_a_size_that_rests_on_the_registration_order_is_said_on_stderr(tmp_path, capsys):
    # the tutorial's Net runs `pool` twice: in registration order only 22x22 and 23x23 fit, not its 32x32
    path, out, err = imported_with_warning(TUTORIAL_NET, "3x22x22", tmp_path, capsys)
    assert "in that order the printed sizes fit every square size from 22x22 to 23x23; none of the common sizes" in err
    assert "if it runs a child without weights (MaxPool2d 'pool') more than once, or pools with a function" in err
    assert "none of the common sizes (28, 32, 64, 96, 128, 224, 256, 299) fits." in out.replace("\n#  ", "")
    # its run order settles it: 32x32, and no warning
    order = tmp_path / "order.txt"
    order.write_text("conv1 relu pool conv2 relu pool flatten fc1 relu fc2 relu fc3\n")
    code, out, err = run(["import", str(path), "--order", str(order)], capsys)
    assert code == 0 and "input 3x32x32\n" in out and err == ""
    # and so does --input, among the sizes that fit in the order assumed
    code, out, err = run(["import", str(path), "--input", "3x23x23"], capsys)
    assert code == 0 and "input 3x23x23\n" in out and err == ""


def test_a_network_that_pools_with_a_function_is_said_to_rest_on_the_order(tmp_path, capsys):
    # MNIST's 28x28 shows as 16x16: the print cannot show F.max_pool2d; its dropouts could run more than once
    _, _, err = imported_with_warning(MNIST_NET, "1x16x16", tmp_path, capsys)
    assert "fit 16x16 and no other square size up to 32x32; none of the common sizes" in err
    assert "(Dropout 'dropout1' and Dropout 'dropout2')" in err


def test_the_smallest_common_size_that_fits_is_chosen_and_the_others_named(capsys):
    import torchvision

    # AlexNet's print fits every side from 63 up (its AdaptiveAvgPool2d((6, 6))): 64 is chosen, not 63
    result = import_text(str(torchvision.models.alexnet(weights=None)), "alexnet.txt")
    assert result.input == (3, 64, 64)
    header = " ".join(line.lstrip("# ") for line in result.spec.splitlines() if line.startswith("#"))
    assert (
        "Input 3x64x64: the smallest of the common sizes (28, 32, 64, 96, 128, 224, 256, 299) at which every printed "
        "size (in_channels, in_features) fits; the printed sizes fit every square size from 63x63 up to 126x126 "
        "(checked no further); of the common sizes above that, 128x128, 224x224, 256x256 and 299x299 fit too." in header
    )
    (warning,) = result.warnings
    assert warning.startswith(ASSUMED.format("3x64x64", "AlexNet").split(": warning: ")[1])
    assert "(AdaptiveAvgPool2d 'avgpool')" in warning and "224x224" in warning
    # a network run in order (a Sequential) needs no warning; nor does a size given with --input
    assert import_text(str(torchvision.models.alexnet().features), "features.txt").warnings == []
    assert import_text(str(torchvision.models.alexnet()), "alexnet.txt", input="3x224x224").warnings == []


def test_flat_input_networks_need_the_input_size():
    text = "Net(\n  (flat): Flatten()\n  (fc): Linear(in_features=784, out_features=10, bias=True)\n)\n"
    with pytest.raises(SpecError) as e:
        import_text(text, "mlp.txt")
    assert (e.value.loc.line, e.value.loc.column) == (3, 9) and e.value.hint == "pass the input size with --input CxHxW"
    spec = import_text(text, "mlp.txt", input="1x28x28").spec
    assert "input 1x28x28" in spec and netspec.loads(spec).module.fc.in_features == 784


def test_no_size_fits_is_a_located_error(capsys):
    text = (GOLDEN / "cifar_best.txt").read_text().replace("in_features=256", "in_features=250")
    with pytest.raises(SpecError) as e:
        import_text(text, "x.txt")
    assert (e.value.loc.line, e.value.loc.column) == (31, 12)
    assert e.value.message.startswith(
        "no input size fits the printed sizes: Linear 'ff5_1' is printed with in_features=250, but gets in_features=256"
    )


# ---- the run order -------------------------------------------------------------------------------------------


def test_worst_network_in_registration_order_names_the_misplaced_batchnorms(capsys):
    code, out, err = run(["import", str(GOLDEN / "cifar_worst.txt")], capsys)
    assert code == 1 and out == "" and "Traceback" not in err
    warning, error = err.split("\n", 1)
    assert warning.startswith("netspec import: warning: in registration order these children cannot run")
    for i in range(1, 5):
        assert f"'batchnorm_{i}' (line {85 + i})" in warning
    assert error.startswith(
        f"{GOLDEN / 'cifar_worst.txt'}:86:18: error[E211]: BatchNorm2d 'batchnorm_1' cannot run where it is registered"
    )
    assert "--order FILE" in error


def test_worst_network_with_its_order_runs_as_the_hand_written_spec():
    import torch

    spec = (IMPORTED / "cifar_worst.net").read_text()
    assert "# Run order: as given in cifar_worst.order" in spec
    ours = netspec.loads(spec, input="3x32x32").module.eval()
    theirs = netspec.load(ROOT / "specs" / "cifar_worst.net").module.eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(ours(x), theirs(x))


def test_order_file_errors_point_into_the_order_file(tmp_path, capsys):
    order = tmp_path / "order.txt"
    order.write_text("forward {\n    conv1 batchnorm_1 relu\n    resblok1_1\n}\n")
    code, _, err = run(["import", str(GOLDEN / "cifar_worst.txt"), "--order", str(order)], capsys)
    assert code == 1 and "Traceback" not in err
    assert err.startswith(f"{order}:3:5: error[E209]: 'resblok1_1' is not a child of the printed module")
    assert "resblock1_1" in err  # did you mean
    order.write_text("forward { conv1 batchnorm_1 relu }\n")
    code, _out, err = run(["import", str(GOLDEN / "cifar_worst.txt"), "--order", str(order)], capsys)
    assert code == 1 and "never runs 'resblock1_1'" in err
    # the steps alone, without `forward { }` around them, are read too
    steps = re.search(r"forward \{\n(.*)\n\}", WORST_ORDER.read_text(), re.S).group(1)
    text = (GOLDEN / "cifar_worst.txt").read_text()
    assert (
        import_text(text, "cifar_worst.txt", order=steps, order_filename=WORST_ORDER.name).spec
        == (IMPORTED / "cifar_worst.net").read_text()
    )


# ---- torchvision models: state_dict and outputs --------------------------------------------------------------


@pytest.fixture(scope="module", params=["alexnet", "vgg11_bn"])
def torchvision_model(request):
    import torch
    import torchvision

    torch.manual_seed(0)
    return getattr(torchvision.models, request.param)(weights=None).eval()


def test_torchvision_models_round_trip_with_weights(torchvision_model):
    import torch

    m = torchvision_model
    result = import_text(str(m), f"{type(m).__name__}.txt")
    assert re.search(
        r"\n    avgpool +AdaptiveAvgPool2d\(\(\d, \d\)\)\n"
        r"    flatten +Flatten\(\)\n    classifier Sequential {",
        result.spec,
    )
    assert "# Added: `flatten Flatten()` before 'classifier'" in result.spec
    # AlexNet fits every side from 63 up: the smallest common side that fits, not 63
    assert result.input == {"AlexNet": (3, 64, 64), "VGG": (3, 32, 32)}[type(m).__name__]
    with torch.device("meta"):  # no time spent filling weights that are replaced next
        compiled = netspec.loads(result.spec).module.eval()
    assert list(compiled.state_dict()) == list(m.state_dict())
    compiled.load_state_dict(m.state_dict(), strict=True, assign=True)
    x = torch.randn(1, *result.input)
    with torch.no_grad():
        assert torch.equal(compiled(x), m(x))
    # the same from the live module, which says where it came from
    live = from_sequential(m)
    assert live.split("network ", 1)[1] == result.spec.split("network ", 1)[1]
    assert f"from a live {type(m).__name__} module" in live and "forward() cannot be seen" in live


# ---- from_sequential -----------------------------------------------------------------------------------------------


def test_from_module_round_trips_sequential_stacks():
    import torch
    from torch import nn

    class Net(nn.Module):  # its forward() is not seen: registration order is assumed
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=True))
            self.body = nn.Sequential(
                *[nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.GroupNorm(2, 8), nn.GELU()) for _ in range(3)]
            )
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(8, 5, bias=False))

        def forward(self, x):
            return self.head(self.pool(self.body(self.stem(x))))

    torch.manual_seed(0)
    m = Net().eval()
    spec = from_sequential(m, name="Small")
    assert "network Small" in spec and "repeat i in 1..3 {" in spec
    compiled = netspec.loads(spec, input="3x16x16").module.eval()
    compiled.load_state_dict(m.state_dict(), strict=True)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(compiled(x), m(x))


def test_from_module_names_the_first_part_it_cannot_express():
    import torchvision
    from torch import nn

    with pytest.raises(ModuleImportError) as e:
        from_sequential(torchvision.models.resnet18(weights=None))
    assert isinstance(e.value, ValueError) and isinstance(e.value, SpecError)
    assert "'layer1.0': BasicBlock is not among netspec's layers" in str(e.value)
    with pytest.raises(ValueError, match=r"'rnn.1': LSTM is not"):
        from_sequential(nn.ModuleDict({"conv": nn.Conv2d(3, 4, 3), "rnn": nn.Sequential(nn.ReLU(), nn.LSTM(4, 4))}))
    # what print(model) does not show must be at netspec's defaults
    with pytest.raises(ValueError, match=r"'1': its ceil_mode=True does not show in print\(model\)"):
        from_sequential(nn.Sequential(nn.Conv2d(3, 4, 3), nn.AvgPool2d(2, ceil_mode=True)))
    shared = nn.Conv2d(4, 4, 3, padding=1)
    with pytest.raises(ValueError, match="'2': it is the same module as '0'"):
        from_sequential(nn.Sequential(shared, nn.ReLU(), shared))


def test_from_module_reads_sequential_subclasses_as_sequential():
    from torch import nn
    from torchvision.ops import Conv2dNormActivation

    m = nn.Sequential(Conv2dNormActivation(3, 16), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))
    spec = from_sequential(m)
    assert "Sequential {\n        Conv2d(16, kernel_size=3, padding=1, bias=false)" in spec
    assert "# Run order: nn.Sequential's" in spec
    assert str(netspec.loads(spec).module).replace("Sequential(", "X(") == str(m).replace(
        "Conv2dNormActivation(", "X("
    ).replace("Sequential(", "X(")


# ---- printed arguments -> spec arguments -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "printed,spec",
    [
        ("Conv2d(3, 64, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))", "Conv2d(64, kernel_size=3, padding=1)"),
        (
            "Conv2d(3, 4, kernel_size=(3, 1), stride=(2, 2), padding=same, bias=False, padding_mode=reflect)",
            'Conv2d(4, kernel_size=(3, 1), stride=2, padding="same", bias=false, padding_mode="reflect")',
        ),
        ("Linear(in_features=256, out_features=10, bias=False)", "Linear(10, bias=false)"),
        ("BatchNorm2d(64, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)", "BatchNorm2d()"),
        ("BatchNorm2d(64, eps=1e-05, momentum=0.1, affine=True, bias=True, track_running_stats=True)", "BatchNorm2d()"),
        (
            "BatchNorm1d(3, eps=0.001, momentum=None, affine=False, track_running_stats=True)",
            "BatchNorm1d(eps=0.001, momentum=None, affine=false)",
        ),
        ("MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)", "MaxPool2d(2)"),
        (
            "MaxPool2d(kernel_size=3, stride=2, padding=1, dilation=1, ceil_mode=True)",
            "MaxPool2d(3, stride=2, padding=1, ceil_mode=true)",
        ),
        ("MaxPool2d(kernel_size=(2, 2), stride=(2, 2), padding=0, dilation=1, ceil_mode=False)", "MaxPool2d((2, 2))"),
        ("Dropout(p=0.5, inplace=False)", "Dropout()"),
        ("ReLU(inplace=True)", "ReLU(inplace=true)"),
        ("AdaptiveAvgPool2d(output_size=(7, 7))", "AdaptiveAvgPool2d((7, 7))"),
        ("Flatten()", "Flatten()"),
        ("Flatten(start_dim=1, end_dim=-1)", "Flatten()"),
        ("GroupNorm(32, 64, eps=1e-05, affine=True, bias=True)", "GroupNorm(32)"),
        ("LeakyReLU(negative_slope=0.2, inplace=True)", "LeakyReLU(negative_slope=0.2, inplace=true)"),
        ("GELU(approximate='tanh')", 'GELU(approximate="tanh")'),
        ("Softmax(dim=1)", "Softmax(dim=1)"),
        ("LogSoftmax(dim=1)", "LogSoftmax(dim=1)"),
        ("LogSoftmax(dim=None)", "LogSoftmax()"),
        ("PReLU(num_parameters=1)", "PReLU()"),
        ("PReLU(num_parameters=64)", "PReLU(num_parameters=64)"),
        ("ConvTranspose2d(3, 8, kernel_size=(3, 3), stride=(1, 1))", "ConvTranspose2d(8, kernel_size=3)"),
        (
            "ConvTranspose2d(16, 8, kernel_size=(3, 2), stride=(2, 2), padding=(1, 1), dilation=(2, 2), "
            "output_padding=(1, 1), groups=2, bias=False)",
            "ConvTranspose2d(8, kernel_size=(3, 2), stride=2, padding=1, output_padding=1, groups=2, bias=false, "
            "dilation=2)",
        ),
        ("Upsample(scale_factor=2.0, mode='nearest')", "Upsample(scale_factor=2.0)"),
        ("Upsample(scale_factor=(2.0, 3.0), mode='nearest')", "Upsample(scale_factor=(2.0, 3.0))"),
        ("Upsample(size=(8, 9), mode='bilinear')", 'Upsample(size=(8, 9), mode="bilinear")'),
        ("ReflectionPad2d((1, 1, 1, 1))", "ReflectionPad2d(1)"),
        ("ReflectionPad2d((1, 2, 3, 4))", "ReflectionPad2d((1, 2, 3, 4))"),
        ("ReplicationPad2d((2, 2, 2, 2))", "ReplicationPad2d(2)"),
        ("ZeroPad2d((0, 1, 0, 1))", "ZeroPad2d((0, 1, 0, 1))"),
        ("ZeroPad2d(padding=(1, 1, 1, 1), value=0.0)", "ZeroPad2d(1)"),  # PyTorch before 2.1
        ("LayerNorm((64,), eps=1e-05, elementwise_affine=True, bias=True)", "LayerNorm()"),
        ("LayerNorm((64,), eps=1e-05, elementwise_affine=True)", "LayerNorm()"),  # PyTorch before 2.1
        (
            "LayerNorm((64,), eps=1e-06, elementwise_affine=False, bias=True)",
            "LayerNorm(eps=1e-06, elementwise_affine=false)",
        ),
        # PyTorch 1.1 and older: a flag set is printed as its bare name
        ("ReLU(inplace)", "ReLU(inplace=true)"),
        ("LeakyReLU(negative_slope=0.2, inplace)", "LeakyReLU(negative_slope=0.2, inplace=true)"),
        ("Dropout(p=0.3, inplace)", "Dropout(p=0.3, inplace=true)"),
        # PyTorch 0.3: `Name (`, pairs in MaxPool2d (written once: torch printed them so whatever it was given)
        ("Conv2d (3, 64, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))", "Conv2d(64, kernel_size=3, padding=1)"),
        ("LeakyReLU(0.2, inplace)", "LeakyReLU(negative_slope=0.2, inplace=true)"),
        ("MaxPool2d(kernel_size=(3, 3), stride=(2, 2), dilation=(1, 1))", "MaxPool2d(3, stride=2)"),
        (
            "MaxPool2d(kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), dilation=(1, 1), ceil_mode=True)",
            "MaxPool2d((3, 3), stride=(2, 2), padding=(1, 1), dilation=(1, 1), ceil_mode=true)",
        ),
        # PyTorch 0.2
        ("ReLU (inplace)", "ReLU(inplace=true)"),
        ("ReLU ()", "ReLU()"),
        ("ELU (alpha=0.5, inplace)", "ELU(alpha=0.5, inplace=true)"),
        ("Linear (4096 -> 1000)", "Linear(1000)"),
        ("MaxPool2d (size=(2, 2), stride=(2, 2), dilation=(1, 1))", "MaxPool2d(2)"),
        (
            "MaxPool2d (size=(3, 3), stride=(2, 2), padding=(1, 1), dilation=(1, 1))",
            "MaxPool2d(3, stride=2, padding=1)",
        ),
        ("AvgPool2d (size=2, stride=2, padding=0, ceil_mode=False, count_include_pad=True)", "AvgPool2d(2)"),
        ("Dropout (p = 0.5)", "Dropout()"),
        ("Dropout2d (p=0.2, inplace)", "Dropout2d(p=0.2, inplace=true)"),
        ("BatchNorm2d(64, eps=1e-05, momentum=0.1, affine=True)", "BatchNorm2d()"),
        ("AdaptiveAvgPool2d (output_size=(1, 1))", "AdaptiveAvgPool2d((1, 1))"),
    ],
)
def test_printed_arguments_map_to_spec_arguments(printed, spec):
    assert layer_call(printed) == spec


# ---- the layers of image-to-image networks: padding, transposed convolutions, upsampling, PReLU ----------------


def generator():
    """An image-to-image network in the style of CycleGAN's generator, with a classifier head: every layer kind of
    issue #17 item 2 (tests/golden/generator.txt is how it prints)."""
    import torch
    from torch import nn

    class Generator(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(3, 16, 7), nn.BatchNorm2d(16), nn.PReLU(16))
            self.down = nn.Sequential(
                *[nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.PReLU()],
                *[nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.BatchNorm2d(64), nn.PReLU()],
            )
            self.res = nn.Sequential(
                *[nn.ReplicationPad2d(1), nn.Conv2d(64, 64, 3), nn.BatchNorm2d(64), nn.PReLU(64)],
                *[nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(64, 64, 2), nn.BatchNorm2d(64), nn.PReLU(64)],
            )
            self.up = nn.Sequential(
                nn.ConvTranspose2d(64, 32, 3, stride=2, padding=1, output_padding=1, bias=False),
                *[nn.BatchNorm2d(32), nn.PReLU(32)],
                *[nn.Upsample(scale_factor=2, mode="bilinear"), nn.Conv2d(32, 16, 3, padding=1), nn.PReLU()],
            )
            self.head = nn.Sequential(nn.ReflectionPad2d((3, 3, 3, 3)), nn.Conv2d(16, 3, 7), nn.Tanh())
            self.classify = nn.Sequential(
                *[nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 64), nn.LayerNorm(64), nn.Linear(64, 10)],
                nn.LogSoftmax(dim=1),
            )

        def forward(self, x):
            return self.classify(self.head(self.up(self.res(self.down(self.stem(x))))))

    torch.manual_seed(0)
    return Generator().eval()


def test_image_to_image_layers_import_and_compile_to_the_printed_module(tmp_path, capsys):
    import torch

    printed = (GOLDEN / "generator.txt").read_text()
    model = generator()
    assert str(model) + "\n" == printed  # the golden is how today's PyTorch prints the model
    spec = import_text(printed, "generator.txt").spec
    path = IMPORTED / "generator.net"
    if os.environ.get("NETSPEC_REGEN"):
        path.write_text(spec)
    assert spec == path.read_text()
    assert "ReflectionPad2d(3)\n" in spec and "PReLU(num_parameters=64)\n" in spec and "PReLU()\n" in spec
    code, stdout, err = run(["compile", str(path)], capsys)
    assert code == 0 and stdout == printed, err
    # the live module: the same spec, and with the model's weights the same outputs
    live = from_sequential(model)
    assert live.split("network ", 1)[1] == spec.split("network ", 1)[1]
    compiled = netspec.loads(spec, input="3x32x32").module.eval()
    compiled.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(compiled(x), model(x))
    # what older PyTorch printed for ZeroPad2d and LayerNorm imports to the same spec
    old = printed.replace("ZeroPad2d((0, 1, 0, 1))", "ZeroPad2d(padding=(0, 1, 0, 1), value=0.0)")
    old = old.replace("elementwise_affine=True, bias=True)", "elementwise_affine=True)")
    assert old != printed and import_text(old, "generator.txt").spec == spec


def test_the_docs_name_every_layer_the_importer_knows():
    from netspec.lang import LAYERS

    doc = (ROOT / "docs" / "import.md").read_text(encoding="utf-8")
    known = doc.split("**The layers it knows**", 1)[1].split("\n- ", 1)[0]
    assert [name for name in LAYERS if f"`{name}`" not in known] == ["Parameter"]  # a tensor, never printed


def test_image_to_image_layers_that_cannot_be_imported_are_located_errors():
    conflict = "Net(\n  (up): ConvTranspose2d(3, 8, kernel_size=(3, 3), stride=(1, 1), output_padding=(1, 1))\n)\n"
    with pytest.raises(SpecError) as e:
        import_text(conflict, "model.txt")
    assert e.value.code == "E037" and (e.value.loc.line, e.value.loc.column) == (2, 66)  # output_padding=
    assert "needs output_padding=1 smaller than stride=1" in e.value.message
    slopes = "Net(\n  (conv): Conv2d(3, 8, kernel_size=(3, 3), stride=(1, 1))\n  (act): PReLU(num_parameters=4)\n)\n"
    with pytest.raises(SpecError) as e:
        import_text(slopes, "model.txt")
    # as for any layer that cannot take its input where it is registered: maybe the run order is another
    assert e.value.code == "E211" and (e.value.loc.line, e.value.loc.column) == (3, 10)
    assert "num_parameters=4 must be 1 or the 8 channels" in e.value.message
    # what print(model) does not show: Upsample's align_corners (the same for bilinear as None), PReLU's init
    from torch import nn

    for hidden, key in ((nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False), "align_corners"),
                        (nn.PReLU(4, init=0.1), "init")):  # fmt: skip
        with pytest.raises(ModuleImportError, match=rf"'1': its {key}=.* does not show in print\(model\)"):
            from_sequential(nn.Sequential(nn.Conv2d(3, 4, 3), hidden))


# ---- bad input: located errors, exit 1, no traceback -----------------------------------------------------------

_BEST = (GOLDEN / "cifar_best.txt").read_text()


@pytest.mark.parametrize(
    "text,where,message",
    [
        (_BEST[:750], "12:20", "the arguments of Conv2d( are not closed on their line"),
        (_BEST.rsplit(")", 1)[0], "31:64", "the text ends inside CifarNet( opened at line 1: a ')' is missing"),
        (
            "Net(\n  (conv1): Conv2d(3, 16, kernel_size=(3, 3))\n  (relu1): ReLU(\n)\n",
            "3:16",
            "ReLU( is not closed: by the indentation it ends before line 4, where its ')' is missing",
        ),
        (
            "Net(\n  (features): Sequential(\n    (0): Conv2d(3, 16, kernel_size=(3, 3))\n    (1): ReLU()\n"
            "  (pool): AdaptiveAvgPool2d(output_size=1)\n)\n",
            "2:25",
            "Sequential( is not closed: by the indentation it ends before line 5, where its ')' is missing",
        ),
        (
            "Net(\n(features): Sequential(\n(0): Conv2d(3, 16, kernel_size=(3, 3))\n(1): ReLU()\n"
            "(pool): AdaptiveAvgPool2d(output_size=1)\n)\n",
            "6:2",
            "the text ends inside Net( opened at line 1: a ')' is missing",
        ),
        (
            _BEST.replace("  (relu2_1): ReLU()\n", "  (relu2_1): ReLU()\n)\n"),
            "13:3",
            "text after the end of the printed module (CifarNet closes at line 12)",
        ),
        (
            _BEST.replace("(relu1): ReLU()", "(rnn): LSTM(10, 20, num_layers=2)"),
            "4:10",
            "netspec has no layer 'LSTM' (child 'rnn')",
        ),
        (_BEST.replace("padding=(1, 1))", "padding=(1, 1)=)", 1), "2:75", "cannot read the arguments of Conv2d"),
        (
            _BEST.replace("eps=1e-05", "eps=__import__('os')", 1),
            "3:37",
            "an argument of BatchNorm2d is not a plain value",
        ),
        (
            _BEST.replace("padding=(1, 1))", "padding=(1, 1), output_padding=(1, 1))", 1),
            "2:77",
            "netspec's Conv2d has no argument 'output_padding' (child 'conv1')",
        ),
        (
            _BEST.replace("(relu1): ReLU()", "(blk): BasicBlock(\n  (conv): Conv2d(64, 64, kernel_size=(3, 3))\n)"),
            "4:10",
            "cannot import 'blk': BasicBlock is not a Sequential",
        ),
        (
            "Net(\n  (layers): ModuleList(\n    (0-2): 3 x ReLU()\n  )\n)\n",
            "2:13",
            "cannot import 'layers': ModuleList is not a Sequential",
        ),
        ("", "1:1", "no module here"),
        ("Here is my model:\nNet(\n)", "1:5", "expected '(' after Here"),
    ],
    ids=[
        "cut-in-a-line",
        "cut-at-the-end",
        "left-open-leaf",
        "left-open-sequential",
        "left-open-without-indentation",
        "stray-paren",
        "unknown-layer",
        "syntax",
        "not-a-literal",
        "unknown-argument",
        "custom-container",
        "module-list",
        "empty",
        "prose",
    ],
)
def test_malformed_text_is_a_located_error(text, where, message, tmp_path, capsys):
    path = tmp_path / "model.txt"
    path.write_text(text)
    code, out, err = run(["import", str(path)], capsys)
    assert code == 1 and out == "" and "Traceback" not in err
    assert re.match(rf"{re.escape(str(path))}:{where}: error\[E2\d\d\]: {re.escape(message)}", err), err
    with pytest.raises(SpecError) as e:
        import_text(text, "model.txt")
    assert f"{e.value.loc.line}:{e.value.loc.column}" == where


@pytest.mark.parametrize(
    "child,where,path,cls",
    [
        ("  (criterion): CrossEntropyLoss()\n", "3:16", "criterion", "CrossEntropyLoss"),
        ("  (head): Sequential(\n    (0): NLLLoss()\n  )\n", "4:10", "head.0", "NLLLoss"),
        ("  (loss): MSELoss (\n  )\n", "3:11", "loss", "MSELoss"),  # PyTorch 0.2's print of a loss
    ],
)
def test_a_loss_registered_as_a_child_is_refused_as_a_loss(child, where, path, cls, tmp_path, capsys):
    text = "Net(\n  (fc): Linear(in_features=784, out_features=10, bias=True)\n" + child + ")\n"
    with pytest.raises(SpecError) as e:
        import_text(text, "model.txt")
    assert e.value.code == "E213" and f"{e.value.loc.line}:{e.value.loc.column}" == where
    assert e.value.message == f"{path!r} is a {cls}: a loss is not part of the network; remove it from the print"
    assert "did you mean" not in (e.value.hint or "")


def test_standard_input_and_usage_errors(capsys, monkeypatch):
    import io
    import sys

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO((GOLDEN / "tiny_deep.txt").read_bytes())))
    code, out, err = run(["import", "-", "--name", "Deep"], capsys)
    assert code == 0 and "network Deep\n" in out and "from <stdin>" in out
    code, out, err = run(["import", "no/such/file.txt"], capsys)
    assert code == 2 and err == "netspec: error: import no/such/file.txt: no such file\n"


# ---- the importer's place in the layout ------------------------------------------------------------------------


def test_the_importer_uses_the_public_names_of_lang_and_shapes_only():
    import netspec.lang

    for path in sorted((ROOT / "netspec" / "importer").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ImportFrom) or node.module == "__future__":
                continue
            names = [a.name for a in node.names]
            where = f"{path.name}: from {'.' * node.level}{node.module or ''} import {', '.join(names)}"
            assert not any(n.startswith("_") for n in names), where
            if node.level == 2 and (node.module or "").startswith("lang"):
                assert node.module == "lang" and set(names) <= set(netspec.lang.__all__), where


def test_importing_the_importer_loads_no_torch():
    probe = "import sys, netspec.importer\nprint(any(m == 'torch' or m.startswith('torch.') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"
