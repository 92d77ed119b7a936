"""What the engine refuses reaches the person as the engine decided it: the board and
the phase picker show the refusal the CLI prints for the same stage, and in Korean the
handoff screen and the error dialog say it in Korean."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from tests.support import call
from tests.tui.conftest import NOW, SIZE
from tests.tui.driving import Notes, Seen, board_ready, settle, text_of

pytestmark = pytest.mark.timeout(90)


def _task(demo):
    from okstra_engine.projects import load_project
    from okstra_engine.slugs import TaskRef
    from okstra_engine.tasks import load_task

    return load_task(load_project(Path(demo.project_root)), TaskRef.parse(demo.task))


def _cli_refusal(capsys, demo, *args: str):
    """`okstra prepare TASK ARGS` through the engine CLI, at the app's moment: exit 2, the
    refusal's words on stderr; returns the refusal that path raised (prepare's
    `RefusedError`)."""
    from okstra_engine import clock
    from okstra_engine.prepare import PrepareOptions, prepare
    from okstra_engine.refusals import RefusedError

    with clock.pinned(time=NOW + timedelta(minutes=1)):
        code, out, err = call(capsys, "--project", demo.project_root, "prepare", demo.task, *args)
        phase, stage = args[1], args[3] if len(args) > 3 else "auto"
        with pytest.raises(RefusedError) as caught:
            prepare(_task(demo), PrepareOptions(phase, stage=stage))
    refusal = caught.value.refusal
    assert code == 2 and out == ""
    # (after what auto-reconcile corrected on the way, if anything)
    assert err.endswith(f"okstra: {refusal.what}\n  fix: {refusal.how}\n")
    return refusal


async def test_the_board_and_the_cli_refuse_a_stage_alike(make_app, demo, capsys) -> None:
    from okstra_tui.base import Refused

    app, notes, refused = make_app(), Notes(), Seen(Refused)

    def hook(message) -> None:
        notes(message)
        refused(message)

    shown = {}
    async with app.run_test(size=SIZE, message_hook=hook) as pilot:
        board = await board_ready(pilot)
        for stage in (3, 5):  # in flight, blocked
            board.query_one("#stages").select_stage(stage)
            before = len(refused), len(notes)
            await pilot.press("enter")
            await settle(pilot, lambda before=before: (len(refused), len(notes)) > before and len(notes) > before[1])
            shown[stage] = (refused.messages[-1].refusal, notes.texts[-1])
            assert app.screen is board
    for stage, (refusal, text) in shown.items():
        cli = _cli_refusal(capsys, demo, "--type", "implementation", "--stage", str(stage))
        assert (refusal.code, refusal.params) == (cli.code, cli.params)
        assert text == f"{cli.what}\nFix: {cli.how}"  # the TUI's English is the CLI's
    assert [shown[n][0].code for n in (3, 5)] == ["stage.in_flight", "stage.blocked"]
    assert shown[5][0].params["waits_for"] == [3]


async def test_the_phase_picker_and_the_cli_refuse_a_phase_alike(make_app, demo, capsys) -> None:
    from okstra_tui.screens.phases import PhaseScreen

    app, notes = make_app(), Notes()
    async with app.run_test(size=SIZE, message_hook=notes) as pilot:
        await board_ready(pilot)
        await pilot.press("escape")
        await settle(pilot, lambda: isinstance(app.screen, PhaseScreen) and app.screen.choices)
        final = next(c for c in app.screen.choices if c.phase == "final-verification")
        app.screen.query_one("OptionList").highlighted = 2
        await pilot.press("enter")
        await settle(pilot, lambda: bool(notes.texts))
        detail = text_of(app.screen.query_one("#phase-detail"))
    cli = _cli_refusal(capsys, demo, "--type", "final-verification")
    assert final.refusal == cli and not final.available
    assert notes.texts[-1] == f"{cli.what}\nFix: {cli.how}"
    assert cli.what in detail and cli.how in detail


async def test_in_korean_the_handoff_screen_shows_the_refusals_in_korean(make_app) -> None:
    from okstra_tui.refusal_text import refusal_texts
    from okstra_tui.screens.handoff import HandoffScreen

    app = make_app(lang="ko")
    async with app.run_test(size=SIZE) as pilot:
        board = await board_ready(pilot)
        board.query_one("#stages").select_stage(4)
        await pilot.press("h")
        await settle(pilot, lambda: isinstance(app.screen, HandoffScreen) and app.screen.busy is None)
        plan = app.screen.plan
        notes = text_of(app.screen.query_one("#handoff-notes"))
    refused = plan.refused
    assert sorted(refused) == [3, 4] and refused[4].code == "handoff.not_started"
    for refusal in refused.values():
        what, how = refusal_texts(refusal)
        assert what in notes and how in notes
        assert refusal.what not in notes and refusal.how not in notes
    assert "스테이지 4가 완료되지 않았습니다 (준비됨, 시작 전)" in notes
    assert "okstra prepare demo/checkout --type implementation --stage 4" in notes  # the command as it is


async def test_in_korean_the_error_dialog_shows_a_refusal_in_korean(make_app, demo) -> None:
    """Stage 4 is taken by another run after the board showed it ready: the preview's
    prepare refuses it, and the error dialog says so in Korean."""
    from okstra_engine.prepare import PrepareOptions, prepare
    from okstra_engine.refusals import RefusedError
    from okstra_tui.refusal_text import refusal_texts
    from okstra_tui.screens.error import ErrorDialog
    from okstra_tui.screens.run_options import RunOptionsScreen

    app = make_app(lang="ko")
    async with app.run_test(size=SIZE) as pilot:
        board = await board_ready(pilot)
        await pilot.press("enter")  # stage 4, ready
        await settle(pilot, lambda: isinstance(app.screen, RunOptionsScreen) and app.screen.context is not None)
        prepare(_task(demo), PrepareOptions("implementation", stage="4"))  # another run takes it
        app.screen.query_one("#worker-claude").value = False  # a single lead: no team dialog
        await pilot.press("ctrl+n")
        await settle(pilot, lambda: isinstance(app.screen, ErrorDialog))
        dialog = app.screen
        assert board is not dialog
    with pytest.raises(RefusedError) as caught:
        prepare(_task(demo), PrepareOptions("implementation", stage="4", render_only=True))
    refusal = caught.value.refusal
    assert refusal.code == "stage.in_flight"
    what, how = refusal_texts(refusal)
    assert (dialog.what, dialog.how) == (what, how) != (refusal.what, refusal.how)
    assert what.startswith("스테이지 4는 실행 ") and "진행 중" in what


@pytest.mark.parametrize(
    ("lang", "detail", "card"),
    [
        (
            "en",
            "needs stage 3 merged into the task branch · h on a stage of group B hands them off",
            "h: hand off B",
        ),
        ("ko", "스테이지 3이(가) 태스크 브랜치에 병합되어야 함 · 그룹 B의 스테이지에서 h로 핸드오프", "h: B 핸드오프"),
    ],
)
async def test_a_stage_that_waits_for_a_handoff_says_which_key_helps(
    make_app, demo, capsys, lang: str, detail: str, card: str
) -> None:
    """Stage 5 (after 2 and 3) starts from the task worktree: with 3 done on its branch only,
    it is blocked, and the board says to hand off group B with `h` (not to merge by hand);
    `enter` on it says what prepare says."""
    from okstra_engine.record import record
    from okstra_tui.base import Refused
    from okstra_tui.widgets.lanes import StageCard

    record(_task(demo), 3, "done", commit=demo.commits["s3_wip"])
    # prepare first: its auto-reconcile records where stage 2's rebased work is
    cli = _cli_refusal(capsys, demo, "--type", "implementation", "--stage", "5")
    assert cli.code == "stage.needs_handoff" and cli.params["stages"] == [3] and cli.params["groups"] == ["B"]
    assert "okstra handoff demo/checkout --group B --merge" in cli.how and "git -C" not in cli.how
    app, refused = make_app(lang=lang), Seen(Refused)
    async with app.run_test(size=SIZE, message_hook=refused) as pilot:
        board = await board_ready(pilot)
        assert board.data.views[5].reason.to_json() == {"code": "needs-handoff", "stages": [3], "groups": ["B"]}
        board.query_one("#stages").select_stage(5)
        await settle(pilot, lambda: detail in text_of(board.query_one("#stage-detail-body")))
        assert card in text_of(next(c for c in board.query(StageCard) if c.stage == 5))
        await pilot.press("enter")
        await settle(pilot, lambda: len(refused) > 0)
    assert refused.messages[-1].refusal == cli
