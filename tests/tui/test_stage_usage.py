"""The board's stage detail: the tokens a stage's runs used (only where there are any), and
the agent's needs-input state within a second of the hook okstra launch gives Claude Code
running `okstra agent-event`."""

from __future__ import annotations

import json
import os
import subprocess
import time
from datetime import UTC, datetime

import pytest

from okstra_engine.agent_events import RUN_DIR_VARIABLE, hook_settings
from okstra_engine.record import record
from okstra_engine.worktrees import stage_target
from okstra_tui.model import load_board
from tests.support import commit, prepared_run
from tests.test_usage import _assistant, _hooked, _transcript, _u
from tests.tui.driving import board_ready, settle, text_of

pytestmark = pytest.mark.timeout(90)

TOKENS = "1,200 in · 34 out · 5,000 cache read · 70 cache write"


def _detail(board) -> str:
    return text_of(board.query_one("#stage-detail-body"))


def _title(board) -> str:
    return str(board.query_one("#stage-detail").border_title)


async def _select(pilot, board, title: str, *keys: str) -> None:
    await pilot.press(*keys)
    await settle(pilot, lambda: title in _title(board))


async def test_the_stage_detail_shows_the_tokens_of_a_stage_that_used_any(task, monkeypatch) -> None:
    from okstra_tui.app import OkstraApp

    monkeypatch.setenv("OKSTRA_LANG", "en")
    one = prepared_run(task, "1")
    record(task, 1, "done", commit=commit(stage_target(task, 1).path, {"schema.py": "x = 1\n"}, "stage 1"))
    _hooked(one, "s-1", _transcript("s-1", [_assistant("m1", _u(1200, 34, 5000, 70))]))
    prepared_run(task, "2")  # in flight, no transcript yet

    data = load_board(task.project.root, task.ref, datetime.now(UTC))
    assert set(data.usage) == {1}  # computed with the board's data, in the worker

    app = OkstraApp(project=task.project.root, task=task.ref, lang="en", poll_interval=0.05)
    async with app.run_test(size=(120, 36)) as pilot:
        board = await board_ready(pilot)
        await _select(pilot, board, "Schema", "up", "up", "up", "up")
        await settle(pilot, lambda: TOKENS in _detail(board))
        assert "Tokens" in _detail(board)
        await _select(pilot, board, "Importer", "down")
        assert "Tokens" not in _detail(board)


async def test_needs_input_within_a_second_of_the_notification_hook(task, monkeypatch) -> None:
    """The hook command launch writes into the agent's settings, run as Claude Code runs it
    (a shell, the hook's JSON on stdin, the run folder in the environment); the board, at
    its own poll interval, shows needs-input within a second."""
    from okstra_tui.app import OkstraApp

    monkeypatch.setenv("OKSTRA_LANG", "en")
    run = prepared_run(task)
    command = hook_settings()["hooks"]["Notification"][0]["hooks"][0]["command"]  # type: ignore[index]

    def hook(event: str, **fields: str) -> None:
        doc = {"session_id": "abcdef1234567890", "hook_event_name": event, "cwd": str(run), **fields}
        env = {**os.environ, RUN_DIR_VARIABLE: str(run)}
        proc = subprocess.run(command, shell=True, input=json.dumps(doc), env=env, capture_output=True, text=True)
        assert proc.returncode == 0 and proc.stdout == "" and proc.stderr == "", proc.stderr

    app = OkstraApp(project=task.project.root, task=task.ref, lang="en")  # the board's own poll interval
    async with app.run_test(size=(120, 36)) as pilot:
        board = await board_ready(pilot)
        await _select(pilot, board, "Schema", "up", "up", "up", "up")
        hook("SessionStart", source="startup")
        await settle(pilot, lambda: "working" in _detail(board) or "starting" in _detail(board))
        hook("Notification", notification_type="permission_prompt", message="Claude needs your permission")
        landed = time.monotonic()
        await settle(pilot, lambda: "needs your input" in _detail(board), timeout=5)
        assert time.monotonic() - landed < 1.0
