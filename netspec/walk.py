"""The walk of `shapes`: a network in run order, a row per module, operation and parameter (no torch).

Each value carries its shape per image and its layout: `chw` (an image, as convolutions make it), `hwc` (an image
made channels-last by a permute, as ConvNeXt's blocks do before their LayerNorm and Linear layers) or `any`. A layer
that needs an image refuses a channels-last one, and Linear and LayerNorm, which work on the last dimension, refuse
a (C, H, W) image, whose last dimension is its width: the mistake of a missing Flatten. A module's use is made
concrete here, where its input is known (`lang.instantiate`), and its run order walked like the network's.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from math import prod

from .errors import Location, SpecError
from .lang import Flow, FlowOp, Instance, Network, Node, instantiate, shape_names
from .op_rules import ELEMENTWISE_OPS, OP_RULES, In
from .rules import CHW_LAYERS, LAST_DIM_LAYERS, MAX_ELEMENTS, RULES, SHAPE_KEEPING, Shape, ShapeError, fmt_shape


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the shape table: a module (a leaf or a composite), or a `forward` function."""

    path: str  # "conv1", "resblock1_1.0"
    layer: str  # a class name ("Conv2d", "Sequential", "Residual") or, for a function step, its name ("relu")
    depth: int
    in_shape: Shape
    out_shape: Shape
    params: int
    macs: int
    loc: Location
    is_leaf: bool = True
    step: str = "module"  # how it runs: "module", "residual" (x + m(x)), "function" (an operation), "kept" (never)
    node: Node | None = None  # the module (or parameter); None for an operation and a shortcut's Sequential
    op: FlowOp | None = None  # the operation of a flow's function step, with its arguments (for `netspec diff`)

    @property
    def label(self) -> str:
        """The table's `layer` column: `Conv2d`, `relu()`, `x + Sequential(x)`."""
        if self.step == "function":
            return f"{self.layer}()"
        if self.step == "residual":
            return f"x + {self.layer}(x)"
        if self.step == "kept":
            return f"{self.layer} (kept)"
        return self.layer


@dataclass(frozen=True, slots=True)
class Val:
    """A value in the walk: its shape per image, its layout, and whether it has a batch (parameters do not)."""

    shape: Shape
    layout: str = "any"  # "chw" | "hwc" | "any"
    batched: bool = True


def _layout(shape: Shape, before: Val, layer: str | None = None, dims: tuple[int, ...] | None = None) -> str:
    """The layout of a layer's (or operation's) output."""
    if len(shape) != 3:
        return "any"
    if dims is not None:  # a permute of an image: to channels-last, back, or something else
        if before.layout == "chw" and tuple(d % 4 for d in dims) == (0, 2, 3, 1):
            return "hwc"
        if before.layout == "hwc" and tuple(d % 4 for d in dims) == (0, 3, 1, 2):
            return "chw"
        return "any"
    if layer in CHW_LAYERS or len(before.shape) != 3:
        return "chw"
    return before.layout


class Walker:
    """Walks the run order, appending a row per module, operation and parameter; on a mistake, what it has so far
    stays (`infer_partial`)."""

    def __init__(self, net: Network):
        self.net = net
        self.rows: list[Row] = []
        self.inferred: dict[Node, dict[str, int]] = {}
        self.instances: dict[Node, tuple[dict[str, int], Instance]] = {}
        self.counted: set[Node] = set()  # the learned parameters counted (a module run twice has them once)
        self.total_params = 0

    # ---- modules ------------------------------------------------------------------------------------------
    def node(self, node: Node, x: Val, path: str, depth: int) -> Val:
        if node.module is not None:
            return self.module(node, x, path, depth)
        if node.config is None:
            return self.composite(node, x, path, depth)
        return self.layer(node, x, path, depth)

    def layer(self, node: Node, x: Val, path: str, depth: int) -> Val:
        assert node.layer is not None and node.config is not None
        first_use = node not in self.inferred
        try:
            self.check_layout(node.layer, x)
            out, params, macs, inferred = RULES[node.layer](node.config, x.shape)
        except ShapeError as e:
            raise SpecError(
                f"{node.layer} {path!r} cannot take its {fmt_shape(x.shape)} input: {e.message}",
                node.loc,
                hint=e.hint,
                code=e.code,
            ) from None
        if not first_use and self.inferred[node] != inferred:
            raise SpecError(
                f"{path!r} runs twice with inputs that need different sizes ({_args(self.inferred[node])}, then "
                f"{_args(inferred)})",
                node.loc,
                hint="a module has one set of weights: declare a second layer for the second place",
                code="E071",
            )
        self.inferred[node] = inferred
        self.check_size(node, path, out, params)
        if first_use:
            self.check_total(node, path, params)
        self.rows.append(
            Row(path, node.layer, depth, x.shape, out, params if first_use else 0, macs, node.loc, node=node)
        )
        dims = node.config.dims if node.layer == "Permute" else None  # type: ignore[attr-defined]
        return Val(out, _layout(out, x, node.layer, dims))

    def check_layout(self, layer: str, x: Val) -> None:
        if layer in CHW_LAYERS and x.layout == "hwc":
            raise ShapeError(
                f"{layer} needs a C x H x W image, and this one is channels-last (H x W x C) after a permute",
                "permute it back first: Permute((0, 3, 1, 2))",
            )
        if layer in LAST_DIM_LAYERS and len(x.shape) == 3 and x.layout == "chw":
            if layer == "Linear":
                raise ShapeError("Linear needs a flat (F,) input", "add Flatten() before it")
            raise ShapeError(
                "LayerNorm normalizes the last dimension, which of a C x H x W image is its width",
                "use LayerNorm2d for the channels of an image, or Permute((0, 2, 3, 1)) first",
            )

    def composite(self, node: Node, x: Val, path: str, depth: int) -> Val:
        assert node.composite is not None
        at = len(self.rows)
        y = self.group(node.children, x, path, node.composite, depth, node.loc, node)
        if node.composite != "Residual":
            return y
        s = x
        if node.shortcut is not None:
            # the paths of build.Residual: a lone anonymous layer is the child `shortcut` itself, anything
            # else an nn.Sequential `shortcut` holding the layers by name, which gets a row of its own so the
            # table shows the shortcut's layers under it, as print(model) does
            if len(node.shortcut) == 1 and node.shortcut[0].name == "0":
                s = self.node(node.shortcut[0], s, f"{path}.shortcut", depth + 1)
            else:
                s = self.group(node.shortcut, s, f"{path}.shortcut", "Sequential", depth + 1, node.loc)
        if s.shape != y.shape:
            raise SpecError(
                f"the body of Residual {path!r} turns {fmt_shape(x.shape)} into {fmt_shape(y.shape)}, "
                f"but x + body(x) needs {fmt_shape(s.shape)}",
                node.loc,
                hint="keep the shape in the body, or add a projection: "
                "Residual { ... } shortcut { Conv2d(C, kernel_size=1, stride=S) }",
                code="E072",
            )
        self.total(at)  # the body's and the shortcut's
        return y

    def group(
        self, children: tuple[Node, ...], x: Val, path: str, kind: str, depth: int, loc: Location,
        node: Node | None = None,
    ) -> Val:  # fmt: skip
        """A composite's row, then its children's rows one level deeper; its params and MACs are theirs summed."""
        at = len(self.rows)
        self.rows.append(Row(path, kind, depth, x.shape, x.shape, 0, 0, loc, is_leaf=False, node=node))
        for child in children:
            if not child.kept and child.layer != "Parameter":
                x = self.node(child, x, f"{path}.{child.name}", depth + 1)
        self.rows[at] = replace(self.rows[at], out_shape=x.shape)
        self.total(at)
        return x

    def module(self, node: Node, x: Val, path: str, depth: int) -> Val:
        """A module's use: made concrete for this input (once: a second run must need the same), then walked."""
        assert node.module is not None
        names = shape_names(x.shape)
        if node in self.instances:
            before, instance = self.instances[node]
            if before != names:
                raise SpecError(
                    f"{path!r} runs twice with inputs of other shapes ({_args(before)}, then {_args(names)})",
                    node.loc,
                    hint="a module has one set of weights: use a second one for the second place",
                    code="E071",
                )
        else:
            instance = instantiate(node, x.shape)
            self.instances[node] = (names, instance)
        at = len(self.rows)
        if instance.flow is None:
            y = self.group(instance.children, x, path, node.module.module, depth, node.loc, node)
            self.params(instance, path, depth + 1, at + 1)
        else:
            self.rows.append(Row(path, node.module.module, depth, x.shape, x.shape, 0, 0, node.loc, False, node=node))
            y = self.flow(instance.flow, instance.children, x, path, depth + 1)
            self.rows[at] = replace(self.rows[at], out_shape=y.shape)
        self.kept(instance.children, path, depth + 1)
        self.total(at)
        return y

    def kept(self, children: tuple[Node, ...], path: str, depth: int) -> None:
        """Rows for the kept children, walked at the input each says it would take; they never run: no MACs. A layer
        with no sizes to work out and no weights (StochasticDepth, Dropout, an activation) needs no input: its row
        has no shape."""
        for child in children:
            if not child.kept or child.layer == "Parameter":  # a kept parameter has its row with the others
                continue
            if child.kept_input is None and _sizeless(child):
                name = f"{path}.{child.name}" if path else child.name
                self.rows.append(
                    Row(
                        name,
                        child.layer or child.composite or "",
                        depth,
                        (),
                        (),
                        0,
                        0,
                        child.loc,
                        step="kept",
                        node=child,
                    )
                )
                continue
            if child.kept_input is None:
                raise SpecError(
                    f"kept {child.name!r} needs the input it would take, for the sizes that follow from it",
                    child.loc,
                    hint=f"write the C x H x W input it would take after `kept`: kept 512x14x14 {child.name} ...",
                    code="E057",
                )
            at = len(self.rows)
            self.node(child, Val(child.kept_input, "chw"), f"{path}.{child.name}" if path else child.name, depth)
            for i in range(at, len(self.rows)):
                self.rows[i] = replace(self.rows[i], macs=0, step="kept")

    def params(self, instance: Instance, path: str, depth: int, at: int) -> None:
        """A row for each learned parameter of a module, at `at`; counted the first time the module runs."""
        for child in instance.children:
            if child.layer == "Parameter":
                shape = tuple(child.config.shape)  # type: ignore[union-attr]
                count = prod(shape) if child not in self.counted else 0
                self.counted.add(child)
                row = Row(f"{path}.{child.name}" if path else child.name, "Parameter", depth, (), shape,
                          count, 0, child.loc, node=child)  # fmt: skip
                self.rows.insert(at, row)
                at += 1

    # ---- run orders over named values ---------------------------------------------------------------------
    def flow(self, flow: Flow, children: tuple[Node, ...], x: Val, path: str, depth: int) -> Val:
        by_name = {c.name: c for c in children}
        env: dict[str, Val] = {flow.input: x}
        known: dict[str, str] = {flow.input: flow.input}  # a value's name for messages: the child that made it
        for p in flow.params:
            env["@" + p] = Val(tuple(by_name[p].config.shape), "any", batched=False)  # type: ignore[union-attr]
            known["@" + p] = p
        self.params(Instance(children, flow), path, depth, len(self.rows))
        for op in flow.ops:
            self.check_batched(op, env, known)
            if op.kind == "child":
                child = by_name[op.name]
                out = [self.node(child, env[op.inputs[0]], f"{path}.{op.name}" if path else op.name, depth)]
            else:
                out = self.op(op, env, known, path, depth)
            for target, val in zip(op.targets, out):
                known[target] = self.value_name(op, by_name.get(op.name) if op.kind == "child" else None, target, known)
                env[target] = val
        return env[flow.output]

    @staticmethod
    def value_name(op: FlowOp, child: Node | None, target: str, known: dict[str, str]) -> str:
        """A value's name in messages: the name written (`y = ...`); for an unnamed one, the child that made it, or
        the operation (`mul(...)`), but what an activation, a normalization or a dropout gives keeps the name of its
        input: `relu(bn(conv(x)))` is conv's value, whose size is conv's doing."""
        if not target.startswith("%"):
            return target.split(".")[0]
        keeps = child.layer in SHAPE_KEEPING if child is not None else op.name in ELEMENTWISE_OPS | {"stochastic_depth"}
        if keeps and len(op.inputs) == 1:
            return known[op.inputs[0]]
        return op.name if op.kind == "child" else f"{op.name}(...)"

    def check_batched(self, op: FlowOp, env: dict[str, Val], known: dict[str, str]) -> None:
        """A learned parameter (or a value made from one alone) has no batch dimension: only + and * and functions
        of each element take it as they take an activation (a child, a cat or a mean would read its first
        dimension as the batch)."""
        if op.kind == "op" and op.name in ELEMENTWISE_OPS:
            return
        for i in op.inputs:
            if not env[i].batched:
                what = "a learned parameter" if i.startswith("@") else "made from learned parameters alone"
                call = f"child {op.name!r}" if op.kind == "child" else f"{op.name}()"
                raise SpecError(
                    f"{call} takes activations, which have a batch dimension; {_shown(known[i])} has none: it is {what}",
                    op.loc or self.net.input_loc,
                    hint="a Parameter is used in + and *, in functions of each element (sigmoid(g)), and as "
                    "layer_norm's weight= and bias=",
                    code="E057",
                )

    def op(self, op: FlowOp, env: dict[str, Val], known: dict[str, str], path: str, depth: int) -> list[Val]:
        ins = [env[i] for i in op.inputs] + [env[v] for _, v in op.tensor_options]
        names = [known[i] for i in op.inputs] + [known[v] for _, v in op.tensor_options]
        loc = op.loc or self.net.input_loc
        try:
            shapes = OP_RULES[op.name](op.options, [In(n, v.shape, v.batched) for n, v in zip(names, ins)])
        except ShapeError as e:
            raise _op_error(op, e, ins, path, loc) from None
        if len(shapes) != len(op.targets):  # a split by size: the parts its dimension makes, against the names
            sizes, n, m = ", ".join(fmt_shape(s) for s in shapes), len(shapes), len(op.targets)
            raise SpecError(
                f"{_where(op, path)} gives {n} part{'s' if n != 1 else ''} here ({sizes}), for {m} "
                f"name{'s' if m != 1 else ''}",
                loc,
                hint="name every part, or give the sizes of the parts: a, b = split(x, (16, 48))",
                code="E056",
            )
        shown = op.targets[0] if not op.targets[0].startswith("%") else op.name
        label = f"{path}.{shown.split('.')[0]}" if path else shown.split(".")[0]
        dims = getattr(op.options, "dims", None) if op.name == "permute" else None
        outs = [Val(s, _layout(s, ins[0], None, dims), any(v.batched for v in ins)) for s in shapes]
        for s in shapes:
            self.check_elements(s, label, loc)
        self.rows.append(
            Row(label, op.name, depth, ins[0].shape, shapes[0], 0, 0, loc or _NOWHERE, step="function", op=op)
        )
        return outs

    # ---- totals and limits --------------------------------------------------------------------------------
    def total(self, at: int) -> None:
        """Sum the params and MACs of the leaf rows after the composite row `at` (and one level below) into it."""
        depth = self.rows[at].depth
        sub = []
        for r in self.rows[at + 1 :]:
            if r.depth <= depth:
                break
            if r.is_leaf:
                sub.append(r)
        self.rows[at] = replace(self.rows[at], params=sum(r.params for r in sub), macs=sum(r.macs for r in sub))

    def check_total(self, node: Node, path: str, params: int) -> None:
        """Each layer within the limit is not enough: the whole network's weights must fit too."""
        self.total_params += params
        if self.total_params > MAX_ELEMENTS:
            total = self.total_params
            raise SpecError(
                f"with {node.layer} {path!r} the network would have {total:,} parameters in all "
                f"({total * 4 / 2**30:,.0f} GiB in fp32): more than any machine can train",
                node.loc,
                hint="check the sizes, repeats and constants (--set) of the network",
                code="E073",
            )

    def check_size(self, node: Node, path: str, out: Shape, params: int) -> None:
        if params > MAX_ELEMENTS:
            raise SpecError(
                f"{node.layer} {path!r} would have {params:,} parameters ({params * 4 / 2**30:,.0f} GiB "
                f"in fp32): more than any machine can train",
                node.loc,
                hint="check the sizes and constants (--set) feeding this layer",
                code="E073",
            )
        if prod(out) > MAX_ELEMENTS:
            raise SpecError(
                f"{node.layer} {path!r} would output {prod(out):,} values per image: more than fits in memory",
                node.loc,
                hint="check the sizes and constants feeding this layer",
                code="E073",
            )

    def check_elements(self, shape: Shape, what: str, loc: Location | None) -> None:
        if prod(shape) > MAX_ELEMENTS:
            raise SpecError(
                f"{what} would be {prod(shape):,} values per image: more than fits in memory", loc, code="E073"
            )

    # ---- the network --------------------------------------------------------------------------------------
    def run(self, input: Shape) -> Shape:
        """The network's output shape at `input`; the rows and inferred arguments are left in `self`."""
        if prod(input) > MAX_ELEMENTS:  # the input is an activation too
            raise SpecError(
                f"a {fmt_shape(input)} input has {prod(input):,} values per image: more than fits in memory",
                self.net.input_loc,
                hint="use a smaller input size",
                code="E073",
            )
        x = Val(input, "chw" if len(input) == 3 else "any")
        if self.net.flow is not None:
            out = self.flow(self.net.flow, self.net.layers, x, "", 0).shape
            self.kept(self.net.layers, "", 0)
            return out
        by_name = {n.name: n for n in self.net.layers}
        for step in self.net.forward:
            if step.op == "function":
                out = (prod(x.shape),) if step.name == "flatten" else x.shape
                self.rows.append(Row(step.name, step.name, 0, x.shape, out, 0, 0, step.loc, step="function"))
                x = Val(out, _layout(out, x))
            elif step.op == "module":
                x = self.node(by_name[step.name], x, step.name, 0)
            else:
                start = len(self.rows)
                y = self.node(by_name[step.name], x, step.name, 0)
                if y.shape != x.shape:
                    raise SpecError(
                        f"residual {step.name}: x + {step.name}(x) needs {step.name} to keep the shape "
                        f"{fmt_shape(x.shape)}, but it gives {fmt_shape(y.shape)}",
                        step.loc,
                        code="E072",
                    )
                self.rows[start] = replace(self.rows[start], step="residual")
        self.kept(self.net.layers, "", 0)
        return x.shape


_NOWHERE = Location(1, 1)


def _sizeless(node: Node) -> bool:
    """A layer whose torch module takes nothing from its input and holds no weights, or a Sequential of such layers
    (an empty one: ShuffleNet's `branch1` where the stride is 1): it can be kept without an input."""
    if node.composite == "Sequential" and node.module is None:
        return all(_sizeless(c) for c in node.children)
    return node.config is not None and not node.config.INFERRED and node.layer != "Parameter"


def _shown(name: str) -> str:
    """A value's name in a sentence: 'y', or mul(...) for an operation's unnamed result."""
    return name if name.endswith(")") else repr(name)


def _where(op: FlowOp, path: str) -> str:
    """`cat()`, or `cat() in 'fire2'` inside a module (the same module may be used in several places)."""
    return f"{op.name}() in {path!r}" if path else f"{op.name}()"


def _op_error(op: FlowOp, e: ShapeError, ins: list[Val], path: str, loc: Location | None) -> SpecError:
    """A rule's refusal as a located error: `cat() in 'fire2' along dim 1 needs ...` (the rule's own sentence), or
    for a layer-like mistake (E070) `max_pool2d() cannot take 8x2x2: ...`."""
    if e.code == "E070":
        message = f"{_where(op, path)} cannot take {', '.join(fmt_shape(v.shape) for v in ins)}: {e.message}"
    else:
        message = f"{_where(op, path)} {e.message}"
    return SpecError(message, loc, hint=e.hint, code=e.code)


def _args(args: dict[str, int]) -> str:
    """`num_features=3`: the arguments worked out from an input."""
    return ", ".join(f"{k}={v}" for k, v in args.items())
