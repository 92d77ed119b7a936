"""SVG snapshots of each screen on the demo (fixed commits, run ids and clock).

Update them after a deliberate change: `pytest tests/tui/test_snapshots.py --snapshot-update`,
then look at the report of what changed before committing the new SVGs.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from tests.tui.conftest import SIZE
from tests.tui.driving import board_ready, settle

pytestmark = [pytest.mark.timeout(120), pytest.mark.usefixtures("okstra_home")]

SHOWN = Path("/tmp/okstra-snapshots")
"""Where the screenshots say the test's files are."""


async def focused(pilot) -> None:
    """Wait until the screen has its focus, then have the footer show the keys in the
    order that focus gives them: a headless app without the terminal's focus does not
    recompose its footer when the focus moves, so its order would be that of whichever
    came first, the focus or the footer's first look."""
    from textual.widgets import Footer

    await settle(pilot, lambda: pilot.app.screen.focused is not None)
    footer = pilot.app.screen.query_one(Footer)
    footer.call_next(footer.recompose)
    await settle(pilot)


@pytest.fixture
def where():
    """A fresh folder for the test's files whose path is as long as `SHOWN`'s (`/tmp/`,
    `okstra-s` and eight random characters), removed afterwards. Paths show on screen,
    cut and wrapped by their length: the screens are laid out as in `SHOWN`, and
    `make_app`'s screenshots say `SHOWN` in its place. (pytest's `tmp_path` is longer,
    and of varying length.)"""
    base = Path(tempfile.mkdtemp(prefix="okstra-s", dir="/tmp"))
    assert len(str(base)) == len(str(SHOWN))
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def make_app(make_app, where: Path):
    def make(**kwargs):
        app = make_app(**kwargs)
        export = app.export_screenshot

        def export_screenshot(*args, **options) -> str:
            return export(*args, **options).replace(str(where), str(SHOWN))

        app.export_screenshot = export_screenshot
        return app

    return make


@pytest.fixture
def okstra_home(request, where: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Worktree paths show on screen: okstra's home is in `where`, named after the test."""
    home = where / request.node.name
    monkeypatch.setenv("OKSTRA_HOME", str(home))
    return home


@pytest.fixture
def demo(okstra_home: Path, monkeypatch: pytest.MonkeyPatch):
    """The demo in a fixed place with fixed run ids and trash stamps: the run screens show
    project paths, run ids (in the prompt) and where a team would move."""

    from okstra_engine import clock
    from okstra_engine.demo import build_demo
    from tests.tui.conftest import NOW, use_demo

    place = okstra_home.with_name(okstra_home.name + ".demo")
    with clock.pinned(stamps=NOW, token="5a0b1c"):
        yield use_demo(build_demo(place, now=NOW, okstra_home=okstra_home), place, monkeypatch)


@pytest.fixture
def fixed_git_dates(monkeypatch: pytest.MonkeyPatch) -> None:
    """Commits okstra and the simulated lead make get fixed dates and identities, so their
    SHAs (shown by the handoff) are the same from run to run."""
    import okstra_engine.git
    from tests.tui.conftest import NOW

    plain = okstra_engine.git.git_env
    stamp = f"@{int(NOW.timestamp())} +0000"

    def env() -> dict[str, str]:
        return {
            **plain(),
            "GIT_AUTHOR_DATE": stamp,
            "GIT_COMMITTER_DATE": stamp,
            "GIT_CONFIG_GLOBAL": "/dev/null",
            "GIT_CONFIG_NOSYSTEM": "1",
        }

    monkeypatch.setattr(okstra_engine.git, "git_env", env)


def test_task_list(snap_compare, make_app) -> None:
    from okstra_tui.screens.tasks import TasksScreen

    async def ready(pilot) -> None:
        await settle(pilot, lambda: isinstance(pilot.app.screen, TasksScreen) and pilot.app.screen.summaries)
        await focused(pilot)

    assert snap_compare(make_app(board=False), terminal_size=SIZE, run_before=ready)


def test_phase_picker(snap_compare, make_app) -> None:
    from okstra_tui.screens.phases import PhaseScreen
    from okstra_tui.screens.tasks import TasksScreen

    async def ready(pilot) -> None:
        await settle(pilot, lambda: isinstance(pilot.app.screen, TasksScreen) and pilot.app.screen.summaries)
        await pilot.press("enter")
        await settle(pilot, lambda: isinstance(pilot.app.screen, PhaseScreen) and pilot.app.screen.choices)
        await focused(pilot)

    assert snap_compare(make_app(board=False), terminal_size=SIZE, run_before=ready)


def test_board_with_concurrent_stages(snap_compare, make_app) -> None:
    assert snap_compare(make_app(), terminal_size=SIZE, run_before=board_ready)


@pytest.mark.parametrize("needs_input", [False, True], ids=["working", "needs-input"])
def test_board_with_two_agents(snap_compare, make_app, demo, needs_input: bool) -> None:
    """Stage 3's agent and stage 4's at work; stage 4's, selected, may need input."""
    from okstra_engine import clock
    from okstra_engine.projects import load_project
    from okstra_engine.slugs import TaskRef
    from okstra_engine.tasks import load_task
    from tests.tui.conftest import NOW
    from tests.tui.driving import NEEDS_INPUT, hooks_say, two_agents

    task = load_task(load_project(Path(demo.project_root)), TaskRef.parse(demo.task))
    with clock.pinned(time=NOW, token="5a0b1c"):
        four = two_agents(task, demo.run_ids)
    if needs_input:
        hooks_say(four, *NEEDS_INPUT)

    async def ready(pilot) -> None:
        board = await board_ready(pilot)
        board.query_one("#stages").select_stage(4)
        await settle(pilot)

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=ready)


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
        await settle(
            pilot,
            lambda: isinstance(pilot.app.screen, DiffScreen) and pilot.app.screen.query_one("DiffView").line_count,
        )

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=ready)


def test_error_dialog(snap_compare, make_app, tmp_path: Path) -> None:
    from okstra_tui.screens.error import ErrorDialog
    from okstra_tui.screens.tasks import TasksScreen

    missing = tmp_path / "not-a-project"
    missing.mkdir()

    async def ready(pilot) -> None:
        await settle(pilot, lambda: isinstance(pilot.app.screen, TasksScreen) and pilot.app.screen.summaries)
        pilot.app.show_error(
            __import__("okstra_engine.errors").errors.OkstraError(
                "stage 5 waits for stage 3, which is in flight in run 20250314T091600Z-implementation-s3-302d6f",
                "wait for it, or release it if that run is gone: okstra record demo/checkout --stage 3 --status released",
            )
        )
        await settle(pilot, lambda: isinstance(pilot.app.screen, ErrorDialog))

    assert snap_compare(make_app(board=False), terminal_size=SIZE, run_before=ready)


def test_board_in_korean(snap_compare, make_app) -> None:
    assert snap_compare(make_app(lang="ko"), terminal_size=SIZE, run_before=board_ready)


# ------------------------------------------------------------------ the run wizard


async def _options(pilot) -> None:
    from okstra_tui.screens.run_options import RunOptionsScreen

    await board_ready(pilot)
    await pilot.press("enter")  # stage 4, the auto stage
    await settle(pilot, lambda: isinstance(pilot.app.screen, RunOptionsScreen) and pilot.app.screen.context is not None)


def test_run_options(snap_compare, make_app) -> None:
    assert snap_compare(make_app(), terminal_size=SIZE, run_before=_options)


def test_quarantine_dialog(snap_compare, make_app) -> None:
    from okstra_tui.screens.quarantine import QuarantineDialog

    async def ready(pilot) -> None:
        await _options(pilot)
        await pilot.press("ctrl+n")
        await settle(pilot, lambda: isinstance(pilot.app.screen, QuarantineDialog))

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=ready)


async def _quarantined(pilot) -> None:
    """The preview after the leftover team was quarantined."""
    from okstra_tui.screens.preview import PreviewScreen
    from okstra_tui.screens.quarantine import QuarantineDialog

    await _options(pilot)
    await pilot.press("ctrl+n")
    await settle(pilot, lambda: isinstance(pilot.app.screen, QuarantineDialog))
    await pilot.press("y")
    await settle(pilot, lambda: isinstance(pilot.app.screen, PreviewScreen) and pilot.app.screen.decision == "moved")


def test_preview(snap_compare, make_app) -> None:
    """After the quarantine: the team line says where the leftover went."""
    assert snap_compare(make_app(), terminal_size=SIZE, run_before=_quarantined)


# ------------------------------------------------------------------ the handoff


def _finish_group_b(demo) -> None:
    """Stages 3 and 4 done by the simulated lead (before the app starts: no notifications)."""
    from okstra_engine.projects import load_project
    from okstra_engine.slugs import TaskRef
    from okstra_engine.tasks import load_task
    from tests.tui.driving import finish_stages

    finish_stages(load_task(load_project(Path(demo.project_root)), TaskRef.parse(demo.task)), [3, 4], release=(3,))


async def _handoff_plan(pilot) -> None:
    from okstra_tui.screens.handoff import HandoffScreen

    board = await board_ready(pilot)
    board.query_one("#stages").select_stage(3)
    await pilot.press("h")
    await settle(pilot, lambda: isinstance(pilot.app.screen, HandoffScreen) and pilot.app.screen.plan is not None)


@pytest.mark.usefixtures("fixed_git_dates")
def test_handoff_plan(snap_compare, make_app, demo) -> None:
    _finish_group_b(demo)
    assert snap_compare(make_app(), terminal_size=SIZE, run_before=_handoff_plan)


@pytest.mark.usefixtures("fixed_git_dates")
def test_handoff_result(snap_compare, make_app, demo) -> None:
    _finish_group_b(demo)

    async def ready(pilot) -> None:
        await _handoff_plan(pilot)
        await pilot.press("y")
        await settle(pilot, lambda: pilot.app.screen.result is not None)

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=ready)


# ------------------------------------------------------------------ small and large terminals

SIZES = {"small": (80, 24), "large": (200, 60)}
"""A terminal's least (the board's table keeps its state column, help its last line, the
handoff plan its Handoff column) and a wide one (the panels spread, nothing stretches)."""


@pytest.mark.parametrize("size", SIZES)
def test_board_sized(snap_compare, make_app, size: str) -> None:
    assert snap_compare(make_app(), terminal_size=SIZES[size], run_before=board_ready)


@pytest.mark.parametrize("size", SIZES)
def test_help_sized(snap_compare, make_app, size: str) -> None:
    """Small: the keys scroll, scrolled to the end the legend's last line shows, and the
    closing line stays."""
    from okstra_tui.screens.help import HelpScreen

    async def ready(pilot) -> None:
        await board_ready(pilot)
        await pilot.press("question_mark")
        await settle(pilot, lambda: isinstance(pilot.app.screen, HelpScreen))
        await pilot.press("end")
        await settle(pilot)

    assert snap_compare(make_app(), terminal_size=SIZES[size], run_before=ready)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.usefixtures("fixed_git_dates")
def test_handoff_plan_sized(snap_compare, make_app, demo, size: str) -> None:
    _finish_group_b(demo)
    assert snap_compare(make_app(), terminal_size=SIZES[size], run_before=_handoff_plan)


@pytest.mark.parametrize("size", SIZES)
def test_preview_sized(snap_compare, make_app, size: str) -> None:
    assert snap_compare(make_app(), terminal_size=SIZES[size], run_before=_quarantined)


def test_plan_screen(snap_compare, make_app, demo) -> None:
    """A plan waiting for approval: its text, its Stage Map, its shape as lanes."""
    from okstra_engine.slugs import TaskRef
    from okstra_tui.screens.plan import PlanScreen
    from tests.tui.driving import a_plan_to_review

    a_plan_to_review(demo.project_root)

    async def ready(pilot) -> None:
        await settle(pilot, lambda: getattr(pilot.app.screen, "summaries", None))
        pilot.app.open_task(Path(demo.project_root), TaskRef.parse("demo/refunds"))
        await settle(pilot, lambda: isinstance(pilot.app.screen, PlanScreen) and pilot.app.screen.review is not None)
        await focused(pilot)

    assert snap_compare(make_app(board=False), terminal_size=SIZE, run_before=ready)


def test_run_history(snap_compare, make_app, demo) -> None:
    """Every run of the demo task, one of its reports open."""
    from okstra_engine.slugs import TaskRef
    from okstra_tui.screens.runs import RunsScreen
    from tests.tui.driving import demo_runs

    demo_runs(demo.project_root, demo.task, demo.run_ids)

    async def ready(pilot) -> None:
        await board_ready(pilot)
        pilot.app.open_runs(Path(demo.project_root), TaskRef.parse(demo.task), None)
        await settle(pilot, lambda: isinstance(pilot.app.screen, RunsScreen) and pilot.app.screen.runs)
        screen = pilot.app.screen
        row = next(i for i, r in enumerate(screen.runs) if r.stage == 2)
        screen.query_one("#runs").move_cursor(row=row)
        await pilot.press("enter")
        await settle(pilot, lambda: screen.shown_file is not None)
        await focused(pilot)

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=ready)
