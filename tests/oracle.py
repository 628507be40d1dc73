"""The shape oracle shared by `test_shapes*.py` and `test_fuzz.py`: the static shape table must agree EXACTLY with
torch (the shapes of every row: each call of a module, each operation of a `forward(x) { ... }`, each learned
parameter, kept modules run alone at the input they are kept for; per-row and total parameters and MACs; torchinfo's
parameter and mult-add totals); and the test helpers around it (located errors, a time limit, one torch thread,
warning filters).

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


def _torchinfo_macs(module: nn.Module, out_shape: tuple[int, ...]) -> int:
    """torchinfo's formula (LayerInfo.calculate_macs) for one call at batch size 1: a convolution's weights once per
    output pixel, any other layer's once (a Linear over a (H, W, C) image too)."""
    macs = 0
    for name, p in module.named_parameters(recurse=False):
        if name in ("weight", "bias"):
            if "Conv" in type(module).__name__:
                macs += p.numel() * math.prod(out_shape[2:])
            else:
                macs += p.numel()
    return macs


def _netspec_macs(module: nn.Module, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> int:
    """netspec's count, torchvision's: as torchinfo's, but a Linear costs its weights at every position it is applied
    at (every pixel of a channels-last image), as a convolution does, and a transposed convolution its weights at
    every input pixel (each scatters the kernel) and its bias at every output pixel."""
    if isinstance(module, nn.Linear):
        return sum(p.numel() for p in module.parameters()) * math.prod(out_shape[1:-1])
    if isinstance(module, nn.ConvTranspose2d):
        bias = 0 if module.bias is None else module.bias.numel() * math.prod(out_shape[2:])
        return module.weight.numel() * math.prod(in_shape[2:]) + bias
    return _torchinfo_macs(module, out_shape)


class _Recorder:
    """Records, while a compiled module runs: each module's calls (in and out shapes per image, by module path), and
    each operation of a `forward(x) { ... }` (netspec.flow_ops.OPS wrapped: its real inputs and outputs), under the
    path of the module whose forward called it."""

    def __init__(self, module: nn.Module):
        self.modules = dict(module.named_modules())
        self.calls: dict[str, list[tuple[tuple, tuple]]] = defaultdict(list)
        self.ops: dict[str, list[tuple[str, tuple, list[tuple]]]] = defaultdict(list)
        self.running: list[str] = []

    @contextmanager
    def recording(self):
        from netspec import flow_ops

        def pre(path):
            def fn(mod, args):
                self.running.append(path)

            return fn

        def post(path):
            def fn(mod, args, out):
                self.running.pop()
                if path:
                    self.calls[path].append((tuple(args[0].shape[1:]), tuple(out.shape[1:])))

            return fn

        # a learned parameter, and what operations make of parameters alone, have no batch dimension
        unbatched: list[torch.Tensor] = []

        def batched(t):
            return not isinstance(t, nn.Parameter) and not any(t is u for u in unbatched)

        def op(name, fn):
            def run(xs, kw, options, training):
                out = fn(xs, kw, options, training)
                outs = list(out) if isinstance(out, (tuple, list)) else [out]
                if not any(batched(t) for t in xs):
                    unbatched.extend(outs)
                shape = tuple(xs[0].shape[1:]) if batched(xs[0]) else tuple(xs[0].shape)
                per_image = [tuple(o.shape[1:]) if batched(o) else tuple(o.shape) for o in outs]
                self.ops[self.running[-1]].append((name, shape, per_image))
                return out

            return run

        handles = []
        for p, m in self.modules.items():
            handles.append(m.register_forward_pre_hook(pre(p)))
            handles.append(m.register_forward_hook(post(p)))
        saved = dict(flow_ops.OPS)
        flow_ops.OPS.update({name: op(name, fn) for name, fn in saved.items()})
        try:
            yield
        finally:
            flow_ops.OPS.update(saved)
            for h in handles:
                h.remove()


def _kind(row, net) -> str:
    """What a row is: "parameter", "op" (an operation of a forward), "function" (a step of `forward { ... }`, which
    runs no module and no recorded operation) or "module"."""
    if row.layer == "Parameter" and row.node is not None and row.node.layer == "Parameter":
        return "parameter"
    if row.node is None and row.is_leaf:
        return "function" if net.flow is None and row.depth == 0 and row.step == "function" else "op"
    return "module"


def oracle(compiled, *, batch: int = 2, use_torchinfo: bool = True) -> None:
    """Assert that `compiled.shapes` describes `compiled.module` exactly (see the module docstring).

    Module rows match the real calls of the module at their path, in order; kept modules (never run by the network)
    are run alone afterwards on the input their row says they take. Operation rows match the real operations their
    module ran, in order; parameter rows the module's parameters."""
    module, table, net = compiled.module, compiled.shapes, compiled.network
    inp = tuple(table.input)
    rec = _Recorder(module)
    modules = rec.modules
    kept_roots = [r for r in table.rows if r.step == "kept" and r.node is not None and r.node.kept]
    module.train()
    with torch.no_grad(), rec.recording():
        out = module(torch.zeros(batch, *inp))
        for r in kept_roots:
            assert not rec.calls[r.path], f"kept {r.path!r} ran"
        for r in kept_roots:  # what a kept module would do with the input it is kept for (a row each time it is)
            modules[r.path](torch.zeros(batch, *r.in_shape))
    assert tuple(out.shape) == (batch, *table.output), (tuple(out.shape), table.output)

    seen: dict[str, int] = defaultdict(int)
    ops_seen: dict[str, int] = defaultdict(int)
    torchinfo_macs = 0
    for row in table.rows:
        kind = _kind(row, net)
        if kind == "function":
            continue
        if kind == "parameter":
            p = module.get_parameter(row.path)
            assert (row.in_shape, row.out_shape) == ((), tuple(p.shape)), (row.path, row.out_shape, tuple(p.shape))
            assert row.macs == 0 and row.params == (p.numel() if seen[row.path] == 0 else 0), (row.path, row.params)
            assert bool((p == row.node.config.value).all()), f"{row.path}: not filled with {row.node.config.value}"
            seen[row.path] += 1
            continue
        if kind == "op":
            owner = row.path.rsplit(".", 1)[0] if "." in row.path else ""
            k = ops_seen[owner]
            ops_seen[owner] += 1
            assert k < len(rec.ops[owner]), f"row {row.path!r}: {owner!r} ran only {len(rec.ops[owner])} operations"
            name, real_in, real_outs = rec.ops[owner][k]
            assert (row.layer, row.in_shape, row.out_shape) == (name, real_in, real_outs[0]), (row.path, row, name)
            assert (row.params, row.macs) == (0, 0), row.path
            continue
        assert row.path in modules, f"row {row.path!r} names no module; modules: {sorted(modules)}"
        k = seen[row.path]
        seen[row.path] += 1
        assert k < len(rec.calls[row.path]), (
            f"row {row.path!r} #{k}: the module ran only {len(rec.calls[row.path])} times"
        )
        real_in, real_out = rec.calls[row.path][k]
        assert row.in_shape == real_in, (row.path, row.label, row.in_shape, real_in)
        assert row.out_shape == real_out, (row.path, row.label, row.out_shape, real_out)
        mod = modules[row.path]
        own = sum(p.numel() for p in mod.parameters())
        assert row.params == (own if k == 0 else 0), (row.path, row.params, own, k)
        if row.is_leaf:
            assert not any(True for _ in mod.children()), f"{row.path}: a leaf row on a composite module"
            kept = row.step == "kept"
            macs = 0 if kept else _netspec_macs(mod, (1, *real_in), (1, *real_out))
            assert row.macs == macs, (row.path, row.label, row.macs, macs)
            torchinfo_macs += 0 if kept else _torchinfo_macs(mod, (1, *real_out))
    for path, got in rec.calls.items():
        assert seen[path] == len(got), f"module {path!r} ran {len(got)} times but has {seen[path]} rows"
    for owner, got in rec.ops.items():
        assert ops_seen[owner] == len(got), f"{owner!r} ran {len(got)} operations but has {ops_seen[owner]} rows"

    if net.flow is None:  # a chain: the top-level rows lead from the input to the output
        top = [r for r in table.rows if r.depth == 0 and r.step != "kept"]
        assert top and top[0].in_shape == inp and top[-1].out_shape == tuple(table.output)
        for a, b in itertools.pairwise(top):
            assert a.out_shape == b.in_shape, (a.path, a.out_shape, b.path, b.in_shape)

    total = sum(p.numel() for p in module.parameters())
    assert total == table.total_params, (total, table.total_params)

    if use_torchinfo:
        stats = torchinfo.summary(module, input_size=(1, *inp), verbose=0, mode="eval", device="cpu")
        assert stats.total_params == table.total_params, (stats.total_params, table.total_params)
        assert stats.total_mult_adds == torchinfo_macs, (stats.total_mult_adds, torchinfo_macs)


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
    pytest.mark.filterwarnings("ignore:Implicit dimension choice for log_softmax:UserWarning"),
]


def one_torch_thread():
    """Tiny tensors: one thread is ~10x faster than fighting over the shared cores (restored afterwards)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
