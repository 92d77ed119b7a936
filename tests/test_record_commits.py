"""`record --status done` takes the stage's own work: not the commit it started from, not
a commit its branch does not contain (unless a person insists, with a full SHA);
`reconcile --commit` the same, where the task branch (a squash of the stage) counts too."""

from __future__ import annotations

from pathlib import Path

from okstra_engine.ledger import LEDGER_NAME
from okstra_engine.plans import plan_run_root
from okstra_engine.prepare import PrepareOptions, prepare
from okstra_engine.worktrees import task_target
from tests.support import commit, git, run_cli


def _ledger(task) -> bytes:
    return (plan_run_root(task).dir / LEDGER_NAME).read_bytes()


def _done(worktree: Path, rev: str, *more: str) -> tuple[int, str, str]:
    return run_cli("record", "auth/login", "--stage", "1", "--status", "done", "--commit", rev, *more, cwd=worktree)


def test_done_at_the_stages_base_is_refused(task) -> None:
    prepared = prepare(task, PrepareOptions("implementation", stage="1"))
    worktree = Path(prepared.manifest.worktree.path)
    base = git(worktree, "rev-parse", "HEAD")
    before = _ledger(task)
    code, _, err = _done(worktree, "HEAD")  # the agent committed nothing
    assert code == 2 and f"the commit it started from (base {base[:8]})" in err and "--force" in err
    assert _ledger(task) == before  # a refusal changes nothing
    code, _, err = _done(worktree, base[:10], "--force")  # forcing takes a full SHA only
    assert code == 2 and _ledger(task) == before
    code, _, err = _done(worktree, base, "--force")
    assert code == 0, err


def test_done_at_a_commit_off_the_stage_branch_is_refused(task) -> None:
    prepared = prepare(task, PrepareOptions("implementation", stage="1"))
    worktree = Path(prepared.manifest.worktree.path)
    elsewhere = commit(task.project.root, {"other.txt": "o\n"}, "on the project's own branch")
    before = _ledger(task)
    code, _, err = _done(worktree, elsewhere)
    assert code == 2 and f"does not contain {elsewhere[:8]}" in err and "okstra/" in err
    assert _ledger(task) == before
    mine = commit(worktree, {"schema.py": "x = 1\n"}, "stage 1")
    code, out, err = _done(worktree, "HEAD")
    assert code == 0 and f"stage 1 done at {mine[:8]}" in out, err
    code, _, err = _done(worktree, elsewhere, "--force")
    assert code == 0, err


def _correct(worktree: Path, rev: str, *more: str) -> tuple[int, str, str]:
    return run_cli("reconcile", "auth/login", "--stage", "1", "--commit", rev, *more, cwd=worktree)


def test_reconcile_commit_takes_the_stage_branch_or_the_task_branch_only(task) -> None:
    prepared = prepare(task, PrepareOptions("implementation", stage="1"))
    worktree = Path(prepared.manifest.worktree.path)
    base = git(worktree, "rev-parse", "HEAD")
    first = commit(worktree, {"schema.py": "x = 1\n"}, "stage 1")
    assert _done(worktree, "HEAD")[0] == 0
    before = _ledger(task)

    code, _, err = _correct(worktree, "HEAD~1")  # its base
    assert code == 2 and f"the commit it started from (base {base[:8]})" in err
    elsewhere = commit(task.project.root, {"other.txt": "o\n"}, "on the project's own branch")
    code, _, err = _correct(worktree, elsewhere)
    task_tip = git(task.project.root, "rev-parse", "okstra/feature/auth/login")
    assert code == 2
    assert f"okstra/feature/auth/login-s1 (at {first[:8]})" in err and f"contains {elsewhere[:8]}" in err
    assert f"the task branch okstra/feature/auth/login (at {task_tip[:8]})" in err and "--force" in err
    code, _, err = _correct(worktree, elsewhere[:12], "--force")  # forcing takes a full SHA only
    assert code == 2 and _ledger(task) == before

    # a later commit of the stage branch, and a squash of the stage on the task branch, are fine
    second = commit(worktree, {"schema.py": "x = 2\n"}, "stage 1, fixed")
    code, out, err = _correct(worktree, "HEAD")
    assert code == 0 and f"{first[:8]} -> {second[:8]} recorded (manual)" in out, err
    task_wt = task_target(task).path
    git(task_wt, "merge", "-q", "--squash", second)
    git(task_wt, "commit", "-q", "-m", "stage 1, squashed")
    squash = git(task_wt, "rev-parse", "HEAD")
    code, out, err = _correct(worktree, squash)
    assert code == 0 and f"-> {squash[:8]} recorded (manual)" in out, err
    code, out, err = _correct(worktree, elsewhere, "--force")
    assert code == 0 and f"-> {elsewhere[:8]} recorded (manual)" in out, err
