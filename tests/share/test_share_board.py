"""The board of a shared task syncs on its own, in a worker, and shows the stages other
machines took."""

from __future__ import annotations

import pytest

from tests.share.machines import TASK
from tests.tui.driving import board_ready, settle, text_of

pytestmark = pytest.mark.timeout(120)


def board_of(machine, monkeypatch: pytest.MonkeyPatch):
    """The app on the machine's board of the shared task, syncing every 0.2 s."""
    from okstra_engine.config import settings
    from okstra_engine.share import sync
    from okstra_engine.slugs import TaskRef
    from okstra_tui.app import OkstraApp
    from okstra_tui.screens import board as board_screen

    monkeypatch.setenv("OKSTRA_HOME", str(machine.home))
    monkeypatch.setenv("OKSTRA_LANG", "en")
    settings.cache_clear()
    monkeypatch.setattr(board_screen, "SHARE_SYNC_S", 0.2)
    monkeypatch.setattr(sync, "AUTO_EVERY_S", 0.0)
    monkeypatch.setattr(sync, "AUTO_RETRY_S", 0.0)
    return OkstraApp(project=machine.clone, task=TaskRef.parse(TASK), lang="en", poll_interval=0.05)


async def test_the_board_shows_a_stage_another_machine_took(pair, monkeypatch: pytest.MonkeyPatch) -> None:
    _, (a, b) = pair
    app = board_of(b, monkeypatch)
    async with app.run_test(size=(120, 36)) as pilot:
        board = await board_ready(pilot)
        assert [v.state for v in board.data.stages] == ["ready", "ready", "blocked"]
        run = a.json("prepare", TASK, "--type", "implementation")  # on the other machine
        await settle(pilot, lambda: board.data.stages[0].state == "in-flight", timeout=30)
        assert board.data.stages[0].run_id == run["run_id"]
        flying = text_of(board.query_one("#in-flight-body"))
        assert "S1" in flying


async def test_the_board_says_when_its_remote_does_not_answer(pair, monkeypatch: pytest.MonkeyPatch) -> None:
    remote, (_, b) = pair
    app = board_of(b, monkeypatch)
    async with app.run_test(size=(120, 36)) as pilot:
        board = await board_ready(pilot)
        assert "not synced" not in text_of(board.query_one("#summary"))
        remote.rename(remote.with_name("gone.git"))  # the remote stops answering
        await settle(pilot, lambda: "not synced with origin" in text_of(board.query_one("#summary")), timeout=30)
        assert [v.state for v in board.data.stages] == ["ready", "ready", "blocked"]  # it works on
