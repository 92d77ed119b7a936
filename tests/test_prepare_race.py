"""Several `okstra prepare` processes at once on one task, and a mutex holder that dies."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from okstra_engine import ports, registry
from okstra_engine.errors import OkstraError
from okstra_engine.ledger import read_ledger
from okstra_engine.plans import import_plan, plan_run_root
from okstra_engine.prepare import PrepareOptions, prepare
from okstra_engine.projects import init_project
from okstra_engine.slugs import TaskRef
from okstra_engine.tasks import new_task
from okstra_engine.worktrees import task_slot
from tests.support import git, mutex_held_elsewhere

N = 8


def _okstra() -> list[str]:
    exe = Path(sys.executable).with_name("okstra")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "okstra_tui.entry"]


@pytest.fixture
def wide(repo: Path, tmp_path: Path):
    """A task whose plan has N independent stages."""
    project, _ = init_project(repo, qa_commands=["true"])
    task = new_task(project, TaskRef("race", "wide"), title="Many stages")
    source = tmp_path / "stage-map.json"
    source.write_text(
        json.dumps({"stages": [{"stage": n, "title": f"S{n}", "depends_on": []} for n in range(1, N + 1)]})
    )
    import_plan(task, source, approve=True)
    return task


def test_racing_prepares_each_get_a_different_stage(wide) -> None:
    repo = wide.project.root
    cmd = [*_okstra(), "--project", str(repo), "prepare", "race/wide", "--type", "implementation", "--json"]
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
        for _ in range(N)
    ]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * N, [err for _, err in results]
    docs = [json.loads(out) for out, _ in results]
    assert sorted(d["stage"] for d in docs) == list(range(1, N + 1))
    assert len({d["run_id"] for d in docs}) == N

    rows = read_ledger(plan_run_root(wide).dir / "consumers.jsonl").rows
    assert len(rows) == N and all(r.status == "reserved" for r in rows)
    assert sorted(r.stage for r in rows) == list(range(1, N + 1))
    assert {r.run_id for r in rows} == {d["run_id"] for d in docs}

    listed = git(repo, "worktree", "list", "--porcelain")
    for d in docs:
        path = Path(d["worktree"]["path"])
        assert path.is_dir() and f"worktree {path}\n" in listed + "\n"
        assert d["worktree"]["branch"] == f"okstra/feature/race/wide-s{d['stage']}"
    # one task worktree made by the first, reused by the others
    assert sorted(d["task_worktree"]["status"] for d in docs) == ["created"] + ["reused"] * (N - 1)
    assert set(registry.task_worktrees(task_slot(wide))) == {None, *range(1, N + 1)}
    # each run after the first saw the earlier ones in flight
    assert sorted(len(d["concurrentRun"]["activeStages"]) for d in docs) == list(range(N))
    # and each got a block of ports of its own, the one its reserved row holds
    blocks = sorted(d["port"] for d in docs)
    assert all(b - a >= ports.BLOCK for a, b in itertools.pairwise(blocks)), blocks
    assert {r.stage: ports.port_of(r) for r in rows} == {d["stage"]: d["port"] for d in docs}


def test_prepares_racing_on_different_tasks_get_different_ports(wide, tmp_path) -> None:
    """The task mutex keeps one task's prepares apart; the ports lock, those of several."""
    project = wide.project
    source = tmp_path / "one.json"
    source.write_text(json.dumps({"stages": [{"stage": 1, "title": "One", "depends_on": []}]}))
    refs = [f"race/t{n}" for n in range(4)]
    for ref in refs:
        import_plan(new_task(project, TaskRef.parse(ref), title=ref), source, approve=True)
    procs = [
        subprocess.Popen(
            [*_okstra(), "--project", str(project.root), "prepare", ref, "--type", "implementation", "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=os.environ.copy(),
        )
        for ref in refs
    ]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * len(refs), [err for _, err in results]
    blocks = sorted(json.loads(out)["port"] for out, _ in results)
    assert all(b - a >= ports.BLOCK for a, b in itertools.pairwise(blocks)), blocks


def test_a_killed_mutex_holder_does_not_block_the_next_prepare(wide) -> None:
    project = wide.project
    with mutex_held_elsewhere(wide) as holder:
        waited: list[str] = []
        start = time.monotonic()
        with pytest.raises(OkstraError) as info:
            prepare(wide, PrepareOptions("implementation", lock_timeout=0.3), notice=waited.append)
        assert time.monotonic() - start < 5
        assert "another okstra process has been working on race/wide" in info.value.what
        assert waited and "waiting for another okstra process" in waited[0]
        assert not (plan_run_root(wide).dir / "consumers.jsonl").exists()
    assert holder.returncode == -signal.SIGKILL
    # no stale lock file to clean by hand: the OS released it with its holder
    proc = subprocess.run(
        [*_okstra(), "--project", str(project.root), "prepare", "race/wide", "--type", "implementation"],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "okstra stage: 1" in proc.stdout
