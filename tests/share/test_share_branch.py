"""The task branch travels: a handoff on one machine publishes it as `…/head` on the
remote (fast-forward only, expecting the head last fetched), and every sync
fast-forwards the other machines' task branches to it, so a stage whose dependencies
were handed off elsewhere is ready everywhere."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.share.machines import TASK, Machine, bare_remote, machines, shared_task
from tests.share.test_share_offline import cut, mend
from tests.support import commit, git, mutex_held_by

HEAD_THERE = "refs/okstra/share/root/team/wide/head"
HEAD_FETCHED = "refs/okstra/remote/origin/root/team/wide/head"

THREE = """---
title: three stages on two machines, the fourth after all three
---
# Plan

## Stage Map
| Stage | Title    | Depends on | Group |
|-------|----------|------------|-------|
| 1     | Schema   | -          | L1    |
| 2     | Importer | -          | L1    |
| 3     | CLI      | -          | L1    |
| 4     | Report   | 1, 2, 3    | L2    |
| 5     | Docs     | -          | L3    |
"""

TWO = """---
title: two groups on two machines, the third stage after both
---
# Plan

## Stage Map
| Stage | Title    | Depends on | Group |
|-------|----------|------------|-------|
| 1     | Schema   | -          | L1    |
| 2     | Importer | -          | L2    |
| 3     | Report   | 1, 2       | L3    |
"""


def fleet_of(tmp_path: Path, count: int, plan_text: str) -> tuple[Path, list[Machine]]:
    remote = bare_remote(tmp_path)
    fleet = machines(tmp_path, remote, count)
    plan = tmp_path / "plan.md"
    plan.write_text(plan_text)
    shared_task(tmp_path, fleet, plan)
    return remote, fleet


def take(machine: Machine, stage: int) -> Path:
    run = json.loads(machine.ok("prepare", TASK, "--type", "implementation", "--stage", str(stage), "--json"))
    return Path(run["worktree"]["path"])


def do_stage(machine: Machine, stage: int) -> str:
    done = commit(take(machine, stage), {f"s{stage}.txt": f"stage {stage} on {machine.name}\n"}, f"stage {stage}")
    machine.ok("record", TASK, "--stage", str(stage), "--status", "done", "--commit", "HEAD")
    return done


def task_worktree(machine: Machine) -> Path:
    return Path(machine.json("status", TASK)["task_worktree"])


def head_there(remote: Path) -> str | None:
    return git(remote, "rev-parse", "--verify", "--quiet", HEAD_THERE, check=False) or None


def state(machine: Machine, stage: int) -> str:
    view = next(v for v in machine.json("status", TASK)["stages"] if v["stage"] == stage)
    return view["state"]


def test_a_handoff_on_b_makes_the_next_stage_ready_on_a(tmp_path: Path) -> None:
    remote, (a, b, c) = fleet_of(tmp_path, 3, THREE)
    done = {1: do_stage(a, 1), 2: do_stage(c, 2), 3: do_stage(a, 3)}
    take(b, 5)  # b's task worktree comes with it
    a.ok("share", "sync")
    assert state(a, 4) == "blocked"  # needs the handoff of L1, which a has not seen
    result = json.loads(b.ok("handoff", TASK, "--group", "L1", "--merge", "--json"))
    assert result["merged"] == [1, 2, 3] and result["warnings"] == []
    handed = result["task_head"]
    assert head_there(remote) == handed

    said = a.ok("share", "sync")
    assert "fast-forwarded" in said and handed[:12] in said
    assert git(task_worktree(a), "rev-parse", "HEAD") == handed
    assert state(a, 4) == "ready"
    wt = take(a, 4)
    assert git(wt, "rev-parse", "HEAD") == handed  # the stage starts from b's handoff commit
    for sha in done.values():
        git(wt, "merge-base", "--is-ancestor", sha, "HEAD")
    assert sorted(p.name for p in wt.glob("s*.txt")) == ["s1.txt", "s2.txt", "s3.txt"]
    # c never had a task worktree: its task branch is made at the head, and checked out by its next prepare
    c.ok("share", "sync")
    assert git(c.clone, "rev-parse", "refs/heads/okstra/feature/team/wide") == handed


def test_two_handoffs_from_the_same_head_lose_nothing_and_say_how_to_join(tmp_path: Path) -> None:
    remote, (a, b) = fleet_of(tmp_path, 2, TWO)
    do_stage(a, 1)
    do_stage(b, 2)
    # b's handoff fetches, then waits for its task mutex while a hands off and publishes:
    # b merges on the head it fetched, and its push expects that head
    with mutex_held_by(b.clone, TASK, b.env):
        handoff_b = b.popen("handoff", TASK, "--group", "L2", "--merge", "--json")
        ledgers = "refs/okstra/share/root/team/wide/ledger/"
        wanted = git(remote, "for-each-ref", "--format=%(objectname)", ledgers)
        deadline = time.monotonic() + 20
        while (
            git(b.clone, "for-each-ref", "--format=%(objectname)", ledgers.replace("share/", "remote/origin/"))
            != wanted
        ):
            assert time.monotonic() < deadline, "b's handoff did not fetch"
            time.sleep(0.05)
        result_a = json.loads(a.ok("handoff", TASK, "--group", "L1", "--merge", "--json"))
        assert head_there(remote) == result_a["task_head"]
    out, err = handoff_b.communicate(timeout=60)
    assert handoff_b.returncode == 0, err
    result_b = json.loads(out)
    assert result_b["merged"] == [2]
    # the lease refused b's push: a's handoff is still the head there
    assert head_there(remote) == result_a["task_head"]
    wt_b = task_worktree(b)
    join = f"git -C {wt_b} merge {HEAD_FETCHED}, then okstra share sync"
    assert any(join in w and "went apart" in w for w in result_b["warnings"]), result_b["warnings"]
    assert join in err
    [task] = b.json("share", "status")["tasks"]
    assert join in task["branch"]
    assert join in b.ok("share", "status")
    assert join in b.run("status", TASK).stderr  # status says it too
    assert join in b.json("status", TASK)["share"]["branch"]
    assert git(wt_b, "rev-parse", "HEAD") == result_b["task_head"]  # nothing moved on its own

    # the person joins the two as said; the next sync publishes the merge, and a takes it
    git(wt_b, "-c", "user.name=t", "-c", "user.email=t@t", "merge", "-q", "--no-edit", HEAD_FETCHED)
    b.ok("share", "sync")
    joined = git(wt_b, "rev-parse", "HEAD")
    assert head_there(remote) == joined
    assert b.json("share", "status")["tasks"][0]["branch"] is None
    assert b.json("status", TASK)["share"]["branch"] is None
    a.ok("share", "sync")
    assert git(task_worktree(a), "rev-parse", "HEAD") == joined
    assert state(a, 3) == "ready"


def test_a_dirty_task_worktree_is_not_fast_forwarded(tmp_path: Path) -> None:
    remote, (a, b) = fleet_of(tmp_path, 2, TWO)
    do_stage(a, 1)
    take(b, 2)
    b.ok("share", "sync")
    handed = json.loads(b.ok("handoff", TASK, "--group", "L1", "--merge", "--json"))["task_head"]
    wt_a = task_worktree(a)
    before = git(wt_a, "rev-parse", "HEAD")
    (wt_a / "notes.txt").write_text("the person's own\n")
    sync = a.run("share", "sync")
    assert sync.returncode == 0
    assert "was not fast-forwarded: it has uncommitted changes: notes.txt" in sync.stderr
    assert git(wt_a, "rev-parse", "HEAD") == before
    assert "uncommitted changes: notes.txt" in a.json("share", "status")["tasks"][0]["branch"]
    (wt_a / "notes.txt").unlink()
    a.ok("share", "sync")
    assert git(wt_a, "rev-parse", "HEAD") == handed
    assert a.json("share", "status")["tasks"][0]["branch"] is None
    assert head_there(remote) == handed


def test_a_handoff_made_offline_is_published_on_the_next_sync(tmp_path: Path) -> None:
    remote, (a, b) = fleet_of(tmp_path, 2, TWO)
    do_stage(a, 1)
    take(b, 2)
    b.ok("share", "sync")  # a's done commit comes to b
    cut(b, remote)
    handoff = b.run("handoff", TASK, "--group", "L1", "--merge")
    assert handoff.returncode == 0, handoff.stderr
    assert "the task branch was not published" in handoff.stderr
    assert head_there(remote) is None
    mend(b, remote)
    b.ok("share", "sync")
    handed = git(task_worktree(b), "rev-parse", "HEAD")
    assert head_there(remote) == handed
    a.ok("share", "sync")
    assert git(task_worktree(a), "rev-parse", "HEAD") == handed
    assert (task_worktree(a) / "s1.txt").exists()
