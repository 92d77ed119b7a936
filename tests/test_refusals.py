"""Typed refusals: the gate functions (`gates`) answer what `prepare` and `handoff`
refuse, with the same code and params, and the CLI prints the refusal's words (exit 2)."""

from __future__ import annotations

import json
import subprocess

import pytest

from okstra_engine import gates
from okstra_engine.errors import OkstraError
from okstra_engine.handoff import HandoffError, run_handoff
from okstra_engine.ledger import append_row, new_row
from okstra_engine.plans import import_plan, plan_run_root
from okstra_engine.prepare import PrepareOptions, prepare
from okstra_engine.projects import init_project, load_project
from okstra_engine.record import record
from okstra_engine.refusals import Refusal, RefusedError, codes
from okstra_engine.slugs import TaskRef
from okstra_engine.stage_view import StageState
from okstra_engine.status import task_status
from okstra_engine.tasks import load_task, new_task
from okstra_engine.worktrees import stage_target, task_target
from tests.support import call, commit, git

TASK = "auth/login"


def refused_by_prepare(task, phase: str = "implementation", stage: str = "auto") -> Refusal:
    with pytest.raises(RefusedError) as caught:
        prepare(task, PrepareOptions(phase, stage=stage))
    return caught.value.refusal


def finish(task, stage: int) -> str:
    sha = commit(stage_target(task, stage).path, {f"stage{stage}.py": f"s = {stage}\n"}, f"stage {stage}")
    record(task, stage, "done", commit=sha)
    return sha


def a_task_in_every_state(task) -> None:
    """Stage 1 done (not merged), 2 in flight, 3 stale, 4 blocked; then 5 (no deps) ready."""
    prepare(task, PrepareOptions("implementation"))
    finish(task, 1)
    prepare(task, PrepareOptions("implementation", stage="2"))
    dead = subprocess.Popen(["true"])
    dead.wait()
    append_row(
        plan_run_root(task).dir / "consumers.jsonl",
        new_row(3, "reserved", run_id="run-dead", impl_task_key=task.key, pid=dead.pid),
    )


def test_each_stage_state_refuses_prepare_with_the_gate_functions_answer(task, capsys) -> None:
    a_task_in_every_state(task)
    status = task_status(task)
    states = {v.stage: v.state for v in status.stages}
    assert states == {1: StageState.NOT_MERGED, 2: StageState.IN_FLIGHT, 3: StageState.STALE, 4: StageState.BLOCKED}
    expected = {1: "stage.done", 2: "stage.in_flight", 3: "stage.stale", 4: "stage.blocked"}
    for n, code in expected.items():
        refusal = gates.stage_refusal(status, n)
        assert refusal is not None and refusal.code == code
        assert refused_by_prepare(task, stage=str(n)) == refusal
        # the CLI prints the refusal's words and exits 2
        status_code, out, err = call(
            capsys, "--project", str(task.project.root), "prepare", TASK, "--type", "implementation", "--stage", str(n)
        )
        assert status_code == 2 and out == ""
        assert err == f"okstra: {refusal.what}\n  fix: {refusal.how}\n"
    for n in (1, 2, 3, 4, 9):  # what the TUI asks for a stage: the same answer
        assert gates.prepare_refusal(status, "implementation", n) == gates.stage_refusal(status, n)
    assert gates.stage_refusal(status, 9) == refused_by_prepare(task, stage="9")
    assert gates.stage_refusal(status, 9).params["stages"] == [1, 2, 3, 4]
    # the params are plain JSON
    for n in (1, 2, 3, 4):
        params = gates.stage_refusal(status, n).params
        assert json.loads(json.dumps(params)) == params
    assert gates.stage_refusal(status, 3).params["why"].startswith("agent pid")
    assert gates.stage_refusal(status, 4).params["waits_for"] == [2, 3]


def test_phase_refusals_match_what_prepare_refuses(task) -> None:
    status = task_status(task)
    found = gates.phase_refusals(status)
    assert list(found) == [
        "planning",
        "implementation",
        "final-verification",
        "improvement-discovery",
        "release-handoff",
    ]
    assert found["planning"] is None and found["implementation"] is None
    assert found["improvement-discovery"] is None
    # release handoff comes after a passed final verification (`test_run_history` passes one)
    assert found["release-handoff"] == Refusal("phase.not_verified", {"task": TASK})
    assert refused_by_prepare(task, "release-handoff") == found["release-handoff"]
    assert found["final-verification"] == Refusal("phase.stages_not_done", {"task": TASK, "stages": [1, 2, 3, 4]})
    assert refused_by_prepare(task, "final-verification") == found["final-verification"]

    prepare(task, PrepareOptions("implementation"))  # stage 1 in flight, nothing else ready
    refusal = gates.phase_refusal(task_status(task), "implementation")
    assert refusal is not None and refusal.code == "phase.nothing_ready"
    assert refusal.params["blocked"] == [
        {"stage": n, "waits_for": w, "reason": {"code": "deps-not-done", "stages": w}}
        for n, w in ((2, [1]), (3, [1]), (4, [2, 3]))
    ]
    assert [f["stage"] for f in refusal.params["in_flight"]] == [1] and refusal.params["stale"] == []
    assert refused_by_prepare(task) == refusal


def test_every_stage_done_refuses_implementation(task, tmp_path) -> None:
    source = tmp_path / "one.json"
    source.write_text(json.dumps({"stages": [{"stage": 1, "title": "Only", "depends_on": []}]}))
    one = new_task(task.project, TaskRef.parse("auth/one"), title="One")
    import_plan(one, source, approve=True)
    prepare(one, PrepareOptions("implementation"))
    finish(one, 1)
    refusal = gates.phase_refusal(task_status(one), "implementation")
    assert refusal == Refusal("phase.all_done", {"task": "auth/one"})
    assert refused_by_prepare(one) == refusal


def test_no_plan_a_draft_plan_and_no_qa_commands(task, tmp_path, plan_file) -> None:
    bare = new_task(task.project, TaskRef.parse("auth/bare"), title="Bare")
    for phase in ("implementation", "final-verification", "release-handoff"):
        refusal = gates.phase_refusal(task_status(bare), phase)
        assert refusal == Refusal("phase.no_plan", {"task": "auth/bare"})
        assert refused_by_prepare(bare, phase) == refusal
    assert gates.phase_refusal(task_status(bare), "improvement-discovery") is None
    import_plan(bare, plan_file)
    assert gates.phase_refusal(task_status(bare), "implementation") == Refusal(
        "phase.plan_draft", {"task": "auth/bare"}
    )
    assert refused_by_prepare(bare, "implementation").code == "phase.plan_draft"

    repo = tmp_path / "noqa"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    commit(repo, {"a": "a\n"}, "a")
    project, _ = init_project(repo)
    noqa = new_task(project, TaskRef.parse("x/y"), title="Y")
    import_plan(noqa, plan_file, approve=True)
    refusal = gates.phase_refusal(task_status(noqa), "implementation")
    assert refusal is not None and refusal.code == "phase.no_qa" and refusal.params["project"] == project.id
    assert refused_by_prepare(noqa) == refusal
    # a stage of it: the phase's setup is refused first, as prepare does
    assert gates.prepare_refusal(task_status(noqa), "implementation", 1) == refusal
    assert refused_by_prepare(noqa, stage="1") == refusal


def test_final_verification_of_an_unmerged_stage_has_one_code(task) -> None:
    prepare(task, PrepareOptions("implementation"))
    finish(task, 1)
    for n in (2, 3):
        prepare(task, PrepareOptions("implementation", stage=str(n)))
        finish(task, n)
    git(
        task_target(task).path,
        "merge",
        "-q",
        "--no-edit",
        "okstra/feature/auth/login-s2",
        "okstra/feature/auth/login-s3",
    )
    prepare(task, PrepareOptions("implementation"))
    finish(task, 4)
    status = task_status(task)
    from_status = gates.phase_refusal(status, "final-verification")
    from_prepare = refused_by_prepare(task, "final-verification")
    assert from_status is not None and from_status.code == from_prepare.code == "phase.stages_not_merged"
    assert (
        from_status.params["stages"]
        == from_prepare.params["stages"]
        == [{"stage": 4, "commit": status.stages[3].done_commit}]
    )
    assert from_status.params["head"] is None and from_prepare.params["head"] == git(
        task_target(task).path, "rev-parse", "HEAD"
    )
    assert "okstra handoff auth/login --merge" in from_prepare.how and from_prepare.params["fix"]


def test_handoff_refusals_are_the_gate_functions_answer(task, capsys) -> None:
    a_task_in_every_state(task)
    git(task_target(task).path, "merge", "-q", "--no-edit", "okstra/feature/auth/login-s1")
    assert run_handoff(task, "A", merge=True).merged == []  # stage 1 is in already (merged by hand)
    with pytest.raises(HandoffError) as caught:
        run_handoff(task, "B", merge=True)
    status = task_status(task)
    assert caught.value.plan.refused == {2: gates.handoff_refusal(status, 2), 3: gates.handoff_refusal(status, 3)}
    assert [r.code for r in caught.value.plan.refused.values()] == ["handoff.in_flight", "handoff.stale"]
    assert gates.handoff_refusal(status, 1) is None
    assert gates.handoff_refusal(status, 4) == Refusal(
        "handoff.blocked", {"task": TASK, "stage": 4, "waits_for": [2, 3]}
    )
    code, _, err = call(capsys, "--project", str(task.project.root), "handoff", TASK, "--group", "B")
    assert code == 2
    for refusal in caught.value.plan.refused.values():
        assert refusal.what in err and refusal.how in err


def test_releasing_a_stage_without_a_reservation_is_the_gate_functions_answer(task, capsys) -> None:
    prepare(task, PrepareOptions("implementation"))  # stage 1 reserved
    ledger = task_status(task).ledger
    assert gates.release_refusal(task, ledger, 1) is None
    refusal = gates.release_refusal(task, ledger, 2)
    assert refusal == Refusal("release.no_reservation", {"task": TASK, "stage": 2, "latest": None})
    with pytest.raises(RefusedError) as caught:
        record(task, 2, "released")
    assert caught.value.refusal == refusal
    record(task, 1, "released")
    again = gates.release_refusal(task, task_status(task).ledger, 1)
    assert again is not None and again.params["latest"] == "released"
    code, _, err = call(
        capsys, "--project", str(task.project.root), "record", TASK, "--stage", "1", "--status", "released"
    )
    assert code == 2 and err == f"okstra: {again.what}\n  fix: {again.how}\n"
    assert again.what == "stage 1 has no reservation to release (its latest row is released)"


def test_every_code_has_words_and_refuses_as_an_okstra_error() -> None:
    samples = {
        "task": TASK,
        "stage": 2,
        "stages": [1, 2],
        "phase": "nope",
        "phases": ["planning"],
        "project": "p",
        "root": "/r",
        "blocked": [{"stage": 2, "waits_for": [1]}],
        "in_flight": [{"stage": 1, "run": "r1"}],
        "stale": [{"stage": 3, "run": None, "why": "gone"}],
        "head": "a" * 40,
        "fix": "merge it",
        "path": "/w",
        "paths": ["a", "b"],
        "branch": "b",
        "commit": "c" * 40,
        "run": "r",
        "since": "2026-06-10T12:00:00Z",
        "why": "w",
        "waits_for": [1],
        "dep": 1,
        "deps": [1, 3],
        "unmerged": [{"stage": 1, "commit": "d" * 40}],
        "worktree": "/wt",
        "base": "e" * 40,
        "tip": "f" * 40,
        "fixes": [{"stage": 1, "fix": "merge it"}],
        "latest": "done",
        "task_branch": "okstra/feature/auth/login",
        "task_tip": "9" * 40,
        "record": "okstra record auth/login --stage 2 --status done --commit " + "f" * 40,
        "reset": "git -C /wt reset --keep " + "c" * 40,
        "group": "B",
        "conflicts": [{"stage": 3, "title": "Exporter", "files": ["a.py"]}],
        "merges": [{"stage": 2, "commit": "d" * 40}, {"stage": 3, "commit": "e" * 40}],
        "groups": ["B"],
        "branches": ["okstra/feature/auth/login-s1"],
        "operation": "merge",
        "file": "/r/.worktreeinclude",
        "line": 3,
        "pattern": "../secrets.env",
        "target": "/etc/secrets.env",
        "command": "npm ci",
        "code": 1,
        "log": "/r/.okstra/tasks/auth/login/runs/r/setup.log",
        "tail": "npm ERR! missing package.json",
        "first": 20000,
        "last": 29999,
        "block": 10,
        "what": "plan.md: line 9: stage 2 depends on unknown stage 7",
        "verdict": "FAIL",
        "machine": "0123456789abcdef",
        "host": "laptop",
        "remote": "origin",
        "error": "origin did not answer in 5 s",
    }
    samples_for = {
        "phase.stages_not_merged": {"stages": [{"stage": 1, "commit": "e" * 40}]},
        "plan.replaces_progress": {"plan": "r0", "total": 4, "started": [1, 2], "done": [1], "in_flight": [2]},
        "record.run_elsewhere": {"run_stage": 2, "plan": "p0", "current": "p1"},
    }
    for code in codes():
        refusal = Refusal(code, {**samples, **samples_for.get(code, {})})
        assert refusal.what and refusal.how and "{" not in refusal.what + refusal.how, code
        error = refusal.error()
        assert (
            isinstance(error, OkstraError)
            and error.refusal is refusal
            and str(error) == f"{refusal.what}\n{refusal.how}"
        )
    assert Refusal("stage.in_flight", {**samples}).what.endswith("(since 2026-06-10 12:00 UTC)")
    with pytest.raises(ValueError, match="unknown refusal code"):
        Refusal("stage.nope")


def test_a_refusal_is_the_same_from_a_reloaded_task(task) -> None:
    """What the TUI computes in its own process (a task loaded again) equals the CLI's."""
    a_task_in_every_state(task)
    again = load_task(load_project(task.project.root), task.ref)
    assert gates.stage_refusal(task_status(again), 2) == gates.stage_refusal(task_status(task), 2)
