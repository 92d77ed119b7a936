"""`okstra record`: a lead (or a person) writes a stage's progress into the ledger,
under the task mutex (it reads the stage's latest row, then appends), and the rules of
which commit a stage may be done at (`done_commit_refusal`, shared with
`reconcile --commit`) and of taking a done back (`reopen_refusal`)."""

from __future__ import annotations

from pathlib import Path

from . import faults, git
from .documents import load_doc
from .errors import OkstraError
from .gates import release_refusal, unknown_stage
from .git import is_full_sha
from .ledger import LedgerRow, Status, append_row, new_row
from .ledger_state import LedgerState, read_state
from .locks import Notice, task_mutex
from .plans import require_plan_run_root
from .refusals import Params, Refusal, refuse
from .run_folder import LEDGER_NAME, run_folder_of
from .runs import RunManifest
from .tasks import Task, stage_branch, task_branch
from .worktrees import resolve_in_stage


def record(
    task: Task,
    stage: int,
    status: Status,
    *,
    commit: str | None = None,
    run_id: str | None = None,
    force: bool = False,
    empty: bool = False,
    reason: str | None = None,
    on_wait: Notice | None = None,
) -> LedgerRow:
    """Append the stage's row. `empty` (with done): the stage changes nothing, so it is
    done at its base (the default commit then). `reason` (with reopened, which needs
    one): why a done stage is taken back. `on_wait` hears once when another okstra
    process holds the task and this record waits for it."""
    if empty and status != "done":
        raise OkstraError(f"--empty goes with --status done, not {status}", "drop --empty")
    if status == "reopened" and not (reason and reason.strip()):
        raise OkstraError(
            f"reopening stage {stage} needs a reason (the ledger keeps it)",
            f"say why: okstra record {task.ref} --stage {stage} --status reopened --reason 'recorded done by mistake'",
        )
    if reason is not None and status != "reopened":
        raise OkstraError(f"--reason goes with --status reopened, not {status}", "drop --reason")
    with task_mutex(task, on_wait=on_wait):
        return _record_locked(task, stage, status, commit, run_id, force, empty, reason)


def _record_locked(
    task: Task,
    stage: int,
    status: Status,
    commit: str | None,
    run_id: str | None,
    force: bool,
    empty: bool,
    reason: str | None,
) -> LedgerRow:
    plan = require_plan_run_root(task)
    refuse(unknown_stage(task, plan.stage_map(), stage))
    refuse(run_refusal(task, plan.dir, stage, run_id))
    ledger = plan.dir / LEDGER_NAME
    state = read_state(ledger)
    fields: dict[str, object] = {"impl_task_key": task.key, "run_id": run_id or state.run_id(stage)}
    if status == "released":
        refuse(release_refusal(task, state, stage))
    if status == "reopened":
        refuse(reopen_refusal(task, state, stage))
        taken_back = state.stages[stage].done
        fields.update(replaces=taken_back.head_commit if taken_back else None, reason=reason)
    if status == "done":
        head = fields["head_commit"] = _done_commit(task, stage, commit, state.base_ref(stage) if empty else None)
        if head and not (force and commit is not None and is_full_sha(commit)):
            refuse(done_commit_refusal(task, state, stage, head, empty=empty))
        if empty:
            fields["empty"] = True
        if head:
            # base ref, paths and patch-ids, and a pin ref, so reconcile can find the
            # stage's work after a rebase, squash or gc
            from .reconcile import done_fields

            fields.update(done_fields(task, stage, head, state, empty=empty))
    elif commit:
        raise OkstraError(f"--commit goes with --status done, not {status}", "drop --commit")
    if status == "released":
        fields["reason"] = "manual"
    row = new_row(stage, status, **fields)
    faults.point("record.before-append")
    append_row(ledger, row)
    from .share.hooks import after_record

    after_record(task, row)
    return row


def run_refusal(task: Task, plan_dir: Path, stage: int, run_id: str | None) -> Refusal | None:
    """A run prepared under a plan the task has since replaced (or for another stage)
    records nothing in the current plan's ledger: its agent may finish after a re-plan.
    Only a run folder okstra can read tells; a run it does not know is taken at its word."""
    run_dir = run_folder_of(task.runs_dir, run_id)
    if run_dir is None:
        return None
    try:
        manifest = load_doc(run_dir / "manifest.json", RunManifest, follow_symlinks=False)
    except (OSError, OkstraError):
        return None
    plan_run = (manifest.model_extra or {}).get("plan_run")
    of_plan = Path(plan_run).name if isinstance(plan_run, str) and plan_run else None
    if (of_plan is None or of_plan == plan_dir.name) and manifest.stage in (None, stage):
        return None
    return Refusal(
        "record.run_elsewhere",
        {
            "task": str(task.ref),
            "stage": stage,
            "run": run_id,
            "run_stage": manifest.stage,
            "plan": of_plan,
            "current": plan_dir.name,
        },
    )


def done_commit_refusal(
    task: Task, ledger: LedgerState, stage: int, sha: str, *, empty: bool = False, correction: bool = False
) -> Refusal | None:
    """Why `sha` cannot be the stage's done commit, or None.

    - `empty` (a stage that changes nothing): it must be the commit the stage started from;
    - else it may not be that commit (nothing was committed), and the stage's branch must
      contain it; for a `correction` (`reconcile --commit`) the task branch may instead,
      where a squash of the stage's work lands.

    A stage that has no branch (its work was made by hand) is taken at its word."""
    root = task.project.root
    branch = stage_branch(task, stage)
    on_branch = git.contains(root, f"refs/heads/{branch}", sha)
    if on_branch is None:  # no such branch
        return None
    params: Params = {"task": str(task.ref), "stage": stage, "commit": sha}
    base = ledger.base_ref(stage)
    at_base = base is not None and (base if git.is_full_sha(base) else git.resolve_commit(root, base)) == sha
    if empty:
        return None if at_base or base is None else Refusal("record.not_empty", {**params, "base": base})
    if at_base:
        return Refusal("record.commit_is_base", {**params, "base": base})
    if on_branch:
        return None
    tip = git.resolve_commit(root, f"refs/heads/{branch}")
    if not correction:
        return Refusal("record.commit_not_on_branch", {**params, "branch": branch, "tip": tip})
    main = task_branch(task)
    if git.contains(root, f"refs/heads/{main}", sha):
        return None
    main_tip = git.resolve_commit(root, f"refs/heads/{main}")
    return Refusal(
        "reconcile.commit_not_on_branches",
        {**params, "branch": branch, "tip": tip, "task_branch": main, "task_tip": main_tip},
    )


def reopen_refusal(task: Task, ledger: LedgerState, stage: int) -> Refusal | None:
    """Why `record --status reopened` has no done to take back on `stage`, or None: the
    stage has no done row (or was reopened since), or it is in flight again."""
    this = ledger.stages.get(stage)
    if this is not None and this.done is not None and not this.in_flight:
        return None
    latest = this.latest.status if this is not None else None
    return Refusal("record.reopen_not_done", {"task": str(task.ref), "stage": stage, "latest": latest})


def _done_commit(task: Task, stage: int, commit: str | None, empty_base: str | None) -> str | None:
    """The full SHA a done row names; `empty_base`: the stage's base, the commit of an
    `--empty` done given no --commit."""
    if not task.project.is_git:
        # a non-git project has nothing to point at: the row records completion only
        return None
    if not commit and empty_base:
        commit = empty_base
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
