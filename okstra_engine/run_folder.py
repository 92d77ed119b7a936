"""Where a run folder sits: `<project>/.okstra/tasks/GROUP/ID/runs/RUN_ID`, holding its
`manifest.json`.

Imports nothing but the standard library: `okstra agent-event` checks its run folder on
every hook the agent fires.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

OKSTRA_DIR = ".okstra"


class RunPlace(NamedTuple):
    project_root: Path
    group: str
    task_id: str
    run_id: str


def run_place(run_dir: Path) -> RunPlace | None:
    """The project, task and run a resolved run folder's place names, or None when it is
    not a run folder of an okstra task (its manifest is not checked here)."""
    runs, task_dir = run_dir.parent, run_dir.parent.parent
    tasks, okstra = task_dir.parent.parent, task_dir.parent.parent.parent
    if (runs.name, tasks.name, okstra.name) != ("runs", "tasks", OKSTRA_DIR):
        return None
    return RunPlace(okstra.parent, task_dir.parent.name, task_dir.name, run_dir.name)


def run_folder_of(runs_dir: Path, run_id: str | None) -> Path | None:
    """The folder of run `run_id` in a task's `runs_dir`, when the id can name one: run
    ids come from the ledger, which the project's agents can write, so only a plain
    folder name does (no `/`, no `.` or `..`, no NUL)."""
    if not run_id or run_id in (".", "..") or "\0" in run_id or Path(run_id).name != run_id:
        return None
    return runs_dir / run_id


def has_manifest(run_dir: Path) -> bool:
    """A plain `manifest.json` file (not a link) is in the folder."""
    import stat

    try:
        return stat.S_ISREG(os.lstat(run_dir / "manifest.json").st_mode)
    except OSError:
        return False
