"""The plan's shape at a glance: one lane per stage group, in hand-off order, each stage a
card (number and `▶ auto` on its top border, dependencies on the bottom one, title and
state inside, coloured by state; the selected card has a heavy border).

Drawn as one rich renderable in one widget rather than a widget per card: a plan of
twenty stages would otherwise be sixty widgets to style and lay out on every start. Each
card's lines are cached by what the card shows, so moving the selection re-renders two
cards, not two hundred (a 200-stage board answers a key in milliseconds).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from rich import box
from rich.console import Console, ConsoleOptions, RenderResult
from rich.panel import Panel
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.containers import ScrollableContainer
from textual.message import Message
from textual.widgets import Static

from ..i18n import t
from ..model import BoardData, short
from ..states import BOLD, LOOKS, Looks, age, glyph

CARD_WIDTH = 23
CARD_HEIGHT = 4
LABEL_WIDTH = 4
CARD_TITLE_WIDTH = CARD_WIDTH - 4


@dataclass(frozen=True)
class Card:
    stage: int
    state: str
    selected: bool
    auto: bool


class LanesView(Looks, ScrollableContainer):
    COMPONENT_CLASSES = LOOKS

    class Clicked(Message):
        def __init__(self, stage: int) -> None:
            super().__init__()
            self.stage = stage

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.lanes: list[tuple[str, list[int]]] = []
        self.cards: dict[int, Card] = {}
        """What each card shows (tests read it)."""
        self._last: tuple[BoardData, datetime] | None = None
        self._rendered: dict[tuple, list[list[Segment]]] = {}

    def compose(self) -> ComposeResult:
        yield Static(id="lanes-body")

    def show(self, data: BoardData, now: datetime, *, selected: int | None) -> None:
        self._last = (data, now)
        self.lanes = [(g, list(s)) for g, s in data.lanes]
        auto = data.auto_stage
        views = data.views
        widest = max((len(stages) for _, stages in self.lanes), default=0)
        self.cards = {}
        rows: list[tuple[str, list[tuple[tuple, Panel | None]]]] = []
        label_style = self.look("okstra--blocked") + BOLD
        for group, stages in self.lanes:
            cells = []
            for n in stages:
                card = Card(n, views[n].state, n == selected, n == auto)
                self.cards[n] = card
                key = self._card_key(views[n], card, now)
                cells.append((key, None if key in self._rendered else self._card(views[n], card, now)))
            rows.append((group, cells))
        used = {key for _, cells in rows for key, _ in cells}
        self._rendered = {k: v for k, v in self._rendered.items() if k in used}
        body = self.query_one("#lanes-body", Static)
        body.styles.width = LABEL_WIDTH + widest * (CARD_WIDTH + 1)
        body.update(_Lanes(rows, self._rendered, label_style))

    def mark_selected(self, stage: int | None) -> None:
        if self._last is not None:
            data, now = self._last
            self.show(data, now, selected=stage)

    def _card_key(self, view, card: Card, now: datetime) -> tuple:
        """Everything a card's lines depend on."""
        looks = tuple(self.look(name) for name in ("okstra--blocked", "state--ready", f"state--{view.state}"))
        return (card, view.title, self._note(view, now), tuple(view.depends_on), looks)

    @staticmethod
    def _note(view, now: datetime) -> str:
        if view.state in ("done", "not-merged"):
            return short(view.done_commit) or t("state." + view.state)
        if view.state in ("in-flight", "stale"):
            return " · ".join(p for p in (t("state." + view.state), age(view.since, now)) if p)
        if view.state == "blocked":
            return t("card.waits", stages=", ".join(map(str, view.waits_for)))
        return t("state.ready")

    def _card(self, view, card: Card, now: datetime) -> Panel:
        title = view.title if len(view.title) <= CARD_TITLE_WIDTH else view.title[: CARD_TITLE_WIDTH - 1] + "…"
        note = self._note(view, now)
        style = self.look(f"state--{view.state}")
        colour = self.look(f"okstra--{view.state}")
        border = colour + Style(bold=card.selected, dim=view.state == "blocked" and not card.selected)
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

    def on_click(self, event: events.Click) -> None:
        """A click on a card selects its stage."""
        offset = event.get_content_offset(self.query_one("#lanes-body", Static))
        if offset is None:
            return
        row, column = offset.y // CARD_HEIGHT, (offset.x - LABEL_WIDTH) // (CARD_WIDTH + 1)
        if 0 <= row < len(self.lanes) and offset.x >= LABEL_WIDTH and 0 <= column < len(self.lanes[row][1]):
            self.post_message(self.Clicked(self.lanes[row][1][column]))


class _Lanes:
    """The lanes grid: a label column, then each lane's cards side by side, stitched from
    each card's cached lines (rendered here, once, the first time a card is shown)."""

    def __init__(self, rows, rendered: dict[tuple, list[list[Segment]]], label_style: Style) -> None:
        self.rows = rows
        self.rendered = rendered
        self.label_style = label_style

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        card_options = options.update(width=CARD_WIDTH, height=CARD_HEIGHT)
        gap = Segment(" ")
        for group, cells in self.rows:
            lines = []
            for key, panel in cells:
                if key not in self.rendered:
                    self.rendered[key] = console.render_lines(panel, card_options, pad=True)
                lines.append(self.rendered[key])
            for row in range(CARD_HEIGHT):
                label = group if row == CARD_HEIGHT // 2 - 1 else ""
                yield Segment(label[: LABEL_WIDTH - 1].ljust(LABEL_WIDTH - 1), self.label_style)
                for card_lines in lines:
                    yield gap
                    yield from card_lines[row]
                yield Segment.line()
