"""A checkbox whose box says its value by its shape, not by its colour alone."""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Checkbox


class TickBox(Checkbox):
    """`▐✔▌` ticked, `▐ ▌` not (Textual's checkbox shows `▐X▌` both ways, in two colours
    that a monochrome or colour-blind eye cannot tell apart)."""

    TICKED = "✔"
    UNTICKED = " "

    @property
    def _button(self) -> Content:
        self.BUTTON_INNER = self.TICKED if self.value else self.UNTICKED
        return super()._button
