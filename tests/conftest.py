"""Every test run gets its own netspec cache folder (Lark's tables, parsed specs), so runs are hermetic and the
user's ~/.cache/netspec is never touched. Subprocesses inherit it through the environment."""

from __future__ import annotations

import os
import shutil
import tempfile

_folder = tempfile.mkdtemp(prefix="netspec-test-cache-")


def pytest_configure(config):
    os.environ["NETSPEC_CACHE"] = _folder


def pytest_unconfigure(config):
    shutil.rmtree(_folder, ignore_errors=True)
