"""A `Diagram` laid out and drawn with matplotlib alone (no Graphviz): SVG (its text kept as text) or PNG.

The layout is computed in inches, from the text: boxes in run order down a column, one line each in a monospaced
font (so a label's width is its length), wrapped into columns of at most an A4 page's height, and broken where no
edge but the chain crosses when such a place is near. An edge to the next box is a straight arrow; an edge that
skips boxes (a residual's identity, a concatenation's input) is an arc on the column's right, in a lane of its own;
an edge to the next column goes over the top. Frames (a Sequential, a Residual, an opened module, a folded repeat)
are drawn around what they hold, in pieces when a column break falls inside. No text is smaller than 7 pt.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .diagram import Box, Diagram, Frame, Item

FONT = "DejaVu Sans Mono"  # matplotlib's own monospaced font: a label of n characters is n advances wide
ADVANCE = 0.6021 / 72  # its advance, inches per point of size
SIZE = 7.5  # box and frame text, pt
TITLE_SIZES = (11.0, 8.0, 8.0)
BOX_H, GAP = 0.20, 0.10  # a box, and the space under it for the arrow
HEAD_H, FOOT_H = 0.24, 0.08  # a frame's header line, and the space under its last box
PAD = 0.06  # inside a box, left and right
FRAME_PAD = 0.07  # a frame's margin around what it holds, per level of frames inside it
LANE = 0.07  # between the lanes of the arcs
COL_GAP = 0.3
MARGIN = 0.3
TITLE_H = 0.75  # the title's three lines and the space above the columns for edges that go over the top
A4 = (8.27, 11.69)
MAX_COLUMN = A4[1] - 2 * MARGIN - TITLE_H  # a column's height: the drawing of most networks is one A4 page
NAME_MAX, LABEL_MAX = 14, 44  # characters, longer ones cut with "…"
MAX_PIXELS = 10_000  # a PNG's longer side: 200 dpi up to 50 inches

COLOURS = {
    "conv": "#d6e6f5",
    "norm": "#dcefd6",
    "act": "#fde4cf",
    "pool": "#e8def1",
    "linear": "#f6d5d8",
    "drop": "#eeeeee",
    "merge": "#fff0b3",
    "op": "#fff7d6",
    "module": "#e3e3e3",
    "param": "#f2f2f2",
    "input": "#ffffff",
    "layer": "#f4f4f4",
}
EDGE, ARC, FOLD = "#555555", "#3b6ea8", "#b03a2e"


@dataclass(eq=False)
class Entry:
    """One line of a column: a box, a frame's header, or the space closing a frame."""

    kind: str  # "box" | "head" | "foot"
    item: Item
    height: float
    col: int = 0
    y: float = 0.0  # its top
    index: int = 0  # in the layout's entries


@dataclass
class Layout:
    entries: list[Entry]
    columns: list[tuple[int, int]]  # [start, end) of each column's entries
    fields: tuple[int, int, int, int]  # characters: name, label, repeat mark, shape
    box_w: float
    inner_w: float  # a column's boxes and frames
    lanes: list[int] = field(default_factory=list)
    col_x: list[float] = field(default_factory=list)  # each column's left
    width: float = 0.0
    height: float = 0.0
    top: float = MARGIN + TITLE_H
    at: dict[int, int] = field(default_factory=dict)  # box id -> entry index
    arcs: dict[tuple[int, int], int] = field(default_factory=dict)  # (src, dst) -> lane

    def cx(self, col: int) -> float:
        return self.col_x[col] + self.inner_w / 2

    def box_y(self, entry: Entry) -> float:
        """The top of an entry's box."""
        return entry.y + GAP / 2


def text_width(text: str, size: float = SIZE) -> float:
    return len(text) * ADVANCE * size


def cut(text: str, n: int) -> str:
    return text if len(text) <= n else text[: max(n - 1, 0)] + "…"


def label(b: Box) -> str:
    return f"{b.kind} {b.args}" if b.args else b.kind


def mark(item: Item) -> str:
    return f"× {item.repeat}" if item.repeat > 1 else ""


def header(f: Frame) -> str:
    """A frame's header: `layer1  Sequential  256x56x56`, `0  Bottleneck(planes=64, stride=1)  256x56x56`."""
    kind = f"{f.kind}({f.args})" if f.args else f.kind
    return "  ".join(s for s in (f.name, kind, f.shape) if s)


def nest(item: Item) -> int:
    """The levels of frames an item is: 0 for a box, 1 for a frame of boxes, ..."""
    if isinstance(item, Box):
        return 0
    return 1 + max((nest(it) for it in item.items), default=0)


def _entries(items: list[Item]) -> list[Entry]:
    out = []
    for it in items:
        if isinstance(it, Box):
            out.append(Entry("box", it, BOX_H + GAP))
        else:
            out += [Entry("head", it, HEAD_H), *_entries(it.items), Entry("foot", it, FOOT_H)]
    return out


def _edges(d: Diagram) -> list[tuple[int, int]]:
    return [(src, b.id) for b in d.boxes.values() for src in b.inputs if src in d.boxes]


# ---- columns ----------------------------------------------------------------------------------------------------


def _cut_costs(entries: list[Entry], at: dict[int, int], edges: list[tuple[int, int]]) -> list[float | None]:
    """For each place after entry i, what ending a column there costs, in inches of unevenness: None where it may
    not end (after a header, before a frame's close), more where an edge other than the chain crosses, and a
    little for each frame it splits."""
    crossing = [0] * (len(entries) + 1)
    for s, t in edges:
        a, b = sorted((at[s], at[t]))
        for i in range(a, b):
            crossing[i] += 1
    costs: list[float | None] = []
    open_frames = 0
    for i, e in enumerate(entries):
        open_frames += {"head": 1, "foot": -1}.get(e.kind, 0)
        if e.kind == "head" or (i + 1 < len(entries) and entries[i + 1].kind == "foot"):
            costs.append(None)
        else:
            costs.append((3.0 if crossing[i] > 1 else 0.0) + 1.0 * open_frames)
    return costs


def _columns(entries: list[Entry], costs: list[float | None]) -> list[tuple[int, int]]:
    """The fewest columns of at most MAX_COLUMN each, as even as they can be and ending where it costs least: the
    cheapest split into n columns by dynamic programming (a column's score: its distance from the mean height, and
    the cost of the place it ends)."""
    tops = [0.0]
    for e in entries:
        tops.append(tops[-1] + e.height)
    size = len(entries)
    n = max(1, math.ceil(tops[-1] / MAX_COLUMN))
    while True:
        target = tops[-1] / n
        best: list[dict[int, tuple[float, int]]] = [{0: (0.0, 0)}]  # columns -> {end: (score, start)}
        for _ in range(n):
            row: dict[int, tuple[float, int]] = {}
            for i, (score, _) in best[-1].items():
                for j in range(i + 1, size + 1):
                    h = tops[j] - tops[i]
                    if h > MAX_COLUMN and j > i + 1:
                        break
                    cost = 0.0 if j == size else costs[j - 1]
                    if cost is not None and (j not in row or score + abs(h - target) + cost < row[j][0]):
                        row[j] = (score + abs(h - target) + cost, i)
            best.append(row)
        if size in best[-1]:
            cols, j = [], size
            for k in range(n, 0, -1):
                i = best[k][j][1]
                cols.append((i, j))
                j = i
            return cols[::-1]
        n += 1


def _lanes(lay: Layout, edges: list[tuple[int, int]]) -> None:
    """A lane for each arc (an edge that skips boxes in one column): the shorter ones nearer the boxes."""
    boxes_before = [0]
    for e in lay.entries:
        boxes_before.append(boxes_before[-1] + (e.kind == "box"))
    spans = []
    for s, t in edges:
        a, b = lay.at[s], lay.at[t]
        if lay.entries[a].col == lay.entries[b].col and boxes_before[b] - boxes_before[a + 1] > 0:
            spans.append((b - a, a, b, (s, t)))
    taken: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for _, a, b, key in sorted(spans):
        col = lay.entries[a].col
        lane = 0
        while any(not (b < x or y < a) for x, y in taken.get((col, lane), [])):
            lane += 1
        taken.setdefault((col, lane), []).append((a, b))
        lay.arcs[key] = lane
        lay.lanes[col] = max(lay.lanes[col], lane + 1)


def layout(d: Diagram) -> Layout:
    """Where everything goes, in inches from the top left."""
    entries = _entries(d.items)
    boxes = [e.item for e in entries if isinstance(e.item, Box)]
    names = max((len(b.name) for b in boxes), default=0)
    fields = (
        min(names, NAME_MAX),
        min(max(len(label(b)) for b in boxes), LABEL_MAX),
        max(len(mark(b)) for b in boxes),
        max(len(b.shape) for b in boxes),
    )
    chars = sum(fields) + 2 * sum(1 for f in fields[:3] if f)
    box_w = text_width("x" * chars) + 2 * PAD
    levels = max((nest(it) for it in d.items), default=0)
    lay = Layout(entries, [], fields, box_w, box_w + 2 * FRAME_PAD * levels)
    for i, e in enumerate(entries):
        e.index = i
    lay.at = {e.item.id: i for i, e in enumerate(entries) if isinstance(e.item, Box)}
    edges = _edges(d)
    lay.columns = _columns(entries, _cut_costs(entries, lay.at, edges))
    lay.lanes = [0] * len(lay.columns)
    bottom = lay.top
    for c, (start, end) in enumerate(lay.columns):
        y = lay.top
        for e in entries[start:end]:
            e.col, e.y = c, y
            y += e.height
        bottom = max(bottom, y)
    _lanes(lay, edges)
    x = MARGIN
    for c in range(len(lay.columns)):
        lay.col_x.append(x)
        x += lay.inner_w + (0.08 + LANE * lay.lanes[c] if lay.lanes[c] else 0) + COL_GAP
    title = max(text_width(t, s) for t, s in zip(d.title, TITLE_SIZES))
    lay.width = max(x - COL_GAP + MARGIN, title + 2 * MARGIN)
    lay.height = bottom + MARGIN
    return lay


# ---- drawing ----------------------------------------------------------------------------------------------------


def render(d: Diagram, path: str | Path, fmt: str) -> Layout:
    """Draw `d` into `path` as `fmt` ("svg" or "png"); the layout is returned (its size, its columns)."""
    import matplotlib
    from matplotlib.figure import Figure

    lay = layout(d)
    # text as text in SVG, ids that do not change between runs, and no hinting: hinted glyphs snap to whole pixels,
    # which makes a line of PNG text up to 10% wider than its advances, the widths the layout is computed from
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "netspec", "text.hinting": "none"}):
        fig = Figure(figsize=(lay.width, lay.height))
        ax = fig.add_axes((0, 0, 1, 1))
        ax.set_xlim(0, lay.width)
        ax.set_ylim(lay.height, 0)
        ax.axis("off")
        _draw_title(ax, d)
        _draw_frames(ax, lay)
        _draw_edges(ax, d, lay)
        for e in lay.entries:
            if isinstance(e.item, Box):
                _draw_box(ax, lay, e, e.item)
        metadata: dict[str, Any] = {"Date": None} if fmt == "svg" else {}
        dpi = min(200.0, MAX_PIXELS / max(lay.width, lay.height))  # an expanded DenseNet is 60 inches wide
        fig.savefig(path, format=fmt, dpi=dpi, metadata=metadata)
    return lay


def _text(ax: Any, x: float, y: float, s: str, gid: str, **kw: Any) -> None:
    kw.setdefault("fontsize", SIZE)
    ax.text(x, y, s, family=[FONT, "monospace"], va="center", gid=gid, **kw)


def _draw_title(ax: Any, d: Diagram) -> None:
    y = MARGIN
    for i, (line, size) in enumerate(zip(d.title, TITLE_SIZES)):
        weight = "bold" if i == 0 else "normal"
        _text(ax, MARGIN, y + size / 144, line, f"title-{i}", fontsize=size, fontweight=weight)
        y += size / 72 + 0.07


def _draw_box(ax: Any, lay: Layout, e: Entry, b: Box) -> None:
    from matplotlib.patches import FancyBboxPatch

    left, top = lay.cx(e.col) - lay.box_w / 2, lay.box_y(e)
    edge = 1.0 if b.style in ("module", "input") else 0.6
    patch = FancyBboxPatch(
        (left, top), lay.box_w, BOX_H, boxstyle="round,pad=0,rounding_size=0.03",
        fc=COLOURS.get(b.style, "#ffffff"), ec="#444444", lw=edge, zorder=3, gid=f"box-{b.id}",
    )  # fmt: skip
    ax.add_patch(patch)
    y = top + BOX_H / 2
    names, labels, _, shapes = lay.fields
    x = left + PAD
    if names:
        _text(ax, x, y, cut(b.name, names), f"name-{b.id}", color="#666666", zorder=4)
        x += text_width("x" * (names + 2))
    _text(ax, x, y, b.kind, f"kind-{b.id}", fontweight="bold", zorder=4)
    if b.args:
        args = cut(b.args, labels - len(b.kind) - 1)
        _text(ax, x + text_width(b.kind + " "), y, args, f"args-{b.id}", zorder=4)
    right = left + lay.box_w - PAD
    _text(ax, right, y, b.shape, f"shape-{b.id}", ha="right", zorder=4)
    if b.repeat > 1:
        at = right - text_width("x" * (shapes + 2))
        _text(ax, at, y, mark(b), f"repeat-{b.id}", ha="right", fontweight="bold", color=FOLD, zorder=4)


FRAMES = {  # fill, edge, line style
    "group": ("#f8f9fb", "#a3adb8", "-"),
    "module": ("#eef1f5", "#6f7d8c", "-"),
    "fold": ("#fdf3f2", FOLD, "--"),
}


def _draw_frames(ax: Any, lay: Layout) -> None:
    """Each frame, in a piece per column it spans; the outer ones under the inner ones."""
    from matplotlib.patches import FancyBboxPatch

    heads = {id(e.item): e for e in lay.entries if e.kind == "head"}
    for foot in lay.entries:
        if foot.kind != "foot":
            continue
        f, head = foot.item, heads[id(foot.item)]
        assert isinstance(f, Frame)
        half = lay.box_w / 2 + FRAME_PAD * nest(f)
        fill, edge, dash = FRAMES[f.style]
        for c in range(head.col, foot.col + 1):
            last = lay.entries[lay.columns[c][1] - 1]
            top = head.y + 0.03 if c == head.col else lay.top - 0.04
            bottom = foot.y + FOOT_H - 0.03 if c == foot.col else last.y + last.height + 0.02
            patch = FancyBboxPatch(
                (lay.cx(c) - half, top), 2 * half, bottom - top, boxstyle="round,pad=0,rounding_size=0.05",
                fc=fill, ec=edge, lw=0.7, ls=dash, zorder=1 - 0.01 * nest(f), gid=f"frame-{head.index}-{c}",
            )  # fmt: skip
            ax.add_patch(patch)
        _frame_header(ax, lay, f, head, half)


def _frame_header(ax: Any, lay: Layout, f: Frame, head: Entry, half: float) -> None:
    """`layer1  Sequential` on the left and the output shape on the right, or a repeat's `× 3`."""
    x, y = lay.cx(head.col) - half + 0.06, head.y + 0.13
    back = {"boxstyle": "square,pad=0.05", "fc": FRAMES[f.style][0], "ec": "none"}
    style = {"zorder": 4, "bbox": back}
    if f.style == "fold":
        _text(ax, x, y, mark(f), f"repeat-head-{head.index}", fontweight="bold", color=FOLD, **style)
        return
    kind = f"{f.kind}({f.args})" if f.args else f.kind
    room = int((2 * half - 0.18) / text_width("x")) - len(f.shape) - len(mark(f)) - 4
    text = cut("  ".join(s for s in (f.name, kind) if s), room)
    _text(ax, x, y, text, f"head-{head.index}", color="#333333", **style)
    if f.repeat > 1:
        x += text_width(text + "  ")
        _text(ax, x, y, mark(f), f"repeat-head-{head.index}", fontweight="bold", color=FOLD, **style)
    _text(ax, lay.cx(head.col) + half - 0.06, y, f.shape, f"head-shape-{head.index}", ha="right", **style)


def _draw_edges(ax: Any, d: Diagram, lay: Layout) -> None:
    from matplotlib.patches import FancyArrowPatch
    from matplotlib.path import Path as MPath

    for s, t in _edges(d):
        a, b = lay.entries[lay.at[s]], lay.entries[lay.at[t]]
        ys, yt = lay.box_y(a), lay.box_y(b)
        colour, style = EDGE, "-"
        if (s, t) in lay.arcs:
            x = lay.cx(a.col) + lay.inner_w / 2 + 0.08 + LANE * lay.arcs[(s, t)]
            right = lay.cx(a.col) + lay.box_w / 2
            pts = [(right, ys + BOX_H * 0.7), (x, ys + BOX_H * 0.7), (x, yt + BOX_H * 0.3), (right, yt + BOX_H * 0.3)]
            colour = ARC
        elif a.col == b.col:
            pts = [(lay.cx(a.col), ys + BOX_H), (lay.cx(b.col), yt)]
        elif b.col == a.col + 1 and _first_box(lay, b) and _last_box(lay, a):
            x = lay.col_x[b.col] - COL_GAP / 2
            over = lay.top - 0.12
            pts = [(lay.cx(a.col), ys + BOX_H), (lay.cx(a.col), ys + BOX_H + 0.06), (x, ys + BOX_H + 0.06),
                   (x, over), (lay.cx(b.col), over), (lay.cx(b.col), yt)]  # fmt: skip
        else:
            pts = [(lay.cx(a.col) + lay.box_w / 2, ys + BOX_H / 2), (lay.cx(b.col) - lay.box_w / 2, yt + BOX_H / 2)]
            colour, style = ARC, "--"
        codes = [MPath.MOVETO] + [MPath.LINETO] * (len(pts) - 1)
        arrow = FancyArrowPatch(
            path=MPath(pts, codes), arrowstyle="-|>", mutation_scale=7, lw=0.7, color=colour, ls=style,
            shrinkA=0, shrinkB=0, zorder=2, gid=f"edge-{s}-{t}",
        )  # fmt: skip
        ax.add_patch(arrow)


def _first_box(lay: Layout, e: Entry) -> bool:
    start, _ = lay.columns[e.col]
    return all(x.kind != "box" for x in lay.entries[start : e.index])


def _last_box(lay: Layout, e: Entry) -> bool:
    _, end = lay.columns[e.col]
    return all(x.kind != "box" for x in lay.entries[e.index + 1 : end])
