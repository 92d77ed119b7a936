"""The agent's state from its own hooks: `okstra agent-event` (what a hook runs), the
hooks document `okstra launch` hands Claude Code, and what `status --json` makes of the
rows; a fake `claude` shows what the real one cannot here (a permission prompt)."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from okstra_engine.agent_events import EVENTS_NAME, HOOK_EVENTS, RUN_DIR_VARIABLE, SETTINGS_NAME, hook_argv
from okstra_engine.agent_state import AgentState, AgentView, fold_events
from okstra_engine.launch import plan_launch
from okstra_engine.status import task_status
from tests.support import prepared_run, run_cli, set_agent_command

OKSTRA = str(Path(sys.executable).with_name("okstra"))


def _hook(
    run_dir: Path | str | None, payload: object, *, raw: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if k != RUN_DIR_VARIABLE}
    if run_dir is not None:
        env[RUN_DIR_VARIABLE] = str(run_dir)
    data = raw if raw is not None else json.dumps(payload).encode()
    return subprocess.run([OKSTRA, "agent-event"], input=data, capture_output=True, env=env, timeout=30)


def _rows(run_dir: Path) -> list[dict[str, str]]:
    path = run_dir / EVENTS_NAME
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _agent(task, stage: int = 1) -> dict[str, object] | None:
    doc = task_status(task).to_json()
    found = next(s for s in doc["stages"] if s["stage"] == stage)
    return found.get("agent")


# ---------------------------------------------------------------------------- okstra agent-event


def test_a_hook_appends_one_row_with_what_the_state_needs_and_nothing_else(task) -> None:
    run = prepared_run(task)
    hook = {
        "hook_event_name": "Notification",
        "session_id": "s-1",
        "transcript_path": "/home/x/.claude/projects/-repo/s-1.jsonl",
        "cwd": "/repo",
        "notification_type": "permission_prompt",
        "message": "Claude needs your permission to use Bash",
        "prompt": "a secret the row must not keep",
    }
    proc = _hook(run, hook)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"", b"")
    (row,) = _rows(run)
    assert row.pop("ts").endswith("Z")
    assert row == {
        "event": "Notification",
        "session_id": "s-1",
        "transcript_path": "/home/x/.claude/projects/-repo/s-1.jsonl",
        "notification_type": "permission_prompt",
    }


@pytest.mark.parametrize(
    ("where", "data", "said"),
    [
        (None, b'{"hook_event_name": "Stop"}', "OKSTRA_RUN_DIR is not set"),
        ("relative/run", b'{"hook_event_name": "Stop"}', "not an absolute path"),
        ("/tmp", b'{"hook_event_name": "Stop"}', "not a run folder"),
        ("RUN", b"not json at all", "not JSON"),
        ("RUN", b'["a list"]', "no hook_event_name"),
        ("RUN", b'{"hook_event_name": 7}', "no hook_event_name"),
        ("RUN", b"\xff\xfe", "not JSON"),
    ],
)
def test_bad_input_is_a_note_on_stderr_and_exit_0_never_a_traceback(task, where, data: bytes, said: str) -> None:
    run = prepared_run(task)
    proc = _hook(run if where == "RUN" else where, None, raw=data)
    assert proc.returncode == 0 and proc.stdout == b""
    assert said in proc.stderr.decode() and b"Traceback" not in proc.stderr
    assert _rows(run) == []


def test_a_run_folder_reached_through_a_link_is_refused(task, tmp_path: Path) -> None:
    run = prepared_run(task)
    link = tmp_path / "link"
    link.symlink_to(run.parent.parent.parent.parent.parent.parent)  # the project
    through = link / run.relative_to(run.parent.parent.parent.parent.parent.parent)
    proc = _hook(through, {"hook_event_name": "Stop"})
    assert proc.returncode == 0 and b"without links" in proc.stderr
    assert _rows(run) == []


def test_a_disk_that_refuses_the_write_is_a_note_too(task) -> None:
    run = prepared_run(task)
    (run / EVENTS_NAME).mkdir()  # the file's place holds a folder: the open fails
    proc = _hook(run, {"hook_event_name": "Stop"})
    assert proc.returncode == 0 and b"not recorded" in proc.stderr and b"Traceback" not in proc.stderr


def test_agent_event_is_quick_and_loads_no_pydantic(task, tmp_path: Path) -> None:
    """It runs on every hook of the agent's: the console script's fast path loads the
    standard library and a few engine modules, nothing else."""
    run = prepared_run(task)
    listing = tmp_path / "modules.json"
    probe = (
        "import json, sys\nfrom okstra_tui.entry import main\ncode = main(['agent-event'])\n"
        f"json.dump(sorted(sys.modules), open({str(listing)!r}, 'w'))\nsys.exit(code)\n"
    )
    env = {**os.environ, RUN_DIR_VARIABLE: str(run)}
    proc = subprocess.run([sys.executable, "-c", probe], input=b'{"hook_event_name": "Stop"}', env=env)
    assert proc.returncode == 0
    loaded = set(json.loads(listing.read_text()))
    assert not {m for m in loaded if m.split(".")[0] in ("pydantic", "argparse", "textual", "rich")}
    assert "okstra_engine.cli" not in loaded
    times = []
    for _ in range(5):
        start = time.perf_counter()
        assert _hook(run, {"hook_event_name": "Stop", "session_id": "s"}).returncode == 0
        times.append(time.perf_counter() - start)
    assert min(times) < 0.5  # ~0.05 s here; generous for slow CI machines
    assert len(_rows(run)) == 6


# ---------------------------------------------------------------------------- the hooks launch sets


def test_launch_gives_claude_the_run_s_hooks_and_leaves_other_agents_alone(task, tmp_path: Path, monkeypatch) -> None:
    run = prepared_run(task)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("claude", "codex"):
        (bin_dir / name).write_text("#!/bin/sh\nexit 0\n")
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")

    set_agent_command(["claude", "-p", "{prompt}"])
    plan = plan_launch(run)
    assert plan.argv[:3] == ["claude", "--settings", str(run / SETTINGS_NAME)] and plan.argv[3] == "-p"
    # the run, and the stage's block of ports its reservation holds
    port = json.loads((run / "manifest.json").read_text())["port"]
    assert plan.env == {RUN_DIR_VARIABLE: str(run), "OKSTRA_PORT": str(port)}
    hooks = plan.settings["hooks"]
    assert list(hooks) == list(HOOK_EVENTS)
    for event in HOOK_EVENTS:
        (entry,) = hooks[event]
        (hook,) = entry["hooks"]
        assert shlex.split(hook["command"]) == hook_argv() and hook["type"] == "command"
    assert not (run / SETTINGS_NAME).exists()  # planning writes nothing; launch does

    set_agent_command(["codex", "{prompt}"])
    plan = plan_launch(run)
    assert plan.settings is None and "--settings" not in plan.argv
    assert plan.env == {RUN_DIR_VARIABLE: str(run), "OKSTRA_PORT": str(port)}

    set_agent_command(["claude", "--settings", "/mine.json", "{prompt}"])  # the person's own: ours would fight it
    plan = plan_launch(run)
    assert plan.settings is None and plan.argv.count("--settings") == 1


def test_the_hook_command_is_quoted_whatever_the_path(task) -> None:
    from okstra_engine import agent_events

    weird = "/tmp/a dir/it's $(rm -rf ~)/bin/python"
    original = agent_events.hook_argv
    agent_events.hook_argv = lambda: [weird, "-I", "-S", "/tmp/a dir/agent_events.py"]
    try:
        command = agent_events.hook_settings()["hooks"]["Stop"][0]["hooks"][0]["command"]
    finally:
        agent_events.hook_argv = original
    assert shlex.split(command) == [weird, "-I", "-S", "/tmp/a dir/agent_events.py"]


# ---------------------------------------------------------------------------- events → state


def _row(event: str, ts: str, session: str = "s1", **fields: str) -> dict[str, str]:
    return {"event": event, "ts": ts, "session_id": session, **fields}


def test_the_mapping_of_events_to_states() -> None:
    def state(*rows: dict[str, str]) -> str | None:
        view = fold_events(list(rows))
        return None if view is None else str(view.state)

    start = _row("SessionStart", "t1", source="startup")
    assert state() is None
    assert state(start) == "starting"
    assert state(start, _row("UserPromptSubmit", "t2")) == "working"
    assert state(start, _row("PermissionRequest", "t3")) == "needs-input"
    assert state(start, _row("Notification", "t3", notification_type="permission_prompt")) == "needs-input"
    assert state(start, _row("Notification", "t3", notification_type="elicitation_dialog")) == "needs-input"
    assert state(start, _row("Notification", "t3", notification_type="idle_prompt")) == "idle"
    assert state(start, _row("Notification", "t3", notification_type="auth_success")) == "starting"
    assert state(start, _row("Stop", "t4")) == "idle"
    assert state(start, _row("StopFailure", "t4", error="rate_limit")) == "failed"
    assert state(start, _row("SessionEnd", "t5", reason="other")) == "exited"
    assert state(start, _row("SessionStart", "t6", source="compact")) == "working"
    assert state(start, _row("SomethingNew", "t6")) == "starting"
    assert state(_row("PostToolUse", "t6")) == "working"  # a session whose start was not read
    # a granted permission: the tool ran, the agent works on; after the turn's Stop an
    # (asynchronous) PostToolUse that lands late changes nothing
    asked = [start, _row("UserPromptSubmit", "t2"), _row("PermissionRequest", "t3")]
    assert state(*asked, _row("PostToolUse", "t4")) == "working"
    assert state(*asked, _row("Stop", "t5"), _row("PostToolUse", "t6")) == "idle"


def test_since_is_when_the_state_began_and_the_session_is_named() -> None:
    rows = [
        _row("SessionStart", "t1", source="startup"),
        _row("UserPromptSubmit", "t2"),
        _row("UserPromptSubmit", "t3"),  # still working: since stays t2
    ]
    assert fold_events(rows) == AgentView(AgentState.WORKING, "t2", "s1")


def test_a_teammate_waiting_for_the_person_makes_the_agent_need_input() -> None:
    rows = [
        _row("SessionStart", "t1", "lead", source="startup"),
        _row("UserPromptSubmit", "t2", "lead"),
        _row("SessionStart", "t3", "mate", source="startup"),
        _row("Notification", "t4", "mate", notification_type="permission_prompt"),
        _row("Stop", "t5", "mate"),  # the teammate answered: the lead's state again
    ]
    assert fold_events(rows[:4]) == AgentView(AgentState.NEEDS_INPUT, "t4", "mate")
    assert fold_events(rows) == AgentView(AgentState.WORKING, "t2", "lead")
    # a teammate's end is not the agent's
    assert fold_events([*rows[:3], _row("SessionEnd", "t6", "mate")]) == AgentView(AgentState.WORKING, "t2", "lead")


def test_a_cleared_session_hands_the_lead_to_the_new_one() -> None:
    rows = [
        _row("SessionStart", "t1", "old", source="startup"),
        _row("SessionEnd", "t2", "old", reason="clear"),
        _row("SessionStart", "t3", "new", source="clear"),
    ]
    assert fold_events(rows) == AgentView(AgentState.IDLE, "t3", "new")


# ---------------------------------------------------------------------------- status --json


def test_status_shows_the_agent_of_each_stage_in_flight_from_its_rows(task) -> None:
    run = prepared_run(task)
    # no hook yet, no pid to look at: the ledger's guess, and it says it is one
    assert _agent(task) == {"state": "starting", "since": _agent(task)["since"], "session_id": None, "seen": False}
    assert _agent(task, 2) is None  # not in flight: no agent
    for hook in (
        {"hook_event_name": "SessionStart", "session_id": "s-9", "source": "startup"},
        {"hook_event_name": "UserPromptSubmit", "session_id": "s-9"},
    ):
        assert _hook(run, hook).returncode == 0
    agent = _agent(task)
    assert agent["state"] == "working" and agent["session_id"] == "s-9" and agent["seen"] is True
    code, out, _ = run_cli("status", "auth/login", "--json", "--project", str(task.project.root))
    assert code == 0 and json.loads(out)["stages"][0]["agent"] == agent
    with (run / EVENTS_NAME).open("a") as handle:  # a torn line, then a foreign one: skipped
        handle.write('{"event": "Stop", "ts"\n["x"]\n')
    assert _agent(task) == agent


def _fake_claude(tmp_path: Path) -> Path:
    """A `claude` on PATH that fires the hooks `--settings` names, as the real one does,
    ending with a permission prompt, then waits for the person (sleeps)."""
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir()
    script = bin_dir / "claude"
    script.write_text(
        f"#!{sys.executable}\n"
        + """
import json, os, subprocess, sys, time
args = sys.argv[1:]
hooks = json.load(open(args[args.index("--settings") + 1]))["hooks"]
def fire(event, **fields):
    payload = {"hook_event_name": event, "session_id": "fake-1", "transcript_path": "/nowhere/projects/p/fake-1.jsonl", **fields}
    for entry in hooks.get(event, []):
        for hook in entry["hooks"]:
            subprocess.run(hook["command"], shell=True, input=json.dumps(payload).encode(), check=True)
fire("SessionStart", source="startup")
fire("UserPromptSubmit", prompt="the prompt")
fire("Notification", notification_type="permission_prompt", message="Claude needs your permission to use Bash")
open(os.environ["FAKE_FIRED"], "w").write(repr(time.time()))
time.sleep(120)
"""
    )
    script.chmod(0o755)
    return bin_dir


def test_a_permission_prompt_shows_as_needs_input_within_a_second(task, tmp_path: Path) -> None:
    run = prepared_run(task)
    bin_dir = _fake_claude(tmp_path)
    set_agent_command(["claude", "{prompt}"])
    fired = tmp_path / "fired"
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "FAKE_FIRED": str(fired)}
    agent = subprocess.Popen([OKSTRA, "launch", str(run)], env=env, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while not fired.exists() and agent.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert fired.exists(), agent.stderr.read() if agent.poll() is not None else "the fake claude never fired"
        seen = None
        while time.monotonic() < deadline:
            _, out, _ = run_cli("status", "auth/login", "--json", "--project", str(task.project.root))
            seen = json.loads(out)["stages"][0]["agent"]
            if seen["state"] == "needs-input":
                break
        waited = time.time() - float(fired.read_text())
        assert seen is not None and seen["state"] == "needs-input" and seen["session_id"] == "fake-1", seen
        assert waited < 1.0, f"needs-input showed {waited:.2f} s after the hook"
    finally:
        agent.send_signal(signal.SIGKILL)
        agent.wait(timeout=10)
    # killed without a SessionEnd: its pid is gone, so it has exited
    status = task_status(task)
    assert status.agents[1].state is AgentState.EXITED and str(status.stages[0].state) == "stale"


def test_an_agent_without_hooks_is_working_while_its_process_lives(task, tmp_path: Path) -> None:
    run = prepared_run(task)
    set_agent_command([sys.executable, "-c", "import time; time.sleep(120)", "{prompt_file}"])
    agent = subprocess.Popen([OKSTRA, "launch", str(run)])
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            state = task_status(task).agents[1]
            if state.state is AgentState.WORKING:
                break
            time.sleep(0.05)
        assert state.state is AgentState.WORKING and state.session_id is None
        assert not (run / SETTINGS_NAME).exists() and not (run / EVENTS_NAME).exists()
    finally:
        agent.kill()
        agent.wait(timeout=10)
    assert task_status(task).agents[1].state is AgentState.EXITED


def test_run_by_hand_in_a_terminal_it_says_what_it_is_for_and_waits_for_nothing(task) -> None:
    import pty

    run = prepared_run(task)
    main_fd, child_fd = pty.openpty()
    env = {**os.environ, RUN_DIR_VARIABLE: str(run)}
    try:
        proc = subprocess.run([OKSTRA, "agent-event"], stdin=child_fd, capture_output=True, env=env, timeout=30)
    finally:
        os.close(main_fd)
        os.close(child_fd)
    assert proc.returncode == 0 and b"on stdin" in proc.stderr and _rows(run) == []


def test_a_hook_input_of_megabytes_is_read_whole(task) -> None:
    """PostToolUse carries the tool's whole output (a large file read, say)."""
    run = prepared_run(task)
    hook = {"hook_event_name": "PostToolUse", "session_id": "s", "tool_response": {"stdout": "x" * 3_000_000}}
    assert _hook(run, hook).stderr == b""
    assert [r["event"] for r in _rows(run)] == ["PostToolUse"]


def test_a_long_session_is_read_from_its_first_row_and_its_end(task) -> None:
    """A row per tool call: `status` reads the first row (the lead's session) and the
    last 256 KiB, whatever the file's length."""
    from okstra_engine.agent_state import agent_view

    run = prepared_run(task)
    busy = [_row("SessionStart", "t0", "lead", source="startup"), _row("UserPromptSubmit", "t1", "lead")]
    busy += [_row("PostToolUse", f"t2-{n}", "lead", transcript_path="/x/projects/p/lead.jsonl") for n in range(20_000)]
    (run / EVENTS_NAME).write_text("".join(json.dumps(r) + "\n" for r in busy))
    assert (run / EVENTS_NAME).stat().st_size > 2_000_000
    view = agent_view(run, alive=True, since=None)
    assert (view.state, view.session_id) == (AgentState.WORKING, "lead")
    with (run / EVENTS_NAME).open("a") as handle:
        handle.write(json.dumps(_row("SessionStart", "t3", "mate", source="startup")) + "\n")
        handle.write(json.dumps(_row("Notification", "t4", "mate", notification_type="permission_prompt")) + "\n")
    assert agent_view(run, alive=True, since=None) == AgentView(AgentState.NEEDS_INPUT, "t4", "mate")
    start = time.perf_counter()
    for _ in range(10):
        agent_view(run, alive=True, since=None)
    assert (time.perf_counter() - start) / 10 < 0.05  # ~5 ms here


@pytest.mark.parametrize("teams, flag", [("implicit", True), ("explicit", True), ("none", False)])
def test_launch_turns_on_agent_teams_when_the_prompt_counts_on_them(
    task, tmp_path: Path, monkeypatch, teams, flag
) -> None:
    from tests.support import write_settings

    run = prepared_run(task)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "claude").write_text("#!/bin/sh\necho '2.1.328 (Claude Code)'\n")
    (bin_dir / "claude").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    write_settings(agent_command=["claude", "-p", "{prompt}"], agent_teams=teams)
    plan = plan_launch(run)
    env = plan.settings.get("env", {})
    assert (env.get("CLAUDE_CODE_EXPERIMENTAL_AGENT_TEAMS") == "1") is flag
