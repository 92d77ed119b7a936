"""`okstra status --json` on a 100-stage map with a 10,000-row ledger, against a bare
`python -c` that json-reads the same ledger (the floor: interpreter start + the read).

Two cases: the usual one, where an earlier okstra command left the ledger's state in
okstra's cache and only appended rows are parsed (an agent calling status in a
loop); and the first call ever on that ledger, the cache removed before each run, which
validates all 10,000 rows (a reference row: the goal is judged on the usual case).

    python benchmarks/status_bench.py [--runs N]
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import HEADER, bench_args, bench_repo, bench_task, interleaved, okstra_cmd, report, time_command

GOAL = 3.0  # issue 8 (issue 2 asked ≤6x)


def build(root: Path) -> tuple[Path, Path]:
    from okstra_engine.ledger import LEDGER_NAME, new_row

    repo = root / "repo"
    sha = bench_repo(repo)
    from okstra_engine.plans import plan_run_root

    plan_dir = plan_run_root(
        bench_task(
            repo, "bench/status", "status bench", {n: [d for d in (n - 1, n - 2) if d >= 1] for n in range(1, 101)}
        )
    ).dir
    ledger = plan_dir / LEDGER_NAME
    lines = []
    for i in range(10_000):
        stage = i % 100 + 1
        status = ("reserved", "started", "done", "released")[i % 4]
        row = new_row(
            stage,
            status,
            run_id=f"run-{i // 4}",
            impl_task_key="bench-status",
            head_commit=sha if status == "done" else None,
        )
        lines.append(row.to_line())
    ledger.write_text("\n".join(lines) + "\n")
    return repo, ledger


def main() -> int:
    args = bench_args(15)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["OKSTRA_HOME"] = str(Path(tmp) / "home")
        repo, ledger = build(Path(tmp))
        okstra = [*okstra_cmd(), "--project", str(repo), "status", "bench/status", "--json"]
        floor = [sys.executable, "-c", f"import json\nfor l in open({str(ledger)!r}): json.loads(l)"]
        cache = Path(os.environ["OKSTRA_HOME"]) / "cache"

        def cold() -> float:
            shutil.rmtree(cache, ignore_errors=True)
            return time_command(okstra)

        time_command(okstra)  # warm the page cache and pyc files
        medians = interleaved(
            {"okstra": lambda: time_command(okstra), "floor": lambda: time_command(floor), "cold": cold}, args.runs
        )
    print(HEADER)
    print(report("status --json (100 stages, 10k rows)", medians["okstra"], medians["floor"], GOAL))
    print(report("status --json, first call (no ledger cache)", medians["cold"], medians["floor"], None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
