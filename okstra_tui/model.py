"""What the screens show, computed from the engine. No Textual here: every function runs
in a worker thread (it reads files and calls git), and the tests call them directly.

Refusals are the engine's (`okstra_engine.refusals.Refusal`, from its gates), which
`refusal_text` puts into words; board events are (text key, params); the few errors
raised here take their words from the text files.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from okstra_engine.agent_state import AgentState
from okstra_engine.errors import OkstraError
from okstra_engine.shown import shown
from okstra_engine.slugs import TaskRef
from okstra_engine.stage_view import StageState, StageView

from .i18n import t

if TYPE_CHECKING:
    from okstra_engine.ledger import LedgerRow
    from okstra_engine.ledger_state import LedgerState
    from okstra_engine.managed import ManagedSession
    from okstra_engine.projects import Project
    from okstra_engine.reconcile import Suggestion
    from okstra_engine.refusals import Refusal
    from okstra_engine.status import TaskStatus
    from okstra_engine.tasks import Task

# The engine modules that load pydantic are imported inside the functions, which run in
# worker threads: the UI paints its first frame while they load.

Reason = tuple[str, dict[str, Any]]
PlanState = Literal["none", "draft", "approved"]


def stage_list(numbers: list[int] | tuple[int, ...]) -> str:
    return ", ".join(str(n) for n in numbers)


def stages_text(numbers: list[int] | tuple[int, ...]) -> str:
    """`stage 3` or `stages 2, 3, 4`, in the person's language."""
    if len(numbers) == 1:
        return t("common.stage_one", stage=numbers[0])
    return t("common.stage_many", stages=stage_list(numbers))


BLOCKED_TEXTS = {
    "detail": {
        "deps-not-done": "board.detail.blocked",
        "needs-handoff": "board.detail.needs-handoff",
        "needs-merge": "board.detail.needs-merge",
    },
    "card": {"deps-not-done": "card.waits", "needs-handoff": "card.needs-handoff", "needs-merge": "card.needs-merge"},
}
"""The words of a blocked stage's reason, by where they show: the stage's detail, or its
card in the lanes (short). Each says what helps: the handoff key `h`, or a merge by hand."""


def blocked_text(view: StageView, where: Literal["detail", "card"]) -> str:
    """Why the blocked stage `view` waits, in the person's language."""
    reason = view.reason
    code = reason.code if reason else "deps-not-done"
    stages = stage_list(reason.stages if reason else view.waits_for)
    groups = ", ".join(reason.groups) if reason else ""
    return t(BLOCKED_TEXTS[where][code], waits=stages, stages=stages, groups=groups)


def short(sha: str | None) -> str:
    return sha[:8] if sha else ""


def home_relative(path: Path) -> str:
    """`~/…` for a path under the home directory (shorter, still pastable in a shell)."""
    try:
        return "~/" + str(path.relative_to(Path.home()))
    except ValueError:
        return str(path)


# ---------------------------------------------------------------- projects


@dataclass(frozen=True)
class ProjectEntry:
    id: str
    name: str
    path: Path
    exists: bool


def project_entries() -> list[ProjectEntry]:
    from okstra_engine.projects import list_projects

    entries: list[ProjectEntry] = []
    seen: set[Path] = set()
    for known in list_projects():
        path = Path(known.path)
        if path in seen:  # a list an older okstra wrote may name a folder twice
            continue
        seen.add(path)
        entries.append(ProjectEntry(known.project_id, known.name, path, (path / ".okstra" / "project.json").is_file()))
    return entries


def register_here() -> Project:
    """Register the cwd's project (the one holding it, else its git toplevel), like `okstra init`."""
    from okstra_engine.locations import default_root
    from okstra_engine.projects import init_project

    project, _ = init_project(default_root(None))
    return project


# ---------------------------------------------------------------- tasks


@dataclass(frozen=True)
class TaskSummary:
    ref: TaskRef
    title: str
    plan: PlanState
    total: int = 0
    done: int = 0
    in_flight: int = 0
    stale: int = 0
    auto_stage: int | None = None
    error: str | None = None


def plan_state(task: Task, status: TaskStatus) -> PlanState:
    from okstra_engine.plans import plan_runs

    if status.plan_run is not None:
        return "approved"
    return "draft" if plan_runs(task) else "none"


def summarize(task: Task, status: TaskStatus) -> TaskSummary:
    states = [s.state for s in status.stages]
    return TaskSummary(
        ref=task.ref,
        title=shown(task.doc.title),
        plan=plan_state(task, status),
        total=len(states),
        done=sum(s.is_done for s in states),
        in_flight=states.count(StageState.IN_FLIGHT),
        stale=states.count(StageState.STALE),
        auto_stage=status.auto_stage,
    )


def task_summaries(project: Project, now: datetime) -> list[TaskSummary]:
    """One summary per task; a task whose files do not load is listed with its error."""
    from okstra_engine.status import task_status
    from okstra_engine.tasks import list_tasks, load_task

    summaries = []
    for ref in list_tasks(project):
        try:
            task = load_task(project, ref)
            summaries.append(summarize(task, task_status(task, now=now)))
        except OkstraError as exc:
            summaries.append(TaskSummary(ref=ref, title="", plan="none", error=exc.what))
    return summaries


def create_task(project: Project, ref_text: str, title: str, category: str | None) -> Task:
    from okstra_engine.tasks import new_task

    return new_task(project, TaskRef.parse(ref_text.strip()), title=title, category=category or None)


# ---------------------------------------------------------------- phases


@dataclass(frozen=True)
class PhaseChoice:
    phase: str
    available: bool
    refusal: Refusal | None = None
    """Why a run of it cannot be prepared now (for implementation: why no stage can start)."""


def phase_choices(status: TaskStatus) -> list[PhaseChoice]:
    """Each phase and whether a run of it can be prepared now, as the engine's gates say."""
    from okstra_engine.gates import phase_refusals

    return [PhaseChoice(phase, refusal is None, refusal) for phase, refusal in phase_refusals(status).items()]


# ---------------------------------------------------------------- the board


@dataclass
class BoardData:
    """What the board shows, and the engine's status of the task behind it, which the
    board's actions ask the engine's gates about."""

    title: str
    project_name: str
    plan: PlanState
    status: TaskStatus
    lanes: list[tuple[str, list[int]]]
    """Groups in hand-off order, each with its stages."""
    hosts: dict[int, str | None]
    """For stages in flight: the host of their latest row."""
    last_status: dict[int, str]
    """Every stage's latest ledger row status."""
    worktrees: dict[int, str]
    branches: dict[int, str]
    """Each stage's worktree branch."""
    watch: list[Path]
    summaries: dict[int, str] = field(default_factory=dict)
    """The lead's summary of each finished stage (its carry sidecar)."""
    sessions: dict[int, ManagedSession] = field(default_factory=dict)
    """The managed terminal okstra last started for each stage, checked against tmux."""

    def terminal(self, stage: int) -> ManagedSession | None:
        """The stage's managed terminal while it runs (tmux still has it)."""
        found = self.sessions.get(stage)
        return found if found is not None and found.alive else None

    @property
    def task(self) -> Task:
        return self.status.task

    @property
    def plan_run(self) -> str | None:
        return self.status.plan_run

    @property
    def stages(self) -> list[StageView]:
        return self.status.stages

    @property
    def warnings(self) -> list[str]:
        return self.status.warnings

    @property
    def auto_stage(self) -> int | None:
        return self.status.auto_stage

    @cached_property
    def views(self) -> dict[int, StageView]:
        return {v.stage: v for v in self.stages}

    @cached_property
    def agents(self) -> dict[int, AgentState]:
        """What the agent of each stage in flight is doing, where something here saw it
        (its hooks, or its process): a guess from the ledger is no news of the agent."""
        return {
            n: agent.state
            for n, agent in self.status.agents.items()
            if agent.seen and n in self.views and self.views[n].state is StageState.IN_FLIGHT
        }

    @property
    def needing_input(self) -> list[int]:
        """The stages whose agent waits for the person."""
        return [n for n, state in sorted(self.agents.items()) if state is AgentState.NEEDS_INPUT]


def load_board(root: Path, ref: TaskRef, now: datetime) -> BoardData:
    from okstra_engine.projects import load_project
    from okstra_engine.status import task_status
    from okstra_engine.tasks import load_task, stage_branch

    project = load_project(root)
    task = load_task(project, ref)
    status = task_status(task, now=now, ledger_reader=_read_ledger)
    lanes = list(status.stage_map.groups().items()) if status.stage_map else []
    for view in status.stages:  # this status is the board's own: its titles, shown safely once
        view.title = shown(view.title)  # (groups stay as they are: keys the handoff is asked for)
    latest = status.ledger.latest_rows()
    hosts = {n: shown(row.host) if row.host else row.host for n, row in latest.items()}
    last: dict[int, str] = {n: row.status for n, row in latest.items()}
    worktrees = {v.stage: v.worktree for v in status.stages if v.worktree}
    plan = "approved" if status.plan_run else plan_state(task, status)
    summaries = {}
    if status.plan_run:
        from okstra_engine.carry import read_carry

        summaries = {n: shown(c.summary) for n, c in read_carry(Path(status.plan_run)).sidecars.items() if c.summary}
    return BoardData(
        title=shown(task.doc.title),
        project_name=shown(project.config.name),
        plan=plan,
        status=status,
        lanes=lanes,
        hosts=hosts,
        last_status=last,
        worktrees=worktrees,
        branches={v.stage: stage_branch(task, v.stage) for v in status.stages},
        watch=watch_paths(task, status.plan_run, [v.run_id for v in status.stages if v.is_flying and v.run_id]),
        summaries=summaries,
        sessions=terminals(project, ref),
    )


def terminals(project: Project, ref: TaskRef) -> dict[int, ManagedSession]:
    """The task's managed terminals by stage; none when tmux cannot say (the board shows
    the ledger's view without them)."""
    from okstra_engine import managed

    try:
        return {found.stage: found for found in managed.sessions(project, ref)}
    except OkstraError:
        return {}


_followers: dict[Path, Any] = {}


def _read_ledger(path: Path) -> LedgerState:
    """The ledger's state, read incrementally: the first look starts from okstra's ledger
    cache, and a board open all day parses only what was appended since its last look (one
    follower per ledger, kept for the process)."""
    from okstra_engine.ledger_state import LedgerFollower

    follower = _followers.get(path)
    if follower is None:
        follower = _followers[path] = LedgerFollower(path, cached=True)
    return follower.read()


def watch_paths(task: Task, plan_run: str | None, flying_runs: Iterable[str] = ()) -> list[Path]:
    """The files whose change can change the board: ledger, carry sidecars, the runs
    folder and the task's plan pointer (a new or approved plan), the agent events of the
    runs in flight (`flying_runs`: what their agents are doing), the registry's changes
    file (not the database: a mere reader changes its files), and the task's branches."""
    from okstra_engine.agent_events import EVENTS_NAME
    from okstra_engine.git import branch_files
    from okstra_engine.ledger import LEDGER_NAME
    from okstra_engine.plans import pointer_path
    from okstra_engine.run_folder import run_folder_of
    from okstra_engine.tasks import task_branch

    paths = [task.runs_dir, pointer_path(task)]
    paths += [folder / EVENTS_NAME for folder in map(partial(run_folder_of, task.runs_dir), flying_runs) if folder]
    if plan_run:
        plan = Path(plan_run)
        paths += [plan / LEDGER_NAME, plan / "plan.md", plan / "carry"]
        with contextlib.suppress(OSError):
            paths += sorted((plan / "carry").glob("stage-*.json"))
    from okstra_engine.registry import changes_path

    paths.append(changes_path())
    return paths + branch_files(task.project.repo, task_branch(task))


def fingerprint(paths: list[Path]) -> dict[Path, tuple[int, int] | None]:
    """mtime and size of each path (None when missing): cheap enough for every tick."""
    marks: dict[Path, tuple[int, int] | None] = {}
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            marks[path] = None
            continue
        marks[path] = (st.st_mtime_ns, st.st_size)
    return marks


def moved(before: dict[Path, tuple[int, int] | None], now: dict[Path, tuple[int, int] | None]) -> bool:
    """Whether a file watched in both moved. A path the last load added to the list (a
    run that went in flight) was read by that load; one it dropped no longer matters."""
    return any(path in before and before[path] != mark for path, mark in now.items())


def board_events(old: BoardData, new: BoardData) -> list[tuple[int, Reason]]:
    """What changed between two loads of the same plan, stage by stage, as texts to
    notify: done (or its commit corrected), taken, started, released, gone stale; and what
    its agent did: it needs input, it finished its turn, it exited or failed (`ALERTS`
    says which of them call the person back)."""
    if old.plan_run != new.plan_run:
        return []
    before = old.views
    events: list[tuple[int, Reason]] = []
    for view in new.stages:
        was = before.get(view.stage)
        if was is None:
            continue
        n = view.stage
        if view.is_done:
            if not was.is_done:
                events.append((n, ("event.done", {"stage": n, "commit": short(view.done_commit)})))
            elif was.done_commit != view.done_commit:
                events.append(
                    (
                        n,
                        (
                            "event.corrected",
                            {"stage": n, "old": short(was.done_commit), "new": short(view.done_commit)},
                        ),
                    )
                )
        elif view.state is StageState.STALE and was.state is not StageState.STALE:
            events.append((n, ("event.stale", {"stage": n, "why": view.stale_reason or ""})))
        elif view.state is StageState.IN_FLIGHT and not was.is_flying:
            events.append((n, ("event.taken", {"stage": n, "run": view.run_id or "-"})))
        elif (
            view.state is StageState.IN_FLIGHT
            and new.last_status.get(n) == "started"
            and old.last_status.get(n) == "reserved"
        ):
            events.append((n, ("event.started", {"stage": n, "run": view.run_id or "-"})))
        elif was.is_flying and not view.is_flying:
            events.append((n, ("event.released", {"stage": n})))
        agent = _agent_event(old.agents.get(n), new.agents.get(n))
        if agent is not None:
            events.append((n, (agent, {"stage": n})))
    return events


ALERTS = frozenset(
    {"event.done", "event.stale", "event.needs_input", "event.agent_idle", "event.agent_exited", "event.agent_failed"}
)
"""The events that call the person back (the bell, a desktop notification): a stage done,
an agent that needs input or stopped working. None of them is the board's own doing, so
none is muted."""


def _agent_event(was: AgentState | None, now: AgentState | None) -> str | None:
    """The event of an agent moving from `was` to `now` (None: not seen in flight)."""
    if now is None or now is was:
        return None
    if now is AgentState.NEEDS_INPUT:
        return "event.needs_input"
    if now is AgentState.IDLE and was in (AgentState.WORKING, AgentState.NEEDS_INPUT):
        return "event.agent_idle"
    if now is AgentState.EXITED and was is not None:
        return "event.agent_exited"
    return "event.agent_failed" if now is AgentState.FAILED else None


# ---------------------------------------------------------------- diff preview


@dataclass(frozen=True)
class StageDiff:
    stage: int
    base: str
    head: str
    base_from: str
    """Text key naming where the base came from."""
    head_from: str
    text: str
    truncated: bool


def stage_diff(data: BoardData, stage: int) -> StageDiff | None:
    """The stage's change: its base → its done commit (or, in flight, its branch tip), as
    the engine says. None when the stage has nothing to show yet."""
    from okstra_engine import stage_diff as engine

    found = engine.stage_diff(data.task, data.status.ledger, stage)
    if found is None:
        return None
    change = found.change
    return StageDiff(
        stage,
        change.base,
        change.head,
        f"diff.base.{change.base_from}",
        f"diff.head.{change.head_from}",
        found.text,
        found.truncated,
    )


# ---------------------------------------------------------------- reconcile


def load_suggestions(task: Task) -> list[Suggestion]:
    """The live git-reconcile suggestions that need a person: commits to correct, or lost
    (not those whose stage only awaits its handoff: the board shows that state)."""
    from okstra_engine import reconcile

    return [s for s in reconcile.suggestions(task) if not s.awaits_handoff]


def apply_suggestion(task: Task, suggestion: Suggestion) -> None:
    """Record the suggestion as a correction row (`reconcile.apply`, which takes the task
    mutex)."""
    from okstra_engine import reconcile

    if not reconcile.apply(task, [suggestion]):
        command = f"okstra reconcile {task.ref}"  # not a UI text
        raise OkstraError(t("reconcile.outdated", stage=suggestion.stage), t("reconcile.see", command=command))


def release(task: Task, stage: int) -> LedgerRow:
    from okstra_engine.record import record

    return record(task, stage, "released")
