"""Items -> spec text: values, names, layer calls, `layers` items and `forward` steps, as the spec language writes
them. `fold` uses the cost of what is written here to choose between candidates."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .items import IBlock, IComp, Ident, ILayer, IRep, IStep, IUse, Name, SpecItem, StepItem, Var

LINE_WIDTH = 100
STEP_LINE = 60  # a repeat of forward steps longer than this is written over several lines


def value_text(v: Any) -> str:
    """A value as the spec language writes it; ValueError for one it cannot write (nan, a string with both quotes)."""
    if isinstance(v, Ident):
        return v.name
    if v is True:
        return "true"
    if v is False:
        return "false"
    if v is None:
        return "None"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if v != v or v in (float("inf"), float("-inf")):
            raise ValueError(f"{v!r} cannot be written in a spec")
        return repr(v)
    if isinstance(v, str):
        if "\n" in v or ('"' in v and "'" in v):
            raise ValueError(f"the string {v!r} cannot be written in a spec")
        return f"'{v}'" if '"' in v else f'"{v}"'
    if isinstance(v, (tuple, list)):
        inner = ", ".join(value_text(x) for x in v)
        return f"({inner},)" if len(v) == 1 else f"({inner})"
    raise ValueError(f"{v!r} cannot be written in a spec")


def call_text(cls: str, args: Sequence[tuple[str | None, Any]]) -> str:
    """`Conv2d(64, kernel_size=3)`."""
    return f"{cls}(" + ", ".join(value_text(v) if k is None else f"{k}={value_text(v)}" for k, v in args) + ")"


def name_text(parts: Name | None) -> str:
    """A name's parts as a name template: `resblock{id}_{i+1}`."""
    out = []
    for p in parts or ():
        if isinstance(p, Var):
            out.append(
                "{" + p.name + (f"+{p.offset}" if p.offset > 0 else f"-{-p.offset}" if p.offset < 0 else "") + "}"
            )
        elif isinstance(p, Ident):
            out.append("{" + p.name + "}")
        else:
            out.append(str(p))
    return "".join(out)


def cost(lines: list[str]) -> tuple[int, int]:
    """What text costs a reader: lines, then characters."""
    return len(lines), sum(len(ln.strip()) for ln in lines)


# ---- layers ------------------------------------------------------------------------------------------------------


def inline(it: SpecItem) -> str | None:
    """The item on one line, or None where it takes several."""
    if isinstance(it, ILayer):
        body = call_text(it.cls, it.args)
        return body if it.name is None else f"{name_text(it.name)} {body}"
    if isinstance(it, IUse):
        return f"{it.block}(" + ", ".join(value_text(v) for v in it.args) + ")"
    if isinstance(it, IComp):
        if it.shortcut is not None or len(it.items) > 2:
            return None
        if any(isinstance(c, (IComp, IRep)) for c in it.items):
            return None
        parts = [p for p in (inline(c) for c in it.items) if p is not None]
        if len(parts) < len(it.items):
            return None
        body = f"{it.composite} {{ " + "  ".join(parts) + " }" if parts else f"{it.composite} {{ }}"
        return body if it.name is None else f"{name_text(it.name)} {body}"
    if isinstance(it, IRep):
        if len(it.items) != 1 or isinstance(it.items[0], (IComp, IRep)):
            return None
        one = inline(it.items[0])
        return None if one is None else f"repeat {it.var} in {it.lo}..{it.hi} {{ {one} }}"
    raise AssertionError(it)


def render_items(items: Sequence[SpecItem], indent: int) -> list[str]:
    """Items one a line where they fit, names in a column over those; the others over several lines."""
    pad = " " * indent
    lines_of = [inline(it) for it in items]
    width = max(
        (
            len(name_text(it.name))
            for it, one in zip(items, lines_of)
            if one is not None
            and isinstance(it, (ILayer, IComp))
            and it.name is not None
            and indent + len(one) <= LINE_WIDTH
        ),
        default=0,
    )
    lines: list[str] = []
    for it, one in zip(items, lines_of):
        if one is not None and isinstance(it, (ILayer, IComp)) and it.name is not None:
            name = name_text(it.name)
            one = name + " " * (width - len(name) + 2) + one[len(name) + 1 :]
        if one is not None and indent + len(one) <= LINE_WIDTH:
            lines.append(pad + one)
        elif isinstance(it, (ILayer, IUse)):
            lines.append(pad + (inline(it) or ""))
        else:
            lines += _render_long(it, indent)
    return lines


def _render_long(it: IComp | IRep, indent: int) -> list[str]:
    pad = " " * indent
    if isinstance(it, IRep):
        head = f"repeat {it.var} in {it.lo}..{it.hi} {{"
        return [pad + head, *render_items(it.items, indent + 4), pad + "}"]
    head = (name_text(it.name) + " " if it.name is not None else "") + it.composite + " {"
    lines = [pad + head, *render_items(it.items, indent + 4)]
    if it.shortcut is not None:
        lines.append(pad + "} shortcut {")
        lines += render_items(it.shortcut, indent + 4)
    lines.append(pad + "}")
    return lines


def render_block(b: IBlock) -> list[str]:
    return [f"block {b.name}({', '.join(b.params)}) {{", *render_items(b.items, 4), "}"]


# ---- forward -----------------------------------------------------------------------------------------------------


def step_text(st: StepItem) -> str | None:
    """A step, or a short repeat of steps, on one line; None for a repeat too long for one."""
    if isinstance(st, IStep):
        return ("residual " if st.residual else "") + name_text(st.name)
    inner = [t for t in (step_text(s) for s in st.items) if t is not None]
    if len(inner) < len(st.items):
        return None
    text = f"repeat {st.var} in {st.lo}..{st.hi} {{ " + " ".join(inner) + " }"
    return text if len(text) <= STEP_LINE else None


def render_steps(steps: Sequence[StepItem], indent: int) -> list[str]:
    """Steps side by side, as many as fit on a line."""
    pad = " " * indent
    lines: list[str] = []
    cur = ""
    for st in steps:
        text = step_text(st)
        if text is None:
            assert isinstance(st, IRep)
            if cur:
                lines.append(pad + cur)
                cur = ""
            lines.append(pad + f"repeat {st.var} in {st.lo}..{st.hi} {{")
            lines += render_steps(st.items, indent + 4)
            lines.append(pad + "}")
            continue
        if cur and indent + len(cur) + 1 + len(text) > LINE_WIDTH:
            lines.append(pad + cur)
            cur = ""
        cur = f"{cur} {text}" if cur else text
    if cur:
        lines.append(pad + cur)
    return lines


def wrap_comment(text: str, width: int = 110) -> list[str]:
    """A header comment, wrapped: `# ...` then `#   ...` lines."""
    lines: list[str] = []
    cur = "#"
    for w in text.split():
        if len(cur) + 1 + len(w) > width and cur != "#":
            lines.append(cur)
            cur = "#   " + w
        else:
            cur = f"{cur} {w}"
    lines.append(cur)
    return lines
