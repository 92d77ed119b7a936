"""`n` on the task list: a form for a new task (GROUP/ID, title, optional category).

The form says which characters a task name and a category take. A field the engine's
own rules refuse (`TaskRef.parse`, `check_slug`, an empty title) is said under it and
keeps the focus. The task is created in a worker; an engine refusal there (an existing
task, a branch git refuses) opens the error dialog over the form, so nothing typed is
lost, and the task field has the focus again after it. Dismisses with the new task's ref.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Input, Label, Static
from textual.worker import Worker

from okstra_engine.errors import OkstraError
from okstra_engine.shown import shown
from okstra_engine.slugs import TaskRef, check_slug

from ..base import OkstraModal
from ..i18n import t
from ..model import create_task
from .form import FieldErrors

if TYPE_CHECKING:
    from okstra_engine.projects import Project


class NewTaskForm(FieldErrors, OkstraModal):
    BINDINGS = [
        Binding("escape", "cancel", "bind.cancel", id="new_task.cancel", tooltip="tip.cancel"),
        # a priority key acts as it is read: "auth/login⏎Login flow" typed in one burst
        # (or pasted) moves on to the title before its letters arrive
        Binding("enter", "enter", show=False, priority=True),
    ]

    FIELDS = ("ref", "title", "category")

    def __init__(self, project: Project) -> None:
        super().__init__()
        self.project = project

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog -form"):
            yield Static(
                t("new_task.title", project=shown(self.project.config.name)), classes="dialog-title", markup=False
            )
            yield Label(t("new_task.ref"))
            yield Input(placeholder=t("new_task.ref_placeholder"), id="ref")
            yield Static(t("new_task.ref_hint"), classes="form-hint", markup=False)
            yield Static("", id="ref-error", classes="form-error", markup=False)
            yield Label(t("new_task.task_title"))
            yield Input(placeholder=t("new_task.title_placeholder"), id="title")
            yield Static("", id="title-error", classes="form-error", markup=False)
            yield Label(t("new_task.category"))
            yield Input(placeholder=self.project.config.work_category, id="category")
            yield Static(t("new_task.category_hint"), classes="form-hint", markup=False)
            yield Static("", id="category-error", classes="form-error", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button(t("new_task.create"), id="create", action="screen.create", variant="primary")
                yield Button(t("new_task.cancel"), id="cancel", action="screen.cancel")
            yield Static(t("new_task.keys"), classes="dialog-keys")

    def on_mount(self) -> None:
        self.hide_field_errors()
        self.query_one("#ref", Input).focus()

    def action_enter(self) -> None:
        """enter moves from the task field to an empty title, presses a focused button, and
        anywhere else creates (the category is optional)."""
        focused = self.focused
        if isinstance(focused, Button):
            focused.press()
            return
        title = self.query_one("#title", Input)
        if focused is not None and focused.id == "ref" and not title.value:
            self.set_focus(title)  # at once: focus() waits for the keys already queued
        else:
            self.action_create()

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_create(self) -> None:
        values = {name: self.query_one(f"#{name}", Input).value for name in self.FIELDS}
        wrong = field_error(values["ref"].strip(), values["title"], values["category"].strip())
        if wrong is not None:
            self.show_field_error(*wrong)
            return
        self._create_task(values["ref"], values["title"], values["category"].strip())

    @work(thread=True, exclusive=True, exit_on_error=False, group="new-task")
    def _create_task(self, ref: str, title: str, category: str) -> None:
        task = create_task(self.project, ref, title, category or None)
        self.app.call_from_thread(self.dismiss, task.ref)

    def worker_failed(self, worker: Worker[object], error: BaseException) -> None:
        self.refocus_after("ref")  # the engine refused the task (it exists, its branch): back to its name


def field_error(ref: str, title: str, category: str) -> tuple[str, str] | None:
    """The first field the engine's rules refuse, and what to say under it."""
    try:
        TaskRef.parse(ref)
    except OkstraError:
        return "ref", t("new_task.ref_error", ref=ref)
    if not title.strip():
        return "title", t("new_task.title_error")
    if category:
        try:
            check_slug(category, "category")
        except OkstraError:
            return "category", t("new_task.category_error", category=category)
    return None
