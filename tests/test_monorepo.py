"""A project in a subfolder of its repository (a monorepo's `services/api`): every command
works on it with real git; its worktrees are the repository's, and its runs work in the
same subfolder of them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from okstra_engine import handoff as ho
from okstra_engine.git import is_ancestor
from okstra_engine.ledger import LEDGER_NAME, read_ledger
from okstra_engine.plans import import_plan, plan_run_root
from okstra_engine.prepare import PrepareOptions, prepare
from okstra_engine.projects import init_project, load_project
from okstra_engine.record import record
from okstra_engine.slugs import TaskRef
from okstra_engine.tasks import load_task, new_task
from okstra_engine.worktrees import stage_target, task_target
from tests.support import call, commit, git, make_repo, run_cli

API = "services/api"
TASK = "auth/login"


@pytest.fixture
def mono(tmp_path: Path) -> Path:
    """A repository with the project's folder and other top-level folders, all committed."""
    repo = make_repo(tmp_path / "mono")
    commit(repo, {f"{API}/app.py": "app = 1\n", "web/index.html": "<p>web</p>\n"}, "api and web")
    commit(repo, {"docs/guide.md": "# guide\n"}, "docs")
    return repo


@pytest.fixture
def repo(mono: Path) -> Path:
    """conftest's `task` is made in this folder: the monorepo's `services/api`."""
    return mono / API


def _json(capsys, *args: str) -> dict:
    code, out, err = call(capsys, *args, "--json")
    assert code == 0, err
    return json.loads(out)


def _ledger_rows(task) -> list:
    return read_ledger(plan_run_root(task).dir / LEDGER_NAME).rows


def _stage_done(task, stage: int) -> str:
    """Prepare the stage, commit a file in its project folder, record it done there."""
    workdir = Path(prepare(task, PrepareOptions("implementation", stage=str(stage))).manifest.worktree.path)
    sha = commit(workdir, {f"stage{stage}.py": f"s = {stage}\n"}, f"stage {stage}")
    record(task, stage, "done", commit=sha)
    return sha


def test_init_of_a_subfolder_keeps_its_okstra_folder_out_of_git(mono, capsys, monkeypatch) -> None:
    monkeypatch.chdir(mono)
    code, out, err = call(capsys, "init", API, "--qa-command", "true")
    assert code == 0, err
    assert f"registered project api at {mono / API}" in out
    assert git(mono, "status", "--porcelain", "--untracked-files=all") == ""
    exclude = (mono / ".git" / "info" / "exclude").read_text()
    assert f"/{API}/.okstra/" in exclude.splitlines()
    # again, from inside the project without a path: the same project, one exclude line
    monkeypatch.chdir(mono / API)
    code, out, err = call(capsys, "init")
    assert code == 0 and f"already registered project api at {mono / API}" in out, err
    assert (mono / ".git" / "info" / "exclude").read_text() == exclude
    assert not (mono / ".okstra").exists()


def test_init_dot_in_a_subfolder_then_every_command_finds_it(mono, capsys, monkeypatch) -> None:
    """`okstra init .` in `docs`, then the commands run from there and below work on it."""
    docs = mono / "docs"
    (docs / "deep").mkdir()
    monkeypatch.chdir(docs)
    assert call(capsys, "init", ".")[0] == 0
    code, out, err = call(capsys, "task", "new", "docs/intro", "--title", "Intro")
    assert code == 0 and str(docs / ".okstra" / "tasks" / "docs" / "intro") in out, err
    for where in (docs, docs / "deep"):
        monkeypatch.chdir(where)
        code, out, err = call(capsys, "status", "docs/intro")
        assert code == 0 and "Intro" in out, err
    # the repository's root is no project: the hint names the one inside it
    monkeypatch.chdir(mono)
    code, _, err = call(capsys, "status", "docs/intro")
    assert code == 2 and "not an okstra project" in err and str(docs) in err
    assert "okstra init" not in err


def test_prepare_makes_worktrees_of_the_repository_and_runs_in_the_subfolder(task, mono, capsys) -> None:
    root = task.project.root
    planning = new_task(task.project, TaskRef("auth", "plan"), title="Plan it")
    manifest = _json(capsys, "--project", str(root), "prepare", str(planning.ref), "--type", "planning")
    top = task_target(planning).path
    assert manifest["worktree"]["path"] == str(top / API)
    assert (manifest["worktree"]["status"], manifest["worktree"]["branch"]) == ("created", "okstra/feature/auth/plan")

    manifest = _json(capsys, "--project", str(root), "prepare", TASK, "--type", "implementation", "--stage", "1")
    top = stage_target(task, 1).path
    workdir = top / API
    assert manifest["worktree"]["path"] == str(workdir)
    assert manifest["worktree"]["status"] == "created"
    assert manifest["task_worktree"]["path"] == str(task_target(task).path / API)
    assert manifest["project_root"] == str(root)
    # a worktree of the whole repository, on the stage's branch
    assert (workdir / "app.py").is_file() and (top / "web" / "index.html").is_file()
    assert git(workdir, "rev-parse", "--abbrev-ref", "HEAD") == "okstra/feature/auth/login-s1"
    prompt = Path(manifest["prompt"]).read_text()
    assert f"- **worktree:** `{workdir}` (created)" in prompt
    assert f"Make the change in `{workdir}`" in prompt
    assert f"--project {root} --status done --commit" in prompt
    # the person's checkout is left alone
    assert git(mono, "status", "--porcelain", "--untracked-files=all") == ""
    assert git(mono, "rev-parse", "--abbrev-ref", "HEAD") == "main"


def test_a_project_folder_no_commit_holds_yet_gets_its_folder_in_the_worktree(mono, plan_file) -> None:
    (mono / "new-service").mkdir()
    project, _ = init_project(mono / "new-service", qa_commands=["true"])  # only .okstra in it
    fresh = new_task(project, TaskRef("svc", "start"), title="Start")
    import_plan(fresh, plan_file, approve=True)
    workdir = Path(prepare(fresh, PrepareOptions("implementation", stage="1")).manifest.worktree.path)
    assert workdir == stage_target(fresh, 1).path / "new-service" and workdir.is_dir()


def test_record_head_from_the_stage_subfolder_then_status_reconcile_and_handoff(task, capsys) -> None:
    root = task.project.root
    workdir = Path(prepare(task, PrepareOptions("implementation", stage="1")).manifest.worktree.path)
    (workdir / "pkg").mkdir()
    sha = commit(workdir, {"pkg/schema.py": "SCHEMA = 1\n"}, "stage 1")
    assert git(workdir, "show", "--name-only", "--format=", sha) == f"{API}/pkg/schema.py"
    code, out, err = run_cli(
        "record", TASK, "--stage", "1", "--status", "done", "--commit", "HEAD", cwd=workdir / "pkg"
    )  # fmt: skip
    assert code == 0 and f"stage 1 done at {sha[:8]}" in out, err
    assert _ledger_rows(task)[-1].head_commit == sha

    code, out, err = run_cli("status", TASK, "--json", cwd=workdir)
    assert code == 0, err
    stage_1 = json.loads(out)["stages"][0]
    assert (stage_1["state"], stage_1["done_commit"]) == ("not-merged", sha)
    found = _json(capsys, "--project", str(root), "reconcile", TASK)["suggestions"]
    assert [(s["stage"], s["kind"]) for s in found] == [(1, "not-merged")]

    code, out, err = call(capsys, "--project", str(root), "handoff", TASK, "--merge")
    assert code == 0 and "stage 1 (Schema): merged" in out, err
    merged = task_target(task).path
    assert (merged / API / "pkg" / "schema.py").read_text() == "SCHEMA = 1\n"
    assert git(merged, "merge-base", "--is-ancestor", sha, "HEAD") == ""
    assert _json(capsys, "--project", str(root), "status", TASK)["stages"][0]["state"] == "done"
    assert _json(capsys, "--project", str(root), "reconcile", TASK)["suggestions"] == []


def test_reconcile_finds_a_stage_picked_onto_the_task_branch(task, capsys) -> None:
    """The paths git prints are the repository's: reconcile looks them up from the
    project's subfolder all the same."""
    sha = _stage_done(task, 1)
    merged = task_target(task).path
    commit(merged, {"docs/note.md": "first\n"}, "a note on the task branch first")
    git(merged, "cherry-pick", sha)
    picked = git(merged, "rev-parse", "HEAD")
    found = _json(capsys, "--project", str(task.project.root), "reconcile", TASK)["suggestions"]
    assert [(s["stage"], s["kind"], s["suggested"]) for s in found] == [(1, "patch-equivalent", picked)]


def test_every_group_handed_off_then_final_verification(task, capsys) -> None:
    root = task.project.root
    for stages in ((1,), (2, 3), (4,)):
        for stage in stages:
            _stage_done(task, stage)
        assert ho.run_handoff(task, merge=True).merged == list(stages)
    merged = task_target(task).path
    assert sorted(p.name for p in (merged / API).glob("stage*.py")) == [f"stage{n}.py" for n in range(1, 5)]

    manifest = _json(capsys, "--project", str(root), "prepare", TASK, "--type", "final-verification")
    assert (manifest["worktree"]["path"], manifest["worktree"]["status"]) == (str(merged / API), "reused")
    manifest = _json(capsys, "--project", str(root), "prepare", TASK, "--type", "final-verification", "--stage", "2")
    assert manifest["worktree"]["path"] == str(stage_target(task, 2).path / API)
    (merged / API / "stray.txt").write_text("left over\n")
    code, _, err = call(capsys, "--project", str(root), "prepare", TASK, "--type", "final-verification")
    assert code == 2 and f"{API}/stray.txt" in err


def test_commands_from_a_linked_worktree_of_the_monorepo(task, tmp_path) -> None:
    """A worktree made by hand: from its root (one project in the repository) and from the
    project's folder in it, the commands find the project."""
    by_hand = tmp_path / "by-hand"
    git(task.project.root, "worktree", "add", "-q", "-b", "by-hand", str(by_hand))
    for cwd in (by_hand, by_hand / API):
        code, out, err = run_cli("status", TASK, cwd=cwd)
        assert code == 0 and "Login flow" in out, err
    # elsewhere in it, the project is named; no advice to make the worktree a project
    code, _, err = run_cli("status", TASK, cwd=by_hand / "web")
    assert code == 2 and str(task.project.root) in err and "okstra init" not in err


def test_two_projects_in_one_repository_keep_their_branches_apart(mono, plan_file, capsys, monkeypatch) -> None:
    """A branch is the repository's: the second project's task that would share the first
    one's branch is refused at `task new`; with its own category both run side by side."""
    api, _ = init_project(mono / API, qa_commands=["true"])
    web, _ = init_project(mono / "web", qa_commands=["true"])
    first = new_task(api, TaskRef("auth", "login"), title="API login")
    monkeypatch.chdir(web.root)
    code, _, err = call(capsys, "task", "new", TASK, "--title", "Web login")
    assert code == 2, err
    assert "okstra/feature/auth/login" in err and "project api" in err and "--category" in err
    assert not (web.root / ".okstra" / "tasks" / "auth").exists()
    code, _, err = call(capsys, "task", "new", TASK, "--title", "Web login", "--category", "web")
    assert code == 0, err

    second = load_task(load_project(web.root), TaskRef("auth", "login"))
    done = {}
    for one in (first, second):
        import_plan(one, plan_file, approve=True)
        done[one.project.id] = _stage_done(one, 1)
        assert ho.run_handoff(one, merge=True).merged == [1]
    assert git(task_target(first).path, "rev-parse", "--abbrev-ref", "HEAD") == "okstra/feature/auth/login"
    assert git(task_target(second).path, "rev-parse", "--abbrev-ref", "HEAD") == "okstra/web/auth/login"
    # each task branch holds its own stage, not the other project's
    for one, other in ((first, second), (second, first)):
        merged = task_target(one).path
        assert is_ancestor(merged, done[one.project.id], "HEAD")
        assert not is_ancestor(merged, done[other.project.id], "HEAD")
        assert not (merged / other.project.root.relative_to(mono) / "stage1.py").exists()


def test_launch_starts_the_agent_in_the_projects_folder_of_the_stage_worktree(task, tmp_path) -> None:
    import os
    import subprocess
    import sys

    from okstra_engine.config import settings

    run = Path(prepare(task, PrepareOptions("implementation", stage="1")).manifest.run_dir)
    seen = tmp_path / "cwd.txt"
    script = f"import os; open({str(seen)!r}, 'w').write(os.getcwd())"
    Path(os.environ["OKSTRA_CONFIG"]).write_text(f"agent_command = {json.dumps([sys.executable, '-c', script])}\n")
    settings.cache_clear()
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("okstra")), "launch", str(run)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert seen.read_text() == str(stage_target(task, 1).path / API)
