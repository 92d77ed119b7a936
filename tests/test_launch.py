from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from okstra_engine.errors import OkstraError
from okstra_engine.launch import plan_launch
from okstra_engine.ledger import LEDGER_NAME, read_ledger
from okstra_engine.plans import plan_run_root
from okstra_engine.prepare import PrepareOptions, prepare
from okstra_engine.record import record
from okstra_engine.status import task_status
from okstra_engine.worktrees import stage_target
from tests.support import commit, prepared_run, run_cli, set_agent_command


def _ledger(task) -> Path:
    return plan_run_root(task).dir / LEDGER_NAME


def _launch(run: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).with_name("okstra")), "launch", str(run)], capture_output=True, text=True
    )


def test_missing_agent_command_is_exit_2_with_how_to_configure(task) -> None:
    run = prepared_run(task)
    set_agent_command(["no-such-agent-xyz", "{prompt}"])
    code, _out, err = run_cli("launch", str(run))
    assert code == 2
    assert "'no-such-agent-xyz' is not installed" in err and "agent_command" in err and "Traceback" not in err


def test_unknown_placeholder(task) -> None:
    set_agent_command(["echo", "{nope}"])
    with pytest.raises(OkstraError, match="unknown placeholder"):
        plan_launch(prepared_run(task))


def test_not_a_run_dir(tmp_path: Path) -> None:
    with pytest.raises(OkstraError, match="not a prepared run"):
        plan_launch(tmp_path)


def _echo_agent(tmp_path: Path) -> Path:
    out_file = tmp_path / "seen.txt"
    script = f"import os,sys; open({str(out_file)!r},'w').write(os.getcwd()+'|'+sys.argv[1]+'|'+str(os.getpid()))"
    set_agent_command([sys.executable, "-c", script, "{prompt_file}"])
    return out_file


def test_launch_execs_in_the_worktree_with_the_prompt(task, tmp_path: Path) -> None:
    run = prepared_run(task)
    out_file = _echo_agent(tmp_path)
    proc = subprocess.Popen([str(Path(sys.executable).with_name("okstra")), "launch", str(run)])
    assert proc.wait() == 0
    cwd, prompt, pid = out_file.read_text().split("|")
    assert cwd == str(stage_target(task, 1).path) and prompt == str(run / "prompt.md")
    assert int(pid) == proc.pid  # exec, not a child: the reservation's pid is the agent's
    last = read_ledger(_ledger(task)).rows[-1]
    assert (last.stage, last.status, last.pid) == (1, "reserved", proc.pid)


# ---------------------------------------------------------------------------- a tampered run folder


def test_launch_takes_no_path_from_the_manifest(task, tmp_path: Path) -> None:
    """The manifest is the project's file: an agent can rewrite it. Its ledger and
    worktree paths are not where launch writes or works."""
    run = prepared_run(task)
    out_file = _echo_agent(tmp_path)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["ledger_path"] = str(victim)
    manifest["worktree"]["path"] = str(elsewhere)
    manifest["project_root"] = str(tmp_path)
    (run / "manifest.json").write_text(json.dumps(manifest))
    before = _ledger(task).read_bytes()

    proc = _launch(run)
    assert proc.returncode == 0, proc.stderr
    assert victim.read_text() == "precious\n"
    assert out_file.read_text().split("|")[0] == str(stage_target(task, 1).path)
    assert _ledger(task).read_bytes().startswith(before) and len(_ledger(task).read_bytes()) > len(before)


def test_a_manifest_of_another_run_is_refused(task) -> None:
    run = prepared_run(task)
    manifest = json.loads((run / "manifest.json").read_text())
    (run / "manifest.json").write_text(json.dumps({**manifest, "task": "other/task"}))
    before = _ledger(task).read_bytes()
    proc = _launch(run)
    assert proc.returncode == 2 and "other/task" in proc.stderr and "Traceback" not in proc.stderr
    assert _ledger(task).read_bytes() == before


@pytest.mark.parametrize("then", ["done", "released", "taken"])
def test_an_old_run_does_not_take_its_stage_back(task, tmp_path: Path, then: str) -> None:
    run = prepared_run(task)
    _echo_agent(tmp_path)
    if then == "done":
        sha = commit(stage_target(task, 1).path, {"schema.py": "x = 1\n"}, "stage 1")
        record(task, 1, "done", commit=sha)
    else:
        record(task, 1, "released")
        if then == "taken":
            prepared_run(task)
    before = _ledger(task).read_bytes()
    proc = _launch(run)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "does not hold stage 1" in proc.stderr and "okstra prepare" in proc.stderr
    assert _ledger(task).read_bytes() == before


def test_a_run_folder_outside_a_task_is_refused(task, tmp_path: Path) -> None:
    run = prepared_run(task)
    copy = tmp_path / "copied-run"
    shutil.copytree(run, copy)
    proc = _launch(copy)
    assert proc.returncode == 2 and "not a run folder of an okstra task" in proc.stderr


# ---------------------------------------------------------------------------- an agent that cannot start


def test_a_script_naming_a_missing_interpreter_is_refused_before_anything_is_written(task, tmp_path: Path) -> None:
    run = prepared_run(task)
    agent = tmp_path / "agent"
    agent.write_text("#!/no/such/interpreter\necho hi\n")
    agent.chmod(0o755)
    set_agent_command([str(agent), "{prompt_file}"])
    before = _ledger(task).read_bytes()
    proc = _launch(run)
    assert proc.returncode == 2 and "/no/such/interpreter" in proc.stderr and "#!" in proc.stderr
    assert _ledger(task).read_bytes() == before


def test_an_exec_that_fails_gives_the_stage_back(task, tmp_path: Path) -> None:
    """Exec fails after the reservation named our pid (a file that is no program): the
    stage must not stay reserved by a pid that is about to be gone."""
    run = prepared_run(task)
    agent = tmp_path / "agent"
    agent.write_bytes(b"\x00\x01 not a program\n")
    agent.chmod(0o755)
    set_agent_command([str(agent), "{prompt_file}"])
    proc = _launch(run)
    assert proc.returncode == 2 and "cannot run the agent command" in proc.stderr, proc.stderr
    rows = read_ledger(_ledger(task)).rows
    assert (rows[-1].stage, rows[-1].status) == (1, "released") and "could not start" in (rows[-1].reason or "")
    assert task_status(task).stages[0].state == "ready"


def test_a_planning_run_of_a_task_without_a_plan_launches(task, tmp_path: Path) -> None:
    """The first planning run of a task: there is no plan yet, so no ledger to write, and
    nothing to hold: the agent starts."""
    from okstra_engine.slugs import TaskRef
    from okstra_engine.tasks import new_task

    signup = new_task(task.project, TaskRef("auth", "signup"), title="Sign-up")
    run = Path(prepare(signup, PrepareOptions("planning")).manifest.run_dir)
    out_file = _echo_agent(tmp_path)
    proc = _launch(run)
    assert proc.returncode == 0, proc.stderr
    assert out_file.read_text().split("|")[1] == str(run / "prompt.md")
