"""The run wizard's engine side: options → preview → prepare → launch, and the check for a
leftover agent team. No Textual here: every function runs in a worker thread (it reads
files, calls git, takes the task mutex), and the tests call them directly.

Rules of the wizard's engine side:
- The preview is `prepare(..., render_only=True)`: the same checks the real run makes,
  nothing written. Its run id is provisional; the real prepare picks its own.
- The quarantine dialog is offered only for a run whose team mode is `gate` (it creates
  the team `prompts.team_name(...)`), when a team of that name is under the agent home
  and no run in flight owns it. A `no-team` or single-lead run creates no team, so a
  leftover does not block it and nothing is offered.
- A stage's agent starts in a managed terminal (`managed.start_prepared`: its own tmux
  session) when tmux is here (`in_terminal`), and okstra stays; otherwise, and for a
  phase's run, okstra exits and execs it in place.
- The reservation records this process's pid only when the agent will be exec'd in
  place (the pid becomes the agent's). A managed terminal's pane records its own. When
  the agent command cannot start, the person starts it with `okstra launch RUN_DIR`,
  which re-states the reservation with the agent's pid; the reservation itself records
  none.
"""

from __future__ import annotations

import os
import shlex
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from okstra_engine.errors import OkstraError

if TYPE_CHECKING:
    from okstra_engine.launch import LaunchPlan
    from okstra_engine.prepare import Prepared, PrepareOptions
    from okstra_engine.quarantine import TrashEntry
    from okstra_engine.tasks import Task

Notice = Callable[[str], None]


# ---------------------------------------------------------------- the choice


@dataclass(frozen=True)
class RunChoice:
    """What the options screen collected for one run."""

    task: Task
    phase: str
    stage: int | None = None
    workers: tuple[str, ...] = ()
    waiver_key: str = ""
    waiver_reason: str = ""
    base_ref: str = ""

    @property
    def qa_waiver(self) -> str | None:
        """`KEY=REASON`, or None when no reason was given (no waiver)."""
        reason = self.waiver_reason.strip()
        return f"{self.waiver_key.strip()}={reason}" if reason else None

    def options(self, *, render_only: bool, pid: int | None = None, run_id: str | None = None) -> PrepareOptions:
        from okstra_engine.prepare import PrepareOptions

        return PrepareOptions(
            task_type=self.phase,
            stage=str(self.stage) if self.stage is not None else "auto",
            workers=self.workers,
            qa_waiver=self.qa_waiver,
            base_ref=self.base_ref.strip() or None,
            render_only=render_only,
            pid=pid,
            run_id=run_id,
        )

    def command(self) -> list[str]:
        """The `okstra prepare` command that prepares the same run."""
        command = ["okstra", "prepare", str(self.task.ref), "--type", self.phase]
        if self.stage is not None:
            command += ["--stage", str(self.stage)]
        if self.workers:
            command += ["--workers", ",".join(self.workers)]
        if self.qa_waiver:
            command += ["--qa-waiver", self.qa_waiver]
        if self.base_ref.strip():
            command += ["--base-ref", self.base_ref.strip()]
        return command


def waiver_key(task: Task, stage: int) -> str:
    """The conformance manifest's key of a stage: `<task_id>-stage-<N>`."""
    return f"{task.ref.id}-stage-{stage}"


def command_line(command: list[str], *, env: dict[str, str], project_root: Path | None = None) -> str:
    """A command a person can paste: the variables it needs first (the demo's homes),
    `--project` when the current directory is not inside `project_root`."""
    if (
        project_root is not None
        and not _inside(Path.cwd(), project_root)
        and command[:1] == ["okstra"]
        and "--project" not in command
    ):
        command = [*command, "--project", str(project_root)]
    return " ".join([*(f"{k}={shlex.quote(v)}" for k, v in env.items()), shlex.join(command)])


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
        return True
    except (OSError, ValueError):
        return False


# ---------------------------------------------------------------- options


@dataclass(frozen=True)
class OptionsContext:
    """What the options screen says beside its fields."""

    stage_title: str | None
    task_worktree: str | None
    """The task worktree when it exists already: a base ref is then ignored."""
    waiver_key: str | None
    current_waiver: str | None
    """The reason of a waiver on this stage now (the run clears it unless re-waived)."""


def options_context(task: Task, phase: str, stage: int | None) -> OptionsContext:
    from okstra_engine import registry
    from okstra_engine.conformance import waivers
    from okstra_engine.plans import plan_run_root
    from okstra_engine.worktrees import task_slot

    title = None
    if stage is not None:
        plan = plan_run_root(task)
        spec = plan.stage_map().by_number().get(stage) if plan is not None else None
        title = spec.title if spec is not None else None
    row = registry.get_worktree(task_slot(task), None)
    existing = row.path if row is not None and Path(row.path).is_dir() else None
    key = current = None
    if phase == "implementation" and stage is not None:
        key = waiver_key(task, stage)
        suffix = f"-stage-{stage}"
        found = [w for k, w in waivers(task.dir).items() if k.endswith(suffix)]
        current = found[0].reason if found else None
    return OptionsContext(title, existing, key, current)


# ---------------------------------------------------------------- preview


@dataclass(frozen=True)
class TeamCheck:
    """A team of the run's name already under the agent home."""

    team: str
    offered: bool
    """No run in flight owns it and it can be moved: the dialog asks."""
    owner_run: str | None = None
    problem: str | None = None
    plan: list[str] = field(default_factory=list)
    """`quarantine.plan_move(team).describe()`: what would move where."""
    moves: list[tuple[str, str]] = field(default_factory=list)
    """The plan's moves as (from, to), to lay them out one path per line."""
    stamp: str | None = None
    """The trash entry the plan moves to: `quarantine_team` moves there."""


@dataclass
class Preview:
    choice: RunChoice
    prepared: Prepared
    team: TeamCheck | None = None
    agent: list[str] = field(default_factory=list)
    """The configured agent command (its template)."""
    agent_ready: bool = False
    in_terminal: bool = False
    """The agent will start in a managed terminal (`in_terminal`), okstra staying."""


def preview_run(choice: RunChoice) -> Preview:
    """The run as `prepare` would make it, nothing written; and a leftover team in its way."""
    from okstra_engine.config import settings
    from okstra_engine.prepare import prepare

    prepared = prepare(choice.task, choice.options(render_only=True))
    team = prepared.manifest.team
    check = leftover_team(team.name) if team.mode == "gate" and team.name else None
    return Preview(choice, prepared, check, list(settings().agent_command), agent_ready(), in_terminal(choice))


def leftover_team(team: str) -> TeamCheck | None:
    """The team `team` when it exists under the agent home, with whether it is offered."""
    from okstra_engine import quarantine

    info = next((i for i in quarantine.list_teams() if i.team == team), None)
    if info is None:
        return None
    if not info.offered:
        return TeamCheck(team, False, info.owned_by_run, info.problem)
    try:
        plan = quarantine.plan_move(team)
    except OkstraError as exc:  # refused between the listing and now
        return TeamCheck(team, False, None, exc.what)
    moves = [(str(step.source), str(step.destination)) for step in plan.steps if step.action == "move"]
    stamp = plan.stamp if plan.pending is None else None  # an interrupted move finishes in its own
    return TeamCheck(team, True, plan=plan.describe(), moves=moves, stamp=stamp)


def quarantine_team(check: TeamCheck) -> TrashEntry:
    """Move the team where the dialog said it would go."""
    from okstra_engine.quarantine import move_team

    return move_team(check.team, stamp=check.stamp)


# ---------------------------------------------------------------- prepare and launch


def agent_ready() -> bool:
    """Whether the configured agent command looks startable here (its program is on PATH);
    `launch.plan_launch` has the last word."""
    from okstra_engine.config import settings

    template = settings().agent_command
    if not template:
        return False
    program = template[0]
    return "{" in program or shutil.which(program) is not None


def in_terminal(choice: RunChoice) -> bool:
    """Whether the run's agent starts in a managed terminal, okstra staying: a stage's
    run, with tmux here."""
    from okstra_engine import tmux

    return choice.phase == "implementation" and choice.stage is not None and tmux.available()


def prepare_run(choice: RunChoice, *, notice: Notice | None = None, run_id: str | None = None) -> Prepared:
    """The real prepare, as the run `run_id` the preview showed. The pid is ours when the
    agent will be exec'd in place."""
    from okstra_engine.prepare import prepare

    pid = os.getpid() if agent_ready() and not in_terminal(choice) else None
    return prepare(choice.task, choice.options(render_only=False, pid=pid, run_id=run_id), notice=notice)


def plan_agent(run_dir: Path) -> LaunchPlan:
    """The agent command for the run, checked (OkstraError when it cannot start)."""
    from okstra_engine.launch import plan_launch

    return plan_launch(run_dir)


@dataclass(frozen=True)
class LaunchRequest:
    """What the app returns when it exits to start the agent: `run_app` execs it once
    Textual has given the terminal back."""

    run_dir: Path
    argv: list[str]
    cwd: Path
    task: str
    project_root: Path
    phase: str
    stage: int | None = None
