"""One of the load test's processes: ROUNDS rounds of prepare → started → released on one
task, and at its DONE_ROUND (if any) prepare → started → commit → done → handoff instead.

    python -m tests.reliability.load_worker PROJECT TASK WORKER ROUNDS DONE_ROUND GO_FILE

It calls the engine in-process (the work of `okstra prepare` / `record` / `handoff`
without a Python start per call; see test_load.py for why) and prints one JSON document:
what it reserved, in order, and what was refused.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path


def main() -> int:
    project, ref, worker, rounds, done_round, go = sys.argv[1:7]
    worker, rounds, done_round = int(worker), int(rounds), int(done_round)
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    from okstra_engine import git
    from okstra_engine.errors import OkstraError
    from okstra_engine.handoff import run_handoff
    from okstra_engine.prepare import PrepareOptions, prepare
    from okstra_engine.projects import load_project
    from okstra_engine.record import record
    from okstra_engine.slugs import TaskRef
    from okstra_engine.tasks import load_task

    task = load_task(load_project(Path(project)), TaskRef.parse(ref))
    log: dict = {"worker": worker, "held": [], "refused": [], "errors": [], "handoffs": []}
    while not Path(go).exists():
        time.sleep(0.01)
    started = time.monotonic()
    for n in range(rounds):
        try:
            manifest = prepare(task, PrepareOptions("implementation", lock_timeout=300)).manifest
        except OkstraError as exc:
            log["refused"].append(exc.what[:120])  # nothing ready right now: all are held
            time.sleep(0.02)
            continue
        stage, run = manifest.stage, manifest.run_id
        log["held"].append([stage, run])
        try:
            record(task, stage, "started", run_id=run)
            if n == done_round:
                wt = Path(manifest.worktree.path)
                (wt / f"stage-{stage}.txt").write_text(f"stage {stage} by worker {worker}\n")
                sha = git.commit_paths(
                    wt, [f"stage-{stage}.txt"], f"stage {stage}", author=("load", "load@example.com")
                )
                record(task, stage, "done", commit=sha, run_id=run)
                result = run_handoff(task, f"S{stage}", merge=True, lock_timeout=300)
                log["handoffs"].append([stage, result.merged])
            else:
                record(task, stage, "released", run_id=run)
        except OkstraError as exc:
            log["errors"].append(f"round {n} stage {stage}: {exc}")
    log["seconds"] = round(time.monotonic() - started, 2)
    print(json.dumps(log))
    return 0


if __name__ == "__main__":
    sys.exit(main())
