"""The worktree registry: SQLite in okstra home, safe under concurrent processes."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from okstra_engine import registry
from okstra_engine.errors import OkstraError
from okstra_engine.registry import TaskSlot, WorktreeRow

SLOT = TaskSlot("proj", "auth", "login")


def _row(stage: int | None, path: str, base: str = "a" * 40) -> WorktreeRow:
    branch = "okstra/feature/auth/login" + (f"-s{stage}" if stage else "")
    return WorktreeRow("proj", "auth", "login", stage, path, branch, base)


def test_readers_never_create_the_registry() -> None:
    assert registry.task_worktrees(SLOT) == {}
    assert registry.anchor(SLOT) is None
    assert registry.get_worktree(SLOT, None) is None
    registry.forget_worktree(SLOT, 1)
    assert not registry.registry_path().exists()
    assert not registry.registry_path().parent.exists()


def test_every_committed_write_and_only_a_write_changes_the_changes_file() -> None:
    def size() -> int | None:
        path = registry.changes_path()
        return path.stat().st_size if path.exists() else None

    registry.anchor(SLOT)
    assert size() is None
    registry.register_worktree(_row(None, "/w/login"))
    seen = [size()]
    registry.task_worktrees(SLOT)  # readers: the database's -wal comes and goes, the changes file stays
    registry.anchor(SLOT)
    with sqlite3.connect(registry.registry_path()) as reader:
        reader.execute("SELECT * FROM worktrees").fetchall()
        assert registry.registry_path().with_name(registry.DB_NAME + "-wal").exists()
        assert size() == seen[-1]
    assert size() == seen[-1]
    for write in (
        lambda: registry.fix_anchor(SLOT, "b" * 40),
        lambda: registry.register_worktree(_row(1, "/w/login-s1")),
        lambda: registry.forget_worktree(SLOT, 1),
    ):
        write()
        seen.append(size())
    assert len(set(seen)) == len(seen)


def test_the_changes_file_starts_again_when_full() -> None:
    registry.register_worktree(_row(None, "/w/login"))
    registry.changes_path().write_bytes(b"." * registry.CHANGES_MAX)
    registry.forget_worktree(SLOT, None)
    assert registry.changes_path().stat().st_size == 1


def test_task_and_stage_rows_round_trip_and_replace_by_slot() -> None:
    registry.register_worktree(_row(None, "/w/login"))
    registry.register_worktree(_row(1, "/w/login-s1"))
    registry.register_worktree(_row(2, "/w/login-s2"))
    rows = registry.task_worktrees(SLOT)
    assert set(rows) == {None, 1, 2}
    assert rows[None].branch == "okstra/feature/auth/login" and rows[None].stage is None
    assert rows[1].path == "/w/login-s1" and rows[1].status == "active" and rows[1].created.endswith("Z")
    # the same slot again replaces the row (a recreated worktree)
    registry.register_worktree(_row(1, "/w/login-s1", base="b" * 40))
    rows = registry.task_worktrees(SLOT)
    assert len(rows) == 3 and rows[1].base_ref == "b" * 40
    # other tasks are not mixed in
    assert registry.task_worktrees(TaskSlot("proj", "auth", "other")) == {}
    registry.forget_worktree(SLOT, 2)
    registry.forget_worktree(SLOT, None)
    assert set(registry.task_worktrees(SLOT)) == {1}


def test_anchor_is_fixed_once() -> None:
    assert registry.fix_anchor(SLOT, "1" * 40) == "1" * 40
    assert registry.fix_anchor(SLOT, "2" * 40) == "1" * 40
    assert registry.anchor(SLOT) == "1" * 40
    assert registry.anchor(TaskSlot("proj", "auth", "other")) is None


def test_wal_journal_and_schema_version() -> None:
    registry.register_worktree(_row(None, "/w/login"))
    conn = sqlite3.connect(registry.registry_path())
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == registry.SCHEMA_VERSION
    finally:
        conn.close()


def test_a_damaged_registry_is_a_clear_error() -> None:
    path = registry.registry_path()
    path.parent.mkdir(parents=True)
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(OkstraError) as info:
        registry.task_worktrees(SLOT)
    assert str(path) in info.value.what and "mv" in info.value.how


_WRITER = """
import sys
from okstra_engine import registry
from okstra_engine.registry import TaskSlot, WorktreeRow
worker = int(sys.argv[1])
for n in range(1, 26):
    registry.register_worktree(WorktreeRow("proj", f"g{worker}", "t", n, f"/w/{worker}/{n}", "b", "c" * 40))
    registry.task_worktrees(TaskSlot("proj", f"g{(worker + 1) % 6}", "t"))
registry.fix_anchor(TaskSlot("proj", "shared", "t"), str(worker) * 40)
"""


def test_concurrent_processes_write_and_read_without_errors() -> None:
    procs = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(i)], stderr=subprocess.PIPE, text=True) for i in range(6)
    ]
    errors = [p.communicate(timeout=60)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, errors
    for worker in range(6):
        assert len(registry.task_worktrees(TaskSlot("proj", f"g{worker}", "t"))) == 25
    # exactly one of the racers fixed the anchor, and it stayed
    anchor = registry.anchor(TaskSlot("proj", "shared", "t"))
    assert anchor in {str(i) * 40 for i in range(6)}


def test_registry_lives_in_okstra_home(tmp_path: Path) -> None:
    assert registry.registry_path() == tmp_path / "okstra-home" / "registry.sqlite3"


_FIRST = """
import sys
from okstra_engine import registry
registry.fix_anchor(registry.TaskSlot("proj", "shared", "t"), sys.argv[1] * 40)
"""


@pytest.mark.slow
def test_the_first_commands_of_a_machine_make_the_registry_together(tmp_path, monkeypatch) -> None:
    # a machine's first commands race to make the file WAL; sqlite told one of them
    # "locked" at once (about one in 300 processes here), which failed the command.
    # A race: this failed the old code in some runs (a quarter to a half), never the new.
    for round_ in range(40):
        home = tmp_path / f"home-{round_}"
        env = {**os.environ, "OKSTRA_HOME": str(home)}
        procs = [
            subprocess.Popen([sys.executable, "-c", _FIRST, str(i)], env=env, stderr=subprocess.PIPE, text=True)
            for i in range(8)
        ]
        errors = [p.communicate(timeout=60)[1] for p in procs]
        assert [p.returncode for p in procs] == [0] * 8, errors
