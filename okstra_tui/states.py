"""How a stage state looks: a glyph, a word and a look from the stylesheet; and how an
age reads.

The six state colours are theme variables (`$okstra-done`, ...; `COLOURS` holds their
defaults, which `OkstraApp.get_theme_variable_defaults` hands to Textual, so a theme may
override them). `app.tcss` colours two families of component classes with them:
`state--STATE`, a state's badge (bold for the states that ask for attention), and
`okstra--STATE`, the state's colour alone. An agent that needs input has a seventh colour
of its own (`$okstra-needs-input`: `agent--needs-input`, its badge; `okstra--needs-input`). A widget or screen that builds Rich text
declares `COMPONENT_CLASSES = LOOKS`, mixes in `Looks`, and takes its styles from
`self.look(name)`: no colour is spelled in Python.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from rich.style import Style
from rich.text import Text

from okstra_engine.agent_state import AgentState
from okstra_engine.stage_view import StageState

from .i18n import t

GLYPHS = {
    StageState.DONE: "✔",
    StageState.NOT_MERGED: "✔",
    StageState.IN_FLIGHT: "◐",
    StageState.STALE: "✖",
    StageState.READY: "●",
    StageState.BLOCKED: "○",
}
COLOURS = {
    # six states, six colours (Textual's dark theme shares one for warning and accent)
    "okstra-done": "#4EBF71",
    "okstra-not-merged": "#D7BA7D",
    "okstra-in-flight": "#4FC1FF",
    "okstra-stale": "#F14C4C",
    "okstra-ready": "#FFA62B",
    "okstra-blocked": "#8A8A8A",
    # an agent waiting for the person: no state shares it
    "okstra-needs-input": "#FF5FD7",
}
ORDER = tuple(StageState)
LOOKS = frozenset(
    {f"state--{state}" for state in ORDER}
    | {f"okstra--{state}" for state in ORDER}
    | {"agent--needs-input", "okstra--needs-input"}
)
"""The component classes `app.tcss` styles; `COMPONENT_CLASSES` of whatever uses them."""
BOLD = Style(bold=True)

Look = Callable[[str], Style]
"""A component class's name to its Rich style (`Looks.look`)."""


class Looks:
    """Mixed into a widget or screen whose class declares `COMPONENT_CLASSES = LOOKS`
    (Textual collects component classes from the widget classes only, not from mixins)."""

    def look(self: Any, name: str) -> Style:
        """The style `app.tcss` gives the component class `name`, alone (not combined
        with the widget's own), to paint a span of Rich text with."""
        return self.get_component_rich_style(name, partial=True)


def glyph(state: StageState) -> str:
    return GLYPHS[state]


def badge(state: StageState, look: Look) -> Text:
    return Text(f"{glyph(state)} {t('state.' + state)}", style=look(f"state--{state}"))


AGENT_LOOKS = {AgentState.NEEDS_INPUT: "agent--needs-input", AgentState.FAILED: "state--stale"}
"""The agent states that look unlike their stage's state (in flight)."""


def stage_badge(state: StageState, agent: AgentState | None, look: Look) -> Text:
    """A stage's badge; for a stage whose agent is seen (`agent`), the agent's state in its
    place, after the stage's glyph (`◐ needs input`): as wide as a state's word."""
    if agent is None:
        return badge(state, look)
    return Text(f"{glyph(state)} {t('agent.short.' + agent)}", style=look(badge_look(state, agent)))


def badge_look(state: StageState, agent: AgentState | None) -> str:
    """The look of a stage's badge: its agent's, where that looks unlike the stage's."""
    return AGENT_LOOKS.get(agent, f"state--{state}") if agent else f"state--{state}"


def age(since: datetime | None, now: datetime) -> str:
    if since is None:
        return ""
    seconds = max(int((now - since).total_seconds()), 0)
    if seconds < 90:
        return t("age.seconds", n=seconds)
    if seconds < 90 * 60:
        return t("age.minutes", n=seconds // 60)
    if seconds < 48 * 3600:
        return t("age.hours", n=seconds // 3600)
    return t("age.days", n=seconds // 86400)
