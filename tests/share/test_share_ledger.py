"""The ledger travels: whatever the order of appends, fetches, imports and pushes (and
pushes whose answer was lost), every machine ends with every row exactly once."""

from __future__ import annotations

import os
import random
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from okstra_engine import git as okgit
from okstra_engine.fsio import append_line
from okstra_engine.ledger import LEDGER_NAME, append_row, new_row
from okstra_engine.plans import import_plan, plan_run_root
from okstra_engine.projects import init_project, load_project
from okstra_engine.share import hooks, rows
from okstra_engine.share.machine import machine_id
from okstra_engine.share.place import shared
from okstra_engine.share.sync import fetch, sync
from okstra_engine.slugs import TaskRef
from okstra_engine.tasks import load_task, new_task
from tests.share.machines import bare_remote, machines, stage_map

REF = TaskRef("team", "wide")


@contextmanager
def on(home: Path) -> Iterator[None]:
    """Be that machine in this process: its okstra home."""
    before = os.environ.get("OKSTRA_HOME")
    os.environ["OKSTRA_HOME"] = str(home)
    try:
        yield
    finally:
        if before is None:
            del os.environ["OKSTRA_HOME"]
        else:
            os.environ["OKSTRA_HOME"] = before


class Fleet:
    def __init__(self, tmp: Path, count: int) -> None:
        remote = bare_remote(tmp)
        self.machines = machines(tmp, remote, count)
        plan = stage_map(tmp, 3)
        first = self.machines[0]
        with on(first.home):
            project, _ = init_project(first.clone, qa_commands=["true"])
            task = new_task(project, REF, title="Shared")
            import_plan(task, plan, approve=True)
            self.old = [self.append(0, shared_before=True) for _ in range(2)]
            init_project(first.clone, share_remote="origin")
            sync(load_project(first.clone))
        for machine in self.machines[1:]:
            with on(machine.home):
                init_project(machine.clone, qa_commands=["true"], share_remote="origin")
                sync(load_project(machine.clone))
        self.appended: list[str] = list(self.old)

    def task(self, n: int):  # type: ignore[no-untyped-def]
        return load_task(load_project(self.machines[n].clone), REF)

    def ledger(self, n: int) -> Path:
        with on(self.machines[n].home):
            plan = plan_run_root(self.task(n))
            assert plan is not None
            return plan.dir / LEDGER_NAME

    def append(self, n: int, *, shared_before: bool = False) -> str:
        with on(self.machines[n].home):
            task = self.task(n)
            plan = plan_run_root(task)
            assert plan is not None
            count = len(self.__dict__.get("appended", []))
            # a row of its own: two rows equal byte for byte are one row (the line is its identity)
            row = new_row(1 + count % 3, "started", run_id=f"r{n}", n=count, nonce=os.urandom(4).hex())
            if shared_before:  # a row written by an okstra before machines: none named
                append_line(plan.dir / LEDGER_NAME, row.to_line())
            else:
                append_row(plan.dir / LEDGER_NAME, row)
            line = row.to_line()
            if hasattr(self, "appended"):
                self.appended.append(line)
            return line

    def act(self, n: int, what: str) -> None:
        machine = self.machines[n]
        with on(machine.home):
            project = load_project(machine.clone)
            share = shared(project)
            assert share is not None
            if what == "sync":
                sync(project)
            elif what == "fetch":
                fetch(share)
            elif what == "import":
                task = self.task(n)
                plan = plan_run_root(task)
                assert plan is not None
                rows.import_rows(share, task, plan)
            elif what == "publish":
                hooks.publish(self.task(n))
            elif what == "lose-answer":
                # a push whose answer never came back (killed): this machine's record of its
                # own ref falls behind the remote
                okgit.delete_ref(share.repo, share.local_ref(REF, "ledger", machine_id()))

    def lines(self, n: int) -> list[str]:
        return rows.local_lines(self.ledger(n))


ACTIONS = ["append", "append", "append", "sync", "fetch", "import", "publish", "lose-answer"]
SEEDS = int(os.environ.get("OKSTRA_SHARE_LEDGER_SEEDS", "6"))


@pytest.mark.parametrize("seed", range(SEEDS))
def test_no_row_is_lost_or_doubled_whatever_the_order(seed: int, tmp_path: Path) -> None:
    rng = random.Random(seed)
    steps = [(rng.randrange(3), rng.choice(ACTIONS)) for _ in range(16)]
    fleet = Fleet(tmp_path, 3)
    for n, what in steps:
        if what == "append":
            fleet.append(n)
        else:
            fleet.act(n, what)
        for m in range(3):  # never a row twice, at any moment
            counts = Counter(fleet.lines(m))
            assert max(counts.values(), default=1) == 1, (m, steps)
    for _ in range(2):
        for m in range(3):
            fleet.act(m, "sync")
    want = Counter(fleet.appended)
    for m in range(3):
        assert Counter(fleet.lines(m)) == want, (m, steps)
    # and each machine's published chain only ever added lines
    for m in range(3):
        with on(fleet.machines[m].home):
            share = shared(load_project(fleet.machines[m].clone))
            assert share is not None
            ref = share.local_ref(REF, "ledger", machine_id())
            if okgit.resolve_commit(share.repo, ref) is None:
                continue  # this machine never wrote a row
            chain = okgit.out(["rev-list", "--reverse", ref], share.repo).split()
            plan = plan_run_root(fleet.task(m))
            assert plan is not None
            before: list[str] = []
            for commit in chain:
                now = rows.lines_at(share, commit, plan.run_id)
                assert now[: len(before)] == before
                before = now
