"""The preview of a run, then its confirmation.

On mount a worker renders the run (`prepare(..., render_only=True)`: nothing written) and
looks for a leftover agent team in its way; the screen shows the worktree, branch, team
mode, the concurrent-run notice and the lead prompt as Markdown. When a leftover team
is offered, the quarantine dialog opens over the preview first: only a run that creates
its team (the `gate` of explicit agent teams) can meet one; a session's implicit team
and workers without a team have nothing to create, and say so on the team line.

`enter` (or the button) prepares the run for real in a worker, the progress on screen;
then a stage's agent starts in its managed terminal and the board shows it
(`OkstraApp.show_started`); without tmux, or for a phase's run, the app exits and
`run_app` execs the agent (a `LaunchRequest`); when the agent command cannot start here,
the prepared screen shows the command to run.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Button, Footer, Markdown, Static
from textual.worker import Worker

from okstra_engine.errors import OkstraError

from ..base import OkstraScreen
from ..i18n import t
from ..model import home_relative, short, stages_text
from ..refusal_text import error_texts
from ..runs import (
    LaunchRequest,
    Preview,
    RunChoice,
    TeamCheck,
    in_terminal,
    plan_agent,
    prepare_run,
    preview_run,
    quarantine_team,
)
from ..states import BOLD, Look
from ..widgets.breadcrumb import Breadcrumb
from ..widgets.status_bar import StatusBar
from .run_options import run_crumbs, run_name

if TYPE_CHECKING:
    from collections.abc import Callable

    from okstra_engine.launch import LaunchPlan
    from okstra_engine.managed import ManagedSession
    from okstra_engine.prepare import Prepared, PreparedRun
    from okstra_engine.quarantine import TrashEntry


class Busy(StrEnum):
    """What the preview screen is doing; None when it waits for the person."""

    LOADING = "loading"
    ASKING = "asking"  # the quarantine dialog is open
    MOVING = "moving"  # the leftover team is being quarantined
    PREPARING = "preparing"
    DONE = "done"
    FAILED = "failed"


class Decision(StrEnum):
    """What the person chose for a leftover agent team."""

    MOVED = "moved"
    KEPT = "kept"


def worktree_status(status: str, *, dry: bool) -> str:
    key = f"worktree.{'planned' if dry else 'status'}.{status}"
    text = t(key)
    return status if text == key else text


def team_text(manifest: PreparedRun, check: TeamCheck | None, decision: Decision | None, look: Look) -> Text:
    """The team line: its mode, its name, and what became of a leftover of that name."""
    muted = look("okstra--blocked")
    warn = look("okstra--not-merged")
    team = manifest.team
    if team.mode == "single-lead":
        return Text.assemble(
            (t("preview.team.single_lead"), "bold"), ("  " + t("preview.team.single_lead_note"), muted)
        )
    if team.mode == "no-team":
        stages = stages_text(manifest.concurrent_run.active_stages)
        return Text.assemble(
            (t("preview.team.no_team"), "bold"), ("  " + t("preview.team.no_team_note", stages=stages), muted)
        )
    if team.mode in ("implicit", "background"):
        # nothing to create, so nothing left over to quarantine
        return Text.assemble(
            (t(f"preview.team.{team.mode}"), "bold"), ("  " + t(f"preview.team.{team.mode}_note"), muted)
        )
    text = Text.assemble((team.name or "", "bold"), ("  " + t("preview.team.gate_note"), muted))
    if check is None:
        return text
    if decision == Decision.MOVED:
        text.append("\n" + t("preview.team.moved"), style=look("okstra--done"))
    elif decision == Decision.KEPT:
        text.append("\n" + t("preview.team.kept"), style=warn)
    elif check.owner_run:
        text.append("\n" + t("preview.team.owned", run=check.owner_run), style=warn)
    elif check.problem:
        text.append("\n" + t("preview.team.problem", problem=check.problem), style=warn)
    else:
        text.append("\n" + t("preview.team.leftover"), style=warn)
    return text


def run_facts(manifest: PreparedRun, *, dry: bool, look: Look, team: Text, agent: Text | None = None) -> Table:
    """The run as a grid of (what, value): worktree, branch, team, workers, waiver, agent."""
    muted = look("okstra--blocked")
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style=muted, no_wrap=True)
    grid.add_column()
    wt = manifest.worktree
    where = Text(home_relative(Path(wt.path)) if wt.path else "—", style="bold")
    where.append(f"  ({worktree_status(wt.status, dry=dry)})", style=muted)
    if wt.findings:  # a dry run's "nothing was made" is the status word's to say
        where.append("\n" + wt.findings, style=muted)
    grid.add_row(t("preview.worktree"), where)
    if wt.branch:
        grid.add_row(
            t("preview.branch"),
            Text.assemble(wt.branch, (f"  {t('preview.from')} ", muted), (short(wt.base_ref) or "—", "bold")),
        )
    grid.add_row(t("preview.team"), team)
    workers = ", ".join(manifest.workers) if manifest.workers else t("preview.workers.none")
    grid.add_row(t("preview.workers"), Text(workers))
    if agent is not None:
        grid.add_row(t("preview.agent"), agent)
    return grid


def concurrent_notice(manifest: PreparedRun, look: Look) -> Text | None:
    run = manifest.concurrent_run
    if not run.detected:
        return None
    return Text(
        "⚠ " + t("preview.concurrent", stages=stages_text(run.active_stages)),
        style=look("okstra--in-flight") + BOLD,
    )


class PreviewScreen(OkstraScreen):
    BINDINGS = [
        Binding("enter", "confirm", "bind.prepare", id="preview.confirm", tooltip="tip.preview.confirm"),
        Binding(
            "q", "quarantine", "bind.quarantine", id="preview.quarantine", tooltip="tip.preview.quarantine", show=False
        ),
    ]

    class Loaded(Message):
        def __init__(self, preview: Preview) -> None:
            super().__init__()
            self.preview = preview

    class Quarantined(Message):
        def __init__(self, entry: TrashEntry) -> None:
            super().__init__()
            self.entry = entry

    class Done(Message):
        def __init__(
            self,
            prepared: Prepared,
            plan: LaunchPlan | None,
            launch_error: OkstraError | None,
            session: ManagedSession | None = None,
        ) -> None:
            super().__init__()
            self.prepared = prepared
            self.plan = plan
            self.launch_error = launch_error
            self.session = session

    # preview: every assignment is news (always_update), no deep comparison of previews
    busy: reactive[Busy | None] = reactive(Busy.LOADING, bindings=True, repaint=False)
    preview: reactive[Preview | None] = reactive(None, bindings=True, repaint=False, always_update=True)
    decision: reactive[Decision | None] = reactive(None, bindings=True, repaint=False)
    """None: not asked."""

    def __init__(self, choice: RunChoice, stage_title: str | None = None) -> None:
        super().__init__()
        self.choice = choice
        self.stage_title = stage_title
        self.error: OkstraError | None = None

    # ------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        c = self.choice
        yield Breadcrumb(*run_crumbs(c.task, c.phase, c.stage, t("preview.crumb")), id="crumbs")
        yield Static(id="preview-head", classes="heading")
        yield Static(id="run-facts")
        with VerticalScroll(id="prompt-box"):
            yield Markdown(id="prompt")
        yield StatusBar(
            Button(t("preview.confirm"), id="confirm", action="screen.confirm", variant="primary", disabled=True),
            Button(t("preview.back"), id="back", action="screen.back"),
        )
        yield Footer()

    def on_mount(self) -> None:
        c = self.choice
        self.query_one("#preview-head", Static).update(
            Text(t("preview.heading", run=run_name(c.phase, c.stage, self.stage_title)), style="bold")
        )
        self.query_one("#prompt-box").border_title = t("preview.prompt_title")
        self.query_one("#prompt-box").loading = True
        self._status(t("preview.rendering"))
        self._load()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "back":
            # the run is being made: going back would leave it half-seen
            return self.busy not in (Busy.PREPARING, Busy.MOVING) and super().check_action(action, parameters)
        if action == "confirm":
            return self.busy is None and self.preview is not None
        if action == "quarantine":
            return (
                self.busy is None
                and self.preview is not None
                and self.preview.team is not None
                and self.preview.team.offered
                and self.decision != Decision.MOVED
            )
        return True

    # ------------------------------------------------------------ the preview

    @work(thread=True, exclusive=True, exit_on_error=False, group="run-preview")
    def _load(self) -> None:
        self.post_message(self.Loaded(preview_run(self.choice)))

    @on(Loaded)
    async def _loaded(self, message: Loaded) -> None:
        self.preview = message.preview
        self.busy = None
        self._render_facts()
        box = self.query_one("#prompt-box")
        box.loading = False
        await self.query_one("#prompt", Markdown).update(message.preview.prepared.prompt_text)
        box.scroll_home(animate=False)
        box.focus()
        self.query_one("#confirm", Button).disabled = False
        self._status(t("preview.ready_hint"))
        if message.preview.team is not None and message.preview.team.offered:
            self.action_quarantine()

    def worker_failed(self, worker: Worker[Any], error: BaseException) -> None:
        """A worker raised (the error dialog is showing it): back to a state that can go on."""
        if worker.group == "run-preview":
            self.busy = Busy.FAILED
            self.error = error if isinstance(error, OkstraError) else None
            self.query_one("#prompt-box").loading = False
            what, how = error_texts(error) if isinstance(error, OkstraError) else (str(error), "")
            text = Text(t("preview.cannot", what=what), style=self.look("okstra--stale") + BOLD)
            if how:
                text.append("\n" + t("error.how", how=how), style=self.look("okstra--blocked"))
            self.query_one("#run-facts", Static).update(text)
            self._status(t("preview.failed_hint"))
        elif worker.group in ("run-prepare", "run-quarantine"):
            self.okstra.changing_task = False
            self.busy = None
            self._status(t("preview.ready_hint"))
            self.query_one("#confirm", Button).disabled = False

    def _render_facts(self) -> None:
        if self.preview is None:
            return
        manifest = self.preview.prepared.manifest
        muted = self.look("okstra--blocked")
        team = team_text(manifest, self.preview.team, self.decision, self.look)
        command = list(self.preview.agent)
        if command:
            command[0] = Path(command[0]).name  # the program, not where it is installed
        agent = Text(" ".join(command))
        if not self.preview.agent_ready:
            agent.append("  " + t("preview.agent_missing"), style=self.look("okstra--not-merged"))
        elif self.choice.stage is not None and not self.preview.in_terminal:
            agent.append("  " + t("preview.in_place"), style=self.look("okstra--not-merged"))
        grid = run_facts(manifest, dry=True, look=self.look, team=team, agent=agent)
        if self.choice.qa_waiver:
            grid.add_row(t("preview.waiver"), Text(self.choice.qa_waiver))
        parts: list[Any] = [grid]
        notice = concurrent_notice(manifest, self.look)
        if notice is not None:
            parts.append(notice)
        for line in self.preview.prepared.notices:
            parts.append(Text(line, style=muted))
        self.query_one("#run-facts", Static).update(Group(*parts))

    def _status(self, text: str, *, working: bool = False) -> None:
        self.query_one(StatusBar).show(text, working=working)

    # ------------------------------------------------------------ the leftover team

    def action_quarantine(self) -> None:
        check = self.preview.team if self.preview else None
        if check is None or not check.offered:
            return
        from .quarantine import QuarantineDialog

        self.busy = Busy.ASKING

        def answered(yes: bool | None) -> None:
            if yes:
                self.busy = Busy.MOVING
                self._status(t("quarantine.moving", team=check.team), working=True)
                self.query_one("#confirm", Button).disabled = True
                self._quarantine(check)
            else:
                self.busy = None
                self.decision = Decision.KEPT
                self._render_facts()

        self.app.push_screen(QuarantineDialog(check, self.choice.task), answered)

    @work(thread=True, exclusive=True, exit_on_error=False, group="run-quarantine")
    def _quarantine(self, check: TeamCheck) -> None:
        self.post_message(self.Quarantined(quarantine_team(check)))

    @on(Quarantined)
    def _quarantined(self, message: Quarantined) -> None:
        self.busy = None
        self.decision = Decision.MOVED
        entry = message.entry
        self.say(t("quarantine.moved", team=entry.team, where=str(entry.dir), stamp=entry.stamp), timeout=10)
        self._render_facts()
        self._status(t("preview.ready_hint"))
        self.query_one("#confirm", Button).disabled = False

    # ------------------------------------------------------------ confirm

    def action_confirm(self) -> None:
        if self.busy is not None or self.preview is None:
            return
        self.busy = Busy.PREPARING
        self.query_one("#confirm", Button).disabled = True
        what = run_name(self.choice.phase, self.choice.stage)
        self._status(t("preview.preparing", what=what), working=True)
        self.okstra.changing_task = True  # the reservation, and any correction auto-reconcile records
        self._prepare(self.query_one(StatusBar).report)

    @work(thread=True, exclusive=True, exit_on_error=False, group="run-prepare")
    def _prepare(self, say: Callable[[str], None]) -> None:
        shown = self.preview.prepared.manifest.run_id if self.preview is not None else None
        prepared = prepare_run(self.choice, notice=say, run_id=shown)
        plan = error = None
        try:
            plan = plan_agent(Path(prepared.manifest.run_dir))
        except OkstraError as exc:
            error = exc
        session = None
        if plan is not None and in_terminal(self.choice):
            from okstra_engine.managed import start_prepared

            session = start_prepared(self.choice.task, prepared.manifest)
        self.post_message(self.Done(prepared, plan, error, session))

    @on(Done)
    def _done(self, message: Done) -> None:
        self.busy = Busy.DONE
        self.okstra.changing_task = False
        manifest = message.prepared.manifest
        app = self.okstra
        if message.session is not None:
            app.show_started(message.session)
            return
        if message.plan is not None:
            self._status(t("preview.launching"), working=True)
            app.exit(
                result=LaunchRequest(
                    run_dir=Path(manifest.run_dir),
                    argv=list(message.plan.argv),
                    cwd=message.plan.cwd,
                    task=manifest.task,
                    project_root=Path(manifest.project_root),
                    phase=manifest.task_type,
                    stage=manifest.stage,
                )
            )
            return
        from .prepared import PreparedScreen

        app.show_prepared(
            PreparedScreen(
                self.choice.task,
                message.prepared,
                message.launch_error,
                team=self.preview.team if self.preview else None,
                decision=self.decision,
            )
        )

    def help_legend(self) -> list[tuple[Any, Any]]:
        return [
            (Text(t("preview.team.gate_label"), style="bold"), t("legend.team.gate")),
            (Text(t("preview.team.no_team"), style="bold"), t("legend.team.no_team")),
            (Text(t("preview.team.single_lead"), style="bold"), t("legend.team.single_lead")),
            (Text(t("preview.team.implicit"), style="bold"), t("legend.team.implicit")),
            (Text(t("preview.team.background"), style="bold"), t("legend.team.background")),
        ]
