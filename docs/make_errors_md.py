"""Regenerate the generated parts of docs/errors.md from the golden error specs and the real command line.

    python docs/make_errors_md.py           # rewrite docs/errors.md in place
    python docs/make_errors_md.py --check   # exit 1 if docs/errors.md is out of date (tests/test_docs_errors.py)

Two blocks of docs/errors.md are generated, each between `<!-- BEGIN GENERATED: NAME -->` and
`<!-- END GENERATED: NAME -->`; everything else in the file is written by hand and kept as it is:

- `spec-errors`: one entry per golden in tests/specs/errors/ (X.net with its expected stderr X.err): a title, the
  offending spec lines, the exact rendered error (the .err file, byte for byte) and the fix, in words and as the
  corrected lines. Every fix below is applied to its .net file and the result must load and infer without an error
  (`fixed_spec`), so the fixes shown are known to work.
- `usage-errors`: the one-line message of each command-line mistake, from running `netspec` in-process.

A golden without an entry in ENTRIES (or an entry without a golden) is an error: a new golden needs its entry here.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ERRORS_DIR = ROOT / "tests" / "specs" / "errors"
DOC = ROOT / "docs" / "errors.md"
REL = "tests/specs/errors"

GROUPS = [
    ("file", "The file and its top level"),
    ("syntax", "Syntax"),
    ("names", "Names and constants"),
    ("layers", "Layers and arguments"),
    ("blocks", "Blocks, repeat and name templates"),
    ("forward", "forward"),
    ("modules", "Modules and their forward(x)"),
    ("train", "The train section"),
    ("shapes", "Shapes and sizes"),
]


@dataclass
class Entry:
    """One golden: its group, a title, which lines to show (default: the error's line), and the fix.

    `fix` maps a line number, or a range "A-B", of the .net file to its replacement text (several lines joined by
    newlines), or to None to delete it."""

    group: str
    title: str
    words: str
    fix: dict[int | str, str | None]
    show: str | None = None


CONV = "    conv1  Conv2d(16, kernel_size=3, padding=1)"
MINIMAL = "network Tiny\ninput 3x32x32\n\nlayers {\n    flat   Flatten()\n    fc     Linear(10)\n}"

ENTRIES: dict[str, Entry] = {
    # ---- the file and its top level ---------------------------------------------------------------------------
    "empty_file": Entry(
        "file", "Empty file", "Write the spec: at least an `input` size and a `layers` section.", {1: MINIMAL}
    ),
    "comments_only": Entry(
        "file",
        "A file of comments only",
        "A commented-out spec is an empty one: uncomment it, and give it layers.",
        {"2-3": MINIMAL.split("\n\n")[0] + "\n\nlayers {\n    flat   Flatten()\n    fc     Linear(10)\n}"},
        show="1-3",
    ),
    "not_utf8": Entry(
        "file",
        "A file that is not UTF-8",
        "Save the file as UTF-8 (for a Latin-1 file: `iconv -f latin1 -t utf-8 old.net > new.net`). The "
        "column is that of the first byte that is not UTF-8.",
        {1: "# A file saved in Latin-1: caf\u00e9 is not UTF-8."},
    ),
    "crlf_unknown_layer": Entry(
        "file",
        "Windows (CRLF) line endings",
        "Nothing to fix about the line endings: CRLF and CR files are read as LF, and errors "
        "report the same line and column. The mistake itself is the unknown layer "
        "([below](#unknown_layer)).",
        {6: "    conv1  Conv2d(16, kernel_size=3, padding=1)"},
    ),
    "tabs_unknown_argument": Entry(
        "file",
        "Tabs in the file",
        "Tabs are fine: a tab counts as one column in the position, and the source line "
        "is shown with tabs expanded and the caret moved to match. The mistake itself is "
        "the misspelt argument ([below](#unknown_argument)).",
        {6: "\tconv1\tConv2d(16, kernel_size=3, padding=1)"},
    ),
    "no_input": Entry(
        "file",
        "No input size",
        "Add an `input CxHxW` line, or pass `--input CxHxW` on the command line.",
        {2: "network Tiny\ninput 3x32x32"},
    ),
    "no_layers": Entry(
        "file",
        "No layers section",
        "Every spec needs exactly one `layers { ... }` section.",
        {4: "classes = 10\n\nlayers {\n    flat   Flatten()\n    fc     Linear(classes)\n}"},
        show="2-4",
    ),
    "duplicate_section": Entry(
        "file",
        "A section written twice",
        "Merge the two sections into one (the same holds for `layers`, `forward`, `network` and `input`).",
        {"10-16": "train {\n    epochs 5\n    batch_size 64\n}"},
        show="10-16",
    ),
    # ---- syntax -------------------------------------------------------------------------------------------------
    "syntax_missing_brace": Entry(
        "syntax",
        "A '{' never closed",
        "Add the missing `}`; the error points at the `{` that is still open.",
        {10: "    fc     Linear(10)\n}"},
        show="5-10",
    ),
    "syntax_unclosed_layers_before_train": Entry(
        "syntax",
        "A '{' never closed, before the next section",
        "Add the missing `}` where the error says. The parser notices only "
        "at `train`, which cannot be a layer; the error points at the `{` "
        "left open instead.",
        {9: "    fc     Linear(10)\n}"},
        show="5-11",
    ),
    "syntax_unclosed_inner_brace": Entry(
        "syntax",
        "A nested '{' never closed",
        "Close the shortcut where its layers end. The `}` on line 13 was read as "
        "the shortcut's, so the parser notices only at `layers`; indentation "
        "tells which `{` was left open: the one whose `}` lines up with an outer "
        "brace.",
        {11: "        BatchNorm2d()\n    }"},
        show="5-15",
    ),
    "syntax_stray_brace": Entry("syntax", "A '}' too many", "Remove the extra `}`.", {10: None}, show="9-10"),
    "syntax_missing_paren": Entry("syntax", "A '(' never closed", "Close the call on its line.", {6: CONV}),
    "syntax_missing_comma": Entry("syntax", "A missing comma", "Separate arguments with commas.", {6: CONV}),
    "syntax_missing_call_parens": Entry(
        "syntax",
        "A layer without parentheses",
        "A layer is always called, even without arguments.",
        {7: "    relu1  ReLU()"},
    ),
    "syntax_positional_after_keyword": Entry(
        "syntax",
        "A positional argument after a keyword argument",
        "Put positional arguments first, or name this one.",
        {6: "    conv1  Conv2d(16, kernel_size=3, stride=1)"},
    ),
    "syntax_equals_in_layers": Entry(
        "syntax",
        "`name = Layer(...)` inside layers",
        "A layer is `name Layer(args)`; `=` defines constants, at the top level only.",
        {6: "    conv1   Conv2d(16, kernel_size=3, padding=1)"},
    ),
    "syntax_stray_colon": Entry(
        "syntax",
        "`name: Layer(...)`, as in YAML",
        "Drop the colon: `name Layer(args)`; a setting is `key value`.",
        {6: CONV},
    ),
    "syntax_slash_division": Entry(
        "syntax", "`/` instead of `//`", "Sizes are integers: use `//`, integer division.", {5: "half = width // 2"}
    ),
    "syntax_unterminated_string": Entry(
        "syntax",
        "An unterminated string",
        "Close the string on the same line.",
        {6: "    conv1  Conv2d(16, kernel_size=3, padding='same')"},
    ),
    "sequential_as_call": Entry(
        "syntax",
        "`Sequential(...)` with arguments",
        "`Sequential` holds its layers in braces (named or anonymous), not as arguments.",
        {6: "    body   Sequential { Conv2d(16, kernel_size=3, padding=1)  ReLU() }"},
    ),
    "syntax_dotted_name": Entry(
        "syntax",
        "A dotted Python path",
        "Write the layer's own name: layers come from netspec's table, never from an import or a dotted path.",
        {6: CONV},
    ),
    "syntax_import": Entry(
        "syntax",
        "`import` in a spec",
        "Delete it: a spec is data and nothing in it runs as Python. (This spec also lacks a "
        "Flatten() before its Linear, the next error it would report.)",
        {2: None, 8: "    flat Flatten()\n    fc Linear(10)"},
        show="2",
    ),
    "python_eval": Entry(
        "syntax",
        "Python's eval (or any Python) as a layer",
        "Write the layer itself; nothing in a spec is evaluated as Python.",
        {6: "    conv1  Conv2d(16, kernel_size=3)"},
    ),
    "nesting_too_deep": Entry(
        "syntax",
        "Brackets nested too deep",
        "No spec a person writes nests a hundred brackets deep; generated text that does should compute the "
        "value instead.",
        {4: "depth = 1"},
    ),
    # ---- names and constants ------------------------------------------------------------------------------------
    "undefined_constant": Entry(
        "names",
        "An undefined (misspelt) constant",
        "Use the constant's name.",
        {8: "    fc     Linear(classes)"},
        show="4-8",
    ),
    "layer_as_value": Entry(
        "names",
        "A layer where a value is expected",
        "Arguments are values; a layer goes on its own line, called: `relu ReLU()`.",
        {7: "    fc     Linear(10)"},
    ),
    "duplicate_constant": Entry(
        "names",
        "A constant defined twice",
        "Keep one definition; to change it for one run, use `--set classes=100`.",
        {5: None},
        show="4-5",
    ),
    "pure_function_arguments": Entry(
        "names",
        "A function of values with the wrong arguments",
        "Give the function what it takes: `make_divisible(value, divisor)` rounds to a multiple of the divisor, as "
        "torchvision's widths are.",
        {4: "width = make_divisible(32 * 0.75, 8)"},
    ),
    "cyclic_constants": Entry(
        "names", "Constants defined by each other", "Give one of them a plain value.", {4: "width = 64"}, show="4-5"
    ),
    "division_by_zero": Entry("names", "Division by zero", "Make the divisor non-zero.", {4: "groups = 1"}, show="4-5"),
    "index_out_of_range": Entry(
        "names",
        "An item past the end of a tuple",
        "Items count from 0, as in Python: the last of three is `[2]`, or `[-1]`.",
        {8: "    repeat i in 1..depths[2] {"},
        show="4-8",
    ),
    "index_not_a_tuple": Entry(
        "names",
        "An item of a number",
        "Only a tuple or list has items: use the number itself, or make it a tuple (`widths = (16, 32)`).",
        {7: "    conv Conv2d(width, kernel_size=3, padding=1)"},
    ),
    "keyword_as_constant": Entry(
        "names",
        "A keyword as a constant's name",
        "`input` is set with `input CxHxW`; a constant needs another name (`channels = 3`).",
        {3: "input 3x32x32"},
    ),
    "duplicate_name": Entry(
        "names",
        "Two layers with one name",
        "Give each module its own name.",
        {8: "    conv2  Conv2d(32, kernel_size=3, padding=1)"},
        show="6-8",
    ),
    "reserved_name": Entry(
        "names",
        "A name torch reserves",
        "Names that every torch module already has as an attribute (`training`, `forward`, "
        "`cuda`, ...) and names starting with `_` cannot name a module: choose another.",
        {6: "    training1  Conv2d(16, kernel_size=3, padding=1)"},
    ),
    "constant_holds_a_call": Entry(
        "names",
        "A constant that holds a layer",
        "Constants hold values; layers are written in `layers`. Keep the number in the constant.",
        {4: "width = 16"},
    ),
    # ---- layers and arguments ---------------------------------------------------------------------------------
    "unknown_layer": Entry(
        "layers", "Unknown layer", "Use PyTorch's spelling; the hint suggests the nearest name.", {6: CONV}
    ),
    "unknown_argument": Entry("layers", "Unknown argument", "Use PyTorch's argument name.", {6: CONV}),
    "upsample_size_and_scale": Entry(
        "layers",
        "Arguments that cannot go together",
        "Upsample resizes to a `size` or by a `scale_factor`: give one of them.",
        {6: "    up     Upsample(scale_factor=2.0)"},
    ),
    "missing_argument": Entry(
        "layers",
        "A required argument missing",
        "Give the argument that has no default, positionally or by name.",
        {6: CONV},
    ),
    "inferred_argument": Entry(
        "layers",
        "An argument that is worked out from the input",
        "Leave out `in_channels`, `in_features`, `num_features` and `num_channels`: they "
        "follow from the input. Start at the next argument.",
        {6: CONV},
    ),
    "too_many_positional": Entry(
        "layers",
        "Too many positional arguments",
        "Pass only the layer's own arguments (dropout is a layer of its own: `Dropout(0.5)`).",
        {7: "    fc     Linear(10, true)"},
    ),
    "wrong_type_bool": Entry(
        "layers",
        "A number where a boolean is meant",
        "Types are strict: write `true` or `false`.",
        {6: "    conv1  Conv2d(16, kernel_size=3, padding=1, bias=false)"},
    ),
    "wrong_type_string": Entry("layers", "A number written as a string", "Write the number without quotes.", {6: CONV}),
    "negative_padding": Entry("layers", "A negative size", "Use a value in range.", {6: CONV}),
    "out_of_range_kernel": Entry(
        "layers", "A size of zero", "Sizes are at least 1.", {6: "    conv1  Conv2d(16, kernel_size=3)"}
    ),
    "out_of_range_probability": Entry(
        "layers", "A probability over 1", "A probability is from 0 to 1.", {7: "    drop   Dropout(p=0.5)"}
    ),
    "argument_is_a_call": Entry(
        "layers",
        "A layer as another layer's argument",
        "An argument is a value: write the number (or the constant) it stands for.",
        {6: CONV},
    ),
    "residual_empty": Entry(
        "layers",
        "A Residual with an empty body",
        "Give the body at least one layer (an identity shortcut of nothing would be x + x).",
        {7: "    res1   Residual { Conv2d(16, kernel_size=3, padding=1) }"},
    ),
    # ---- blocks, repeat, templates ------------------------------------------------------------------------------
    "block_wrong_args": Entry(
        "blocks",
        "A block called with the wrong number of arguments",
        "Pass exactly the block's parameters (or give the block a parameter with a default, "
        "`block cbr(id, out, k=3)`).",
        {13: "    cbr(2, 32)"},
        show="5,13",
    ),
    "block_unknown_parameter": Entry(
        "blocks",
        "A block called with a keyword it does not have",
        "Use one of the block's parameter names.",
        {11: "    cbr(1, 16, k=5)"},
        show="5,11",
    ),
    "block_duplicate_names": Entry(
        "blocks",
        "A block whose layer names do not vary",
        "Put a parameter in each layer name of the block, so that each use names its layers differently.",
        {6: "    conv{out}  Conv2d(out, kernel_size=3, padding=1)", 7: "    bn{out}    BatchNorm2d()"},
        show="5-12",
    ),
    "block_recursive": Entry(
        "blocks",
        "A block that uses itself",
        "Blocks cannot recurse: repeat the block instead.",
        {7: None, 11: "    repeat i in 1..3 {\n        tower(i)\n    }"},
        show="5-11",
    ),
    "named_block_use": Entry(
        "blocks",
        "A block use given a name",
        "Use the block without a name (its layers carry theirs), or wrap it: `stage1 Sequential { cbr(1, 16) }`.",
        {11: "    cbr(1, 16)"},
    ),
    "block_use_shape": Entry(
        "blocks",
        "A shape error inside a block",
        "The error points at the use of the block that fails (and names the layer inside "
        "it): here the third use comes after Flatten(); move it before.",
        {15: "    cbr(3, 64)\n    flat   Flatten()", 17: None},
        show="15-17",
    ),
    "duplicate_name_in_repeat": Entry(
        "blocks",
        "A repeat whose layer name does not vary",
        "Put the repeat variable in the name.",
        {7: "        conv{i}  Conv2d(16, kernel_size=3, padding=1)"},
        show="6-8",
    ),
    "empty_repeat_range": Entry(
        "blocks", "An empty repeat range", "Ranges count up and include both ends.", {6: "    repeat i in 1..3 {"}
    ),
    "repeat_float_range": Entry(
        "blocks", "A repeat range over a non-integer", "Ranges count whole numbers.", {4: "depth = 2"}, show="4,7"
    ),
    "template_undefined": Entry(
        "blocks",
        "A name template with an undefined hole",
        "Holes hold block parameters, repeat variables or constants.",
        {7: "        conv{i}  Conv2d(16, kernel_size=3, padding=1)"},
        show="6-7",
    ),
    "name_template_on_block": Entry(
        "blocks",
        "A name template on a block's definition",
        "A block's name is a plain name; put the template on the layers inside it, with a parameter.",
        {
            5: "block cbr(i, out) {",
            6: "    conv{i}  Conv2d(out, kernel_size=3, padding=1)",
            7: "    relu{i}  ReLU()",
            11: "    cbr(1, 16)",
        },
        show="5-7",
    ),
    "template_bad_name": Entry(
        "blocks",
        "A name template that gives an invalid name",
        "Module names hold letters, digits and '_': keep the numbers a template puts in a name at 0 or more.",
        {7: "        conv{i}  Conv2d(16, kernel_size=3, padding=1)"},
    ),
    "module_recursive": Entry(
        "blocks",
        "A module that uses itself",
        "A module cannot hold itself, even through others: repeat it instead, `repeat i in 1..4 { tower{i} "
        "Tower(16) }`, with a module that holds one level.",
        {7: None},
    ),
    "repeat_too_many": Entry(
        "blocks",
        "A repeat of millions",
        "A network has at most 20,000 modules: repeat fewer times.",
        {6: "    repeat i in 1..4 {"},
    ),
    # ---- forward ------------------------------------------------------------------------------------------------
    "forward_undeclared": Entry(
        "forward",
        "forward runs an undeclared layer",
        "Declare the layer in `layers` (or drop it from `forward`).",
        {6: CONV + "\n    bn1    BatchNorm2d()"},
        show="12",
    ),
    "forward_unknown_function": Entry(
        "forward",
        "An unknown function in forward",
        "forward's functions are relu, gelu, silu, sigmoid, tanh and flatten; a "
        "classifier ends with logits (cross-entropy applies the softmax), so leave "
        "softmax out.",
        {11: "    flat fc"},
    ),
    "forward_unused_layer": Entry(
        "forward",
        "A declared layer that forward never runs",
        "Run it in `forward`, or remove it from `layers`.",
        {13: "    conv1 bn1 relu flat fc"},
        show="7,13",
    ),
    "forward_residual_shape": Entry(
        "forward",
        "`residual NAME` where NAME changes the shape",
        "`residual down` adds `x + down(x)`, so `down` must keep the shape: run it "
        "plainly, or make it keep the size (no stride).",
        {14: "    down"},
        show="7,14",
    ),
    # ---- modules and their forward(x) ----------------------------------------------------------------------------
    "forward_unknown_operation": Entry(
        "modules",
        "An unknown operation in a forward",
        "A forward calls the module's children and the operations of docs/language.md, with torch's names: "
        "concatenation is `cat`.",
        {8: "        return cat(x, conv(x))"},
    ),
    "value_used_before_defined": Entry(
        "modules",
        "A value used before it is defined",
        "A forward runs from top to bottom: compute a value before the line that uses it.",
        {"9-10": "        h = relu(conv1(x))\n        y = conv2(h)"},
        show="9-10",
    ),
    "value_never_used": Entry(
        "modules",
        "A value never used",
        "Every value a forward computes is used: here the block meant to return `z`. (Remove a line that is not "
        "needed, and the child it runs.)",
        {11: "        return z"},
        show="10-11",
    ),
    "module_child_never_run": Entry(
        "modules",
        "A child that the forward never runs",
        "Run it in the forward, remove it, or mark it `kept` with the input it would take: it is then registered, "
        "so its weights load and save, and never run (torchvision's auxiliary heads of GoogLeNet and Inception "
        "v3, which run only while training there).",
        {7: "    kept 16x32x32 aux Conv2d(10, kernel_size=1)"},
    ),
    "forward_without_return": Entry(
        "modules",
        "A forward without `return`",
        "End the forward with `return` and the value the module gives.",
        {8: "        return relu(conv(x))"},
        show="7-9",
    ),
    "unpack_count": Entry(
        "modules",
        "Names for the parts of a chunk or split",
        "`chunk(x, n)` gives n values and `split(x, (a, b))` one per section: write one name for each.",
        {8: "        a, b = chunk(conv(x), 2)"},
    ),
    "kept_child_called": Entry(
        "modules",
        "A kept child that is run",
        "`kept` marks a child that is registered and never run: remove `kept` to run it.",
        {7: "    aux       Conv2d(16, kernel_size=1)"},
        show="7,9",
    ),
    "kept_without_input": Entry(
        "modules",
        "A kept child without the input it would take",
        "A kept child never runs, so the sizes it works out from its input (the Linear's `in_features` here) "
        "come from the size written after `kept`: the input it would take, C x H x W.",
        {7: "    kept 16x32x32 aux  Sequential {"},
    ),
    "parameter_without_forward": Entry(
        "modules",
        "A Parameter in a module without a forward",
        "A Parameter is a learned tensor that a forward uses by name, as ConvNeXt's layer scale multiplies its "
        "block's output: give the module a forward that uses it.",
        {7: "    scale  Parameter((16, 1, 1), value=1e-6)\n    forward(x) {\n        return scale * conv(x)\n    }"},
    ),
    "condition_on_tensor": Entry(
        "modules",
        "A condition on a tensor",
        "`if` chooses the network's structure, from constants, parameters and the input's shape, before it runs; "
        "what depends on a tensor's values is an operation (relu here, which is what the `if` meant).",
        {"9-11": "        y = relu(y)"},
        show="9-11",
    ),
    # ---- train --------------------------------------------------------------------------------------------------
    "unknown_setting": Entry(
        "train",
        "An unknown setting",
        "The learning rate is an argument of the optimizer.",
        {12: "    optimizer  SGD(lr=0.1)"},
    ),
    "setting_wrong_type": Entry(
        "train", "A setting of the wrong type", "Write the number without quotes.", {11: "    batch_size  128"}
    ),
    "setting_out_of_range": Entry("train", "A setting out of range", "Use a value in range.", {11: "    epochs  10"}),
    "unknown_data": Entry(
        "train",
        "An unknown data set",
        "Use a data set name (cifar10, cifar100, mnist, fashion-mnist, tiny-imagenet, shapes), or "
        "an image folder's path in quotes.",
        {11: "    data  cifar10"},
    ),
    "unknown_optimizer": Entry(
        "train",
        "An unknown optimizer",
        "The optimizers are SGD, Adam and AdamW.",
        {11: "    optimizer  SGD(lr=0.1, momentum=0.9)"},
    ),
    "unknown_transform": Entry(
        "train",
        "An unknown transform",
        "Use one of the augmentations netspec knows.",
        {11: "    augment  [RandomCrop(padding=4), RandomHorizontalFlip()]"},
    ),
    "totensor_in_augment": Entry(
        "train",
        "ToTensor (or ToPILImage) in augment",
        "Leave it out: images are tensors from the start.",
        {11: "    augment  [RandomHorizontalFlip()]"},
    ),
    "augment_crop_mismatch": Entry(
        "train",
        "An augmentation that changes the image size",
        "Leave out RandomCrop's size: it is the input's. (To train at 28x28, change "
        "`input`, or pass `--input 3x28x28`.)",
        {11: "    augment  [RandomCrop(padding=4), RandomHorizontalFlip()]"},
        show="3,11",
    ),
    "normalize_length_mismatch": Entry(
        "train",
        "Normalize with unequal mean and std lengths",
        "One mean and one std per channel (or a single value of each for all).",
        {11: "    normalize  Normalize(mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616))"},
    ),
    "normalize_sketch_syntax": Entry(
        "train",
        "normalize without Normalize(...)",
        "normalize takes a call.",
        {11: "    normalize  Normalize(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))"},
    ),
    "optimizer_not_a_call": Entry(
        "train",
        "An optimizer that is not a call",
        "Name the optimizer and give its arguments: `optimizer SGD(lr=0.1)`.",
        {11: "    optimizer  SGD(lr=0.1)"},
    ),
    # ---- shapes and sizes -------------------------------------------------------------------------------------
    "input_zero": Entry(
        "shapes", "An input dimension of zero", "Channels, height and width are each 1 to 65,536.", {3: "input 3x32x32"}
    ),
    "shape_linear_without_flatten": Entry(
        "shapes",
        "Linear on an image: Flatten() missing",
        "Flatten the C x H x W tensor first.",
        {8: "    flat   Flatten()\n    fc     Linear(10)"},
        show="7-8",
    ),
    "shape_conv_after_flatten": Entry(
        "shapes",
        "A convolution after Flatten()",
        "Convolve the image before flattening it.",
        {6: CONV, 7: "    flat   Flatten()"},
        show="6-7",
    ),
    "shape_pool_too_small": Entry(
        "shapes",
        "A pooling window larger than its input",
        "Use a larger input (here 3x8x8), or remove a pooling layer. `netspec check` "
        "prints the smallest input a spec accepts.",
        {3: "input 3x8x8"},
        show="3,6-8",
    ),
    "shape_residual_changes_shape": Entry(
        "shapes",
        "A Residual body that changes the shape",
        "`x + body(x)` needs both of one shape: keep the shape in the body, or "
        "give the Residual a projection shortcut.",
        {
            "7-10": "    res1   Residual {\n        Conv2d(32, kernel_size=3, "
            "padding=1)\n        BatchNorm2d()\n    } shortcut {\n"
            "        Conv2d(32, kernel_size=1)\n    }"
        },
        show="6-10",
    ),
    "groups_mismatch": Entry(
        "shapes",
        "groups that do not divide the channels",
        "groups must divide both the input and the output channels (3 and 16 here: only 1).",
        {6: CONV},
    ),
    "absurd_size": Entry(
        "shapes",
        "A layer too large to train",
        "A size this large is a typo or a wrong constant (`--set`): use the size you meant. Sizes "
        "are checked before anything is allocated, also by `compile` and `train`; an activation "
        "too large to fit in memory is refused the same way (`... would output N values per "
        "image: more than fits in memory`).",
        {7: "    fc     Linear(10)"},
    ),
    "cat_branch_sizes": Entry(
        "shapes",
        "Branches of a concatenation of other sizes",
        "`cat` joins the branches along the channels, so every other dimension must agree: the 3x3 convolution "
        "needs `padding=1` to keep the size, as torchvision's Fire has it.",
        {10: "    expand3x3             Conv2d(expand3x3_planes, kernel_size=3, padding=1)"},
        show="10,15",
    ),
    "gate_channels": Entry(
        "shapes",
        "A gate of the wrong width",
        "A gate multiplies each channel by its own value: it needs as many channels as what it gates. Pass the "
        "width (32 here), or let the module take it from its input: `fc2 Conv2d(in_channels, kernel_size=1)`.",
        {17: "    se    SqueezeExcitation(32, 8)"},
        show="11,17",
    ),
    "chunk_odd_channels": Entry(
        "shapes",
        "A chunk that does not divide the channels",
        "`chunk(x, 2)` cuts the channels into two equal halves: give the layer before an even number of "
        "channels, or cut in unequal parts with `split(x, (12, 13))`.",
        {16: "    proj   Conv2d(24, kernel_size=1)"},
        show="8,16-17",
    ),
    "reflection_pad_too_large": Entry(
        "shapes",
        "Reflection padding larger than the image",
        "A reflection mirrors pixels inside the image, so each side pads less than the image's width or height "
        "(at most 3 on 4x4). Pad less, pad before the image shrinks, or repeat the edge pixels with "
        "`ReplicationPad2d`, which takes any padding.",
        {9: "    pad    ReflectionPad2d(3)"},
        show="8-9",
    ),
    "prelu_channels": Entry(
        "shapes",
        "PReLU slopes for other channels",
        "`PReLU(num_parameters=N)` learns a slope per channel: N must be the channels of its input (16 here), or 1 "
        "for one slope, `PReLU()`.",
        {7: "    act1   PReLU(num_parameters=16)"},
        show="6-7",
    ),
    "runs_twice_other_sizes": Entry(
        "shapes",
        "One layer run twice on inputs of different sizes",
        "A module has one set of weights, made for one input size: declare a second layer for the second place.",
        {8: "    bn0    BatchNorm2d()\n    bn     BatchNorm2d()", 14: "    bn0"},
        show="8",
    ),
}


# ---------------------------------------------------------------------------------------------------------------
# fixes


def _lines(name: str) -> list[str]:
    """The golden's lines, as the parser counts them (CRLF read as LF); bytes that are not UTF-8 kept as escapes."""
    text = (ERRORS_DIR / f"{name}.net").read_bytes().decode("utf-8", "surrogateescape")
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def _range(key: int | str) -> tuple[int, int]:
    if isinstance(key, int):
        return key, key
    a, _, b = key.partition("-")
    return int(a), int(b or a)


def fixed_spec(name: str) -> str:
    """The golden's text with its entry's fix applied."""
    lines = _lines(name)
    out: list[str] = []
    edits = {_range(k): v for k, v in ENTRIES[name].fix.items()}
    skip_to = 0
    for i, line in enumerate(lines, 1):
        if i <= skip_to:
            continue
        hit = next(((a, b) for (a, b) in edits if a == i), None)
        if hit is None:
            out.append(line)
            continue
        skip_to = hit[1]
        if edits[hit] is not None:
            out.append(edits[hit])  # type: ignore[arg-type]
    return "\n".join(out)


def check_fix(name: str) -> None:
    """Raise unless the fixed spec loads and infers without an error."""
    from netspec.lang import load_spec
    from netspec.shapes import infer

    infer(load_spec(fixed_spec(name).encode("utf-8", "surrogateescape"), f"{REL}/{name}.net"))


# ---------------------------------------------------------------------------------------------------------------
# rendering


def _shown_lines(name: str, err: str) -> list[tuple[int, str]]:
    lines = _lines(name)
    entry = ENTRIES[name]
    if entry.show:
        wanted: list[int] = []
        for part in entry.show.split(","):
            a, b = _range(part)
            wanted.extend(range(a, b + 1))
    else:
        m = re.match(r"[^:]+:(\d+):\d+: error\[E\d{3}\]: ", err)
        wanted = [int(m.group(1))] if m else [1]
    return [(i, lines[i - 1]) for i in wanted if 1 <= i <= len(lines)]


def _fence(text: str, lang: str = "") -> str:
    ticks = "```"
    while ticks in text:
        ticks += "`"
    return f"{ticks}{lang}\n{text}\n{ticks}"


def _show(line: str) -> str:
    # a byte that is not UTF-8 is shown as the replacement character, as the error message shows it
    return line.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _entry_md(name: str) -> str:
    entry = ENTRIES[name]
    err = (ERRORS_DIR / f"{name}.err").read_bytes().decode("utf-8").rstrip("\n")
    first = (ERRORS_DIR / f"{name}.net").read_bytes().split(b"\n")[0].decode("utf-8", "replace").rstrip("\r")
    what = first[2:] if first.startswith("# ") else "An empty file."
    shown = _shown_lines(name, err)
    width = len(str(shown[-1][0])) if shown else 1
    spec = "\n".join(f"{i:>{width}} | {_show(line)}" for i, line in shown)
    parts = [
        f'<a id="{name}"></a>',
        f"### {entry.title}",
        "",
        f"`{REL}/{name}.net`: {what}",
        "",
        _fence(spec, "text"),
        "",
        _fence(err, "text"),
        "",
        f"**Fix.** {entry.words}",
        "",
    ]
    for key, value in sorted(entry.fix.items(), key=lambda kv: _range(kv[0])):
        a, b = _range(key)
        where = f"line {a}" if a == b else f"lines {a}-{b}"
        if value is None:
            parts += [f"Delete {where}.", ""]
        else:
            verb = "becomes" if a == b else "become"
            parts += [f"{where[0].upper()}{where[1:]} {verb}:", "", _fence(_show(value)), ""]
    return "\n".join(parts)


def spec_errors_md() -> str:
    names = sorted(p.stem for p in ERRORS_DIR.glob("*.net"))
    missing = sorted(set(names) - set(ENTRIES))
    extra = sorted(set(ENTRIES) - set(names))
    if missing or extra:
        raise SystemExit(f"make_errors_md.py: goldens without an entry: {missing}; entries without a golden: {extra}")
    intro = (
        f"{len(names)} mistakes, each the golden test `{REL}/NAME.net` with its exact output `NAME.err` "
        f"(`netspec check` prints it on stderr and exits 1). Contents:"
    )
    out = [intro, ""]
    for key, heading in GROUPS:
        members = [n for n in ENTRIES if ENTRIES[n].group == key]
        links = ", ".join(f"[{ENTRIES[n].title}](#{n})" for n in members)
        out.append(f"- **{heading}**: {links}")
    out.append("")
    for key, heading in GROUPS:
        out += [f"## Spec errors: {heading}", ""]
        for n in (n for n in ENTRIES if ENTRIES[n].group == key):
            out.append(_entry_md(n))
    return "\n".join(out).rstrip("\n")


# (what, arguments): run from the repository root; each prints one line on stderr and exits 2
USAGE_CASES: list[tuple[str, list[str]]] = [
    ("the spec file does not exist", ["check", "no/such.net"]),
    ("the spec is a directory", ["compile", "specs"]),
    ("a malformed `--input`", ["check", "specs/cifar_best.net", "--input", "3x32"]),
    ("a dimension of 0", ["check", "specs/cifar_best.net", "--input", "0x32x32"]),
    ("a dimension over 65,536", ["train", "specs/cifar_best.net", "--input", "3x70000x70000"]),
    ("an empty size in a list", ["check", "specs/cifar_best.net", "--input", "3x32x32,"]),
    ("several sizes where one is taken", ["compile", "specs/cifar_best.net", "--input", "3x32x32,3x64x64"]),
    ("`--set` without `=`", ["check", "specs/cifar_best.net", "--set", "classes"]),
    ("`--set` of a constant the spec lacks", ["check", "specs/cifar_best.net", "--set", "clases=100"]),
    ("`--set` with an unreadable value", ["check", "specs/cifar_best.net", "--set", "classes=ten"]),
    ("`--set` with Python in it", ["check", "specs/cifar_best.net", "--set", "classes=__import__('os')"]),
    ("an unknown flag", ["check", "specs/cifar_best.net", "--bogus"]),
    ("a misspelt flag", ["train", "specs/cifar_best.net", "--lrate", "0.1"]),
    ("a missing argument", ["compile"]),
    ("an unknown command", ["chekc", "specs/cifar_best.net"]),
    ("a value not among the choices", ["train", "specs/cifar_best.net", "--device", "tpu"]),
    ("a limit below 1", ["train", "specs/cifar_best.net", "--train-limit", "0"]),
    ("`--resume` without `--out`", ["train", "specs/cifar_best.net", "--resume"]),
    ("a setting out of range", ["train", "specs/cifar_best.net", "--epochs", "0"]),
    ("a learning rate that is not positive", ["train", "specs/cifar_best.net", "--lr", "-1"]),
    ("an unknown data set", ["train", "specs/cifar_best.net", "--data", "cifar11"]),
    ("`evaluate` of a missing run", ["evaluate", "runs/no-such-run"]),
    ("`compare` of a folder that is not a run", ["compare", "specs"]),
    ("`import` of a missing file", ["import", "no/such.txt"]),
    ("`import` of a directory", ["import", "specs"]),
]


def run_cli(args: list[str]) -> tuple[int, str, str]:
    """Run `netspec ARGS` in-process from the repository root: (exit code, stdout, stderr)."""
    from netspec.cli import main

    out, err = io.StringIO(), io.StringIO()
    here = os.getcwd()
    os.chdir(ROOT)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main(args)
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    finally:
        os.chdir(here)
    return code, out.getvalue(), err.getvalue()


def usage_errors_md() -> str:
    rows = ["| mistake | command | stderr (exit 2) |", "| --- | --- | --- |"]
    for what, args in USAGE_CASES:
        code, _, err = run_cli(args)
        lines = err.strip("\n").splitlines()
        if code != 2 or len(lines) != 1:
            raise SystemExit(
                f"make_errors_md.py: `netspec {' '.join(args)}` exited {code} with {err!r}, not one line and exit 2"
            )
        cmd = "netspec " + " ".join(a if re.fullmatch(r"[\w./,=:-]+", a) else repr(a) for a in args)
        cells = [what, f"`{cmd}`", f"`{lines[0]}`"]
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(rows)


# (code, title, printed text, --order text or None): `netspec import` of the text as model.txt, which must fail with
# that code; `from_sequential` for the live-module case
_BEST_PRINT = (ROOT / "tests" / "golden" / "cifar_best.txt").read_text(encoding="utf-8")
IMPORT_CASES: list[tuple[str, str, str | bytes, str | None]] = [
    ("E200", "Text that is not a print", b"Net(\n  (fc): Linear(in_features=4, out_features=2)\x00\n)\n", None),
    (
        "E201",
        "A bracket never closed",
        "Net(\n  (conv1): Conv2d(3, 16, kernel_size=(3, 3))\n  (relu1): ReLU(\n)\n",
        None,
    ),
    (
        "E202",
        "An argument that is not a plain value",
        "Net(\n  (conv1): Conv2d(3, 16, kernel_size=(3, 3), padding=foo(1))\n)\n",
        None,
    ),
    ("E203", "A child name printed twice", "Net(\n  (relu): ReLU()\n  (relu): ReLU()\n)\n", None),
    (
        "E204",
        "A Sequential's child out of place",
        "Net(\n  (features): Sequential(\n    (0): ReLU()\n    (2): ReLU()\n  )\n)\n",
        None,
    ),
    ("E205", "A ModuleList", "Net(\n  (layers): ModuleList(\n    (0-2): 3 x ReLU()\n  )\n)\n", None),
    (
        "E206",
        "A layer netspec does not have",
        "Net(\n  (up): PixelShuffle(upscale_factor=2)\n)\n",
        None,
    ),
    (
        "E207",
        "An argument netspec's layer does not take",
        "Net(\n  (conv1): Conv2d(3, 16, kernel_size=(3, 3), output_padding=(1, 1))\n)\n",
        None,
    ),
    (
        "E208",
        "A network on flat input",
        "Net(\n  (fc1): Linear(in_features=784, out_features=10, bias=True)\n)\n",
        None,
    ),
    ("E209", "A run order naming a child the print lacks", _BEST_PRINT, "forward {\n    conv1\n    nosuch\n}\n"),
    (
        "E210",
        "Printed sizes no input fits",
        "Net(\n  (conv1): Conv2d(3, 16, kernel_size=(3, 3))\n  (flat): Flatten(start_dim=1, end_dim=-1)\n  (fc): Linear(in_features=250, out_features=10, bias=True)\n)\n",
        None,
    ),
    (
        "E211",
        "Children registered out of their run order",
        (ROOT / "tests" / "golden" / "cifar_worst.txt").read_text(encoding="utf-8"),
        None,
    ),
    (
        "E213",
        "A loss printed as a child",
        "Net(\n  (fc): Linear(in_features=784, out_features=10, bias=True)\n  (loss): CrossEntropyLoss()\n)\n",
        None,
    ),
]


def import_errors_md() -> str:
    from netspec.errors import SpecError
    from netspec.importer import from_sequential, import_text

    out = []
    for code, title, text, order in IMPORT_CASES:
        try:
            import_text(text, "model.txt", order=order, order_filename="order.txt")
        except SpecError as e:
            if e.code != code:
                raise SystemExit(f"make_errors_md.py: the {code} example of import failed with {e.code}") from None
            first = e.render().split("\n", 1)[0]
        else:
            raise SystemExit(f"make_errors_md.py: the {code} example of import did not fail")
        out += [f'<a id="import-{code}"></a>{title} (`{code}`):', "", _fence(first, "text"), ""]
    try:
        import torch

        from_sequential(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AvgPool2d(2, ceil_mode=True)))
    except SpecError as e:
        assert e.code == "E212", e.code
        out += [
            '<a id="import-E212"></a>A live module with a setting its print hides (`E212`, '
            "`netspec.importer.from_sequential`):",
            "",
            _fence(e.render().split("\n", 1)[0], "text"),
        ]
    return "\n".join(out).rstrip("\n")


# (code, title, the model's Python source): `netspec.from_module(model, input=(3, 8, 8))` must fail with that code
FX_CASES: list[tuple[str, str, str]] = [
    (
        "E220",
        "A model torch.fx cannot trace",
        "class Net(nn.Module):\n    def forward(self, x):\n        return x if x.sum() > 0 else -x",
    ),
    (
        "E221",
        "A call the language cannot express",
        "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.conv = nn.Conv2d(3, 4, 1)\n\n    def forward(self, x):\n"
        "        return F.interpolate(self.conv(x), scale_factor=2.0)",
    ),
    (
        "E222",
        "A buffer outside the state_dict",
        "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.conv = nn.Conv2d(3, 4, 1)\n        self.register_buffer('shift', torch.ones(1), persistent=False)\n\n"
        "    def forward(self, x):\n        return self.conv(x) + self.shift",
    ),
    (
        "E223",
        "A child never run, of an unknown input size",
        "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.conv = nn.Conv2d(3, 4, 1)\n        self.unused = nn.Conv2d(4, 4, 1)\n\n"
        "    def forward(self, x):\n        return self.conv(x)",
    ),
]


def fx_errors_md() -> str:
    import torch
    import torch.nn.functional as F
    from torch import nn

    import netspec
    from netspec.errors import SpecError

    out = []
    for code, title, source in FX_CASES:
        scope: dict[str, object] = {"nn": nn, "F": F, "torch": torch}
        exec(source, scope)  # the docs' own example code, never a spec
        try:
            netspec.from_module(scope["Net"](), input=(3, 8, 8))  # type: ignore[operator]
        except SpecError as e:
            if e.code != code:
                raise SystemExit(f"make_errors_md.py: the {code} example of from_module failed with {e.code}") from None
            message = "\n".join(ln for ln in e.render().splitlines() if not ln.startswith("  File"))
        else:
            raise SystemExit(f"make_errors_md.py: the {code} example of from_module did not fail")
        out += [f'<a id="import-{code}"></a>{title} (`{code}`):', "", _fence(source, "python"), ""]
        out += [_fence(message.replace(str(ROOT) + "/", ""), "text"), ""]
    try:
        from netspec.importer import from_torchvision

        from_torchvision("resnet51")
    except SpecError as e:
        out += [
            '<a id="import-E224"></a>A torchvision name torchvision does not have (`E224`, '
            "`netspec import torchvision:resnet51`):",
            "",
            _fence(e.render(), "text"),
        ]
    return "\n".join(out).rstrip("\n")


# codes raised outside `netspec check`: `netspec train` (by hand in docs/errors.md) and `netspec import` (above)
HAND_WRITTEN = {
    "E090": ("A network that disagrees with the data", "a-network-that-disagrees-with-the-data"),
    "E091": ("normalize against the data's channels", "normalize-channels"),
    "E092": ("validation that leaves nothing to train on", "validation-too-large"),
    **{code: (title, f"import-{code}") for code, title, _, _ in IMPORT_CASES},
    "E212": ("A live module with a hidden setting", "import-E212"),
    "E219": ("A bug in netspec", "import-E219"),
    **{code: (title, f"import-{code}") for code, title, _ in FX_CASES},
    "E224": ("A torchvision name torchvision does not have", "import-E224"),
}


def golden_codes() -> dict[str, list[str]]:
    """code -> the goldens that show it."""
    out: dict[str, list[str]] = {}
    for name in ENTRIES:
        first = (ERRORS_DIR / f"{name}.err").read_text(encoding="utf-8").split("\n", 1)[0]
        m = re.search(r": error\[(E\d{3})\]: ", first)
        if m is None:
            raise SystemExit(f"make_errors_md.py: {name}.err has no error code: {first}")
        out.setdefault(m.group(1), []).append(name)
    return out


def codes_md() -> str:
    from netspec.errors import CODES

    shown = golden_codes()
    rows = ["| code | the mistake | examples |", "| --- | --- | --- |"]
    for code, meaning in CODES.items():
        links = [f"[{ENTRIES[n].title}](#{n})" for n in shown.get(code, [])]
        if code in HAND_WRITTEN:
            title, anchor = HAND_WRITTEN[code]
            links.append(f"[{title}](#{anchor})")
        if not links:
            raise SystemExit(f"make_errors_md.py: code {code} has no example: add a golden, or a HAND_WRITTEN entry")
        rows.append(f"| {code} | {meaning} | {', '.join(links)} |")
    unknown = sorted(set(shown) - set(CODES))
    if unknown:
        raise SystemExit(f"make_errors_md.py: goldens show codes missing from netspec.errors.CODES: {unknown}")
    intro = (
        "Each code names one kind of mistake, and is shown in the message: `FILE:LINE:COL: error[E070]: ...`. "
        "The table is generated from `netspec.errors.CODES`."
    )
    return intro + "\n\n" + "\n".join(rows)


BLOCKS = {
    "codes": codes_md,
    "spec-errors": spec_errors_md,
    "usage-errors": usage_errors_md,
    "import-errors": import_errors_md,
    "fx-errors": fx_errors_md,
}


def render(doc: str) -> str:
    """`doc` with every generated block regenerated."""
    for name, make in BLOCKS.items():
        begin, end = f"<!-- BEGIN GENERATED: {name} -->", f"<!-- END GENERATED: {name} -->"
        pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
        if not pattern.search(doc):
            raise SystemExit(f"make_errors_md.py: {DOC} has no {begin} ... {end} block")
        body = make()
        block = f"{begin}\n<!-- written by docs/make_errors_md.py: edit that, not this -->\n\n{body}\n\n{end}"
        doc = pattern.sub(lambda _, block=block: block, doc)
    return doc


def main(argv: list[str]) -> int:
    for name in ENTRIES:
        try:
            check_fix(name)
        except Exception as e:
            raise SystemExit(f"make_errors_md.py: the fix of {name} does not load:\n{e}") from None
    old = DOC.read_text(encoding="utf-8")
    new = render(old)
    if "--check" in argv:
        if new != old:
            print(f"{DOC} is out of date: run python docs/make_errors_md.py", file=sys.stderr)
            return 1
        return 0
    if new != old:
        DOC.write_text(new, encoding="utf-8")
        print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
