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


# ---------------------------------------------------------------------------- as the task goes


def _finish(task, stage: int, files: dict[str, str]) -> str:
    """Prepare the stage, commit `files` in its worktree and record it done there."""
    from okstra_engine.prepare import PrepareOptions, prepare
    from okstra_engine.record import record
    from okstra_engine.worktrees import stage_target

    prepare(task, PrepareOptions("implementation", stage=str(stage)))
    sha = commit(stage_target(task, stage).path, files, f"stage {stage}")
    record(task, stage, "done", commit=sha)
    return sha


def _board_diff(task, stage: int):
    from okstra_tui.model import load_board
    from okstra_tui.model import stage_diff as board_diff

    return board_diff(load_board(task.project.root, task.ref, datetime.now(UTC)), stage)


@pytest.mark.parametrize("how", ["manual", "auto"])
def test_a_stage_corrected_to_its_squash_on_the_task_branch_diffs_that_commit(task, how: str) -> None:
    """Stage 2 is squash-merged into the task branch after stage 3 was merged there, and
    its done row corrected to the squash (by `okstra reconcile --commit`, or by
    auto-reconcile): its change is that commit. The base the stage started from belongs to
    the replaced commit; from there the task branch holds stage 3's work too."""
    from okstra_engine import reconcile
    from okstra_engine.handoff import run_handoff
    from okstra_engine.worktrees import task_target

    _finish(task, 1, {"one.txt": "1\n"})
    run_handoff(task, "A")
    _finish(task, 2, {"two.txt": "2\n"})
    _finish(task, 3, {"three.txt": "3\n"})
    wt = task_target(task).path
    git(wt, "merge", "-q", "--no-ff", "--no-edit", stage_branch(task, 3))
    git(wt, "merge", "-q", "--squash", stage_branch(task, 2))
    git(wt, "commit", "-q", "-m", "stage 2, squashed")
    squash = git(wt, "rev-parse", "HEAD")
    if how == "manual":
        reconcile.correct(task, 2, squash)
    else:
        assert [(s.stage, s.suggested) for s in reconcile.auto_reconcile(task)] == [(2, squash)]
    assert ledger(task).done_rows()[2].head_commit == squash

    found = stage_diff(task, ledger(task), 2)
    assert found is not None
    assert (found.change.base, found.change.head) == (git(wt, "rev-parse", "HEAD^"), squash)
    assert "two.txt" in found.text and "three.txt" not in found.text and "one.txt" not in found.text
    shown = _board_diff(task, 2)
    assert shown is not None and (shown.base, shown.head, shown.text) == (found.change.base, squash, found.text)


def test_a_stage_done_at_its_base_shows_no_change(task) -> None:
    """A stage recorded done at the commit it started from (it had nothing to change,
    recorded with --force) diffs from that recorded base to itself: nothing, not the
    change of the commit before it."""
    from okstra_engine.prepare import PrepareOptions, prepare
    from okstra_engine.record import record

    prepare(task, PrepareOptions("implementation", stage="1"))
    base = ledger(task).base_ref(1)
    assert base is not None
    record(task, 1, "done", commit=base, force=True)
    change = stage_change(task, ledger(task), 1)
    assert change is not None and (change.base, change.head, change.base_from) == (base, base, "recorded")
    found = stage_diff(task, ledger(task), 1)
    assert found is not None and found.text.strip() == "" and "README.md" not in found.text
    shown = _board_diff(task, 1)
    assert shown is not None and (shown.base, shown.head, shown.text.strip()) == (base, base, "")


def test_a_stage_in_flight_again_shows_its_branch_not_its_old_done_commit(task) -> None:
    """A stage done once and taken by a run again (its latest row a reservation) is
    reviewed where its work is now: the tip of its branch, from its recorded base."""
    from okstra_engine.worktrees import stage_target

    done = _finish(task, 1, {"one.txt": "1\n"})
    base = ledger(task).base_ref(1)
    append(task, 1, "reserved", base_ref=base)
    tip = commit(stage_target(task, 1).path, {"one.txt": "1\nmore\n"}, "stage 1, again")
    change = stage_change(task, ledger(task), 1)
    assert change is not None and change.head != done
    assert (change.base, change.head, change.base_from, change.head_from) == (base, tip, "recorded", "branch")
    shown = _board_diff(task, 1)
    assert shown is not None and (shown.head, shown.head_from) == (tip, "diff.head.branch")


def test_a_stage_corrected_to_its_amended_commit_keeps_the_base_it_started_from(task) -> None:
    """Stage 2 started from stage 1's done commit (not handed off yet); its commit is
    amended on its branch and the done row corrected to it: the change is still from
    stage 1's commit, not from where the task branch meets it (which would show stage 1's
    work as stage 2's)."""
    from okstra_engine import reconcile
    from okstra_engine.worktrees import stage_target

    s1 = _finish(task, 1, {"one.txt": "1\n"})
    _finish(task, 2, {"two.txt": "2\n"})
    worktree = stage_target(task, 2).path
    git(worktree, "commit", "-q", "--amend", "-m", "stage 2, amended")
    amended = git(worktree, "rev-parse", "HEAD")
    reconcile.correct(task, 2, amended)
    change = stage_change(task, ledger(task), 2)
    assert change is not None and (change.base, change.head, change.base_from) == (s1, amended, "recorded")
