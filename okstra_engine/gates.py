"""The gates, in one place: whether a run of each phase can be prepared now, whether a
given stage can, and why a stage blocks its group's handoff — each decided from a
computed `TaskStatus` and answered as a `Refusal` (None: nothing stands in the way).

`prepare`, `handoff`, the CLI and the TUI ask these functions; none re-derives a gate.
What only git can tell after provisioning (a predecessor not merged into the task
worktree, a dirty worktree, a done commit that is gone) is refused by `prepare`,
`final_verification` and `handoff.plan` with their own codes (`refusals`).

- A phase other than planning and improvement discovery needs an approved plan;
  implementation also needs a QA command of the project.
- Planning again while the current plan's ledger has rows would set that progress
  aside (a new plan starts every stage again): refused unless asked (`--replace`), and
  `plan import --approve` / `plan approve` refuse the same way.
- Implementation needs a ready stage (`--stage auto` takes the lowest); a blocked one is
  refused by its reason (`stage.blocked`, `stage.needs_handoff`, `stage.needs_merge`).
- Final verification of the whole task needs every stage done (a done row, even when the
  stage was reserved again since) and merged into the task worktree.
- Release handoff needs the approved plan and a passed final verification: the newest
  final verification of the whole task under that plan gave the verdict PASS.
- Releasing a stage needs a reservation: its latest ledger row is `reserved` or `started`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .refusals import Params, Refusal, RefusedError, iso
from .runs import PHASES
from .stage_view import StageState, StageView

if TYPE_CHECKING:
    from .ledger_state import LedgerState
    from .stage_map import StageMap
    from .status import TaskStatus
    from .tasks import Task

PLAN_REQUIRED = ("implementation", "final-verification", "release-handoff")
STAGED = ("implementation", "final-verification")
"""The phases that run on one stage (`--stage N`)."""


# ---------------------------------------------------------------------------- phases


def phase_refusals(status: TaskStatus) -> dict[str, Refusal | None]:
    """Each phase, in order, and why a run of it cannot be prepared now (None: it can)."""
    return {phase: phase_refusal(status, phase) for phase in PHASES}


def phase_refusal(status: TaskStatus, phase: str) -> Refusal | None:
    """Why a run of `phase` cannot be prepared now, or None."""
    return prepare_refusal(status, phase)


def prepare_refusal(status: TaskStatus, phase: str, stage: int | None = None) -> Refusal | None:
    """What `prepare --type PHASE [--stage N]` refuses from status alone, in the order it
    asks: the phase's setup, then the stage (`stage`; None: any, as `--stage auto`)."""
    refusal = setup_refusal(status.task, phase, plan_approved=status.plan_run is not None)
    if refusal is not None:
        return refusal
    if stage is None or phase not in STAGED:
        return stages_refusal(status, phase)
    return stage_refusal(status, stage, phase)


def known_phase(phase: str) -> Refusal | None:
    if phase in PHASES:
        return None
    return Refusal("phase.unknown", {"phase": phase, "phases": list(PHASES)})


def setup_refusal(task: Task, phase: str, *, plan_approved: bool) -> Refusal | None:
    """What a phase needs before any stage counts: a known phase, a QA command for
    implementation, an approved plan where the phase works from it."""
    refusal = known_phase(phase)
    if refusal is not None:
        return refusal
    project = task.project
    if phase == "implementation" and not project.config.qa_commands:
        return Refusal("phase.no_qa", {"task": str(task.ref), "project": project.id, "root": str(project.root)})
    if phase in PLAN_REQUIRED and not plan_approved:
        return plan_refusal(task)
    return None


def plan_refusal(task: Task) -> Refusal:
    """No approved plan: `phase.plan_draft` when there is a plan to approve,
    `phase.plan_broken` when the newest plan's Stage Map does not hold, else `phase.no_plan`."""
    from .plans import waiting_plan

    plan, problem = waiting_plan(task)
    if plan is None:
        return Refusal("phase.no_plan", {"task": str(task.ref)})
    if problem is not None:
        return Refusal("phase.plan_broken", {"task": str(task.ref), "run": plan.run_id, "what": problem.what})
    return Refusal("phase.plan_draft", {"task": str(task.ref)})


def stages_refusal(status: TaskStatus, phase: str) -> Refusal | None:
    """What the stages say about a run of `phase` (its plan approved)."""
    if phase == "planning":
        return replan_refusal(status)
    if phase == "implementation":
        return None if status.auto_stage is not None else _nothing_ready(status)
    if phase == "final-verification":
        done = status.ledger.done_rows()
        missing = [v.stage for v in status.stages if v.stage not in done]
        if missing:
            return Refusal("phase.stages_not_done", {"task": str(status.task.ref), "stages": missing})
        unmerged = [(v.stage, v.done_commit) for v in status.stages if v.state is StageState.NOT_MERGED]
        if unmerged:
            return not_merged(status.task, unmerged)
    if phase == "release-handoff":
        return verified_refusal(status)
    return None


def verified_refusal(status: TaskStatus) -> Refusal | None:
    """None when the newest final verification of the whole task under the current plan
    passed; else `phase.not_verified` (none gave a verdict) or `phase.verification_failed`."""
    from .run_history import last_verification

    checked = last_verification(status.runs, status.plan_run)
    if checked is not None and checked.outcome == "PASS":
        return None
    task = str(status.task.ref)
    if checked is None:
        return Refusal("phase.not_verified", {"task": task})
    return Refusal("phase.verification_failed", {"task": task, "run": checked.run_id, "verdict": checked.outcome})


def replan_refusal(status: TaskStatus, *, fix: str | None = None) -> Refusal | None:
    """`plan.replaces_progress` when the current plan's ledger has rows: what a new plan
    would set aside. `fix` is the command that does it anyway (default: plan again)."""
    if status.plan_run is None or not status.ledger.stages:
        return None
    task = str(status.task.ref)
    return Refusal(
        "plan.replaces_progress",
        {
            "task": task,
            "plan": Path(status.plan_run).name,
            "total": len(status.stages),
            "started": sorted(status.ledger.stages),
            "done": [v.stage for v in status.stages if v.is_done],
            "in_flight": [v.stage for v in status.stages if v.is_flying],
            "fix": fix or f"okstra prepare {task} --type planning --replace",
        },
    )


def not_merged(
    task: Task, stages: Sequence[tuple[int, str | None]], *, head: str | None = None, fix: str | None = None
) -> Refusal:
    """`phase.stages_not_merged`: final verification needs these stages' done commits in
    the task worktree (`head` and `fix` when git was asked)."""
    listed: list[dict[str, Any]] = [{"stage": n, "commit": sha} for n, sha in stages]
    return Refusal("phase.stages_not_merged", {"task": str(task.ref), "stages": listed, "head": head, "fix": fix})


def _nothing_ready(status: TaskStatus) -> Refusal:
    task = str(status.task.ref)
    views = status.stages
    if all(v.is_done for v in views):
        return Refusal("phase.all_done", {"task": task})
    blocked: list[dict[str, Any]] = [
        {"stage": v.stage, "waits_for": list(v.waits_for), "reason": v.reason.to_json() if v.reason else None}
        for v in views
        if v.state is StageState.BLOCKED
    ]
    flying: list[dict[str, Any]] = [
        {"stage": v.stage, "run": v.run_id} for v in views if v.state is StageState.IN_FLIGHT
    ]
    stale: list[dict[str, Any]] = [
        {"stage": v.stage, "run": v.run_id, "why": v.stale_reason} for v in views if v.state is StageState.STALE
    ]
    return Refusal("phase.nothing_ready", {"task": task, "blocked": blocked, "in_flight": flying, "stale": stale})


# ---------------------------------------------------------------------------- one stage


def unknown_stage(task: Task, stage_map: StageMap, stage: int) -> Refusal | None:
    if stage in stage_map.by_number():
        return None
    return Refusal(
        "stage.unknown", {"task": str(task.ref), "stage": stage, "stages": [s.stage for s in stage_map.stages]}
    )


def stage_refusal(status: TaskStatus, stage: int, phase: str = "implementation") -> Refusal | None:
    """Why `prepare --type PHASE --stage N` cannot take stage N now, or None. `phase` is
    implementation (the stage must be ready) or final-verification (it must be done)."""
    task = status.task
    if status.stage_map is None:
        return plan_refusal(task)
    refusal = unknown_stage(task, status.stage_map, stage)
    if refusal is not None:
        return refusal
    params: Params = {"task": str(task.ref), "stage": stage}
    if phase == "final-verification":
        done = stage in status.ledger.done_rows()
        return None if done else Refusal("verify.stage_not_done", params)
    view = next(v for v in status.stages if v.stage == stage)
    if view.state is StageState.READY:
        return None
    if view.is_done:
        return Refusal("stage.done", {**params, "commit": view.done_commit, "run": view.run_id})
    if view.state is StageState.IN_FLIGHT:
        return Refusal("stage.in_flight", {**params, "run": view.run_id, "since": iso(view.since)})
    if view.state is StageState.STALE:
        return Refusal("stage.stale", {**params, "run": view.run_id, "why": view.stale_reason})
    return blocked_refusal(status, view)


def blocked_refusal(status: TaskStatus, view: StageView) -> Refusal:
    """Why the blocked stage `view` cannot be taken, by its reason."""
    params: Params = {"task": str(status.task.ref), "stage": view.stage}
    reason = view.reason
    if reason is None or reason.code == "deps-not-done":
        return Refusal("stage.blocked", {**params, "waits_for": list(view.waits_for)})
    unmerged: Params = {"stages": list(reason.stages), "groups": list(reason.groups)}
    if reason.code == "needs-handoff":
        return Refusal("stage.needs_handoff", {**params, **unmerged})
    from .tasks import stage_branch

    branches = [stage_branch(status.task, d) for d in reason.stages]
    return Refusal("stage.needs_merge", {**params, **unmerged, "worktree": status.task_worktree, "branches": branches})


def pick_stage(status: TaskStatus, requested: int | None) -> int:
    """The stage an implementation run takes: `requested` when it can be taken, else the
    lowest ready one (`--stage auto`). Raises RefusedError saying why not."""
    if requested is None:
        if status.auto_stage is not None:
            return status.auto_stage
        raise _nothing_ready(status).error()
    refusal = stage_refusal(status, requested)
    if refusal is not None:
        raise RefusedError(refusal)
    return requested


# ---------------------------------------------------------------------------- release


def release_refusal(task: Task, ledger: LedgerState, stage: int) -> Refusal | None:
    """Why `record --status released` has nothing to release on `stage`, or None."""
    this = ledger.stages.get(stage)
    if this is not None and this.in_flight:
        return None
    latest = this.latest.status if this is not None else None
    return Refusal("release.no_reservation", {"task": str(task.ref), "stage": stage, "latest": latest})


# ---------------------------------------------------------------------------- handoff


def handoff_refusal(status: TaskStatus, stage: int) -> Refusal | None:
    """Why stage `stage` keeps its group from being handed off, by its state, or None
    (its done commit is then compared with the task worktree by `handoff.plan`)."""
    view = next(v for v in status.stages if v.stage == stage)
    params: Params = {"task": str(status.task.ref), "stage": stage}
    if view.state is StageState.IN_FLIGHT:
        return Refusal("handoff.in_flight", {**params, "run": view.run_id, "since": iso(view.since)})
    if view.state is StageState.STALE:
        return Refusal("handoff.stale", {**params, "run": view.run_id, "why": view.stale_reason})
    if view.state is StageState.BLOCKED:
        waits = view.reason.stages if view.reason else view.waits_for
        return Refusal("handoff.blocked", {**params, "waits_for": list(waits)})
    if view.state is StageState.READY:
        return Refusal("handoff.not_started", params)
    row = status.ledger.done_rows().get(stage)
    if row is None or not row.head_commit:
        return Refusal("handoff.no_commit", params)
    return None
