"""SVG snapshots of each screen on the demo (fixed commits, run ids and clock).

Update them after a deliberate change: `pytest tests/tui/test_snapshots.py --snapshot-update`,
then look at the report of what changed before committing the new SVGs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tui.conftest import SIZE, board_ready, settle

pytestmark = [pytest.mark.timeout(120), pytest.mark.usefixtures("fixed_home")]


@pytest.fixture
def fixed_home(request, monkeypatch):
    """Worktree paths show on screen: keep them the same from run to run."""
    import shutil

    home = Path("/tmp/okstra-snapshots") / request.node.name
    shutil.rmtree(home, ignore_errors=True)
    monkeypatch.setenv("OKSTRA_HOME", str(home))
    yield home
    shutil.rmtree(home, ignore_errors=True)


def test_task_list(snap_compare, make_app) -> None:
    from okstra_tui.screens.tasks import TasksScreen

    async def ready(pilot) -> None:
        await settle(pilot, lambda: isinstance(pilot.app.screen, TasksScreen) and pilot.app.screen.summaries)

    assert snap_compare(make_app(board=False), terminal_size=SIZE, run_before=ready)


def test_phase_picker(snap_compare, make_app) -> None:
    from okstra_tui.screens.phases import PhaseScreen
    from okstra_tui.screens.tasks import TasksScreen

    async def ready(pilot) -> None:
        await settle(pilot, lambda: isinstance(pilot.app.screen, TasksScreen) and pilot.app.screen.summaries)
        await pilot.press("enter")
        await settle(pilot, lambda: isinstance(pilot.app.screen, PhaseScreen) and pilot.app.screen.choices)

    assert snap_compare(make_app(board=False), terminal_size=SIZE, run_before=ready)


def test_board_with_concurrent_stages(snap_compare, make_app) -> None:
    assert snap_compare(make_app(), terminal_size=SIZE, run_before=board_ready)


def test_board_reconcile_suggestion(snap_compare, make_app) -> None:
    """Stage 2 selected: recorded at a commit that was rebased; the panel suggests it."""

    async def ready(pilot) -> None:
        board = await board_ready(pilot)
        board.query_one("#stages").select_stage(2)
        await settle(pilot)

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=ready)


def test_release_dialog(snap_compare, make_app) -> None:
    from okstra_tui.screens.confirm import ConfirmModal

    async def ready(pilot) -> None:
        board = await board_ready(pilot)
        board.query_one("#stages").select_stage(3)
        await pilot.press("x")
        await settle(pilot, lambda: isinstance(pilot.app.screen, ConfirmModal))

    assert snap_compare(make_app(minutes=3 * 24 * 60), terminal_size=SIZE, run_before=ready)


def test_help(snap_compare, make_app) -> None:
    from okstra_tui.screens.help import HelpScreen

    async def ready(pilot) -> None:
        await board_ready(pilot)
        await pilot.press("question_mark")
        await settle(pilot, lambda: isinstance(pilot.app.screen, HelpScreen))

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=ready)


def test_diff(snap_compare, make_app) -> None:
    from okstra_tui.screens.diff import DiffScreen

    async def ready(pilot) -> None:
        board = await board_ready(pilot)
        board.query_one("#stages").select_stage(2)
        await pilot.press("d")
        await settle(pilot, lambda: isinstance(pilot.app.screen, DiffScreen) and pilot.app.screen.query_one("DiffView").line_count)

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=ready)


def test_error_dialog(snap_compare, make_app, tmp_path: Path) -> None:
    from okstra_tui.screens.error import ErrorDialog
    from okstra_tui.screens.tasks import TasksScreen

    missing = tmp_path / "not-a-project"
    missing.mkdir()

    async def ready(pilot) -> None:
        await settle(pilot, lambda: isinstance(pilot.app.screen, TasksScreen) and pilot.app.screen.summaries)
        pilot.app.show_error(__import__("okstra_engine.errors").errors.OkstraError(
            "stage 5 waits for stage 3, which is in flight in run 20250314T091600Z-implementation-s3-302d6f",
            "wait for it, or release it if that run is gone: okstra record demo/checkout --stage 3 --status released",
        ))
        await settle(pilot, lambda: isinstance(pilot.app.screen, ErrorDialog))

    assert snap_compare(make_app(board=False), terminal_size=SIZE, run_before=ready)


def test_board_in_korean(snap_compare, make_app) -> None:
    assert snap_compare(make_app(lang="ko"), terminal_size=SIZE, run_before=board_ready)
