"""The hook's own command (`agent_events.hook_argv`): what a real launch writes into
agent-settings.json, run through `sh -c` as Claude Code runs it, appends the row the
agent's state reads; nothing from the environment or the working folder steers it; and
its JSON reading and writing are `json`'s, byte for byte."""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from okstra_engine import agent_events, clock
from okstra_engine.agent_events import EVENTS_NAME, RUN_DIR_VARIABLE, SETTINGS_NAME, dumps_row, hook_argv, loads
from okstra_engine.agent_state import AgentState, fold_events, read_events
from tests.support import prepared_run, set_agent_command

OKSTRA = str(Path(sys.executable).with_name("okstra"))


def _launched_command(task, tmp_path: Path) -> tuple[Path, str]:
    """A real `okstra launch` of a prepared run with a `claude` that exits at once: the
    run folder and the hook command launch wrote into its agent-settings.json."""
    run = prepared_run(task)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "claude").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "claude").chmod(0o755)
    set_agent_command(["claude", "{prompt}"])
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run([OKSTRA, "launch", str(run)], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    hooks = json.loads((run / SETTINGS_NAME).read_text())["hooks"]
    commands = {hook["command"] for entries in hooks.values() for entry in entries for hook in entry["hooks"]}
    (command,) = commands  # every event runs the same command
    return run, command


def _sh(command: str, run: Path | str, payload: bytes, *, cwd: Path, extra: dict[str, str] | None = None):
    env = {"PATH": "/usr/bin:/bin", RUN_DIR_VARIABLE: str(run), **(extra or {})}
    return subprocess.run(["sh", "-c", command], input=payload, env=env, cwd=cwd, capture_output=True, timeout=30)


def test_the_launched_hook_command_appends_the_row_the_state_reads(task, tmp_path: Path) -> None:
    run, command = _launched_command(task, tmp_path)
    argv = shlex.split(command)
    # the launching okstra's own interpreter (its console script names python3), on this file
    assert argv[1:] == hook_argv()[1:] == ["-I", "-S", agent_events.__file__]
    assert Path(argv[0]).parent == Path(sys.executable).parent and os.path.isabs(argv[-1])
    hook = {
        "hook_event_name": "PermissionRequest",
        "session_id": "s-2",
        "agent_id": "teammate-7",
        "reason": "wants Bash — ünï 코드",
        "tool_name": "Bash",
        "tool_input": {"command": "rm -rf build"},
        "permission_suggestions": [{"type": "addRules"}],
        "source": 12,
    }
    before = (run / EVENTS_NAME).read_bytes() if (run / EVENTS_NAME).exists() else b""
    proc = _sh(command, run, json.dumps(hook).encode(), cwd=tmp_path)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"", b"")
    added = (run / EVENTS_NAME).read_bytes()[len(before) :]
    row = json.loads(added)
    assert added == json.dumps(row, ensure_ascii=False).encode() + b"\n"
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"
    assert re.fullmatch(stamp, row.pop("ts")) and re.fullmatch(stamp, clock.iso())  # the hook writes clock.iso's form
    assert row == {
        "event": "PermissionRequest",
        "session_id": "s-2",
        "agent_id": "teammate-7",
        "reason": hook["reason"],
    }
    (read,) = read_events(run)
    view = fold_events([read])
    assert read["session_id"] == "s-2" and view is not None and view.state is AgentState.NEEDS_INPUT


def test_bad_input_to_the_hook_command_is_a_note_and_exit_0(task, tmp_path: Path) -> None:
    run, command = _launched_command(task, tmp_path)
    for where, data, said in [
        (run, b"not json", b"not JSON"),
        (run, b'{"hook_event_name": "Stop"} extra', b"not JSON"),
        (run, b"", b"not JSON"),
        (run, b"\xff\xfe", b"not JSON"),
        (run, b'["a list"]', b"no hook_event_name"),
        (tmp_path, b'{"hook_event_name": "Stop"}', b"not a run folder"),
    ]:
        proc = _sh(command, where, data, cwd=tmp_path)
        assert proc.returncode == 0 and proc.stdout == b"", (data, proc.stderr)
        assert said in proc.stderr and b"Traceback" not in proc.stderr, (data, proc.stderr)
    assert not (run / EVENTS_NAME).exists()


def test_nothing_in_the_working_folder_or_the_environment_steers_the_hook(task, tmp_path: Path) -> None:
    """Claude Code runs hooks in the agent's worktree, which the agent writes: a module
    there named as one the hook imports, or PYTHONPATH/PYTHONSTARTUP naming one, is never
    loaded."""
    run, command = _launched_command(task, tmp_path)
    trap = tmp_path / "trap"
    marker = tmp_path / "loaded"
    (trap / "okstra_engine").mkdir(parents=True)
    planted = f"open({str(marker)!r}, 'w').write('x')\n"
    for name in ("_json.py", "json.py", "time.py", "okstra_engine/__init__.py", "okstra_engine/fsio.py", "startup.py"):
        (trap / name).write_text(planted)
    extra = {"PYTHONPATH": str(trap), "PYTHONSTARTUP": str(trap / "startup.py"), "PYTHONHOME": str(trap / "nowhere")}
    proc = _sh(command, run, b'{"hook_event_name": "Stop"}', cwd=trap, extra=extra)
    assert (proc.returncode, proc.stderr) == (0, b"")
    assert not marker.exists()
    assert json.loads((run / EVENTS_NAME).read_text())["event"] == "Stop"


def test_the_hook_file_without_its_package_is_a_note_and_exit_0(tmp_path: Path) -> None:
    """okstra removed or moved after the launch wrote the settings: the agent is not failed."""
    alone = tmp_path / "agent_events.py"
    alone.write_bytes(Path(agent_events.__file__).read_bytes())
    python, *flags, _ = hook_argv()
    proc = subprocess.run([python, *flags, str(alone)], input=b'{"hook_event_name": "Stop"}', capture_output=True)
    assert proc.returncode == 0 and proc.stdout == b"" and b"not recorded" in proc.stderr
    assert b"Traceback" not in proc.stderr


def test_a_person_typing_agent_event_gets_a_note(tmp_path: Path) -> None:
    proc = subprocess.run([OKSTRA, "agent-event"], stdin=subprocess.DEVNULL, capture_output=True, cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout == b""
    assert b"okstra agent-event: " in proc.stderr and b"Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "data",
    [
        b'{"hook_event_name": "Stop", "n": [1, 2.5, -3e4, true, false, null], "s": "a\\u00e9\\n\\"q\\""}',
        b'  \n {"a": {"b": {}}, "c": []}\t\r\n',
        '{"k": "ünï — 코드"}'.encode(),
        b'{"a": NaN, "b": Infinity, "c": -Infinity}',
        b'{"a": "\\ud800"}',
        b'"just a string"',
        b"42",
    ],
)
def test_loads_is_json_loads(data: bytes) -> None:
    got, want = loads(data), json.loads(data)
    assert repr(got) == repr(want)
    if isinstance(want, dict) and "a" in want and isinstance(want["a"], float):
        assert math.isnan(got["a"]) and got["b"] == math.inf and got["c"] == -math.inf  # type: ignore[index]


@pytest.mark.parametrize(
    "data", [b"", b"   ", b"nope", b'{"a": 1} {"b": 2}', b'{"a": 1', b'{"a": "\x01"}', b"\xff\xfe", b"\xc3"]
)
def test_loads_refuses_what_json_loads_refuses(data: bytes) -> None:
    with pytest.raises(ValueError):
        json.loads(data)
    with pytest.raises(ValueError):
        loads(data)


def test_dumps_row_is_json_dumps() -> None:
    row = {"ts": "2026-06-10T12:00:00Z", "event": 'q"uo\\te\n\t\x01', "source": "ünï — 코드 \u2028 \U0001f600"}
    assert dumps_row(row) == json.dumps(row, ensure_ascii=False)
    assert dumps_row({}) == json.dumps({})
