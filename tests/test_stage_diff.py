"""A stage's change (its base and head) on real repositories: the base is the one reconcile
computes, and a root commit is diffed against the empty tree of the repository's hash."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from okstra_engine import git as okgit
from okstra_engine.ledger import LEDGER_NAME, append_row, new_row, read_ledger
from okstra_engine.ledger_state import LedgerState
from okstra_engine.plans import plan_run_root
from okstra_engine.stage_diff import stage_change, stage_diff
from okstra_engine.tasks import stage_branch, task_branch
from tests.support import PLAN_4, commit, git

EMPTY_TREE = {
    "sha1": "4b825dc642cb6eb9a060e54bf8d69288fbee4904",
    "sha256": "6ef19b41225c5369f1c104d45d8d85efa9b057b53b14b4b9b939dd74decc5321",
}


def ledger(task) -> LedgerState:
    return LedgerState.of(read_ledger(plan_run_root(task).dir / LEDGER_NAME).rows)


def append(task, stage: int, status: str, **fields) -> None:
    append_row(plan_run_root(task).dir / LEDGER_NAME, new_row(stage, status, run_id=f"r{stage}", **fields))


def branch_commit(repo: Path, branch: str, start: str, files: dict[str, str]) -> str:
    git(repo, "checkout", "-q", "-b", branch, start)
    sha = commit(repo, files, f"work on {branch}")
    git(repo, "checkout", "-q", "main")
    return sha


def test_a_stage_with_two_dependencies_diffs_from_its_recorded_base(task) -> None:
    """Stage 4 depends on 2 and 3: prepare branched it from the task branch once both were
    merged there, and recorded that commit as its base. Its change is its own work only;
    the project HEAD's merge-base (where the task began) would show 1, 2 and 3 too."""
    repo = task.project.root
    anchor = git(repo, "rev-parse", "HEAD")
    s1 = branch_commit(repo, stage_branch(task, 1), anchor, {"one.txt": "1\n"})
    s2 = branch_commit(repo, stage_branch(task, 2), s1, {"two.txt": "2\n"})
    s3 = branch_commit(repo, stage_branch(task, 3), s1, {"three.txt": "3\n"})
    git(repo, "checkout", "-q", "-b", task_branch(task), s2)
    git(repo, "merge", "-q", "--no-edit", s3)
    merged = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-q", "main")
    s4 = branch_commit(repo, stage_branch(task, 4), merged, {"four.txt": "4\n"})
    append(task, 1, "reserved", base_ref=anchor)
    append(task, 1, "done", head_commit=s1, base_ref=anchor)
    append(task, 2, "done", head_commit=s2, base_ref=s1)
    append(task, 3, "done", head_commit=s3, base_ref=s1)
    append(task, 4, "reserved", base_ref=merged)

    found = stage_diff(task, ledger(task), 4)
    assert found is not None
    assert found.change == stage_change(task, ledger(task), 4)
    change = found.change
    assert (change.base, change.head, change.base_from, change.head_from) == (merged, s4, "recorded", "branch")
    assert "four.txt" in found.text and "two.txt" not in found.text and not found.truncated
    assert okgit.merge_base(repo, s4, okgit.head(repo)) == anchor  # what the project HEAD would have given

    # the board shows the engine's answer
    from okstra_tui.model import load_board
    from okstra_tui.model import stage_diff as board_diff

    shown = board_diff(load_board(repo, task.ref, datetime.now(UTC)), 4)
    assert shown is not None and (shown.base, shown.base_from, shown.text) == (merged, "diff.base.recorded", found.text)


def test_without_a_recorded_base_the_task_branch_then_the_parent(task) -> None:
    repo = task.project.root
    anchor = git(repo, "rev-parse", "HEAD")
    git(repo, "branch", task_branch(task), anchor)
    s1 = branch_commit(repo, stage_branch(task, 1), anchor, {"one.txt": "1\n"})
    append(task, 1, "done", head_commit=s1)  # recorded by hand: no base
    change = stage_change(task, ledger(task), 1)
    assert change is not None
    assert (change.base, change.head, change.base_from, change.head_from) == (anchor, s1, "merge_base", "done")
    git(repo, "branch", "-f", task_branch(task), s1)  # handed off: the change is in the task branch
    change = stage_change(task, ledger(task), 1)
    assert change is not None and (change.base, change.base_from) == (anchor, "parent")


def test_a_stage_with_nothing_to_show(task, tmp_path: Path) -> None:
    assert stage_change(task, ledger(task), 2) is None  # no done commit, no branch
    append(task, 2, "done", head_commit="c" * 40)  # a done commit the repository lacks, and no branch
    assert stage_diff(task, ledger(task), 2) is None


@pytest.mark.parametrize("object_format", ["sha1", "sha256"])
def test_a_root_commit_diffs_against_the_empty_tree_of_its_hash(tmp_path: Path, object_format: str) -> None:
    from okstra_engine.plans import import_plan
    from okstra_engine.projects import init_project
    from okstra_engine.slugs import TaskRef
    from okstra_engine.tasks import new_task

    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main", f"--object-format={object_format}")
    commit(repo, {"README.md": "hello\n"}, "initial")
    assert okgit.empty_tree(repo) == EMPTY_TREE[object_format]
    project, _ = init_project(repo, qa_commands=["true"])
    task = new_task(project, TaskRef("auth", "login"), title="Login flow")
    plan = tmp_path / "plan.md"
    plan.write_text(PLAN_4)
    import_plan(task, plan, approve=True)
    git(repo, "checkout", "-q", "--orphan", stage_branch(task, 1))
    git(repo, "rm", "-q", "-r", "--cached", ".")
    root = commit(repo, {"one.txt": "1\n"}, "a history of its own")
    git(repo, "checkout", "-q", "-f", "main")
    append(task, 1, "done", head_commit=root)

    found = stage_diff(task, ledger(task), 1)
    assert found is not None
    assert (found.change.base, found.change.head, found.change.base_from) == (EMPTY_TREE[object_format], root, "empty")
    assert "one.txt" in found.text and "README.md" not in found.text
