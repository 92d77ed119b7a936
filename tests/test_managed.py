"""Agents in managed terminals: real tmux on a private server per test (`tmux -L`), never
the person's; the simulated lead as the agent."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from okstra_engine import managed, tmux
from okstra_engine.ledger import LEDGER_NAME, read_ledger
from okstra_engine.plans import plan_run_root
from okstra_engine.status import task_status
from tests.support import git, run_cli, set_agent_command

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


def sim_lead(*extra: str) -> None:
    set_agent_command([sys.executable, "-m", "okstra_engine.sim_lead", "{run_dir}", *extra])


def sleeper() -> None:
    """An agent that does nothing until stopped (C-c ends it)."""
    set_agent_command([sys.executable, "-c", "import time; time.sleep(120)", "{prompt_file}"])


def wait_for(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


def done_stages(task) -> set[int]:
    return {v.stage for v in task_status(task).stages if v.is_done}


def ledger_rows(task):
    return read_ledger(plan_run_root(task).dir / LEDGER_NAME).rows


def test_two_stages_start_at_once_run_and_record_done(task) -> None:
    sim_lead("--delay", "0.3")
    first = managed.start_stage(task, 1)
    wait_for(lambda: done_stages(task) == {1})
    wait_for(lambda: not tmux.has_session(first.session))
    two = managed.start_stage(task, 2)
    three = managed.start_stage(task, "auto")
    assert (two.stage, three.stage) == (2, 3)
    assert two.session == f"okstra-{task.project.id}-auth-login-s2"
    live = tmux.list_sessions()
    assert {two.session, three.session} <= set(live)
    # the reservation names the pane's process: launch restates it before it execs the agent
    wait_for(lambda: {(r.stage, r.pid) for r in ledger_rows(task) if r.pid} >= {(2, two.pid), (3, three.pid)})
    # another okstra process (a board opened again) finds them, from the registry and tmux
    code, out, err = run_cli("--project", str(task.project.root), "agents", "auth/login", "--json")
    assert code == 0, err
    listed = {row["stage"]: row for row in json.loads(out)}
    assert set(listed) == {1, 2, 3}
    assert listed[2]["session"] == two.session and listed[2]["run_id"] == two.run_id
    assert listed[1]["alive"] is False and listed[1]["state"] == "exited"
    wait_for(lambda: done_stages(task) == {1, 2, 3})
    wait_for(lambda: not any(s.alive for s in managed.sessions(task.project, task.ref)))
    done = [r for r in ledger_rows(task) if r.status == "done"]
    assert sorted(r.stage for r in done) == [1, 2, 3]


def test_a_killed_session_is_an_exited_agent_and_its_stage_stale(task) -> None:
    sleeper()
    started = managed.start_stage(task, 1)
    # named at once by the starter (the pane's launch names it again): a pane that dies
    # before its launch speaks still leaves a stage that is stale at once
    last = ledger_rows(task)[-1]
    assert (last.status, last.pid) == ("reserved", started.pid)
    assert managed.session_of(task, 1).alive
    tmux.kill_session(started.session)
    wait_for(lambda: not managed.session_of(task, 1).alive)
    found = managed.session_of(task, 1)
    assert found.state == "exited" and found.holds
    wait_for(lambda: str(task_status(task).stages[0].state) == "stale")


def test_stop_asks_the_agent_then_releases_the_stage(task) -> None:
    sleeper()
    started = managed.start_stage(task, 1)
    wait_for(lambda: any(r.pid == started.pid for r in ledger_rows(task)))
    code, out, err = run_cli("--project", str(task.project.root), "stop", "auth/login", "1")
    assert code == 0, err
    assert "released" in out
    assert not tmux.has_session(started.session)
    last = ledger_rows(task)[-1]
    assert (last.stage, last.status, last.run_id) == (1, "released", started.run_id)
    assert str(task_status(task).stages[0].state) == "ready"


def test_start_without_tmux_exits_2_and_prepares_nothing(task, monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    sim_lead()
    bare = tmp_path / "bin"
    bare.mkdir()
    (bare / "git").symlink_to(shutil.which("git") or "git")
    monkeypatch.setenv("PATH", str(bare))
    exe = Path(sys.executable).with_name("okstra")
    proc = subprocess.run(
        [str(exe), "--project", str(task.project.root), "start", "auth/login"], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "tmux is not installed" in proc.stderr and "apt install tmux" in proc.stderr
    assert ledger_rows(task) == []


def test_start_json_and_a_second_start_of_a_running_stage(task) -> None:
    sleeper()
    code, out, err = run_cli("--project", str(task.project.root), "start", "auth/login", "--stage", "1", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["stage"] == 1 and doc["alive"] is True and doc["session"].endswith("-s1")
    code, _, err = run_cli("--project", str(task.project.root), "start", "auth/login", "--stage", "1")
    assert code == 2 and "in flight" in err


PLAN_6 = """# Plan

## Stage Map
| Stage | Title  | Depends on | Group |
|-------|--------|------------|-------|
| 1     | One    | -          | A     |
| 2     | Two    | 1          | B     |
| 3     | Three  | 1          | B     |
| 4     | Four   | 2          | C     |
| 5     | Five   | 3          | C     |
| 6     | Six    | 4, 5       | D     |
"""


def test_autopilot_runs_a_six_stage_dag_to_done_with_at_most_n_agents(repo: Path, tmp_path: Path) -> None:
    """`okstra start --follow --handoff`: one command runs the whole DAG (stage 6 starts
    from the task worktree, after the handoffs of its dependencies' groups)."""
    from okstra_engine.plans import import_plan
    from okstra_engine.projects import init_project
    from okstra_engine.slugs import TaskRef
    from okstra_engine.tasks import new_task

    project, _ = init_project(repo, qa_commands=["true"])
    task = new_task(project, TaskRef("dag", "six"), title="Six stages")
    plan = tmp_path / "plan6.md"
    plan.write_text(PLAN_6)
    import_plan(task, plan, approve=True)
    sim_lead("--delay", "0.5")
    limit = 2
    exe = Path(sys.executable).with_name("okstra")
    proc = subprocess.Popen(
        [str(exe), "--project", str(repo), "start", "dag/six", "--follow", "--max-parallel", str(limit), "--handoff"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    most = 0
    while proc.poll() is None:  # the session list, as the autopilot runs
        most = max(most, sum(1 for s in managed.sessions(project, task.ref) if s.alive))
        time.sleep(0.05)
    out, err = proc.communicate()
    assert proc.returncode == 0, err
    assert "every stage of dag/six is done" in out
    assert {str(v.state) for v in task_status(task).stages} == {"done"}  # every group handed off: all merged
    assert 1 <= most <= limit
    # from the ledger, whatever the timing: never more than `limit` stages held at once
    held: set[int] = set()
    peak = 0
    for row in ledger_rows(task):
        if row.status == "reserved":
            held.add(row.stage)
        elif row.status in ("done", "released"):
            held.discard(row.stage)
        peak = max(peak, len(held))
    assert peak == limit  # two could run at once (2 and 3, 4 and 5), and did


def test_attach_round_trip_through_a_pty(task) -> None:
    import pty
    import select

    sleeper()
    started = managed.start_stage(task, 1)
    exe = Path(sys.executable).with_name("okstra")
    pid, fd = pty.fork()
    if pid == 0:  # the child: okstra attach in a terminal of its own
        os.environ["TERM"] = "xterm"
        os.execv(str(exe), [str(exe), "--project", str(task.project.root), "attach", "auth/login", "1"])
    seen = b""

    def read_until(predicate: Callable[[bytes], bool], timeout: float = 20.0) -> None:
        nonlocal seen
        deadline = time.monotonic() + timeout
        while not predicate(seen):
            assert time.monotonic() < deadline, seen[-500:]
            ready, _, _ = select.select([fd], [], [], 0.1)
            if ready:
                try:
                    seen += os.read(fd, 4096)
                except OSError:
                    return

    wait_for(lambda: _clients(started.session) > 0)
    os.write(fd, b"\x02d")  # tmux's detach key: C-b d
    read_until(lambda data: b"detached" in data)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0
    assert tmux.has_session(started.session)  # detaching leaves the agent running


def _clients(session: str) -> int:
    proc = subprocess.run(
        tmux.tmux_argv("list-clients", "-t", session, "-F", "#{client_name}"), capture_output=True, text=True
    )
    return len(proc.stdout.split())


def test_attach_argv_switches_inside_the_same_server_and_nests_with_care(monkeypatch: pytest.MonkeyPatch) -> None:
    name = tmux.socket_name()
    assert tmux.attach_argv("s") == ["tmux", "-L", name, "attach-session", "-t", "=s"]
    monkeypatch.setenv("TMUX", f"{tmux.socket_path()},1,0")
    assert tmux.attach_argv("s") == ["tmux", "-L", name, "switch-client", "-t", "=s"]
    monkeypatch.setenv("TMUX", "/tmp/tmux-0/other,1,0")
    assert tmux.attach_argv("s") == ["env", "-u", "TMUX", "tmux", "-L", name, "attach-session", "-t", "=s"]


def test_session_names_are_tmux_safe() -> None:
    assert managed.session_name("my.app", "g:1/id.x", 3) == "okstra-my-app-g-1-id-x-s3"


def test_autopilot_without_handoff_stops_where_a_stage_waits_for_one(task) -> None:
    """Stage 4 depends on 2 and 3 and starts from the task worktree: they must be handed
    off first, which autopilot does only when asked."""
    from okstra_engine.autopilot import follow

    sim_lead()
    result = follow(task, 2, sleep=lambda _: time.sleep(0.1))
    assert not result.done and result.waiting == {4: "blocked"}
    assert done_stages(task) == {1, 2, 3}
    assert task_status(task).stages[3].reason.code == "needs-handoff"


def test_ctrl_c_stops_the_autopilot_and_leaves_the_agents_running(task) -> None:
    import signal

    sleeper()
    exe = Path(sys.executable).with_name("okstra")
    # a suite started in the background by a shell (`pytest &`) ignores SIGINT, and a child
    # would inherit that; a handler of Python's own is reset to the default by exec, which
    # gives the child what a terminal's foreground job has
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen(
            [str(exe), "--project", str(task.project.root), "start", "auth/login", "--follow"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    finally:
        signal.signal(signal.SIGINT, before)
    wait_for(lambda: any(s.alive for s in managed.sessions(task.project, task.ref)))
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "the agents keep running" in out
    (running,) = managed.sessions(task.project, task.ref)
    assert running.stage == 1 and running.alive and tmux.has_session(running.session)


def test_a_registry_from_before_sessions_reads_none_and_takes_one() -> None:
    import sqlite3

    from okstra_engine import registry

    path = registry.registry_path()
    path.parent.mkdir(parents=True)
    with sqlite3.connect(path) as conn:
        conn.executescript(registry._SCHEMA.split("-- the tmux session")[0])  # the tables of version 1
        conn.execute("PRAGMA user_version = 1")
    conn.close()
    assert registry.session_rows() == []
    row = registry.SessionRow("app", "/p", "g", "t", 1, "r1", "okstra-app-g-t-s1", "", 42)
    registry.register_session(row)
    (stored,) = registry.session_rows(slot=registry.TaskSlot("app", "g", "t"))
    assert (stored.session, stored.pid, stored.run_id) == ("okstra-app-g-t-s1", 42, "r1") and stored.created
    assert registry.session_rows("other") == []


def test_without_tmux_agents_are_gone_and_attach_says_how_to_install_it(task, monkeypatch, tmp_path) -> None:
    sleeper()
    managed.start_stage(task, 1)
    bare = tmp_path / "bin"
    bare.mkdir()
    (bare / "git").symlink_to(shutil.which("git") or "git")
    monkeypatch.setenv("PATH", str(bare))
    (gone,) = managed.sessions(task.project, task.ref)
    assert not gone.alive and gone.state == "exited"
    code, _, err = run_cli("--project", str(task.project.root), "attach", "auth/login", "1")
    assert code == 2 and "tmux is not installed" in err


def test_autopilot_waits_for_an_agent_launched_in_place(task) -> None:
    """Stage 1's agent runs in another terminal (`okstra launch`, no tmux): autopilot
    waits for it rather than stopping at once, and never takes its stage."""
    from okstra_engine.autopilot import follow
    from tests.support import prepared_run

    sleeper()
    in_place = subprocess.Popen([str(Path(sys.executable).with_name("okstra")), "launch", str(prepared_run(task))])
    wait_for(lambda: any(r.pid == in_place.pid for r in ledger_rows(task)))
    looks = []

    def meanwhile(_: float) -> None:
        looks.append(1)
        in_place.terminate()  # its agent ends without recording done
        in_place.wait(timeout=10)

    try:
        result = follow(task, 2, sleep=meanwhile)
    finally:
        in_place.kill()
        in_place.wait(timeout=10)
    assert looks and not result.done and result.waiting[1] == "stale"
    assert managed.sessions(task.project, task.ref) == []


_TWICE = """
import signal, sys, time
first = [0.0]
def on_int(signum, frame):
    if time.monotonic() - first[0] < 1.0:
        sys.exit(0)
    first[0] = time.monotonic()
signal.signal(signal.SIGINT, on_int)
open(sys.argv[1] + ".ready", "w").close()
while True:
    time.sleep(1)
"""

_DEAF = """
import signal, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
open(sys.argv[1] + ".ready", "w").close()
time.sleep(120)
"""


def _ready(task, session: managed.ManagedSession) -> Callable[[], bool]:
    return (task.runs_dir / session.run_id / "prompt.md.ready").exists


def test_stop_exits_an_agent_that_wants_c_c_twice_and_refuses_one_that_never_stops(task) -> None:
    from okstra_engine.errors import OkstraError

    set_agent_command([sys.executable, "-c", _TWICE, "{prompt_file}"])
    twice = managed.start_stage(task, 1)
    wait_for(_ready(task, twice))  # its SIGINT handler is in place
    assert not managed.stop(task, 1).alive
    assert ledger_rows(task)[-1].status == "released"
    set_agent_command([sys.executable, "-c", _DEAF, "{prompt_file}"])
    deaf = managed.start_stage(task, 1)
    wait_for(_ready(task, deaf))
    with pytest.raises(OkstraError, match="did not stop within 1.5 s; the stage stays held"):
        managed.stop(task, 1, timeout=1.5)
    assert managed.session_of(task, 1).alive and ledger_rows(task)[-1].status == "reserved"


def test_an_agent_gets_okstras_environment_from_a_server_started_without_it(task) -> None:
    """A person's tmux server was started long ago, in another environment: the agent's
    session still runs with this okstra's (its home, its settings)."""
    server_env = {"PATH": os.environ["PATH"], "HOME": "/nonexistent"}
    subprocess.run(tmux.tmux_argv("new-session", "-d", "-s", "older", "sleep", "60"), env=server_env, check=True)
    sim_lead()
    started = managed.start_stage(task, 1)
    wait_for(lambda: done_stages(task) == {1})
    assert started.session in managed.session_of(task, 1).session


def test_only_implementation_stages_run_in_managed_sessions(task) -> None:
    from okstra_engine.errors import OkstraError
    from okstra_engine.prepare import PrepareOptions, prepare

    sim_lead()
    run = prepare(task, PrepareOptions("planning", replace=True)).manifest.run_dir
    with pytest.raises(OkstraError, match="managed sessions run implementation stages"):
        managed.start_run(Path(run))
    assert tmux.list_sessions() == {}


def test_a_start_whose_agent_cannot_run_releases_its_stage(task) -> None:
    set_agent_command(["no-such-agent-xyz", "{prompt}"])
    code, _, err = run_cli("--project", str(task.project.root), "start", "auth/login")
    assert code == 2 and "'no-such-agent-xyz' is not installed" in err
    assert [r.status for r in ledger_rows(task)] == ["reserved", "released"]
    assert str(task_status(task).stages[0].state) == "ready" and tmux.list_sessions() == {}


def test_autopilot_records_stages_merged_by_hand_and_goes_on(task) -> None:
    """Stages 2 and 3 cherry-picked onto the task branch by a person, not handed off: the
    autopilot records where their work went, as a prepare would, and stage 4 starts."""
    from okstra_engine.autopilot import follow
    from okstra_engine.tasks import stage_branch, task_branch
    from okstra_engine.worktrees import task_target

    sim_lead()
    follow(task, 2, sleep=lambda _: time.sleep(0.1))  # 1, 2, 3 done; 4 waits for B
    worktree = task_target(task).path
    branches = [stage_branch(task, n) for n in (1, 2, 3)]
    git(worktree, "cherry-pick", f"{task_branch(task)}..{branches[1]}")
    git(worktree, "cherry-pick", f"{branches[0]}..{branches[2]}")
    said: list[str] = []
    result = follow(task, 2, sleep=lambda _: time.sleep(0.1), notice=said.append)
    assert result.done, result.waiting
    assert any(line.startswith("git-reconcile: stage 2 done commit") for line in said), said
    assert done_stages(task) == {1, 2, 3, 4}


def test_autopilot_says_why_the_handoff_it_was_asked_for_waits(task) -> None:
    """A task worktree with uncommitted changes takes no merge: autopilot stops, and says so
    rather than only that a stage is blocked."""
    from okstra_engine.autopilot import follow
    from okstra_engine.worktrees import task_target

    sim_lead()
    result = follow(task, 2, sleep=lambda _: time.sleep(0.1))  # 1, 2, 3 done; 4 waits for B
    (task_target(task).path / "stray.txt").write_text("left by a setup command\n")
    result = follow(task, 2, handoff=True, sleep=lambda _: time.sleep(0.1))
    assert not result.done and result.waiting == {4: "blocked"}
    assert len(result.held) == 1 and "has uncommitted changes: stray.txt" in result.held[0]
