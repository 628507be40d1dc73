"""How long `netspec check SPEC` takes as a whole process, as a user runs it, on this machine.

    python benchmarks/check_speed.py                 # the report's four specs, 15 runs each
    python benchmarks/check_speed.py --runs 30 examples/lenet5.net

Each run is a fresh process of the installed `netspec` console script (the one next to this Python; `python -m
netspec` if there is none), timed from start to exit. One untimed run first builds Lark's tables (kept in
`NETSPEC_CACHE`, a folder of the benchmark's own) and Python's bytecode cache. Two floors on the same machine:
`python -c pass` (the interpreter and this installation's site hooks) and `python -c "import click"`. It prints
min / median / max, and the time a check spends importing netspec's language stage, pydantic, Lark and click
(`python -X importtime`).

PYTHONDONTWRITEBYTECODE=1 (set on some machines, this one included) keeps Python from caching netspec's bytecode in
an editable install, so every run compiles netspec's modules again; `--no-bytecode-cache` measures that case too.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPECS = [ROOT / "specs" / f"{n}.net" for n in ("cifar_best", "cifar_worst", "tiny_best", "tiny_deep")]


def netspec_command() -> list[str]:
    script = Path(sys.executable).with_name("netspec")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "netspec"]


def timed(cmd: list[str], runs: int, env: dict[str, str]) -> list[float]:
    subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # warm the caches
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        proc = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        times.append(time.perf_counter() - t)
        if proc.returncode != 0:
            sys.exit(f"{' '.join(cmd)} failed:\n{proc.stderr.decode()}")
    return times


def row(name: str, times: list[float]) -> str:
    return (
        f"| {name} | {min(times) * 1e3:.0f} ms | {statistics.median(times) * 1e3:.0f} ms | {max(times) * 1e3:.0f} ms |"
    )


def import_times(spec: Path, env: dict[str, str]) -> str:
    """How long one check spends importing the language stage (pydantic and Lark included) and click."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "netspec", "check", str(spec)],
        env=env,
        capture_output=True,
        text=True,
    )
    cumulative = {}
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \|\s*(\S+)$", line)
        if m:
            cumulative[m.group(2)] = int(m.group(1)) / 1e3
    return ", ".join(
        f"{name} {cumulative.get(name, 0):.0f} ms" for name in ("netspec.lang", "pydantic", "lark", "click")
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("specs", nargs="*", type=Path, default=SPECS)
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument(
        "--no-bytecode-cache",
        action="store_true",
        help="also time with PYTHONDONTWRITEBYTECODE=1 and no cached bytecode of netspec",
    )
    args = ap.parse_args()

    cmd = netspec_command()
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, load average {os.getloadavg()[0]:.2f}; command: {' '.join(cmd)} check SPEC"
    )
    modes = [("bytecode cached", False)] + ([("no bytecode cache", True)] if args.no_bytecode_cache else [])
    cache = Path(tempfile.mkdtemp(prefix="netspec-bench-cache-"))
    env = dict(os.environ, NETSPEC_CACHE=str(cache))
    for label, no_cache in modes:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        if no_cache:
            env["PYTHONDONTWRITEBYTECODE"] = "1"
            for folder in (ROOT / "netspec").rglob("__pycache__"):
                shutil.rmtree(folder, ignore_errors=True)
        print(f"\n{label}, {args.runs} runs each\n\n| run | min | median | max |\n| --- | --- | --- | --- |")
        print(row("`python -c pass`", timed([sys.executable, "-c", "pass"], args.runs, env)))
        print(row("`python -c 'import click'`", timed([sys.executable, "-c", "import click"], args.runs, env)))
        for spec in args.specs:
            name = spec.relative_to(ROOT) if spec.is_relative_to(ROOT) else spec
            print(row(f"`netspec check {name}`", timed(cmd + ["check", str(spec)], args.runs, env)), flush=True)
    print(f"\nimports of one check (netspec.lang includes pydantic and Lark): {import_times(args.specs[0], env)}")
    shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
    main()
