"""`okstra record`: a lead (or a person) writes a stage's progress into the ledger,
under the task mutex (it reads the stage's latest row, then appends)."""

from __future__ import annotations

from . import faults
from .errors import OkstraError
from .gates import release_refusal
from .ledger import LEDGER_NAME, LedgerRow, Status, append_row, new_row
from .ledger_state import read_state
from .locks import Notice, task_mutex
from .plans import require_plan_run_root
from .refusals import refuse
from .tasks import Task
from .worktrees import resolve_in_stage


def record(
    task: Task,
    stage: int,
    status: Status,
    *,
    commit: str | None = None,
    run_id: str | None = None,
    on_wait: Notice | None = None,
) -> LedgerRow:
    """Append the stage's row. `on_wait` hears once when another okstra process holds
    the task and this record waits for it."""
    with task_mutex(task, on_wait=on_wait):
        return _record_locked(task, stage, status, commit, run_id)


def _record_locked(task: Task, stage: int, status: Status, commit: str | None, run_id: str | None) -> LedgerRow:
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
