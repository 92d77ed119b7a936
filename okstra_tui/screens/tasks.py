"""The task list of one project: each task with its plan and progress, live; `n` adds one."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from okstra_engine.slugs import TaskRef
from okstra_engine.stage_view import StageState

from ..base import OkstraScreen
from ..i18n import t
from ..live import Following, Marks, fingerprint
from ..model import TaskSummary, task_list_watch, task_summaries
from ..plain import plain
from ..states import BOLD, Look
from ..widgets.breadcrumb import Breadcrumb

if TYPE_CHECKING:
    from okstra_engine.projects import Project


def progress_text(summary: TaskSummary, look: Look) -> Text:
    """`3/6 done · 1 in flight · next 4`, coloured like the board's badges."""
    if summary.error:
        return Text(summary.error, style=look("okstra--stale"))
    if summary.plan != "approved":
        return Text(t(f"tasks.plan.{summary.plan}"), style=look("okstra--blocked"))
    text = Text(t("tasks.done", done=summary.done, total=summary.total), style=look("okstra--done"))
    for count, key, state in (
        (summary.not_merged, "tasks.not_merged", StageState.NOT_MERGED),
        (summary.in_flight, "tasks.in_flight", StageState.IN_FLIGHT),
        (summary.stale, "tasks.stale", StageState.STALE),
    ):
        if count:
            text.append(" · ")
            text.append(t(key, n=count), style=look(f"okstra--{state}"))
    if summary.auto_stage is not None:
        text.append(" · ")
        text.append(t("tasks.next", stage=summary.auto_stage), style=look("okstra--ready") + BOLD)
    elif summary.total and summary.done == summary.total:
        text.append(" · ")
        text.append(t("tasks.all_done"), style=look("okstra--done") + BOLD)
    return text


class TasksScreen(Following, OkstraScreen):
    HAS_PARENT = True
    BINDINGS = [
        Binding("enter", "choose", "bind.open", id="tasks.open", tooltip="tip.tasks.open", priority=True),
        Binding("n", "new_task", "bind.new_task", id="tasks.new", tooltip="tip.tasks.new"),
    ]

    class Loaded(Message):
        def __init__(
            self, project: Project, summaries: list[TaskSummary], select: TaskRef | None, watch: list[Path], mark: Marks
        ) -> None:
            super().__init__()
            self.project = project
            self.summaries = summaries
            self.select = select
            self.watch = watch
            self.mark = mark
            """The list's folders as they were before the read."""

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root
        self.project: Project | None = None
        self.summaries: list[TaskSummary] = []
        self._want: TaskRef | None = None
        """The row to select once it shows up (a task just created)."""

    def parent_screen(self) -> Screen[Any] | None:
        from .projects import ProjectsScreen

        return ProjectsScreen()

    def compose(self) -> ComposeResult:
        yield Breadcrumb("okstra", self.root.name, id="crumbs")
        yield Static(t("tasks.heading"), classes="heading", id="heading")
        yield DataTable(id="tasks", cursor_type="row")
        yield Static(t("tasks.empty"), id="empty", classes="empty", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.start_list("tasks", ("task", "title", "progress"))
        self.follow_files()
        self._reader = self._load()

    def on_screen_resume(self) -> None:
        if self.project is not None:
            self._reader = self._load()

    def reread(self):
        return self._load()

    @work(thread=True, exclusive=True, exit_on_error=False, group="tasks")
    def _load(self, select: TaskRef | None = None) -> None:
        from okstra_engine.projects import load_project

        project = load_project(self.root)
        folders = task_list_watch(project)
        mark = fingerprint(folders + [p for s in self.summaries for p in s.watch])
        summaries = task_summaries(project, self.okstra.clock())
        watch = folders + [p for s in summaries for p in s.watch]
        self.post_message(self.Loaded(project, summaries, select, watch, mark))

    @on(Loaded)
    def _show(self, message: Loaded) -> None:
        self.project = message.project
        self.query_one("#crumbs", Breadcrumb).show("okstra", message.project.config.name)
        self.query_one("#heading", Static).update(plain(t("tasks.heading_in", project=message.project.config.name)))
        current = self.selected.ref if self.selected else None
        self.summaries = message.summaries
        self.files.follow(message.watch, message.mark)
        rows = [
            (str(s.ref), [Text(str(s.ref), style="bold"), Text(s.title), progress_text(s, self.look)])
            for s in self.summaries
        ]
        target = self._want or message.select or current
        if self.fill_list(rows, str(target) if target is not None else None) and target == self._want:
            self._want = None

    @property
    def selected(self) -> TaskSummary | None:
        table = self.query_one(DataTable)
        if not self.summaries or not table.row_count or table.cursor_row >= len(self.summaries):
            return None
        return self.summaries[table.cursor_row]

    @on(DataTable.RowSelected)
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_choose()

    def action_choose(self) -> None:
        self.after_keys(self._choose)

    def _choose(self) -> None:
        summary = self.selected
        if summary is None:
            self.say(t("tasks.none_selected"), severity="warning")
            return
        if summary.error:
            self.say(summary.error, severity="error")
            return
        self.okstra.open_task(self.root, summary.ref)

    def action_new_task(self) -> None:
        if self.project is None:
            return
        from .new_task import NewTaskForm

        def created(ref: TaskRef | None) -> None:
            if ref is not None:
                self.say(t("tasks.created", task=str(ref)))
                self._want = ref
                self._load(ref)

        self.app.push_screen(NewTaskForm(self.project), created)
