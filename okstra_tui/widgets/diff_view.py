"""A scrollable, coloured `git diff`: renders only the lines on screen (Line API), so a
diff of tens of thousands of lines scrolls as smoothly as a short one."""

from __future__ import annotations

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from ..states import BOLD, LOOKS, Looks


def _clean(line: str) -> str:
    """Tabs expanded, control characters shown as `?` (they would move the cursor)."""
    line = line.expandtabs(4)
    return line if line.isprintable() else "".join(ch if ch.isprintable() else "?" for ch in line)


class DiffView(Looks, ScrollView, can_focus=True):
    COMPONENT_CLASSES = LOOKS
    DEFAULT_CSS = """
    DiffView {
        background: $surface;
        scrollbar-gutter: stable;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._diff_lines: list[str] = []
        self._line_styles: dict[str, Style] = {}

    def on_mount(self) -> None:
        self._line_styles = {
            "add": self.look("okstra--done"),
            "del": self.look("okstra--stale"),
            "hunk": self.look("okstra--in-flight"),
            "file": self.look("okstra--not-merged") + BOLD,
            "meta": self.look("okstra--blocked"),
            "text": Style(),
        }

    def set_text(self, text: str) -> None:
        self._diff_lines = [_clean(line) for line in text.splitlines()]
        width = max((cell_len(line) for line in self._diff_lines), default=0)
        self.virtual_size = Size(width + 1, len(self._diff_lines))
        self.scroll_to(0, 0, animate=False)
        self.refresh()

    @property
    def line_count(self) -> int:
        return len(self._diff_lines)

    def _kind(self, line: str) -> str:
        if line.startswith("diff --git"):
            return "file"
        meta = ("+++", "---", "index ", "new file", "deleted file", "similarity", "rename ")  # not a UI text
        if line.startswith(meta):
            return "meta"
        if line.startswith("@@"):
            return "hunk"
        if line.startswith("+"):
            return "add"
        if line.startswith("-"):
            return "del"
        return "text"

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        index = y + scroll_y
        width = self.scrollable_content_region.width
        base = self.rich_style
        if index >= len(self._diff_lines):
            return Strip.blank(width, base)
        line = self._diff_lines[index]
        style = base + self._line_styles.get(self._kind(line), Style())
        strip = Strip([Segment(line, style)]).crop(scroll_x, scroll_x + width)
        return strip.extend_cell_length(width, base)
