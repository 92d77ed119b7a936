"""The state of every stage of a task, computed from the plan, ledger and sidecars.

Read-only: done rows that only carry sidecars know about are counted (and named in the
warnings) without being written; `prepare` is what backfills them into the ledger.

A stage is `ready` exactly when `prepare` takes it: its dependencies are done, and when
it has several (it then starts from the task worktree's HEAD), they are merged there. A
`blocked` stage says why (`StageView.reason`). Status does not reconcile (agents call it
in loops): a dependency whose work reached the task worktree under another commit (a
squash, a rebase) counts as not merged until reconcile records that commit, which
`prepare` and the handoff do first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .carry import missing_done_rows, read_carry
from .config import settings
from .ledger_state import LedgerState, read_state
from .plans import ReplacedPlan, plan_run_root, plan_runs
from .run_folder import LEDGER_NAME
from .stage_map import StageMap
from .stage_view import BlockedCode, BlockedReason, StageState, StageView, first_ready
from .tasks import Task

if TYPE_CHECKING:
    from .agent_state import AgentView
    from .run_history import RunRecord
    from .worktrees import Overlap


@dataclass
class TaskStatus:
    task: Task
    plan_run: str | None
    task_worktree: str | None
    stages: list[StageView]
    warnings: list[str]
    stage_map: StageMap | None = None
    ledger: LedgerState = field(default_factory=LedgerState)
    """The ledger's state, with the done rows only carry sidecars know folded in."""
    replaced: tuple[ReplacedPlan, ...] = ()
    """The plans the current one replaced, oldest first (their runs keep their ledgers)."""
    agents: dict[int, AgentView] = field(default_factory=dict)
    """The agent of each stage in flight, from its hooks or its process (`agent_state`)."""
    overlaps: list[Overlap] = field(default_factory=list)
    """Stages in flight or not merged whose worktrees change the same files."""

    @property
    def auto_stage(self) -> int | None:
        return first_ready(self.stages)

    @cached_property
    def runs(self) -> list[RunRecord]:
        """Every run of the task, newest first (`run_history.task_runs`): read once for
        the gates and the screens that ask of one status."""
        from .run_history import task_runs

        return task_runs(self.task, self)

    def to_json(self) -> dict[str, Any]:
        return {
            "task": str(self.task.ref),
            "task_key": self.task.key,
            "title": self.task.doc.title,
            "plan_run": self.plan_run,
            "task_worktree": self.task_worktree,
            "auto_stage": self.auto_stage,
            "warnings": self.warnings,
            "stages": [
                {**s.to_json(), "agent": self.agents[s.stage].to_json()} if s.stage in self.agents else s.to_json()
                for s in self.stages
            ],
            "overlaps": [o.to_json() for o in self.overlaps],
            "replaced_plans": [
                {**r.model_dump(mode="json"), "run_dir": str(self.task.runs_dir / r.run)} for r in self.replaced
            ],
        }


def task_status(
    task: Task, *, now: datetime | None = None, ledger_reader: Callable[[Path], LedgerState] = read_state
) -> TaskStatus:
    """`ledger_reader` reads the state of the ledger at a path (the board passes its
    follower's)."""
    plan = plan_run_root(task)
    if plan is None:
        warning = "no approved plan" if plan_runs(task) else "no plan yet"
        return TaskStatus(task, None, None, [], [warning])
    stage_map = plan.stage_map()
    ledger = ledger_reader(plan.dir / LEDGER_NAME)
    carry = read_carry(plan.dir)
    warnings = [*ledger.warnings, *carry.warnings]
    recovered = missing_done_rows(ledger, carry.sidecars)
    if recovered:
        ledger = ledger.fold(recovered)
        listed = ", ".join(str(r.stage) for r in recovered)
        warnings.append(
            f"stage(s) {listed} done per carry sidecar but not in the ledger yet (the next prepare records them)"
        )
    stages, task_worktree = stage_views(task, stage_map, ledger, warnings, now=now)
    from .agent_state import stage_agents
    from .worktrees import stage_overlaps

    agents = stage_agents(task, ledger, stages)
    overlaps = stage_overlaps(task, stages, warnings)
    return TaskStatus(
        task, str(plan.dir), task_worktree, stages, warnings, stage_map, ledger, plan.replaced, agents, overlaps
    )


def stage_views(
    task: Task, stage_map: StageMap, ledger: LedgerState, warnings: list[str], *, now: datetime | None = None
) -> tuple[list[StageView], str | None]:
    """Every stage's view, as `status` and `prepare` see it, and the task worktree's path:
    the states the ledger gives, each stage's worktree and `not-merged` (one registry
    query, one git process), then the stages whose dependencies must be merged first."""
    views = compute_states(stage_map, ledger, now=now)
    from .share.hooks import hold_foreign
    from .worktrees import annotate_status

    hold_foreign(task, views)

    task_worktree = annotate_status(task, views, warnings)
    block_unmerged(views)
    return views, task_worktree


def compute_states(stage_map: StageMap, ledger: LedgerState, *, now: datetime | None = None) -> list[StageView]:
    done = ledger.done_rows()
    flying = ledger.reservations(ttl_hours=settings().stale_ttl_hours, now=now)
    groups = stage_map.group_names()
    views = []
    for spec in stage_map.stages:
        n = spec.stage
        view = StageView(n, spec.title, list(spec.depends_on), groups[n], StageState.BLOCKED)
        if n in done:
            view.done_commit = done[n].head_commit
            view.run_id = done[n].run_id
            view.empty = bool(done[n].empty)
        if n in flying:
            res = flying[n]
            view.state = StageState.STALE if res.stale else StageState.IN_FLIGHT
            view.run_id, view.since, view.stale_reason = res.run_id, res.since, res.stale_reason
        elif n in done:
            view.state = StageState.DONE
        else:
            view.waits_for = [d for d in spec.depends_on if d not in done]
            view.state = StageState.BLOCKED if view.waits_for else StageState.READY
            if view.waits_for:
                view.reason = BlockedReason("deps-not-done", tuple(view.waits_for))
        views.append(view)
    return views


def block_unmerged(views: list[StageView]) -> None:
    """Block the ready stages that start from the task worktree (several dependencies; a
    stage with one starts from that one's done commit) while a dependency is `not-merged`
    there: `needs-handoff` when the handoff of its group can come first, `needs-merge`
    when that group holds the stage or one that waits for it (a group is handed off
    whole, once every stage of it is done)."""
    by_number = {v.stage: v for v in views}
    for view in views:
        if view.state is not StageState.READY or len(view.depends_on) < 2:
            continue
        unmerged = tuple(d for d in view.depends_on if by_number[d].state is StageState.NOT_MERGED)
        if not unmerged:
            continue
        groups = tuple(sorted({by_number[d].group for d in unmerged}))
        waiting = {by_number[n].group for n in _itself_and_dependents(views, view.stage)}
        code: BlockedCode = "needs-merge" if waiting.intersection(groups) else "needs-handoff"
        view.state = StageState.BLOCKED
        view.reason = BlockedReason(code, unmerged, groups)


def _itself_and_dependents(views: list[StageView], stage: int) -> set[int]:
    found = {stage}
    while more := {v.stage for v in views if v.stage not in found and found.intersection(v.depends_on)}:
        found |= more
    return found
