"""The top line of every screen: where in the flow the person is."""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Static

from okstra_engine.shown import shown


class Breadcrumb(Static):
    """`okstra › shop › demo/checkout › implementation`; the last step stands out."""

    def __init__(self, *parts: str, id: str | None = None) -> None:
        super().__init__(id=id)
        self.parts = list(parts)

    def on_mount(self) -> None:
        self.show(*self.parts)

    def show(self, *parts: str) -> None:
        self.parts = list(parts)
        pieces: list[Content | str] = []
        for i, part in enumerate(self.parts):
            if i:
                pieces.append(Content.styled("  ›  ", "$text-muted"))
            last = i == len(self.parts) - 1
            pieces.append(
                Content.styled(shown(part), "bold $text" if last else ("bold $accent" if i == 0 else "$text-muted"))
            )
        self.update(Content.assemble(*pieces))
