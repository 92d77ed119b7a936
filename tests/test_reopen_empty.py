"""A stage that legitimately changes nothing (`record --status done --empty`) and a stage
recorded done by mistake (`record --status reopened`), on real repositories, through the
console script an agent runs from its worktree."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from okstra_engine import gates, reconcile
from okstra_engine.carry import CarrySidecar, write_carry
from okstra_engine.errors import OkstraError
from okstra_engine.handoff import HandoffError, run_handoff
from okstra_engine.ledger import LEDGER_NAME, read_ledger
from okstra_engine.plans import plan_run_root
from okstra_engine.prepare import PrepareOptions, prepare
from okstra_engine.record import record
from okstra_engine.status import task_status
from tests.support import commit, git, run_cli

TASK = "auth/login"


def _ledger(task) -> Path:
    return plan_run_root(task).dir / LEDGER_NAME


def _record(worktree: Path, stage: int, *args: str) -> tuple[int, str, str]:
    return run_cli("record", TASK, "--stage", str(stage), *args, cwd=worktree)


def _status(worktree: Path) -> dict[int, dict]:
    code, out, err = run_cli("status", TASK, "--json", cwd=worktree)
    assert code == 0, err
    return {s["stage"]: s for s in json.loads(out)["stages"]}


def _started(task, stage: int) -> Path:
    return Path(prepare(task, PrepareOptions("implementation", stage=str(stage))).manifest.worktree.path)


# ---------------------------------------------------------------------------- --empty


def test_a_stage_that_changes_nothing_is_done_at_its_base_with_empty(task) -> None:
    worktree = _started(task, 1)
    base = git(worktree, "rev-parse", "HEAD")
    code, _, err = _record(worktree, 1, "--status", "done", "--commit", "HEAD")  # nothing committed
    assert code == 2 and "nothing was committed" in err
    assert f"okstra record {TASK} --stage 1 --status done --empty" in err  # the fix names --empty

    code, out, err = _record(worktree, 1, "--status", "done", "--empty")  # no --commit: its base
    assert code == 0, err
    assert f"stage 1 done at {base[:8]} (empty: it changes nothing)" in out
    row = read_ledger(_ledger(task)).rows[-1]
    assert (row.status, row.head_commit, row.empty) == ("done", base, True)
    assert json.loads(_ledger(task).read_text().splitlines()[-1])["empty"] is True
    assert git(task.project.root, "rev-parse", f"refs/okstra/{task.key}/s1/{base}") == base  # pinned

    stages = _status(worktree)
    assert stages[1]["state"] == "done" and stages[1]["empty"] is True and stages[1]["done_commit"] == base
    assert stages[2]["state"] == stages[3]["state"] == "ready" and stages[2]["empty"] is False
    # its group hands off as already merged: nothing of it to merge
    result = run_handoff(task, "A", merge=True)
    assert (result.merged, result.already_merged) == ([], [1])


def test_empty_with_a_commit_of_the_stages_work_is_refused(task) -> None:
    worktree = _started(task, 1)
    base = git(worktree, "rev-parse", "HEAD")
    work = commit(worktree, {"schema.py": "x = 1\n"}, "stage 1")
    before = _ledger(task).read_bytes()
    code, _, err = _record(worktree, 1, "--status", "done", "--empty", "--commit", "HEAD")
    assert code == 2 and f"--empty at {work[:8]}, not at the commit it started from (base {base[:8]})" in err
    assert _ledger(task).read_bytes() == before
    code, _, err = _record(worktree, 1, "--status", "done", "--empty", "--commit", base)  # its base, named
    assert code == 0, err
    code, _, err = _record(worktree, 1, "--status", "started", "--empty")
    assert code == 2 and "--empty goes with --status done" in err


# ---------------------------------------------------------------------------- reopened


def test_a_stage_done_by_mistake_is_reopened_and_ready_again(task) -> None:
    worktree = _started(task, 1)
    done = commit(worktree, {"schema.py": "half = 1\n"}, "half of stage 1")
    assert _record(worktree, 1, "--status", "done", "--commit", "HEAD")[0] == 0
    assert _status(worktree)[2]["state"] == "ready"
    assert [s.kind for s in reconcile.suggestions(task)] == ["not-merged"]
    write_carry(plan_run_root(task).dir, CarrySidecar(stage=1, head_commit=done, impl_task_key=task.key))
    before = _ledger(task).read_bytes()

    code, out, err = _record(worktree, 1, "--status", "reopened", "--reason", "recorded done by mistake")
    assert code == 0, err
    assert f"stage 1 reopened (its done at {done[:8]} taken back)" in out
    after = _ledger(task).read_bytes()
    assert after.startswith(before) and after.count(b"\n") == before.count(b"\n") + 1  # the ledger only grows
    row = read_ledger(_ledger(task)).rows[-1]
    assert (row.status, row.replaces, row.reason) == ("reopened", done, "recorded done by mistake")

    # ready again, its dependents blocked again, though a carry sidecar names the old commit
    stages = _status(worktree)
    assert stages[1]["state"] == "ready" and stages[1]["done_commit"] is None
    assert [(stages[n]["state"], stages[n]["waits_for"]) for n in (2, 3)] == [("blocked", [1])] * 2
    # its earlier done commit is not done for reconcile, the gates and the handoff
    assert reconcile.suggestions(task) == []
    status = task_status(task)
    assert gates.stage_refusal(status, 1, "final-verification").code == "verify.stage_not_done"
    assert gates.stage_refusal(status, 1) is None
    with pytest.raises(HandoffError) as caught:
        run_handoff(task, "A", merge=True)
    assert [r.code for r in caught.value.plan.refused.values()] == ["handoff.not_started"]
    with pytest.raises(OkstraError, match="has no done commit to correct"):
        reconcile.correct(task, 1, done)

    # prepare takes it (its worktree and work kept), and it is done again at the finished work
    again = prepare(task, PrepareOptions("implementation", stage="auto"))
    assert again.manifest.stage == 1 and Path(again.manifest.worktree.path) == worktree
    assert git(worktree, "rev-parse", "HEAD") == done
    finished = commit(worktree, {"schema.py": "whole = 1\n"}, "the rest of stage 1")
    assert _record(worktree, 1, "--status", "done", "--commit", "HEAD")[0] == 0
    assert _status(worktree)[1]["done_commit"] == finished


def test_a_reopened_stage_whose_dependency_is_reopened_too_is_blocked(task) -> None:
    worktree = _started(task, 1)
    commit(worktree, {"schema.py": "x = 1\n"}, "stage 1")
    record(task, 1, "done", commit="HEAD")
    run_handoff(task, "A", merge=True)
    two = _started(task, 2)
    commit(two, {"importer.py": "x = 2\n"}, "stage 2")
    record(task, 2, "done", commit="HEAD")
    record(task, 1, "reopened", reason="schema is wrong")
    assert _status(two)[2]["state"] == "not-merged"  # its own done stands until it is reopened too
    record(task, 2, "reopened", reason="built on the wrong schema")
    stages = _status(two)
    assert (stages[1]["state"], stages[2]["state"], stages[2]["waits_for"]) == ("ready", "blocked", [1])


def test_reopen_refuses_a_stage_that_is_not_done(task) -> None:
    worktree = _started(task, 1)
    before = _ledger(task).read_bytes()
    code, _, err = _record(worktree, 1, "--status", "reopened", "--reason", "r")
    assert code == 2 and "stage 1 is not done (its latest row is reserved): there is nothing to reopen" in err
    code, _, err = _record(worktree, 2, "--status", "reopened", "--reason", "r")
    assert code == 2 and "stage 2 is not done (its latest row is none)" in err
    commit(worktree, {"schema.py": "x = 1\n"}, "stage 1")
    assert _record(worktree, 1, "--status", "done", "--commit", "HEAD")[0] == 0
    code, _, err = _record(worktree, 1, "--status", "reopened")
    assert code == 2 and "needs a reason" in err and "--reason" in err
    code, _, err = _record(worktree, 1, "--status", "done", "--commit", "HEAD", "--reason", "r")
    assert code == 2 and "--reason goes with --status reopened" in err
    assert _record(worktree, 1, "--status", "reopened", "--reason", "not yet")[0] == 0
    code, _, err = _record(worktree, 1, "--status", "reopened", "--reason", "twice")
    assert code == 2 and "latest row is reopened" in err
    assert len(read_ledger(_ledger(task)).rows) == len(before.splitlines()) + 2
