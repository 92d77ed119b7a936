"""`?`: the keys of the screen underneath with what each does, and its legend."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Static

from ..base import OkstraModal
from ..i18n import t

CHROME = 10
"""The help dialog's lines around its keys: border, padding, title, closing line, and a
line of the screen above and below."""


class HelpScreen(OkstraModal[None]):
    BINDINGS = [
        Binding("escape,question_mark", "close", "bind.close", id="help.close", tooltip="tip.close"),
    ]

    def __init__(self, title: str, keys: list[tuple[str, str, str]], legend: list[tuple[str, Text | str]]) -> None:
        super().__init__()
        self.title_text = title
        self.keys = keys
        self.legend = legend

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog -help"):
            yield Static(self.title_text, classes="dialog-title", markup=False)
            with VerticalScroll(classes="help-body"):
                keys = Table.grid(padding=(0, 2))
                keys.add_column(justify="right", style="bold", no_wrap=True)
                keys.add_column(style="bold", no_wrap=True)
                keys.add_column(style="dim")
                for key, description, tooltip in self.keys:
                    keys.add_row(key, description, tooltip if tooltip != description else "")
                parts: list[object] = [keys]
                if self.legend:
                    # the gap belongs to the label and the column is held to its width: on
                    # a narrow screen rich would otherwise take the gap back first
                    widest = max(Text.assemble(label).cell_len for label, _ in self.legend) + 2
                    legend = Table.grid()
                    legend.add_column(no_wrap=True, min_width=widest)
                    legend.add_column(style="dim")
                    for label, text in self.legend:
                        legend.add_row(Text.assemble(label, "  "), text)
                    parts += [Text("\n" + t("help.legend") + "\n", style="bold"), legend]
                yield Static(Group(*parts), markup=False)
            yield Static(t("help.close"), classes="dialog-keys")

    def on_resize(self) -> None:
        self.query_one(".help-body").styles.max_height = max(self.size.height - CHROME, 3)

    def action_close(self) -> None:
        self.dismiss(None)
