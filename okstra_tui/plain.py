"""Text a person or an agent wrote (titles, groups, paths, commit messages), for widgets
that would read a `str` as Textual markup: as plain content, its control characters
shown as escapes (`okstra_engine.shown`)."""

from __future__ import annotations

from textual.content import Content

from okstra_engine.shown import shown


def plain(text: str) -> Content:
    return Content(shown(text))
