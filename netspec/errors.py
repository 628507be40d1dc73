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


class NetspecError(Exception):
    """Base class of every error netspec reports to a user."""

    exit_code = 1


class SpecError(NetspecError):
    """A mistake in a spec, with where it is and how to fix it."""

    def __init__(
        self,
        message: str,
        loc: Location | None = None,
        *,
        hint: str | None = None,
        code: str = "E000",
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
        """`FILE:LINE:COL: error: MESSAGE`, the source line, a caret under the token, `help: ...`."""
        name = self.filename or "<spec>"
        if self.loc is None:
            head = f"{name}: error: {self.message}"
            return head + (f"\n  = help: {self.hint}" if self.hint else "")
        line, col = self.loc.line, self.loc.column
        out = [f"{name}:{line}:{col}: error: {self.message}"]
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
