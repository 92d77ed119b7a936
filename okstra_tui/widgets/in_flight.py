"""Side panel: the stages other runs hold right now, live, with their run and age."""

from __future__ import annotations

from datetime import datetime

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from ..i18n import t
from ..model import BoardData
from ..states import LOOKS, Looks, age, glyph


def compact_run_id(run_id: str | None) -> str:
    """A run id without its phase (always implementation here), to fit the panel; the
    stage detail shows it whole."""
    return (run_id or "-").replace("-implementation-", "-")


class InFlightPanel(Looks, VerticalScroll):
    COMPONENT_CLASSES = LOOKS

    def compose(self) -> ComposeResult:
        yield Static(id="in-flight-body", markup=False)

    def on_mount(self) -> None:
        self.border_title = t("board.in_flight.title")

    def show(self, data: BoardData, now: datetime) -> None:
        muted = self.look("okstra--blocked")
        flying = [v for v in data.stages if v.is_flying]
        body = Text()
        if not flying:
            body.append(t("board.in_flight.none"), style=muted)
        for i, view in enumerate(flying):
            if i:
                body.append("\n\n")
            style = self.look(f"state--{view.state}")
            body.append(f"{glyph(view.state)} {view.stage} ", style=style)
            body.append(view.title, style="bold")
            body.append("\n  " + compact_run_id(view.run_id), style=muted)
            step = data.last_status.get(view.stage, "reserved")
            parts = [data.hosts.get(view.stage) or "", t(f"board.in_flight.{step}"), age(view.since, now)]
            body.append("\n  " + " · ".join(p for p in parts if p))
            if view.stale_reason:
                body.append("\n  " + view.stale_reason, style=style)
        self.border_subtitle = str(len(flying)) if flying else ""
        self.query_one("#in-flight-body", Static).update(body)
