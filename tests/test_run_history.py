"""Run history: each run of a task with its state and outcome, the files it left (never
through a link), what the runs say of each phase, and the gates that follow from them: a
broken plan waits for no approval, release handoff waits for a passed verification."""

from __future__ import annotations

import pytest

from okstra_engine import gates
from okstra_engine.errors import OkstraError
from okstra_engine.plans import approve_plan, plan_run_root
from okstra_engine.prepare import PrepareOptions, prepare
from okstra_engine.refusals import Refusal
from okstra_engine.run_history import phase_marks, read_output, task_runs
from okstra_engine.slugs import TaskRef
from okstra_engine.stage_map import read_draft
from okstra_engine.status import task_status
from okstra_engine.tasks import new_task
from okstra_tui.model import plan_state
from tests.support import PLAN_BROKEN as CYCLE
from tests.support import a_run


def test_a_broken_plan_waits_for_no_approval_and_shows_its_problems_row_by_row(task) -> None:
    bare = new_task(task.project, TaskRef.parse("auth/bare"), title="Bare")
    run = a_run(bare, "20260610T120000Z-planning-aaaaaa", "planning", {"plan.md": CYCLE})
    status = task_status(bare)
    refusal = gates.plan_refusal(bare)
    assert refusal.code == "phase.plan_broken" and refusal.params["run"] == run.name
    assert "depends on unknown stage 9" in refusal.params["what"]
    assert plan_state(bare, status) == "broken"
    with pytest.raises(OkstraError):
        approve_plan(bare)
    draft = read_draft(run)
    assert [s.stage for s in draft.stages] == [1, 2, 3, 4] and draft.stage_map is None
    assert {p.stage: p.what.split(": ", 1)[1] for p in draft.problems} == {
        4: "line 12: stage 4 depends on unknown stage 9"
    }
    (run / "plan.md").write_text(CYCLE.replace("| 9 ", "| - "))
    draft = read_draft(run)
    assert sorted(p.stage for p in draft.problems) == [1, 2, 3]
    assert "stage cycle: 1 -> 3 -> 2 -> 1 (lines 9, 10, 11)" in draft.problems[0].what
    (run / "plan.md").write_text(CYCLE.replace("| 9 ", "| - ").replace("| 3          | A", "| -          | A"))
    assert read_draft(run).stage_map is not None
    assert plan_state(bare, task_status(bare)) == "draft"
    assert gates.plan_refusal(bare) == Refusal("phase.plan_draft", {"task": "auth/bare"})


def test_release_handoff_waits_for_a_passed_final_verification(task) -> None:
    plan = plan_run_root(task)
    assert plan is not None
    verify = {"plan_run": str(plan.dir), "agent": {"name": "claude", "version": None, "teams": "implicit"}}
    assert gates.phase_refusal(task_status(task), "release-handoff") == Refusal(
        "phase.not_verified", {"task": "auth/login"}
    )
    a_run(
        task,
        "20260610T120000Z-final-verification-aaaaaa",
        "final-verification",
        {"verification.md": "PASS\n"},
        **verify,
    )
    failed = a_run(
        task,
        "20260610T130000Z-final-verification-bbbbbb",
        "final-verification",
        {"verification.md": "**FAIL**: no\n"},
        **verify,
    )
    # one stage's verification says nothing of the whole task
    a_run(
        task,
        "20260610T140000Z-final-verification-s1-cccccc",
        "final-verification",
        {"verification.md": "PASS\n"},
        stage=1,
        **verify,
    )
    status = task_status(task)
    assert gates.phase_refusal(status, "release-handoff") == Refusal(
        "phase.verification_failed", {"task": "auth/login", "run": failed.name, "verdict": "FAIL"}
    )
    assert phase_marks(task_runs(task, status), status.plan_run) == {"final-verification": "verification-failed"}
    a_run(
        task,
        "20260610T150000Z-final-verification-dddddd",
        "final-verification",
        {"verification.md": "# PASS\n"},
        **verify,
    )
    status = task_status(task)
    assert gates.phase_refusal(status, "release-handoff") is None
    prepare(task, PrepareOptions("release-handoff", workers=("claude",)))
    status = task_status(task)
    assert phase_marks(task_runs(task, status), status.plan_run) == {"final-verification": "verified"}


def test_the_history_lists_each_run_and_reads_its_files_never_through_a_link(task, tmp_path) -> None:
    prepare(task, PrepareOptions("implementation"))
    status = task_status(task)
    runs = task_runs(task, status)
    newest, plan = runs[0], runs[-1]
    assert (newest.phase, newest.stage, newest.state, newest.outcome) == ("implementation", 1, "prepared", "in-flight")
    assert newest.outputs == ("prompt.md",) and newest.agent is not None
    assert (plan.phase, plan.outcome, plan.state) == ("planning", "current", "finished")
    assert plan.outputs == ("plan.md",)
    (newest.dir / "report.md").write_text("# Stage 1\nall good\n")
    assert read_output(task, newest.run_id, "report.md") == "# Stage 1\nall good\n"
    assert task_runs(task, status)[0].state == "finished"
    secret = tmp_path / "secret.md"
    secret.write_text("not okstra's")
    (newest.dir / "verification.md").symlink_to(secret)
    assert "verification.md" not in task_runs(task, status)[0].outputs
    with pytest.raises(OkstraError):
        read_output(task, newest.run_id, "verification.md")
    with pytest.raises(OkstraError):
        read_output(task, newest.run_id, "../../task.json")
