"""A yes/no question before okstra changes something: `ConfirmModal` returns True only
for the explicit choice; `escape`, `n` and the cancel button return False."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Static

from ..base import OkstraModal
from ..i18n import t


class YesNoModal(OkstraModal[bool]):
    """A question whose buttons are `#yes` (`answer(True)`) and `#no` (`answer(False)`).
    The safe choice has the focus: an `enter` typed right after the key that opened the
    dialog answers no."""

    FIRST_FOCUS = "#no"
    """What has the focus when the dialog opens."""

    def on_mount(self) -> None:
        self.query_one(self.FIRST_FOCUS).focus()

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class ConfirmModal(YesNoModal):
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
                yield Button(
                    self.confirm_label,
                    id="yes",
                    action="screen.answer(True)",
                    variant="error" if self.danger else "primary",
                )
                yield Button(self.cancel_label, id="no", action="screen.answer(False)")
            yield Static(t("confirm.keys"), classes="dialog-keys")
