"""Where a run folder sits: `<project>/.okstra/tasks/GROUP/ID/runs/RUN_ID`, holding its
`manifest.json`.

Imports nothing but `os`: the agent's hook (`agent_events`) checks its run folder on
every event, in a process that starts without pathlib or typing.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from pathlib import Path

OKSTRA_DIR = ".okstra"
TASK_FILE = "task.json"
POINTER_NAME = "current-plan.json"
"""The task's pointer to the planning run holding its current plan."""
LEDGER_NAME = "consumers.jsonl"
"""A planning run's ledger."""


def task_folder(project_root: Path, group: str, task_id: str) -> Path:
    """`<project>/.okstra/tasks/GROUP/ID`."""
    return project_root / OKSTRA_DIR / "tasks" / group / task_id


class RunPlace:
    """The project, task and run a run folder's place names."""

    __slots__ = ("group", "project_root", "run_id", "task_id")

    def __init__(self, project_root: Path, group: str, task_id: str, run_id: str) -> None:
        self.project_root = project_root
        self.group = group
        self.task_id = task_id
        self.run_id = run_id


def place_parts(run_dir: str) -> tuple[str, str, str, str] | None:
    """The project root, group, task id and run id a resolved run folder's path names,
    or None when it is not at a run folder's place (its manifest is not checked here)."""
    runs, run_id = os.path.split(run_dir)
    task_dir, runs_name = os.path.split(runs)
    group_dir, task_id = os.path.split(task_dir)
    tasks, group = os.path.split(group_dir)
    okstra, tasks_name = os.path.split(tasks)
    root, okstra_name = os.path.split(okstra)
    if (runs_name, tasks_name, okstra_name) != ("runs", "tasks", OKSTRA_DIR):
        return None
    return root, group, task_id, run_id


def run_place(run_dir: Path) -> RunPlace | None:
    """`place_parts` of a resolved run folder, its project as a path."""
    parts = place_parts(str(run_dir))
    if parts is None:
        return None
    _, group, task_id, run_id = parts
    return RunPlace(run_dir.parents[5], group, task_id, run_id)


def run_folder_of(runs_dir: Path, run_id: str | None) -> Path | None:
    """The folder of run `run_id` in a task's `runs_dir`, when the id can name one: run
    ids come from the ledger, which the project's agents can write, so only a plain
    folder name does (no `/`, no `.` or `..`, no NUL)."""
    if not run_id or run_id in (".", "..") or "\0" in run_id or "/" in run_id:
        return None
    return runs_dir / run_id


def has_manifest(run_dir: str | os.PathLike[str]) -> bool:
    """A plain `manifest.json` file (not a link) is in the folder."""
    import stat

    try:
        return stat.S_ISREG(os.lstat(os.path.join(run_dir, "manifest.json")).st_mode)
    except OSError:
        return False
