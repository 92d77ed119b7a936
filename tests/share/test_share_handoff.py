"""Stage branches travel: a stage recorded done on a shared task pushes its done commit,
and a handoff on another machine fetches and merges them."""

from __future__ import annotations

import json
from pathlib import Path

from tests.share.machines import TASK, bare_remote, machines, shared_task
from tests.support import commit, git

PLAN = """---
title: two machines' stages, handed off on a third
---
# Plan

## Stage Map
| Stage | Title    | Depends on | Group |
|-------|----------|------------|-------|
| 1     | Schema   | -          | A     |
| 2     | Importer | -          | A     |
| 3     | CLI      | -          | B     |
"""


def test_handoff_on_one_machine_of_stages_done_on_two_others(tmp_path: Path) -> None:
    remote = bare_remote(tmp_path)
    a, b, c = machines(tmp_path, remote, 3)
    plan = tmp_path / "plan.md"
    plan.write_text(PLAN)
    shared_task(tmp_path, [a, b, c], plan)
    done = {}
    for machine, stage, name in ((a, 1, "schema.sql"), (c, 2, "importer.py")):
        run = json.loads(machine.ok("prepare", TASK, "--type", "implementation", "--json"))
        assert run["stage"] == stage
        worktree = Path(run["worktree"]["path"])
        done[stage] = commit(worktree, {name: f"stage {stage} on {machine.name}\n"}, f"stage {stage}")
        machine.ok("record", TASK, "--stage", str(stage), "--status", "done", "--commit", "HEAD")
    stages = git(remote, "for-each-ref", "--format=%(refname)", "refs/okstra/stages/")
    assert sorted(stages.split()) == sorted(f"refs/okstra/stages/root/team/wide/s{n}/{sha}" for n, sha in done.items())
    # machine b works on stage 3 (its task worktree comes with it), then hands group A off
    assert json.loads(b.ok("prepare", TASK, "--type", "implementation", "--json"))["stage"] == 3
    result = json.loads(b.ok("handoff", TASK, "--group", "A", "--merge", "--json"))
    assert result["group"] == "A"
    task_worktree = Path(b.json("status", TASK)["task_worktree"])
    assert (task_worktree / "schema.sql").read_text() == "stage 1 on a\n"
    assert (task_worktree / "importer.py").read_text() == "stage 2 on c\n"
    for sha in done.values():
        git(task_worktree, "merge-base", "--is-ancestor", sha, "HEAD")
    # the person's branches of a and c never came to b: only okstra's refs did
    assert not git(b.clone, "for-each-ref", "--format=%(refname)", "refs/heads/okstra/feature/team/wide-s1")
