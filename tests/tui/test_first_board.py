"""The board's first read: the screen shows at once in its loading state, a worker fills it."""

from __future__ import annotations

import threading

import pytest

from okstra_engine.errors import OkstraError
from tests.tui.conftest import NOW, SIZE
from tests.tui.driving import Notes, board_ready, settle, text_of

pytestmark = pytest.mark.timeout(60)


async def _board_on_screen(pilot):
    """The board screen, as soon as it is shown (not `settle`: it waits for every worker)."""
    from okstra_tui.screens.board import BoardScreen

    for _ in range(400):
        if isinstance(pilot.app.screen, BoardScreen):
            return pilot.app.screen
        await pilot.pause(0.025)
    raise AssertionError(f"no board screen: {pilot.app.screen!r}")


async def test_the_board_loads_in_view_and_its_keys_wait_for_the_data(make_app, demo, monkeypatch) -> None:
    """Until the first read arrives (held here), the body shows Textual's loading
    indicator and the keys that act on a stage do nothing; then the board is whole."""
    import okstra_tui.screens.board as board_screen
    from okstra_tui.screens.run_options import RunOptionsScreen
    from okstra_tui.widgets.stage_table import StageTable

    gate = threading.Event()
    real = board_screen.load_board

    def held(*args):
        gate.wait(20)
        return real(*args)

    monkeypatch.setattr(board_screen, "load_board", held)
    app, notes = make_app(), Notes()
    async with app.run_test(size=SIZE, message_hook=notes) as pilot:
        board = await _board_on_screen(pilot)
        await pilot.pause()
        assert board.query_one("#body").loading and board.data is None
        assert text_of(board.query_one("#summary")) == "Reading the plan and the ledger…"
        assert board.check_action("choose", ()) is None  # shown in the footer, disabled
        for key in ("enter", "a", "x", "d", "r", "h"):
            await pilot.press(key)
        await pilot.pause()
        assert app.screen is board and notes.texts == []
        gate.set()
        await board_ready(pilot)
        assert not board.query_one("#body").loading and board.check_action("choose", ()) is True
        table = board.query_one(StageTable)
        assert table.row_count == 6 and table.selected_stage == 4
        await pilot.press("enter")
        await settle(pilot, lambda: isinstance(app.screen, RunOptionsScreen) and app.screen.stage == 4)


async def test_a_board_that_cannot_be_read_says_why(make_app, demo) -> None:
    """The engine's error, in place of the board; nothing is loading any more."""
    from pathlib import Path

    from okstra_engine.slugs import TaskRef
    from okstra_tui.app import OkstraApp
    from okstra_tui.model import load_board

    missing = TaskRef.parse("demo/no-such-task")
    with pytest.raises(OkstraError) as engine:
        load_board(Path(demo.project_root), missing, NOW)
    app = OkstraApp(project=Path(demo.project_root), task=missing, lang="en", poll_interval=0.05)
    async with app.run_test(size=SIZE) as pilot:
        board = await _board_on_screen(pilot)
        await settle(pilot, lambda: board.error is not None)
        assert text_of(board.query_one("#summary")) == engine.value.what
        assert not board.query_one("#body").loading and board.data is None
        assert board.check_action("choose", ()) is None
