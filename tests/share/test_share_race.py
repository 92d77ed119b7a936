"""Machines racing for the stages of one shared task take each stage once: the remote's
atomic ref creation decides between machines, the task mutex within one."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from okstra_engine.plans import import_plan
from okstra_engine.projects import init_project
from okstra_engine.share.sync import sync
from okstra_engine.slugs import TaskRef
from okstra_engine.tasks import new_task
from tests.share.machines import bare_remote, machines, stage_map
from tests.support import git

ROUNDS = int(os.environ.get("OKSTRA_SHARE_RACE_ROUNDS", "20"))  # the issue asks 20; fewer for a quick look
MACHINES, EACH, STAGES = 4, 2, 8


@pytest.fixture
def fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    remote = bare_remote(tmp_path)
    fleet = machines(tmp_path, remote, MACHINES)
    first = fleet[0]
    # the first machine makes one task per round in this process (fast), then shares them
    monkeypatch.setenv("OKSTRA_HOME", str(first.home))
    project, _ = init_project(first.clone, qa_commands=["true"], share_remote="origin")
    plan = stage_map(tmp_path, STAGES)
    for r in range(ROUNDS):
        import_plan(new_task(project, TaskRef("race", f"r{r}"), title=f"Round {r}"), plan, approve=True)
    report = sync(project)
    assert report is not None and report.reachable
    for machine in fleet[1:]:
        machine.ok("init", "--share", "origin", "--qa-command", "true")
    return remote, fleet


def test_machines_racing_for_stages_each_take_a_different_one(fleet) -> None:
    remote, machines_ = fleet
    start = time.monotonic()
    for r in range(ROUNDS):
        task = f"race/r{r}"
        procs = [
            (m, m.popen("prepare", task, "--type", "implementation", "--json")) for m in machines_ for _ in range(EACH)
        ]
        results = [(m, p.communicate(timeout=300), p.returncode) for m, p in procs]
        assert [code for _, _, code in results] == [0] * len(procs), [err for _, (_, err), _ in results]
        taken = [(m.name, json.loads(out)["stage"]) for m, (out, _), _ in results]
        assert sorted(stage for _, stage in taken) == list(range(1, STAGES + 1)), (r, taken)
        refs = git(
            remote,
            "for-each-ref",
            "--format=%(refname) %(contents:subject)",
            f"refs/okstra/share/root/race/r{r}/reserved/",
        )
        held = {}
        for line in refs.splitlines():
            ref, _, message = line.partition(" ")
            held[int(ref.rsplit("/s", 1)[1])] = json.loads(message)["run_id"]
        assert sorted(held) == list(range(1, STAGES + 1))
        assert set(held.values()) == {json.loads(out)["run_id"] for _, (out, _), _ in results}
    elapsed = time.monotonic() - start
    print(f"{ROUNDS} rounds of {MACHINES}x{EACH} racing prepares: {elapsed:.1f} s")
    # every machine's ledger comes to hold every reservation of the last round, once
    last = f"race/r{ROUNDS - 1}"
    for machine in machines_:
        machine.ok("share", "sync", last)
        doc = machine.json("status", last)
        assert [s["state"] for s in doc["stages"]] == ["in-flight"] * STAGES
        rows = [json.loads(line) for line in machine.ledger_lines(last)]
        assert sorted(row["stage"] for row in rows) == list(range(1, STAGES + 1))  # each once
