from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from okstra_engine.errors import OkstraError
from okstra_engine.launch import plan_launch
from tests.support import run_cli


def _run_dir(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    manifest = {
        "run_id": "r1",
        "run_dir": str(run),
        "task": "auth/login",
        "task_key": "auth-login",
        "task_type": "planning",
        "created": "2026-01-01T00:00:00Z",
        "worktree": {"path": str(work)},
    }
    (run / "manifest.json").write_text(json.dumps(manifest))
    (run / "prompt.md").write_text("do the thing")
    return run


def _config(tmp_path: Path, command: list[str]) -> None:
    Path(os.environ["OKSTRA_CONFIG"]).write_text(f"agent_command = {json.dumps(command)}\n")
    from okstra_engine.config import settings

    settings.cache_clear()


def test_missing_agent_command_is_exit_2_with_how_to_configure(tmp_path: Path) -> None:
    run = _run_dir(tmp_path)
    _config(tmp_path, ["no-such-agent-xyz", "{prompt}"])
    code, _out, err = run_cli("launch", str(run))
    assert code == 2
    assert "'no-such-agent-xyz' is not installed" in err and "agent_command" in err and "Traceback" not in err


def test_unknown_placeholder(tmp_path: Path) -> None:
    _config(tmp_path, ["echo", "{nope}"])
    with pytest.raises(OkstraError, match="unknown placeholder"):
        plan_launch(_run_dir(tmp_path))


def test_not_a_run_dir(tmp_path: Path) -> None:
    with pytest.raises(OkstraError, match="not a prepared run"):
        plan_launch(tmp_path)


def test_launch_execs_in_the_worktree_with_the_prompt(tmp_path: Path) -> None:
    run = _run_dir(tmp_path)
    out_file = tmp_path / "seen.txt"
    script = f"import os,sys; open({str(out_file)!r},'w').write(os.getcwd()+'|'+sys.argv[1]+'|'+str(os.getpid()))"
    _config(tmp_path, [sys.executable, "-c", script, "{prompt_file}"])
    proc = subprocess.Popen([str(Path(sys.executable).with_name("okstra")), "launch", str(run)])
    assert proc.wait() == 0
    cwd, prompt, pid = out_file.read_text().split("|")
    assert cwd == str(tmp_path / "work") and prompt == str(run / "prompt.md")
    assert int(pid) == proc.pid  # exec, not a child: the reservation's pid is the agent's
