"""The gates of a final-verification run (SPEC §4.2): what it may verify, or why not.

Whole task (the default): every Stage Map stage done, every latest done commit merged
into the task worktree HEAD, and the task worktree clean. One stage (`--stage N`): stage
N done, its stage worktree present and clean; the run then works in that worktree
(`reused-stage`). Each violated condition is its own error, so the person fixes one
thing at a time and knows which.
"""

from __future__ import annotations

from pathlib import Path

from . import git, registry, worktrees
from .errors import OkstraError
from .ledger_state import LedgerState
from .stage_map import StageMap
from .tasks import Task, stage_branch
from .worktrees import Provision

REUSED_STAGE = "reused-stage"


def check_whole_task(task: Task, stage_map: StageMap, ledger: LedgerState, task_wt: Provision) -> str:
    """Return the target description, or raise the first violated condition."""
    done = ledger.done_rows()
    missing = [s.stage for s in stage_map.stages if s.stage not in done]
    if missing:
        listed = ", ".join(map(str, missing))
        raise OkstraError(
            f"final verification of {task.ref} needs every stage done; stage(s) {listed} are not",
            f"finish them first (okstra status {task.ref}), or verify one stage: --stage N",
        )
    if task_wt.path is None or task_wt.status in (worktrees.SKIPPED_NON_GIT,):
        return "the whole task"
    head = git.head(task_wt.path)
    commits = {n: row.head_commit for n, row in done.items() if row.head_commit}
    unmerged = git.not_ancestors(task_wt.path, list(commits.values()), head) if head else set(commits.values())
    late = [n for n, sha in sorted(commits.items()) if sha in unmerged]
    if late:
        from .reconcile import fix_guidance

        listed = ", ".join(f"stage {n} ({commits[n][:8]})" for n in late)
        raise OkstraError(
            f"final verification of {task.ref} needs every stage merged into the task worktree; {listed} "
            f"{'is' if len(late) == 1 else 'are'} not (task HEAD {(head or '?')[:8]})",
            "hand the stages off (okstra handoff " + str(task.ref) + " --merge), or: " + fix_guidance(task, late[0]),
        )
    dirty = git.dirty_paths(task_wt.path, task.project.config.clean_gate_excludes)
    if dirty:
        raise OkstraError(
            f"the task worktree {task_wt.path} has uncommitted changes: {_some(dirty)}",
            "commit or stash them there (okstra ignores .okstra and the project's cleanGateExcludes)",
        )
    return "the whole task"


def check_one_stage(task: Task, stage: int, ledger: LedgerState) -> Provision:
    """The stage's own worktree, to verify in; or the first violated condition."""
    done = ledger.done_rows().get(stage)
    if done is None:
        raise OkstraError(
            f"stage {stage} of {task.ref} is not done, so there is nothing to verify yet",
            f"finish it first (okstra status {task.ref})",
        )
    row = registry.get_worktree(worktrees.task_slot(task), stage)
    path = Path(row.path) if row is not None else None
    if row is None or path is None or not path.is_dir():
        raise OkstraError(
            f"stage {stage}'s worktree {'is not registered' if path is None else f'{path} does not exist'}",
            f"verify it through the task instead (hand it off, then okstra prepare {task.ref} --type final-verification), "
            f"or recreate it: git worktree add <path> {stage_branch(task, stage)}",
        )
    dirty = git.dirty_paths(path, task.project.config.clean_gate_excludes)
    if dirty:
        raise OkstraError(
            f"stage {stage}'s worktree {path} has uncommitted changes: {_some(dirty)}",
            "commit or stash them there before verifying the stage",
        )
    return Provision(
        path,
        row.branch,
        row.base_ref,
        REUSED_STAGE,
        note=f"final verification works in stage {stage}'s worktree (done at {(done.head_commit or '-')[:8]})",
    )


def _some(paths: list[str], most: int = 5) -> str:
    shown = ", ".join(paths[:most])
    return shown + (f" and {len(paths) - most} more" if len(paths) > most else "")
