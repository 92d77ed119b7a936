"""The board's stage detail says what a stage's agent is doing, from the agent's own hooks,
and says nothing where it cannot know."""

from __future__ import annotations

import json

import pytest

from okstra_engine.agent_events import EVENTS_NAME
from tests.support import prepared_run
from tests.tui.driving import board_ready, settle, text_of

pytestmark = pytest.mark.timeout(90)


def _detail(board) -> str:
    return text_of(board.query_one("#stage-detail-body"))


def _hook(run, event: str, **fields: str) -> None:
    row = {"ts": "2026-11-29T12:00:00Z", "event": event, "session_id": "abcdef1234567890", **fields}
    with (run / EVENTS_NAME).open("a") as handle:
        handle.write(json.dumps(row) + "\n")


async def test_needs_input_shows_on_the_board_as_the_hook_lands(task, monkeypatch) -> None:
    from okstra_tui.app import OkstraApp

    monkeypatch.setenv("OKSTRA_LANG", "en")
    run = prepared_run(task)
    app = OkstraApp(project=task.project.root, task=task.ref, lang="en", poll_interval=0.05)
    async with app.run_test(size=(120, 36)) as pilot:
        board = await board_ready(pilot)
        await settle(
            pilot,
            lambda: (
                "Payment" in _detail(board) or "Stage 1" in str(board.query_one("#stage-detail").border_title) or True
            ),
        )
        await pilot.press("up", "up", "up", "up")  # stage 1, in flight
        await settle(pilot, lambda: "Schema" in str(board.query_one("#stage-detail").border_title))
        assert "Agent" not in _detail(board)  # no hook yet, no pid here: nothing to say
        _hook(run, "SessionStart", source="startup")
        _hook(run, "Notification", notification_type="permission_prompt")
        await settle(pilot, lambda: "needs your input" in _detail(board))
        assert "session abcdef12" in _detail(board)
        _hook(run, "Stop")
        await settle(pilot, lambda: "idle, waiting for a prompt" in _detail(board))
