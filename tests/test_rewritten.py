"""A stage's branch moved after it was recorded done, on real repositories: amended,
rebased or reset (`rewritten`: shown by reconcile and the board, refused by the handoff),
or moved on past the done commit (the commits left behind, named by the handoff), and
final verification of one stage checks its done commit, not its worktree's tip."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

import pytest

from okstra_engine.handoff import HandoffError, handoff_plan, run_handoff
from okstra_engine.prepare import PrepareOptions, prepare
from okstra_engine.record import record
from okstra_engine.tasks import stage_branch
from okstra_engine.worktrees import task_target
from tests.support import commit, git, run_cli

TASK = "auth/login"


def _stage_one_done(task) -> tuple[Path, str]:
    """Stage 1 prepared, its work committed in its worktree and recorded done there."""
    worktree = Path(prepare(task, PrepareOptions("implementation", stage="1")).manifest.worktree.path)
    done = commit(worktree, {"schema.py": "SCHEMA = 1\n"}, "stage 1")
    code, _, err = run_cli("record", TASK, "--stage", "1", "--status", "done", "--commit", "HEAD", cwd=worktree)
    assert code == 0, err
    return worktree, done


def _amend(worktree: Path) -> str:
    (worktree / "schema.py").write_text("SCHEMA = 2  # fixed after done\n")
    git(worktree, "commit", "-q", "--all", "--amend", "--no-edit")
    return git(worktree, "rev-parse", "HEAD")


def _cli(worktree: Path, *args: str) -> tuple[int, str, str]:
    return run_cli(*args, cwd=worktree)


def _suggestions(worktree: Path) -> list[dict]:
    code, out, err = _cli(worktree, "reconcile", TASK, "--json")
    assert code == 0, err
    return json.loads(out)["suggestions"]


def _handoffs(task) -> str:
    from okstra_engine.plans import plan_run_root

    path = plan_run_root(task).dir / "handoffs.jsonl"
    return path.read_text() if path.exists() else ""


# ---------------------------------------------------------------------------- rewritten


def test_an_amend_after_done_is_rewritten_and_the_handoff_refuses_it(task) -> None:
    worktree, done = _stage_one_done(task)
    tip = _amend(worktree)
    task_wt = task_target(task).path
    before = git(task_wt, "rev-parse", "HEAD")

    assert _suggestions(worktree) == [
        {"stage": 1, "recorded": done, "suggested": tip, "kind": "rewritten", "ambiguous": False}
    ]
    code, out, _ = _cli(worktree, "reconcile", TASK)
    assert f"stage 1: {done[:8]} -> {tip[:8]} (rewritten)" in out and "no longer contains" in out
    assert f"--commit {tip}" in out
    # the board's reconcile panel lists it (a person must choose), auto-reconcile leaves it
    from okstra_tui.model import load_suggestions

    assert [(s.stage, s.kind, s.suggested, s.applicable) for s in load_suggestions(task)] == [
        (1, "rewritten", tip, False)
    ]

    code, out, err = _cli(worktree, "handoff", TASK, "--merge", "--json")
    assert code == 2
    assert f"stage 1's branch {stage_branch(task, 1)} no longer contains its done commit {done[:8]}" in err
    assert f"the branch is at {tip[:8]}" in err
    assert f"okstra record {TASK} --stage 1 --status done --commit {tip}" in err  # accept the new work
    assert f"git -C {shlex.quote(str(worktree))} reset --keep {done}" in err  # or reset the branch
    doc = json.loads(out)
    assert doc["plan"][0]["kind"] == "rewritten" and doc["plan"][0]["action"] == "refused"
    assert git(task_wt, "rev-parse", "HEAD") == before and _handoffs(task) == ""  # nothing merged

    # the first way out: accept the amended work; the handoff then merges it, not the old commit
    code, _, err = _cli(worktree, "record", TASK, "--stage", "1", "--status", "done", "--commit", "HEAD")
    assert code == 0, err
    result = run_handoff(task, "A", merge=True)
    assert result.merged == [1] and git(task_wt, "rev-parse", f"{result.merge_commits[1]}^2") == tip
    assert (task_wt / "schema.py").read_text() == "SCHEMA = 2  # fixed after done\n"


def test_a_rebase_after_done_is_rewritten_and_resetting_the_branch_clears_it(task) -> None:
    worktree, done = _stage_one_done(task)
    task_wt = task_target(task).path
    commit(task_wt, {"README.md": "hello, task\n"}, "the task branch moved on")
    git(worktree, "rebase", "-q", git(task_wt, "rev-parse", "HEAD"))
    tip = git(worktree, "rev-parse", "HEAD")
    assert tip != done
    assert [(s["kind"], s["suggested"]) for s in _suggestions(worktree)] == [("rewritten", tip)]
    with pytest.raises(HandoffError) as caught:
        run_handoff(task, "A", merge=True)
    refusal = caught.value.plan.refused[1]
    assert refusal.code == "handoff.rewritten" and (refusal.params["commit"], refusal.params["tip"]) == (done, tip)

    # the second way out, as printed: put the branch back at the done commit
    subprocess.run(shlex.split(refusal.params["reset"]), check=True, capture_output=True)
    assert git(worktree, "rev-parse", "HEAD") == done
    assert [s["kind"] for s in _suggestions(worktree)] == ["not-merged"]
    assert run_handoff(task, "A", merge=True).merged == [1]


def test_a_reset_after_done_is_rewritten(task) -> None:
    worktree, done = _stage_one_done(task)
    git(worktree, "reset", "-q", "--hard", "HEAD~1")
    base = git(worktree, "rev-parse", "HEAD")
    assert [(s["recorded"], s["suggested"], s["kind"]) for s in _suggestions(worktree)] == [(done, base, "rewritten")]
    plan = handoff_plan(task, "A")
    assert plan.refused[1].code == "handoff.rewritten" and plan.stage(1).kind == "rewritten"


def test_a_squash_of_the_stage_on_the_task_branch_is_not_rewritten(task) -> None:
    """A stage corrected to the squash that landed it: its branch never held that commit."""
    worktree, done = _stage_one_done(task)
    task_wt = task_target(task).path
    git(task_wt, "merge", "-q", "--squash", done)
    git(task_wt, "commit", "-q", "-m", "stage 1, squashed")
    squash = git(task_wt, "rev-parse", "HEAD")
    assert run_cli("reconcile", TASK, "--stage", "1", "--commit", squash, cwd=worktree)[0] == 0
    assert _suggestions(worktree) == []
    result = run_handoff(task, "A", merge=True)
    assert (result.merged, result.already_merged, result.plan.stage(1).left_behind) == ([], [1], [])


# ---------------------------------------------------------------------------- left behind


def test_commits_after_the_done_commit_are_left_behind_and_listed(task) -> None:
    worktree, done = _stage_one_done(task)
    later = [commit(worktree, {f"later{i}.py": f"x = {i}\n"}, f"after done {i}") for i in (1, 2)]

    code, out, err = _cli(worktree, "handoff", TASK)
    assert code == 0, err
    line = next(x for x in out.splitlines() if x.startswith("  stage 1 (Schema):"))
    assert (
        f"would merge {done[:8]}" in line
        and f"2 commits after it on its branch left behind (tip {later[-1][:8]})" in line
    )
    code, out, err = _cli(worktree, "handoff", TASK, "--json")
    doc = json.loads(out)
    assert doc["left_behind"] == {"1": later} and doc["plan"][0]["left_behind"] == later

    code, out, err = _cli(worktree, "handoff", TASK, "--merge", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["merged"] == [1] and doc["left_behind"] == {"1": later}
    task_wt = task_target(task).path
    assert (task_wt / "schema.py").exists() and not (task_wt / "later1.py").exists()  # the done commit only
    assert git(task_wt, "rev-parse", "HEAD^2") == done


# ---------------------------------------------------------------------------- final verification


def _verify_stage_one(worktree: Path) -> tuple[int, str, str]:
    return run_cli("prepare", TASK, "--type", "final-verification", "--stage", "1", "--json", cwd=worktree)


def test_final_verification_of_a_stage_refuses_a_worktree_past_its_done_commit(task) -> None:
    worktree, done = _stage_one_done(task)
    later = commit(worktree, {"wip.py": "x = 1\n"}, "not handed off")
    code, _, err = _verify_stage_one(worktree)
    assert code == 2
    assert f"stage 1's worktree {worktree} is at {later[:8]}, not at the stage's done commit {done[:8]}" in err
    assert f"okstra record {TASK} --stage 1 --status done --commit {later}" in err
    assert f"reset --keep {done}" in err
    record(task, 1, "done", commit=later)  # the new work, accepted
    code, out, err = _verify_stage_one(worktree)
    assert code == 0, err
    assert later[:8] in json.loads(out)["worktree"]["note"]


def test_final_verification_of_an_amended_stage_is_refused(task) -> None:
    worktree, done = _stage_one_done(task)
    tip = _amend(worktree)
    code, _, err = _verify_stage_one(worktree)
    assert code == 2 and f"is at {tip[:8]}, not at the stage's done commit {done[:8]}" in err
    git(worktree, "reset", "-q", "--keep", done)  # put back
    code, _, err = _verify_stage_one(worktree)
    assert code == 0, err
