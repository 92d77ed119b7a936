"""The TUI's view-model: plain functions over the engine, no Textual."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from okstra_engine.slugs import TaskRef
from tests.tui.conftest import NOW


def _board(demo, minutes: float = 1):
    from okstra_tui.model import load_board

    return load_board(Path(demo.project_root), TaskRef.parse(demo.task), NOW + timedelta(minutes=minutes))


def test_model_does_not_import_textual() -> None:
    probe = "import okstra_tui.model, okstra_tui.i18n, sys; print('textual' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"


def test_phase_choices_are_the_engines_gates(demo) -> None:
    """The picker shows the engine's answer for each phase: its gates, not a copy of them
    (release handoff needs only the approved plan, so the demo may start one)."""
    from okstra_engine.gates import phase_refusals
    from okstra_engine.refusals import Refusal
    from okstra_engine.stage_view import BlockedReason, StageState
    from okstra_engine.status import StageView, TaskStatus, task_status
    from okstra_tui.model import phase_choices

    data = _board(demo)
    status = task_status(data.task, now=NOW + timedelta(minutes=1))
    choices = phase_choices(status)
    assert [(c.phase, c.available, c.refusal) for c in choices] == [
        (phase, refusal is None, refusal) for phase, refusal in phase_refusals(status).items()
    ]
    found = {c.phase: c for c in choices}
    assert found["implementation"].available and not found["release-handoff"].available
    assert found["release-handoff"].refusal == Refusal("phase.not_verified", {"task": "demo/checkout"})
    assert found["final-verification"].refusal == Refusal(
        "phase.stages_not_done", {"task": "demo/checkout", "stages": [3, 4, 5, 6]}
    )
    flying = TaskStatus(
        data.task,
        "x",
        None,
        [
            StageView(1, "a", [], "A", StageState("in-flight"), run_id="r1"),
            StageView(
                2, "b", [1], "B", StageState("blocked"), waits_for=[1], reason=BlockedReason("deps-not-done", (1,))
            ),
        ],
        [],
    )
    found = {c.phase: c for c in phase_choices(flying)}
    assert found["implementation"].refusal == Refusal(
        "phase.nothing_ready",
        {
            "task": "demo/checkout",
            "blocked": [{"stage": 2, "waits_for": [1], "reason": {"code": "deps-not-done", "stages": [1]}}],
            "in_flight": [{"stage": 1, "run": "r1"}],
            "stale": [],
        },
    )
    done = TaskStatus(data.task, "x", None, [StageView(1, "a", [], "A", StageState("done"))], [])
    found = {c.phase: c for c in phase_choices(done)}
    assert found["implementation"].refusal == Refusal("phase.all_done", {"task": "demo/checkout"})


def test_board_data_and_events(demo) -> None:
    from okstra_engine.projects import load_project
    from okstra_engine.record import record
    from okstra_engine.tasks import load_task
    from okstra_tui.live import fingerprint
    from okstra_tui.model import board_events

    before = _board(demo)
    assert before.lanes == [("A", [1]), ("B", [2, 3, 4]), ("C", [5, 6])]
    assert before.hosts[3] == "build-box" and before.last_status[3] == "started"
    assert before.summaries[1].startswith("Order model")
    assert Path(before.worktrees[3]).name == "checkout-s3"
    git_dir = Path(demo.project_root) / ".git"  # the task branch moving changes the board
    assert {git_dir / "packed-refs", git_dir / "refs" / "heads" / "okstra/feature/demo/checkout"} <= set(before.watch)
    stale = _board(demo, minutes=3 * 24 * 60)
    assert board_events(before, stale) == [(3, ("event.stale", {"stage": 3, "why": stale.views[3].stale_reason}))]
    mark = fingerprint(before.watch)
    task = load_task(load_project(Path(demo.project_root)), TaskRef.parse(demo.task))
    record(task, 3, "done", commit=demo.commits["s3_wip"])
    after = _board(demo)
    assert fingerprint(after.watch) != mark
    events = board_events(before, after)
    assert events == [(3, ("event.done", {"stage": 3, "commit": demo.commits["s3_wip"][:8]}))]


def test_stage_diff_bases(demo) -> None:
    from okstra_tui.model import stage_diff

    data = _board(demo)
    two = stage_diff(data, 2)
    assert (two.base, two.head, two.base_from, two.head_from) == (
        demo.commits["s1"],
        demo.commits["s2_recorded"],
        "diff.base.recorded",
        "diff.head.done",
    )
    assert "+def price(" in two.text and not two.truncated
    three = stage_diff(data, 3)  # in flight: its branch so far
    assert (three.head, three.head_from, three.base) == (demo.commits["s3_wip"], "diff.head.branch", demo.commits["s1"])
    assert stage_diff(data, 6) is None
