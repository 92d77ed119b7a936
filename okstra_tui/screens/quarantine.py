"""The quarantine approval dialog: a team an earlier attempt left under
the agent home blocks the team this run's lead must create. It shows what would move
where (`quarantine.plan_move(team).describe()`) and returns True only for the explicit
"Quarantine" (`y` or its button); "Skip", `n` and `escape` return False. Nothing moves
here: the caller moves the team in a worker when the answer is True.

The dialog opens over a preview whose `enter` is "Prepare and start": an `enter` typed
for that must neither move the team nor skip the question, so no button has the focus
(the plan has it) and `enter` only says which keys answer. A button is answered by a
click, or by `enter` once `tab` has put the focus on it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Static

from ..i18n import t
from .confirm import YesNoModal

if TYPE_CHECKING:
    from okstra_engine.tasks import Task

    from ..runs import TeamCheck


class QuarantineDialog(YesNoModal):
    BINDINGS = [
        Binding("y", "answer(True)", "bind.quarantine", id="quarantine.yes", tooltip="tip.quarantine.yes"),
        Binding("n", "answer(False)", "bind.skip", id="quarantine.no", tooltip="tip.quarantine.no"),
        Binding(
            "escape", "answer(False)", "bind.skip", id="quarantine.escape", tooltip="tip.quarantine.no", show=False
        ),
        Binding("enter", "which_keys", show=False),
    ]
    FIRST_FOCUS = "#quarantine-scroll"

    def __init__(self, check: TeamCheck, task: Task | None = None) -> None:
        super().__init__()
        self.check = check
        self.run_task = task

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog -quarantine"):
            yield Static(t("quarantine.title"), classes="dialog-title", markup=False)
            yield Static(t("quarantine.found", team=self.check.team), classes="dialog-line", markup=False)
            yield Static(t("quarantine.plan"), classes="dialog-what -spaced", markup=False)
            with VerticalScroll(classes="quarantine-plan", id="quarantine-scroll"):
                yield Static(self._plan_text(), id="quarantine-plan", markup=False)
            yield Static(t("quarantine.effect"), classes="dialog-line", markup=False)
            yield Static(t("quarantine.skip_effect", team=self.check.team), classes="dialog-line -muted", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button(t("quarantine.yes"), id="yes", action="screen.answer(True)", variant="primary")
                yield Button(t("quarantine.no"), id="no", action="screen.answer(False)")
            yield Static(t("quarantine.keys"), classes="dialog-keys")

    def action_which_keys(self) -> None:
        self.app.bell()
        self.notify(t("quarantine.which_keys"), severity="warning", markup=False)

    def _plan_text(self) -> Text:
        """The plan's first line, then each move as its source and, under it, `→` where
        it goes (long paths read better one per line); other steps as the engine says."""
        plan = self.check.plan
        if not self.check.moves or len(plan) != len(self.check.moves) + 1:
            return Text("\n".join(plan))
        text = Text(plan[0])
        for source, destination in self.check.moves:
            text.append(f"\n  {source}\n    → {destination}")
        return text
