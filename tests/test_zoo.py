"""examples/zoo/: each spec against torchvision (see zoo_harness). The ten shipped models run by default; the other
members of their families, made by --set constants, are marked slow."""

from __future__ import annotations

import pytest

from zoo_harness import check_against_torchvision

ZOO = [
    ("squeezenet1_1", "squeezenet1_1", None),
    ("alexnet", "alexnet", None),
    ("vgg16_bn", "vgg16_bn", None),
    ("resnet18", "resnet18", None),
    ("resnet50", "resnet50", None),
    ("densenet121", "densenet121", None),
    ("mobilenet_v2", "mobilenet_v2", None),
    ("mobilenet_v3_small", "mobilenet_v3_small", None),
    ("efficientnet_b0", "efficientnet_b0", None),
    ("convnext_tiny", "convnext_tiny", None),
]

# every --set line a zoo spec's header gives, with the torchvision model it makes
BN_TF = {"bn_eps": 0.001, "bn_momentum": 0.01}  # efficientnet_b5 to b7's batch norm
FAMILY: list[tuple[str, str, dict]] = [
    ("vgg16_bn", "vgg11_bn", {"convs": (1, 1, 2, 2, 2)}),
    ("vgg16_bn", "vgg13_bn", {"convs": (2, 2, 2, 2, 2)}),
    ("vgg16_bn", "vgg19_bn", {"convs": (2, 2, 4, 4, 4)}),
    ("vgg16_bn", "vgg16", {"batch_norm": False}),
    ("resnet18", "resnet34", {"blocks": (3, 4, 6, 3)}),
    ("resnet50", "resnet101", {"blocks": (3, 4, 23, 3)}),
    ("resnet50", "resnet152", {"blocks": (3, 8, 36, 3)}),
    ("resnet50", "resnext50_32x4d", {"groups": 32, "width_per_group": 4}),
    ("resnet50", "resnext101_32x8d", {"blocks": (3, 4, 23, 3), "groups": 32, "width_per_group": 8}),
    ("resnet50", "resnext101_64x4d", {"blocks": (3, 4, 23, 3), "groups": 64, "width_per_group": 4}),
    ("resnet50", "wide_resnet50_2", {"width_per_group": 128}),
    ("resnet50", "wide_resnet101_2", {"blocks": (3, 4, 23, 3), "width_per_group": 128}),
    ("densenet121", "densenet169", {"block_config": (6, 12, 32, 32)}),
    ("densenet121", "densenet201", {"block_config": (6, 12, 48, 32)}),
    ("densenet121", "densenet161", {"block_config": (6, 12, 36, 24), "growth_rate": 48, "num_init_features": 96}),
    ("efficientnet_b0", "efficientnet_b1", {"depth_mult": 1.1}),
    ("efficientnet_b0", "efficientnet_b2", {"width_mult": 1.1, "depth_mult": 1.2, "dropout": 0.3}),
    ("efficientnet_b0", "efficientnet_b3", {"width_mult": 1.2, "depth_mult": 1.4, "dropout": 0.3}),
    ("efficientnet_b0", "efficientnet_b4", {"width_mult": 1.4, "depth_mult": 1.8, "dropout": 0.4}),
    ("efficientnet_b0", "efficientnet_b5", {"width_mult": 1.6, "depth_mult": 2.2, "dropout": 0.4, **BN_TF}),
    ("efficientnet_b0", "efficientnet_b6", {"width_mult": 1.8, "depth_mult": 2.6, "dropout": 0.5, **BN_TF}),
    ("efficientnet_b0", "efficientnet_b7", {"width_mult": 2.0, "depth_mult": 3.1, "dropout": 0.5, **BN_TF}),
    ("convnext_tiny", "convnext_small", {"depths": (3, 3, 27, 3), "stochastic_depth_prob": 0.4}),
    (
        "convnext_tiny",
        "convnext_base",
        {"depths": (3, 3, 27, 3), "widths": (128, 256, 512, 1024), "stochastic_depth_prob": 0.5},
    ),
    (
        "convnext_tiny",
        "convnext_large",
        {"depths": (3, 3, 27, 3), "widths": (192, 384, 768, 1536), "stochastic_depth_prob": 0.5},
    ),
]


@pytest.mark.parametrize("spec,name,constants", ZOO, ids=[z[1] for z in ZOO])
def test_zoo_spec_is_torchvisions_model(spec, name, constants):
    check_against_torchvision(spec, name, constants)


@pytest.mark.slow
@pytest.mark.parametrize("spec,name,constants", FAMILY, ids=[f[1] for f in FAMILY])
def test_other_family_members_through_constants(spec, name, constants):
    check_against_torchvision(spec, name, constants, macs=False)


def test_the_zoo_docs_give_what_check_computes():
    # docs/zoo.md's table: every spec, with the parameters and MACs `netspec check` gives
    import re
    from pathlib import Path

    import netspec

    root = Path(__file__).resolve().parents[1]
    rows = re.findall(
        r"^\| `(\w+)\.net` \| `\w+` \| ([\d,]+) \| ([\d.]+) G \|", (root / "docs" / "zoo.md").read_text(), re.M
    )
    assert sorted(r[0] for r in rows) == sorted(p.stem for p in (root / "examples" / "zoo").glob("*.net"))
    for spec, params, macs in rows:
        _, table = netspec.check(root / "examples" / "zoo" / f"{spec}.net")
        assert f"{table.total_params:,}" == params, spec
        assert f"{table.total_macs / 1e9:.3f}" == macs, spec


@pytest.mark.parametrize("spec", [z[0] for z in ZOO])
def test_check_at_several_sizes_and_the_smallest_input(spec, capsys):
    from netspec.cli import main

    with pytest.raises(SystemExit) as e:
        main(["check", f"examples/zoo/{spec}.net", "--input", "3x224x224,3x96x96"])
    out = capsys.readouterr().out
    assert e.value.code == 0, out
    assert out.rstrip().splitlines()[-1].startswith("smallest input: 3x")


@pytest.mark.slow
def test_a_zoo_spec_trains_on_the_offline_data(tmp_path):
    import json

    from netspec.cli import main

    with pytest.raises(SystemExit) as e:
        main(["train", "examples/zoo/resnet18.net", "--data", "shapes", "--input", "3x64x64", "--epochs", "1",
              "--train-limit", "256", "--test-limit", "64", "--out", str(tmp_path / "run"), "--quiet"])  # fmt: skip
    assert e.value.code == 0
    assert json.loads((tmp_path / "run" / "results.json").read_text())["total"] == 64
