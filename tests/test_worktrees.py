"""Task and stage worktrees on real repositories: made, reused, recreated, refused, and
never left half-made."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from okstra_engine import registry, worktrees
from okstra_engine.errors import OkstraError
from okstra_engine.worktrees import provision, stage_target, task_target
from tests.support import commit, git


def _branches(repo: Path) -> list[str]:
    return git(repo, "for-each-ref", "--format=%(refname:short)", "refs/heads").splitlines()


def _worktree_paths(repo: Path) -> list[str]:
    return [
        line[9:] for line in git(repo, "worktree", "list", "--porcelain").splitlines() if line.startswith("worktree ")
    ]


def _nothing_made(repo: Path, target: worktrees.Target) -> None:
    assert target.branch not in _branches(repo)
    assert str(target.path) not in _worktree_paths(repo)
    assert registry.get_worktree(target.slot, target.stage) is None
    assert not target.path.exists()


def test_created_then_reused(task) -> None:
    repo = task.project.root
    head = git(repo, "rev-parse", "HEAD")
    target = task_target(task)
    made = provision(target, head)
    assert made.status == "created" and made.path == target.path and made.base_ref == head
    assert target.branch == "okstra/feature/auth/login" and target.branch in _branches(repo)
    assert git(made.path, "rev-parse", "HEAD") == head and (made.path / "README.md").exists()
    row = registry.get_worktree(target.slot, None)
    assert row is not None and row.path == str(target.path) and row.base_ref == head and row.branch == target.branch

    again = provision(target, commit(repo, {"x": "1"}, "moves main"))
    assert again.status == "reused" and again.base_ref == head and not again.made_worktree
    assert registry.get_worktree(target.slot, None) == row


def test_stage_worktree_layout(task) -> None:
    target = stage_target(task, 3)
    assert target.branch == "okstra/feature/auth/login-s3"
    assert target.path.name == "login-s3" and target.path.parent == task_target(task).path.parent
    made = provision(target, git(task.project.root, "rev-parse", "HEAD"))
    assert made.status == "created" and registry.get_worktree(target.slot, 3).path == str(target.path)


def test_folder_deleted_by_hand_is_pruned_and_recreated_with_its_commits(task) -> None:
    repo = task.project.root
    base = git(repo, "rev-parse", "HEAD")
    target = stage_target(task, 1)
    provision(target, base)
    work = commit(target.path, {"stage1.py": "x = 1\n"}, "stage 1 work")
    shutil.rmtree(target.path)
    again = provision(target, base, base_must_be_in_branch=True)
    assert again.status == "recreated" and "checked out again" in again.note
    assert git(target.path, "rev-parse", "HEAD") == work and again.base_ref == base
    assert _worktree_paths(repo).count(str(target.path)) == 1


def test_pruned_by_git_and_still_registered_is_recreated(task) -> None:
    repo = task.project.root
    base = git(repo, "rev-parse", "HEAD")
    target = task_target(task)
    provision(target, base)
    shutil.rmtree(target.path)
    git(repo, "worktree", "prune")
    git(repo, "branch", "-D", target.branch)
    again = provision(target, base)
    assert again.status == "recreated" and again.made_worktree and target.path.is_dir()


def test_locked_worktree_with_its_folder_gone_is_refused_with_the_unlock_command(task) -> None:
    repo = task.project.root
    base = git(repo, "rev-parse", "HEAD")
    target = stage_target(task, 2)
    provision(target, base)
    git(repo, "worktree", "lock", "--reason", "on a usb disk", str(target.path))
    shutil.rmtree(target.path)
    refs = _branches(repo)
    with pytest.raises(OkstraError) as info:
        provision(target, base)
    assert "locked (on a usb disk)" in info.value.what
    assert f"git -C {repo} worktree unlock {target.path}" in info.value.how
    assert _branches(repo) == refs and not target.path.exists()


def test_locked_healthy_worktree_is_reused_with_a_note(task) -> None:
    repo = task.project.root
    base = git(repo, "rev-parse", "HEAD")
    target = stage_target(task, 2)
    provision(target, base)
    git(repo, "worktree", "lock", "--reason", "keep", str(target.path))
    again = provision(target, base)
    assert again.status == "reused" and "locked in git: keep" in again.note


def test_branch_checked_out_elsewhere_is_refused_and_nothing_is_made(task, tmp_path: Path) -> None:
    repo = task.project.root
    target = task_target(task)
    elsewhere = tmp_path / "mine"
    git(repo, "worktree", "add", "-q", "-b", target.branch, str(elsewhere))
    with pytest.raises(OkstraError) as info:
        provision(target, git(repo, "rev-parse", "HEAD"))
    assert f"already checked out in another worktree: {elsewhere}" in info.value.what
    assert f"git -C {elsewhere} switch --detach" in info.value.how
    assert registry.get_worktree(target.slot, None) is None and not target.path.exists()


def test_branch_checked_out_where_the_folder_is_gone_is_pruned_then_used(task, tmp_path: Path) -> None:
    repo = task.project.root
    target = task_target(task)
    elsewhere = tmp_path / "mine"
    git(repo, "worktree", "add", "-q", "-b", target.branch, str(elsewhere))
    shutil.rmtree(elsewhere)
    made = provision(target, git(repo, "rev-parse", "HEAD"))
    assert made.status == "recreated" and str(elsewhere) not in _worktree_paths(repo)


def test_path_that_exists_but_is_not_our_worktree_is_refused(task) -> None:
    repo = task.project.root
    target = stage_target(task, 1)
    target.path.mkdir(parents=True)
    (target.path / "notes.txt").write_text("mine")
    with pytest.raises(OkstraError) as info:
        provision(target, git(repo, "rev-parse", "HEAD"))
    assert "exists but is not okstra's worktree" in info.value.what and "mv" in info.value.how
    assert (target.path / "notes.txt").read_text() == "mine"
    assert target.branch not in _branches(repo) and registry.get_worktree(target.slot, 1) is None


def test_an_empty_folder_at_the_path_is_used(task) -> None:
    target = stage_target(task, 1)
    target.path.mkdir(parents=True)
    assert provision(target, git(task.project.root, "rev-parse", "HEAD")).status == "created"


def test_our_path_holding_another_branch_is_refused(task) -> None:
    repo = task.project.root
    target = stage_target(task, 1)
    target.path.parent.mkdir(parents=True)
    git(repo, "worktree", "add", "-q", "-b", "someone/else", str(target.path))
    with pytest.raises(OkstraError) as info:
        provision(target, git(repo, "rev-parse", "HEAD"))
    assert "has branch someone/else checked out" in info.value.what
    assert target.branch not in _branches(repo)


def test_unregistered_healthy_worktree_is_adopted(task) -> None:
    repo = task.project.root
    target = stage_target(task, 1)
    target.path.parent.mkdir(parents=True)
    git(repo, "worktree", "add", "-q", "-b", target.branch, str(target.path))
    made = provision(target, git(repo, "rev-parse", "HEAD"))
    assert made.status == "reused" and "adopted" in made.note
    assert registry.get_worktree(target.slot, 1).path == str(target.path)


def test_existing_branch_without_the_base_is_refused(task) -> None:
    repo = task.project.root
    old = git(repo, "rev-parse", "HEAD")
    target = stage_target(task, 2)
    git(repo, "branch", target.branch, old)
    newer = commit(repo, {"y": "2"}, "newer base")
    with pytest.raises(OkstraError) as info:
        provision(target, newer, base_must_be_in_branch=True)
    assert f"does not contain the base {newer[:8]}" in info.value.what
    assert f"branch -D {target.branch}" in info.value.how
    assert not target.path.exists() and registry.get_worktree(target.slot, 2) is None
    # an existing branch that holds the base is checked out again, commits kept
    git(repo, "branch", "-f", target.branch, newer)
    assert provision(target, old, base_must_be_in_branch=True).status == "recreated"


def test_failing_git_worktree_add_leaves_no_branch_worktree_or_row(task) -> None:
    repo = task.project.root
    # a checkout that fails half-way (a required smudge filter that fails, as when git-lfs
    # is missing); okstra's git runs no hooks, so a failing hook would not do
    commit(repo, {".gitattributes": "*.bin filter=broken\n", "data.bin": "x\n"}, "a filtered file")
    git(repo, "config", "filter.broken.smudge", "false")
    git(repo, "config", "filter.broken.required", "true")
    target = stage_target(task, 1)
    with pytest.raises(OkstraError) as info:
        provision(target, git(repo, "rev-parse", "HEAD"))
    assert "could not make the stage 1 worktree" in info.value.what and "nothing was left behind" in info.value.how
    _nothing_made(repo, target)
    git(repo, "config", "--unset", "filter.broken.required")
    git(repo, "config", "filter.broken.smudge", "cat")
    assert provision(target, git(repo, "rev-parse", "HEAD")).status == "created"


def test_registry_failure_after_git_rolls_git_back(task, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = task.project.root
    target = stage_target(task, 1)

    def broken(row):
        raise OkstraError("registry is broken", "")

    monkeypatch.setattr(registry, "register_worktree", broken)
    with pytest.raises(OkstraError, match="registry is broken"):
        provision(target, git(repo, "rev-parse", "HEAD"))
    _nothing_made(repo, target)


def test_undo_takes_back_what_was_made(task) -> None:
    repo = task.project.root
    target = stage_target(task, 4)
    made = provision(target, git(repo, "rev-parse", "HEAD"))
    worktrees.undo(target, made)
    _nothing_made(repo, target)


def test_dry_run_changes_nothing(task) -> None:
    repo = task.project.root
    target = stage_target(task, 1)
    planned = provision(target, git(repo, "rev-parse", "HEAD"), dry_run=True)
    assert planned.status == "created" and planned.render_only and planned.note == ""
    assert planned.said == "render only: not created"
    _nothing_made(repo, target)
    assert not registry.registry_path().exists()
