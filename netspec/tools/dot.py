"""A `Diagram` as Graphviz source (`netspec draw --format dot`): a node per box, an edge per input, a cluster per
frame; rendered to SVG with the `dot` program where one is on PATH."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from .diagram import Box, Diagram, Item
from .drawing import COLOURS, FONT, header, label, mark


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _node(b: Box, indent: str) -> str:
    first = " ".join(s for s in (b.name, label(b), mark(b)) if s)
    colour = COLOURS.get(b.style, "#ffffff")
    return f"{indent}n{b.id} [label={_quote(first + chr(10) + b.shape)}, fillcolor={_quote(colour)}];"


def _items(items: list[Item], indent: str, clusters: list[int]) -> list[str]:
    lines = []
    for it in items:
        if isinstance(it, Box):
            lines.append(_node(it, indent))
            continue
        clusters[0] += 1
        text = mark(it) if not it.kind else " ".join(s for s in (header(it), mark(it)) if s)
        lines.append(f"{indent}subgraph cluster_{clusters[0]} {{")
        lines.append(f"{indent}  label={_quote(text)}; style={_quote('rounded,dashed' if not it.kind else 'rounded')};")
        lines += _items(it.items, indent + "  ", clusters)
        lines.append(f"{indent}}}")
    return lines


def to_dot(d: Diagram) -> str:
    """The Graphviz source of `d`: `digraph "CifarNet" { ... }`."""
    lines = [
        f"digraph {_quote(d.name)} {{",
        f"  graph [label={_quote(chr(10).join(d.title))}, labelloc=t, fontname={_quote(FONT)}, rankdir=TB];",
        f'  node [shape=box, style="rounded,filled", fontname={_quote(FONT)}, fontsize=10];',
        "  edge [arrowsize=0.6];",
        *_items(d.items, "  ", [0]),
        *(f"  n{src} -> n{b.id};" for b in d.boxes.values() for src in b.inputs if src in d.boxes),
        "}",
    ]
    return "\n".join(lines) + "\n"


def render_dot(source: Path, target: Path) -> bool:
    """Render DOT source to SVG with Graphviz's `dot`; False when no `dot` is on PATH."""
    dot = shutil.which("dot")
    if dot is None:
        return False
    subprocess.run([dot, "-Tsvg", str(source), "-o", str(target)], check=True, capture_output=True)
    return True
