"""The phase picker: each phase of a task, whether a run of it can start and why not,
and what its runs came to (verified, handed off); live. `p` opens the plan, `r` the
highlighted phase's runs. A task whose plan waits for approval opens on its plan."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, OptionList, Static
from textual.widgets.option_list import Option

from okstra_engine.shown import shown
from okstra_engine.slugs import TaskRef

from ..base import OkstraScreen
from ..i18n import t
from ..live import Following, Marks, fingerprint
from ..model import PhaseChoice, TaskSummary, phase_choices, phase_watch, summarize
from ..refusal_text import refusal_brief, refusal_texts
from ..widgets.breadcrumb import Breadcrumb
from .tasks import progress_text

if TYPE_CHECKING:
    from okstra_engine.tasks import Task


NAME_WIDTH = 24
"""The phase names' column in the list."""
NEXT_STEPS = ("implementation", "final-verification", "release-handoff")
"""The phases a task goes through in turn once its plan is approved."""


class PhaseScreen(Following, OkstraScreen):
    HAS_PARENT = True
    BINDINGS = [
        Binding("enter", "choose", "bind.choose", id="phases.choose", tooltip="tip.phases.choose", priority=True),
        Binding("p", "plan", "bind.plan", id="phases.plan", tooltip="tip.phases.plan"),
        Binding("r", "runs", "bind.runs", id="phases.runs", tooltip="tip.phases.runs"),
    ]

    class Loaded(Message):
        def __init__(
            self, task: Task, summary: TaskSummary, choices: list[PhaseChoice], watch: list[Path], mark: Marks
        ) -> None:
            super().__init__()
            self.task = task
            self.summary = summary
            self.choices = choices
            self.watch = watch
            self.mark = mark

    def __init__(self, root: Path, ref: TaskRef, *, plan_first: bool = True) -> None:
        super().__init__()
        self.root = root
        self.ref = ref
        self.plan_first = plan_first
        """Open the plan screen over this one when the plan waits (not when going back from it)."""
        self.current_task: Task | None = None
        self.choices: list[PhaseChoice] = []
        self._plan_state: str | None = None
        """The plan's state the cursor last landed for: a plan approved (here or elsewhere)
        moves the cursor on to implementation."""

    def parent_screen(self) -> Screen[Any] | None:
        from .tasks import TasksScreen

        return TasksScreen(self.root)

    def compose(self) -> ComposeResult:
        yield Breadcrumb("okstra", self.root.name, str(self.ref), id="crumbs")
        yield Static(id="task-line", classes="heading")
        yield OptionList(id="phases")
        yield Static(id="phase-detail", classes="detail")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(OptionList).loading = True
        self.follow_files()
        self._reader = self._load()

    def on_screen_resume(self) -> None:
        if self.current_task is not None:
            self._reader = self._load()

    def reread(self):
        return self._load()

    @work(thread=True, exclusive=True, exit_on_error=False, group="phases")
    def _load(self) -> None:
        from okstra_engine.projects import load_project
        from okstra_engine.status import task_status
        from okstra_engine.tasks import load_task

        mark = fingerprint(self.files.paths)
        task = load_task(load_project(self.root), self.ref)
        status = task_status(task, now=self.okstra.clock())
        summary = summarize(task, status)
        self.post_message(self.Loaded(task, summary, phase_choices(status), phase_watch(task, summary), mark))

    @on(Loaded)
    def _show(self, message: Loaded) -> None:
        first = self.current_task is None
        self.current_task, self.choices = message.task, message.choices
        self.files.follow(message.watch, None if first else message.mark)
        self.query_one("#crumbs", Breadcrumb).show("okstra", message.task.project.config.name, str(self.ref))
        line = Text.assemble((shown(message.task.doc.title), "bold"), "   ", progress_text(message.summary, self.look))
        self.query_one("#task-line", Static).update(line)
        options = self.query_one(OptionList)
        options.loading = False
        keep = options.highlighted
        options.clear_options()
        ok = self.look("okstra--done")
        no = self.look("okstra--blocked")
        for choice in self.choices:
            # two columns: a reason too long for its line wraps under itself, not the names
            label = Table.grid(expand=True)
            label.add_column(width=NAME_WIDTH, no_wrap=True)
            label.add_column(ratio=1, justify="left")
            if choice.available:
                reason = Text("✔ " + t("phase.available"), style=ok)
            else:
                reason = Text("○ " + self.reason_text(choice), style=no)
            if choice.mark:
                reason = Text.assemble(("● " + t("phase.mark." + choice.mark) + "  ", ok), reason)
            label.add_row(Text(t("phase.name." + choice.phase), style="bold"), reason)
            options.add_option(Option(label, id=choice.phase))
        if keep is None or message.summary.plan != self._plan_state:
            keep = self._landing(message.summary)
        self._plan_state = message.summary.plan
        options.highlighted = keep
        options.focus()
        self._describe(keep)
        if first and self.plan_first and message.summary.plan in ("draft", "broken"):
            self.okstra.open_plan(self.root, self.ref)  # the plan is what waits

    def _landing(self, summary: TaskSummary) -> int:
        """Where the cursor starts: planning until a plan is approved; then the next step,
        the first of implementation, final verification and release handoff that can start
        and has not come to its end yet (no mark); implementation when none can (the board
        shows why no stage can start)."""
        phases = [c.phase for c in self.choices]
        wanted = "planning"
        if summary.plan == "approved":
            wanted = next(
                (c.phase for c in self.choices if c.phase in NEXT_STEPS and c.available and not c.mark),
                "implementation",
            )
        return phases.index(wanted) if wanted in phases else 0

    def reason_text(self, choice: PhaseChoice) -> str:
        """Why the phase cannot start now, in short ("" when it can); the detail below
        the list says it in full, with the fix."""
        return refusal_brief(choice.refusal) if choice.refusal else ""

    @on(OptionList.OptionHighlighted)
    def _highlighted(self, event: OptionList.OptionHighlighted) -> None:
        self._describe(event.option_index)

    def _describe(self, index: int | None) -> None:
        if index is None or index >= len(self.choices):
            return
        choice = self.choices[index]
        text = Text(t("phase.about." + choice.phase))
        if choice.refusal:
            what, how = refusal_texts(choice.refusal)
            text.append("\n" + what, style=self.look("okstra--ready"))
            text.append("\n" + t("error.how", how=how), style=self.look("okstra--blocked"))
        self.query_one("#phase-detail", Static).update(text)

    @on(OptionList.OptionSelected)
    def _selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.action_choose()

    def action_choose(self) -> None:
        self.after_keys(self._choose)

    def _choose(self) -> None:
        index = self.query_one(OptionList).highlighted
        if self.current_task is None or index is None:
            return
        choice = self.choices[index]
        if choice.refusal is not None and choice.refusal.code in ("phase.plan_draft", "phase.plan_broken"):
            self.okstra.open_plan(self.root, self.ref)  # the plan to approve, or to fix
        elif choice.phase == "implementation" and (
            choice.refusal is None or choice.refusal.code in ("phase.nothing_ready", "phase.all_done")
        ):
            # the board is where stages are picked, and where it shows why none can start
            self.okstra.open_board(self.root, self.ref)
        elif choice.refusal is not None:
            self.refuse(choice.refusal)
        else:
            self.okstra.open_run(self.current_task, choice.phase, None)

    def action_plan(self) -> None:
        self.okstra.open_plan(self.root, self.ref)

    def action_runs(self) -> None:
        index = self.query_one(OptionList).highlighted
        phase = self.choices[index].phase if index is not None and index < len(self.choices) else None
        self.okstra.open_runs(self.root, self.ref, phase)
