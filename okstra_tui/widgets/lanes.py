"""The plan's shape at a glance: one lane per stage group, in hand-off order, each stage a
card (number and `▶ auto` on its top border, dependencies on the bottom one, title and
state inside, coloured by state; the selected card has a heavy border). A stage in flight
whose agent is seen shows the agent's state in place of its own; one whose agent needs
input takes that colour, border and all.

A lane is a row of widgets: its label, then a `StageCard` per stage. `show` repaints only
the cards whose look changed (moving the selection repaints two), and builds the lanes
again only when the plan's shape changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from rich import box
from rich.cells import cell_len, chop_cells, set_cell_size
from rich.panel import Panel
from rich.style import Style
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.containers import Horizontal, ScrollableContainer, Vertical
from textual.message import Message
from textual.widgets import Static

from okstra_engine.agent_state import AgentState
from okstra_engine.shown import shown
from okstra_engine.stage_view import StageState, StageView

from ..i18n import t
from ..model import blocked_text, short
from ..states import BOLD, LOOKS, Looks, age, badge_look, glyph

CARD_WIDTH = 23
CARD_HEIGHT = 4
LABEL_WIDTH = 12
"""The widest a lane's label gets: a longer group name wraps on the lane's lines."""
LABEL_MIN_WIDTH = 3
CARD_TITLE_WIDTH = CARD_WIDTH - 4


class Shape(Protocol):
    """What the lanes draw: the board's data (`BoardData`), or a plan under review."""

    @property
    def lanes(self) -> list[tuple[str, list[int]]]: ...
    @property
    def views(self) -> dict[int, StageView]: ...
    @property
    def auto_stage(self) -> int | None: ...
    @property
    def agents(self) -> dict[int, AgentState]: ...


@dataclass(frozen=True)
class Card:
    stage: int
    state: str
    selected: bool
    auto: bool
    agent: AgentState | None = None


class StageCard(Static):
    """One stage's card; `LanesView` paints it (the looks are the view's)."""

    def __init__(self, stage: int) -> None:
        super().__init__()
        self.stage = stage
        self.card: Card | None = None
        """The stage's state, selection and auto mark as last shown."""
        self.shows: tuple | None = None
        """Everything the card's panel was made from (`LanesView._card_key`)."""

    def on_click(self, event: events.Click) -> None:
        event.stop()
        self.post_message(LanesView.Clicked(self.stage))


class LanesView(Looks, ScrollableContainer):
    COMPONENT_CLASSES = LOOKS
    DEFAULT_CSS = f"""
    LanesView > #lanes-body {{
        width: auto;
        height: auto;
    }}
    LanesView .lane {{
        width: auto;
        height: {CARD_HEIGHT};
    }}
    LanesView .lane-label {{
        width: auto;
        height: {CARD_HEIGHT};
    }}
    LanesView StageCard {{
        width: {CARD_WIDTH};
        height: {CARD_HEIGHT};
        margin-left: 1;
    }}
    """

    class Clicked(Message):
        def __init__(self, stage: int) -> None:
            super().__init__()
            self.stage = stage

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.lanes: list[tuple[str, list[int]]] = []
        self._last: tuple[Shape, datetime] | None = None
        self._widgets: dict[int, StageCard] = {}

    def compose(self) -> ComposeResult:
        yield Vertical(id="lanes-body")

    def show(self, data: Shape, now: datetime, *, selected: int | None) -> None:
        self._last = (data, now)
        lanes = [(g, list(s)) for g, s in data.lanes]
        if lanes != self.lanes:
            self._build(lanes)
        auto = data.auto_stage
        views = data.views
        for _, stages in self.lanes:
            for n in stages:
                card = Card(n, views[n].state, n == selected, n == auto, data.agents.get(n))
                widget = self._widgets[n]
                widget.card = card
                key = self._card_key(views[n], card, now)
                if key != widget.shows:
                    widget.shows = key
                    widget.update(self._card(views[n], card, now), layout=False)

    @property
    def cards(self) -> dict[int, Card]:
        """What each stage's card shows."""
        return {n: w.card for n, w in self._widgets.items() if w.card is not None}

    def _build(self, lanes: list[tuple[str, list[int]]]) -> None:
        """The lanes as widgets: a row per group, its label and its cards."""
        self.lanes = lanes
        self._widgets = {n: StageCard(n) for _, stages in lanes for n in stages}
        label_style = self.look("okstra--blocked") + BOLD
        width = min(max((cell_len(shown(group)) for group, _ in lanes), default=0), LABEL_WIDTH)
        width = max(width, LABEL_MIN_WIDTH)
        body = self.query_one("#lanes-body", Vertical)
        body.remove_children()
        body.mount_all(
            Horizontal(
                Static(_label(group, label_style, width), classes="lane-label"),
                *(self._widgets[n] for n in stages),
                classes="lane",
            )
            for group, stages in lanes
        )

    def mark_selected(self, stage: int | None) -> None:
        if self._last is not None:
            data, now = self._last
            self.show(data, now, selected=stage)

    def _card_key(self, view, card: Card, now: datetime) -> tuple:
        """Everything a card's lines depend on."""
        names = ("okstra--blocked", "state--ready", *self._looks(view, card))
        looks = tuple(self.look(name) for name in names)
        return (card, view.title, self._note(view, card, now), tuple(view.depends_on), looks)

    @staticmethod
    def _looks(view, card: Card) -> tuple[str, str]:
        """The looks of the card's state line and of its border."""
        if card.agent is AgentState.NEEDS_INPUT:
            return "agent--needs-input", "okstra--needs-input"
        return badge_look(view.state, card.agent), f"okstra--{view.state}"

    @staticmethod
    def _note(view, card: Card, now: datetime) -> str:
        if view.is_done:
            return short(view.done_commit) or t("state." + view.state)
        if view.is_flying:
            word = t("agent.short." + card.agent) if card.agent else t("state." + view.state)
            return " · ".join(p for p in (word, age(view.since, now)) if p)
        if view.state is StageState.BLOCKED:
            return blocked_text(view, "card")
        return t("state.ready")

    def _card(self, view, card: Card, now: datetime) -> Panel:
        title = view.title if len(view.title) <= CARD_TITLE_WIDTH else view.title[: CARD_TITLE_WIDTH - 1] + "…"
        note = self._note(view, card, now)
        line, edge = self._looks(view, card)
        style, colour = self.look(line), self.look(edge)
        border = colour + Style(bold=card.selected, dim=view.state is StageState.BLOCKED and not card.selected)
        # rich pads a panel's title and subtitle with a space on each side
        heading = Text(str(card.stage), style=colour + BOLD)
        if card.auto:
            heading.append(" " + t("card.auto"), style=self.look("state--ready"))
        deps = (
            Text("← " + ", ".join(map(str, view.depends_on)), style=self.look("okstra--blocked"))
            if view.depends_on
            else None
        )
        return Panel(
            Text.assemble((title, "bold"), "\n", (f"{glyph(view.state)} {note}", style)),
            title=heading,
            title_align="left",
            subtitle=deps,
            subtitle_align="right",
            box=box.HEAVY if card.selected else box.ROUNDED,
            border_style=border,
            width=CARD_WIDTH,
            height=CARD_HEIGHT,
            padding=(0, 1),
        )


def _label(group: str, style: Style, width: int) -> Text:
    """A lane's label, `width` cells wide, from the line of its cards' titles on: a name
    too long for its lines ends with `…`."""
    room = CARD_HEIGHT - 1
    lines = chop_cells(shown(group), width)
    if len(lines) > room:
        lines = [*lines[: room - 1], set_cell_size(lines[room - 1], width - 1) + "…"]
    rows = ["", *lines] + [""] * (room - len(lines))
    return Text("\n".join(set_cell_size(row, width) for row in rows), style=style)
