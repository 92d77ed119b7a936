"""The plan screen (review, approve with a confirmation, a broken Stage Map shown on its
lines), the run history (runs listed, a run's report opened), and the lists that follow
changes made elsewhere without a key."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import PLAN_4, PLAN_BROKEN, a_run
from tests.tui.conftest import SIZE
from tests.tui.driving import demo_runs, settle, text_of

pytestmark = pytest.mark.timeout(60)

CYCLE = PLAN_BROKEN.replace("| 9 ", "| - ")


def _new_task(demo, ref: str):
    from okstra_engine.projects import load_project
    from okstra_engine.slugs import TaskRef
    from okstra_engine.tasks import new_task

    return new_task(load_project(Path(demo.project_root)), TaskRef.parse(ref), title="Refunds")


async def test_a_plan_waiting_for_approval_opens_on_the_plan_and_is_approved_after_a_confirmation(
    make_app, demo, tmp_path
) -> None:
    from okstra_engine.plans import import_plan, plan_run_root
    from okstra_tui.screens.confirm import ConfirmModal
    from okstra_tui.screens.phases import PhaseScreen
    from okstra_tui.screens.plan import PlanScreen

    task = _new_task(demo, "demo/refunds")
    source = tmp_path / "plan.md"
    source.write_text(PLAN_4 + "\nSee [the notes](../../task.json).\n")
    draft = import_plan(task, source)
    app = make_app(board=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: getattr(app.screen, "summaries", None))
        app.open_task(Path(demo.project_root), task.ref)
        await settle(pilot, lambda: isinstance(app.screen, PlanScreen) and app.screen.review is not None)
        plan = app.screen
        assert plan.review.state == "draft" and plan.review.run_id == draft.run_id
        assert "four stages" not in text_of(plan.query_one("#plan-head"))  # the task's title, not the plan's
        assert "waiting for approval" in text_of(plan.query_one("#plan-head"))
        assert "See [the notes](../../task.json)" in plan.query_one("#plan-markdown").source
        assert plan.query_one("#plan-stages").row_count == 4
        assert set(plan.query_one("#plan-lanes").cards) == {1, 2, 3, 4}
        assert "holds: 4 stages" in text_of(plan.query_one("#plan-problem"))
        await pilot.press("a")
        await settle(pilot, lambda: isinstance(app.screen, ConfirmModal))
        await pilot.press("n")  # not yet: nothing changes
        await settle(pilot, lambda: app.screen is plan)
        assert plan_run_root(task) is None
        await pilot.press("a")
        await settle(pilot, lambda: isinstance(app.screen, ConfirmModal))
        await pilot.press("y")
        await settle(pilot, lambda: plan.review is not None and plan.review.state == "approved")
        current = plan_run_root(task)
        assert current is not None and current.run_id == draft.run_id
        assert "the current plan" in text_of(plan.query_one("#plan-head"))
        await pilot.press("escape")
        await settle(pilot, lambda: isinstance(app.screen, PhaseScreen) and app.screen.choices)
        implementation = next(c for c in app.screen.choices if c.phase == "implementation")
        assert implementation.available


async def test_a_cycle_is_shown_on_its_lines_and_the_plan_cannot_be_approved(make_app, demo) -> None:
    from okstra_engine.plans import plan_run_root
    from okstra_tui.screens.phases import PhaseScreen
    from okstra_tui.screens.plan import PlanScreen

    task = _new_task(demo, "demo/refunds")
    a_run(task, "20250314T090000Z-planning-abcdef", "planning", {"plan.md": CYCLE})
    app = make_app(board=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: getattr(app.screen, "summaries", None))
        summary = next(s for s in app.screen.summaries if s.ref == task.ref)
        assert summary.plan == "broken"  # never "waiting for approval"
        app.open_task(Path(demo.project_root), task.ref)
        await settle(pilot, lambda: isinstance(app.screen, PlanScreen) and app.screen.review is not None)
        plan = app.screen
        assert plan.review.state == "broken"
        table = plan.query_one("#plan-stages")
        lines = [str(table.get_row_at(i)[0]) for i in range(table.row_count)]
        assert lines == ["9", "10", "11", "12"]
        bad = plan.look("okstra--stale")
        flagged = [table.get_row_at(i)[2].style == bad for i in range(table.row_count)]
        assert flagged == [True, True, True, False]  # stages 1, 2, 3 are the cycle; 4 is fine
        assert "stage cycle: 1 -> 3 -> 2 -> 1 (lines 9, 10, 11)" in text_of(plan.query_one("#plan-problem"))
        assert not plan.query_one("#plan-lanes").display
        await pilot.press("a")
        await settle(pilot, lambda: app.screen is plan)
        assert plan_run_root(task) is None
        await pilot.press("escape")
        await settle(pilot, lambda: isinstance(app.screen, PhaseScreen) and app.screen.choices)
        phases = app.screen
        assert phases.choices[phases.query_one("OptionList").highlighted].phase == "planning"
        implementation = next(c for c in phases.choices if c.phase == "implementation")
        assert implementation.refusal is not None and implementation.refusal.code == "phase.plan_broken"


async def test_the_run_history_lists_the_runs_and_opens_a_report(make_app, demo) -> None:
    from okstra_tui.screens.phases import PhaseScreen
    from okstra_tui.screens.runs import RunsScreen

    demo_runs(demo.project_root, demo.task, demo.run_ids)
    app = make_app(board=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: getattr(app.screen, "summaries", None))
        await pilot.press("enter")
        await settle(pilot, lambda: isinstance(app.screen, PhaseScreen) and app.screen.choices)
        await pilot.press("r")  # implementation is highlighted: its runs
        await settle(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.runs)
        runs = app.screen
        assert {r.phase for r in runs.runs} == {"implementation"}
        ids = [r.run_id for r in runs.runs]
        assert demo.run_ids["s1"] in ids and ids == sorted(ids, reverse=True)
        row = ids.index(demo.run_ids["s1"])
        s1_run = runs.runs[row]
        assert (s1_run.stage, s1_run.state, s1_run.outcome) == (1, "finished", "done")
        assert s1_run.outputs == ("report.md", "prompt.md")
        runs.query_one("#runs").move_cursor(row=row)
        await pilot.press("enter")
        await settle(pilot, lambda: runs.shown_file == (demo.run_ids["s1"], "report.md"))
        assert runs.query_one("#run-markdown").source.startswith("# Stage 1 report")
        assert str(runs.query_one("#run-output").border_title).endswith("· report.md")
        await pilot.press("f")
        await settle(pilot, lambda: runs.shown_file == (demo.run_ids["s1"], "prompt.md"))


async def test_the_task_list_shows_a_task_made_with_the_cli_without_a_key(make_app, demo, capsys) -> None:
    from okstra_engine.cli import main
    from okstra_tui.screens.tasks import TasksScreen

    app = make_app(board=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: isinstance(app.screen, TasksScreen) and app.screen.summaries)
        assert [str(s.ref) for s in app.screen.summaries] == ["demo/checkout"]
        code = main(["--project", demo.project_root, "task", "new", "demo/refunds", "--title", "Refunds"])
        assert code in (0, None)
        await settle(pilot, lambda: len(app.screen.summaries) == 2)
        assert [str(s.ref) for s in app.screen.summaries] == ["demo/checkout", "demo/refunds"]
        assert app.screen.query_one("DataTable").row_count == 2


async def test_final_verification_can_target_one_stage_from_the_run_options(make_app, demo) -> None:
    from okstra_engine.projects import load_project
    from okstra_engine.slugs import TaskRef
    from okstra_engine.tasks import load_task
    from okstra_tui.screens.preview import PreviewScreen
    from okstra_tui.screens.run_options import RunOptionsScreen

    task = load_task(load_project(Path(demo.project_root)), TaskRef.parse(demo.task))
    app = make_app(board=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: getattr(app.screen, "summaries", None))
        app.open_run(task, "final-verification", None)
        await settle(pilot, lambda: isinstance(app.screen, RunOptionsScreen) and app.screen.context is not None)
        options = app.screen
        assert options.choice().stage is None  # the whole task
        options.query_one("#verify-stage").focus()
        await pilot.press("0")
        await pilot.press("ctrl+n")
        await settle(pilot)
        assert app.screen is options  # 0 is no stage: said, and nothing moves on
        await pilot.press("backspace", "1")
        await settle(pilot)
        assert options.choice().stage == 1
        assert "--type final-verification --stage 1" in text_of(options.query_one("#options-command"))
        await pilot.press("ctrl+n")
        await settle(pilot, lambda: isinstance(app.screen, PreviewScreen))
        assert app.screen.choice.stage == 1


async def test_the_phase_picker_follows_a_plan_approved_elsewhere_without_a_key(make_app, demo, tmp_path) -> None:
    from textual.widgets import OptionList

    from okstra_engine.plans import approve_plan, import_plan
    from okstra_tui.screens.phases import PhaseScreen
    from okstra_tui.screens.plan import PlanScreen

    task = _new_task(demo, "demo/refunds")
    source = tmp_path / "plan.md"
    source.write_text(PLAN_4)
    import_plan(task, source)
    app = make_app(board=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: getattr(app.screen, "summaries", None))
        app.open_task(Path(demo.project_root), task.ref)
        await settle(pilot, lambda: isinstance(app.screen, PlanScreen) and app.screen.review is not None)
        await pilot.press("escape")
        await settle(pilot, lambda: isinstance(app.screen, PhaseScreen) and app.screen.choices)
        phases = app.screen

        def implementation():
            return next(c for c in phases.choices if c.phase == "implementation")

        assert implementation().refusal.code == "phase.plan_draft"
        options = phases.query_one(OptionList)
        assert phases.choices[options.highlighted].phase == "planning"
        approve_plan(task)  # as `okstra plan approve` does, in another terminal
        await settle(pilot, lambda: implementation().available)
        assert app.screen is phases
        # the plan it waited for is approved: the cursor moves on to what comes next
        assert phases.choices[options.highlighted].phase == "implementation"


def test_the_phase_picker_lands_on_the_next_step() -> None:
    """Implementation while a stage can start, then final verification, then release handoff."""
    from okstra_engine.slugs import TaskRef
    from okstra_tui.model import PhaseChoice
    from okstra_tui.screens.phases import PhaseScreen

    picker = PhaseScreen(Path("/p"), TaskRef.parse("a/b"))

    class Summary:
        plan = "approved"

    def lands(*choices: PhaseChoice) -> str:
        picker.choices = list(choices)
        return picker.choices[picker._landing(Summary())].phase  # type: ignore[arg-type]

    def phases(implementation, verification, release, marks=()) -> tuple[PhaseChoice, ...]:
        return (
            PhaseChoice("planning", True),
            PhaseChoice("implementation", implementation),
            PhaseChoice("final-verification", verification, mark="verified" if "fv" in marks else None),
            PhaseChoice("improvement-discovery", True),
            PhaseChoice("release-handoff", release, mark="handed-off" if "rh" in marks else None),
        )

    assert lands(*phases(True, False, False)) == "implementation"
    assert lands(*phases(False, True, False)) == "final-verification"
    assert lands(*phases(False, True, True, marks=("fv",))) == "release-handoff"
    assert lands(*phases(False, True, True, marks=("fv", "rh"))) == "implementation"
    Summary.plan = "draft"
    assert lands(*phases(True, True, True)) == "planning"
