"""The Stage Map as a table: one row per stage, the cursor is the selected stage. A stage
in flight whose agent is seen says what the agent does in its state cell (`◐ working`)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from rich.text import Text
from textual.widgets import DataTable
from textual.widgets.data_table import RowDoesNotExist

from okstra_engine.shown import shown

from ..i18n import t
from ..model import BoardData, short
from ..states import LOOKS, Looks, age, stage_badge

COLUMNS = ("no", "title", "deps", "group", "state", "commit", "where")
TITLE_WIDTH = 24


class StageTable(Looks, DataTable[Text]):
    """Rows keyed by stage number; `show` keeps the cursor on the same stage."""

    COMPONENT_CLASSES = LOOKS

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=False, cursor_foreground_priority="renderable")
        self._shown: list[tuple[Text, ...]] = []

    def on_mount(self) -> None:
        for key in COLUMNS:
            self.add_column(Text(t(f"board.col.{key}"), style="bold"), key=key)

    def width_through(self, key: str) -> int:
        """The width the table needs to show its columns up to `key`'s whole: its border,
        those columns, and room for a vertical scrollbar."""
        # measured here: the table sizes its columns only when it is next idle
        columns = 0
        for index, column in enumerate(self.ordered_columns):
            cells = [row[index].cell_len for row in self._shown]
            columns += max([column.label.cell_len, *cells]) + 2 * self.cell_padding
            if column.key.value == key:
                break
        return self.styles.gutter.width + columns + self.styles.scrollbar_size_vertical

    @property
    def selected_stage(self) -> int | None:
        if not self.row_count:
            return None
        row_key, _ = self.coordinate_to_cell_key(self.cursor_coordinate)
        return int(row_key.value) if row_key.value is not None else None

    def select_stage(self, stage: int) -> None:
        try:
            index = self.get_row_index(str(stage))
        except RowDoesNotExist:
            return
        self.move_cursor(row=index)

    def show(self, data: BoardData, now: datetime, *, keep: int | None) -> None:
        auto = data.auto_stage
        muted = self.look("okstra--blocked")
        self.clear()
        self._shown = []
        for view in data.stages:
            n = view.stage
            marker = Text("▶ ", style=self.look("state--ready")) if n == auto else Text("  ")
            title = view.title if len(view.title) <= TITLE_WIDTH else view.title[: TITLE_WIDTH - 1] + "…"
            if view.is_flying:
                # a managed terminal is on this machine: where to find it says more than the host
                host = "tmux" if data.terminal(n) else data.hosts.get(n)
                where = Text(" · ".join(p for p in (host, age(view.since, now)) if p))
            elif view.stage in data.worktrees:
                where = Text(Path(data.worktrees[n]).name, style=muted)
            else:
                where = Text("—", style=muted)
            cells = (
                marker + Text(str(n), style="bold"),
                Text(title),
                Text(", ".join(map(str, view.depends_on)) or "—", style=muted if not view.depends_on else ""),
                Text(shown(view.group)),
                stage_badge(view.state, data.agents.get(n), self.look),
                Text(short(view.done_commit) or "—", style="" if view.done_commit else muted),
                where,
            )
            self._shown.append(cells)
            self.add_row(*cells, key=str(n))
        target = keep if keep in data.views else auto
        if target is not None:
            self.select_stage(target)
