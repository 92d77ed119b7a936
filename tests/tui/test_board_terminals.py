"""The board starts each stage's agent in a managed terminal and stays: real tmux on a
private server per test (`tests/conftest.py`), agents that wait until stopped or the
simulated lead."""

from __future__ import annotations

import shutil
import sys

import pytest

from okstra_engine import tmux
from tests.support import set_agent_command
from tests.tui.driving import board_ready, finish_stages, settle

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]

SIZE = (120, 36)


def _app(task):
    from okstra_tui.app import OkstraApp

    return OkstraApp(project=task.project.root, task=task.ref, lang="en", poll_interval=0.05)


async def _start_from_the_board(pilot, stage: int) -> None:
    """Choose `stage` on the board, and confirm its run: options, preview, enter."""
    from okstra_tui.screens.board import BoardScreen
    from okstra_tui.screens.preview import PreviewScreen
    from okstra_tui.screens.run_options import RunOptionsScreen

    app = pilot.app
    app.screen.query_one("#stages").select_stage(stage)
    await pilot.press("enter")
    await settle(pilot, lambda: isinstance(app.screen, RunOptionsScreen) and app.screen.context is not None)
    await pilot.press("ctrl+n")
    await settle(pilot, lambda: isinstance(app.screen, PreviewScreen) and app.screen.busy is None)
    await pilot.press("enter")
    await settle(
        pilot,
        lambda: isinstance(app.screen, BoardScreen) and app.screen.data.terminal(stage) is not None,
        timeout=30,
    )


async def _until(pilot, check, timeout: float = 120.0) -> None:
    """Wait for `check()` while the board reloads many times (`settle` waits for every
    worker, and the reloads keep replacing some)."""
    import asyncio

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        assert loop.time() < deadline, "the board did not get there in time"
        await pilot.pause(0.1)


def _where(board, stage: int) -> str:
    return board.query_one("#stages").get_row(str(stage))[6].plain


async def test_two_stages_started_from_the_board_run_at_once_and_a_new_board_finds_them(task, monkeypatch) -> None:
    from okstra_tui.screens.board import BoardScreen

    monkeypatch.setenv("OKSTRA_LANG", "en")
    finish_stages(task, [1])
    set_agent_command([sys.executable, "-c", "import time; time.sleep(120)", "{prompt_file}"])
    app = _app(task)
    async with app.run_test(size=SIZE) as pilot:
        board = await board_ready(pilot)
        await _start_from_the_board(pilot, 2)
        await _start_from_the_board(pilot, 3)
        assert isinstance(app.screen, BoardScreen) and app.return_value is None  # the board stayed
        live = tmux.list_sessions()
        sessions = {n: board.data.terminal(n) for n in (2, 3)}
        assert {s.session for s in sessions.values()} <= set(live)
        assert all(live[s.session].pid == s.pid for s in sessions.values())
        await settle(pilot, lambda: all(_where(board, n).startswith("tmux") for n in (2, 3)))
        # the agents' processes are here and alive: what they do is seen, not guessed
        await settle(pilot, lambda: {board.data.agents.get(n) for n in (2, 3)} == {"working"})
        assert board.query_one("#stages").get_row("2")[4].plain == "◐ working"

    # okstra quit; the agents did not
    assert {s.session for s in sessions.values()} <= set(tmux.list_sessions())
    again = _app(task)
    async with again.run_test(size=SIZE) as pilot:
        board = await board_ready(pilot)
        found = {n: board.data.terminal(n) for n in (2, 3)}
        assert all(found[n] is not None and found[n].session == sessions[n].session for n in (2, 3))
        assert [_where(board, n)[:4] for n in (2, 3)] == ["tmux", "tmux"]
        assert board.data.views[2].state == "in-flight" and board.data.views[3].state == "in-flight"


async def test_attach_without_a_terminal_to_hand_over_says_the_command(task, monkeypatch) -> None:
    from okstra_engine.managed import start_stage

    monkeypatch.setenv("OKSTRA_LANG", "en")
    set_agent_command([sys.executable, "-c", "import time; time.sleep(120)", "{prompt_file}"])
    started = start_stage(task, 1)
    from tests.tui.driving import Notes

    notes = Notes()
    app = _app(task)
    async with app.run_test(size=SIZE, message_hook=notes) as pilot:
        board = await board_ready(pilot)
        board.query_one("#stages").select_stage(2)
        await pilot.press("t")
        await settle(pilot, lambda: any("no agent in a tmux session" in text for text in notes.texts))
        board.query_one("#stages").select_stage(1)
        await pilot.press("t")  # Pilot's terminal cannot be handed over: the command to run instead
        await settle(pilot, lambda: any("attach from a shell" in text for text in notes.texts))
        said = next(text for text in notes.texts if "attach from a shell" in text)
        assert f"attach-session -t ={started.session}" in said and "-L okstra-test-" in said


async def test_autopilot_runs_the_task_from_the_board_until_a_handoff_is_needed(task, monkeypatch) -> None:
    """Stage 1, then 2 and 3 at once; 4 needs 2 and 3 handed off, which autopilot leaves
    to the person."""
    from okstra_engine.status import task_status

    monkeypatch.setenv("OKSTRA_LANG", "en")
    set_agent_command([sys.executable, "-m", "okstra_engine.sim_lead", "{run_dir}"])
    app = _app(task)
    most = 0

    def done() -> bool:
        nonlocal most
        most = max(most, len(tmux.list_sessions()))
        views = task_status(task).stages
        return [v.is_done for v in views] == [True, True, True, False] and views[3].reason.code == "needs-handoff"

    async with app.run_test(size=SIZE) as pilot:
        board = await board_ready(pilot)
        await pilot.press("p")
        assert board.autopilot
        await _until(pilot, done)
        await _until(pilot, lambda: "3/4 done" in str(board.query_one("#summary").content))
        assert app.return_value is None
    assert most <= 2  # two agents at a time, at most


def test_attach_and_detach_come_back_to_the_board_in_a_terminal(task, tmp_path) -> None:
    """The real app in a pty: `t` hands the terminal to the agent's tmux session, tmux's
    C-b d gives it back to the board, which is drawn again and still answers keys."""
    import os
    import pty
    import select
    import subprocess
    import time

    from okstra_engine.managed import start_stage

    set_agent_command([sys.executable, "-c", "import time; time.sleep(120)", "{prompt_file}"])
    started = start_stage(task, 1)  # nothing else is ready: the board's cursor is on stage 1
    okstra = str(__import__("pathlib").Path(sys.executable).with_name("okstra"))
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "36", "OKSTRA_LANG": "en"}
    main, child = pty.openpty()
    __import__("fcntl").ioctl(child, __import__("termios").TIOCSWINSZ, b"\x24\x00\x78\x00\x00\x00\x00\x00")
    proc = subprocess.Popen(
        [okstra, "--project", str(task.project.root), "--task", str(task.ref)],
        stdin=child,
        stdout=child,
        stderr=child,
        env=env,
        start_new_session=True,
    )
    os.close(child)
    seen = b""

    def until(text: bytes, timeout: float = 60.0) -> None:
        nonlocal seen
        deadline = time.monotonic() + timeout
        while text not in seen:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise AssertionError(f"never saw {text!r}; the last screen: {seen[-2000:]!r}")
            ready, _, _ = select.select([main], [], [], 0.2)
            if ready:
                try:
                    seen += os.read(main, 65536)
                except OSError:
                    break

    try:
        until(b"Schema")  # the board, with stage 1
        until(b"tmux")  # its where cell: the agent's managed terminal
        seen = b""
        os.write(main, b"t")
        until(b"[" + started.session[:8].encode())  # tmux's status line: the agent's session
        seen = b""
        time.sleep(1)  # tmux asks the terminal what it is first: keys meanwhile may be taken as its answer
        os.write(main, b"\x02")  # C-b d
        time.sleep(0.3)
        os.write(main, b"d")
        until(b"detached")
        until(b"Schema")  # the board again
        time.sleep(0.5)
        seen = b""
        os.write(main, b"?")
        until(b"What the colours mean")  # and it answers keys
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(main)
    assert started.session in tmux.list_sessions()  # the agent runs on
