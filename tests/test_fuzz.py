"""Property tests: random stacks against torch, grammar-generated texts, and mutated real specs.

1. `strategies.stacks()`: random layer stacks (conv/pool/norm/activation/dropout/adaptive/flatten/linear, layer
   norms, permutes to channels-last and back, stochastic depth, transposed convolutions, upsampling, padding, PReLU,
   log-softmax: every layer kind; Sequential and Residual, repeat with the variable in the arguments, blocks used
   once or twice, constants with arithmetic, an optional `forward` with functions and
   residual steps) written as spec text. Either netspec compiles it and the oracle holds exactly (shapes, parameters,
   torchinfo's mult-adds), and the same stack run with torch directly gives the same output and parameter count; or
   netspec raises a located SpecError and torch refuses the stack too (or netspec is stricter for one of the
   documented reasons: `layer_stacks.Stricter`).
1b. `strategies_flows.flows()`: random run orders, `forward(x) { ... }` in a module or the network, with children
   (in-place ones, some run twice, some kept), parameters, every kind of operation and `if`: the oracle holds, and
   the outputs are those of the same steps written with torch; a spec drawn with a mistake gets a located error of
   that mistake.
2. `hypothesis.extra.lark.from_lark` on the real grammar (whole files, layers, forward, modules and run orders):
   every text loads or raises SpecError (located) or UsageError; nothing else escapes, nothing hangs.
3. The report's specs mutated (characters, lines, tokens deleted/duplicated/swapped, truncation), and specs with
   modules and run orders (torchvision's blocks, the operations, the zoo, generated ones) mutated: the same.

Runs are derandomized (profile "netspec-fuzz") so CI is deterministic.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import netspec
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra.lark import from_lark
from netspec.errors import SpecError, UsageError

from flow_specs import BLOCK_SPECS, OP_SPECS, same_outputs
from layer_stacks import Stricter, TorchFailure, reference
from oracle import WARNING_FILTERS, assert_located, one_torch_thread, oracle, time_limit
from strategies import stacks
from strategies_flows import flows

ROOT = Path(__file__).resolve().parents[1]

pytestmark = WARNING_FILTERS
_one_torch_thread = pytest.fixture(autouse=True, scope="module")(one_torch_thread)


SPECS = {p.stem: p.read_text() for p in sorted((ROOT / "specs").glob("*.net"))}
# specs with modules and forward(x) { ... }: torchvision's blocks, every operation, and the zoo's networks
FLOW_SPECS = {
    **BLOCK_SPECS,
    **OP_SPECS,
    **{f"zoo-{p.stem}": p.read_text() for p in sorted((ROOT / "examples" / "zoo").glob("*.net"))},
}

settings.register_profile(
    "netspec-fuzz",
    derandomize=True,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
FUZZ = settings.get_profile("netspec-fuzz")

# what a spec may cost to build and run here (mutations can turn 64 channels into 6464)
MAX_BUILD_PARAMS = 12_000_000
MAX_RUN_MACS = 300_000_000
MAX_RUN_ELEMENTS = 2_000_000


def _located(err: SpecError, text: str) -> None:
    assert_located(err, text)
    assert err.code.startswith("E"), err.code


# ---- 1. random stacks against torch ------------------------------------------------------------------------------


@settings(FUZZ, max_examples=70)
@given(case=stacks())
def test_random_stacks_agree_with_torch(case):
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Softmax(dim=None), Dropout2d on odd inputs
        try:
            ref = reference(case.items, case.input)
            ref_err = None
        except (Stricter, TorchFailure) as e:
            ref_err = e
        try:
            with time_limit(20):
                compiled = netspec.loads(case.text, input=case.load_input)
        except SpecError as e:
            _located(e, case.text)
            assert ref_err is not None, f"netspec refused a stack torch runs:\n{e.render()}\n{case.text}"
            event(f"refused: {type(ref_err).__name__}")
            return
        assert ref_err is None, f"netspec accepted a stack torch refuses ({ref_err}):\n{case.text}"
        event("compiled")
        assert compiled.shapes.output == ref.output
        assert compiled.shapes.total_params == ref.params
        if not ref.single_image:
            event("BatchNorm(track_running_stats=False) on one value per channel: no torchinfo")
        with time_limit(20):
            oracle(compiled, use_torchinfo=ref.single_image)


def test_random_stacks_draw_every_layer_kind():
    from netspec.lang import LAYERS

    from strategies import ALL_KINDS

    assert set(LAYERS) - set(ALL_KINDS) == {"Parameter"}  # a learned tensor, drawn by strategies_flows


# ---- 1b. random run orders against torch --------------------------------------------------------------------------


@settings(FUZZ, max_examples=60)
@given(case=flows())
def test_random_flows_agree_with_torch(case):
    """A generated `forward(x) { ... }` (children, parameters, operations, if, kept, a module or the network):
    netspec compiles it, its table holds against torch (the oracle), and it computes what the same steps written
    with torch compute, with its weights; or, for a spec drawn with a mistake, a located error of that mistake."""
    for note in case.notes:
        event(note)
    try:
        with time_limit(20):
            compiled = netspec.loads(case.text)
    except SpecError as e:
        _located(e, case.text)
        assert case.reference is None, f"netspec refused a valid run order:\n{e.render()}\n{case.text}"
        assert e.code in case.codes, f"expected {case.codes}, got:\n{e.render()}\n{case.text}"
        event(f"refused: {e.code} ({'torch too' if case.torch_refuses else 'netspec is stricter'})")
        return
    assert case.reference is not None, f"netspec accepted a mistake ({case.codes}):\n{case.text}"
    event("compiled")
    with time_limit(20):
        oracle(compiled)
        with torch.no_grad():
            same_outputs(compiled, case.reference())


# ---- 2. texts from the grammar -----------------------------------------------------------------------------------

_KEYWORDS = {
    "network",
    "input",
    "block",
    "layers",
    "forward",
    "train",
    "repeat",
    "residual",
    "shortcut",
    "in",
    "Sequential",
    "Residual",
    "true",
    "True",
    "false",
    "False",
    "None",
    "none",
}


_NAMES = (
    "a b x i id conv1 c_2 _x Conv2d ReLU Linear MaxPool2d Flatten BatchNorm2d "
    "AdaptiveAvgPool2d Dropout relu flatten shortcut training kernel_size padding stride out_channels epochs data "
    "M y in_channels cat chunk split mul mean permute layer_norm Parameter LayerNorm Permute kept module if return"
).split()  # names the grammar strategy draws: layers, functions, operations, keywords of the language, arguments


def grammar_strategy():
    """from_lark on the real grammar: whole files, and `layers { ... }` (+ `forward { ... }`) after an input line
    (whole files rarely hold a layers section). Every terminal is followed by a space (Lark's ignored WS is only
    added at random, so `network x` would come out as `networkx`), comments end their line, and numbers and names
    are small (the properties are about errors, not sizes)."""
    import lark as lark_mod

    # the real grammar, built without netspec's table cache (a cached Lark object has no `.grammar` to walk)
    text = (ROOT / "netspec" / "lang" / "grammar.lark").read_text()
    lark = lark_mod.Lark(
        text,
        parser="lalr",
        propagate_positions=True,
        maybe_placeholders=True,
        start=["start", "layers", "forward", "module_def", "flow"],
    )
    names = st.sampled_from(_NAMES)
    holes = st.builds(
        lambda a, b: f"{a}{{{b}}}",
        st.sampled_from(["a", "conv", "r_"]),
        st.sampled_from(["i", "1", "i+1", "x*2", "id", "i-1"]),
    )
    explicit = {
        "NAME": st.one_of(names, names, names, holes),
        "INT": st.one_of(st.integers(0, 9), st.integers(0, 70)).map(str),
        "FLOAT": st.sampled_from(["0.5", "1.0", "1e-3", "2.5e1", "0.0"]),
        "SIZE": st.sampled_from(["3x32x32", "1x8x8", "3x5x7", "0x4x4", "2x1x1", "3x16x16"]),
        "STRING": st.sampled_from(["'same'", '"valid"', "'zeros'", "'reflect'", "'x'", "''", '"cifar10"']),
        "SLASH": st.just("/"),
        "COMMENT": st.sampled_from(["# c\n", "#\n", "# {(\n"]),
        "WS": st.sampled_from([" ", "\n", "\t", "\r\n", "  \n  "]),
    }
    for t in lark.terminals:
        if t.name not in explicit and type(t.pattern).__name__ == "PatternStr":
            explicit[t.name] = st.just(t.pattern.value)
    explicit = {k: (v if k in ("COMMENT", "WS") else v.map(lambda s: s + " ")) for k, v in explicit.items()}

    def strategy(start):
        terminals, rules, ignore = lark.grammar.compile([start], ())
        used = (
            {t.name for t in terminals} | set(ignore) | {sym.name for r in rules for sym in r.expansion if sym.is_term}
        )
        return from_lark(lark, start=start, explicit={k: v for k, v in explicit.items() if k in used})

    whole, layers, forward = strategy("start"), strategy("layers"), strategy("forward")
    module, flow = strategy("module_def"), strategy("flow")
    return st.one_of(
        whole,
        st.builds(lambda lay, f: "input 3x16x16\n" + lay + "\n" + f, layers, st.one_of(st.just(""), forward)),
        # a module (named M or another drawn name) with the network's layers, and a forward(x) { ... } or none
        st.builds(
            lambda m, lay, f: "input 3x16x16\n" + m + "\n" + lay + "\n" + f,
            module,
            st.one_of(layers, st.just("layers { m M() }")),
            st.one_of(st.just(""), flow),
        ),
    )


def _must_load_or_refuse(text: str, input=None) -> None:
    """load() returns, or raises a located SpecError or a UsageError: no other exception, no hang."""
    try:
        with time_limit(20):
            net, table = netspec.checks(text, input=input)
            if table.total_params <= MAX_BUILD_PARAMS:
                from netspec.build import build

                model = build(net, table)
                biggest = max((max(1, _prod(r.out_shape)) for r in table.rows), default=1)
                if table.total_macs <= MAX_RUN_MACS and biggest <= MAX_RUN_ELEMENTS:
                    with torch.no_grad(), warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        out = model.eval()(torch.zeros(1, *table.input))
                    assert tuple(out.shape[1:]) == table.output
                    event("ran")
                else:
                    event("built")
            else:
                event("checked")
    except SpecError as e:
        _located(e, text)
        event(f"SpecError {e.code}")
    except UsageError as e:
        event("UsageError")
        assert str(e)


def _prod(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


@settings(FUZZ, max_examples=60)
@given(text=grammar_strategy())
def test_grammar_texts_load_or_raise_located_errors(text):
    _must_load_or_refuse(text + "\n")


# ---- 3. the report's specs, mutated ------------------------------------------------------------------------------

_TOKEN = re.compile(r"\d+x\d+x\d+|\d+\.\d+|\w+|'[^'\n]*'|\"[^\"\n]*\"|\.\.|//|\S")


_MUTATIONS = (
    "del_char dup_char swap_chars ins_char del_line dup_line swap_lines del_token dup_token swap_tokens "
    "replace_token truncate"
).split()
_INSERTED_CHARS = list("{}()[],=.:;'\"#/*+-x0123456789 \n\t") + ["\r", "é", "\u00a0"]
_REPLACEMENT_TOKENS = (
    "Residual Sequential repeat { } ( ) 0 -1 2**3 1..2 x 'same' None true Linear(4) forward residual shortcut "
    "block layers input 7x7x7"
).split()


@st.composite
def mutated_specs(draw, specs=SPECS):
    name = draw(st.sampled_from(sorted(specs)))
    return _mutated(draw, specs[name])


def _mutated(draw, text: str) -> str:
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(_MUTATIONS))
        if not text:
            break
        if op.endswith("char") or op == "swap_chars":
            text = _mutate_chars(draw, text, op)
        elif op.endswith("line") or op == "swap_lines":
            text = _mutate_lines(draw, text, op)
        elif op == "truncate":
            text = text[: draw(st.integers(0, len(text)))]
        else:
            text = _mutate_tokens(draw, text, op)
    return text


def _mutate_chars(draw, text: str, op: str) -> str:
    i = draw(st.integers(0, len(text) - 1))
    if op == "del_char":
        return text[:i] + text[i + 1 :]
    if op == "dup_char":
        return text[:i] + text[i] + text[i:]
    if op == "ins_char":
        return text[:i] + draw(st.sampled_from(_INSERTED_CHARS)) + text[i:]
    j = draw(st.integers(0, len(text) - 1))
    a, b = sorted((i, j))
    return text[:a] + text[b] + text[a + 1 : b] + text[a] + text[b + 1 :] if a != b else text


def _mutate_lines(draw, text: str, op: str) -> str:
    lines = text.split("\n")
    i = draw(st.integers(0, len(lines) - 1))
    if op == "del_line":
        del lines[i]
    elif op == "dup_line":
        lines.insert(i, lines[i])
    else:
        j = draw(st.integers(0, len(lines) - 1))
        lines[i], lines[j] = lines[j], lines[i]
    return "\n".join(lines)


def _mutate_tokens(draw, text: str, op: str) -> str:
    toks = list(_TOKEN.finditer(text))
    t = toks[draw(st.integers(0, len(toks) - 1))]
    if op == "del_token":
        return text[: t.start()] + text[t.end() :]
    if op == "dup_token":
        return text[: t.end()] + " " + t.group() + text[t.end() :]
    if op == "replace_token":
        return text[: t.start()] + draw(st.sampled_from(_REPLACEMENT_TOKENS)) + text[t.end() :]
    u = toks[draw(st.integers(0, len(toks) - 1))]
    a, b = sorted((t, u), key=lambda m: m.start())
    if a.start() == b.start():
        return text
    return text[: a.start()] + b.group() + text[a.end() : b.start()] + a.group() + text[b.end() :]


@settings(FUZZ, max_examples=80)
@given(text=mutated_specs())
def test_mutated_specs_load_or_raise_located_errors(text):
    _must_load_or_refuse(text)


@st.composite
def mutated_flows(draw):
    """Specs with modules and run orders: torchvision's blocks, the operations, the zoo, and generated flows."""
    if draw(st.booleans()):
        return draw(mutated_specs(FLOW_SPECS))
    return _mutated(draw, draw(flows()).text)


@settings(FUZZ, max_examples=60)
@given(text=mutated_flows())
def test_mutated_flows_load_or_raise_located_errors(text):
    _must_load_or_refuse(text)


@pytest.mark.parametrize("name", sorted(SPECS) + sorted(BLOCK_SPECS))
def test_every_prefix_of_a_spec_is_handled(name):
    """Truncation at every line: never anything but a located SpecError (or a network)."""
    lines = {**SPECS, **BLOCK_SPECS}[name].split("\n")
    for n in range(len(lines) + 1):
        text = "\n".join(lines[:n])
        try:
            netspec.checks(text + "\n")
        except SpecError as e:
            _located(e, text + "\n")


# ---- robustness cases the strategies do not draw (they keep numbers small) ------------------------------------


def test_nested_empty_repeats_do_not_hang():
    for text in (
        "input 3x8x8\nlayers { r ReLU() repeat i in 1..20000 { repeat j in 1..20000 { } } }\n",
        "input 3x8x8\nlayers { r ReLU() }\nforward { r repeat i in 1..20000 { repeat j in 1..20000 { } } }\n",
    ):
        with time_limit(1):
            try:
                netspec.checks(text)
            except SpecError as e:
                _located(e, text)


def test_string_constants_cannot_grow_without_bound():
    # 24 doublings (a 32 MB string, well past the 1 MB limit on the source) keep this test cheap
    consts = "a0 = 'xx'\n" + "".join(f"a{i + 1} = a{i} + a{i}\n" for i in range(24))
    text = "input 3x8x8\n" + consts + "layers { r ReLU() }\n"
    with pytest.raises(SpecError) as info:
        netspec.checks(text)
    _located(info.value, text)


def test_huge_integer_literal_is_a_spec_error():
    text = "input 3x8x8\nk = " + "9" * 5000 + "\nlayers { r ReLU() }\n"
    with pytest.raises(SpecError) as info:
        netspec.checks(text)
    _located(info.value, text)


@pytest.mark.parametrize(
    "text",
    [
        "input 3x8x8\nlayers { r{" + "9" * 5000 + "} ReLU() }\n",
        "input 3x8x8\nk = 4611686018427387904\nlayers { r{" + "*".join(["k"] * 300) + "} ReLU() }\n",
    ],
    ids=["literal-in-a-name", "product-in-a-name"],
)
def test_huge_integers_in_names_are_spec_errors(text):
    try:
        netspec.checks(text)
    except SpecError as e:
        _located(e, text)
