"""The syntax tree: a spec file as written, in small frozen dataclasses that carry their `Location`.

`parse` makes it from text; nothing in it is evaluated yet (constants, blocks, repetition and name templates are
elaboration's work).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import Location


@dataclass(frozen=True, slots=True)
class Num:
    value: int | float
    loc: Location


@dataclass(frozen=True, slots=True)
class Str:
    value: str
    loc: Location


@dataclass(frozen=True, slots=True)
class Const:
    """true / false / None."""

    value: bool | None
    loc: Location


@dataclass(frozen=True, slots=True)
class Ref:
    """A name used as a value: a constant, a block parameter, a repeat variable (or a bare word like `cifar10`)."""

    name: str
    loc: Location


@dataclass(frozen=True, slots=True)
class BinOp:
    op: str  # + - * // / % == != < <= > >= and or
    left: Expr
    right: Expr
    loc: Location
    op_loc: Location | None = None  # the operator itself (kept for '/'), for a caret on it


@dataclass(frozen=True, slots=True)
class Neg:
    operand: Expr
    loc: Location


@dataclass(frozen=True, slots=True)
class Not:
    operand: Expr
    loc: Location


@dataclass(frozen=True, slots=True)
class TupleExpr:
    items: tuple[Expr, ...]
    loc: Location


@dataclass(frozen=True, slots=True)
class ListExpr:
    items: tuple[Expr, ...]
    loc: Location


@dataclass(frozen=True, slots=True)
class Index:
    """`layers[0]`: an item of a tuple or list (a constant's, a parameter's), counted from 0; -1 is the last."""

    target: Expr
    index: Expr
    loc: Location


@dataclass(frozen=True, slots=True)
class Arg:
    """One argument of a call: `name` is None for a positional one."""

    name: str | None
    value: Expr
    loc: Location
    name_loc: Location | None = None


@dataclass(frozen=True, slots=True)
class Call:
    """`Conv2d(64, kernel_size=3)`: a layer, a block's use, a transform or an optimizer."""

    name: str
    args: tuple[Arg, ...]
    loc: Location  # the whole call
    name_loc: Location  # just the name
    template: Template | None = None  # a name with holes, `denselayer{i}(x)`: a child's call in a forward only


Expr = Num | Str | Const | Ref | BinOp | Neg | Not | TupleExpr | ListExpr | Index | Call


@dataclass(frozen=True, slots=True)
class Hole:
    """The `{i+1}` of `conv{i+1}`: its text and its expression."""

    text: str
    value: Expr


@dataclass(frozen=True, slots=True)
class Template:
    """A name that may hold `{expr}` holes: `conv{id}`, `resblock{s}_{i+1}`. `parts` are the text between the
    holes and the holes, in order."""

    text: str
    loc: Location
    parts: tuple[str | Hole, ...]


@dataclass(frozen=True, slots=True)
class Composite:
    composite: str  # "Sequential" | "Residual"
    items: tuple[Item, ...]
    loc: Location
    shortcut: tuple[Item, ...] | None = None


@dataclass(frozen=True, slots=True)
class Named:
    name: Template
    body: Call | Composite
    loc: Location


@dataclass(frozen=True, slots=True)
class Repeat:
    var: str
    start: Expr
    stop: Expr  # inclusive
    items: tuple[Any, ...]  # of Item, or of Step inside `forward`
    loc: Location
    var_loc: Location


@dataclass(frozen=True, slots=True)
class IfItems:
    """`if cond { items } else { items }`: the items of the branch the condition picks, decided at elaboration."""

    cond: Expr
    then: tuple[Any, ...]  # of Item
    orelse: tuple[Any, ...]  # of Item; `else if` is an IfItems here
    loc: Location


@dataclass(frozen=True, slots=True)
class Kept:
    """`kept name Layer(...)`: a child registered (its weights load and save) but never run."""

    named: Named
    loc: Location
    input: tuple[int, int, int] | None = None  # the input it would take, for the sizes that follow from it


Item = Named | Call | Composite | Repeat | IfItems | Kept


@dataclass(frozen=True, slots=True)
class Step:
    name: Template
    loc: Location
    residual: bool = False


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    default: Expr | None
    loc: Location


@dataclass(frozen=True, slots=True)
class BlockDef:
    name: str
    params: tuple[Param, ...]
    items: tuple[Item, ...]
    loc: Location
    name_loc: Location


# ---- run orders over named values: forward(x) { ... } ------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Assign:
    """`y = expr`, or `a, b = chunk(x, 2)`."""

    targets: tuple[str, ...]
    value: Expr
    loc: Location
    target_locs: tuple[Location, ...]


@dataclass(frozen=True, slots=True)
class Return:
    value: Expr
    loc: Location


@dataclass(frozen=True, slots=True)
class IfStmts:
    cond: Expr
    then: tuple[Any, ...]  # of Stmt
    orelse: tuple[Any, ...]  # of Stmt; `else if` is an IfStmts here
    loc: Location


Stmt = Assign | Return | IfStmts | Repeat


@dataclass(frozen=True, slots=True)
class Flow:
    """`forward(x) { stmts }`: a run order over named values, the input named `input`."""

    input: str
    stmts: tuple[Stmt, ...]
    loc: Location
    input_loc: Location


@dataclass(frozen=True, slots=True)
class ModuleDef:
    """`module Name(params) { items  forward(x) { ... } }`: a module class of its own. Its items may hold values of
    the module (`ConstDef`), computed in order; without a forward, its children run in order."""

    name: str
    params: tuple[Param, ...]
    items: tuple[Any, ...]  # of Item and ConstDef
    flow: Flow | None
    loc: Location
    name_loc: Location


@dataclass(frozen=True, slots=True)
class Setting:
    key: str
    value: Expr
    loc: Location
    key_loc: Location


@dataclass(frozen=True, slots=True)
class ConstDef:
    name: str
    value: Expr
    loc: Location


@dataclass(frozen=True, slots=True)
class Program:
    """A whole spec file, as written."""

    network: str | None = None
    network_loc: Location | None = None
    input: tuple[int, int, int] | None = None
    input_loc: Location | None = None
    consts: dict[str, ConstDef] = field(default_factory=dict)
    blocks: dict[str, BlockDef] = field(default_factory=dict)
    modules: dict[str, ModuleDef] = field(default_factory=dict)
    layers: tuple[Item, ...] | None = None
    layers_loc: Location | None = None
    forward: tuple[Step | Repeat, ...] | None = None
    forward_loc: Location | None = None
    flow: Flow | None = None  # `forward(x) { ... }` instead of `forward { ... }`
    flow_loc: Location | None = None
    train: tuple[Setting, ...] | None = None
    train_loc: Location | None = None
