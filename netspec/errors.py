"""The one public error type of netspec, and its rendering.

Every stage (parse, validate, infer shapes, load data) raises `SpecError` for a user's mistake; the CLI renders it
like rustc does and exits 1. `DataError` is the same idea for data sets (no spec location).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Location:
    """A place in a spec file: 1-based line and column; `end_column` marks the end of the caret span."""

    line: int
    column: int
    end_column: int | None = None


# Every code a SpecError may carry, and the one kind of mistake it names. docs/errors.md lists them with examples
# (generated from this table); a test checks that the code raises use and this table agree.
CODES: dict[str, str] = {
    # the file and its syntax
    "E001": "a character or word that is not part of the language",
    "E002": "a syntax error: the parser expected something else here",
    "E003": "a file that is not a spec's text (not UTF-8, binary, too long)",
    "E004": "brackets, blocks or constants nested too deeply",
    # structure
    "E010": "something defined or given twice: a parameter, constant, block or section",
    "E011": "a name template where a plain name is needed",
    "E012": "a missing or empty part of the spec: the spec itself, or its `layers`",
    "E013": "the input size: missing, or a dimension out of range",
    # names, constants and expressions
    "E020": "an undefined name",
    "E021": "a constant that depends on itself",
    "E022": "an expression that cannot be evaluated: types, division, sizes",
    "E023": "a constant that holds a call of a layer",
    "E025": "a function of values (min, max, round, ...) called with the wrong arguments",
    # layers and their arguments
    "E030": "an unknown layer",
    "E031": "arguments that cannot be matched to parameters: too many, out of order, or given twice",
    "E032": "an argument that is worked out from the input, written",
    "E033": "an unknown argument",
    "E034": "an argument of a kind the layer never takes (a call, say)",
    "E035": "a required argument left out",
    "E036": "an argument of the wrong type or out of range",
    "E037": "arguments that cannot go together (Upsample's size and scale_factor)",
    # blocks, repeat and name templates
    "E040": "a name template that does not give a valid module name",
    "E041": "a module name used twice",
    "E042": "a block given a name where it is used",
    "E043": "a repeat range that cannot be used: empty, or not integers",
    "E044": "a block or module that uses itself",
    "E045": "a block used with the wrong arguments",
    "E046": "a Residual with an empty body",
    "E047": "a module name that torch reserves",
    "E048": "a network too large to elaborate: repeats, modules or forward steps past the limit",
    # forward
    "E050": "a forward step or call that names no declared layer, child, function or operation",
    "E051": "a layer, child or parameter declared but never used in `forward` (and not kept)",
    "E052": "a value used in a forward before it is defined, or a constant where a tensor is needed",
    "E053": "a value of a forward defined and never used",
    "E054": "a forward that returns nothing",
    "E056": "a number of names that does not match the number of values (a, b = chunk(x, 2))",
    "E057": "`kept` or a Parameter where they cannot be: outside a module, called, or kept without its input",
    "E058": "a condition that is not true or false, or that depends on a tensor",
    # the train section
    "E060": "an unknown train setting, or one given twice",
    "E061": "a train setting with a value it cannot take",
    "E062": "augmentation that makes images of another size than the input",
    "E063": "a train setting that needs a call (an optimizer, schedule or transform) given something else",
    "E064": "an unknown optimizer, schedule or transform",
    "E065": "an unknown data set",
    "E066": "normalize with different numbers of means and stds",
    # shapes and sizes
    "E070": "a layer that cannot take the shape of its input",
    "E071": "a module run twice on inputs that need different sizes",
    "E072": "a residual whose body changes the shape of x",
    "E073": "a network too large for any machine's memory",
    "E074": "branches of a concatenation whose other dimensions differ",
    "E075": "tensors added or multiplied whose shapes do not broadcast (a gate of the wrong width)",
    "E076": "a split, chunk or channel shuffle that does not divide the channels",
    # the network against the data (`netspec train`)
    "E090": "a network whose output does not match the data set's classes",
    "E091": "normalize with a number of means that does not fit the data's channels",
    "E092": "validation holding out as many training images as there are, or more",
    # importing a printed module (`netspec import`)
    "E200": "text that is not a printed module's: not UTF-8, binary, or too long",
    "E201": "printed text whose structure cannot be read: a missing bracket, an unexpected word, text after the end",
    "E202": "a printed layer's arguments that cannot be read as plain values",
    "E203": "a printed module that no network has: no children, a name twice, a Sequential with arguments",
    "E204": "a child name a spec cannot write, or a Sequential's child numbered out of place",
    "E205": "a container whose run order print(model) does not show: a ModuleList, a module of its own",
    "E206": "a printed layer netspec does not have",
    "E207": "a printed argument that netspec's layer cannot take",
    "E208": "a network whose first sized layer takes flat input, not C x H x W images",
    "E209": "a run order (--order) that cannot be used",
    "E210": "no input size that fits the printed sizes",
    "E211": "children registered in another order than they run",
    "E212": "a live module with settings that print(model) does not show",
    "E213": "a loss module (CrossEntropyLoss, ...) printed as a child of the network",
    "E219": "an imported spec that does not rebuild the printed module: a bug in netspec, please report it",
    "E220": "a model torch.fx cannot trace: control flow that depends on a tensor's values",
    "E221": "a traced call the language cannot express: an operation, a child's child, a list where a tensor goes",
    "E222": "a traced module's tensor a spec cannot declare: a buffer outside the state_dict, an integer tensor",
    "E223": "a child the forward never runs, whose input size cannot be found (it does not run in training either)",
    "E224": "a torchvision model name that torchvision's registry of classification models does not have",
}


class NetspecError(Exception):
    """Base class of every error netspec reports to a user."""

    exit_code = 1


class SpecError(NetspecError):
    """A mistake in a spec, with where it is, how to fix it, and its code.

    The code names the kind of mistake (`E013`: the input size), as rustc's do: shown in the message
    (`error[E013]: ...`), never shared by two kinds, and listed with an example in docs/errors.md.
    """

    def __init__(
        self,
        message: str,
        loc: Location | None = None,
        *,
        code: str,
        hint: str | None = None,
        filename: str | None = None,
        source: str | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.loc = loc
        self.hint = hint
        self.code = code
        self.filename = filename
        self.source = source

    def attach(self, filename: str | None, source: str | None) -> SpecError:
        if self.filename is None:
            self.filename = filename
        if self.source is None:
            self.source = source
        return self

    def render(self) -> str:
        """`FILE:LINE:COL: error[CODE]: MESSAGE`, the source line, a caret under the token, `help: ...`."""
        name = self.filename or "<spec>"
        if self.loc is None:
            head = f"{name}: error[{self.code}]: {self.message}"
            return head + (f"\n  = help: {self.hint}" if self.hint else "")
        line, col = self.loc.line, self.loc.column
        out = [f"{name}:{line}:{col}: error[{self.code}]: {self.message}"]
        src_line = None
        if self.source is not None:
            lines = self.source.split("\n")  # as the parser counts lines (str.splitlines also splits at \f, \v, ...)
            if 1 <= line <= len(lines):
                src_line = lines[line - 1].rstrip("\r")
        if src_line is not None:
            width = len(str(line))
            # columns count characters, a tab being one: expand tabs here, and move the caret to match
            end_col = self.loc.end_column
            if "\t" in src_line:
                if end_col is not None:
                    end_col = len(src_line[: end_col - 1].expandtabs(4)) + 1
                col = len(src_line[: col - 1].expandtabs(4)) + 1
                src_line = src_line.expandtabs(4)
            shown = src_line
            start = col - 1
            # keep very long lines readable: show a window around the column
            if len(shown) > 200:
                lo = max(0, start - 80)
                shown = ("..." if lo else "") + shown[lo : lo + 160] + ("..." if lo + 160 < len(shown) else "")
                start = start - lo + (3 if lo else 0)
            span = 1
            if end_col and end_col > col:
                span = min(end_col - col, max(1, len(shown) - start))
            out.append(f"{' ' * width} |")
            out.append(f"{line} | {shown}")
            out.append(f"{' ' * width} | {' ' * max(0, start)}{'^' * span}")
        if self.hint:
            out.append(f"  = help: {self.hint}")
        return "\n".join(out)

    def __str__(self) -> str:
        return self.render()


class DataError(NetspecError):
    """A data set that is missing, corrupt or inconsistent; the message names the file."""


class UsageError(NetspecError):
    """A bad command line: one line, exit code 2."""

    exit_code = 2
