"""Regenerate the golden printed modules from ../shared/report.txt (run by hand; the output files are committed).

The report's four modules are copied as printed, with the page breaks that split two of them repaired (a stray
`)` closed the worst network early; `ReLU())` ended the deep one's first page), re-indented from their nesting,
and updated to how today's PyTorch prints them: BatchNorm adds `bias=True`, Flatten shows its dimensions.

    python tests/golden/from_report.py ../shared/report.txt
"""

import re
import sys
from pathlib import Path

NAMES = ["cifar_best", "cifar_worst", "tiny_best", "tiny_deep"]


def reindent(lines: list[str]) -> str:
    out, depth = [], 0
    for raw in lines:
        line = raw.strip()
        if not line:
            continue
        if line == ")":
            depth -= 1
        out.append("  " * depth + line)
        if line.endswith("("):
            depth += 1
    assert depth == 0, depth
    return "\n".join(out) + "\n"


def modernize(text: str) -> str:
    text = re.sub(r"affine=(True|False), track_running_stats", r"affine=\1, bias=True, track_running_stats", text)
    return text.replace("Flatten()", "Flatten(start_dim=1, end_dim=-1)")


def main(report: str) -> None:
    blocks = re.findall(r"```\n(.*?)```", Path(report).read_text(), flags=re.S)
    blocks = [b.strip("\n").splitlines() for b in blocks if b.strip()]
    assert len(blocks) == 6, len(blocks)
    best, worst1, worst2, tiny, deep1, deep2 = blocks
    assert worst1[-1].strip() == ")" and worst2[0].strip() == ")"
    worst = worst1[:-1] + worst2[1:]
    assert deep1[-1].strip() == "(relu5_0): ReLU())"
    deep = deep1[:-1] + [deep1[-1].replace("ReLU())", "ReLU()")] + deep2
    here = Path(__file__).parent
    for name, lines in zip(NAMES, [best, worst, tiny, deep]):
        (here / f"{name}.txt").write_text(modernize(reindent(lines)))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/report.txt")
