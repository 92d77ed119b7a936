"""`n` on the task list: a form for a new task (GROUP/ID, title, optional category).

The task is created in a worker; an engine refusal (bad slug, existing task) opens the
error dialog over the form, so nothing typed is lost. Dismisses with the new task's ref.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, Label, Static

from okstra_engine.shown import shown

from ..base import OkstraModal
from ..i18n import t
from ..model import create_task

if TYPE_CHECKING:
    from okstra_engine.projects import Project


class NewTaskForm(OkstraModal):
    BINDINGS = [
        Binding("escape", "cancel", "bind.cancel", id="new_task.cancel", tooltip="tip.cancel"),
    ]

    def __init__(self, project: Project) -> None:
        super().__init__()
        self.project = project

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog -form"):
            yield Static(
                t("new_task.title", project=shown(self.project.config.name)), classes="dialog-title", markup=False
            )
            yield Label(t("new_task.ref"))
            yield Input(placeholder=t("new_task.ref_placeholder"), id="ref")
            yield Label(t("new_task.task_title"))
            yield Input(placeholder=t("new_task.title_placeholder"), id="title")
            yield Label(t("new_task.category"))
            yield Input(placeholder=self.project.config.work_category, id="category")
            with Horizontal(classes="dialog-buttons"):
                yield Button(t("new_task.create"), id="create", action="screen.create", variant="primary")
                yield Button(t("new_task.cancel"), id="cancel", action="screen.cancel")
            yield Static(t("new_task.keys"), classes="dialog-keys")

    def on_mount(self) -> None:
        self.query_one("#ref", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """enter moves from the task field to an empty title; anywhere else it creates
        (the category is optional)."""
        event.stop()
        title = self.query_one("#title", Input)
        if event.input.id == "ref" and not title.value:
            title.focus()
        else:
            self.action_create()

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_create(self) -> None:
        values = {name: self.query_one(f"#{name}", Input).value for name in ("ref", "title", "category")}
        self._create_task(values["ref"], values["title"], values["category"].strip())

    @work(thread=True, exclusive=True, exit_on_error=False, group="new-task")
    def _create_task(self, ref: str, title: str, category: str) -> None:
        task = create_task(self.project, ref, title, category or None)
        self.app.call_from_thread(self.dismiss, task.ref)
