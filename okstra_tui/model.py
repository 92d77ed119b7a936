"""What the screens show, computed from the engine. No Textual here: every function runs
in a worker thread (it reads files and calls git), and the tests call them directly.

Refusals are the engine's (`okstra_engine.refusals.Refusal`, from its gates), which
`refusal_text` puts into words; board events are (text key, params); the few errors
raised here take their words from the text files.
"""

from __future__ import annotations

import contextlib
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
    from okstra_engine.plans import PlanState
    from okstra_engine.projects import Project
    from okstra_engine.reconcile import Suggestion
    from okstra_engine.refusals import Refusal
    from okstra_engine.status import TaskStatus
    from okstra_engine.tasks import Task
    from okstra_engine.usage import Usage

# The engine modules that load pydantic are imported inside the functions, which run in
# worker threads: the UI paints its first frame while they load.

Reason = tuple[str, dict[str, Any]]


def stage_list(numbers: list[int] | tuple[int, ...]) -> str:
    """`3`, `4 and 5`, `2, 3 and 4`, in the person's language."""
    *most, last = [str(n) for n in numbers] or [""]
    return ", ".join(most) + t("common.and") + last if most else last


def stages_text(numbers: list[int] | tuple[int, ...]) -> str:
    """`stage 3` or `stages 2, 3 and 4`, in the person's language."""
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
    numbers = reason.stages if reason else view.waits_for
    # a card has room for the numbers alone
    stages = stage_list(numbers) if where == "card" else stages_text(numbers)
    groups = ", ".join(reason.groups) if reason else ""
    return t(BLOCKED_TEXTS[where][code], stages=stages, groups=groups)


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


def project_watch(entries: list[ProjectEntry]) -> list[Path]:
    """The files whose change can change the project list: the list itself and each
    project's own file (its name)."""
    from okstra_engine.locations import projects_file

    return [projects_file(), *(entry.path / ".okstra" / "project.json" for entry in entries)]


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


def project_here() -> Path:
    """The folder `okstra init` would register from the cwd: the project holding it, else
    its git toplevel, else the cwd itself."""
    from okstra_engine.locations import default_root

    return default_root(None)


def unregistered_repo() -> Path | None:
    """The project folder of the cwd's git work tree when it is not registered yet (what
    `okstra` offers to register when it opens there); None outside git, when it is, and
    in a repository whose projects are in subfolders (a monorepo's: the picker lists them)."""
    from okstra_engine import git
    from okstra_engine.projects import config_path, projects_inside

    place = git.place(Path.cwd())
    if place is None:
        return None
    root = project_here()
    if config_path(root).is_file() or projects_inside(place[0]):
        return None
    return root


def register_project(
    root: Path, *, project_id: str | None, qa_commands: list[str], setup_commands: list[str]
) -> Project:
    """Register `root` with its QA and setup commands, as `okstra init` does."""
    from okstra_engine.projects import init_project

    project, _ = init_project(
        root, project_id=project_id or None, qa_commands=qa_commands, setup_commands=setup_commands or None
    )
    return project


# ---------------------------------------------------------------- tasks


@dataclass(frozen=True)
class TaskSummary:
    ref: TaskRef
    title: str
    plan: PlanState
    total: int = 0
    done: int = 0
    """Stages done and merged into the task worktree."""
    not_merged: int = 0
    """Stages done on their own branch only (a lead's carry sidecar alone says so of its
    stage, until its work is merged)."""
    in_flight: int = 0
    stale: int = 0
    auto_stage: int | None = None
    error: str | None = None
    watch: tuple[Path, ...] = ()
    """The files whose change can change this summary (the board's, `watch_paths`)."""


def plan_state(task: Task, status: TaskStatus) -> PlanState:
    """The engine's word on the task's plan (`plans.plan_state`)."""
    from okstra_engine.plans import plan_state as engine_plan_state

    return engine_plan_state(task, status.plan_run)


def summarize(task: Task, status: TaskStatus) -> TaskSummary:
    states = [s.state for s in status.stages]
    flying = [v.run_id for v in status.stages if v.is_flying and v.run_id]
    return TaskSummary(
        ref=task.ref,
        title=shown(task.doc.title),
        plan=plan_state(task, status),
        total=len(states),
        done=states.count(StageState.DONE),
        not_merged=states.count(StageState.NOT_MERGED),
        in_flight=states.count(StageState.IN_FLIGHT),
        stale=states.count(StageState.STALE),
        auto_stage=status.auto_stage,
        watch=tuple(watch_paths(task, status.plan_run, flying)),
    )


def task_list_watch(project: Project) -> list[Path]:
    """The folders whose change adds or removes a task: the tasks folder, its groups and
    their tasks (a task folder changes when its `task.json` lands in it)."""
    root = project.tasks_dir()
    with contextlib.suppress(OSError):
        return [root, *sorted(p for p in root.glob("*") if p.is_dir()), *sorted(root.glob("*/*/"))]
    return [root]


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
    mark: str | None = None
    """What its runs came to (`run_history.phase_marks`: verified, handed off…)."""


def phase_choices(status: TaskStatus) -> list[PhaseChoice]:
    """Each phase and whether a run of it can be prepared now, as the engine's gates say,
    with what its runs came to."""
    from okstra_engine.gates import phase_refusals
    from okstra_engine.run_history import phase_marks

    marks = phase_marks(status.runs, status.plan_run)
    return [
        PhaseChoice(phase, refusal is None, refusal, marks.get(phase))
        for phase, refusal in phase_refusals(status).items()
    ]


def phase_watch(task: Task, summary: TaskSummary) -> list[Path]:
    """The files whose change can change the phase picker: the board's, and each run's
    folder (an output written in it: a verdict, handoff notes)."""
    from okstra_engine.runs import run_dirs

    return [*summary.watch, *run_dirs(task.runs_dir)]


# ---------------------------------------------------------------- the plan


@dataclass
class PlanReview:
    """The plan a person reviews: the newest plan of the task (the one `plan approve`
    approves), its text, its Stage Map as written with its problems row by row, and its
    shape as the board's lanes draw it (`lanes`, `views`, `auto_stage`) when it holds."""

    task: Task
    project_name: str
    run_id: str | None
    state: PlanState
    text: str
    draft: Any
    """`stage_map.StageMapDraft`, None without a plan."""
    lanes: list[tuple[str, list[int]]] = field(default_factory=list)
    stages: list[StageView] = field(default_factory=list)
    watch: list[Path] = field(default_factory=list)
    auto_stage: int | None = None
    refusal: Refusal | None = None
    """Why approving it is refused, for a broken plan (read with it, in the worker)."""

    @cached_property
    def views(self) -> dict[int, StageView]:
        return {v.stage: v for v in self.stages}

    @property
    def agents(self) -> dict[int, AgentState]:
        """A plan under review has no stage in flight, so no agent."""
        return {}


def load_plan_review(root: Path, ref: TaskRef, now: datetime) -> PlanReview:
    from okstra_engine.fsio import read_text_nofollow
    from okstra_engine.ledger_state import LedgerState
    from okstra_engine.plans import plan_body, plan_run_root, pointer_path, waiting_plan
    from okstra_engine.projects import load_project
    from okstra_engine.stage_map import read_draft
    from okstra_engine.status import compute_states, task_status
    from okstra_engine.tasks import load_task

    project = load_project(root)
    task = load_task(project, ref)
    plan, problem = waiting_plan(task)
    watch = [task.runs_dir, pointer_path(task)]
    name = shown(project.config.name)
    if plan is None:
        return PlanReview(task, name, None, "none", "", None, watch=watch)
    current = plan_run_root(task)
    watch += [plan.dir, plan.plan_md]
    text = plan_body(read_text_nofollow(plan.plan_md) or "")
    draft = read_draft(plan.dir)
    state: PlanState = "broken" if problem is not None else "draft"
    if current is not None and current.dir == plan.dir:
        state = "approved"
    refusal = None
    if state == "broken":
        from okstra_engine.gates import plan_refusal

        refusal = plan_refusal(task)
    stage_map = draft.stage_map
    if stage_map is None:
        return PlanReview(task, name, plan.run_id, state, text, draft, watch=watch, refusal=refusal)
    if state == "approved":
        views = task_status(task, now=now).stages
    else:
        views = compute_states(stage_map, LedgerState(), now=now)
    for view in views:
        view.title = shown(view.title)
    from okstra_engine.stage_view import first_ready

    lanes = list(stage_map.groups().items())
    auto = first_ready(views) if state == "approved" else None  # a draft runs nothing yet
    return PlanReview(task, name, plan.run_id, state, text, draft, lanes, views, watch, auto, refusal)


def approve(task: Task, run_id: str) -> None:
    from okstra_engine.plans import approve_plan

    approve_plan(task, run=run_id)


def import_plan_file(task: Task, path_text: str) -> str:
    """Import a plan file (a path as typed: `~` and relative to the cwd); its run id."""
    from okstra_engine.plans import import_plan

    return import_plan(task, Path(path_text.strip()).expanduser()).run_id


# ---------------------------------------------------------------- run history


def run_history(root: Path, ref: TaskRef, now: datetime) -> tuple[Task, list[Any]]:
    """The task and its runs, newest first (`run_history.RunRecord`)."""
    from okstra_engine.projects import load_project
    from okstra_engine.run_history import task_runs
    from okstra_engine.status import task_status
    from okstra_engine.tasks import load_task

    task = load_task(load_project(root), ref)
    try:
        status = task_status(task, now=now)
    except OkstraError:  # a broken current plan: the runs are still listed
        status = None
    return task, task_runs(task, status)


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
    usage: dict[int, Usage] = field(default_factory=dict)
    """The tokens each stage's runs used, from their transcripts (stages with any only)."""
    pids: dict[int, int] = field(default_factory=dict)
    """The agent pid of each stage in flight on this host: a pid that dies changes no
    file, so the board looks at these (`gone`)."""
    sessions: dict[int, ManagedSession] = field(default_factory=dict)
    """The managed terminal okstra last started for each stage, checked against tmux."""
    unsynced: str | None = None
    """For a task shared through a git remote that did not answer its last sync: the
    remote's name (the board works on with what it has, and says so)."""

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
    plan = plan_state(task, status)
    summaries = {}
    if status.plan_run:
        from okstra_engine.carry import read_carry

        summaries = {n: shown(c.summary) for n, c in read_carry(Path(status.plan_run)).sidecars.items() if c.summary}
    from okstra_engine.usage import Usage, task_usage

    usage = {n: used for n, used in task_usage(task).stages().items() if used != Usage()}
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
        usage=usage,
        pids=_live_pids(status),
        sessions=terminals(project, ref, known=(task, status.ledger)),
        unsynced=_unsynced(project),
    )


def _unsynced(project: Project) -> str | None:
    if not project.config.share_remote:
        return None
    from okstra_engine.share.sync import not_synced

    try:
        return project.config.share_remote if not_synced(project) else None
    except OkstraError:
        return project.config.share_remote


def _live_pids(status: TaskStatus) -> dict[int, int]:
    from okstra_engine.ledger import hostname

    here, held = hostname(), status.ledger.stages
    return {
        view.stage: pid
        for view in status.stages
        if view.state is StageState.IN_FLIGHT and (pid := held[view.stage].local_pid(here)) is not None
    }


def gone(pids: dict[int, int]) -> bool:
    """Whether an agent the board shows in flight on this host has died (a `kill -9`
    leaves no row): then the board reads again, and the ledger calls its stage stale."""
    from okstra_engine.ledger import pid_alive

    return not all(map(pid_alive, pids.values()))


def terminals(
    project: Project, ref: TaskRef, *, known: tuple[Task, LedgerState] | None = None
) -> dict[int, ManagedSession]:
    """The task's managed terminals by stage; none when tmux cannot say (the board shows
    the ledger's view without them). `known`: the task and its ledger, just read."""
    from okstra_engine import managed

    try:
        return {found.stage: found for found in managed.sessions(project, ref, known=known)}
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
    from okstra_engine.locations import config_file
    from okstra_engine.registry import changes_path

    paths += [changes_path(), config_file()]  # the settings: the TTL decides what is stale
    return paths + branch_files(task.project.repo, task_branch(task))


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
