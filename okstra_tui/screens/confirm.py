"""A yes/no question before okstra changes something: `ConfirmModal` returns True only
for the explicit choice; `escape`, `n` and the cancel button return False."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Static

from ..base import OkstraModal
from ..i18n import t


class ConfirmModal(OkstraModal[bool]):
    BINDINGS = [
        Binding("escape", "answer(False)", "bind.cancel", id="confirm.cancel", tooltip="tip.cancel"),
        Binding("n", "answer(False)", "bind.no", id="confirm.no", show=False),
        Binding("y", "answer(True)", "bind.yes", id="confirm.yes", tooltip="tip.yes"),
    ]

    def __init__(self, title: str, lines: list[str], *, confirm: str, cancel: str, danger: bool = False) -> None:
        super().__init__()
        self.title_text = title
        self.lines = lines
        self.confirm_label = confirm
        self.cancel_label = cancel
        self.danger = danger

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog -danger" if self.danger else "dialog"):
            yield Static(self.title_text, classes="dialog-title", markup=False)
            for line in self.lines:
                yield Static(line, classes="dialog-line", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button(self.confirm_label, id="yes", variant="error" if self.danger else "primary")
                yield Button(self.cancel_label, id="no")
            yield Static(t("confirm.keys"), classes="dialog-keys")

    def on_mount(self) -> None:
        # the safe choice has the focus: enter right after the key that opened us cancels
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
