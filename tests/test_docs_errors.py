"""docs/errors.md lists every error: each golden of tests/specs/errors/ with its exact output and a fix that works,
and the real one-line text of the usage errors. The generated parts are rewritten by docs/make_errors_md.py."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "errors.md"
ERRORS = ROOT / "tests" / "specs" / "errors"
CASES = sorted(p.stem for p in ERRORS.glob("*.net"))


def _generator():
    spec = importlib.util.spec_from_file_location("make_errors_md", ROOT / "docs" / "make_errors_md.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def doc() -> str:
    return DOC.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def gen():
    return _generator()


@pytest.mark.parametrize("name", CASES)
def test_every_golden_is_in_the_doc(name, doc):
    err = (ERRORS / f"{name}.err").read_text(encoding="utf-8")
    first = err.splitlines()[0]
    assert first in doc, f"{name}: its error is not in docs/errors.md (run python docs/make_errors_md.py)"
    assert err.rstrip("\n") in doc  # the whole rendered error, caret and help included
    assert f'<a id="{name}"></a>' in doc


@pytest.mark.parametrize("name", CASES)
def test_every_fix_in_the_doc_works(name, gen):
    gen.check_fix(name)  # the golden with its documented fix applied loads and infers without an error


def test_every_golden_has_an_entry_and_a_group(gen):
    assert set(gen.ENTRIES) == set(CASES)
    groups = {key for key, _ in gen.GROUPS}
    assert all(e.group in groups for e in gen.ENTRIES.values())


def test_the_doc_is_in_sync_with_the_goldens_and_the_cli(doc, gen):
    assert gen.render(doc) == doc, "docs/errors.md is out of date: run python docs/make_errors_md.py"


def test_the_exit_codes_are_documented(doc):
    for code in ("| 0 |", "| 1 |", "| 2 |", "| 3 |", "| 130 |"):
        assert code in doc


def test_every_code_raised_is_in_the_table_and_every_code_in_the_table_is_raised():
    from netspec.errors import CODES

    used: dict[str, list[str]] = {}
    for path in (ROOT / "netspec").rglob("*.py"):
        # code="E070" in a call, or code: str = "E070" as a default (rules.ShapeError's)
        for code in re.findall(r'code(?:: str)? ?= ?"(E\d{3})"', path.read_text(encoding="utf-8")):
            used.setdefault(code, []).append(path.name)
    assert sorted(set(used) - set(CODES)) == [], "codes raised but not in netspec.errors.CODES"
    assert sorted(set(CODES) - set(used)) == [], "codes in netspec.errors.CODES that nothing raises"
    assert all(re.fullmatch(r"E\d{3}", c) for c in CODES)
