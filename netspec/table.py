"""Text tables for the terminal (no torch): the layer table of `netspec check`, and its side-by-side form."""

from __future__ import annotations

from collections.abc import Sequence

from .errors import SpecError
from .lang import Network
from .shapes import Shape, ShapeTable, fmt_shape


def _num(n: int) -> str:
    return f"{n:,}"


def render_table(headers: list[str], rows: list[list[str]], right: set[int]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))
        ).rstrip()

    out = [line(headers), line(["-" * w for w in widths])]
    out += [line(r) for r in rows]
    return "\n".join(out)


def shape_table(net: Network, table: ShapeTable) -> str:
    rows = []
    for r in table.rows:
        name = "  " * r.depth + r.path.rsplit(".", 1)[-1] if r.depth else r.path
        rows.append(
            [
                name,
                r.label,
                fmt_shape(r.out_shape),
                _num(r.params) if r.is_leaf else f"({_num(r.params)})",
                _num(r.macs) if r.is_leaf else f"({_num(r.macs)})",
            ]
        )
    head = f"{net.name}: input {fmt_shape(table.input)}, output {fmt_shape(table.output)}"
    body = render_table(["name", "layer", "output", "params", "MACs"], rows, {3, 4})
    total = f"total: {_num(table.total_params)} parameters, {_num(table.total_macs)} MACs per image"
    return f"{head}\n{body}\n{total}"


def side_by_side(net: Network, sizes: Sequence[Shape], tables: Sequence[ShapeTable | SpecError]) -> str:
    ok = [t for t in tables if isinstance(t, ShapeTable)]
    base = ok[0] if ok else None
    headers = ["name", "layer"]
    for s in sizes:
        headers += [f"output @{fmt_shape(s)}", "params", "MACs"]
    rows = []
    if base is not None:
        for i, r in enumerate(base.rows):
            name = "  " * r.depth + r.path.rsplit(".", 1)[-1] if r.depth else r.path
            cells = [name, r.label]
            for t in tables:
                if isinstance(t, ShapeTable) and i < len(t.rows):
                    rr = t.rows[i]
                    cells += [
                        fmt_shape(rr.out_shape),
                        _num(rr.params) if rr.is_leaf else "",
                        _num(rr.macs) if rr.is_leaf else "",
                    ]
                else:
                    cells += ["-", "-", "-"]
            rows.append(cells)
    total = ["total", ""]
    for t in tables:
        if isinstance(t, ShapeTable):
            total += [fmt_shape(t.output), _num(t.total_params), _num(t.total_macs)]
        else:
            total += ["error", "", ""]
    rows.append(total)
    right = {i for i in range(2, len(headers)) if (i - 2) % 3 != 0}
    out = [f"{net.name}", render_table(headers, rows, right)]
    for s, t in zip(sizes, tables):
        if isinstance(t, SpecError):
            out.append(f"at {fmt_shape(s)}: {t.message}")
    return "\n".join(out)
