"""`h` on the board: the group's merge plan, then the handoff run in a worker."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.tui.conftest import SIZE
from tests.tui.driving import Notes, board_ready, finish_stages, settle, text_of

pytestmark = pytest.mark.timeout(90)


def _task(demo):
    from okstra_engine.projects import load_project
    from okstra_engine.slugs import TaskRef
    from okstra_engine.tasks import load_task

    return load_task(load_project(Path(demo.project_root)), TaskRef.parse(demo.task))


def _task_worktree(demo) -> Path:
    return Path(demo.okstra_home) / "worktrees" / "shop" / "demo" / "checkout"


def _git(path: Path, *args: str) -> str:
    env = {
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_CONFIG_NOSYSTEM": "1",
        "PATH": "/usr/bin:/bin",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@x",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@x",
    }
    return subprocess.run(["git", *args], cwd=path, env=env, check=True, capture_output=True, text=True).stdout.strip()


def _handoffs(demo) -> list[dict]:
    from okstra_engine.plans import plan_run_root

    path = plan_run_root(_task(demo)).dir / "handoffs.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def _open(pilot, stage: int):
    from okstra_tui.screens.handoff import HandoffScreen

    board = await board_ready(pilot)
    board.query_one("#stages").select_stage(stage)
    await pilot.press("h")
    await settle(pilot, lambda: isinstance(pilot.app.screen, HandoffScreen) and pilot.app.screen.busy is None)
    return pilot.app.screen


async def _finished(pilot, screen) -> None:
    await settle(pilot, lambda: screen.busy is None and (screen.result is not None or screen.failure is not None))


async def test_plan_of_a_group_not_done_is_refused(make_app, demo) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await _open(pilot, 4)
        plan = screen.plan
        assert plan.group == "B" and plan.stage_numbers == [2, 3, 4]
        assert {s.stage: s.action for s in plan.stages} == {2: "already-merged", 3: "refused", 4: "refused"}
        table = text_of(screen.query_one("#handoff-plan"))
        assert "already merged" in table and "refused" in table
        assert "rebased or cherry-picked" in table  # stage 2's kind, from content_merged
        assert "okstra/feature/demo/checkout-s2" in table
        notes = text_of(screen.query_one("#handoff-notes"))
        assert "cannot be handed off yet" in notes and "stage 4 is not done (ready, not started)" in notes
        assert "Fix: implement it first: okstra prepare demo/checkout --type implementation --stage 4" in notes
        assert screen.query_one("#confirm").disabled and not screen.check_action("confirm", ())
        await pilot.press("y")  # nothing happens
        await pilot.pause()
        assert screen.busy is None and screen.result is None
        await pilot.press("g")  # the next group in handoff order: C
        await settle(pilot, lambda: screen.busy is None and screen.plan is not None and screen.plan.group == "C")
        await pilot.press("escape")
        from okstra_tui.screens.board import BoardScreen

        await settle(pilot, lambda: isinstance(app.screen, BoardScreen))
    assert _handoffs(demo) == []


async def test_a_merged_group_is_recorded(make_app, demo) -> None:
    app = make_app()
    head = _git(_task_worktree(demo), "rev-parse", "HEAD")
    async with app.run_test(size=SIZE) as pilot:
        screen = await _open(pilot, 1)
        assert screen.plan.group == "A" and screen.plan.already_merged == [1] and not screen.plan.to_merge
        assert "y records the handoff" in text_of(screen.query_one("#handoff-notes"))
        assert str(screen.query_one("#confirm").label) == "Record group A"
        await pilot.press("y")
        await _finished(pilot, screen)
        result = text_of(screen.query_one("#handoff-result"))
        assert "Group A handed off" in result and "task branch unchanged" in result
        assert "already in the task branch" in result and "handoff-A.md" in result
        assert not screen.query_one("#confirm").display
    assert [row["group"] for row in _handoffs(demo)] == ["A"]
    assert _git(_task_worktree(demo), "rev-parse", "HEAD") == head


async def test_confirm_merges_the_group(make_app, demo) -> None:
    done = finish_stages(_task(demo), [3, 4], release=(3,))
    wt = _task_worktree(demo)
    before = _git(wt, "rev-parse", "HEAD")
    app = make_app()
    said = Notes()
    async with app.run_test(size=SIZE, message_hook=said) as pilot:
        screen = await _open(pilot, 3)
        plan = screen.plan
        assert plan.to_merge == [3, 4] and plan.already_merged == [2] and not plan.refusals
        assert plan.predicted_conflicts == {} and "foreseen" not in text_of(screen.query_one("#handoff-plan"))
        assert {s.stage: s.done_commit for s in plan.stages if s.stage in done} == done
        notes = text_of(screen.query_one("#handoff-notes"))
        assert "y merges stages 3 and 4 into the task worktree" in notes and "All or nothing" in notes
        await pilot.press("y")
        await _finished(pilot, screen)
        result = screen.result
        assert result.merged == [3, 4] and set(result.merge_commits) == {3, 4}
        shown = text_of(screen.query_one("#handoff-result"))
        assert f"task branch {before[:8]} → {result.task_head[:8]}" in shown
        for n in (3, 4):
            assert f"merged: {result.merge_commits[n][:8]}" in shown
        assert "ready now: stage 5" in shown
        await pilot.press("escape")
        await settle(pilot, lambda: any("okstra gc demo/checkout" in text for text in said.texts))
    after = _git(wt, "rev-parse", "HEAD")
    assert after == result.task_head != before
    for sha in done.values():
        _git(wt, "merge-base", "--is-ancestor", sha, "HEAD")
    assert [row["group"] for row in _handoffs(demo)] == ["B"]


async def test_a_conflict_names_the_files_and_keeps_nothing(make_app, demo) -> None:
    finish_stages(_task(demo), [3, 4], release=(3,))
    wt = _task_worktree(demo)
    (wt / "sim").mkdir()
    (wt / "sim" / "stage-3.md").write_text("someone else's notes\n")
    _git(wt, "add", "sim/stage-3.md")
    _git(wt, "commit", "-q", "-m", "notes in the way")
    before = _git(wt, "rev-parse", "HEAD")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await _open(pilot, 4)
        assert screen.plan.predicted_conflicts == {3: ["sim/stage-3.md"]}  # seen before merging
        planned = text_of(screen.query_one("#handoff-plan"))
        assert "conflict foreseen in" in planned and "sim/stage-3.md" in planned
        await pilot.press("y")
        await _finished(pilot, screen)
        from okstra_engine.handoff import HandoffError

        error = screen.failure
        assert isinstance(error, HandoffError) and error.conflicts == {3: ["sim/stage-3.md"]}
        shown = text_of(screen.query_one("#handoff-result"))
        assert "nothing of group B was merged" in shown and "sim/stage-3.md" in shown
        # the fix merges the group's stages in the handoff's order, not the conflicting one alone
        hint = shown[shown.index("Fix: merge the group's stages by hand, in this order: ") :]
        assert 0 < hint.index("(stage 3)") < hint.index("(stage 4)")
        assert "conflicts in" in text_of(screen.query_one("#handoff-plan"))
        assert screen.check_action("confirm", ())  # fix it, then try again
    assert _git(wt, "rev-parse", "HEAD") == before and _git(wt, "status", "--porcelain") == ""
    assert _handoffs(demo) == []


async def test_help_and_palette_cover_the_handoff(make_app, demo) -> None:
    from okstra_tui.screens.help import HelpScreen

    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await _open(pilot, 1)
        commands = {c.title: c.help for c in app.get_system_commands(screen)}
        assert {"hand off", "next group", "back"} <= set(commands)
        assert commands["hand off"].endswith("(y)")
        await pilot.press("question_mark")
        await settle(pilot, lambda: isinstance(app.screen, HelpScreen))
        keys = {description for _, description, _ in app.screen.keys}
        assert {"hand off", "next group", "back"} <= keys
        assert "counted, not merged again" in text_of(app.screen.query_one(".help-body Static"))


async def test_the_footer_follows_the_screens_state(make_app, demo) -> None:
    """The keys on the footer follow the screen's state as it changes: `y` and `escape`
    go while a handoff runs and come back after, with no refresh asked for by hand."""
    from okstra_tui.screens.handoff import Busy

    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await _open(pilot, 1)

        def footer_keys() -> set[str]:
            return {key.key for key in screen.query("FooterKey")}

        await settle(pilot, lambda: {"y", "escape"} <= footer_keys())
        screen.busy = Busy.RUNNING
        await settle(pilot, lambda: not {"y", "escape"} & footer_keys())
        screen.busy = None
        await settle(pilot, lambda: {"y", "escape"} <= footer_keys())


async def test_the_buttons_do_what_their_keys_do(make_app, demo) -> None:
    """`#back` runs the screen's `back` action through its `check_action`: refused while
    a handoff runs, as `escape` is, and taken once it is over."""
    from okstra_tui.screens.board import BoardScreen

    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await _open(pilot, 4)
        back = screen.query_one("#back")
        screen.busy = "running"
        back.press()
        await pilot.pause(0.3)
        assert app.screen is screen
        screen.busy = None
        back.press()
        await settle(pilot, lambda: isinstance(app.screen, BoardScreen))
