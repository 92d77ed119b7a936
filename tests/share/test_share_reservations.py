"""Reservations as refs: a stage another machine holds is refused by name when asked
for, counted in flight everywhere, and can be released from any machine."""

from __future__ import annotations

import json
import os

import pytest

from okstra_engine.projects import load_project
from okstra_engine.refusals import RefusedError
from okstra_engine.share.hooks import reserve
from okstra_engine.slugs import TaskRef
from okstra_engine.status import task_status
from okstra_engine.tasks import load_task
from tests.share.machines import TASK
from tests.support import git


def reserved(remote) -> list[str]:
    return git(remote, "for-each-ref", "--format=%(refname:lstrip=-1)", "refs/okstra/share/root/team/wide/").split()


def test_a_stage_asked_for_that_another_machine_took_is_refused_naming_it(pair, monkeypatch) -> None:
    _, (a, b) = pair
    taken = a.json("prepare", TASK, "--type", "implementation", "--stage", "1")
    # machine b has not fetched since: its gates call stage 1 ready, the remote says no
    monkeypatch.setenv("OKSTRA_HOME", str(b.home))
    task = load_task(load_project(b.clone), TaskRef.parse(TASK))
    status = task_status(task)
    assert status.stages[0].state == "ready"
    with pytest.raises(RefusedError) as caught:
        reserve(task, status, 1, 1, lambda n: f"20260101T000000Z-implementation-s{n}-bbbbbb", pid=None, offline=False)
    refusal = caught.value.refusal
    assert refusal.code == "share.stage_taken"
    assert refusal.params["machine"] == a.json("share", "status")["machine"]
    assert refusal.params["host"] == os.uname().nodename and refusal.params["run"] == taken["run_id"]
    # --stage auto moves on to the next ready stage instead
    assert reserve(task, task_status(task), None, 1, lambda n: f"r-s{n}", pid=None, offline=False)[0] == 2
    # and after a sync, status and prepare count it in flight there
    assert b.json("status", TASK)["stages"][0]["state"] == "in-flight"
    proc = b.run("prepare", TASK, "--type", "implementation", "--stage", "1")
    assert proc.returncode == 2 and "stage 1" in proc.stderr


def test_a_reservation_is_released_from_another_machine(pair) -> None:
    remote, (a, b) = pair
    run = a.json("prepare", TASK, "--type", "implementation")["run_id"]
    assert "s1" in reserved(remote)
    b.ok("share", "sync")
    row = b.json("record", TASK, "--stage", "1", "--status", "released")
    assert row["run_id"] == run
    assert "s1" not in reserved(remote)  # given back with the row that says why
    a.ok("share", "sync")
    assert json.loads(a.ledger_lines()[-1])["status"] == "released"
    assert a.json("status", TASK)["stages"][0]["state"] == "ready"
    assert a.json("prepare", TASK, "--type", "implementation")["stage"] == 1


def test_done_gives_the_stage_back_and_the_next_stage_starts_from_its_commit(pair) -> None:
    from pathlib import Path

    from tests.support import commit

    remote, (a, b) = pair
    run = a.json("prepare", TASK, "--type", "implementation", "--stage", "1")
    sha = commit(Path(run["worktree"]["path"]), {"one.txt": "1\n"}, "stage 1")
    a.ok("record", TASK, "--stage", "1", "--status", "done", "--commit", "HEAD")
    assert "s1" not in reserved(remote)
    # stage 3 depends on 1: machine b starts it from a's done commit, fetched for it
    third = b.json("prepare", TASK, "--type", "implementation", "--stage", "3")
    assert third["worktree"]["base_ref"] == sha
    assert (Path(third["worktree"]["path"]) / "one.txt").read_text() == "1\n"


def test_a_stage_done_elsewhere_brings_its_commit_so_reconcile_does_not_call_it_gone(pair) -> None:
    # another machine's done commit comes with its rows: without it, this machine's
    # reconcile would call the commit gone (`missing`), and no status could tell it merged
    from pathlib import Path

    from tests.support import commit

    _, (a, b) = pair
    run = a.json("prepare", TASK, "--type", "implementation", "--stage", "1")
    sha = commit(Path(run["worktree"]["path"]), {"one.txt": "1\n"}, "stage 1")
    a.ok("record", TASK, "--stage", "1", "--status", "done", "--commit", "HEAD")
    b.ok("share", "sync")
    assert git(b.clone, "cat-file", "-t", sha) == "commit"
    assert [s["kind"] for s in b.json("reconcile", TASK)["suggestions"]] == ["not-merged"]
