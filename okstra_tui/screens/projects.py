"""The project picker: every registered project, live; `n` offers to register the current
directory's project (the register form)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, Footer, Static

from okstra_engine.shown import shown

from ..base import OkstraScreen
from ..i18n import t
from ..live import Following, Marks, fingerprint
from ..model import ProjectEntry, home_relative, project_entries, project_here, project_watch
from ..widgets.breadcrumb import Breadcrumb

if TYPE_CHECKING:
    from okstra_engine.projects import Project


class ProjectsScreen(Following, OkstraScreen):
    BINDINGS = [
        Binding("enter", "choose", "bind.open", id="projects.open", tooltip="tip.projects.open", priority=True),
        Binding("n", "register", "bind.register", id="projects.register", tooltip="tip.projects.register"),
    ]

    class Loaded(Message):
        def __init__(self, entries: list[ProjectEntry], select: str | None, mark: Marks) -> None:
            super().__init__()
            self.entries = entries
            self.select = select
            self.mark = mark
            """The list's files as they were before the read."""

    def __init__(self) -> None:
        super().__init__()
        self.entries: list[ProjectEntry] = []
        self._want: str | None = None
        """The row to select once it shows up (a project just registered)."""

    def compose(self) -> ComposeResult:
        yield Breadcrumb("okstra", t("projects.crumb"))
        yield Static(t("projects.heading"), classes="heading")
        yield DataTable(id="projects", cursor_type="row")
        yield Static(t("projects.empty", cwd=home_relative(Path.cwd())), id="empty", classes="empty", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.start_list("projects", ("name", "id", "path"))
        self.follow_files()
        self._reader = self._load()

    def on_screen_resume(self) -> None:
        if self.entries:
            self._reader = self._load()

    def reread(self):
        return self._load()

    @work(thread=True, exclusive=True, exit_on_error=False, group="projects")
    def _load(self, select: str | None = None) -> None:
        self.post_message(self._read(select))

    def _read(self, select: str | None) -> ProjectsScreen.Loaded:
        mark = fingerprint(project_watch(self.entries))
        return self.Loaded(project_entries(), select, mark)

    @on(Loaded)
    def _show(self, message: Loaded) -> None:
        current = self.selected.id if self.selected else None
        self.entries = message.entries
        self.files.follow(project_watch(self.entries), message.mark)
        rows = []
        for entry in self.entries:
            path = Text(
                shown(home_relative(entry.path)),
                style=self.look("okstra--blocked" if entry.exists else "okstra--stale"),
            )
            if not entry.exists:
                path.append("  " + t("projects.missing_tag"))
            rows.append((entry.id, [Text(shown(entry.name), style="bold"), Text(entry.id), path]))
        target = self._want or message.select or current
        if self.fill_list(rows, target) and target == self._want:
            self._want = None

    @property
    def selected(self) -> ProjectEntry | None:
        table = self.query_one(DataTable)
        if not self.entries or not table.row_count:
            return None
        return self.entries[table.cursor_row] if table.cursor_row < len(self.entries) else None

    @on(DataTable.RowSelected)
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_choose()

    def action_choose(self) -> None:
        self.after_keys(self._choose)

    def _choose(self) -> None:
        entry = self.selected
        if entry is None:
            self.say(t("projects.none_selected"), severity="warning")
            return
        if not entry.exists:
            self.say(t("projects.missing", path=str(entry.path)), severity="error")
            return
        self.okstra.open_project(entry.path)

    def action_register(self) -> None:
        self._register_here()

    @work(thread=True, exclusive=True, exit_on_error=False, group="projects-register")
    def _register_here(self) -> None:
        root = project_here()
        known = next((e for e in project_entries() if e.path == root and e.exists), None)
        if known is None:
            self.app.call_from_thread(self.offer_registration, root)
            return
        self._want = known.id
        self.app.call_from_thread(self.say, t("projects.already", name=shown(known.name), path=shown(str(root))))
        self.post_message(self._read(known.id))

    def offer_registration(self, root: Path, *, then_open: bool = False) -> None:
        """The register form for `root`; once registered, its row is selected (and with
        `then_open`, its tasks opened)."""
        from .register import RegisterForm

        def registered(project: Project | None) -> None:
            if project is None:
                return
            self.say(t("projects.registered", name=shown(project.config.name), path=shown(str(project.root))))
            self._want = project.id
            self._load(project.id)
            if then_open:
                self.okstra.open_project(project.root)

        self.app.push_screen(RegisterForm(root), registered)
