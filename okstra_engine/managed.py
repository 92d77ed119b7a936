"""Agents in managed terminals: each stage's agent runs `okstra launch RUN_DIR` in a tmux
session of its own, so okstra (the board, the CLI) stays while agents work, and finds
them again after it quits.

- The session is named once, here (`session_name`: project, task and stage).
- The pane runs `okstra launch` without a shell, so the pid launch records in the
  reservation before it execs the agent is the pane's, and a killed session makes the
  stage stale at once (its pid is gone).
- The registry keeps the session okstra last started for each stage (its `sessions` table);
  `sessions` checks it against tmux: a session tmux no longer has is an agent that
  exited, and its stage follows the ledger (stale if it never recorded done).
- `stop` asks the agent to stop (C-c in its pane) and releases the stage only once it
  has exited.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import tmux
from .errors import OkstraError

if TYPE_CHECKING:
    from .agent_state import AgentView
    from .ledger_state import LedgerState
    from .prepare import PreparedRun
    from .projects import Project
    from .registry import SessionRow
    from .slugs import TaskRef
    from .tasks import Task


@dataclass(frozen=True)
class ManagedSession:
    project_id: str
    project_root: str
    task: str
    """The task ref, `GROUP/ID`."""
    stage: int
    run_id: str
    session: str
    """The tmux session's name."""
    pid: int
    """The pane's process: `okstra launch`, then the agent it execs."""
    since: str
    """When okstra started the session (ISO time)."""
    alive: bool
    """tmux still has the session, with this pane."""
    holds: bool
    """The run still holds its stage (in flight or stale in the ledger)."""
    agent: AgentView

    @property
    def state(self) -> str:
        return str(self.agent.state)

    def to_json(self) -> dict[str, Any]:
        return {
            "project": self.project_id,
            "project_root": self.project_root,
            "task": self.task,
            "stage": self.stage,
            "run_id": self.run_id,
            "session": self.session,
            "pid": self.pid,
            "since": self.since,
            "alive": self.alive,
            "holds": self.holds,
            "state": self.state,
            "state_since": self.agent.since,
        }


def session_name(project_id: str, ref: TaskRef | str, stage: int) -> str:
    """The tmux session of a stage's agent: `okstra-PROJECT-GROUP-ID-sN`, in characters
    tmux takes as they are (no `.` or `:`)."""
    group, _, task_id = str(ref).partition("/")
    return tmux.safe_name(f"okstra-{project_id}-{group}-{task_id}-s{stage}")


def start_run(run_dir: Path) -> ManagedSession:
    """Start the agent of a prepared stage run in a new detached tmux session, in the
    stage's worktree. Launch's own checks run first, here, so a run that cannot start
    says why to the caller instead of in a session that closes at once."""
    from . import registry
    from .agent_events import okstra_argv
    from .launch import plan_launch, record_agent_pid, run_context

    tmux.require()
    run_dir = run_dir.resolve()
    task, manifest = run_context(run_dir)
    if manifest.task_type != "implementation" or manifest.stage is None:
        raise OkstraError(
            f"run {manifest.run_id} is a {manifest.task_type} run: managed sessions run implementation stages",
            f"run it in place: okstra launch {run_dir}",
        )
    plan = plan_launch(run_dir)
    name = session_name(task.project.id, task.ref, manifest.stage)
    if tmux.has_session(name):
        raise OkstraError(
            f"the tmux session {name} of stage {manifest.stage} of {task.ref} is still running",
            f"see it: okstra attach {task.ref} {manifest.stage}; or stop it: okstra stop {task.ref} {manifest.stage}",
        )
    started = tmux.new_session(name, [*okstra_argv(), "launch", str(run_dir)], plan.cwd)
    # the pane's launch records it too, unless it dies first: then the stage is stale at once
    record_agent_pid(task, manifest, started.pid, unless_known=True)
    row = registry.register_session(
        registry.SessionRow(
            project_id=task.project.id,
            project_root=str(task.project.root),
            task_group=task.ref.group,
            task_id=task.ref.id,
            stage=manifest.stage,
            run_id=manifest.run_id,
            session=name,
            socket=tmux.socket_name() or "",
            pid=started.pid,
        )
    )
    return _view(row, task, None, alive=True)


def start_stage(
    task: Task,
    stage: str | int = "auto",
    *,
    workers: tuple[str, ...] = (),
    notice: Callable[[str], None] | None = None,
) -> ManagedSession:
    """Prepare an implementation run of `stage` exactly as `okstra prepare` does, then
    start its agent in a managed session. Without tmux nothing is prepared; when the
    session does not start, the run's reservation is released (once a pid names it, its
    agent started, and the ledger's rules for a gone pid take over)."""
    from .prepare import PrepareOptions, prepare

    tmux.require()
    options = PrepareOptions("implementation", stage=str(stage), workers=workers)
    return start_prepared(task, prepare(task, options, notice=notice).manifest)


def start_prepared(task: Task, manifest: PreparedRun) -> ManagedSession:
    """Start the agent of a stage run just prepared (by `start_stage`, or the board's run
    wizard); released as `start_stage` says when its session does not start."""
    from .ledger_state import read_state
    from .plans import require_plan_run_root
    from .record import record
    from .run_folder import LEDGER_NAME

    try:
        return start_run(Path(manifest.run_dir))
    except BaseException:
        held = read_state(require_plan_run_root(task).dir / LEDGER_NAME).stages.get(manifest.stage or 0)
        if held is not None and held.held_by(manifest.run_id) and held.streak.pid is None:
            record(task, held.stage, "released", run_id=manifest.run_id)
        raise


def sessions(
    project: Project | None = None, ref: TaskRef | None = None, *, known: tuple[Task, LedgerState] | None = None
) -> list[ManagedSession]:
    """Every managed session okstra started (the last one of each stage) on the tmux
    server it talks to, of `project` (and its task `ref`), checked against tmux.
    `known`: the task `ref` and its ledger, when the caller has just read them."""
    from . import registry

    socket = tmux.socket_name() or ""
    if ref is not None:
        if project is None:
            raise ValueError("a task ref needs its project")
        rows = registry.session_rows(slot=registry.TaskSlot(project.id, ref.group, ref.id))
    else:
        rows = registry.session_rows(project.id if project is not None else None)
    rows = [row for row in rows if row.socket == socket]
    if not rows:
        return []
    live = tmux.list_sessions()
    found = []
    tasks: dict[tuple[str, str, str], tuple[Task, LedgerState] | None] = {}
    if known is not None and project is not None:
        tasks[(str(project.root), known[0].ref.group, known[0].ref.id)] = known
    for row in rows:
        key = (row.project_root, row.task_group, row.task_id)
        if key not in tasks:
            tasks[key] = _task_and_ledger(row)
        loaded = tasks[key]
        if loaded is None:  # the project or task is gone: nothing to show of its agents
            continue
        alive = row.session in live and live[row.session].pid == row.pid
        found.append(_view(row, *loaded, alive=alive))
    return found


def _task_and_ledger(row: SessionRow) -> tuple[Task, LedgerState] | None:
    from .ledger_state import read_state
    from .plans import require_plan_run_root
    from .projects import load_project
    from .run_folder import LEDGER_NAME
    from .slugs import TaskRef
    from .tasks import load_task

    try:
        task = load_task(load_project(Path(row.project_root)), TaskRef(row.task_group, row.task_id))
        return task, read_state(require_plan_run_root(task).dir / LEDGER_NAME)
    except OkstraError:
        return None


def _view(row: SessionRow, task: Task, ledger: LedgerState | None, *, alive: bool) -> ManagedSession:
    from .agent_state import agent_view
    from .run_folder import run_folder_of

    held = ledger.stages.get(row.stage) if ledger is not None else None
    holds = ledger is None or (held is not None and held.held_by(row.run_id))
    started = held is not None and held.latest.status == "started" and held.latest.run_id == row.run_id
    agent = agent_view(
        run_folder_of(task.runs_dir, row.run_id), alive=alive, since=row.created, recorded_started=started
    )
    return ManagedSession(
        project_id=row.project_id,
        project_root=row.project_root,
        task=str(task.ref),
        stage=row.stage,
        run_id=row.run_id,
        session=row.session,
        pid=row.pid,
        since=row.created,
        alive=alive,
        holds=holds,
        agent=agent,
    )


def session_of(task: Task, stage: int) -> ManagedSession:
    """The managed session of a stage; refused when okstra started none."""
    for found in sessions(task.project, task.ref):
        if found.stage == stage:
            return found
    raise OkstraError(
        f"stage {stage} of {task.ref} has no managed session here",
        f"start one: okstra start {task.ref} --stage {stage}; see them all: okstra agents",
    )


def attach_argv(session: ManagedSession) -> list[str]:
    """The tmux command that shows the session in this terminal (detach: C-b d)."""
    if not session.alive:
        raise OkstraError(
            f"the session {session.session} of stage {session.stage} of {session.task} is gone "
            f"(its agent {session.state})",
            f"see the stage: okstra status {session.task}",
        )
    return tmux.attach_argv(session.session)


STOP_TIMEOUT_S = 15.0


def _still_running(found: ManagedSession) -> bool:
    """Whether tmux still runs the session `found` names, with the same pane pid (one
    tmux call: what a stop polls, where `sessions` would read the task and its ledger)."""
    live = tmux.list_sessions().get(found.session)
    return live is not None and live.pid == found.pid


def stop(task: Task, stage: int, *, timeout: float = STOP_TIMEOUT_S) -> ManagedSession:
    """Ask the stage's agent to stop: C-c in its pane, twice half a second apart (an
    interactive agent takes the first as "stop this turn" and exits on a second one soon
    after), again every few seconds; then, once its session has exited, release the stage
    if the run still holds it. Refused when the agent does not exit within `timeout`
    seconds (the stage stays held)."""
    from .record import record

    found = session_of(task, stage)
    deadline = time.monotonic() + timeout
    next_key, sent = 0.0, 0
    while found.alive:
        now = time.monotonic()
        if now >= deadline:
            raise OkstraError(
                f"the agent of stage {stage} of {task.ref} did not stop within {timeout:g} s; the stage stays held",
                f"look at it: okstra attach {task.ref} {stage}; or try again: okstra stop {task.ref} {stage}",
            )
        if now >= next_key:
            tmux.send_keys(found.session, "C-c")
            sent += 1
            next_key = now + (0.5 if sent % 2 else 3.0)
        time.sleep(0.1)
        if not _still_running(found):
            found = session_of(task, stage)
    if found.holds:
        record(task, stage, "released", run_id=found.run_id)
        found = session_of(task, stage)
    return found
