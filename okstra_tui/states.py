"""How a stage state looks: a glyph, a theme colour, a word; and how an age reads."""

from __future__ import annotations

from datetime import datetime

from rich.style import Style
from rich.text import Text

from .i18n import t

# state -> (glyph, theme variable of its colour); the variables are the app's own
# (`OkstraApp.get_theme_variable_defaults`), so a theme may override them, and six
# states get six colours (Textual's dark theme shares one for warning and accent)
LOOK = {
    "done": ("✔", "okstra-done"),
    "not-merged": ("✔", "okstra-not-merged"),
    "in-flight": ("◐", "okstra-in-flight"),
    "stale": ("✖", "okstra-stale"),
    "ready": ("●", "okstra-ready"),
    "blocked": ("○", "okstra-blocked"),
}
COLOURS = {
    "okstra-done": "#4EBF71",
    "okstra-not-merged": "#D7BA7D",
    "okstra-in-flight": "#4FC1FF",
    "okstra-stale": "#F14C4C",
    "okstra-ready": "#FFA62B",
    "okstra-blocked": "#8A8A8A",
}
ORDER = ("done", "not-merged", "in-flight", "stale", "ready", "blocked")


def glyph(state: str) -> str:
    return LOOK[state][0]


def state_style(state: str, variables: dict[str, str]) -> Style:
    colour = variables.get(LOOK[state][1])
    bold = state in ("ready", "stale", "in-flight")
    try:
        return Style(color=colour, bold=bold)
    except Exception:  # noqa: BLE001 - a theme colour rich cannot parse: keep the word, drop the colour
        return Style(bold=bold)


def badge(state: str, variables: dict[str, str]) -> Text:
    return Text(f"{glyph(state)} {t('state.' + state)}", style=state_style(state, variables))


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
