"""The line at the foot of the preview and handoff screens: a spinner while work runs,
what is happening (with the latest step a worker reported), and the screen's buttons."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import Button, LoadingIndicator, Static


class StatusBar(Horizontal):
    DEFAULT_CSS = """
    StatusBar {
        height: auto;
        min-height: 3;
        padding: 0 1;
        align: left middle;
    }
    StatusBar > LoadingIndicator {
        width: 8;
        height: 1;
        margin-right: 1;
    }
    StatusBar > #status-text {
        width: 1fr;
        height: auto;
        color: $text-muted;
    }
    StatusBar > Button {
        margin-left: 2;
    }
    """

    class Progress(Message):
        """A step of the work under way; a worker thread posts it to the bar."""

        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    def __init__(self, *buttons: Button, id: str | None = None) -> None:
        super().__init__(id=id)
        self._buttons = buttons
        self._working_on = ""

    def compose(self) -> ComposeResult:
        yield LoadingIndicator()
        yield Static(id="status-text")
        yield from self._buttons

    def show(self, text: str, *, working: bool = False) -> None:
        """`text` on the bar; `working`: the spinner turns, and the steps a worker
        reports show under `text` until the next `show`."""
        self._working_on = text if working else ""
        self.query_one(LoadingIndicator).display = working
        self.query_one("#status-text", Static).update(Text(text))

    @on(Progress)
    def _progress(self, message: Progress) -> None:
        message.stop()
        if self._working_on:
            self.query_one("#status-text", Static).update(Text(self._working_on + "\n" + message.text))

    def report(self, text: str) -> None:
        """A step of the work under way, from any thread."""
        self.post_message(self.Progress(text))
