"""Cleaning up and keeping stages current, on real repositories: `okstra gc` removes
exactly the worktrees and branches whose work is in the task branch (a squash-merged
stage included) and leaves dirty, in-flight and foreign worktrees; `okstra sync` merges
the task branch into a clean stage worktree and refuses otherwise."""

from __future__ import annotations

import json

import pytest

from okstra_engine import registry
from okstra_engine.gc import collect, tree_size
from okstra_engine.refusals import RefusedError
from okstra_engine.sync import sync_stage
from okstra_engine.tasks import stage_branch, task_branch
from okstra_engine.worktrees import stage_target, task_slot
from tests.support import call, commit, git
from tests.test_handoff import TASK, finish, group_a_handed_off, head, prep, task_wt


def branch_exists(task, name: str) -> bool:
    return bool(git(task.project.root, "branch", "--list", name))


def pins(task) -> str:
    return git(task.project.root, "for-each-ref", "--format=%(refname)", "refs/okstra/")


def test_gc_removes_exactly_what_is_merged(task, tmp_path, capsys) -> None:
    group_a_handed_off(task)  # stage 1: merged by the handoff (an ancestor)
    assert prep(task) == 2 and prep(task) == 3  # stage 3 stays in flight
    s2 = finish(task, 2, {"importer.py": "I = 2\n"}, {"importer_test.py": "T = 2\n"})
    wt = task_wt(task)
    git(wt, "merge", "--squash", s2)  # stage 2 squash-merged by hand
    git(wt, "commit", "-q", "-m", "squash stage 2")
    foreign = tmp_path / "mine"
    git(task.project.root, "worktree", "add", "-q", "-b", "mine", str(foreign))
    wt1, wt2, wt3 = (stage_target(task, n).path for n in (1, 2, 3))
    (wt1 / "notes.txt").write_text("not committed\n")  # stage 1 is dirty: it stays
    pinned = pins(task)

    code, out, err = call(capsys, "--project", str(task.project.root), "gc", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert [(i["stage"], i["why"]) for i in doc["removable"]] == [(2, "merged (squash-equivalent)")]
    assert doc["removable"][0]["branch"] == stage_branch(task, 2) and doc["removable"][0]["size"] > 0
    kept = {i["stage"]: i["kept"] for i in doc["kept"]}
    assert kept[1].startswith("uncommitted changes: notes.txt") and kept[3] == "in flight"
    assert wt2.is_dir() and branch_exists(task, stage_branch(task, 2))  # a dry run removes nothing

    code, out, err = call(capsys, "--project", str(task.project.root), "gc", TASK, "--apply")
    assert code == 0, err
    assert "removed 1 item," in out
    assert not wt2.exists() and not branch_exists(task, stage_branch(task, 2))
    assert registry.get_worktree(task_slot(task), 2) is None
    assert wt1.is_dir() and branch_exists(task, stage_branch(task, 1))
    assert wt3.is_dir() and branch_exists(task, stage_branch(task, 3))
    assert foreign.is_dir() and branch_exists(task, "mine") and wt.is_dir() and branch_exists(task, task_branch(task))
    assert pins(task) == pinned  # okstra's pins stay

    (wt1 / "notes.txt").unlink()
    report = collect(task.project, task.ref, apply=True)
    assert [(i.stage, i.removed) for i in report.removable] == [(1, True)]
    assert not wt1.exists() and not branch_exists(task, stage_branch(task, 1)) and wt3.is_dir()


def test_gc_keeps_a_branch_that_holds_more_than_the_task_branch(task) -> None:
    group_a_handed_off(task)
    wt1 = stage_target(task, 1).path
    commit(wt1, {"later.txt": "after done\n"}, "work after done")
    item = collect(task.project, task.ref).removable[0]
    assert (item.stage, item.branch) == (1, None) and "stays" in item.why
    collect(task.project, task.ref, apply=True)
    assert not wt1.exists() and branch_exists(task, stage_branch(task, 1))


def test_gc_takes_a_released_stages_worktree_and_a_deleted_tasks(task, capsys) -> None:
    assert prep(task) == 1
    code, _, err = call(
        capsys, "--project", str(task.project.root), "record", TASK, "--stage", "1", "--status", "released"
    )
    assert code == 0, err
    [item] = collect(task.project, task.ref).removable
    assert (item.stage, item.why, item.branch) == (1, "released", None)
    import shutil

    shutil.rmtree(task.dir)
    report = collect(task.project, apply=True)
    assert {(i.task, i.stage, i.why) for i in report.removable} == {
        (TASK, None, "task deleted"),
        (TASK, 1, "task deleted"),
    }
    assert registry.task_worktrees(task_slot(task)) == {} and branch_exists(task, stage_branch(task, 1))


def test_tree_size_counts_blocks_and_follows_no_link(tmp_path) -> None:
    (tmp_path / "a").write_bytes(b"x" * 10_000)
    (tmp_path / "link").symlink_to("/usr")
    (tmp_path / "hard").hardlink_to(tmp_path / "a")
    assert 10_000 <= tree_size(tmp_path) < 40_000


# ---------------------------------------------------------------------------- sync


def test_sync_merges_the_task_branch_into_a_clean_stage(task, capsys) -> None:
    group_a_handed_off(task)
    assert prep(task) == 2 and prep(task) == 3
    finish(task, 2, {"importer.py": "I = 2\n"})
    wt2 = stage_target(task, 2).path
    commit(task_wt(task), {"neighbour.py": "N = 1\n"}, "a neighbour's work lands in the task branch")

    (wt2 / "scratch.txt").write_text("uncommitted\n")
    code, out, err = call(capsys, "--project", str(task.project.root), "sync", TASK, "--stage", "2")
    assert code == 2 and "uncommitted changes: scratch.txt" in err
    (wt2 / "scratch.txt").unlink()

    with pytest.raises(RefusedError) as caught:
        sync_stage(task, 3)
    assert caught.value.refusal.code == "sync.in_flight"
    with pytest.raises(RefusedError) as caught:
        sync_stage(task, 2, rebase=True)
    assert caught.value.refusal.code == "sync.rebase_done"

    code, out, err = call(capsys, "--project", str(task.project.root), "sync", TASK, "--stage", "2", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["changed"] and doc["after"] == head(wt2) and (wt2 / "neighbour.py").read_text() == "N = 1\n"
    assert git(wt2, "status", "--porcelain") == ""
    assert not sync_stage(task, 2).changed  # already current


def test_a_conflicting_sync_is_aborted_and_changes_nothing(task) -> None:
    group_a_handed_off(task)
    assert prep(task) == 2
    wt2 = stage_target(task, 2).path
    commit(wt2, {"shared.txt": "x = 2\n"}, "stage 2 work")
    commit(task_wt(task), {"shared.txt": "x = task\n"}, "the task branch changed the same line")
    from okstra_engine.record import record

    record(task, 2, "released")
    before = head(wt2)
    for rebase in (False, True):
        with pytest.raises(RefusedError) as caught:
            sync_stage(task, 2, rebase=rebase)
        refusal = caught.value.refusal
        assert refusal.code == "sync.conflict" and refusal.params["paths"] == ["shared.txt"]
        assert head(wt2) == before and git(wt2, "status", "--porcelain") == ""
        assert (wt2 / "shared.txt").read_text() == "x = 2\n"


def test_after_the_tasks_release_its_worktree_and_branch_go_too(task) -> None:
    group_a_handed_off(task)
    wt = task_wt(task)
    assert collect(task.project, task.ref).removable[0].stage == 1  # not released yet: the task worktree stays
    assert all(i.stage is not None for i in collect(task.project, task.ref).items)
    git(task.project.root, "merge", "-q", "--squash", task_branch(task))  # the person releases it, squashed
    git(task.project.root, "commit", "-q", "-m", "release auth/login")
    report = collect(task.project, task.ref, apply=True)
    assert [(i.stage, i.why, i.removed) for i in report.items] == [
        (1, "merged (ancestor)", True),
        (None, "task released", True),
    ]
    assert (
        not wt.exists()
        and not branch_exists(task, task_branch(task))
        and not branch_exists(task, stage_branch(task, 1))
    )
    assert pins(task)  # the pins stay


def test_sync_rebases_a_stage_that_is_not_done(task) -> None:
    from okstra_engine.record import record

    group_a_handed_off(task)
    assert prep(task) == 2
    wt2 = stage_target(task, 2).path
    commit(wt2, {"importer.py": "I = 2\n"}, "stage 2 work")
    tip = commit(task_wt(task), {"neighbour.py": "N = 1\n"}, "a neighbour's work")
    record(task, 2, "released")
    result = sync_stage(task, 2, rebase=True)
    assert result.operation == "rebase" and result.changed
    assert git(wt2, "rev-parse", "HEAD~1") == tip  # its own commit replayed on the task branch
    assert (wt2 / "importer.py").exists() and (wt2 / "neighbour.py").exists()


def test_gc_in_words_and_on_a_task_that_is_not_there(task, capsys) -> None:
    group_a_handed_off(task)
    code, out, err = call(capsys, "--project", str(task.project.root), "gc", TASK)
    assert code == 0, err
    assert f"can go {TASK} stage 1: " in out and "(merged (ancestor); " in out
    assert "okstra gc: 1 item can go" in out and f"remove it: okstra gc {TASK} --apply" in out
    code, out, err = call(capsys, "--project", str(task.project.root), "gc", "auth/nope")
    assert code == 2 and "task auth/nope does not exist" in err
