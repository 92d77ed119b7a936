"""A run is prepared but its agent cannot start from here (the agent command is not
installed, or its settings are wrong): what was prepared, why the agent did not start
(the engine's what/how), and the exact command that starts it (`okstra launch RUN_DIR`).

`escape` goes back to the screen the run was chosen on (the board or the phase picker):
the options and preview are behind the person now, the run exists.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Group
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Footer, Static

from okstra_engine.errors import OkstraError

from ..base import OkstraScreen
from ..i18n import t
from ..runs import command_line
from ..states import BOLD
from ..widgets.breadcrumb import Breadcrumb
from .preview import Decision, concurrent_notice, run_facts, team_text
from .run_options import run_crumbs, run_name

if TYPE_CHECKING:
    from okstra_engine.prepare import Prepared
    from okstra_engine.tasks import Task

    from ..runs import TeamCheck


class PreparedScreen(OkstraScreen):
    BINDINGS = [
        Binding("c", "copy", "bind.copy", id="prepared.copy", tooltip="tip.prepared.copy"),
    ]

    def __init__(
        self,
        task: Task,
        prepared: Prepared,
        launch_error: OkstraError | None,
        *,
        team: TeamCheck | None = None,
        decision: Decision | None = None,
    ) -> None:
        super().__init__()
        self.run_task = task
        self.prepared = prepared
        self.launch_error = launch_error
        self.team = team
        self.decision = decision

    @property
    def manifest(self):
        return self.prepared.manifest

    @property
    def command(self) -> str:
        env = getattr(self.app, "command_env", {}) or {}
        return command_line(["okstra", "launch", self.manifest.run_dir], env=env)

    def compose(self) -> ComposeResult:
        m = self.manifest
        yield Breadcrumb(*run_crumbs(self.run_task, m.task_type, m.stage, t("prepared.crumb")), id="crumbs")
        with VerticalScroll(id="prepared-body"):
            yield Static(id="prepared-head", classes="heading")
            yield Static(id="prepared-facts")
            yield Static(id="prepared-why")
            yield Static(t("prepared.run_this"), classes="prepared-label")
            yield Static(id="prepared-command", markup=False)
            yield Static(id="prepared-after")
        with Horizontal(classes="run-buttons"):
            yield Button(t("prepared.copy"), id="copy", action="screen.copy")
            yield Button(t("prepared.back"), id="back", action="screen.back", variant="primary")
        yield Footer()

    def on_mount(self) -> None:
        m = self.manifest
        muted = self.look("okstra--blocked")
        done = self.look("okstra--done") + BOLD
        what = run_name(m.task_type, m.stage, m.stage_title)
        head = Text("✔ " + t("prepared.title", what=what), style=done)
        if m.stage is not None:
            head.append("   " + t("prepared.reserved", stage=m.stage), style=muted)
        self.query_one("#prepared-head", Static).update(head)
        grid = run_facts(m, dry=False, look=self.look, team=team_text(m, self.team, self.decision, self.look))
        grid.add_row(t("prepared.run"), Text(m.run_id, style="bold"))
        parts: list[Any] = [grid]
        notice = concurrent_notice(m, self.look)
        if notice is not None:
            parts.append(notice)
        parts += [Text(line, style=muted) for line in self.prepared.notices]
        self.query_one("#prepared-facts", Static).update(Group(*parts))
        warn = self.look("okstra--not-merged") + BOLD
        why = Text(t("prepared.no_agent"), style=warn)
        if self.launch_error is not None:
            why.append("\n" + self.launch_error.what)
            if self.launch_error.how:
                why.append("\n" + t("error.how", how=self.launch_error.how), style=muted)
        self.query_one("#prepared-why", Static).update(why)
        self.query_one("#prepared-command", Static).update(Text(self.command, style="bold"))
        if m.stage is not None:
            env = getattr(self.app, "command_env", {}) or {}
            release = command_line(
                ["okstra", "record", m.task, "--stage", str(m.stage), "--status", "released"],
                env=env,
                project_root=Path(m.project_root),
            )
            after = t("prepared.after_stage", stage=m.stage, command=release)
        else:
            after = t("prepared.after")
        self.query_one("#prepared-after", Static).update(Text(after, style=muted))
        self.query_one("#back", Button).focus()

    def action_copy(self) -> None:
        self.app.copy_to_clipboard(self.command)
        self.say(t("prepared.copied"))
