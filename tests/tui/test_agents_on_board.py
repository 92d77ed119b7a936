"""What every agent is doing, on the board's stage table, lanes and summary, as its hooks
land; and the person called back (bell, OSC 9, notify-send) once per transition that
asks for them: an agent needs input, an agent finished its turn."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from okstra_engine.agent_events import RUN_DIR_VARIABLE
from tests.support import fake_program, prepared_run, write_settings
from tests.tui.driving import Notes, Seen, board_ready, settle, text_of

pytestmark = pytest.mark.timeout(120)

OKSTRA = str(Path(sys.executable).with_name("okstra"))


def _hook(run: Path, event: str, **fields: str) -> None:
    """What an agent's hook does: `okstra agent-event` with the hook's JSON on stdin."""
    payload = {"hook_event_name": event, "session_id": "lead-session", **fields}
    env = {**os.environ, RUN_DIR_VARIABLE: str(run)}
    done = subprocess.run([OKSTRA, "agent-event"], input=json.dumps(payload).encode(), env=env, timeout=30)
    assert done.returncode == 0


def _state_cell(board, stage: int) -> str:
    return board.query_one("#stages").get_row(str(stage))[4].plain


def _card_note(board, stage: int) -> str:
    return text_of(board.query_one("#lanes")._widgets[stage])


async def _reloaded(pilot, board) -> None:
    """Wait for the board to read its files once more."""
    before = board.data
    await settle(pilot, lambda: board.data is not before)


async def test_the_agents_state_shows_in_the_table_the_lanes_and_the_summary(task, monkeypatch) -> None:
    from okstra_tui.app import OkstraApp

    monkeypatch.setenv("OKSTRA_LANG", "en")
    run = prepared_run(task)
    app = OkstraApp(project=task.project.root, task=task.ref, lang="en", poll_interval=0.05)
    async with app.run_test(size=(120, 36)) as pilot:
        board = await board_ready(pilot)
        # no hook yet and no pid here: the ledger's guess says nothing of the agent
        assert _state_cell(board, 1) == "◐ in flight"
        _hook(run, "SessionStart", source="startup")
        _hook(run, "UserPromptSubmit")
        await settle(pilot, lambda: _state_cell(board, 1) == "◐ working")
        assert "working" in _card_note(board, 1)
        assert "needs input" not in text_of(board.query_one("#summary"))

        _hook(run, "Notification", notification_type="permission_prompt")
        await settle(pilot, lambda: _state_cell(board, 1) == "◐ needs input")
        table = board.query_one("#stages")
        assert table.get_row("1")[4].style == table.look("agent--needs-input")
        assert table.look("agent--needs-input").color != table.look("state--in-flight").color
        assert "needs input" in _card_note(board, 1)
        assert "1 needs input" in text_of(board.query_one("#summary"))

        _hook(run, "PostToolUse")  # the person granted it: the agent works again
        await settle(pilot, lambda: _state_cell(board, 1) == "◐ working")
        assert "needs input" not in text_of(board.query_one("#summary"))


async def test_needs_input_calls_the_person_back_once(task, monkeypatch, tmp_path: Path) -> None:
    from okstra_tui.app import OkstraApp

    monkeypatch.setenv("OKSTRA_LANG", "en")
    fake_program(tmp_path / "bin", "notify-send", prints="")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    run = prepared_run(task)
    alerts, notes = Seen(OkstraApp.Alerted), Notes()
    app = OkstraApp(project=task.project.root, task=task.ref, lang="en", poll_interval=0.05)

    def hook(message) -> None:
        alerts(message)
        notes(message)

    async with app.run_test(size=(120, 36), message_hook=hook) as pilot:
        board = await board_ready(pilot)
        _hook(run, "SessionStart", source="startup")
        _hook(run, "UserPromptSubmit")
        await settle(pilot, lambda: _state_cell(board, 1) == "◐ working")
        assert not alerts  # starting, then working: nothing to call anybody back for

        _hook(run, "PermissionRequest")
        await settle(pilot, lambda: len(alerts) == 1)
        alert = alerts.messages[0]
        assert alert.text == "stage 1: its agent needs your input"
        assert alert.channels == ("bell", "osc9", "notify-send")
        assert "stage 1: its agent needs your input" in notes.texts

        for _ in range(2):  # still waiting: the next reads change nothing
            _hook(run, "Notification", notification_type="permission_prompt")
            await _reloaded(pilot, board)
        assert len(alerts) == 1 and notes.texts.count("stage 1: its agent needs your input") == 1

        _hook(run, "PostToolUse")
        _hook(run, "Stop")  # the turn is over: the agent waits for a prompt
        await settle(pilot, lambda: len(alerts) == 2)
        assert alerts.messages[1].text == "stage 1: its agent finished its turn"

        await pilot.press("n")  # off for this session
        await settle(pilot, lambda: "notifications off" in text_of(board.query_one("#summary")))
        _hook(run, "UserPromptSubmit")
        _hook(run, "PermissionRequest")
        await settle(pilot, lambda: notes.texts.count("stage 1: its agent needs your input") == 2)
        assert len(alerts) == 2  # said on the board, nobody called back

        await pilot.press("n")
        assert "notifications on: bell, osc9, notify-send" in notes.texts


async def test_the_settings_choose_the_channels(task, monkeypatch) -> None:
    from okstra_tui.app import OkstraApp

    monkeypatch.setenv("OKSTRA_LANG", "en")
    write_settings(notify="osc9, bell")
    run = prepared_run(task)
    alerts = Seen(OkstraApp.Alerted)
    app = OkstraApp(project=task.project.root, task=task.ref, lang="en", poll_interval=0.05)
    async with app.run_test(size=(120, 36), message_hook=alerts) as pilot:
        board = await board_ready(pilot)
        _hook(run, "SessionStart", source="startup")
        _hook(run, "PermissionRequest")
        await settle(pilot, lambda: len(alerts) == 1)
        assert alerts.messages[0].channels == ("osc9", "bell")
        write_settings(notify="off")
        _hook(run, "PostToolUse")
        await settle(pilot, lambda: _state_cell(board, 1) == "◐ working")
        _hook(run, "PermissionRequest")
        await settle(pilot, lambda: _state_cell(board, 1) == "◐ needs input")
        assert len(alerts) == 1
        await pilot.press("n")  # on, over settings that say off: the default channels
        assert app.alert_channels == ("bell", "osc9", "notify-send")


def test_a_bad_notify_setting_is_refused_with_its_name(task, capsys) -> None:
    from tests.support import call

    write_settings(notify="bell,beep")
    code, _, err = call(capsys, "status", str(task.ref), "--project", str(task.project.root))
    assert code == 2
    assert "notify" in err and "beep" in err and "osc9" in err


def test_osc9_reaches_the_terminal_through_tmux_too() -> None:
    from okstra_tui.alerts import osc9

    assert osc9("stage 2: its agent\x07 needs your input", in_tmux=False) == (
        "\x1b]9;okstra: stage 2: its agent needs your input\x07"
    )
    assert osc9("done", in_tmux=True) == "\x1bPtmux;\x1b\x1b]9;okstra: done\x07\x1b\\"
