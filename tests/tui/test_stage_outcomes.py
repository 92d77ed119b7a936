"""The board shows how a stage ended when the ledger alone does not tell it: a stage done
with `--empty` (its detail says it changes nothing) and a stage whose branch was rewritten
after done (its reconcile panel lists it, with the branch tip)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import git
from tests.tui.conftest import SIZE
from tests.tui.driving import board_ready, finish_stages, settle, text_of

pytestmark = pytest.mark.timeout(60)


def _task(demo):
    from okstra_engine.projects import load_project
    from okstra_engine.slugs import TaskRef
    from okstra_engine.tasks import load_task

    return load_task(load_project(Path(demo.project_root)), TaskRef.parse(demo.task))


async def _select(pilot, board, stage: int) -> None:
    from okstra_tui.widgets.stage_table import StageTable

    table = board.query_one(StageTable)
    for _ in range(8):
        if table.selected_stage == stage:
            return
        await pilot.press("down" if (table.selected_stage or 0) < stage else "up")
    await settle(pilot, lambda: table.selected_stage == stage)


async def test_an_empty_stage_says_so_in_its_detail(make_app, demo) -> None:
    from okstra_engine.prepare import PrepareOptions, prepare
    from okstra_engine.record import record

    task = _task(demo)
    prepare(task, PrepareOptions("implementation", stage="4"))
    row = record(task, 4, "done", empty=True)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        board = await board_ready(pilot)
        await _select(pilot, board, 4)
        detail = text_of(board.query_one("#stage-detail-body"))
        assert row.head_commit in detail and "changes nothing (recorded done --empty)" in detail
        await _select(pilot, board, 1)
        assert "changes nothing" not in text_of(board.query_one("#stage-detail-body"))


async def test_a_rewritten_stage_is_in_the_reconcile_panel(make_app, demo) -> None:
    from okstra_tui.widgets.reconcile_panel import ReconcilePanel

    task = _task(demo)
    done = finish_stages(task, [4])[4]
    from okstra_engine.worktrees import stage_target

    worktree = stage_target(task, 4).path
    git(worktree, "commit", "-q", "--amend", "-m", "stage 4, reworded after done")
    tip = git(worktree, "rev-parse", "HEAD")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        board = await board_ready(pilot)
        panel = board.query_one(ReconcilePanel)
        assert [(s.stage, s.recorded, s.suggested, s.kind) for s in panel.suggestions if s.stage == 4] == [
            (4, done, tip, "rewritten")
        ]
        listing = panel.query_one("#reconcile-list")
        shown = [str(listing.get_option_at_index(i).prompt) for i in range(listing.option_count)]
        assert any(f"{tip[:8]}" in text and "its branch was rewritten after done" in text for text in shown)
