"""`d` on the board: the stage's change (its base → its done commit, or the tip of its
branch while it is in flight), read in a worker and shown in a scrollable view."""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.message import Message
from textual.widgets import Footer, Static

from ..base import OkstraScreen
from ..i18n import t
from ..model import BoardData, StageDiff, short, stage_diff
from ..states import BOLD
from ..widgets.breadcrumb import Breadcrumb
from ..widgets.diff_view import DiffView


class DiffScreen(OkstraScreen):
    class Loaded(Message):
        def __init__(self, diff: StageDiff | None) -> None:
            super().__init__()
            self.diff = diff

    def __init__(self, data: BoardData, stage: int) -> None:
        super().__init__()
        self.data = data
        self.stage = stage

    def compose(self) -> ComposeResult:
        task = self.data.task
        yield Breadcrumb("okstra", self.data.project_name, str(task.ref), t("diff.crumb", stage=self.stage))
        yield Static(id="diff-head", classes="heading")
        yield DiffView(id="diff")
        yield Footer()

    def on_mount(self) -> None:
        view = self.query_one(DiffView)
        view.loading = True
        self._load()

    @work(thread=True, exclusive=True, exit_on_error=False, group="diff")
    def _load(self) -> None:
        self.post_message(self.Loaded(stage_diff(self.data, self.stage)))

    @on(Loaded)
    def _show(self, message: Loaded) -> None:
        view = self.query_one(DiffView)
        view.loading = False
        head = self.query_one("#diff-head", Static)
        title = self.data.views[self.stage].title
        if message.diff is None:
            head.update(
                Text.assemble(
                    (t("board.detail.stage", stage=self.stage) + " " + title, "bold"), "   ", t("diff.nothing")
                )
            )
            view.display = False
            return
        diff = message.diff
        muted = self.look("okstra--blocked")
        text = Text.assemble(
            (t("board.detail.stage", stage=self.stage) + " " + title, "bold"),
            "   ",
            (short(diff.base), BOLD),
            (f" ({t(diff.base_from)})", muted),
            " → ",
            (short(diff.head), self.look("okstra--done") + BOLD),
            (f" ({t(diff.head_from)})", muted),
        )
        if diff.truncated:
            text.append("   " + t("diff.truncated"), style=self.look("okstra--not-merged"))
        if not diff.text.strip():
            text.append("   " + t("diff.empty"), style=muted)
        head.update(text)
        view.set_text(diff.text)
        view.focus()
