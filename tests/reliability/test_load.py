"""Load: 16 processes at once on one task of 16 independent stages, each running rounds
of prepare → started → released (and, once for half of them, prepare → started → done →
handoff of that stage's group). Then: no stage was ever in flight twice, every ledger row
parses, and `status` agrees with the ledger as this test replays it.

Each process calls the engine in-process (`load_worker.py`): what `okstra prepare`,
`record` and `handoff` do, minus a Python start per call. With the console script, 16 × 50
rounds are 2,400 process starts of ~0.25 s CPU each, some ten minutes on two cores; the
concurrency under test (the task mutex, O_APPEND rows from many processes, the SQLite
registry) is the same either way. The prepares themselves are serialised by the task
mutex (that is the point), so the run takes rounds × 16 × one prepare (~40 ms here).
`OKSTRA_LOAD_ROUNDS` changes the number of rounds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from okstra_engine.ledger import IN_FLIGHT, LEDGER_NAME, parse_ledger
from okstra_engine.plans import import_plan, plan_run_root
from okstra_engine.projects import init_project
from okstra_engine.slugs import TaskRef
from okstra_engine.tasks import new_task
from tests.reliability.invariants import World, check

pytestmark = pytest.mark.timeout(600)

PROCESSES = 16
STAGES = 16
ROUNDS = int(os.environ.get("OKSTRA_LOAD_ROUNDS", "50"))
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def sixteen(repo: Path, tmp_path: Path):
    project, _ = init_project(repo, qa_commands=["true"])
    task = new_task(project, TaskRef("load", "wide"), title="Sixteen at once")
    source = tmp_path / "stage-map.json"
    source.write_text(
        json.dumps(
            {
                "stages": [
                    {"stage": n, "title": f"S{n}", "depends_on": [], "group": f"S{n}"} for n in range(1, STAGES + 1)
                ]
            }
        )
    )
    import_plan(task, source, approve=True)
    return task


@pytest.mark.slow
def test_sixteen_processes_hammer_one_task(sixteen, tmp_path: Path) -> None:
    task = sixteen
    go = tmp_path / "go"
    env = os.environ.copy()
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    # half the processes finish a stage once (at different rounds); the others only
    # ever reserve and release, so at the end 8 stages stay open for 16 processes
    done_round = {w: 1 + (w * ROUNDS) // (PROCESSES // 2) // 2 for w in range(PROCESSES // 2)}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.reliability.load_worker",
                str(task.project.root),
                "load/wide",
                str(w),
                str(ROUNDS),
                str(done_round.get(w, -1)),
                str(go),
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(PROCESSES)
    ]
    time.sleep(0.5)  # let them import, then start together
    start = time.monotonic()
    go.write_text("go")
    outputs = [p.communicate(timeout=540) for p in procs]
    elapsed = time.monotonic() - start
    assert [p.returncode for p in procs] == [0] * PROCESSES, [err[-2000:] for _, err in outputs]
    logs = [json.loads(out) for out, _ in outputs]
    errors = [e for log in logs for e in log["errors"]]
    assert errors == []

    # every row parses; a torn or glued line would show as a warning
    ledger = plan_run_root(task).dir / LEDGER_NAME
    data = ledger.read_bytes()
    read = parse_ledger(data)
    assert read.warnings == []
    assert data.endswith(b"\n") and data.count(b"\n") == len(read.rows)

    # replay: never reserved while in flight; each process held what it thinks it held
    state: dict[int, str] = {}
    holder: dict[int, str | None] = {}
    for no, row in enumerate(read.rows, 1):
        if row.status == "reserved":
            assert state.get(row.stage) not in IN_FLIGHT, f"row {no}: stage {row.stage} reserved again while in flight"
            holder[row.stage] = row.run_id
        elif row.status in ("started", "done", "released"):
            assert holder.get(row.stage) == row.run_id, (
                f"row {no}: stage {row.stage} {row.status} by {row.run_id}, held by {holder.get(row.stage)}"
            )
        if state.get(row.stage) == "done":
            raise AssertionError(f"row {no}: stage {row.stage} has a row after it was done")
        state[row.stage] = row.status
    reserved = [(r.stage, r.run_id) for r in read.rows if r.status == "reserved"]
    held = [tuple(pair) for log in logs for pair in log["held"]]
    assert sorted(reserved) == sorted(held)
    rounds_done = len(held)
    refusals = sum(len(log["refused"]) for log in logs)
    assert rounds_done + refusals == PROCESSES * ROUNDS

    # status agrees with the replay
    from okstra_engine.status import task_status

    status = task_status(task)
    want = {n: ("done" if state.get(n) == "done" else "ready") for n in range(1, STAGES + 1)}
    assert {v.stage: v.state for v in status.stages} == want
    assert sum(1 for s in want.values() if s == "done") == PROCESSES // 2
    assert status.warnings == []
    handed = sorted(stage for log in logs for stage, _ in log["handoffs"])
    assert handed == sorted(n for n, s in want.items() if s == "done")
    report = check(World(task.project.root, "load/wide"), settled=True)
    assert report.violations == []
    print(
        f"\nload: {PROCESSES} processes x {ROUNDS} rounds in {elapsed:.1f} s: {rounds_done} prepares "
        f"({rounds_done / elapsed:.1f}/s through the task mutex), {refusals} refused (nothing ready), "
        f"{len(read.rows)} ledger rows, {len(handed)} stages done and handed off"
    )
