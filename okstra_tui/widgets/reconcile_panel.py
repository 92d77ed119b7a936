"""Side panel: git-reconcile suggestions (recorded done commit → the commit that holds
the same change now), as `okstra_engine.reconcile` makes them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from ..i18n import t, texts
from ..model import short
from ..states import BOLD, LOOKS, Looks

if TYPE_CHECKING:
    from okstra_engine.reconcile import Suggestion


class ReconcilePanel(Looks, Vertical):
    COMPONENT_CLASSES = LOOKS

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.suggestions: list[Suggestion] = []

    def compose(self) -> ComposeResult:
        yield Static(t("board.reconcile.checking"), id="reconcile-empty", markup=False)
        yield OptionList(id="reconcile-list")
        yield Static(t("board.reconcile.hint"), id="reconcile-hint", markup=False)

    def on_mount(self) -> None:
        self.border_title = t("board.reconcile.title")
        self.query_one("#reconcile-list").display = False
        self.query_one("#reconcile-hint").display = False

    def show(self, suggestions: list[Suggestion]) -> None:
        empty = self.query_one("#reconcile-empty", Static)
        listing = self.query_one("#reconcile-list", OptionList)
        self.suggestions = suggestions
        muted = self.look("okstra--blocked")
        if not self.suggestions:
            note = t("board.reconcile.none_note")
            empty.update(Text.assemble((t("board.reconcile.none"), "bold"), "\n", (note, muted)))
            empty.display, listing.display = True, False
            self.query_one("#reconcile-hint").display = False
            self.border_subtitle = ""
            return
        highlighted = listing.highlighted
        listing.clear_options()
        for s in self.suggestions:
            arrow = Text.assemble(
                (t("board.reconcile.stage", stage=s.stage), "bold"),
                "  ",
                (short(s.recorded), muted),
                " → ",
                (
                    short(s.suggested) or t("board.reconcile.no_match"),
                    self.look("okstra--done") + BOLD if s.suggested else muted,
                ),
                "\n  ",
                (t("kind." + s.kind) if "kind." + s.kind in texts() else s.kind, muted),
            )
            if s.ambiguous:
                arrow.append(" · " + t("board.reconcile.ambiguous"), style=self.look("okstra--not-merged"))
            listing.add_option(Option(arrow, id=f"s{s.stage}"))
        empty.display, listing.display = False, True
        self.query_one("#reconcile-hint").display = True
        listing.highlighted = min(highlighted or 0, len(self.suggestions) - 1)
        self.border_subtitle = str(len(self.suggestions))

    @property
    def selected(self) -> Suggestion | None:
        if not self.suggestions:
            return None
        index = self.query_one("#reconcile-list", OptionList).highlighted
        return self.suggestions[index if index is not None else 0]
