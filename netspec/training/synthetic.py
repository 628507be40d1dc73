"""`shapes`: a procedural data set of ten classes of coloured shapes, drawn at any size, needing no files."""

from __future__ import annotations

import contextlib
import hashlib
import math
from collections.abc import Iterator

import torch

from .images import ImageData, check_size

SHAPES_CLASSES: tuple[str, ...] = (
    "circle",
    "square",
    "triangle",
    "cross",
    "ring",
    "diamond",
    "hbar",
    "vbar",
    "star",
    "ellipse",
)
SHAPES_TRAIN = 5000
SHAPES_TEST = 1000


_SHAPES_CHUNK = 250  # images drawn per generator stream; a multiple of the 10 classes


def _shape_distance(k: int, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Approximate signed distance to shape k, in units of the shape radius (negative inside); v points down."""
    au, av = u.abs(), v.abs()
    rho = torch.hypot(u, v)
    name = SHAPES_CLASSES[k]
    if name == "circle":
        return rho - 0.95
    if name == "square":
        return torch.maximum(au, av) - 0.75
    if name == "triangle":  # equilateral, apex up
        c = math.sqrt(3) / 2
        return torch.maximum(v, torch.maximum(-c * u - 0.5 * v, c * u - 0.5 * v)) - 0.5
    if name == "cross":
        return torch.minimum(torch.maximum(au - 1.0, av - 0.3), torch.maximum(au - 0.3, av - 1.0))
    if name == "ring":
        return (rho - 0.72).abs() - 0.26
    if name == "diamond":
        return (au + av - 1.05) / math.sqrt(2)
    if name == "hbar":
        return torch.maximum(au - 1.0, av - 0.3)
    if name == "vbar":
        return torch.maximum(au - 0.3, av - 1.0)
    if name == "star":  # five sharp points, one up
        t = (torch.atan2(v, u) + math.pi / 2) * (5 / (2 * math.pi))
        tri = (2 * (t - t.floor()) - 1).abs()
        return (rho - (0.42 + 0.58 * tri)) * 0.6
    # ellipse
    return (torch.hypot(u, v / 0.55) - 1.0) * 0.7


def _stream_seed(seed: int, split: str, chunk: int) -> int:
    """A seed per (seed, split, chunk): independent streams for train and test, and prefix-stable limits (the first
    N images are the same whatever the limit, because each chunk has its own stream)."""
    digest = hashlib.sha256(f"netspec-shapes/{seed}/{split}/{chunk}".encode()).digest()
    return int.from_bytes(digest[:7], "little")


def _draw_shapes_chunk(gen: torch.Generator, count: int, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw the first `count` images of one chunk. The random draws are always made for a whole chunk, in a fixed
    order, so the images do not depend on `count`."""
    n, (h, w) = _SHAPES_CHUNK, size
    labels = torch.argsort(torch.rand(n // 10, 10, generator=gen), dim=1).reshape(-1)  # balanced every 10
    radius = (0.2 + 0.14 * torch.rand(n, generator=gen)) * min(h, w)
    fx, fy = torch.rand(n, generator=gen), torch.rand(n, generator=gen)
    angle = (torch.rand(n, generator=gen) - 0.5) * 0.6  # +-17 degrees: square and diamond stay distinct
    bg = 0.15 + 0.7 * torch.rand(n, 3, generator=gen)
    # the shape is darker than a light background and lighter than a dark one, in every channel by 0.3..0.6: random
    # colours, but edges of one sign across channels, which small CNNs pick up within an epoch or two
    delta = 0.3 + 0.3 * torch.rand(n, 3, generator=gen)
    fg = (bg + torch.where(bg.mean(1, keepdim=True) > 0.5, -delta, delta)).clamp(0, 1)
    noise = torch.randn(n, 3, h, w, generator=gen) * 0.035
    sl = slice(0, count)
    labels, radius, angle, bg, fg, noise = labels[sl], radius[sl], angle[sl], bg[sl], fg[sl], noise[sl]
    cx = radius + (w - 2 * radius).clamp(min=0) * fx[sl]
    cy = radius + (h - 2 * radius).clamp(min=0) * fy[sl]
    xs = (torch.arange(w, dtype=torch.float32) + 0.5)[None, None, :]
    ys = (torch.arange(h, dtype=torch.float32) + 0.5)[None, :, None]
    dx = (xs - cx[:, None, None]) / radius[:, None, None]
    dy = (ys - cy[:, None, None]) / radius[:, None, None]
    cos, sin = angle.cos()[:, None, None], angle.sin()[:, None, None]
    u, v = cos * dx + sin * dy, cos * dy - sin * dx
    dist = torch.empty(count, h, w)
    for k in range(len(SHAPES_CLASSES)):
        idx = (labels == k).nonzero().squeeze(1)
        if len(idx):
            dist[idx] = _shape_distance(k, u[idx], v[idx])
    alpha = (0.5 - dist * radius[:, None, None]).clamp(0, 1)[:, None]  # ~1 px antialiased edge
    img = bg[:, :, None, None] * (1 - alpha) + fg[:, :, None, None] * alpha + noise
    return (img.clamp(0, 1) * 255).round().to(torch.uint8), labels.to(torch.int64)


def _draw_shapes(seed: int, split: str, count: int, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = [], []
    for chunk in range(math.ceil(count / _SHAPES_CHUNK)):
        gen = torch.Generator().manual_seed(_stream_seed(seed, split, chunk))
        x, y = _draw_shapes_chunk(gen, min(_SHAPES_CHUNK, count - chunk * _SHAPES_CHUNK), size)
        images.append(x)
        labels.append(y)
    return torch.cat(images), torch.cat(labels)


@contextlib.contextmanager
def _one_torch_thread() -> Iterator[None]:
    """Run many small torch ops on one thread: they gain little from intra-op threads, and on a busy machine each
    op's thread synchronisation can cost a scheduler slice (measured: 0.8 s single-threaded vs 2.5-7 s with two
    threads under load). Limit: torch's thread count is process-wide, so another thread running torch meanwhile is
    also limited to one thread until this returns."""
    before = torch.get_num_threads()
    if before == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def make_shapes(
    size: tuple[int, int] = (32, 32), train_limit: int | None = None, test_limit: int | None = None, seed: int = 0
) -> ImageData:
    """The built-in `shapes` data set: 10 classes of coloured shapes at random position, scale, small rotation and
    colours, with mild noise; 5,000 train and 1,000 test images (limits keep a prefix), drawn at `size`.

    Deterministic: the same seed gives identical bytes (on one torch version). Needs no files and no network, so any
    spec can be trained and tested offline.
    """
    size = check_size(size) or (32, 32)
    n_train = min(SHAPES_TRAIN, train_limit or SHAPES_TRAIN)
    n_test = min(SHAPES_TEST, test_limit or SHAPES_TEST)
    with _one_torch_thread():
        train_x, train_y = _draw_shapes(seed, "train", n_train, size)
        test_x, test_y = _draw_shapes(seed, "test", n_test, size)
    notes = [f"shapes: generated {n_train} train / {n_test} test images at {size[0]}x{size[1]} (seed {seed})"]
    return ImageData("shapes", train_x, train_y, test_x, test_y, list(SHAPES_CLASSES), notes)
