"""New worktrees made ready on real repositories: the `.worktreeinclude` copy, shared
folders, setup commands (a failing one leaves nothing behind) and a block of ports per
stage in flight."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

from okstra_engine import ports, registry
from okstra_engine.launch import plan_launch
from okstra_engine.ledger import LEDGER_NAME, read_ledger
from okstra_engine.locations import projects_file
from okstra_engine.plans import import_plan, plan_run_root
from okstra_engine.prepare import PrepareOptions, prepare
from okstra_engine.projects import config_path, init_project, setup_of
from okstra_engine.refusals import RefusedError
from okstra_engine.slugs import TaskRef
from okstra_engine.tasks import new_task
from okstra_engine.worktrees import stage_target, task_slot, task_target
from tests.support import call, commit, git, make_repo, set_agent_command

TASK = "auth/login"


def _prepare(task, stage: int = 1, **kw):
    return prepare(task, PrepareOptions("implementation", stage=str(stage), **kw))


@pytest.fixture
def local(repo: Path) -> Path:
    """The checkout holds what git ignores: a `.env`, a local config, an untracked file
    that is not ignored, and the `.worktreeinclude` naming them."""
    commit(repo, {".gitignore": ".env\n*.local\nnode_modules/\n"}, "ignore local files")
    (repo / ".env").write_text("SECRET=1\n")
    (repo / "config").mkdir()
    (repo / "config" / "app.local").write_text("debug = true\n")
    (repo / "notes.txt").write_text("not ignored\n")
    (repo / ".worktreeinclude").write_text("# what a worktree needs\n.env\nconfig/*.local\nnotes.txt\n")
    return repo


@pytest.fixture
def pair(repo: Path, tmp_path: Path):
    """A task of two stages that need nothing of each other."""
    project, _ = init_project(repo, qa_commands=["true"])
    source = tmp_path / "pair.json"
    source.write_text(json.dumps({"stages": [{"stage": n, "title": f"S{n}", "depends_on": []} for n in (1, 2)]}))
    task = new_task(project, TaskRef("duo", "pair"), title="Two stages")
    import_plan(task, source, approve=True)
    return task


def _nothing_left(task) -> None:
    """No worktree, branch, registry row or ledger row of the task."""
    assert not task_target(task).path.exists() and not stage_target(task, 1).path.exists()
    assert git(task.project.repo, "branch", "--list", "okstra/*") == ""
    assert registry.task_worktrees(task_slot(task)) == {}
    assert read_ledger(plan_run_root(task).dir / LEDGER_NAME).rows == []


# ---------------------------------------------------------------------------- .worktreeinclude


def test_ignored_files_are_copied_into_each_new_worktree_and_never_committed(local, task) -> None:
    prepared = _prepare(task)
    doc = prepared.manifest.to_json()
    stage_dir = stage_target(task, 1).path
    for where in (task_target(task).path, stage_dir):
        assert (where / ".env").read_text() == "SECRET=1\n"
        assert (where / "config" / "app.local").read_text() == "debug = true\n"
        assert not (where / "notes.txt").exists()  # untracked but not ignored: not copied
    assert doc["worktree"]["copied"] == [".env", "config/app.local"]
    assert doc["task_worktree"]["copied"] == [".env", "config/app.local"]
    assert "- **copied from the project checkout** (`.worktreeinclude`): `.env`, `config/app.local`" in (
        prepared.prompt_text
    )
    # the agent commits everything it sees: the copies stay out
    (stage_dir / "feature.py").write_text("x = 1\n")
    git(stage_dir, "add", "-A")
    git(stage_dir, "commit", "-q", "-m", "work")
    assert git(stage_dir, "show", "--name-only", "--format=", "HEAD") == "feature.py"
    assert git(stage_dir, "status", "--porcelain") == ""


def test_a_reused_worktree_gets_nothing_copied_again(local, pair) -> None:
    task = pair
    _prepare(task)
    (local / ".env").write_text("SECRET=2\n")
    second = _prepare(task, stage=2)
    assert "copied" not in second.manifest.to_json()["task_worktree"]  # reused: left as it is
    assert (task_target(task).path / ".env").read_text() == "SECRET=1\n"
    assert (stage_target(task, 2).path / ".env").read_text() == "SECRET=2\n"


def test_a_worktree_a_killed_prepare_left_unready_is_made_ready_by_the_next(local, pair) -> None:
    task = pair
    _prepare(task)
    task_wt = task_target(task).path
    # killed after git made it, before it was ready: no copy, no mark
    (task_wt / ".env").unlink()
    Path(git(task_wt, "rev-parse", "--path-format=absolute", "--git-path", "okstra-ready")).unlink()
    doc = _prepare(task, stage=2).manifest.to_json()
    assert doc["task_worktree"]["status"] == "reused" and doc["task_worktree"]["copied"] == [".env"]
    assert doc["task_worktree"]["left_out"] == [
        "config/app.local: the worktree has it already (tracked, or copied before): kept as it is"
    ]
    assert (task_wt / ".env").read_text() == "SECRET=1\n"


def test_a_file_the_worktree_tracks_is_never_overwritten(local, task) -> None:
    (local / "keep.local").write_text("tracked\n")
    git(local, "add", "-f", "keep.local")
    git(local, "commit", "-q", "-m", "track one local file")
    git(local, "rm", "-q", "--cached", "keep.local")  # untracked in the checkout, still in HEAD
    (local / "keep.local").write_text("mine\n")
    (local / ".worktreeinclude").write_text("*.local\n")
    doc = _prepare(task).manifest.to_json()
    assert (stage_target(task, 1).path / "keep.local").read_text() == "tracked\n"
    assert "keep.local" not in doc["worktree"]["copied"]
    assert doc["worktree"]["left_out"] == [
        "keep.local: the worktree has it already (tracked, or copied before): kept as it is"
    ]


def test_without_a_worktreeinclude_the_manifest_and_prompt_say_nothing_of_it(task) -> None:
    prepared = _prepare(task)
    assert set(prepared.manifest.to_json()["worktree"]) == {"path", "branch", "base_ref", "status", "note"}
    assert "copied from the project checkout" not in prepared.prompt_text


@pytest.mark.parametrize(
    "pattern", ["../secrets.env", "config/../../x", "/etc/hosts", "~/.aws/credentials", "~root/.ssh/id_rsa", "~"]
)
def test_a_pattern_leaving_the_project_is_refused_before_anything_is_made(local, task, pattern) -> None:
    (local / ".worktreeinclude").write_text(f".env\n{pattern}\n")
    with pytest.raises(RefusedError) as info:
        _prepare(task)
    assert info.value.refusal.code == "include.outside"
    assert info.value.refusal.params == {"file": str(local / ".worktreeinclude"), "line": 2, "pattern": pattern}
    _nothing_left(task)


def test_a_pattern_that_only_looks_like_a_path_of_the_machine_is_a_pattern(local, task) -> None:
    (local / "~$report.local").write_text("office lock\n")
    (local / ".worktreeinclude").write_text("~$*.local\n/.env\n")
    assert _prepare(task).manifest.to_json()["worktree"]["copied"] == [".env", "~$report.local"]


def test_a_matched_link_pointing_out_of_the_project_is_refused(local, task, tmp_path, capsys) -> None:
    outside = tmp_path / "outside.env"
    outside.write_text("ELSEWHERE=1\n")
    (local / ".env").unlink()
    (local / ".env").symlink_to(outside)
    code, _out, err = call(capsys, "--project", str(local), "prepare", TASK, "--type", "implementation")
    assert code == 2
    assert f"{local / '.env'} is a link to {outside}, outside the project" in err and "Traceback" not in err
    _nothing_left(task)


def test_a_link_inside_the_project_is_not_followed(local, task) -> None:
    (local / "config" / "link.local").symlink_to(local / "config" / "app.local")
    doc = _prepare(task).manifest.to_json()
    assert not os.path.lexists(stage_target(task, 1).path / "config" / "link.local")
    assert any(n.startswith("config/link.local is a link") for n in doc["worktree"]["left_out"])


def test_a_worktreeinclude_that_is_a_link_is_refused(local, task, tmp_path) -> None:
    elsewhere = tmp_path / "include"
    elsewhere.write_text(".env\n")
    (local / ".worktreeinclude").unlink()
    (local / ".worktreeinclude").symlink_to(elsewhere)
    with pytest.raises(RefusedError, match="is a link to") as info:
        _prepare(task)
    assert info.value.refusal.code == "include.link_out"
    _nothing_left(task)


def test_render_only_says_what_a_new_worktree_would_get_and_copies_nothing(local, task) -> None:
    prepared = prepare(task, PrepareOptions("implementation", stage="1", render_only=True))
    assert prepared.manifest.to_json()["worktree"]["copied"] == [".env", "config/app.local"]
    assert not task_target(task).path.exists()


def test_in_a_monorepo_the_patterns_are_the_project_folders(tmp_path, plan_file) -> None:
    mono = make_repo(tmp_path / "mono")
    commit(mono, {".gitignore": ".env\n*.local\n", "services/api/app.py": "app = 1\n"}, "api")
    api = mono / "services" / "api"
    (mono / ".env").write_text("ROOT=1\n")  # the repository's, not the project's
    (api / ".env").write_text("API=1\n")
    (api / "config").mkdir()
    (api / "config" / "db.local").write_text("db\n")
    (mono / "config").mkdir()
    (mono / "config" / "db.local").write_text("root db\n")
    (api / ".worktreeinclude").write_text("/.env\nconfig/*.local\n")
    project, _ = init_project(api, qa_commands=["true"])
    task = new_task(project, TaskRef("auth", "login"), title="Login")
    import_plan(task, plan_file, approve=True)
    doc = _prepare(task).manifest.to_json()
    worktree = stage_target(task, 1).path
    assert doc["worktree"]["copied"] == [".env", "config/db.local"]
    assert (worktree / "services" / "api" / ".env").read_text() == "API=1\n"
    assert (worktree / "services" / "api" / "config" / "db.local").read_text() == "db\n"
    assert not (worktree / ".env").exists() and not (worktree / "config").exists()


# ---------------------------------------------------------------------------- setup


def test_setup_commands_and_a_shared_folder_make_the_worktree_ready(local, task, capsys) -> None:
    (local / "node_modules" / "left-pad").mkdir(parents=True)
    (local / "node_modules" / "left-pad" / "index.js").write_text("module.exports = 1\n")
    code, out, err = call(
        capsys,
        "init",
        str(local),
        "--setup-command",
        "cat .env > from-setup.txt && echo set up; echo port=$OKSTRA_PORT",
        "--setup-command",
        "test -d node_modules/left-pad",
        "--symlink-dir",
        "node_modules",
    )
    assert code == 0, err
    assert "okstra: setup commands (each new worktree): cat .env" in out
    assert "okstra: shared folders (linked in each new worktree): node_modules" in out
    # kept in the okstra home, where the project's agents do not write; not in project.json
    assert "setupCommands" not in config_path(local).read_text()
    assert json.loads(projects_file().read_text())["projects"][0]["symlinkDirs"] == ["node_modules"]

    said: list[str] = []
    prepared = prepare(task, PrepareOptions("implementation", stage="1"), notice=said.append)
    worktree = stage_target(task, 1).path
    assert (worktree / "from-setup.txt").read_text() == "SECRET=1\n"  # after the copy
    assert (worktree / "node_modules").is_symlink()
    assert (worktree / "node_modules").resolve() == (local / "node_modules").resolve()
    assert git(worktree, "status", "--porcelain") == "?? from-setup.txt"  # the link is ignored
    assert "okstra: running setup in the stage 1 worktree: test -d node_modules/left-pad" in said
    doc = prepared.manifest.to_json()
    log = Path(doc["setup_log"])
    assert log == Path(doc["run_dir"]) / "setup.log"
    assert log.read_text().count("set up\n") == 2  # the task worktree's, then the stage's
    assert doc["worktree"]["linked"] == ["node_modules"]
    assert doc["worktree"]["setup"] == [
        "cat .env > from-setup.txt && echo set up; echo port=$OKSTRA_PORT",
        "test -d node_modules/left-pad",
    ]
    assert "- **shared folders** (links to the project checkout's" in prepared.prompt_text
    assert f"(output: `{log}`)" in prepared.prompt_text

    code, out, _ = call(capsys, "init", str(local), "--no-setup")
    assert code == 0 and "setup commands" not in out
    assert setup_of(task.project).commands == ()


def test_a_failing_setup_fails_the_prepare_and_leaves_nothing(local, task, capsys) -> None:
    (local / "node_modules").mkdir()
    (local / "node_modules" / "kept.js").write_text("1\n")
    init_project(
        local, setup_commands=["echo installing; echo broken dependency >&2; exit 3"], symlink_dirs=["node_modules"]
    )
    code, _out, err = call(capsys, "--project", str(local), "prepare", TASK, "--type", "implementation")
    assert code == 2 and "Traceback" not in err
    assert "the setup command echo installing; echo broken dependency >&2; exit 3 failed in" in err
    assert "(exit 3)" in err and "broken dependency" in err
    assert "okstra init" in err and "--setup-command" in err
    _nothing_left(task)
    before = {plan_run_root(task).dir}  # the plan's run: no run folder, no temporary log, the log alone
    logs = [p for p in task.runs_dir.iterdir() if p not in before]
    assert len(logs) == 1 and logs[0].name.endswith(".setup.log") and str(logs[0]) in err
    assert "broken dependency" in logs[0].read_text()
    assert (local / "node_modules" / "kept.js").read_text() == "1\n"  # the shared folder: only its link went
    # fixed, the next prepare makes everything again
    init_project(local, setup_commands=["true"])
    assert _prepare(task).manifest.worktree.status == "created"


def test_symlink_dirs_must_stay_in_the_project(local, capsys) -> None:
    for bad in ("../shared", "/opt/node_modules", ".", ".git/hooks", ".okstra"):
        code, _out, err = call(capsys, "init", str(local), "--symlink-dir", bad)
        assert code == 2 and "--symlink-dir" in err, bad


# ---------------------------------------------------------------------------- ports


def test_each_stage_in_flight_gets_its_own_block_of_ports(pair) -> None:
    task = pair
    first = _prepare(task, stage=1)
    second = _prepare(task, stage=2)
    a, b = first.manifest.port, second.manifest.port
    assert a is not None and b is not None and abs(a - b) >= ports.BLOCK
    rows = read_ledger(plan_run_root(task).dir / LEDGER_NAME).rows
    assert [ports.port_of(r) for r in rows] == [a, b]
    assert f"`OKSTRA_PORT={a}` is in your environment: ports {a}–{a + 9}" in first.prompt_text
    set_agent_command(["true", "{prompt_file}"])
    run = Path(first.manifest.run_dir)
    manifest = json.loads((run / "manifest.json").read_text())
    (run / "manifest.json").write_text(json.dumps({**manifest, "port": b}))  # the manifest is anybody's to edit
    assert plan_launch(run).env["OKSTRA_PORT"] == str(a)  # the ledger's reservation says


def test_a_port_in_use_on_the_machine_is_not_given_out(task) -> None:
    project = task.project
    wanted = ports.pick(project, set())
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", wanted + 7))
        given = _prepare(task).manifest.port
    assert given is not None and given != wanted and given % ports.BLOCK == 0


def test_a_block_held_by_another_tasks_stage_is_not_given_out(task, tmp_path) -> None:
    held = _prepare(task).manifest.port
    source = tmp_path / "other.json"
    source.write_text(json.dumps({"stages": [{"stage": 1, "title": "One", "depends_on": []}]}))
    other = new_task(task.project, TaskRef("auth", "logout"), title="Logout")
    import_plan(other, source, approve=True)
    assert ports.held(task.project) == {held}
    assert _prepare(other).manifest.port != held
