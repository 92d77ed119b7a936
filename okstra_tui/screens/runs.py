"""Run history: the runs of a task (of one phase, when reached from that phase), newest
first — when, stage, agent, state, outcome — and the files a run left (plan.md,
report.md, verification.md, improvements.md, handoff-*.md, the prompt), shown below as
Markdown: `enter` opens the run's first file, `f` the next one. Display only: links open
nothing, and a file that is a link okstra did not make is not read
(`run_history.read_output`). Live, like the board.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Markdown, Static

from okstra_engine.slugs import TaskRef

from ..base import OkstraScreen
from ..i18n import t
from ..live import Following, Marks, fingerprint
from ..model import run_history, short
from ..widgets.breadcrumb import Breadcrumb

if TYPE_CHECKING:
    from okstra_engine.run_history import RunRecord
    from okstra_engine.tasks import Task

_LOOKS = {
    "finished": "okstra--done",
    "working": "okstra--in-flight",
    "needs-input": "okstra--stale",
    "failed": "okstra--stale",
    "PASS": "okstra--done",
    "FAIL": "okstra--stale",
    "current": "okstra--done",
    "done": "okstra--done",
    "broken": "okstra--stale",
    "in-flight": "okstra--in-flight",
}


class RunsScreen(Following, OkstraScreen):
    HAS_PARENT = True
    BINDINGS = [
        Binding("enter", "open", "bind.open", id="runs.open", tooltip="tip.runs.open", priority=True),
        Binding("f", "next_file", "bind.next_file", id="runs.next_file", tooltip="tip.runs.next_file"),
    ]

    class Loaded(Message):
        def __init__(self, task: Task, runs: list[RunRecord], mark: Marks) -> None:
            super().__init__()
            self.task = task
            self.runs = runs
            self.mark = mark

    class Opened(Message):
        def __init__(self, run_id: str, name: str, text: str) -> None:
            super().__init__()
            self.run_id = run_id
            self.name = name
            self.text = text

    def __init__(self, root: Path, ref: TaskRef, phase: str | None = None) -> None:
        super().__init__()
        self.root = root
        self.ref = ref
        self.phase = phase
        self.run_task: Task | None = None
        self.runs: list[RunRecord] = []
        self.shown_file: tuple[str, str] | None = None
        """The run and file the viewer shows."""

    def parent_screen(self) -> Screen[Any] | None:
        from .phases import PhaseScreen

        return PhaseScreen(self.root, self.ref, plan_first=False)

    def _crumbs(self, project: str) -> list[str]:
        last = [t("phase.name." + self.phase)] if self.phase else []
        return ["okstra", project, str(self.ref), *last, t("runs.crumb")]

    def compose(self) -> ComposeResult:
        yield Breadcrumb(*self._crumbs(self.root.name), id="crumbs")
        yield Static(id="runs-head", classes="heading")
        yield DataTable(id="runs", cursor_type="row")
        yield Static(t("runs.empty"), id="runs-empty", markup=False)
        yield Static(id="run-files")
        with VerticalScroll(id="run-output"):
            yield Markdown(id="run-markdown", open_links=False)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#runs", DataTable)
        for key in ("when", "phase", "stage", "agent", "state", "outcome"):
            table.add_column(Text(t(f"runs.col.{key}"), style="bold"), key=key)
        table.loading = True
        self.query_one("#runs-empty").display = False
        self.query_one("#run-output").border_title = t("runs.output.title")
        self.follow_files()
        self._reader = self._load()

    def on_screen_resume(self) -> None:
        if self.run_task is not None:
            self._reader = self._load()

    def reread(self):
        return self._load()

    @work(thread=True, exclusive=True, exit_on_error=False, group="runs")
    def _load(self) -> None:
        mark = fingerprint(self.files.paths)
        task, runs = run_history(self.root, self.ref, self.okstra.clock())
        if self.phase is not None:
            runs = [r for r in runs if r.phase == self.phase]
        self.post_message(self.Loaded(task, runs, mark))

    @on(Loaded)
    def _loaded(self, message: Loaded) -> None:
        first = self.run_task is None
        self.run_task, self.runs = message.task, message.runs
        self.files.follow([message.task.runs_dir, *(r.dir for r in message.runs)], None if first else message.mark)
        self.query_one("#crumbs", Breadcrumb).show(*self._crumbs(message.task.project.config.name))
        head = Text(t("runs.heading", n=len(self.runs)), style="bold")
        self.query_one("#runs-head", Static).update(head)
        table = self.query_one("#runs", DataTable)
        table.loading = False
        keep = table.cursor_row
        table.clear()
        for run in self.runs:
            table.add_row(*self._cells(run), key=run.run_id)
        table.display = bool(self.runs)
        self.query_one("#runs-empty").display = not self.runs
        if self.runs:
            table.move_cursor(row=min(keep, len(self.runs) - 1))
        if first:
            table.focus()
        self._show_files()

    def _cells(self, run: RunRecord) -> list[Text]:
        muted = self.look("okstra--blocked")
        when = (run.created or "?").replace("T", " ").removesuffix("Z")[:19]
        outcome = t(f"runs.outcome.{run.outcome}", commit=short(run.commit)) if run.outcome else ""
        return [
            Text(when, style=muted),
            Text(t("phase.name." + run.phase) if run.phase else "?", style="bold"),
            Text(str(run.stage) if run.stage is not None else "-"),
            Text(run.agent or "-", style=muted),
            Text(t(f"runs.state.{run.state}"), style=self.look(_LOOKS.get(run.state, "okstra--blocked"))),
            Text(outcome, style=self.look(_LOOKS.get(run.outcome or "", "okstra--blocked"))),
        ]

    @property
    def selected(self) -> RunRecord | None:
        table = self.query_one("#runs", DataTable)
        if not self.runs or table.cursor_row >= len(self.runs):
            return None
        return self.runs[table.cursor_row]

    @on(DataTable.RowHighlighted, "#runs")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_files()

    @on(DataTable.RowSelected, "#runs")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open()

    def _show_files(self) -> None:
        run = self.selected
        line = Text()
        if run is not None:
            line.append(t("runs.files") + " ", style=self.look("okstra--blocked"))
            for name in run.outputs:
                here = self.shown_file == (run.run_id, name)
                line.append(name, style="bold reverse" if here else "bold")
                line.append("  ")
            if not run.outputs:
                line.append(t("runs.no_files"), style=self.look("okstra--blocked"))
        self.query_one("#run-files", Static).update(line)

    def action_open(self) -> None:
        run = self.selected
        if run is None or self.run_task is None:
            return
        if not run.outputs:
            self.say(t("runs.no_files"), severity="warning")
            return
        self._read(self.run_task, run.run_id, run.outputs[0])

    def action_next_file(self) -> None:
        run = self.selected
        if run is None or self.run_task is None or not run.outputs:
            return
        names = list(run.outputs)
        at = names.index(self.shown_file[1]) if self.shown_file and self.shown_file[0] == run.run_id else -1
        self._read(self.run_task, run.run_id, names[(at + 1) % len(names)])

    @work(thread=True, exclusive=True, exit_on_error=False, group="runs-read")
    def _read(self, task: Task, run_id: str, name: str) -> None:
        from okstra_engine.run_history import read_output

        self.post_message(self.Opened(run_id, name, read_output(task, run_id, name)))

    @on(Opened)
    async def _opened(self, message: Opened) -> None:
        self.shown_file = (message.run_id, message.name)
        self.query_one("#run-output").border_title = f"{message.run_id} · {message.name}"
        await self.query_one("#run-markdown", Markdown).update(message.text)
        self._show_files()
