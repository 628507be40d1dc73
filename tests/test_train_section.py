"""The `train` section (docs/language.md#train): defaults, every setting, data set names, inferred schedule and
crop arguments, and the mistakes."""

from __future__ import annotations

import pytest

from spec_helpers import error_of, net_of, spec

# ---- train ---------------------------------------------------------------------------------------------------------


def test_train_defaults():
    for text in (spec("layers { f Flatten() }"), spec("layers { f Flatten() }\ntrain { }")):
        t = net_of(text).train
        assert (t.data, t.epochs, t.batch_size, t.test_batch_size, t.seed, t.label_smoothing) == (
            "shapes",
            10,
            128,
            1000,
            0,
            0.0,
        )
        assert (t.optimizer.kind(), t.optimizer.lr, t.optimizer.momentum) == ("SGD", 0.01, 0.9)
        assert (t.schedule, t.augment, t.normalize) == (None, (), None)


def test_train_every_setting():
    t = net_of(
        spec("""opt = Adam(lr=3e-4, betas=(0.9, 0.99))
layers { f Flatten() }
train {
    data cifar100  epochs 7  batch_size 64  test_batch_size 500  seed 3  label_smoothing 0.1
    optimizer opt
    schedule MultiStepLR((3, 5), gamma=0.5)
    augment [RandomCrop(padding=(1, 2)), RandomHorizontalFlip(0.25), RandomVerticalFlip, ColorJitter(0.1, 0.2),
             RandomRotation((-10, 10))]
    normalize Normalize((0.5, 0.4, 0.3), (0.2, 0.2, 0.2))
}""")
    ).train
    assert (t.data, t.epochs, t.batch_size, t.test_batch_size, t.seed, t.label_smoothing) == (
        "cifar100",
        7,
        64,
        500,
        3,
        0.1,
    )
    assert (t.optimizer.kind(), t.optimizer.lr, t.optimizer.betas) == ("Adam", 3e-4, (0.9, 0.99))
    assert (t.schedule.kind(), t.schedule.milestones, t.schedule.gamma) == ("MultiStepLR", (3, 5), 0.5)
    assert [a.kind() for a in t.augment] == [
        "RandomCrop",
        "RandomHorizontalFlip",
        "RandomVerticalFlip",
        "ColorJitter",
        "RandomRotation",
    ]
    assert (t.augment[0].size, t.augment[0].padding, t.augment[1].p, t.augment[4].degrees) == (
        (8, 8),
        (1, 2),
        0.25,
        (-10, 10),
    )
    assert (t.normalize.mean, t.normalize.std) == ((0.5, 0.4, 0.3), (0.2, 0.2, 0.2))


@pytest.mark.parametrize(
    "word,name",
    [
        ("tiny-imagenet", "tiny-imagenet"),
        ("fashion-mnist", "fashion-mnist"),
        ("tiny_imagenet", "tiny-imagenet"),
        ("cifar-10", "cifar10"),
        ("CIFAR10", "cifar10"),
        ("'data/my folder'", "data/my folder"),
        ("mnist", "mnist"),
    ],
)
def test_data_names(word, name):
    assert net_of(spec(f"layers {{ f Flatten() }}\ntrain {{ data {word} }}")).train.data == name


def test_unknown_data_name_is_an_error_at_the_word():
    e = error_of(spec("layers { f Flatten() }\ntrain { data tiny-imagnet }"))
    assert e.code == "E065" and (e.loc.line, e.loc.column) == (3, 14) and "'tiny-imagenet'" in e.hint


def test_schedule_inference():
    t = net_of(spec("layers { f Flatten() }\ntrain { epochs 12 schedule CosineAnnealingLR() }")).train
    assert t.schedule.T_max == 12
    t = net_of(spec("layers { f Flatten() }\ntrain { epochs 12 schedule CosineAnnealingLR(5) }")).train
    assert t.schedule.T_max == 5
    t = net_of(spec("layers { f Flatten() }\ntrain { optimizer SGD(lr=0.2) schedule OneCycleLR() }")).train
    assert t.schedule.max_lr == 0.2
    t = net_of(spec("layers { f Flatten() }\ntrain { schedule None }")).train
    assert t.schedule is None


def test_random_crop_size_is_the_input_size():
    text = spec("layers { f Flatten() }\ntrain { augment [RandomCrop(padding=4)] }")
    assert net_of(text).train.augment[0].size == (8, 8)
    assert net_of(text, input=(3, 64, 48)).train.augment[0].size == (64, 48)
    assert net_of(text.replace("RandomCrop(padding=4)", "RandomCrop(8, padding=4)")).train.augment[0].size == 8
    e = error_of(text.replace("RandomCrop(padding=4)", "RandomCrop(6, padding=4)"))
    assert e.code == "E062" and (e.loc.line, e.loc.column) == (3, 18)
    assert "6x6 images, but the input is 8x8" in e.message


@pytest.mark.parametrize(
    "setting,code",
    [
        ("lr 0.1", "E060"),
        ("epochs 3 epochs 4", "E060"),
        ("epochs 0", "E061"),
        ("batch_size '128'", "E061"),
        ("epochs 2.5", "E061"),
        ("optimizer SDG()", "E064"),
        ("augment [ToTensor()]", "E064"),
        ("augment [Normalize((0.5,), (0.5,))]", "E064"),
        ("optimizer 'SGD'", "E063"),
        ("epochs ten", "E061"),
        ("normalize Normalize((0.5, 0.5), (0.5,))", "E066"),
        ("normalize Normalize((0.5,), (0.0,))", "E036"),
    ],
)
def test_train_errors(setting, code):
    assert error_of(spec(f"layers {{ f Flatten() }}\ntrain {{ {setting} }}")).code == code
