"""Collisions seen early, on real repositories: stages whose worktrees change the same
files (`status --json`'s `overlaps`), and the conflicts a handoff's merges would meet,
foreseen before merging (`predicted_conflicts`)."""

from __future__ import annotations

import json

from okstra_engine import handoff as ho
from okstra_engine.status import task_status
from okstra_engine.worktrees import stage_target
from tests.support import call, commit, git
from tests.test_handoff import TASK, finish, group_a_handed_off, handoff_cli, head, prep, task_wt


def status_json(capsys, task) -> dict:
    code, out, err = call(capsys, "--project", str(task.project.root), "status", TASK, "--json")
    assert code == 0, err
    return json.loads(out)


def test_no_overlap_while_fewer_than_two_stages_work(task, capsys) -> None:
    assert prep(task) == 1
    commit(stage_target(task, 1).path, {"shared.txt": "one\n"}, "stage 1")
    assert status_json(capsys, task)["overlaps"] == []


def test_stages_in_flight_touching_the_same_files_overlap(task, capsys) -> None:
    group_a_handed_off(task)
    assert prep(task) == 2 and prep(task) == 3
    wt2, wt3 = stage_target(task, 2).path, stage_target(task, 3).path
    commit(wt2, {"shared.txt": "x = 2\n", "importer.py": "I = 1\n"}, "stage 2 work")  # committed
    (wt3 / "shared.txt").write_text("x = 3\n")  # uncommitted, tracked
    (wt3 / "exporter.py").write_text("E = 1\n")  # untracked: not seen
    commit(wt3, {"schema.py": "SCHEMA = 3\n"}, "stage 3 work")

    doc = status_json(capsys, task)
    assert doc["overlaps"] == [{"stages": [2, 3], "files": ["shared.txt"]}]

    git(wt3, "checkout", "--", "shared.txt")  # the collision is gone with the change
    assert task_status(task).overlaps == []


def test_a_done_not_merged_stage_overlaps_one_in_flight(task) -> None:
    group_a_handed_off(task)
    assert prep(task) == 2 and prep(task) == 3
    finish(task, 2, {"shared.txt": "x = 2\n"})
    (stage_target(task, 3).path / "schema.py").write_text("SCHEMA = 3\n")
    (stage_target(task, 3).path / "shared.txt").write_text("x = 3\n")
    status = task_status(task)
    assert [str(v.state) for v in status.stages[1:3]] == ["not-merged", "in-flight"]
    assert [o.to_json() for o in status.overlaps] == [{"stages": [2, 3], "files": ["shared.txt"]}]


def test_a_conflict_is_foreseen_and_named_before_merging(task, capsys) -> None:
    group_a_handed_off(task)
    assert prep(task) == 2 and prep(task) == 3
    finish(task, 2, {"shared.txt": "x = 2\n", "importer.py": "I = 2\n"})
    finish(task, 3, {"shared.txt": "x = 3\n", "exporter.py": "E = 3\n"})
    wt = task_wt(task)
    before = head(wt)
    refs = git(task.project.root, "for-each-ref", "--format=%(refname) %(objectname)")

    plan = ho.handoff_plan(task, "B")
    # stage 2 merges cleanly onto the task HEAD; stage 3, on top of it, conflicts
    assert plan.to_merge == [2, 3] and plan.predicted_conflicts == {3: ["shared.txt"]}

    code, out, err = handoff_cli(capsys, task, "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["would_merge"] == [2, 3] and doc["predicted_conflicts"] == {"3": ["shared.txt"]}
    assert head(wt) == before and git(wt, "status", "--porcelain") == ""
    assert git(task.project.root, "for-each-ref", "--format=%(refname) %(objectname)") == refs

    code, out, _ = handoff_cli(capsys, task)
    assert "would conflict in shared.txt" in out

    # the merge meets what was foreseen
    code, out, _ = handoff_cli(capsys, task, "--merge", "--json")
    assert code == 2 and json.loads(out)["conflicts"] == {"3": ["shared.txt"]}


def test_each_stage_is_foreseen_on_top_of_the_ones_before(task) -> None:
    group_a_handed_off(task)
    wt = task_wt(task)
    assert prep(task) == 2 and prep(task) == 3
    finish(task, 2, {"importer.py": "I = 2\n"})
    finish(task, 3, {"exporter.py": "E = 3\n"})
    commit(wt, {"importer.py": "I = task\n"}, "the task branch wrote the importer too")
    plan = ho.handoff_plan(task, "B")
    assert plan.predicted_conflicts == {2: ["importer.py"]}  # stage 3 still merges: a file of its own
