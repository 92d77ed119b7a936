"""Registering a project in one form: its id, QA commands and setup commands.

`okstra` opened in a git repository that is not registered yet offers it first; `n` on
the project picker offers it for the current directory. Registering is `okstra init`'s
(`projects.init_project`), in a worker. A bad id is said under its field, which keeps
the focus; an engine refusal opens the error dialog, and the id field has the focus
again after it. Dismisses with the registered project, or None.
"""

from __future__ import annotations

from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Input, Label, Static, TextArea
from textual.worker import Worker

from okstra_engine.errors import OkstraError
from okstra_engine.shown import shown
from okstra_engine.slugs import check_slug, slugify

from ..base import OkstraModal
from ..i18n import t
from ..model import register_project
from .form import FieldErrors


def command_lines(text: str) -> list[str]:
    """One command a line; blank lines are none."""
    return [line.strip() for line in text.splitlines() if line.strip()]


class RegisterForm(FieldErrors, OkstraModal):
    BINDINGS = [
        Binding("escape", "cancel", "bind.cancel", id="register.cancel", tooltip="tip.cancel"),
        Binding("ctrl+s", "register", "bind.register_now", id="register.save", tooltip="tip.register"),
    ]
    FIELDS = ("id",)

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog -form"):
            yield Static(t("register.title", name=shown(self.root.name)), classes="dialog-title", markup=False)
            yield Static(t("register.intro", path=shown(str(self.root))), classes="dialog-line", markup=False)
            yield Label(t("register.qa"))
            yield TextArea(id="qa", placeholder=t("register.qa_placeholder"), classes="-commands")
            yield Static(t("register.qa_hint"), classes="form-hint", markup=False)
            yield Label(t("register.setup"))
            yield TextArea(id="setup", placeholder=t("register.setup_placeholder"), classes="-commands")
            yield Static(t("register.setup_hint"), classes="form-hint", markup=False)
            yield Label(t("register.id"))
            yield Input(placeholder=slugify(self.root.name), id="id")
            yield Static(t("register.id_hint"), classes="form-hint", markup=False)
            yield Static("", id="id-error", classes="form-error", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button(t("register.confirm"), id="register", action="screen.register", variant="primary")
                yield Button(t("common.cancel"), id="cancel", action="screen.cancel")
            yield Static(t("register.keys"), classes="dialog-keys", markup=False)

    def on_mount(self) -> None:
        self.hide_field_errors()
        self.query_one("#qa", TextArea).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_register()

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_register(self) -> None:
        project_id = self.query_one("#id", Input).value.strip()
        if project_id:
            try:
                check_slug(project_id, "project id")  # not a UI text: the engine's own words, not shown
            except OkstraError:
                self.show_field_error("id", t("register.id_error", id=project_id))
                return
        qa = command_lines(self.query_one("#qa", TextArea).text)
        setup = command_lines(self.query_one("#setup", TextArea).text)
        self.query_one("#register", Button).disabled = True
        self._register(project_id or None, qa, setup)

    @work(thread=True, exclusive=True, exit_on_error=False, group="register")
    def _register(self, project_id: str | None, qa: list[str], setup: list[str]) -> None:
        project = register_project(self.root, project_id=project_id, qa_commands=qa, setup_commands=setup)
        self.app.call_from_thread(self.dismiss, project)

    def worker_failed(self, worker: Worker[object], error: BaseException) -> None:
        # what the engine refuses here is the id (taken, a copied folder's)
        self.query_one("#register", Button).disabled = False
        self.refocus_after("id")
