"""The shape oracle shared by `test_shapes.py` and `test_fuzz.py`: the static shape table must agree EXACTLY with
torch (shapes of every row, per-row and total parameters, torchinfo's parameter and mult-add totals); and the test
helpers around it (located errors, a time limit, one torch thread, warning filters).

Imported by the test modules as `oracle` (pytest puts `tests/` on sys.path: the folder has no __init__.py).
"""

from __future__ import annotations

import itertools
import math
import signal
from collections import defaultdict
from contextlib import contextmanager

import netspec
import pytest
import torch
import torchinfo
from netspec.errors import SpecError
from torch import nn

# ----------------------------------------------------------------------------------------------------------------
# The oracle
# ----------------------------------------------------------------------------------------------------------------


def _is_function_row(row) -> bool:
    return row.step == "function"  # relu(), flatten(): `forward` functions, no module


def _torchinfo_macs(module: nn.Module, out_shape: tuple[int, ...]) -> int:
    """torchinfo's formula (LayerInfo.calculate_macs) for one call at batch size 1."""
    macs = 0
    for name, p in module.named_parameters(recurse=False):
        if name in ("weight", "bias"):
            if "Conv" in type(module).__name__:
                macs += p.numel() * math.prod(out_shape[2:])
            else:
                macs += p.numel()
    return macs


def oracle(compiled, *, batch: int = 2, use_torchinfo: bool = True) -> None:
    """Assert that `compiled.shapes` describes `compiled.module` exactly (see the module docstring)."""
    module, table = compiled.module, compiled.shapes
    inp = tuple(table.input)
    modules = dict(module.named_modules())
    calls: dict[str, list[tuple[tuple, tuple]]] = defaultdict(list)  # path -> [(in shape, out shape)] per call

    def hook(path):
        def fn(mod, args, out):
            calls[path].append((tuple(args[0].shape[1:]), tuple(out.shape[1:])))

        return fn

    handles = [m.register_forward_hook(hook(p)) for p, m in modules.items() if p]
    try:
        module.train()
        with torch.no_grad():
            out = module(torch.zeros(batch, *inp))
    finally:
        for h in handles:
            h.remove()
    assert tuple(out.shape) == (batch, *table.output), (tuple(out.shape), table.output)

    # every module row matches the k-th call of the module at its path, in order
    seen: dict[str, int] = defaultdict(int)
    for row in table.rows:
        if _is_function_row(row):
            continue
        assert row.path in modules, f"row {row.path!r} names no module; modules: {sorted(modules)}"
        k = seen[row.path]
        seen[row.path] += 1
        assert k < len(calls[row.path]), f"row {row.path!r} #{k}: the module ran only {len(calls[row.path])} times"
        real_in, real_out = calls[row.path][k]
        assert row.in_shape == real_in, (row.path, row.label, row.in_shape, real_in)
        assert row.out_shape == real_out, (row.path, row.label, row.out_shape, real_out)
        mod = modules[row.path]
        own = sum(p.numel() for p in mod.parameters())
        assert row.params == (own if k == 0 else 0), (row.path, row.params, own, k)
        if row.is_leaf:
            assert not any(True for _ in mod.children()), f"{row.path}: a leaf row on a composite module"
            assert row.macs == _torchinfo_macs(mod, (1, *real_out)), (row.path, row.label, row.macs)
    for path, got in calls.items():
        assert seen[path] == len(got), f"module {path!r} ran {len(got)} times but has {seen[path]} rows"

    # the top-level rows chain input -> output
    top = [r for r in table.rows if r.depth == 0]
    assert top and top[0].in_shape == inp and top[-1].out_shape == tuple(table.output)
    for a, b in itertools.pairwise(top):
        assert a.out_shape == b.in_shape, (a.path, a.out_shape, b.path, b.in_shape)

    total = sum(p.numel() for p in module.parameters())
    assert total == table.total_params, (total, table.total_params)

    if use_torchinfo:
        stats = torchinfo.summary(module, input_size=(1, *inp), verbose=0, mode="eval", device="cpu")
        assert stats.total_params == table.total_params, (stats.total_params, table.total_params)
        assert stats.total_mult_adds == table.total_macs, (stats.total_mult_adds, table.total_macs)


def line_count(text: str) -> int:
    """Lines of the text as the parser numbers them (CRLF and CR are line breaks; a final newline adds none)."""
    from netspec.lang import normalize_source

    try:
        norm = normalize_source(text)
    except SpecError:
        norm = text
    n = norm.count("\n") + 1
    if norm.endswith("\n"):
        n -= 1
    return max(n, 1)


def assert_located(err: SpecError, text: str) -> None:
    """A SpecError from spec text points at a line and column inside it, and renders."""
    assert err.loc is not None, f"no location: {err.message}"
    n = line_count(text)
    assert 1 <= err.loc.line <= n, (err.loc, n, err.message)
    assert err.loc.column >= 1, (err.loc, err.message)
    err.render()


def expect_shape_error(text: str, fragment: str) -> SpecError:
    """The located shape error (E07x) that checking `text` raises, with `fragment` in its message."""
    with pytest.raises(netspec.SpecError) as info:
        netspec.checks(text)
    err = info.value
    assert_located(err, text)
    assert fragment in err.message, err.message
    assert err.code.startswith("E07"), err.code  # a shape error, not a syntax/validation one
    # load() refuses it the same way, before building anything
    with pytest.raises(netspec.SpecError):
        netspec.loads(text)
    return err


class Timeout(Exception):
    pass


@contextmanager
def time_limit(seconds: float):
    """Fail (instead of hanging) when the body runs longer than `seconds` (SIGALRM: main thread, Unix)."""

    def handler(signum, frame):
        raise Timeout(f"took longer than {seconds} s")

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


# shared by the test modules that run many tiny networks
WARNING_FILTERS = [
    pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning"),
    pytest.mark.filterwarnings("ignore:Implicit dimension choice for softmax:UserWarning"),
]


def one_torch_thread():
    """Tiny tensors: one thread is ~10x faster than fighting over the shared cores (restored afterwards)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
