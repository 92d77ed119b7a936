"""The gates of a final-verification run that need git or the registry: what it may
verify, or why not (whether the stages are done is `gates`' to say, first).

Whole task (the default): every latest done commit merged into the task worktree HEAD,
and the task worktree clean. One stage (`--stage N`): its stage worktree present, clean
and at the stage's done commit (what was recorded and handed off, never a tip that was
not); the run then works in that worktree (`reused-stage`). Each violated condition is
its own refusal, so the person fixes one thing at a time and knows which.
"""

from __future__ import annotations

from pathlib import Path

from . import git, registry, worktrees
from .ledger_state import LedgerState
from .refusals import Params, Refusal
from .tasks import Task, stage_branch
from .worktrees import Provision

REUSED_STAGE = "reused-stage"


def check_whole_task(task: Task, ledger: LedgerState, task_wt: Provision) -> str:
    """Return the target description, or raise the first violated condition that needs
    git (every stage is done: `gates.stages_refusal` said so)."""
    done = ledger.done_rows()
    if task_wt.path is None or task_wt.status in (worktrees.SKIPPED_NON_GIT,):
        return "the whole task"
    head = git.head(task_wt.path)
    commits = {n: row.head_commit for n, row in done.items() if row.head_commit}
    unmerged = git.not_ancestors(task_wt.path, list(commits.values()), head) if head else set(commits.values())
    late = [n for n, sha in sorted(commits.items()) if sha in unmerged]
    if late:
        from .gates import not_merged
        from .reconcile import fix_guidance

        stages = [(n, commits[n]) for n in late]
        raise not_merged(task, stages, head=head or "?", fix=fix_guidance(task, late[0])).error()
    dirty = git.dirty_paths(task_wt.path, task.project.config.clean_gate_excludes)
    if dirty:
        raise Refusal(
            "verify.task_worktree_dirty", {"task": str(task.ref), "path": str(task_wt.path), "paths": dirty}
        ).error()
    return "the whole task"


def check_one_stage(task: Task, stage: int, ledger: LedgerState) -> Provision:
    """The stage's own worktree, to verify in; or the first violated condition that needs
    the registry or git (the stage is done: `gates.stage_refusal` said so)."""
    done = ledger.done_rows()[stage]
    params: Params = {"task": str(task.ref), "stage": stage}
    row = registry.get_worktree(worktrees.task_slot(task), stage)
    path = Path(row.path) if row is not None else None
    if row is None or path is None or not path.is_dir():
        where = None if path is None else str(path)
        raise Refusal(
            "verify.stage_worktree_missing", {**params, "path": where, "branch": stage_branch(task, stage)}
        ).error()
    dirty = git.dirty_paths(path, task.project.config.clean_gate_excludes)
    if dirty:
        raise Refusal("verify.stage_worktree_dirty", {**params, "path": str(path), "paths": dirty}).error()
    want = done.head_commit
    if want and not git.is_full_sha(want):
        want = git.resolve_commit(path, want) or want
    head = git.head(path)
    if want and head != want:
        from .reconcile import ways_out

        moved = {"commit": want, "head": head, "path": str(path)}
        raise Refusal(
            "verify.stage_head_moved", {**params, **moved, **ways_out(task, stage, want, head or "HEAD")}
        ).error()
    return Provision(
        path,
        row.branch,
        row.base_ref,
        REUSED_STAGE,
        note=f"final verification works in stage {stage}'s worktree (done at {(done.head_commit or '-')[:8]})",
    )
