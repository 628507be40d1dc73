"""How long `netspec check SPEC` takes as a whole process, as a user runs it, on this machine.

    python benchmarks/check_speed.py                 # the report's four specs, 15 runs each
    python benchmarks/check_speed.py --runs 30 examples/lenet5.net

Each run is a fresh process of the installed `netspec` console script (the one next to this Python; `python -m
netspec` if there is none), timed from start to exit, with a cache folder of its own (`NETSPEC_CACHE`). One
untimed run first builds Lark's tables and Python's bytecode cache. Two rows per spec: the first check of the spec
(its parsed tree removed from the cache before each run: Lark parses it) and a check of an unchanged spec (the tree
read from the cache: Lark is not imported). Two floors on the same machine: `python -c pass` (the interpreter and
this installation's site hooks) and `python -c "import click"`. It prints min / median / max and the modules of
torch, pydantic and Lark that a repeated check imported (there should be none).

PYTHONDONTWRITEBYTECODE=1 (set on some machines, this one included) keeps Python from caching netspec's bytecode in
an editable install, so every run compiles netspec's modules again; `--no-bytecode-cache` measures that case too.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPECS = [ROOT / "specs" / f"{n}.net" for n in ("cifar_best", "cifar_worst", "tiny_best", "tiny_deep")]

PROBE = (
    "import sys, runpy; sys.argv = ['netspec', 'check', %r]\n"
    "try:\n    runpy.run_module('netspec', run_name='__main__')\nexcept SystemExit:\n    pass\n"
    "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'pydantic', 'pydantic_core', 'lark'}))"
)


def netspec_command() -> list[str]:
    script = Path(sys.executable).with_name("netspec")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "netspec"]


def timed(cmd: list[str], runs: int, env: dict, forget: Path | None = None) -> list[float]:
    subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # warm the caches
    times = []
    for _ in range(runs):
        if forget is not None:
            shutil.rmtree(forget, ignore_errors=True)
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
    for label, no_cache in modes:
        env = dict(os.environ, NETSPEC_CACHE=str(cache))
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        if no_cache:
            env["PYTHONDONTWRITEBYTECODE"] = "1"
            shutil.rmtree(ROOT / "netspec" / "__pycache__", ignore_errors=True)
        print(f"\n{label}, {args.runs} runs each\n\n| run | min | median | max |\n| --- | --- | --- | --- |")
        print(row("`python -c pass`", timed([sys.executable, "-c", "pass"], args.runs, env)))
        print(row("`python -c 'import click'`", timed([sys.executable, "-c", "import click"], args.runs, env)))
        for spec in args.specs:
            name = spec.relative_to(ROOT) if spec.is_relative_to(ROOT) else spec
            print(
                row(
                    f"`netspec check {name}`, first check",
                    timed(cmd + ["check", str(spec)], args.runs, env, forget=cache / "parsed"),
                ),
                flush=True,
            )
            print(
                row(f"`netspec check {name}`, unchanged spec", timed(cmd + ["check", str(spec)], args.runs, env)),
                flush=True,
            )
    for _ in range(2):  # the first run stores the tree that the second reads
        heavy = subprocess.run(
            [sys.executable, "-c", PROBE % str(args.specs[0])],
            capture_output=True,
            text=True,
            env=dict(os.environ, NETSPEC_CACHE=str(cache)),
        )
    shutil.rmtree(cache, ignore_errors=True)
    imported = heavy.stdout.strip().splitlines()[-1]
    print(f"\nmodules of torch, pydantic and Lark imported by a repeated check: {imported}")


if __name__ == "__main__":
    main()
