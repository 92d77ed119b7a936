"""The error dialog: what went wrong and how to fix it, never a traceback."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Static

from ..base import OkstraModal
from ..i18n import t


class ErrorDialog(OkstraModal[None]):
    BINDINGS = [
        Binding("escape", "close", "bind.close", id="error.close", tooltip="tip.close"),
    ]

    def __init__(self, what: str, how: str = "", *, unexpected: bool = False) -> None:
        super().__init__()
        self.what = what
        self.how = how
        self.unexpected = unexpected

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog -error"):
            yield Static(t("error.unexpected_title") if self.unexpected else t("error.title"), classes="dialog-title")
            yield Static(self.what, classes="dialog-what", markup=False)
            if self.how:
                yield Static(t("error.how", how=self.how), classes="dialog-how", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button(t("error.ok"), id="ok", action="screen.close", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#ok", Button).focus()

    def action_close(self) -> None:
        self.dismiss(None)
