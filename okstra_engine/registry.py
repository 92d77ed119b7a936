"""The machine-local worktree registry: every worktree okstra made, and each task's anchor.

One SQLite file in okstra home (`registry.sqlite3`), from the standard library. Many
okstra processes use it at once (parallel `prepare` of several tasks, `status` in
agent loops, the TUI), so:

- WAL journal: readers never block the writer and the writer never blocks readers
  (on a full or read-only disk, where WAL cannot share, readers read the file as it is);
- a busy timeout instead of "database is locked" errors;
- short transactions (`BEGIN IMMEDIATE` … `COMMIT` around one statement or two);
- a connection per call, closed at once: nothing holds the file between calls.

Readers never create the file: a machine where okstra made no worktree yet has no
registry, and `status` or a render-only `prepare` must not leave one behind.

Every committed write also grows a small file beside it (`changes_path`), so a watcher
(the TUI's board) can tell a write from a read by its size. The database and its `-wal`
file cannot tell them apart: a mere reader of a WAL database creates the `-wal` file,
and the last connection to close removes it.

A worktree row's `status` is its lifecycle state, `active` while it exists; what a
`prepare` did with it (`created`, `reused`, `recreated`) is the run manifest's business.
A session row is the tmux session okstra last started for a stage (one per stage: a new
one replaces it); whether it still runs is tmux's to say (`managed.sessions`).

The task's **anchor base commit** (what stages without dependencies branch from) is
stored once and never changed: `fix_anchor` keeps the first value it is given.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import clock, faults
from .errors import OkstraError
from .locations import okstra_home

DB_NAME = "registry.sqlite3"
CHANGES_NAME = DB_NAME + ".changes"
CHANGES_MAX = 4096
SCHEMA_VERSION = 2
BUSY_TIMEOUT_S = 15.0
ACTIVE = "active"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS worktrees (
    project_id TEXT NOT NULL,
    task_group TEXT NOT NULL,
    task_id    TEXT NOT NULL,
    stage      INTEGER,            -- NULL: the task worktree
    path       TEXT NOT NULL UNIQUE,
    branch     TEXT NOT NULL,
    base_ref   TEXT NOT NULL,
    status     TEXT NOT NULL,
    created    TEXT NOT NULL
);
-- one row per (task, stage): stage numbers are positive, so 0 stands for NULL
CREATE UNIQUE INDEX IF NOT EXISTS worktrees_slot
    ON worktrees (project_id, task_group, task_id, ifnull(stage, 0));
CREATE TABLE IF NOT EXISTS anchors (
    project_id  TEXT NOT NULL,
    task_group  TEXT NOT NULL,
    task_id     TEXT NOT NULL,
    base_commit TEXT NOT NULL,
    created     TEXT NOT NULL,
    PRIMARY KEY (project_id, task_group, task_id)
);
-- the tmux session okstra last started for a stage's run (`managed`)
CREATE TABLE IF NOT EXISTS sessions (
    project_id   TEXT NOT NULL,
    project_root TEXT NOT NULL,
    task_group   TEXT NOT NULL,
    task_id      TEXT NOT NULL,
    stage        INTEGER NOT NULL,
    run_id       TEXT NOT NULL,
    session      TEXT NOT NULL,
    socket       TEXT NOT NULL,  -- '' for the default server
    pid          INTEGER NOT NULL,
    created      TEXT NOT NULL,
    PRIMARY KEY (project_id, task_group, task_id, stage)
);
"""

_COLUMNS = "project_id, task_group, task_id, stage, path, branch, base_ref, status, created"


@dataclass(frozen=True)
class WorktreeRow:
    project_id: str
    task_group: str
    task_id: str
    stage: int | None
    """None for the task worktree."""
    path: str
    branch: str
    base_ref: str
    status: str = ACTIVE
    created: str = ""


@dataclass(frozen=True)
class TaskSlot:
    """Which task a registry question is about."""

    project_id: str
    task_group: str
    task_id: str


def registry_path() -> Path:
    return okstra_home() / DB_NAME


def changes_path() -> Path:
    """The file whose size changes with every committed write to the registry, and only
    then; missing until the first write."""
    return okstra_home() / CHANGES_NAME


def _note_change(db: Path) -> None:
    """Grow the changes file by one byte (back to one byte once it reached
    `CHANGES_MAX`): its size differs from the one a watcher saw before the write."""
    try:
        fd = os.open(db.with_name(CHANGES_NAME), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            if os.fstat(fd).st_size >= CHANGES_MAX:
                os.ftruncate(fd, 0)
            os.write(fd, b".")
        finally:
            os.close(fd)
    except OSError:
        pass  # the write is committed, and must not look failed: watchers reload on their own clock too


def _now() -> str:
    return clock.iso()


def _open(path: Path) -> sqlite3.Connection:
    # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a transaction is
    # exactly as long as the code between them
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
    return conn


@contextmanager
def _writer() -> Iterator[sqlite3.Connection]:
    """A connection to a registry with the schema in place (created on first use). Every
    write goes through here, and what the caller wrote is committed when its block ends
    without an error: then the changes file grows."""
    path = registry_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with closing(_open(path)) as conn:
            if conn.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
                _create_schema(conn)
            yield conn
    except sqlite3.DatabaseError as exc:
        raise _registry_error(path, exc) from exc
    _note_change(path)


@contextmanager
def _reader() -> Iterator[sqlite3.Connection | None]:
    """A connection for reading, or None when there is no registry yet."""
    path = registry_path()
    if not path.exists():
        yield None
        return
    try:
        with closing(_open_for_reading(path)) as conn:
            yield conn
    except sqlite3.DatabaseError as exc:
        raise _registry_error(path, exc) from exc


_CANNOT_SHARE = ("disk I/O error", "unable to open database file", "readonly database")


def _open_for_reading(path: Path) -> sqlite3.Connection:
    """A reader's connection. In WAL mode even a read needs the `-shm` file beside the
    database, which a full or read-only disk cannot give; then, when no `-wal` file holds
    unfinished writes (so the database file is whole), the file is read as it is
    (`immutable`): `status` and the TUI keep working on a full or read-only disk."""
    conn = _open(path)
    try:
        conn.execute("PRAGMA user_version").fetchone()
        return conn
    except sqlite3.OperationalError as exc:
        conn.close()
        wal = path.with_name(path.name + "-wal")
        if not any(text in str(exc) for text in _CANNOT_SHARE) or (wal.exists() and wal.stat().st_size > 0):
            raise
    return sqlite3.connect(f"{path.resolve().as_uri()}?immutable=1", uri=True, isolation_level=None)


def _create_schema(conn: sqlite3.Connection) -> None:
    # WAL is a property of the file: setting it once is enough, and setting it again
    # is a no-op. It cannot change inside a transaction, so it comes first.
    _wal(conn)
    conn.execute("BEGIN IMMEDIATE")
    try:
        if conn.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _wal(conn: sqlite3.Connection) -> None:
    """Switch a new registry to WAL. The first commands of a machine race to do it, and
    sqlite answers "locked" at once, without waiting, to one that holds its read lock
    while another waits for the file (that wait could never end): it tries again."""
    import time

    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _registry_error(path: Path, exc: sqlite3.DatabaseError) -> OkstraError:
    if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
        return OkstraError(
            f"the worktree registry {path} stayed locked for {BUSY_TIMEOUT_S:g} s",
            "another okstra process is writing it: retry in a moment",
        )
    text = str(exc)
    if "disk is full" in text or "readonly" in text or "read-only" in text or "unable to open" in text:
        return OkstraError(
            f"the worktree registry {path} cannot be written: {text}",
            f"free some space on the file system holding {path.parent}, or make it writable, then rerun",
        )
    return OkstraError(
        f"the worktree registry {path} cannot be used: {text}",
        f"if the file is damaged, move it aside (okstra rebuilds an empty one): mv {path} {path}.bad",
    )


def _row(values: tuple[Any, ...]) -> WorktreeRow:  # a sqlite3 row
    return WorktreeRow(*values)


def register_worktree(row: WorktreeRow) -> WorktreeRow:
    """Insert or replace the row of (task, stage); return what was stored."""
    stored = WorktreeRow(**{**row.__dict__, "created": row.created or _now()})
    with _writer() as conn:
        conn.execute("BEGIN IMMEDIATE")
        try:
            # REPLACE drops a row that holds the same slot or the same path
            conn.execute(
                f"INSERT OR REPLACE INTO worktrees ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    stored.project_id,
                    stored.task_group,
                    stored.task_id,
                    stored.stage,
                    stored.path,
                    stored.branch,
                    stored.base_ref,
                    stored.status,
                    stored.created,
                ),
            )
            faults.point("registry.before-commit")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return stored


def forget_worktree(slot: TaskSlot, stage: int | None) -> None:
    """Delete the row of (task, stage), if any."""
    if not registry_path().exists():
        return
    with _writer() as conn:
        conn.execute(
            "DELETE FROM worktrees WHERE project_id = ? AND task_group = ? AND task_id = ? AND ifnull(stage, 0) = ?",
            (slot.project_id, slot.task_group, slot.task_id, stage or 0),
        )


def get_worktree(slot: TaskSlot, stage: int | None) -> WorktreeRow | None:
    return task_worktrees(slot).get(stage)


def task_worktrees(slot: TaskSlot) -> dict[int | None, WorktreeRow]:
    """Every registered worktree of the task, by stage (None: the task worktree).

    One query; an empty dict when there is no registry (nothing is created)."""
    with _reader() as conn:
        if conn is None:
            return {}
        try:
            found = conn.execute(
                f"SELECT {_COLUMNS} FROM worktrees WHERE project_id = ? AND task_group = ? AND task_id = ?",
                (slot.project_id, slot.task_group, slot.task_id),
            ).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):  # a registry whose creator died before the schema
                return {}
            raise
    return {row.stage: row for row in map(_row, found)}


def project_worktrees(project_id: str) -> list[WorktreeRow]:
    """Every registered worktree of a project's tasks (an empty list without a registry)."""
    with _reader() as conn:
        if conn is None:
            return []
        try:
            found = conn.execute(f"SELECT {_COLUMNS} FROM worktrees WHERE project_id = ?", (project_id,)).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return []
            raise
    return [_row(values) for values in found]


def worktree_at(path: Path) -> WorktreeRow | None:
    """The registered worktree whose root is `path`, or None (no registry: nothing is
    created)."""
    with _reader() as conn:
        if conn is None:
            return None
        try:
            found = conn.execute(f"SELECT {_COLUMNS} FROM worktrees WHERE path = ?", (str(path),)).fetchone()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return None
            raise
    return _row(found) if found is not None else None


def anchor(slot: TaskSlot) -> str | None:
    """The task's anchor base commit, or None before its first implementation run."""
    with _reader() as conn:
        if conn is None:
            return None
        try:
            found = conn.execute(
                "SELECT base_commit FROM anchors WHERE project_id = ? AND task_group = ? AND task_id = ?",
                (slot.project_id, slot.task_group, slot.task_id),
            ).fetchone()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return None
            raise
    return found[0] if found else None


def fix_anchor(slot: TaskSlot, commit: str) -> str:
    """Store `commit` as the task's anchor unless one is stored; return the stored one."""
    with _writer() as conn:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                "INSERT OR IGNORE INTO anchors (project_id, task_group, task_id, base_commit, created) VALUES (?, ?, ?, ?, ?)",
                (slot.project_id, slot.task_group, slot.task_id, commit, _now()),
            )
            stored: str = conn.execute(
                "SELECT base_commit FROM anchors WHERE project_id = ? AND task_group = ? AND task_id = ?",
                (slot.project_id, slot.task_group, slot.task_id),
            ).fetchone()[0]
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return stored


@dataclass(frozen=True)
class SessionRow:
    project_id: str
    project_root: str
    task_group: str
    task_id: str
    stage: int
    run_id: str
    session: str
    socket: str
    """The tmux server's `-L` name, '' for the default server."""
    pid: int
    created: str = ""


_SESSION_COLUMNS = "project_id, project_root, task_group, task_id, stage, run_id, session, socket, pid, created"


def register_session(row: SessionRow) -> SessionRow:
    """Insert or replace the session row of (task, stage)."""
    stored = SessionRow(**{**row.__dict__, "created": row.created or _now()})
    with _writer() as conn:
        conn.execute(
            f"INSERT OR REPLACE INTO sessions ({_SESSION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            tuple(stored.__dict__.values()),
        )
    return stored


def session_rows(project_id: str | None = None, slot: TaskSlot | None = None) -> list[SessionRow]:
    """The session rows of a task (`slot`), of a project, or all; by project, task and stage."""
    where, params = "", tuple[str, ...]()
    if slot is not None:
        where, params = (
            " WHERE project_id = ? AND task_group = ? AND task_id = ?",
            (
                slot.project_id,
                slot.task_group,
                slot.task_id,
            ),
        )
    elif project_id is not None:
        where, params = " WHERE project_id = ?", (project_id,)
    with _reader() as conn:
        if conn is None:
            return []
        try:
            found = conn.execute(
                f"SELECT {_SESSION_COLUMNS} FROM sessions{where} ORDER BY project_id, task_group, task_id, stage",
                params,
            ).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):  # made by an okstra before sessions, or its creator died
                return []
            raise
    return [SessionRow(*values) for values in found]
