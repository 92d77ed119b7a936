"""What every okstra screen shares: bindings in the person's language, the one worker-failure handler,
saying an engine refusal (`refuse`, a `Refused` message), and `escape` going back up the
flow (project → task → phase → board).

A button runs its screen's action (`Button(..., action="screen.confirm")`): Textual then
asks the screen's `check_action` first, so a button and the key bound to the same action
are refused alike (a busy screen's `back`, say)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from rich.text import Text
from textual import on
from textual.binding import ActiveBinding, Binding
from textual.message import Message
from textual.screen import ModalScreen, Screen
from textual.worker import Worker, WorkerState

from .i18n import localize_bindings, t
from .states import LOOKS, Looks

if TYPE_CHECKING:
    from okstra_engine.refusals import Refusal

    from .app import OkstraApp


class Refused(Message):
    """The engine refused what the person asked of a screen (`OkstraScreen.refuse`);
    the screen says so, in the person's language."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__()
        self.refusal = refusal


class WorkerFailures:
    """The single `Worker.StateChanged` handler: a worker that raised shows the error
    dialog (an `OkstraError` as its what/how, anything else as an unexpected error),
    never a traceback. Mixed into every screen and the app, since the message does not
    bubble from the node that started the worker."""

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR and event.worker.error is not None:
            app: OkstraApp = self.app  # type: ignore[attr-defined]
            app.show_error(event.worker.error)
            self.worker_failed(event.worker, event.worker.error)

    def worker_failed(self, worker: Worker[Any], error: BaseException) -> None:
        """After the error dialog opened: a screen puts itself back in a state that can
        go on (a button enabled again, a progress line cleared)."""


class LocalizedKeys:
    """Bindings name text keys (`bind.back`); a screen hands them out, its own and the
    app's, in the person's language. Mixed into every screen."""

    @property
    def active_bindings(self) -> dict[str, ActiveBinding]:
        return localize_bindings(super().active_bindings)  # type: ignore[misc]


class OkstraScreen(WorkerFailures, LocalizedKeys, Looks, Screen[None]):
    COMPONENT_CLASSES = LOOKS
    BINDINGS = [
        Binding("escape", "back", "bind.back", id="okstra.back", tooltip="tip.back"),
    ]

    @property
    def okstra(self) -> OkstraApp:
        return self.app  # type: ignore[return-value]

    HAS_PARENT: ClassVar[bool] = False
    """Whether `parent_screen` makes one (checked often, so it must not build it)."""

    def parent_screen(self) -> Screen[Any] | None:
        """The screen one step up the flow, made when this one is the first shown."""
        return None

    def action_back(self) -> None:
        self.okstra.go_back(self)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "back":
            return len(self.app.screen_stack) > 2 or self.HAS_PARENT
        return True

    def after_keys(self, callback: Callable[[], object]) -> None:
        """Run `callback` once the keys sent before have been acted on. A priority binding
        (`enter` on the lists and the board) runs as its key arrives, while a `down` typed
        just before it is still on its way: a key goes to the focused widget, then bubbles
        up to the app, which runs its binding. `Down Enter` in one write would open the
        row the cursor was leaving. So the callback takes the same way up, one queue
        after the other, behind the keys."""
        hops = []
        node = self.focused or self
        while node is not None:
            hops.append(node)
            node = node._parent

        def step(at: int) -> None:
            if at == len(hops):
                callback()
            else:
                hops[at].call_later(step, at + 1)

        step(0)

    def say(self, text: str, *, severity: str = "information", title: str = "", timeout: float | None = None) -> None:
        """A notification; its text is shown as is (task titles may hold `[`)."""
        self.app.notify(text, title=title, severity=severity, timeout=timeout, markup=False)  # type: ignore[arg-type]

    def refuse(self, refusal: Refusal) -> None:
        """Say why the engine will not do what was asked (a `Refused` message)."""
        self.post_message(Refused(refusal))

    @on(Refused)
    def _refused(self, message: Refused) -> None:
        from .refusal_text import refusal_texts

        message.stop()
        what, how = refusal_texts(message.refusal)
        self.say(what + "\n" + t("error.how", how=how), severity="warning", timeout=10)

    def start_list(self, texts: str, keys: tuple[str, ...]) -> None:
        """A list screen's first look: its table's columns (headed by the texts
        `{texts}.col.KEY`), loading until its worker fills it, its `#empty` note hidden."""
        table = self.query_one("DataTable")
        for key in keys:
            table.add_column(Text(t(f"{texts}.col.{key}"), style="bold"), key=key)  # type: ignore[attr-defined]
        self.query_one("#empty").display = False
        table.loading = True

    def fill_list(self, rows: list[tuple[str, list[Text]]], target: str | None) -> bool:
        """Show a list screen's rows (key, cells), or its `#empty` note when there are
        none; put the cursor on `target`'s row when it is there, and focus the table.
        True when the cursor went to `target`."""
        from textual.widgets.data_table import RowDoesNotExist

        table = self.query_one("DataTable")
        table.loading = False
        table.clear()  # type: ignore[attr-defined]
        for key, cells in rows:
            table.add_row(*cells, key=key)  # type: ignore[attr-defined]
        table.display = bool(rows)
        self.query_one("#empty").display = not rows
        moved = False
        if target:
            try:
                table.move_cursor(row=table.get_row_index(target))  # type: ignore[attr-defined]
                moved = True
            except RowDoesNotExist:
                pass
        table.focus()
        return moved

    def help_legend(self) -> list[tuple[Any, Any]]:
        """Extra (label, text) lines the help dialog shows for this screen."""
        return []


ModalResult = TypeVar("ModalResult")


class OkstraModal(WorkerFailures, LocalizedKeys, ModalScreen[ModalResult]):
    """A modal that dismisses with a `ModalResult` (`OkstraModal[bool]` for yes/no)."""
