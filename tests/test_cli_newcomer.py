"""What a person new to okstra meets on the command line: `--version`, `task list`,
`status` without a task or a plan, the launch line of `prepare`, `project forget`,
shell completion and the spinner of long commands. Real git repositories throughout."""

from __future__ import annotations

import json
import os
import pty
import select
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from okstra_engine.cli import build_parser
from okstra_engine.completion import FILES, candidates, script
from tests.support import call, make_repo, run_cli


@pytest.fixture
def project(repo: Path, capsys) -> Path:
    code, _, err = call(capsys, "init", "--project", str(repo), "--qa-command", "true")
    assert code == 0, err
    return repo


def new_task(capsys, root: Path, ref: str, title: str) -> None:
    code, _, err = call(capsys, "--project", str(root), "task", "new", ref, "--title", title)
    assert code == 0, err


def test_version_is_the_installed_distributions() -> None:
    code, out, err = run_cli("--version")
    assert code == 0, err
    assert out == f"okstra {version('okstra')}\n"


def test_task_list_and_its_json(project: Path, plan_file: Path, capsys) -> None:
    code, out, _ = call(capsys, "task", "list", "--project", str(project))
    assert code == 0 and "has no task yet: okstra task new GROUP/ID" in out
    new_task(capsys, project, "auth/login", "Login flow")
    new_task(capsys, project, "auth/logout", "Logout")
    code, _, err = call(capsys, "plan", "import", "auth/login", str(plan_file), "--approve", "--project", str(project))
    assert code == 0, err
    code, out, _ = call(capsys, "task", "list", "--project", str(project))
    assert code == 0
    assert "auth/login   Login flow  (0/4 done, next: stage 1)" in out
    assert "auth/logout  Logout  (no plan yet)" in out
    code, out, _ = call(capsys, "task", "list", "--json", "--project", str(project))
    doc = json.loads(out)
    assert doc["project"] == "repo" and [t["task"] for t in doc["tasks"]] == ["auth/login", "auth/logout"]
    login = doc["tasks"][0]
    assert (login["plan"], login["stages"], login["done"], login["in_flight"], login["next_stage"]) == (
        "approved",
        4,
        0,
        0,
        1,
    )
    assert doc["tasks"][1]["plan"] == "none" and doc["tasks"][1]["title"] == "Logout"
    assert login["not_merged"] == 0


def test_task_list_says_what_the_engine_says_of_each_plan_and_stage(task, capsys) -> None:
    """A plan whose Stage Map does not hold is broken, not waiting; a stage done on its
    own branch is not counted as done (the TUI's task list says the same)."""
    from okstra_engine.slugs import TaskRef
    from okstra_engine.tasks import new_task as make_task
    from tests.support import PLAN_BROKEN, a_run
    from tests.test_prepare import _finish, _prep

    bare = make_task(task.project, TaskRef.parse("auth/bare"), title="Bare")
    a_run(bare, "20260610T120000Z-planning-aaaaaa", "planning", {"plan.md": PLAN_BROKEN})
    root = task.project.root
    _prep(capsys, root)
    _finish(task, 1)  # done on its branch, not merged into the task branch
    code, out, _ = call(capsys, "task", "list", "--json", "--project", str(root))
    assert code == 0
    tasks = {t["task"]: t for t in json.loads(out)["tasks"]}
    assert tasks["auth/bare"]["plan"] == "broken"
    assert (tasks["auth/login"]["done"], tasks["auth/login"]["not_merged"]) == (0, 1)
    code, out, _ = call(capsys, "task", "list", "--project", str(root))
    assert code == 0
    assert "Bare  (its plan's Stage Map does not hold)" in out and "(0/4 done, 1 not merged" in out


def test_status_without_a_task(project: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(project)
    code, _, err = call(capsys, "status")
    assert code == 2 and "has no task yet" in err and "okstra task new" in err
    new_task(capsys, project, "auth/login", "Login flow")
    code, out, _ = call(capsys, "status")  # the only task
    assert code == 0 and out.startswith("auth/login Login flow")
    code, out, _ = call(capsys, "status", "--json")
    assert code == 0 and json.loads(out)["task"] == "auth/login"
    new_task(capsys, project, "auth/logout", "Logout")
    code, out, _ = call(capsys, "status")  # several: listed, and how to name one
    assert code == 0
    assert "auth/login   Login flow  (no plan yet)" in out and "auth/logout  Logout  (no plan yet)" in out
    assert "name one: okstra status auth/login" in out
    code, out, err = call(capsys, "status", "--json")
    assert code == 2 and out == "" and "has 2 tasks: auth/login, auth/logout" in err


def test_status_without_a_plan_says_the_next_step(project: Path, plan_file: Path, capsys) -> None:
    new_task(capsys, project, "auth/login", "Login flow")
    code, out, _ = call(capsys, "status", "auth/login", "--project", str(project))
    assert code == 0
    assert "next: plan it with an agent: okstra prepare auth/login --type planning" in out
    assert "okstra plan import auth/login plan.md --approve" in out
    code, out, err = call(capsys, "prepare", "auth/login", "--type", "planning", "--project", str(project))
    assert code == 0, err
    run_dir = out.splitlines()[0].removeprefix("okstra run dir: ")
    code, out, _ = call(capsys, "status", "auth/login", "--project", str(project))
    assert f"has written no plan.md yet; start its agent: okstra launch {run_dir}" in out
    code, _, err = call(capsys, "plan", "import", "auth/login", str(plan_file), "--project", str(project))
    assert code == 0, err
    code, out, _ = call(capsys, "status", "auth/login", "--project", str(project))
    assert "then approve it: okstra plan approve auth/login" in out and "plan.md" in out
    call(capsys, "plan", "approve", "auth/login", "--project", str(project))
    code, out, _ = call(capsys, "status", "auth/login", "--project", str(project))
    assert "next: stage 1" in out and "approve it" not in out


def test_prepare_prints_the_launch_line(task, capsys) -> None:
    root = str(task.project.root)
    code, out, _ = call(capsys, "prepare", "auth/login", "--type", "implementation", "--render-only", "--project", root)
    assert code == 0 and "okstra next" not in out  # nothing was written: nothing to launch
    code, out, err = call(capsys, "prepare", "auth/login", "--type", "implementation", "--project", root)
    assert code == 0, err
    run_dir = next(line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("okstra run dir: "))
    assert (Path(run_dir) / "manifest.json").is_file()
    assert out.splitlines()[-1] == f"okstra next: start its agent: okstra launch {run_dir}"


def test_project_forget_drops_only_a_stale_row(tmp_path: Path, capsys) -> None:
    from okstra_engine.projects import list_projects

    gone, kept = make_repo(tmp_path / "gone"), make_repo(tmp_path / "kept")
    for root in (gone, kept):
        assert call(capsys, "init", str(root))[0] == 0
    code, _, err = call(capsys, "project", "forget", "kept")
    assert code == 2 and f"project kept is still at {kept}" in err and "move" in err
    code, _, err = call(capsys, "project", "forget", "nope")
    assert code == 2 and "knows no project 'nope' (known: gone, kept)" in err
    shutil.rmtree(gone)
    code, out, err = call(capsys, "project", "forget", "gone")
    assert code == 0, err
    assert out == f"okstra: forgot project gone (was at {gone})\n"
    assert [p.project_id for p in list_projects()] == ["kept"]
    # a folder that says another id now: its old row is stale too, named by its path
    assert call(capsys, "init", str(kept), "--id", "other")[0] == 2  # refused: already registered
    (kept / ".okstra" / "project.json").write_text(
        json.dumps({**json.loads((kept / ".okstra" / "project.json").read_text()), "projectId": "renamed"})
    )
    code, out, _ = call(capsys, "project", "forget", str(kept))
    assert code == 0 and "forgot project kept" in out and list_projects() == []


def test_completion_candidates(task, capsys, monkeypatch, tmp_path: Path) -> None:
    parser = build_parser()

    def first(done: list[str], prefix: str) -> list[str]:
        return [line.split("\t")[0] for line in candidates(parser, done, prefix)]

    assert {"status", "prepare", "task", "completion", "project"} <= set(first([], ""))
    assert first([], "sta") == ["status", "start"]
    assert first(["task"], "") == ["new", "list"]
    assert first(["project"], "") == ["forget"]
    assert first(["status"], "--j") == ["--json"]
    assert first(["record", "auth/login", "--status"], "re") == ["released", "reopened"]
    assert first(["completion"], "") == ["bash", "zsh", "fish"]
    assert first(["plan", "import", "auth/login"], "") == [FILES]
    assert first(["launch"], "") == [FILES]
    assert "--version" in first([], "--")
    # task refs: of the project named on the line, else of the cwd's
    root = str(task.project.root)
    assert candidates(parser, ["status", "--project", root], "") == ["auth/login\tLogin flow"]
    assert candidates(parser, ["--project", root, "prepare"], "auth/") == ["auth/login\tLogin flow"]
    assert first(["--project", root, "status"], "x") == []
    assert first(["status", "--project", "=", root], "") == ["auth/login"]  # bash's words for --project=P
    assert first(["--lang"], "=") == ["en", "ko"]
    assert first([], "--lang=k") == ["--lang=ko"]  # zsh's and fish's word for it
    assert first([f"--project={root}", "status"], "") == ["auth/login"]
    monkeypatch.chdir(task.project.root)
    assert first(["status"], "") == ["auth/login"]
    assert first(["record", "auth/login", "--stage", "1"], "") == []  # all positionals given
    monkeypatch.chdir(tmp_path)  # no project here: nothing, and no error
    assert first(["status"], "") == []
    assert call(capsys, "__complete", "--", "status", "")[1:] == ("", "")


def test_bash_completion_script(task) -> None:
    """The script bash loads, run the way bash runs it at a TAB."""
    root = task.project.root
    exe = Path(sys.executable).with_name("okstra")
    program = script("bash").replace("complete -F _okstra okstra", f"complete -F _okstra {exe}")
    probe = (
        program
        + f'COMP_WORDS=({exe} status au); COMP_CWORD=2; _okstra; printf "%s\\n" "${{COMPREPLY[@]}}"\n'
        + f'COMP_WORDS=({exe} ta); COMP_CWORD=1; _okstra; printf "%s\\n" "${{COMPREPLY[@]}}"\n'
        + f'COMP_WORDS=({exe} launch ""); COMP_CWORD=2; _okstra; printf "%s\\n" "${{COMPREPLY[@]}}"\n'
        + "echo ---\n"
        + f'COMP_WORDS=({exe} --lang =); COMP_CWORD=2; _okstra; printf "%s\\n" "${{COMPREPLY[@]}}"\n'
    )
    out = subprocess.run(["bash", "-c", probe], cwd=root, capture_output=True, text=True, env=os.environ.copy())
    assert out.returncode == 0, out.stderr
    before, after_equals = out.stdout.split("---\n")
    lines = before.splitlines()
    assert lines[:2] == ["auth/login", "task"]
    assert ".git" in lines[2:]  # a path, from bash's own completion
    assert after_equals.splitlines() == ["en", "ko"]  # `--lang=` TAB: readline completes after the `=`


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")
def test_zsh_completion_script(task) -> None:
    exe = Path(sys.executable).with_name("okstra")
    # zsh's completion system stands in for itself: what _okstra hands it is printed
    stand_ins = 'compdef(){}; _describe(){ print -rl -- "${(@P)${@[-1]}}" }; _files(){ print FILES }\n'
    probe = (
        stand_ins
        + script("zsh")
        + f'words=({exe} status ""); CURRENT=3; _okstra\n'
        + f"words=({exe} launch ''); CURRENT=3; _okstra\n"
    )
    out = subprocess.run(
        ["zsh", "-f", "-c", probe], cwd=task.project.root, capture_output=True, text=True, env=os.environ.copy()
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["auth/login:Login flow", "FILES"]


@pytest.mark.skipif(shutil.which("fish") is None, reason="fish is not installed")
def test_fish_completion_script(task) -> None:
    bin_dir = Path(sys.executable).with_name("okstra").parent  # this okstra first on PATH
    probe = script("fish") + '\ncomplete -C "okstra status "\ncomplete -C "okstra stat"\n'
    out = subprocess.run(
        ["fish", "--no-config", "-c", probe],
        cwd=task.project.root,
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "auth/login\tLogin flow",
        "status\tthe state of every stage of a task",
    ]


def _on_a_terminal(*args: str) -> tuple[int, str, str]:
    """The console script with stderr on a pseudo-terminal (stdout a pipe): its exit
    code, stdout and what the terminal showed."""
    exe = Path(sys.executable).with_name("okstra")
    leader, follower = pty.openpty()
    proc = subprocess.Popen([str(exe), *args], stdout=subprocess.PIPE, stderr=follower, env=os.environ.copy())
    os.close(follower)
    out = proc.stdout.read() if proc.stdout else b""
    code = proc.wait(timeout=60)
    shown = b""
    while select.select([leader], [], [], 0.2)[0]:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the follower closed
            break
        if not chunk:
            break
        shown += chunk
    os.close(leader)
    return code, out.decode(), shown.decode(errors="replace")


def test_long_commands_spin_on_a_terminal_only(task) -> None:
    root = str(task.project.root)
    code, out, shown = _on_a_terminal("reconcile", "auth/login", "--project", root)
    assert code == 0 and "every done stage of auth/login" in out
    assert "looking for where the done commits of auth/login went" in shown
    code, out, shown = _on_a_terminal("reconcile", "auth/login", "--json", "--project", root)
    assert code == 0 and json.loads(out)["task"] == "auth/login" and shown == ""
    code, out, err = run_cli("reconcile", "auth/login", "--project", root)  # stderr a pipe
    assert code == 0 and err == ""
    code, out, shown = _on_a_terminal("prepare", "auth/login", "--type", "implementation", "--project", root)
    assert code == 0, shown
    assert "preparing auth/login for implementation" in shown and "okstra launch" in out


def test_the_spinner_leaves_a_piped_stdout_alone(monkeypatch) -> None:
    """What a command prints while it spins stays on its stdout when that is a pipe
    (rich would send it to the spinner's terminal)."""
    import io

    from okstra_engine.progress import working

    leader, follower = pty.openpty()
    terminal = os.fdopen(follower, "w")
    piped = io.StringIO()
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.setattr(sys, "stdout", piped)
    try:
        with working("merging"):
            print("merged stage 1")
        terminal.flush()
        shown = os.read(leader, 65536).decode(errors="replace")
    finally:
        terminal.close()
        os.close(leader)
    assert piped.getvalue() == "merged stage 1\n"
    assert "merging" in shown and "merged stage 1" not in shown
