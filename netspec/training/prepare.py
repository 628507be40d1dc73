"""The spec elaborated for the data a run trains on: the data loaded (and `validation N` held out of it), the spec
elaborated again where the data set changes its classes or channels, and the network held to the data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..errors import SpecError
from ..lang import Network
from ..lang.train_section import TrainSpec
from ..shapes import ShapeTable, infer
from .data import ImageData, load_data
from .holdout import hold_out
from .report import Log
from .settings import Request, resolve_train


@dataclass(frozen=True)
class Prepared:
    """The spec elaborated for the data: network, shape table, train settings, the data, and what was asked for."""

    net: Network
    table: ShapeTable
    train: TrainSpec
    data: ImageData
    constants: dict[str, Any]  # the --set values, plus `classes` when the data set decided it
    requested_input: tuple[int, int, int]  # --input, or the spec's; the data set may change its channels
    val: tuple[torch.Tensor, torch.Tensor] | None = None  # `validation N`: the held-out images and labels


def prepare(req: Request, log: Log) -> Prepared:
    """The data, and the spec elaborated again only if the data set changes its classes or its channels."""
    net, opts, t = req.net, req.opts, req.train
    h, w = net.input[1], net.input[2]
    limits = {"train_limit": opts.train_limit, "test_limit": opts.test_limit}
    data = load_data(t.data, opts.data_dir, size=(h, w), **limits, download=opts.download, seed=t.seed)
    for note in data.notes:
        log(f"data: {note}")
    constants = dict(opts.constants)
    changed = False
    if "classes" in net.constants and net.constants["classes"] != data.num_classes:
        log(
            f"classes: {net.constants['classes']} in the spec, {data.num_classes} in {data.name}: using {data.num_classes}"
        )
        constants["classes"] = data.num_classes
        changed = True
    if net.input[0] != data.channels:
        log(f"input channels: {net.input[0]} in the spec, {data.channels} in {data.name}: using {data.channels}")
        changed = True
    table = req.table
    if changed:
        net = req.source.elaborate((data.channels, h, w), constants)
        table, t = infer(net), resolve_train(net, opts)
    _check_fits(net, table, t, data)
    data, val = hold_out(net, t.validation, t.seed, data)  # after the limits, before anything trains
    return Prepared(net, table, t, data, constants, req.net.input, val)


def _check_fits(net: Network, table: ShapeTable, t: TrainSpec, data: ImageData) -> None:
    """The network's output and the normalization must fit the data set's classes and channels."""
    if table.output != (data.num_classes,):
        raise SpecError(
            f"the network outputs {'x'.join(map(str, table.output))} values per image, but "
            f"{data.name} has {data.num_classes} classes",
            table.rows[-1].loc,
            hint="end with Linear(classes) and define `classes = N` so the data set can set it",
            code="E090",
        ).attach(net.filename, net.source)
    norm = t.normalize
    if (
        norm is not None
        and len(norm.mean) not in (1, data.channels)
        and not (len(set(norm.mean)) == 1 and len(set(norm.std)) == 1)
    ):
        raise SpecError(
            f"normalize has {len(norm.mean)} means for {data.channels}-channel images",
            net.train_locs.get("normalize"),
            code="E091",
        ).attach(net.filename, net.source)
