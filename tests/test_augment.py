"""Batched augmentation vs torchvision: same pixels for the same parameters, same parameter distributions.

Each batched op returns the parameters it drew (`return_params=True`); the reference applies torchvision's own
per-image functional ops with those parameters. Distribution tests draw ~10-20k parameters and allow 5 sigma.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from netspec.lang import TRANSFORMS as T
from netspec.training import augment as A
from pydantic import ValidationError
from torchvision.transforms import Normalize
from torchvision.transforms import functional as TF1
from torchvision.transforms.v2 import ColorJitter, InterpolationMode
from torchvision.transforms.v2 import functional as TF

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def batch(n: int, c: int = 3, h: int = 32, w: int = 32, seed: int = 0) -> torch.Tensor:
    """A random uint8 batch (N, C, H, W)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, c, h, w), dtype=torch.uint8, generator=g)


def gen(seed: int = 0, device: str = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def within_sigmas(observed: float, expected: float, sigma: float, k: float = 5.0) -> bool:
    return abs(observed - expected) <= k * sigma


def tv_jitter(img: torch.Tensor, params: dict, i: int, cj: ColorJitter) -> torch.Tensor:
    """torchvision's ColorJitter applied to image i with the factors and op order the batched op drew for it."""

    def factor(name: str) -> float | None:
        return None if params[name] is None else float(params[name][i])

    return cj.transform(
        img,
        dict(
            fn_idx=params["order"][i],
            brightness_factor=factor("brightness"),
            contrast_factor=factor("contrast"),
            saturation_factor=factor("saturation"),
            hue_factor=factor("hue"),
        ),
    )


# ------------------------------------------------------------------------------------------------------------ crop


@pytest.mark.parametrize("c", [1, 3])
@pytest.mark.parametrize(
    "padding,fill,size", [(4, 0, (32, 32)), ((2, 3), 0, (30, 28)), ((1, 2, 3, 4), 7, (32, 32)), (0, 0, (20, 24))]
)
def test_crop_matches_torchvision(c, padding, fill, size):
    x = batch(64, c)
    out, p = A.random_crop(x, size, padding, gen(1), fill=fill, return_params=True)
    assert out.shape == (64, c, *size) and out.dtype == torch.uint8
    for i in range(64):
        ref = TF.crop(TF.pad(x[i], padding, fill=fill), int(p["top"][i]), int(p["left"][i]), *size)
        assert torch.equal(out[i], ref), i


def test_crop_offsets_uniform_over_inclusive_range():
    n = 18000
    x = torch.zeros(n, 1, 4, 4, dtype=torch.uint8)
    _, p = A.random_crop(x, (4, 4), padding=4, generator=gen(2), return_params=True)  # offsets 0..8
    for key in ("top", "left"):
        counts = torch.bincount(p[key], minlength=9)
        assert len(counts) == 9 and counts.min() > 0  # both extremes 0 and 8 occur, nothing beyond
        sigma = math.sqrt(n * (1 / 9) * (8 / 9))
        assert all(within_sigmas(float(k), n / 9, sigma) for k in counts), counts
    assert abs(torch.corrcoef(torch.stack([p["top"], p["left"]]).float())[0, 1]) < 0.05  # independent


def test_crop_without_room_is_identity_and_too_large_raises():
    x = batch(8)
    assert torch.equal(A.random_crop(x, 32, 0, gen()), x)
    with pytest.raises(ValueError, match="larger"):
        A.random_crop(x, (40, 40), padding=2, generator=gen())


def test_crop_at_is_the_deterministic_core():
    x = batch(3, 3, 8, 8)
    out = A.crop_at(x, torch.tensor([0, 2, 4]), torch.tensor([4, 0, 1]), (4, 4))
    for i, (top, left) in enumerate([(0, 4), (2, 0), (4, 1)]):
        assert torch.equal(out[i], x[i, :, top : top + 4, left : left + 4])


# ----------------------------------------------------------------------------------------------------------- flips


@pytest.mark.parametrize("fn,ref", [(A.random_hflip, TF.horizontal_flip), (A.random_vflip, TF.vertical_flip)])
@pytest.mark.parametrize("c", [1, 3])
def test_flip_matches_torchvision(fn, ref, c):
    x = batch(64, c, 16, 20)
    out, p = fn(x, 0.5, gen(3), return_params=True)
    assert 0 < int(p["flip"].sum()) < 64
    for i in range(64):
        assert torch.equal(out[i], ref(x[i]) if p["flip"][i] else x[i])


@pytest.mark.parametrize("p", [0.0, 0.3, 0.5, 1.0])
def test_flip_rate(p):
    n = 10000
    _, params = A.random_hflip(torch.zeros(n, 1, 1, 2, dtype=torch.uint8), p, gen(4), return_params=True)
    rate = params["flip"].float().mean().item()
    assert within_sigmas(rate, p, math.sqrt(p * (1 - p) / n)), rate


# ---------------------------------------------------------------------------------------------------- color jitter

JITTERS = [
    dict(brightness=0.4),
    dict(contrast=0.4),
    dict(saturation=0.4),
    dict(hue=0.1),
    dict(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1),
    dict(brightness=(0.2, 1.8), contrast=1.0, saturation=(0.0, 2.0), hue=(-0.5, 0.5)),
]


@pytest.mark.parametrize("kw", JITTERS, ids=lambda kw: ",".join(kw))
@pytest.mark.parametrize("c", [1, 3])
def test_color_jitter_matches_torchvision(kw, c):
    x = batch(32, c, 24, 20, seed=5)
    out, p = A.color_jitter(x, generator=gen(6), return_params=True, **kw)
    cj = ColorJitter(**kw)
    for i in range(32):
        assert torch.equal(out[i], tv_jitter(x[i], p, i, cj)), i


def test_color_jitter_matches_torchvision_on_flat_and_saturated_images():
    """Grey pixels (h undefined), pure colours and 0/255 extremes: the edge cases of the HSV round trip."""
    x = torch.tensor([0, 255, 128, 1, 254], dtype=torch.uint8)[torch.randint(0, 5, (64, 3, 8, 8), generator=gen(7))]
    x[:16] = x[:16, :1]  # grey images
    out, p = A.color_jitter(x, 0.5, 0.5, 0.5, 0.5, generator=gen(8), return_params=True)
    cj = ColorJitter(0.5, 0.5, 0.5, 0.5)
    for i in range(64):
        assert torch.equal(out[i], tv_jitter(x[i], p, i, cj)), i


def test_color_jitter_default_is_free_noop():
    x = batch(4)
    g = gen(9)
    state = g.get_state()
    out, p = A.color_jitter(x, generator=g, return_params=True)
    assert out is x and all(v is None for v in p.values())
    assert torch.equal(g.get_state(), state)  # drew nothing
    assert A.BatchAugment([T["ColorJitter"]()], (32, 32))(x) is x


@pytest.mark.parametrize(
    "name,value,lo,hi",
    [
        ("brightness", 0.4, 0.6, 1.4),
        ("contrast", 1.5, 0.0, 2.5),
        ("saturation", (0.5, 0.9), 0.5, 0.9),
        ("hue", 0.1, -0.1, 0.1),
    ],
)
def test_color_jitter_factor_distribution(name, value, lo, hi):
    n = 20000
    p = A.jitter_params(n, generator=gen(10), **{name: value})
    f = p[name]
    assert f.dtype == torch.float32 and f.shape == (n,)
    assert f.min() >= lo and f.max() <= hi
    assert f.min() < lo + 0.01 * (hi - lo) and f.max() > hi - 0.01 * (hi - lo)  # spans the whole range
    sd = (hi - lo) / math.sqrt(12)
    assert within_sigmas(f.mean().item(), (lo + hi) / 2, sd / math.sqrt(n))
    assert within_sigmas(f.std().item(), sd, 0.01 * (hi - lo))  # uniform, not e.g. concentrated in the middle
    assert all(p[other] is None for other in A.JITTER_OPS if other != name)


def test_color_jitter_order_covers_all_permutations_uniformly():
    n = 12000
    order = A.jitter_params(n, brightness=0.1, generator=gen(11))["order"]
    assert torch.equal(order.sort(dim=1).values, torch.arange(4).expand(n, 4))  # each row is a permutation
    perms = {p: 0 for p in itertools.permutations(range(4))}
    for row in order.tolist():
        perms[tuple(row)] += 1
    assert len(perms) == 24 and min(perms.values()) > 0
    sigma = math.sqrt(n * (1 / 24) * (23 / 24))
    assert all(within_sigmas(k, n / 24, sigma) for k in perms.values()), perms


@pytest.mark.parametrize("kw", [dict(hue=0.6), dict(brightness=-0.1), dict(contrast=(1.5, 0.5)), dict(hue=(0, 1))])
def test_color_jitter_rejects_what_torchvision_rejects(kw):
    with pytest.raises(ValueError):
        A.color_jitter(batch(2), **kw)
    with pytest.raises(ValueError):
        ColorJitter(**kw)


# -------------------------------------------------------------------------------------------------------- rotation


def rotate_ref(x: torch.Tensor, angles: torch.Tensor, fill: int = 0) -> torch.Tensor:
    return torch.stack(
        [
            TF.rotate(x[i], float(angles[i]), interpolation=InterpolationMode.NEAREST, fill=fill)
            for i in range(x.shape[0])
        ]
    )


@pytest.mark.parametrize("c,h,w,fill", [(3, 32, 32, 0), (1, 28, 28, 0), (3, 24, 31, 5), (1, 33, 17, 255)])
def test_rotation_matches_torchvision(c, h, w, fill):
    x = batch(32, c, h, w, seed=12)
    out, p = A.random_rotation(x, 180, gen(13), fill=fill, return_params=True)
    same = (out == rotate_ref(x, p["angle"], fill)).all(dim=1).float().mean().item()  # fraction of equal pixels
    # nearest rounding at a pixel boundary could go either way; measured: 100% identical on CPU
    assert same >= 0.999, same


@pytest.mark.parametrize("h,w", [(32, 32), (24, 31)])
@pytest.mark.parametrize("angle", [0.0, 90.0, 180.0, 270.0, -90.0, 360.0, 45.0])
def test_rotation_exact_at_fixed_angles(angle, h, w):
    x = batch(8, 3, h, w, seed=14)
    angles = torch.full((8,), angle)
    assert torch.equal(A.rotate_batch(x, angles), rotate_ref(x, angles))


def test_rotation_positive_angle_is_counter_clockwise():
    x = torch.zeros(1, 1, 5, 5, dtype=torch.uint8)
    x[0, 0, 0, 2] = 255  # top centre
    out = A.rotate_batch(x, torch.tensor([90.0]))
    assert out[0, 0, 2, 0] == 255 and out.sum() == 255  # -> left centre


@pytest.mark.parametrize("degrees,lo,hi", [(30, -30.0, 30.0), ((10, 20), 10.0, 20.0)])
def test_rotation_angle_distribution(degrees, lo, hi):
    n = 20000
    a = A.rotation_params(n, degrees, gen(15))
    assert a.min() >= lo and a.max() <= hi
    counts = torch.histc(a, bins=10, min=lo, max=hi)
    sigma = math.sqrt(n * 0.1 * 0.9)
    assert all(within_sigmas(float(k), n / 10, sigma) for k in counts), counts
    assert within_sigmas(a.mean().item(), (lo + hi) / 2, (hi - lo) / math.sqrt(12 * n))


# ---------------------------------------------------------------------------------------------- resize, normalize


@pytest.mark.parametrize("c", [1, 3])
@pytest.mark.parametrize("src,dst", [((32, 32), (64, 64)), ((48, 40), (20, 27))])
def test_resize_matches_torchvision(c, src, dst):
    x = batch(8, c, *src, seed=16)
    out = A.resize(x, dst)
    assert out.dtype == torch.uint8 and out.shape == (8, c, *dst)
    for i in range(8):
        assert torch.equal(out[i], TF.resize(x[i], list(dst), antialias=True))


@pytest.mark.parametrize("c", [1, 3])
def test_normalize_matches_to_tensor_and_normalize(c):
    x = batch(6, c, 8, 9, seed=17)
    mean, std = [0.4914, 0.4822, 0.4465][:c], [0.2470, 0.2435, 0.2616][:c]
    out = A.normalize(x, mean, std)
    assert out.dtype == torch.float32
    for i in range(6):
        ref = Normalize(mean, std)(TF1.to_tensor(TF1.to_pil_image(x[i])))
        assert torch.equal(out[i], ref)
    assert A.normalize(x, mean, std, dtype=torch.float64).dtype == torch.float64


# ----------------------------------------------------------------------------------------- generic op properties

OPS = {
    "crop": lambda x, g: A.random_crop(x, (32, 32), 4, g),
    "hflip": lambda x, g: A.random_hflip(x, 0.5, g),
    "vflip": lambda x, g: A.random_vflip(x, 0.5, g),
    "jitter": lambda x, g: A.color_jitter(x, 0.4, 0.4, 0.4, 0.1, g),
    "rotation": lambda x, g: A.random_rotation(x, 30, g),
}


@pytest.mark.parametrize("name", list(OPS))
@pytest.mark.parametrize("c", [1, 3])
def test_same_seed_same_output_and_dtype_shape_kept(name, c):
    x = batch(32, c)
    a, b, other = OPS[name](x, gen(20)), OPS[name](x, gen(20)), OPS[name](x, gen(21))
    assert torch.equal(a, b) and not torch.equal(a, other)
    assert a.dtype == torch.uint8 and a.shape == x.shape and a.device == x.device
    assert torch.equal(x, batch(32, c))  # input untouched


@pytest.mark.parametrize("name", list(OPS))
def test_empty_batch_and_default_generator(name):
    assert OPS[name](batch(0), None).shape == (0, 3, 32, 32)
    assert OPS[name](batch(5), None).shape == (5, 3, 32, 32)


@pytest.mark.parametrize(
    "bad",
    [torch.zeros(2, 3, 8, 8), torch.zeros(3, 8, 8, dtype=torch.uint8), torch.zeros(2, 4, 8, 8, dtype=torch.uint8)],
)
def test_rejects_non_uint8_nchw_batches(bad):
    with pytest.raises(ValueError):
        A.random_hflip(bad)


@CUDA
def test_cuda_matches_cpu_for_the_same_params():
    x = batch(64, 3, 32, 32, seed=22)
    xc = x.cuda()
    g = gen(23, "cuda")
    out, p = A.random_crop(xc, 32, 4, g, return_params=True)
    assert out.is_cuda and torch.equal(out.cpu(), A.crop_at(A.pad(x, 4), p["top"].cpu(), p["left"].cpu(), (32, 32)))
    out, p = A.color_jitter(xc, 0.4, 0.4, 0.4, 0.1, g, return_params=True)
    cj = ColorJitter(0.4, 0.4, 0.4, 0.1)
    ref = torch.stack([tv_jitter(xc[i], p, i, cj) for i in range(64)])  # torchvision on CUDA
    assert (out != ref).float().mean() < 1e-3
    out, p = A.random_rotation(xc, 30, g, return_params=True)
    assert (out == rotate_ref(xc, p["angle"])).float().mean() >= 0.999


# ---------------------------------------------------------------------------------------------------- pipeline


FULL = [
    T["RandomCrop"](padding=4),
    T["RandomHorizontalFlip"](p=0.5),
    T["ColorJitter"](brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1),
    T["RandomRotation"](degrees=30.0),
    T["RandomVerticalFlip"](p=0.5),
    T["Resize"](size=(64, 64)),
]


def test_pipeline_is_the_composition_of_the_ops():
    x = batch(16)
    out = A.BatchAugment(FULL, (32, 32))(x, gen(30))
    g = gen(30)
    y = A.random_crop(x, (32, 32), 4, g)
    y = A.random_hflip(y, 0.5, g)
    y = A.color_jitter(y, 0.4, 0.4, 0.4, 0.1, g)
    y = A.random_rotation(y, 30, g)
    y = A.random_vflip(y, 0.5, g)
    y = A.resize(y, (64, 64))
    assert torch.equal(out, y) and out.shape == (16, 3, 64, 64) and out.dtype == torch.uint8


def test_pipeline_reproducible_and_crop_size_defaults_to_pipeline_size():
    aug = A.BatchAugment([T["RandomCrop"](padding=2), T["RandomHorizontalFlip"]()], (28, 28))
    x = batch(16, 1, 28, 28)
    assert torch.equal(aug(x, gen(31)), aug(x, gen(31)))
    assert aug(x).shape == (16, 1, 28, 28) and len(aug) == 2 and "RandomCrop" in repr(aug)


@pytest.mark.parametrize(
    "name,kwargs",
    [
        ("RandomCrop", {"padding": 4, "padding_mode": "reflect"}),
        ("RandomCrop", {"padding": 4, "pad_if_needed": True}),
        ("RandomHorizontalFlip", {"prob": 0.5}),
        ("RandomHorizontalFlip", {"p": 1.5}),
        ("RandomRotation", {"degrees": 10.0, "expand": True}),
        ("RandomRotation", {}),
        ("ColorJitter", {"hue": 0.7}),
        ("Resize", {"size": 64, "interpolation": "bicubic"}),
    ],
)
def test_what_batched_augmentation_does_not_implement_is_refused_by_the_one_validator(name, kwargs):
    # BatchAugment takes validated models; the models (pydantic) refuse every option it does not implement
    with pytest.raises(ValidationError):
        T[name](**kwargs)
    assert "RandomErasing" not in T


def test_every_transform_of_the_language_has_a_batched_step():
    assert set(T) == set(A._STEPS)
