"""Run every benchmark and print one table: case, okstra's time, its floor measured in
the same run, the ratio, and the goal.

    python benchmarks/run.py [--quick] [--real PATH] [BENCH ...]

`--real PATH` goes to the benchmarks that take a real repository (the reconcile bench's
real history); without it they say that row is skipped.

Each `*_bench.py` here prints the shared header and its rows (see _common.py); this
script runs them one after another so they do not compete for the two cores.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import HEADER  # noqa: E402

TAKE_REAL = {"reconcile"}
"""The benchmarks with a row on a real repository (`--real PATH`)."""


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer runs per case (a smoke test, noisier figures)")
    parser.add_argument("--real", type=Path, metavar="PATH", help="a clone of a public repository, for the real rows")
    parser.add_argument("only", nargs="*", help="run only these benches (e.g. status reconcile)")
    args = parser.parse_args()
    benches = sorted(HERE.glob("*_bench.py"))
    if args.only:
        benches = [b for b in benches if b.stem.removesuffix("_bench") in args.only]
    rows, failures = [], []
    for bench in benches:
        start = time.perf_counter()
        cmd = [sys.executable, str(bench)] + (["--quick"] if args.quick else [])
        if args.real is not None and bench.stem.removesuffix("_bench") in TAKE_REAL:
            cmd += ["--real", str(args.real.resolve())]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        took = time.perf_counter() - start
        if proc.returncode != 0:
            failures.append(f"{bench.name}: exit {proc.returncode}: {proc.stderr.strip().splitlines()[-1:] or ''}")
            continue
        lines = [l for l in proc.stdout.splitlines() if l.strip() and l != HEADER]
        rows += lines
        print(f"# {bench.name}: {took:.0f} s", file=sys.stderr)
    from _common import interleaved, startup_floor, time_command

    bare = interleaved(
        {"python": lambda: time_command([sys.executable, "-c", "pass"]), "pydantic": startup_floor},
        7 if args.quick else 15,
    )
    print(HEADER)
    for row in rows:
        print(row)
    print(f"{'(reference) python -c pass':<44} {bare['python'] * 1000:8.1f} ms")
    print(f"{'(reference) python + pydantic + one model':<44} {bare['pydantic'] * 1000:8.1f} ms")
    for failure in failures:
        print(f"FAILED {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
