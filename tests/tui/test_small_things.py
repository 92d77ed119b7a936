"""Small things the board and the lists must get right: keys typed in one burst, a
settings change, ages that tick, an agent that was killed."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from textual import events

from tests.tui.conftest import SIZE
from tests.tui.driving import board_ready, settle

pytestmark = pytest.mark.timeout(90)


def _task(demo):
    from okstra_engine.projects import load_project
    from okstra_engine.slugs import TaskRef
    from okstra_engine.tasks import load_task

    return load_task(load_project(Path(demo.project_root)), TaskRef.parse(demo.task))


def _burst(app, *keys: tuple[str, str | None]) -> None:
    """Keys as a terminal delivers one write: every event queued before any is handled."""
    for key, char in keys:
        event = events.Key(key, char)
        event.set_sender(app)
        app._driver.send_message(event)


async def test_down_enter_in_one_write_opens_the_row_below(make_app) -> None:
    """From stage 3 (in flight: enter would be refused) to 4, the ready stage."""
    from okstra_tui.screens.run_options import RunOptionsScreen

    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        board = await board_ready(pilot)
        board.query_one("#stages").select_stage(3)
        await settle(pilot)
        _burst(app, ("down", None), ("enter", "\r"))
        await settle(pilot, lambda: isinstance(app.screen, RunOptionsScreen))
        assert app.screen.stage == 4


async def test_down_enter_in_one_write_on_the_phase_picker(make_app, demo) -> None:
    """From final verification (refused: stages not done) to improvement discovery."""
    from okstra_engine.slugs import TaskRef
    from okstra_tui.screens.phases import PhaseScreen
    from okstra_tui.screens.run_options import RunOptionsScreen

    app = make_app(board=False, project=False)
    async with app.run_test(size=SIZE) as pilot:
        app.open_task(Path(demo.project_root), TaskRef.parse(demo.task))
        await settle(pilot, lambda: isinstance(app.screen, PhaseScreen) and app.screen.choices)
        picker = app.screen
        picker.query_one("OptionList").highlighted = [c.phase for c in picker.choices].index("final-verification")
        await settle(pilot)
        _burst(app, ("down", None), ("enter", "\r"))
        await settle(pilot, lambda: isinstance(app.screen, RunOptionsScreen) and app.screen.context is not None)
        assert app.screen.phase == "improvement-discovery"


async def test_a_settings_change_shows_without_a_key(make_app, demo) -> None:
    """Stage 3 is 14 minutes into its run by the app's clock: a TTL of 6 minutes, written
    while the board is open, makes it stale."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        board = await board_ready(pilot)
        assert board.data.views[3].state == "in-flight"
        config = Path(demo.config_file)
        config.write_text(config.read_text() + "stale_ttl_hours = 0.1\n")
        await settle(pilot, lambda: board.data.views[3].state == "stale", timeout=3)


async def test_ages_tick_every_second(make_app, demo) -> None:
    from datetime import timedelta

    from okstra_engine.ledger_state import read_state
    from okstra_engine.plans import plan_run_root
    from okstra_engine.prepare import PrepareOptions, prepare
    from okstra_engine.run_folder import LEDGER_NAME

    task = _task(demo)
    prepare(task, PrepareOptions(task_type="implementation", stage="4"))
    # the app's clock starts when the stage is held since (its row's time, to the second):
    # a clock read before the prepare could be a second behind the row and show 4s
    held = read_state(plan_run_root(task).dir / LEDGER_NAME).stages[4]
    moment = [held.streak.start.when]
    app = make_app()
    app.clock = lambda: moment[0]
    async with app.run_test(size=SIZE) as pilot:
        board = await board_ready(pilot)
        board.query_one("#stages").select_stage(4)
        await settle(pilot)
        row = board.query_one("#stages").get_row("4")
        first = text_of_cell(row[-1])
        moment[0] += timedelta(seconds=5)
        await settle(pilot, lambda: text_of_cell(board.query_one("#stages").get_row("4")[-1]) != first, timeout=2)
        assert text_of_cell(board.query_one("#stages").get_row("4")[-1]).endswith("5s")


def text_of_cell(cell) -> str:
    return cell.plain


async def test_an_agent_killed_shows_stale_within_two_seconds(make_app, demo) -> None:
    from okstra_engine.prepare import PrepareOptions, prepare

    agent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        prepare(_task(demo), PrepareOptions(task_type="implementation", stage="4", pid=agent.pid))
        app = make_app(poll_interval=0.25)
        async with app.run_test(size=SIZE) as pilot:
            board = await board_ready(pilot)
            assert board.data.views[4].state == "in-flight" and board.data.pids == {4: agent.pid}
            agent.send_signal(signal.SIGKILL)
            agent.wait()
            killed = time.monotonic()
            await settle(pilot, lambda: board.data.views[4].state == "stale", timeout=2)
            assert time.monotonic() - killed < 2
            assert board.data.pids == {}
    finally:
        agent.kill()
        agent.wait()


def test_the_task_list_counts_only_merged_stages_as_done(demo) -> None:
    """Stage 2 is done on its branch; stage 4's lead left a carry sidecar and nothing in
    the ledger. Neither is merged into the task worktree: neither counts as done."""
    import json

    from okstra_engine.ledger_state import read_state
    from okstra_engine.plans import plan_run_root
    from okstra_engine.projects import load_project
    from okstra_tui.i18n import set_language
    from okstra_tui.model import task_summaries
    from okstra_tui.screens.tasks import progress_text

    set_language("en")
    task = _task(demo)
    plan = plan_run_root(task).dir
    unmerged = read_state(plan / "consumers.jsonl").done_rows()[2].head_commit
    sidecar = {"stage": 4, "head_commit": unmerged, "impl_task_key": task.key, "summary": "held"}
    (plan / "carry" / "stage-4.json").write_text(json.dumps(sidecar))
    (summary,) = task_summaries(load_project(Path(demo.project_root)), clock_now())
    assert (summary.done, summary.not_merged, summary.total) == (1, 2, 6)
    assert progress_text(summary, lambda name: None).plain.startswith("1/6 done · 2 not merged")


def clock_now():
    from okstra_engine import clock

    return clock.now()


async def test_checkboxes_look_different_ticked_and_not(make_app) -> None:
    from okstra_tui.screens.run_options import RunOptionsScreen

    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await board_ready(pilot)
        await pilot.press("enter")  # stage 4, the auto stage
        await settle(pilot, lambda: isinstance(app.screen, RunOptionsScreen) and app.screen.context is not None)
        ticked, unticked = app.screen.query_one("#worker-claude"), app.screen.query_one("#worker-codex")
        assert ticked.value and not unticked.value
        assert ticked._button.plain == "▐✔▌" and unticked._button.plain == "▐ ▌"


def test_stages_are_counted_in_words() -> None:
    from okstra_engine.refusals import Refusal
    from okstra_tui.i18n import set_language, t
    from okstra_tui.model import stages_text
    from okstra_tui.refusal_text import refusal_brief

    set_language("en")
    assert [stages_text(n) for n in ([4], [4, 5], [2, 3, 4])] == ["stage 4", "stages 4 and 5", "stages 2, 3 and 4"]
    merged = Refusal(
        "phase.stages_not_merged",
        {"task": "a/b", "stages": [{"stage": 4, "commit": "1" * 40}], "head": None, "fix": None},
    )
    assert refusal_brief(merged).startswith("stage 4 not merged")
    assert (
        refusal_brief(Refusal("phase.stages_not_done", {"task": "a/b", "stages": [4, 5]})) == "stages 4 and 5 not done"
    )
    assert t("handoff.left_behind.one") == "1 commit after it left behind"
    set_language("ko")
    assert stages_text([4, 5]) == "스테이지 4, 5"


def test_korean_says_each_concept_one_way() -> None:
    """태스크 브랜치 (task branch), 태스크 워크트리 / 워크트리 (worktree), 대조 (reconcile):
    the English word stays only in commands and placeholders."""
    import re

    from okstra_tui.i18n import load_texts

    for key, text in load_texts("ko").items():
        words = re.sub(r"`[^`]*`|\{[^}]*\}|git worktree|okstra reconcile", "", text)
        assert "작업 브랜치" not in words and "작업 worktree" not in words, key
        assert not re.search(r"(?<![A-Za-z_./-])(worktree|[Rr]econcile)(?![A-Za-z_./-])", words), key


def test_a_lane_label_keeps_its_group_name() -> None:
    """A group's name is written whole on its lane, wrapping past 12 cells, not cut to 3."""
    from rich.style import Style

    from okstra_tui.widgets.lanes import _label

    assert _label("payments", Style(), 8).plain.split("\n") == ["        ", "payments", "        ", "        "]
    lines = _label("payments-backend-and-more", Style(), 12).plain.split("\n")
    assert lines[1:] == ["payments-bac", "kend-and-mor", "e           "]
    assert _label("a-very-long-group-name-indeed-yes-it-is-long", Style(), 12).plain.split("\n")[3].endswith("…")


async def test_a_new_task_typed_in_one_write_lands_each_word_in_its_field(make_app) -> None:
    """`demo/returns⏎Returns` pasted or typed faster than the screen reads: the title's
    letters go to the title, not after the task name."""
    from okstra_tui.screens.new_task import NewTaskForm
    from okstra_tui.screens.tasks import TasksScreen

    app = make_app(board=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: isinstance(app.screen, TasksScreen) and app.screen.summaries)
        await pilot.press("n")
        await settle(pilot, lambda: isinstance(app.screen, NewTaskForm))
        form = app.screen
        _burst(app, *[(c if c.isalnum() else "slash", c) for c in "demo/returns"], ("enter", "\r"))
        _burst(app, *[(c.lower() if c.isalpha() else c, c) for c in "Returns"])
        await settle(pilot)
        assert (form.query_one("#ref").value, form.query_one("#title").value) == ("demo/returns", "Returns")
