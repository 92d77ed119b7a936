"""Options of a run: workers, the stage's QA waiver, the base ref; then the
preview. Reached from the board (a stage) or the phase picker (other phases).

Decisions: the workers start as the person's last choice in this session, `claude` the
first time (a team run, the usual okstra run; untick all for a single lead). The base
ref only matters while the task worktree does not exist yet, so once it does the field
is off and says why.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Button, Checkbox, Footer, Input, Label, Static

from okstra_engine.prompts import SINGLE_LEAD_PHASES, WORKER_KINDS

from ..base import OkstraScreen
from ..i18n import t
from ..model import home_relative
from ..runs import OptionsContext, RunChoice, command_line, options_context
from ..widgets.breadcrumb import Breadcrumb
from ..widgets.tick_box import TickBox

if TYPE_CHECKING:
    from okstra_engine.tasks import Task


def run_name(phase: str, stage: int | None, title: str | None = None) -> str:
    """`Implementation · stage 4 Inventory hold`, or the phase's name."""
    name = t("phase.name." + phase)
    if stage is None:
        return name
    return f"{name} · {t('run.stage', stage=stage)}" + (f" {title}" if title else "")


def run_crumbs(task: Task, phase: str, stage: int | None, *last: str) -> list[str]:
    parts = ["okstra", task.project.config.name, str(task.ref), t("phase.name." + phase)]
    if stage is not None:
        parts.append(t("run.stage", stage=stage))
    return [*parts, *last]


class RunOptionsScreen(OkstraScreen):
    BINDINGS = [
        Binding(
            "ctrl+n", "preview", "bind.preview", id="options.preview", tooltip="tip.options.preview", priority=True
        ),
    ]

    class Loaded(Message):
        def __init__(self, context: OptionsContext) -> None:
            super().__init__()
            self.context = context

    def __init__(self, task: Task, phase: str, stage: int | None) -> None:
        super().__init__()
        self.run_task = task
        self.phase = phase
        self.stage = stage
        self.context: OptionsContext | None = None

    @property
    def single_lead(self) -> bool:
        return self.phase in SINGLE_LEAD_PHASES

    def compose(self) -> ComposeResult:
        yield Breadcrumb(*run_crumbs(self.run_task, self.phase, self.stage, t("options.crumb")), id="crumbs")
        yield Static(id="options-head", classes="heading")
        with VerticalScroll(id="options-form"):
            with Vertical(id="workers-box", classes="options-box"):
                with Horizontal(id="workers"):
                    chosen = set(getattr(self.app, "last_workers", ("claude",)))
                    for kind in WORKER_KINDS:
                        yield TickBox(
                            kind,
                            value=kind in chosen and not self.single_lead,
                            id=f"worker-{kind}",
                            disabled=self.single_lead,
                            compact=True,
                        )
                yield Static(id="workers-note", classes="options-note")
            if self.phase == "implementation" and self.stage is not None:
                with Vertical(id="waiver-box", classes="options-box"):
                    with Horizontal(classes="options-row"):
                        yield Label(t("options.waiver.key"), classes="options-label")
                        yield Input(id="waiver-key", classes="-key")
                        yield Label(t("options.waiver.reason"), classes="options-label")
                        yield Input(placeholder=t("options.waiver.reason_placeholder"), id="waiver-reason")
                    yield Static(id="waiver-note", classes="options-note")
            if self.phase == "final-verification" and self.stage is None:
                with Vertical(id="stage-box", classes="options-box"):
                    with Horizontal(classes="options-row"):
                        yield Label(t("options.stage.label"), classes="options-label")
                        yield Input(placeholder=t("options.stage.placeholder"), id="verify-stage", type="integer")
                    yield Static(t("options.stage.note"), id="stage-note", classes="options-note", markup=False)
            with Vertical(id="base-box", classes="options-box"):
                with Horizontal(classes="options-row"):
                    yield Label(t("options.base.label"), classes="options-label")
                    yield Input(placeholder=t("options.base.placeholder"), id="base-ref")
                yield Static(id="base-note", classes="options-note")
            yield Static(id="options-command", classes="options-command")
        with Horizontal(classes="run-buttons"):
            yield Button(t("options.preview"), id="preview", action="screen.preview", variant="primary")
            yield Button(t("common.cancel"), id="cancel", action="screen.back")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#workers-box").border_title = t("options.workers.title")
        if self.query("#waiver-box"):
            self.query_one("#waiver-box").border_title = t("options.waiver.title", stage=self.stage)
        self.query_one("#base-box").border_title = t("options.base.title")
        if self.query("#stage-box"):
            self.query_one("#stage-box").border_title = t("options.stage.title")
        self.query_one("#options-head", Static).update(
            Text(t("options.heading", run=run_name(self.phase, self.stage)), style="bold")
        )
        self._describe_workers()
        self._show_command()
        self.query_one("#options-form").loading = True
        self._load()
        if not self.single_lead:
            self.query_one(f"#worker-{WORKER_KINDS[0]}", Checkbox).focus()
        else:
            self.query_one("#base-ref", Input).focus()

    @work(thread=True, exclusive=True, exit_on_error=False, group="run-options")
    def _load(self) -> None:
        self.post_message(self.Loaded(options_context(self.run_task, self.phase, self.stage)))

    @on(Loaded)
    def _loaded(self, message: Loaded) -> None:
        self.context = context = message.context
        self.query_one("#options-form").loading = False
        muted = self.look("okstra--blocked")
        warn = self.look("okstra--not-merged")
        if self.stage is not None and context.stage_title:
            self.query_one("#options-head", Static).update(
                Text(t("options.heading", run=run_name(self.phase, self.stage, context.stage_title)), style="bold")
            )
            self.query_one("#crumbs", Breadcrumb).show(
                *run_crumbs(self.run_task, self.phase, self.stage, t("options.crumb"))
            )
        if context.waiver_key is not None and self.query("#waiver-box"):
            key = self.query_one("#waiver-key", Input)
            if not key.value:
                key.value = context.waiver_key
            note = Text(t("options.waiver.note"), style=muted)
            if context.current_waiver:
                note.append("\n" + t("options.waiver.current", reason=context.current_waiver), style=warn)
            self.query_one("#waiver-note", Static).update(note)
        base = self.query_one("#base-ref", Input)
        if context.task_worktree:
            base.disabled = True
            base.placeholder = t("options.base.fixed_placeholder")
            note = Text(t("options.base.exists", path=home_relative(Path(context.task_worktree))), style=muted)
        else:
            note = Text(t("options.base.note"), style=muted)
        self.query_one("#base-note", Static).update(note)
        self._show_command()

    # ------------------------------------------------------------ the choice

    def choice(self) -> RunChoice:
        workers = tuple(kind for kind in WORKER_KINDS if self.query_one(f"#worker-{kind}", Checkbox).value)
        key = reason = ""
        if self.query("#waiver-box"):
            key = self.query_one("#waiver-key", Input).value.strip()
            reason = self.query_one("#waiver-reason", Input).value.strip()
        base = self.query_one("#base-ref", Input)
        return RunChoice(
            self.run_task,
            self.phase,
            self.chosen_stage(),
            workers=() if self.single_lead else workers,
            waiver_key=key,
            waiver_reason=reason,
            base_ref="" if base.disabled else base.value.strip(),
        )

    def chosen_stage(self) -> int | None:
        """The stage of the run: the one it was chosen for, or the one typed for a final
        verification of one stage (none: the whole task)."""
        if not self.query("#verify-stage"):
            return self.stage
        text = self.query_one("#verify-stage", Input).value.strip()
        return int(text) if text.isdigit() and int(text) > 0 else None

    def _describe_workers(self) -> None:
        muted = self.look("okstra--blocked")
        if self.single_lead:
            text = Text(t("options.workers.single_lead_phase", phase=t("phase.name." + self.phase)), style=muted)
        elif any(self.query_one(f"#worker-{kind}", Checkbox).value for kind in WORKER_KINDS):
            text = Text(t("options.workers.team"), style=muted)
        else:
            text = Text(t("options.workers.none"), style=self.look("okstra--ready"))
        self.query_one("#workers-note", Static).update(text)

    def _show_command(self) -> None:
        env = getattr(self.app, "command_env", {}) or {}
        line = command_line(self.choice().command(), env=env, project_root=self.run_task.project.root)
        muted = self.look("okstra--blocked")
        self.query_one("#options-command", Static).update(
            Text.assemble((t("options.same_as") + " ", muted), (line, muted))
        )

    @on(Checkbox.Changed)
    def _worker_changed(self, event: Checkbox.Changed) -> None:
        self._describe_workers()
        self._show_command()

    @on(Input.Changed)
    def _input_changed(self, event: Input.Changed) -> None:
        self._show_command()

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_preview()

    def action_preview(self) -> None:
        choice = self.choice()
        if (
            self.query("#verify-stage")
            and self.query_one("#verify-stage", Input).value.strip()
            and choice.stage is None
        ):
            self.say(t("options.stage.bad"), severity="warning")
            self.query_one("#verify-stage", Input).focus()
            return
        if choice.waiver_reason and not choice.waiver_key:
            self.say(t("options.waiver.no_key"), severity="warning")
            self.query_one("#waiver-key", Input).focus()
            return
        self.app.last_workers = (
            choice.workers if not self.single_lead else getattr(self.app, "last_workers", ("claude",))
        )  # type: ignore[attr-defined]
        from .preview import PreviewScreen

        self.app.push_screen(PreviewScreen(choice, self.context.stage_title if self.context else None))

    def help_legend(self) -> list[tuple[object, object]]:
        return [
            (Text(" · ".join(WORKER_KINDS), style="bold"), t("options.legend.workers")),
            (Text(t("options.legend.none_label"), style="bold"), t("options.legend.none")),
            (Text("ctrl+n / enter", style="bold"), t("options.legend.next")),
        ]
