"""kill -9 in the middle of a push (before it, or after the remote took it but before
this machine noted so) leaves a state the next command completes: nothing lost,
nothing doubled, no stage held by a run that never wrote a row."""

from __future__ import annotations

import json
import signal
from collections import Counter
from pathlib import Path

import pytest

from tests.share.machines import TASK
from tests.support import git


def killed(machine, fault: str, *args: str) -> None:
    proc = machine.run(*args, env={"OKSTRA_FAULT": fault})
    assert proc.returncode == -signal.SIGKILL, (fault, args, proc.stderr)


def reserved(remote: Path) -> list[str]:
    return git(
        remote, "for-each-ref", "--format=%(refname:lstrip=-1)", "refs/okstra/share/root/team/wide/reserved/"
    ).split()


@pytest.mark.parametrize("fault", ["share.before-push", "share.pushed"])
def test_a_record_killed_around_its_push_is_completed_by_the_next_command(pair, fault) -> None:
    remote, (a, b) = pair
    assert json.loads(a.ok("prepare", TASK, "--type", "implementation", "--json"))["stage"] == 1
    killed(a, fault, "record", TASK, "--stage", "1", "--status", "released")
    rows_a = a.ledger_lines()
    assert json.loads(rows_a[-1])["status"] == "released"  # the row was written before the push
    a.ok("share", "sync")  # the next command
    assert reserved(remote) == []  # released: its ref went with the row that says why
    b.ok("share", "sync")
    assert Counter(b.ledger_lines()) == Counter(rows_a)
    assert b.json("status", TASK)["stages"][0]["state"] == "ready"
    assert a.json("share", "status")["tasks"][0]["queued"] == 0


@pytest.mark.parametrize("fault", ["share.before-push", "share.pushed"])
def test_a_prepare_killed_around_its_reservation_push_holds_nothing_after_the_next_sync(pair, fault) -> None:
    remote, (a, b) = pair
    killed(a, fault, "prepare", TASK, "--type", "implementation")
    assert a.ledger_lines() == []  # killed before its row
    if fault == "share.pushed":
        assert reserved(remote) == ["s1"]  # the remote took the ref
        b.ok("share", "sync")
        assert b.json("status", TASK)["stages"][0]["state"] == "in-flight"
    # the next command of that machine clears the ref no run holds, and takes stage 1 again
    assert json.loads(a.ok("prepare", TASK, "--type", "implementation", "--json"))["stage"] == 1
    assert reserved(remote) == ["s1"]
    b.ok("share", "sync")
    assert [s["state"] for s in b.json("status", TASK)["stages"]] == ["in-flight", "ready", "blocked"]
    assert len(b.ledger_lines()) == 1
