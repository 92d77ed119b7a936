"""The first board, read by a child process while the UI starts (`okstra_tui.first_board`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import pytest

from okstra_engine.errors import OkstraError
from okstra_engine.slugs import TaskRef
from okstra_tui.first_board import FirstBoard, read_first_board
from okstra_tui.model import load_board
from tests.tui.conftest import NOW, SIZE
from tests.tui.driving import settle

pytestmark = pytest.mark.timeout(60)
LATER = NOW + timedelta(minutes=1)


def _where(demo) -> tuple[Path, TaskRef]:
    return Path(demo.project_root), TaskRef.parse(demo.task)


def test_the_child_reads_what_the_engine_reads(demo) -> None:
    root, ref = _where(demo)
    board = read_first_board(root, ref, now=LATER).result()
    assert board.task is None and board.rows == []  # plain data: no pydantic model in it
    assert board == load_board(root, ref, LATER).plain()
    assert {v.stage: v.state for v in board.stages} == {
        1: "done",
        2: "not-merged",
        3: "in-flight",
        4: "ready",
        5: "blocked",
        6: "blocked",
    }
    assert board.auto_stage == 4 and board.branches[4].endswith("-s4")


READER = """
import json, sys
from datetime import datetime
from pathlib import Path
from okstra_engine.slugs import TaskRef
from okstra_tui.first_board import read_first_board

board = read_first_board(Path(sys.argv[1]), TaskRef.parse(sys.argv[2]), now=datetime.fromisoformat(sys.argv[3])).result()
print(json.dumps({
    "states": {v.stage: v.state for v in board.stages},
    "title": board.title,
    "loaded": sorted(m for m in ("pydantic", "okstra_engine.status", "okstra_engine.ledger", "textual") if m in sys.modules),
}))
"""


def test_the_ui_process_gets_the_board_without_loading_the_engine(demo) -> None:
    """What `okstra --task` does before Textual: the parent only unpickles plain data, and
    the child writes nothing to the terminal."""
    root, ref = _where(demo)
    proc = subprocess.run(
        [sys.executable, "-c", READER, str(root), str(ref), LATER.isoformat()],
        capture_output=True,
        text=True,
        env=os.environ,
        timeout=60,
    )
    assert proc.returncode == 0 and proc.stderr == ""
    doc = json.loads(proc.stdout)  # one document: nothing else reached stdout
    assert doc["loaded"] == []
    want = load_board(root, ref, LATER)
    assert doc["states"] == {str(v.stage): v.state for v in want.stages}
    assert doc["title"] == want.title


def test_an_unreadable_board_raises_the_engines_error(demo) -> None:
    root, _ = _where(demo)
    missing = TaskRef.parse("demo/no-such-task")
    with pytest.raises(OkstraError) as engine:
        load_board(root, missing, LATER)
    with pytest.raises(OkstraError) as child:
        read_first_board(root, missing, now=LATER).result()
    assert (child.value.what, child.value.how) == (engine.value.what, engine.value.how)


def test_a_child_that_sent_nothing_means_reading_here(demo) -> None:
    root, ref = _where(demo)
    first = FirstBoard(root, ref, LATER, lambda: None)
    assert not first.ready()
    board = first.result()
    assert board.task is not None and board.stages == load_board(root, ref, LATER).stages


def test_without_fork_the_board_is_read_in_a_thread(demo, monkeypatch) -> None:
    root, ref = _where(demo)
    monkeypatch.delattr(os, "fork")
    board = read_first_board(root, ref, now=LATER).result()
    assert board == load_board(root, ref, LATER).plain()


def test_a_process_running_threads_does_not_fork(demo, monkeypatch) -> None:
    """A fork copies only the calling thread; a lock another one holds would never be
    released in the child."""
    root, ref = _where(demo)

    def no_fork():
        raise AssertionError("forked while another thread ran")

    monkeypatch.setattr(os, "fork", no_fork)
    stop = threading.Event()
    other = threading.Thread(target=stop.wait, daemon=True)
    other.start()
    try:
        board = read_first_board(root, ref, now=LATER).result()
    finally:
        stop.set()
    assert board == load_board(root, ref, LATER).plain()


async def test_a_key_pressed_before_the_engine_loaded_acts_once_it_has(make_app, demo, monkeypatch) -> None:
    """The first frame comes from the child; `enter` on the ready stage waits for the
    board's first full read (held here until the key is in), then opens the run."""
    import okstra_tui.screens.board as board_screen
    from okstra_tui.screens.board import BoardScreen
    from okstra_tui.screens.run_options import RunOptionsScreen
    from okstra_tui.widgets.stage_table import StageTable

    gate = threading.Event()
    real = board_screen.load_board

    def held(*args):
        gate.wait(20)
        return real(*args)

    monkeypatch.setattr(board_screen, "load_board", held)
    root, ref = _where(demo)
    app = make_app(first_board=read_first_board(root, ref, now=LATER))
    async with app.run_test(size=SIZE) as pilot:
        for _ in range(400):  # not `settle`: it waits for every worker, the held read too
            if isinstance(app.screen, BoardScreen) and app.screen.loads == 1:
                break
            await pilot.pause(0.025)
        board = app.screen
        assert board.data.task is None and board.query_one(StageTable).selected_stage == 4
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is board  # the run needs the engine's task: not yet
        gate.set()
        await settle(pilot, lambda: isinstance(app.screen, RunOptionsScreen) and app.screen.stage == 4)
        assert board.data.task is not None and board.loads == 2
