"""`okstra sync G/ID --stage N`: bring the task branch into a stage's worktree, so a
stage started before its neighbours' handoff picks their work up.

Only into a worktree that is okstra's, clean (no uncommitted or untracked change, no git
operation left unfinished) and not in flight (its agent would find the ground moving
under it): each refusal names its reason (`sync.*`). A merge (the default) or a rebase
(`rebase`) that conflicts is aborted, so the worktree is as it was, and the refusal
names the files. A done stage is never rebased: its done commit would leave its branch
and the handoff would refuse the stage (`handoff.rewritten`). Under the task mutex.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import git, registry
from .errors import OkstraError
from .gates import unknown_stage
from .locks import Notice, task_mutex
from .refusals import Refusal, iso, refuse
from .tasks import Task, task_branch
from .worktrees import task_slot


@dataclass(frozen=True)
class SyncResult:
    stage: int
    path: Path
    operation: str
    """`merge` or `rebase`."""
    before: str
    after: str
    task_tip: str

    @property
    def changed(self) -> bool:
        return self.before != self.after

    def to_json(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "worktree": str(self.path),
            "operation": self.operation,
            "before": self.before,
            "after": self.after,
            "task_tip": self.task_tip,
            "changed": self.changed,
        }


def sync_stage(task: Task, stage: int, *, rebase: bool = False, on_wait: Notice | None = None) -> SyncResult:
    """Merge (or rebase onto) the task branch in stage `stage`'s worktree; raises a
    RefusedError that says why not."""
    with task_mutex(task, on_wait=on_wait):
        return _sync_locked(task, stage, rebase)


def _sync_locked(task: Task, stage: int, rebase: bool) -> SyncResult:
    from .status import task_status

    status = task_status(task)
    if status.stage_map is None:
        raise OkstraError(f"task {task.ref} has no approved plan", f"see okstra status {task.ref}")
    refuse(unknown_stage(task, status.stage_map, stage))
    view = next(v for v in status.stages if v.stage == stage)
    ref = str(task.ref)
    if view.is_flying:
        refuse(Refusal("sync.in_flight", {"task": ref, "stage": stage, "run": view.run_id, "since": iso(view.since)}))
    row = registry.get_worktree(task_slot(task), stage)
    if row is None or not Path(row.path).is_dir():
        refuse(Refusal("sync.no_worktree", {"task": ref, "stage": stage}))
    assert row is not None
    path = Path(row.path)
    busy = git.operation_in_progress(path)
    if busy:
        refuse(Refusal("sync.busy", {"task": ref, "stage": stage, "path": str(path), "operation": busy}))
    dirty = git.dirty_paths(path)
    if dirty:
        refuse(Refusal("sync.dirty", {"task": ref, "stage": stage, "path": str(path), "paths": dirty}))
    if rebase and view.is_done:
        refuse(Refusal("sync.rebase_done", {"task": ref, "stage": stage, "commit": view.done_commit}))
    tip = git.resolve_commit(path, f"refs/heads/{task_branch(task)}")
    if tip is None:
        raise OkstraError(
            f"task {task.ref} has no task branch yet",
            f"prepare a stage first: okstra prepare {task.ref} --type implementation",
        )
    before = git.head(path) or ""
    operation = "rebase" if rebase else "merge"
    if git.is_ancestor(path, tip, before):
        return SyncResult(stage, path, operation, before, before, tip)
    identity = git.identity_args(path)
    if rebase:
        args = [*identity, "rebase", "--quiet", "--no-autostash", "--no-rerere-autoupdate", "--end-of-options", tip]
    else:
        message = f"okstra sync {task.ref} stage {stage}: merge the task branch {task_branch(task)} at {tip[:12]}"
        args = [
            *identity,
            "merge",
            "--no-edit",
            "--no-verify",
            "--no-autostash",
            "--no-rerere-autoupdate",
            "--no-log",
            "-m",
            message,
            "--end-of-options",
            tip,
        ]
    proc = git.run(args, path, check=False)
    if proc.returncode != 0:
        files = git.unmerged_paths(path)
        git.run([operation, "--abort"], path, check=False)
        if git.head(path) != before or git.operation_in_progress(path):
            raise OkstraError(
                f"git {operation} --abort did not put stage {stage}'s worktree {path} back at {before[:8]}",
                f"look at it: git -C {path} status",
            )
        if files:
            refuse(
                Refusal(
                    "sync.conflict",
                    {
                        "task": ref,
                        "stage": stage,
                        "path": str(path),
                        "paths": files,
                        "operation": operation,
                        "branch": task_branch(task),
                    },
                )
            )
        raise OkstraError(
            f"git refused to {operation} the task branch into stage {stage}'s worktree {path}: {git.failure_message(proc)}",
            "nothing was changed there; fix what git reports, then rerun",
        )
    return SyncResult(stage, path, operation, before, git.head(path) or before, tip)
