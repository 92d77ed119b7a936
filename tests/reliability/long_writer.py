"""The other terminal of the long-session test: appends ROWS ledger rows (heartbeats of the
run in flight, reserve/start/release cycles of another stage) and makes COMMITS commits
(in the task worktree and in the stage worktree in flight), paced over a few seconds.

    python -m tests.reliability.long_writer LEDGER TASK_KEY TASK_WT STAGE_WT ROWS COMMITS SECONDS

Prints the number of rows and commits it made.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path


def main() -> int:
    ledger, key, task_wt, stage_wt, rows, commits, seconds = sys.argv[1:8]
    rows, commits, seconds = int(rows), int(commits), float(seconds)
    from okstra_engine.ledger import append_row, new_row

    env = {
        "GIT_AUTHOR_NAME": "writer",
        "GIT_AUTHOR_EMAIL": "w@example.com",
        "GIT_COMMITTER_NAME": "writer",
        "GIT_COMMITTER_EMAIL": "w@example.com",
    }
    import os

    env = {**{k: v for k, v in os.environ.items() if not k.startswith("GIT_")}, **env}
    every = max(1, rows // commits)
    made = 0
    pause = seconds / rows
    for i in range(rows - 1):
        run = f"20990101T000000Z-implementation-s4-{i // 4:06x}"
        kind = i % 4
        if kind == 0:
            row = new_row(4, "reserved", run_id=run, impl_task_key=key)
        elif kind == 1:
            row = new_row(4, "started", run_id=run, impl_task_key=key)
        elif kind == 2:
            row = new_row(3, "started", impl_task_key=key)
        else:
            row = new_row(4, "released", run_id=run, impl_task_key=key, reason="manual")
        append_row(Path(ledger), row)
        if i % every == every - 1 and made < commits:
            made = _commit(task_wt, stage_wt, made, env)
        time.sleep(pause)
    while made < commits:
        made = _commit(task_wt, stage_wt, made, env)
    append_row(
        Path(ledger), new_row(4, "reserved", run_id="20990101T000000Z-implementation-s4-final", impl_task_key=key)
    )
    print(rows, made)
    return 0


def _commit(task_wt: str, stage_wt: str, made: int, env: dict[str, str]) -> int:
    """One commit, in the task worktree and the stage worktree in turn; returns made + 1."""
    where = Path(task_wt if made % 2 == 0 else stage_wt)
    name = f"notes/long-{made}.txt"
    (where / "notes").mkdir(exist_ok=True)
    (where / name).write_text(f"note {made}\n")
    subprocess.run(["git", "add", "--", name], cwd=where, env=env, check=True, capture_output=True)
    subprocess.run(
        ["git", "commit", "-q", "--no-verify", "-m", f"note {made}", "--", name],
        cwd=where,
        env=env,
        check=True,
        capture_output=True,
    )
    return made + 1


if __name__ == "__main__":
    sys.exit(main())
