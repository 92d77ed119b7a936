"""A command run from inside one of okstra's worktrees (where agents run `okstra record`),
or from a subfolder of either, works on the project that owns it."""

from __future__ import annotations

from pathlib import Path

from okstra_engine.ledger import LEDGER_NAME, read_ledger
from okstra_engine.plans import plan_run_root
from okstra_engine.prepare import PrepareOptions, prepare
from okstra_engine.projects import list_projects
from tests.support import commit, git, run_cli


def _stage_one(task) -> Path:
    prepared = prepare(task, PrepareOptions("implementation", stage="1"))
    return Path(prepared.manifest.worktree.path)


def test_record_from_the_stage_worktree_finds_the_project(task) -> None:
    worktree = _stage_one(task)
    sha = commit(worktree, {"schema.py": "x = 1\n"}, "stage 1")
    (worktree / "pkg").mkdir()
    for cwd in (worktree, worktree / "pkg"):  # the worktree, and a folder in it
        code, _out, err = run_cli("status", "auth/login", "--json", cwd=cwd)
        assert code == 0, err
    code, _out, err = run_cli(
        "record", "auth/login", "--stage", "1", "--status", "done", "--commit", sha, cwd=worktree / "pkg"
    )
    assert code == 0, err
    rows = read_ledger(plan_run_root(task).dir / LEDGER_NAME).rows
    assert rows[-1].stage == 1 and rows[-1].status == "done" and rows[-1].head_commit == sha
    # nothing was registered in the worktree's name
    assert [Path(p.path) for p in list_projects()] == [task.project.root]
    assert not (worktree / ".okstra").exists()


def test_a_worktree_the_registry_does_not_know_finds_its_repository(task, tmp_path) -> None:
    """A linked worktree made by hand: git's common dir names the repository."""
    by_hand = tmp_path / "by-hand"
    git(task.project.root, "worktree", "add", "-q", "-b", "by-hand", str(by_hand))
    code, out, err = run_cli("status", "auth/login", cwd=by_hand)
    assert code == 0, err
    assert "Login flow" in out


def test_a_folder_of_no_project_still_says_so(tmp_path) -> None:
    repo = tmp_path / "other"
    repo.mkdir()
    git(repo, "init", "-q")
    code, _, err = run_cli("status", "auth/login", cwd=repo)
    assert code == 2 and "not an okstra project" in err


def test_commit_head_names_the_stage_worktrees_head_whatever_the_cwd(task) -> None:
    """`record --commit HEAD` (the README's example) is the stage's work, not the project
    checkout's HEAD, which is the stage's base."""
    worktree = _stage_one(task)
    sha = commit(worktree, {"schema.py": "x = 1\n"}, "stage 1")
    main_head = git(task.project.root, "rev-parse", "HEAD")
    assert sha != main_head
    code, _out, err = run_cli(
        "--project", str(task.project.root), "record", "auth/login", "--stage", "1", "--status", "done",
        "--commit", "HEAD", cwd=task.project.root,
    )  # fmt: skip
    assert code == 0, err
    assert read_ledger(plan_run_root(task).dir / LEDGER_NAME).rows[-1].head_commit == sha
    # a correction's symbolic revision too
    again = commit(worktree, {"schema.py": "x = 2\n"}, "stage 1, amended")
    code, _out, err = run_cli(
        "--project", str(task.project.root), "reconcile", "auth/login", "--stage", "1", "--commit", "HEAD",
        cwd=task.project.root,
    )  # fmt: skip
    assert code == 0, err
    assert read_ledger(plan_run_root(task).dir / LEDGER_NAME).rows[-1].head_commit == again
