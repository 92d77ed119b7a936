"""Offline is normal: without the remote, okstra works on here and says the task is not
synced; rows wait and go with the next contact; a stage is taken only with --offline,
and when another machine took it meanwhile both are shown for a person to settle."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from tests.share.machines import TASK
from tests.support import git


def cut(machine, remote: Path) -> None:
    git(machine.clone, "remote", "set-url", "origin", str(remote.parent / "gone.git"))


def mend(machine, remote: Path) -> None:
    git(machine.clone, "remote", "set-url", "origin", str(remote))


def test_offline_appends_are_published_later_with_nothing_lost_or_doubled(pair) -> None:
    remote, (a, b) = pair
    cut(a, remote)
    refused = a.run("prepare", TASK, "--type", "implementation")
    assert refused.returncode == 2
    assert "did not answer" in refused.stderr and "--offline" in refused.stderr
    run = json.loads(a.ok("prepare", TASK, "--type", "implementation", "--offline", "--json"))
    assert run["stage"] == 1
    a.ok("record", TASK, "--stage", "1", "--status", "started")
    status = a.run("status", TASK)
    assert status.returncode == 0 and "not synced" in status.stderr
    assert a.json("status", TASK)["share"] == {"remote": "origin", "synced": False, "branch": None}
    doc = a.json("share", "status")
    assert doc["reachable"] is False and doc["tasks"][0]["queued"] == 2
    offline_rows = a.ledger_lines()
    assert json.loads(offline_rows[0])["offline"] is True

    mend(a, remote)
    a.ok("share", "sync")
    assert a.json("share", "status")["tasks"][0]["queued"] == 0
    b.ok("share", "sync")
    lines_b = b.ledger_lines()
    assert Counter(lines_b) == Counter(offline_rows)  # each row once, as written
    # the stage taken offline got its ref on the next contact: the other machine sees it taken
    assert b.json("status", TASK)["stages"][0]["state"] == "in-flight"
    assert json.loads(b.ok("prepare", TASK, "--type", "implementation", "--json"))["stage"] == 2
    a.ok("share", "sync")
    b.ok("share", "sync")
    assert Counter(a.ledger_lines()) == Counter(b.ledger_lines())
    assert len(a.ledger_lines()) == 3


def test_a_stage_taken_offline_and_elsewhere_meanwhile_is_shown_for_a_person(pair) -> None:
    remote, (a, b) = pair
    cut(a, remote)
    assert json.loads(a.ok("prepare", TASK, "--type", "implementation", "--offline", "--json"))["stage"] == 1
    assert json.loads(b.ok("prepare", TASK, "--type", "implementation", "--json"))["stage"] == 1
    mend(a, remote)
    proc = a.run("share", "sync")
    assert proc.returncode == 0
    assert "was taken offline here and by" in proc.stderr
    clash = a.json("share", "status")["clashes"]
    assert [(c["task"], c["stage"]) for c in clash] == [(TASK, 1)]
    assert "release one of them" in a.ok("share", "status")
    # the person releases this machine's run; the next sync forgets the clash
    a.ok("record", TASK, "--stage", "1", "--status", "released", "--run", json.loads(a.ledger_lines()[0])["run_id"])
    a.ok("share", "sync")
    assert a.json("share", "status")["clashes"] == []
