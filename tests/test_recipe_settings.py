"""The `train` settings a fast recipe needs (issue #16): `validation N`, each held to what it must do."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from netspec.build import build
from netspec.shapes import infer
from netspec.training.checkpoint import load_checkpoint
from netspec.training.data import load_data
from netspec.training.ema import make_ema, update_ema
from netspec.training.evaluate import evaluate
from netspec.training.holdout import stratified_split
from netspec.training.loop import Compute, evaluate_model
from netspec.training.optim import param_groups
from netspec.training.settings import SpecSource

from spec_helpers import error_of, spec
from trainfixtures import TINY, train_cli


def _spec(tmp_path: Path, *settings: str) -> Path:
    p = tmp_path / "tiny.net"
    p.write_text(TINY.replace("    seed 3\n", "    seed 3\n" + "".join(f"    {s}\n" for s in settings)))
    return p


def _rows(run: Path) -> list[dict[str, str]]:
    with open(run / "metrics.csv") as f:
        return list(csv.DictReader(f))


# ---- validation N ----------------------------------------------------------------------------------------------


def test_the_validation_split_is_stratified_disjoint_and_fixed_by_the_seed():
    labels = torch.tensor([0] * 50 + [1] * 30 + [2] * 20)[
        torch.randperm(100, generator=torch.Generator().manual_seed(1))
    ]
    train, val = stratified_split(labels, 10, seed=4)
    assert torch.bincount(labels[val], minlength=3).tolist() == [5, 3, 2]  # each class its share
    assert sorted(train.tolist() + val.tolist()) == list(range(100))  # disjoint, nothing lost
    again_train, again_val = stratified_split(labels, 10, seed=4)
    assert torch.equal(val, again_val) and torch.equal(train, again_train)
    assert not torch.equal(val, stratified_split(labels, 10, seed=5)[1])  # another seed, other images
    # shares that do not divide evenly: the largest remainders get the rest (7 x 0.5, 0.3, 0.2 = 3.5, 2.1, 1.4)
    assert torch.bincount(labels[stratified_split(labels, 7, seed=0)[1]], minlength=3).tolist() == [4, 2, 1]


def test_validation_adds_its_columns_and_trains_on_the_rest(tmp_path):
    out = tmp_path / "run"
    train_cli(_spec(tmp_path, "validation 40"), out)
    rows = _rows(out)
    assert list(rows[0]) == [
        "epoch",
        "train_loss",
        "val_loss",
        "val_accuracy",
        "test_loss",
        "test_accuracy",
        "seconds",
        "images_per_s",
        "lr",
    ]
    assert len(rows) == 2 and all(float(r["val_loss"]) > 0 for r in rows)
    settings = json.loads((out / "settings.json").read_text())
    assert (settings["validation"], settings["train_images"]) == (40, 120)  # 160 images: 40 held out
    # the last row's validation numbers are the final weights on exactly the held-out images of the 160
    ckpt = load_checkpoint(out / "checkpoint.pt")
    net = SpecSource(ckpt["spec"]).elaborate(tuple(ckpt["input"]), json.loads(ckpt["constants"]))
    model = build(net, infer(net))
    model.load_state_dict(ckpt["model"])
    data = load_data("shapes", size=(16, 16), train_limit=160, test_limit=1, seed=3)
    _, val = stratified_split(data.train_labels, 40, seed=3)
    half = torch.full((3,), 0.5)
    e = evaluate_model(
        model,
        data.train_images[val],
        data.train_labels[val],
        10,
        50,
        Compute(torch.device("cpu"), "fp32", True, (half, half)),
    )
    assert (f"{e.loss:.6f}", f"{e.accuracy:.6f}") == (rows[-1]["val_loss"], rows[-1]["val_accuracy"])


def test_without_validation_metrics_keep_their_columns(tmp_path):
    out = tmp_path / "run"
    train_cli(_spec(tmp_path), out, "--epochs", "1")
    assert "val_loss" not in _rows(out)[0]
    assert json.loads((out / "settings.json").read_text())["train_images"] == 160


@pytest.mark.parametrize("setting", ["validation 30", "warmup 2", "tta flip"])
def test_a_resumed_run_ends_as_the_whole_run(tmp_path, setting):
    # the spec (its train section) is the run's: --resume restores every one of these settings with it
    spec_path = _spec(tmp_path, setting)
    train_cli(spec_path, tmp_path / "whole")
    train_cli(spec_path, tmp_path / "part", "--epochs", "1")
    train_cli(spec_path, tmp_path / "part", "--resume", "--epochs", "2")
    strip = [{k: v for k, v in r.items() if k not in ("seconds", "images_per_s")} for r in _rows(tmp_path / "whole")]
    assert strip == [
        {k: v for k, v in r.items() if k not in ("seconds", "images_per_s")} for r in _rows(tmp_path / "part")
    ]


@pytest.mark.parametrize("value,code", [("-1", "E061"), ("0.5", "E061"), ("many", "E061")])
def test_a_bad_validation_value_is_a_located_error(value, code):
    e = error_of(spec(f"layers {{ f Flatten() }}\ntrain {{ validation {value} }}"))
    assert e.code == code and "validation" in str(e) and e.loc is not None


def test_validation_of_every_training_image_is_refused_where_it_is_written(tmp_path, capsys):
    train_cli(_spec(tmp_path, "validation 160"), tmp_path / "run", expect=1, capsys=capsys)
    err = capsys.readouterr().err
    assert "tiny.net:20:16: error[E092]: validation 160 holds out all the 160 training images of shapes" in err


# ---- tta flip --------------------------------------------------------------------------------------------------


def test_tta_flip_averages_the_logits_of_each_image_and_its_mirror():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 5))
    images = torch.randint(0, 256, (23, 3, 8, 8), dtype=torch.uint8)
    labels = torch.randint(0, 5, (23,))
    cpu = torch.device("cpu")
    tta = evaluate_model(model, images, labels, 5, 10, Compute(cpu, "fp32", False, None, tta_flip=True))
    plain = evaluate_model(model, images, labels, 5, 10, Compute(cpu, "fp32", False, None))
    with torch.no_grad():
        x = images.float() / 255
        logits = (model(x) + model(x.flip(3))) / 2  # by hand: the mean of the two logits, then the loss
        loss = float(torch.nn.functional.cross_entropy(logits, labels))
        correct = int((logits.argmax(1) == labels).sum())
    assert tta.loss == pytest.approx(loss, rel=1e-6) and tta.correct == correct
    assert tta.loss != pytest.approx(plain.loss, rel=1e-6)  # the flip changed something


@pytest.mark.parametrize("value", ["rotate", "3", "true"])
def test_a_bad_tta_is_a_located_error(value):
    e = error_of(spec(f"layers {{ f Flatten() }}\ntrain {{ tta {value} }}"))
    assert e.code == "E061" and "tta" in str(e) and "'flip'" in str(e) and e.loc is not None


def test_evaluate_tests_with_the_runs_tta(tmp_path):
    out = tmp_path / "run"
    train_cli(_spec(tmp_path, "tta flip", "validation 20"), out, "--epochs", "1")
    results = json.loads((out / "results.json").read_text())
    assert json.loads((out / "settings.json").read_text())["tta"] == "flip"
    again = evaluate(out)
    assert (again["test_loss"], again["correct"], again["tta"]) == (
        results["final_test_loss"],
        results["correct"],
        "flip",
    )
    ckpt = load_checkpoint(out / "checkpoint.pt")
    net = SpecSource(ckpt["spec"]).elaborate(tuple(ckpt["input"]), json.loads(ckpt["constants"]))
    model = build(net, infer(net)).to(memory_format=torch.channels_last)
    model.load_state_dict(ckpt["model"])
    data = load_data("shapes", size=(16, 16), train_limit=1, test_limit=100, seed=3)
    half, cpu = torch.full((3,), 0.5), torch.device("cpu")
    plain = evaluate_model(model, data.test_images, data.test_labels, 10, 50, Compute(cpu, "fp32", True, (half, half)))
    assert plain.loss != pytest.approx(results["final_test_loss"], rel=1e-6)  # the run tested with the flip
    # `--tta none` tests the same model without the flip: exactly the plain numbers above
    off = evaluate(out, tta="none")
    assert (off["test_loss"], off["correct"], off["tta"]) == (pytest.approx(plain.loss, rel=1e-9), plain.correct, None)


# ---- ema DECAY -------------------------------------------------------------------------------------------------


def test_the_ema_is_the_hand_computed_average_of_the_weights_and_batchnorm_statistics():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    ema = make_ema(model, 0.75)
    hand: dict[str, torch.Tensor] | None = None
    for _ in range(4):
        loss = model(torch.randn(8, 3)).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        update_ema(ema, model)
        now = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if hand is None:
            hand = now  # the first step: a copy
        else:
            hand = {k: now[k] if not v.is_floating_point() else 0.75 * v + 0.25 * now[k] for k, v in hand.items()}
    got = ema.module.state_dict()
    assert hand is not None and set(got) == set(hand)
    for k in hand:
        assert torch.allclose(got[k], hand[k], atol=1e-6), k
    assert int(got["1.num_batches_tracked"]) == 4  # a count, copied
    assert not torch.allclose(got["0.weight"], model.state_dict()["0.weight"])  # an average, not the weights
    assert make_ema(model, None) is None


def test_a_run_with_ema_tests_the_average_and_evaluate_and_resume_use_it(tmp_path):
    spec_path = _spec(tmp_path, "ema 0.9")
    out = tmp_path / "run"
    train_cli(spec_path, out)
    ckpt = load_checkpoint(out / "checkpoint.pt")
    assert ckpt["ema"]["steps"] == 10  # 2 epochs of 160 images in batches of 32
    results = json.loads((out / "results.json").read_text())
    again = evaluate(out)
    assert (again["test_loss"], again["correct"]) == (results["final_test_loss"], results["correct"])
    net = SpecSource(ckpt["spec"]).elaborate(tuple(ckpt["input"]), json.loads(ckpt["constants"]))
    half, cpu = torch.full((3,), 0.5), torch.device("cpu")
    data = load_data("shapes", size=(16, 16), train_limit=1, test_limit=100, seed=3)
    losses = []
    for weights in (ckpt["ema"]["weights"], ckpt["model"]):
        model = build(net, infer(net)).to(memory_format=torch.channels_last)
        model.load_state_dict(weights)
        c = Compute(cpu, "fp32", True, (half, half))
        losses.append(evaluate_model(model, data.test_images, data.test_labels, 10, 50, c).loss)
    assert losses[0] == pytest.approx(results["final_test_loss"], rel=1e-9)  # the average was tested ...
    assert losses[1] != pytest.approx(results["final_test_loss"], rel=1e-6)  # ... not the trained weights
    assert evaluate(out, weights="trained")["test_loss"] == pytest.approx(losses[1], rel=1e-9)  # --weights trained
    assert again["weights"] == "ema"
    # resumed after epoch 1, the average continues from the checkpoint's: the same numbers as the whole run
    train_cli(spec_path, tmp_path / "part", "--epochs", "1")
    train_cli(spec_path, tmp_path / "part", "--resume", "--epochs", "2")
    same = ("train_loss", "test_loss", "test_accuracy")
    assert [[r[k] for k in same] for r in _rows(out)] == [[r[k] for k in same] for r in _rows(tmp_path / "part")]


def test_evaluate_weights_ema_of_a_run_without_an_average_says_so(tmp_path, capsys):
    from netspec.cli import main

    out = tmp_path / "run"
    train_cli(_spec(tmp_path), out, "--epochs", "1")
    r = evaluate(out)
    assert r["weights"] == "trained"
    with pytest.raises(SystemExit) as e:
        main(["evaluate", str(out), "--tta", "none"])
    assert e.value.code == 0  # the accuracy as the run's final line gives it: two decimals
    assert f"test accuracy: {100 * r['test_accuracy']:.2f}% ({r['correct']}/{r['total']})\n" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        main(["evaluate", str(out), "--weights", "ema"])
    assert e.value.code == 1
    assert "kept no moving average of its weights" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["0", "1.0", "1.5", "-0.5", "fast"])
def test_a_bad_ema_is_a_located_error(value):
    e = error_of(spec(f"layers {{ f Flatten() }}\ntrain {{ ema {value} }}"))
    assert e.code == "E061" and "ema" in str(e) and e.loc is not None


# ---- warmup N --------------------------------------------------------------------------------------------------


def _step_rates(monkeypatch, tmp_path, name, *settings):
    """The rate of every optimizer step of a 2-epoch run of TINY (5 steps an epoch) with `settings`."""
    rates: list[float] = []
    step = torch.optim.SGD.step

    def recording(self, *a, **kw):
        rates.append(self.param_groups[0]["lr"])
        return step(self, *a, **kw)

    monkeypatch.setattr(torch.optim.SGD, "step", recording)
    (tmp_path / name).mkdir()
    train_cli(_spec(tmp_path / name, *settings), tmp_path / name / "run")
    monkeypatch.setattr(torch.optim.SGD, "step", step)
    return rates, _rows(tmp_path / name / "run")


def test_warmup_raises_the_rate_linearly_over_its_epochs(monkeypatch, tmp_path):
    rates, rows = _step_rates(monkeypatch, tmp_path, "warm", "warmup 1")
    assert rates == pytest.approx([0.01, 0.02, 0.03, 0.04, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05])
    rates, rows = _step_rates(monkeypatch, tmp_path, "half", "warmup 2", "schedule StepLR(1, gamma=0.5)")
    # the schedule runs as it would without warm-up; its rate is scaled by step / (2 epochs x 5 steps)
    assert rates == pytest.approx([0.05 * (i + 1) / 10 for i in range(5)] + [0.025 * (i + 6) / 10 for i in range(5)])
    assert [float(r["lr"]) for r in rows] == pytest.approx([0.025, 0.025])  # each epoch's last step's rate


def test_warmup_scales_a_per_batch_schedule_without_changing_it(monkeypatch, tmp_path):
    plain, _ = _step_rates(monkeypatch, tmp_path, "plain", "schedule OneCycleLR()")
    warm, _ = _step_rates(monkeypatch, tmp_path, "warm", "schedule OneCycleLR()", "warmup 1")
    assert warm == pytest.approx([r * min(1, (i + 1) / 5) for i, r in enumerate(plain)])


@pytest.mark.parametrize("value", ["-1", "0.5", "true"])
def test_a_bad_warmup_is_a_located_error(value):
    e = error_of(spec(f"layers {{ f Flatten() }}\ntrain {{ warmup {value} }}"))
    assert e.code == "E061" and "warmup" in str(e) and e.loc is not None


# ---- no_decay_on_norms true ------------------------------------------------------------------------------------


def _groups(out: Path) -> list[tuple[int, float]]:
    """The checkpoint's optimizer groups: (how many parameters, weight decay)."""
    groups = load_checkpoint(out / "checkpoint.pt")["optimizer"]["param_groups"]
    return [(len(g["params"]), g["weight_decay"]) for g in groups]


def test_no_decay_on_norms_groups_conv_and_linear_weights_apart():
    net = SpecSource(TINY).elaborate(None, {})
    model = build(net, infer(net))
    names = {id(p): n for n, p in model.named_parameters()}
    groups = param_groups(model, True)
    assert [([names[id(p)] for p in g["params"]], g.get("weight_decay"), g.get("no_decay")) for g in groups] == [
        (["conv.weight", "fc.weight"], None, None),  # the optimizer's weight decay
        (["conv.bias", "bn.weight", "bn.bias", "fc.bias"], 0.0, True),
    ]
    assert list(param_groups(model, False)) == list(model.parameters())


def test_a_run_with_no_decay_on_norms_keeps_its_groups_through_resume(tmp_path):
    wd = "optimizer SGD(lr=0.05, momentum=0.9, weight_decay=0.01)"
    p = _spec(tmp_path, "no_decay_on_norms true")
    p.write_text(p.read_text().replace("optimizer SGD(lr=0.05, momentum=0.9)", wd))
    train_cli(p, tmp_path / "run", "--epochs", "1")
    assert _groups(tmp_path / "run") == [(2, 0.01), (4, 0.0)]
    # --weight-decay on --resume changes the decayed group only
    train_cli(p, tmp_path / "run", "--resume", "--epochs", "2", "--weight-decay", "0.02")
    assert _groups(tmp_path / "run") == [(2, 0.02), (4, 0.0)]
    # without the setting: one group, every parameter decayed
    plain = tmp_path / "plain"
    plain.mkdir()
    q = _spec(plain)
    q.write_text(q.read_text().replace("optimizer SGD(lr=0.05, momentum=0.9)", wd))
    train_cli(q, plain / "run", "--epochs", "1")
    assert _groups(plain / "run") == [(6, 0.01)]


@pytest.mark.parametrize("value", ["1", "yes", "'true'"])
def test_a_bad_no_decay_on_norms_is_a_located_error(value):
    e = error_of(spec(f"layers {{ f Flatten() }}\ntrain {{ no_decay_on_norms {value} }}"))
    assert e.code == "E061" and "no_decay_on_norms" in str(e) and e.loc is not None
