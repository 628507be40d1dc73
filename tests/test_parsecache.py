"""netspec.lang.parsecache: a spec file is parsed once; the stored tree is the tree; a bad cache is never trusted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from netspec.api import check
from netspec.errors import SpecError
from netspec.lang import parsecache
from netspec.lang.syntax import normalize_source, parse

ROOT = Path(__file__).resolve().parents[1]
SPECS = sorted((*(ROOT / "specs").glob("*.net"), *(ROOT / "examples").glob("*.net")))


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NETSPEC_CACHE", str(tmp_path))
    return tmp_path / "parsed"


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_stored_tree_is_the_tree(path, cache):
    text = path.read_text()
    fresh = parse(text)  # no filename: not cached
    assert not cache.exists()
    assert parse(text, str(path)) == fresh  # parsed and stored
    (entry,) = cache.iterdir()
    assert parsecache.load(normalize_source(text)) == fresh
    assert parse(text, str(path)) == fresh  # read back
    assert json.loads(entry.read_text())["@"] == "Program"


def test_an_unchanged_file_is_not_parsed_again(tmp_path):
    spec = ROOT / "specs" / "cifar_worst.net"
    env = {"NETSPEC_CACHE": str(tmp_path)}
    code = (
        "import sys; from netspec.cli import main\n"
        f"try:\n    main(['check', {str(spec)!r}])\nexcept SystemExit as e:\n    assert e.code == 0\n"
        "print('lark' in sys.modules)\n"
    )
    runs = [
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env={**os.environ, **env}
        )
        for _ in range(2)
    ]
    assert [r.stdout.strip().splitlines()[-1] for r in runs] == ["True", "False"], [r.stderr for r in runs]
    assert runs[0].stdout.rsplit("\n", 2)[0] == runs[1].stdout.rsplit("\n", 2)[0]  # the same table


def test_an_edited_file_is_parsed_again(tmp_path, cache):
    path = tmp_path / "t.net"
    path.write_text("input 1x8x8\nlayers { f Flatten()  fc Linear(10) }\n")
    net1, _ = check(path)
    path.write_text("input 1x8x8\nlayers { f Flatten()  fc Linear(12) }\n")
    net2, _ = check(path)
    assert net1.layers[-1].config.out_features == 10 and net2.layers[-1].config.out_features == 12
    assert len(list(cache.iterdir())) == 2


@pytest.mark.parametrize(
    "content",
    [
        "",
        "{",
        "[]",
        '{"@": "Program", "f": []}',
        '{"@": "os.system", "f": ["ls"]}',
        '{"@": "Num", "f": [1, {"@": "Location", "f": [1, 1, null]}]}',
        "\x00\xff",
    ],
)
def test_a_bad_cache_entry_is_ignored(content, tmp_path, cache):
    path = tmp_path / "t.net"
    path.write_text("input 1x8x8\nlayers { f Flatten()  fc Linear(10) }\n")
    good, _ = check(path)
    (entry,) = cache.iterdir()
    entry.write_text(content, encoding="utf-8", errors="surrogateescape")
    again, _ = check(path)
    assert again.layers == good.layers


def test_an_unwritable_cache_is_skipped(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("NETSPEC_CACHE", str(blocker))  # mkdir below a file fails
    net, _ = check(ROOT / "examples" / "lenet5.net")
    assert net.layers


def test_errors_after_parsing_are_located_from_the_cache(tmp_path, cache):
    path = tmp_path / "bad.net"
    path.write_text("input 1x8x8\nlayers {\n  conv Conv2d(0, 3)\n}\n")
    messages = []
    for _ in range(2):  # parsed, then read from the cache: the same located error
        with pytest.raises(SpecError) as e:
            check(path)
        messages.append(e.value.render())
    assert messages[0] == messages[1] and ":3:15: error: argument 'out_channels'" in messages[0]


def test_the_cache_stays_small(tmp_path, cache, monkeypatch):
    monkeypatch.setattr(parsecache, "MAX_ENTRIES", 4)
    for i in range(7):
        path = tmp_path / f"t{i}.net"
        path.write_text(f"input 1x8x8\nlayers {{ f Flatten()  fc Linear({i + 1}) }}\n")
        check(path)
    assert 2 <= len(list(cache.iterdir())) <= 4
