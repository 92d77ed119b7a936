"""`okstra record`: a lead (or a person) writes a stage's progress into the ledger,
under the task mutex (it reads the stage's latest row, then appends)."""

from __future__ import annotations

from . import faults, git
from .errors import OkstraError
from .gates import release_refusal
from .git import is_full_sha
from .ledger import LEDGER_NAME, LedgerRow, Status, append_row, new_row
from .ledger_state import LedgerState, read_state
from .locks import Notice, task_mutex
from .plans import require_plan_run_root
from .refusals import Params, Refusal, refuse
from .tasks import Task, stage_branch
from .worktrees import resolve_in_stage


def record(
    task: Task,
    stage: int,
    status: Status,
    *,
    commit: str | None = None,
    run_id: str | None = None,
    force: bool = False,
    on_wait: Notice | None = None,
) -> LedgerRow:
    """Append the stage's row. `on_wait` hears once when another okstra process holds
    the task and this record waits for it."""
    with task_mutex(task, on_wait=on_wait):
        return _record_locked(task, stage, status, commit, run_id, force)


def _record_locked(
    task: Task, stage: int, status: Status, commit: str | None, run_id: str | None, force: bool
) -> LedgerRow:
    plan = require_plan_run_root(task)
    stage_map = plan.stage_map()
    if stage not in stage_map.by_number():
        known = ", ".join(str(s.stage) for s in stage_map.stages)
        raise OkstraError(
            f"stage {stage} is not in the Stage Map of {task.ref} (stages: {known})", "pass one of those stage numbers"
        )
    ledger = plan.dir / LEDGER_NAME
    state = read_state(ledger)
    fields: dict[str, object] = {"impl_task_key": task.key, "run_id": run_id or state.run_id(stage)}
    if status == "released":
        refuse(release_refusal(task, state, stage))
    if status == "done":
        head = fields["head_commit"] = _done_commit(task, stage, commit)
        if head and not (force and commit is not None and is_full_sha(commit)):
            refuse(done_commit_refusal(task, state, stage, head))
        if head:
            # base ref, paths and patch-ids, and a pin ref, so reconcile can find the
            # stage's work after a rebase, squash or gc
            from .reconcile import done_fields

            fields.update(done_fields(task, stage, head, state))
    elif commit:
        raise OkstraError(f"--commit goes with --status done, not {status}", "drop --commit")
    if status == "released":
        fields["reason"] = "manual"
    row = new_row(stage, status, **fields)
    faults.point("record.before-append")
    append_row(ledger, row)
    return row


def done_commit_refusal(task: Task, ledger: LedgerState, stage: int, sha: str) -> Refusal | None:
    """Why `sha` cannot be the stage's done commit, or None: it is the commit the stage
    started from (nothing was committed), or the stage's branch does not contain it. A
    stage that has no branch (its work was made by hand) is taken at its word."""
    root = task.project.root
    branch = stage_branch(task, stage)
    on_branch = git.contains(root, f"refs/heads/{branch}", sha)
    if on_branch is None:  # no such branch
        return None
    params: Params = {"task": str(task.ref), "stage": stage, "commit": sha}
    base = ledger.base_ref(stage)
    if base is not None and (base if git.is_full_sha(base) else git.resolve_commit(root, base)) == sha:
        return Refusal("record.commit_is_base", {**params, "base": base})
    if not on_branch:
        tip = git.resolve_commit(root, f"refs/heads/{branch}")
        return Refusal("record.commit_not_on_branch", {**params, "branch": branch, "tip": tip})
    return None


def _done_commit(task: Task, stage: int, commit: str | None) -> str | None:
    if not task.project.is_git:
        # a non-git project has nothing to point at: the row records completion only
        return None
    if not commit:
        raise OkstraError(
            f"recording stage {stage} as done needs the commit it finished at",
            f"pass --commit SHA (for example: okstra record {task.ref} --stage {stage} --status done --commit HEAD)",
        )
    sha, where = resolve_in_stage(task, stage, commit)
    if sha is None:
        raise OkstraError(
            f"--commit {commit!r} names no commit in {where}",
            "pass a commit SHA (abbreviated is fine) or a ref that exists in the project repository",
        )
    return sha
