"""The `validation N` setting: N training images held out, stratified by class and fixed by the seed.

The held-out images are never trained on; each epoch tests the model on them (metrics.csv's `val_loss` and
`val_accuracy`), so settings can be chosen on them without ever looking at the test set. The split is drawn after
`--train-limit` (from the images the run would otherwise train on) and depends on the labels and the seed alone,
so a resumed run holds out the same images.

>>> labels = torch.tensor([0, 0, 0, 0, 1, 1])
>>> train, val = stratified_split(labels, 3, seed=0)
>>> sorted(labels[val].tolist()), len(train)
([0, 0, 1], 3)
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import Tensor

from ..errors import SpecError
from ..lang import Network
from .images import ImageData
from .loop import epoch_seed


def stratified_split(labels: Tensor, n: int, seed: int) -> tuple[Tensor, Tensor]:
    """(train indices, validation indices), both ascending: `n` of the indices of `labels`, each class given its
    share of `n` (largest remainders, ties to the lower class), drawn at random from the class with the seed."""
    counts = torch.bincount(labels).tolist()
    total = len(labels)
    exact = [n * c / total for c in counts]
    quota = [int(e) for e in exact]
    by_remainder = sorted(range(len(counts)), key=lambda k: (quota[k] - exact[k], k))
    for k in by_remainder[: n - sum(quota)]:
        quota[k] += 1
    g = torch.Generator().manual_seed(epoch_seed(seed, 0, 2))  # epoch 0 is never trained: no stream is shared
    picked = []
    for k, q in enumerate(quota):
        members = (labels == k).nonzero().flatten()
        picked.append(members[torch.randperm(len(members), generator=g)[:q]])
    val = torch.cat(picked).sort().values if picked else torch.zeros(0, dtype=torch.int64)
    keep = torch.ones(total, dtype=torch.bool)
    keep[val] = False
    return keep.nonzero().flatten(), val


def hold_out(net: Network, n: int, seed: int, data: ImageData) -> tuple[ImageData, tuple[Tensor, Tensor] | None]:
    """The data with `n` training images held out, and those images with their labels (None when `n` is 0)."""
    if n == 0:
        return data, None
    have = len(data.train_labels)
    if n >= have:
        raise SpecError(
            f"validation {n} holds out {'more than' if n > have else 'all'} the {have} training images of "
            f"{data.name}, leaving none to train on",
            net.train_locs.get("validation"),
            hint=f"hold out fewer than {have} images (or raise --train-limit)",
            code="E092",
        ).attach(net.filename, net.source)
    train, val = stratified_split(data.train_labels, n, seed)
    kept = replace(data, train_images=data.train_images[train], train_labels=data.train_labels[train])
    kept.notes = [*data.notes, f"{n} training images held out for validation, {have - n} trained on"]
    return kept, (data.train_images[val], data.train_labels[val])
