"""The stage board, driven with Pilot on the demo project."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.tui.conftest import SIZE
from tests.tui.driving import Notes, Seen, board_ready, settle, text_of

pytestmark = pytest.mark.timeout(60)


def _task(demo):
    from okstra_engine.projects import load_project
    from okstra_engine.slugs import TaskRef
    from okstra_engine.tasks import load_task

    return load_task(load_project(Path(demo.project_root)), TaskRef.parse(demo.task))


def _ledger(demo) -> Path:
    from okstra_engine.plans import plan_run_root

    return plan_run_root(_task(demo)).dir / "consumers.jsonl"


def _states(board) -> dict[int, str]:
    return {v.stage: v.state for v in board.data.stages}


async def test_board_shows_the_plan(make_app, demo) -> None:
    from okstra_tui.widgets.reconcile_panel import ReconcilePanel
    from okstra_tui.widgets.stage_table import StageTable

    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        board = await board_ready(pilot)
        assert _states(board) == {1: "done", 2: "not-merged", 3: "in-flight", 4: "ready", 5: "blocked", 6: "blocked"}
        table = board.query_one(StageTable)
        assert table.row_count == 6 and table.selected_stage == 4  # the auto stage is selected
        lanes = board.query_one("LanesView")
        assert lanes.cards[4].auto and lanes.cards[4].selected and lanes.cards[4].state == "ready"
        assert [group for group, _ in lanes.lanes] == ["A", "B", "C"]
        flying = text_of(board.query_one("#in-flight-body"))
        assert "Payment adapter" in flying and "build-box" in flying and "15m" in flying
        panel = board.query_one(ReconcilePanel)
        assert [(s.stage, s.kind) for s in panel.suggestions] == [(2, "patch-equivalent")]
        assert "next: stage 4" in text_of(board.query_one("#summary"))
        await pilot.press("up")
        assert table.selected_stage == 3 and lanes.cards[3].selected and not lanes.cards[4].selected
        assert "build-box" in text_of(board.query_one("#stage-detail-body"))
        await pilot.click("#lanes", offset=(9, 6))  # lane B, its first card: stage 2
        await settle(pilot, lambda: table.selected_stage == 2)
        assert lanes.cards[2].selected


async def test_live_update_without_a_key(make_app, demo) -> None:
    """Another process records stage 3 done: the board shows it by itself, with a note."""
    app, notes = make_app(), Notes()
    async with app.run_test(size=SIZE, message_hook=notes) as pilot:
        board = await board_ready(pilot)
        shown = board.data
        okstra = Path(sys.executable).with_name("okstra")
        subprocess.run(
            [
                str(okstra),
                "--project",
                demo.project_root,
                "record",
                demo.task,
                "--stage",
                "3",
                "--status",
                "done",
                "--commit",
                demo.commits["s3_wip"],
            ],
            check=True,
            capture_output=True,
        )
        await settle(pilot, lambda: board.data is not shown and _states(board)[3] in ("done", "not-merged"))
        # 2 and 3 are done now, but stage 5 starts from the task worktree, where they are
        # not merged: it waits for group B's handoff (prepare would refuse it)
        assert _states(board)[5] == "blocked"
        assert board.data.views[5].reason.to_json() == {"code": "needs-handoff", "stages": [2, 3], "groups": ["B"]}
        assert f"stage 3 done at {demo.commits['s3_wip'][:8]}" in notes.texts
        assert board.query_one("LanesView").cards[3].state in ("done", "not-merged")


async def test_burst_of_appends_is_coalesced(make_app, demo) -> None:
    from okstra_engine.record import record
    from okstra_tui.screens.board import BoardScreen

    loads = Seen(BoardScreen.Loaded)
    app = make_app()
    async with app.run_test(size=SIZE, message_hook=loads) as pilot:
        board = await board_ready(pilot)
        before = len(loads)
        task = _task(demo)
        record(task, 3, "started")
        record(task, 3, "started")
        record(task, 3, "released")
        await settle(pilot, lambda: _states(board)[3] == "ready")
        assert len(loads) - before <= 3


async def test_a_registry_reader_does_not_reload_the_board_a_writer_does(make_app, demo) -> None:
    """A reader of the registry (another `okstra status`, say) creates and removes the
    database's `-wal` file; only a committed write can change the board."""
    import sqlite3
    from contextlib import closing

    from okstra_engine import registry
    from okstra_tui.screens.board import BoardScreen

    loads = Seen(BoardScreen.Loaded)
    wal = registry.registry_path().with_name(registry.DB_NAME + "-wal")
    app = make_app()
    async with app.run_test(size=SIZE, message_hook=loads) as pilot:
        await board_ready(pilot)
        await pilot.pause(0.3)
        before = len(loads)
        with closing(sqlite3.connect(registry.registry_path())) as reader:
            reader.execute("SELECT * FROM anchors").fetchall()
            assert wal.exists()
            await pilot.pause(0.3)  # the board polls every 0.05 s meanwhile
        assert not wal.exists()
        await pilot.pause(0.3)
        assert len(loads) == before
        task = _task(demo)
        registry.fix_anchor(registry.TaskSlot(task.project.id, task.ref.group, task.ref.id), "f" * 40)
        await settle(pilot, lambda: len(loads) > before)


async def _ask_release(pilot, stage: int):
    """`x` on `stage`: the release dialog is up; returns the board under it."""
    from okstra_tui.screens.confirm import ConfirmModal

    board = await board_ready(pilot)
    board.query_one("#stages").select_stage(stage)
    await pilot.press("x")
    await settle(pilot, lambda: isinstance(pilot.app.screen, ConfirmModal))
    return board


async def test_release_a_stale_reservation_approve(make_app, demo) -> None:
    from okstra_engine.ledger import read_ledger

    app, notes = make_app(minutes=3 * 24 * 60), Notes()  # three days on: stage 3's run went silent
    async with app.run_test(size=SIZE, message_hook=notes) as pilot:
        board = await _ask_release(pilot, 3)
        assert _states(board)[3] == "stale"
        assert "Release stage 3" in text_of(app.screen.query_one(".dialog-title"))
        await pilot.press("y")
        await settle(pilot, lambda: app.screen is board and _states(board)[3] == "ready")
        last = read_ledger(_ledger(demo)).rows[-1]
        assert (last.stage, last.status, last.reason) == (3, "released", "manual")
        assert notes.texts.count("Stage 3 released") == 1 and "stage 3 released" not in notes.texts


@pytest.mark.parametrize("how", ["escape", "cancel-button", "enter-on-default"])
async def test_release_dialog_cancel_paths(make_app, demo, how) -> None:
    before = _ledger(demo).read_bytes()
    app = make_app(minutes=3 * 24 * 60)
    async with app.run_test(size=SIZE) as pilot:
        board = await _ask_release(pilot, 3)
        if how == "escape":
            await pilot.press("escape")
        elif how == "cancel-button":
            await pilot.click("#no")
        else:
            await pilot.press("enter")  # the safe button has the focus
        await settle(pilot, lambda: app.screen is board)
        assert _states(board)[3] == "stale"
    assert _ledger(demo).read_bytes() == before


async def test_release_approve_with_the_button(make_app, demo) -> None:
    app = make_app(minutes=3 * 24 * 60)
    async with app.run_test(size=SIZE) as pilot:
        board = await _ask_release(pilot, 3)
        await pilot.click("#yes")
        await settle(pilot, lambda: _states(board)[3] == "ready")


async def test_live_or_free_stages_are_not_released(make_app, demo) -> None:
    from okstra_tui.screens.confirm import ConfirmModal

    before = _ledger(demo).read_bytes()
    app, notes = make_app(), Notes()
    async with app.run_test(size=SIZE, message_hook=notes) as pilot:
        board = await board_ready(pilot)
        board.query_one("#stages").select_stage(3)  # in flight and alive
        await pilot.press("x")
        board.query_one("#stages").select_stage(4)  # nothing to release
        await pilot.press("x")
        await settle(pilot)
        assert not isinstance(app.screen, ConfirmModal)
        messages = " | ".join(notes.texts)
        assert "held by a live run" in messages and "--status released" in messages
        assert "stage 4 has no reservation to release (its latest row is released)" in messages
    assert _ledger(demo).read_bytes() == before


async def test_diff_preview(make_app, demo) -> None:
    from okstra_tui.screens.diff import DiffScreen
    from okstra_tui.widgets.diff_view import DiffView

    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        board = await board_ready(pilot)
        board.query_one("#stages").select_stage(2)
        await pilot.press("d")
        await settle(
            pilot, lambda: isinstance(app.screen, DiffScreen) and app.screen.query_one(DiffView).line_count > 0
        )
        head = text_of(app.screen.query_one("#diff-head"))
        assert demo.commits["s1"][:8] in head and demo.commits["s2_recorded"][:8] in head and "recorded base" in head
        view = app.screen.query_one(DiffView)
        assert any("shop/pricing.py" in line for line in view._diff_lines)
        await pilot.press("escape")
        await settle(pilot, lambda: app.screen is board)
        board.query_one("#stages").select_stage(6)  # nothing committed yet
        await pilot.press("d")
        await settle(
            pilot,
            lambda: isinstance(app.screen, DiffScreen) and "No commit" in text_of(app.screen.query_one("#diff-head")),
        )


async def test_apply_reconcile_suggestion(make_app, demo) -> None:
    from okstra_engine.ledger import read_ledger
    from okstra_tui.screens.confirm import ConfirmModal

    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        board = await board_ready(pilot)
        await pilot.press("r")
        await settle(pilot, lambda: isinstance(app.screen, ConfirmModal))
        await pilot.press("y")
        await settle(pilot, lambda: _states(board)[2] == "done")
        last = read_ledger(_ledger(demo)).rows[-1]
        assert (last.stage, last.head_commit, last.replaces, last.reason) == (
            2,
            demo.commits["s2_rebased"],
            demo.commits["s2_recorded"],
            "auto-patch-id",
        )
        await settle(pilot, lambda: not board.query_one("ReconcilePanel").suggestions)


async def test_choose_auto_and_handoff_open_their_screens(make_app, demo) -> None:
    from okstra_tui.screens.board import BoardScreen
    from okstra_tui.screens.handoff import HandoffScreen
    from okstra_tui.screens.run_options import RunOptionsScreen

    app, notes = make_app(), Notes()
    async with app.run_test(size=SIZE, message_hook=notes) as pilot:
        board = await board_ready(pilot)
        await pilot.press("enter")  # the ready stage 4: its run's options
        await settle(pilot, lambda: isinstance(app.screen, RunOptionsScreen) and app.screen.stage == 4)
        await pilot.press("escape")
        await settle(pilot, lambda: app.screen is board)
        board.query_one("#stages").select_stage(5)
        await pilot.press("enter")  # blocked: says why, stays
        await settle(pilot)
        assert isinstance(app.screen, BoardScreen)
        assert notes.texts[-1].startswith("stage 5 is blocked by stage(s) 3, not done yet\nFix: ")
        await pilot.press("a")  # back to the auto stage, and on to its options
        await settle(pilot, lambda: isinstance(app.screen, RunOptionsScreen) and app.screen.stage == 4)
        assert board.query_one("#stages").selected_stage == 4
        await pilot.press("escape")
        await settle(pilot, lambda: app.screen is board)
        board.query_one("#stages").select_stage(5)
        await pilot.press("h")  # the highlighted stage's group
        await settle(pilot, lambda: isinstance(app.screen, HandoffScreen) and app.screen.busy is None)
        assert app.screen.group == "C" and app.screen.plan.stage_numbers == [5, 6]


async def test_unreadable_plan_shows_on_the_board_and_recovers(make_app, demo) -> None:
    from okstra_engine.plans import plan_run_root

    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        board = await board_ready(pilot)
        shown = board.data
        plan = plan_run_root(_task(demo)).plan_md
        good = plan.read_text()
        plan.write_text(good.replace("| 6     | Order emails    | 4, 5", "| 6     | Order emails    | 9"))
        await settle(pilot, lambda: board.error is not None)
        assert "unknown stage 9" in text_of(board.query_one("#summary"))
        assert board.data is shown  # the last good view stays
        plan.write_text(good)
        await settle(pilot, lambda: board.error is None and board.data is not shown)
