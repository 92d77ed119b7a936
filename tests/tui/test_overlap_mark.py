"""The board's stage detail names the stages whose worktrees change the same files."""

from __future__ import annotations

import pytest

from tests.support import commit
from tests.tui.conftest import SIZE
from tests.tui.driving import board_ready, finish_stages
from tests.tui.test_stage_outcomes import _select, _task, text_of

pytestmark = pytest.mark.timeout(60)


async def test_overlapping_stages_are_marked_in_the_detail(make_app, demo) -> None:
    from okstra_engine.prepare import PrepareOptions, prepare
    from okstra_engine.record import record
    from okstra_engine.worktrees import stage_target

    task = _task(demo)
    finish_stages(task, [4])  # done, not merged: its worktree changed sim/stage-4.md
    record(task, 3, "released")
    prepare(task, PrepareOptions("implementation", stage="3"))
    commit(stage_target(task, 3).path, {"sim/stage-4.md": "stage 3 wrote here too\n"}, "in stage 4's file")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        board = await board_ready(pilot)
        assert [o.to_json() for o in board.data.status.overlaps] == [{"stages": [3, 4], "files": ["sim/stage-4.md"]}]
        await _select(pilot, board, 3)
        detail = text_of(board.query_one("#stage-detail-body"))
        assert "Same files as" in detail and "stage 4: sim/stage-4.md" in detail
        await _select(pilot, board, 2)
        assert "Same files as" not in text_of(board.query_one("#stage-detail-body"))
