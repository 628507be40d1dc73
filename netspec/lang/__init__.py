"""The spec language: grammar, syntax tree, values, validation and elaboration. Needs no torch.

What the later stages use is exported here: `load_spec` (text -> a validated `Network`), the network's parts
(`Node`, `FStep`), the closed tables of layers and train settings, and the helpers for input sizes, overrides and
hints.
"""

from .elaborate import elaborate, forward_names, load_spec
from .hints import did_you_mean, few, short
from .layers import COMPOSITES, FUNCTIONS, LAYERS, MODULE_ATTRIBUTES, SEQUENTIAL_ATTRIBUTES, LayerSpec
from .modules import instantiate, shape_names
from .network import Flow, FlowOp, FStep, Instance, ModuleUse, Network, Node
from .ops import OPS
from .parse import normalize_source, parse, parse_tree, read_spec
from .syntax import Program, Repeat, Step, Template
from .train_section import (
    DATA_ALIASES,
    DATA_NAMES,
    OPTIMIZERS,
    SCHEDULES,
    TRANSFORMS,
    TrainSpec,
    data_key,
    infer_schedule,
)
from .validate import ArgModel, argument_error, check_conflict, describe_type, pair, show
from .values import Constants, Scope, input_size, parse_override, parse_size, render_name, value_of

__all__ = [
    "COMPOSITES",
    "DATA_ALIASES",
    "DATA_NAMES",
    "FUNCTIONS",
    "LAYERS",
    "MODULE_ATTRIBUTES",
    "OPS",
    "OPTIMIZERS",
    "SCHEDULES",
    "SEQUENTIAL_ATTRIBUTES",
    "TRANSFORMS",
    "ArgModel",
    "Constants",
    "FStep",
    "Flow",
    "FlowOp",
    "Instance",
    "LayerSpec",
    "ModuleUse",
    "Network",
    "Node",
    "Program",
    "Repeat",
    "Scope",
    "Step",
    "Template",
    "TrainSpec",
    "argument_error",
    "check_conflict",
    "data_key",
    "describe_type",
    "did_you_mean",
    "elaborate",
    "few",
    "forward_names",
    "infer_schedule",
    "input_size",
    "instantiate",
    "load_spec",
    "normalize_source",
    "pair",
    "parse",
    "parse_override",
    "parse_size",
    "parse_tree",
    "read_spec",
    "render_name",
    "shape_names",
    "short",
    "show",
    "value_of",
]
