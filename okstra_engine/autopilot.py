"""Autopilot: keep a task moving by starting each stage as it becomes ready, each in a
managed terminal (`managed`), at most `max_parallel` live agents of the task at once.

A stage is ready when `status` says so (its dependencies recorded done, merged where it
needs them merged); a stage another run holds is in flight or stale, never ready, so
autopilot never takes it. Before it looks, it records where a stage done but not merged
went when the task branch holds its work already (rebased, squashed, cherry-picked by
hand), as every prepare does: else no prepare of the stage after it would ever come. It hands nothing off unless asked (`handoff`), and then only
a group whose merge plan refuses nothing and whose task worktree can take a merge.
`autopilot_step` is one look (the board calls it); `follow` repeats it until every
stage is done or nothing more can start while no agent runs. Interrupting `follow`
leaves the agents running.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .errors import OkstraError
from .managed import ManagedSession
from .tasks import Task

DEFAULT_MAX_PARALLEL = 2
POLL_S = 0.5

Notice = Callable[[str], None]


def _quiet(text: str) -> None:
    pass


def autopilot_step(
    task: Task,
    max_parallel: int = DEFAULT_MAX_PARALLEL,
    *,
    handoff: bool = False,
    workers: tuple[str, ...] = (),
    notice: Notice = _quiet,
) -> list[ManagedSession]:
    """Start the ready stages (lowest first) while fewer than `max_parallel` of the task's
    managed agents live; with `handoff`, first hand off what can be. The sessions started."""
    from .managed import sessions, start_stage
    from .refusals import RefusedError
    from .stage_view import StageState
    from .status import task_status

    if max_parallel < 1:
        raise OkstraError(f"--max-parallel must be 1 or more, not {max_parallel}", "pass --max-parallel 2")
    views = task_status(task).stages
    # a stage done but not merged may be in the task branch already (rebased, squashed or
    # cherry-picked by hand): recorded as every prepare records it, or no prepare would come
    if any(v.state is StageState.NOT_MERGED for v in views) and _reconciled(task, notice):
        views = task_status(task).stages
    # a handoff plan runs git on every group: only worth it when a stage waits to be merged
    if handoff and any(v.state is StageState.NOT_MERGED for v in views) and hand_off_ready(task, notice):
        views = task_status(task).stages
    room = max_parallel - sum(1 for s in sessions(task.project, task.ref) if s.alive)
    started: list[ManagedSession] = []
    if room <= 0:
        return started
    for view in views:
        if len(started) >= room:
            break
        if view.state is not StageState.READY:
            continue
        try:
            session = start_stage(task, view.stage, workers=workers, notice=notice)
        except RefusedError as exc:  # another okstra took it since status looked
            notice(f"okstra: stage {view.stage} not started: {exc.what}")
            continue
        notice(f"okstra: stage {view.stage} started in tmux session {session.session}")
        started.append(session)
    return started


def _reconciled(task: Task, notice: Notice) -> bool:
    """`reconcile.auto_reconcile`, said; whether it recorded anything."""
    from .reconcile import auto_reconcile

    try:
        applied = auto_reconcile(task, on_wait=notice)
    except OkstraError as exc:  # reconcile helps; the stages' states still decide
        notice(f"okstra: git-reconcile skipped: {exc.what}")
        return False
    for found in applied:
        notice(found.applied_line())
    return bool(applied)


def hand_off_ready(task: Task, notice: Notice = _quiet) -> list[str]:
    """Hand off, in order, each next group whose merge plan has no refusal and whose task
    worktree can take a merge; the groups handed off."""
    from .handoff import HandoffError, handoff_plan, run_handoff

    done: list[str] = []
    while True:
        try:
            plan = handoff_plan(task)
        except OkstraError:  # every group handed off, or no task worktree yet
            return done
        if plan.group in done or plan.refused or plan.merge_blockers():
            return done
        try:
            run_handoff(task, plan.group, merge=True)
        except HandoffError as exc:
            notice(f"okstra: group {plan.group} not handed off: {exc.what}")
            return done
        notice(f"okstra: group {plan.group} handed off")
        done.append(plan.group)


def handoff_held(task: Task) -> list[str]:
    """Why the next group's handoff cannot run now (its refused stages, what keeps the task
    worktree from a merge); empty when it can, or when every group is handed off."""
    from .handoff import handoff_plan

    try:
        plan = handoff_plan(task)
    except OkstraError:
        return []
    refused = [f"stage {n}: {what}" for n, what in plan.refusals.items()]
    return [f"group {plan.group}: {why}" for why in refused + plan.merge_blockers()]


@dataclass
class FollowResult:
    done: bool
    """Every stage is done."""
    started: list[ManagedSession] = field(default_factory=list)
    waiting: dict[int, str] = field(default_factory=dict)
    """Stages not done when it stopped, with their state."""
    held: list[str] = field(default_factory=list)
    """With `handoff`, why the next group's handoff could not run when it stopped."""


def follow(
    task: Task,
    max_parallel: int = DEFAULT_MAX_PARALLEL,
    *,
    handoff: bool = False,
    workers: tuple[str, ...] = (),
    notice: Notice = _quiet,
    poll: float = POLL_S,
    sleep: Callable[[float], object] = time.sleep,
) -> FollowResult:
    """Step until every stage is done, or nothing started and no agent of the task runs
    (a managed one, or one a run launched in place, whose process this machine sees)."""
    from .agent_state import AgentState
    from .managed import sessions
    from .stage_view import StageState
    from .status import task_status

    result = FollowResult(done=False)
    while True:
        started = autopilot_step(task, max_parallel, handoff=handoff, workers=workers, notice=notice)
        result.started += started
        status = task_status(task)
        if all(v.is_done for v in status.stages):
            if handoff and any(v.state is StageState.NOT_MERGED for v in status.stages):
                hand_off_ready(task, notice)
            result.done = True
            return result
        running = any(s.alive for s in sessions(task.project, task.ref)) or any(
            agent.seen and agent.state is not AgentState.EXITED for agent in status.agents.values()
        )
        if not started and not running:
            result.waiting = {v.stage: str(v.state) for v in status.stages if not v.is_done}
            if handoff and any(v.state is StageState.NOT_MERGED for v in status.stages):
                result.held = handoff_held(task)
            return result
        sleep(poll)
