"""The layout holds: data flows one way (lang -> shapes -> build -> training -> cli), stages use each other's public
names only, and `check` writes nothing under $HOME but Lark's table cache."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "netspec"


def _loaded_after(code: str) -> set[str]:
    probe = code + "\nimport sys\nprint(' '.join(sorted(sys.modules)))\n"
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=True)
    return set(proc.stdout.split())


@pytest.mark.parametrize("module", ["netspec.lang", "netspec.shapes"])
def test_early_stages_load_no_later_one(module):
    loaded = _loaded_after(f"import {module}")
    later = ("netspec.build", "netspec.training", "netspec.importer", "netspec.cli", "torch")
    assert not {m for m in loaded if m.startswith(later)}, sorted(m for m in loaded if m.startswith(later))
    if module == "netspec.lang":
        assert "netspec.shapes" not in loaded


def _own_modules() -> list[Path]:
    """Every module of the package."""
    return sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", _own_modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_private_names_imported_across_modules(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    private = [
        f"{node.module}.{alias.name}"
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module != "__future__"
        for alias in node.names
        if alias.name.startswith("_") and not alias.name.startswith("__")
    ]
    assert not private, private


def test_check_writes_nothing_under_home_but_the_parser_tables(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("NETSPEC_CACHE", "XDG_CACHE_HOME")}
    env["HOME"] = str(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "netspec", "check", str(ROOT / "specs" / "cifar_best.net")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert len(written) == 1 and written[0].startswith(".cache/netspec/grammar-"), written


@pytest.mark.parametrize("path", _own_modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_every_module_reads_in_one_sitting(path):
    # no module over 500 lines, no function over about 60: the sizes every later change keeps too
    text = path.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 500
    long = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(ast.parse(text))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 60
    ]
    assert not long, long
