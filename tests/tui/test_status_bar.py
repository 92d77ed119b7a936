"""The status bar under the preview and handoff screens."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.widgets import Button, LoadingIndicator

from okstra_tui.widgets.status_bar import StatusBar
from tests.tui.driving import settle, text_of


class _Host(App[None]):
    def compose(self) -> ComposeResult:
        yield StatusBar(Button("go", id="go"))


async def test_steps_show_under_the_work_until_it_is_over() -> None:
    app = _Host()
    async with app.run_test() as pilot:
        bar = app.query_one(StatusBar)
        spinner, text = bar.query_one(LoadingIndicator), bar.query_one("#status-text")
        assert bar.query_one("#go", Button)
        bar.show("ready")
        assert not spinner.display and text_of(text) == "ready"
        bar.show("merging group A", working=True)
        assert spinner.display
        bar.report("merging stage 2")
        await settle(pilot, lambda: text_of(text) == "merging group A\nmerging stage 2")
        bar.report("merging stage 3")  # the latest step replaces the one before
        await settle(pilot, lambda: text_of(text) == "merging group A\nmerging stage 3")
        bar.show("done")
        bar.report("a step that arrives late")
        await pilot.pause()
        assert text_of(text) == "done" and not spinner.display
