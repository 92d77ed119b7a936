"""The ledger (`consumers.jsonl`): one JSON row per line, appended, never rewritten.

Readers are tolerant: a torn or malformed line is skipped and reported by its line
number, and every other line still counts. Appends are single O_APPEND writes.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import ConfigDict

from . import clock
from .documents import Doc
from .fsio import append_line
from .jsonl import parse_jsonl

LEDGER_NAME = "consumers.jsonl"
SCHEMA_VERSION = 1

Status = Literal["reserved", "started", "done", "released"]
IN_FLIGHT = ("reserved", "started")


class LedgerRow(Doc):
    # unknown fields written by newer okstra versions or by the lead are kept
    model_config = ConfigDict(extra="allow")

    v: int = SCHEMA_VERSION
    ts: str
    stage: int
    status: Status
    run_id: str | None = None
    impl_task_key: str | None = None
    head_commit: str | None = None
    base_ref: str | None = None
    patch_ids: list[str] | None = None
    change_patch_id: str | None = None
    paths: list[str] | None = None
    replaces: str | None = None
    reason: str | None = None
    host: str | None = None
    pid: int | None = None

    def to_line(self) -> str:
        return json.dumps(self.model_dump(exclude_none=True), separators=(",", ":"), ensure_ascii=False)

    @property
    def when(self) -> datetime:
        return parse_ts(self.ts)


def utc_now() -> datetime:
    return clock.now()


def format_ts(moment: datetime) -> str:
    return clock.iso(moment)


def parse_ts(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        # in UTC: an offset at the very edge of the calendar cannot overflow later
        return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    except (ValueError, OverflowError):
        return datetime.min.replace(tzinfo=UTC)


def new_row(stage: int, status: Status, **fields: object) -> LedgerRow:
    fields.setdefault("host", hostname())
    return LedgerRow(ts=format_ts(utc_now()), stage=stage, status=status, **fields)


@dataclass
class LedgerRead:
    rows: list[LedgerRow] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def read_ledger(path: Path) -> LedgerRead:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return LedgerRead()
    return parse_ledger(data, path.name)


def parse_ledger(data: bytes, source: str = LEDGER_NAME, *, first_line: int = 1) -> LedgerRead:
    rows, warnings = parse_jsonl(data, LedgerRow, source, first_line=first_line)
    return LedgerRead(rows, warnings)


def append_row(path: Path, row: LedgerRow) -> None:
    append_line(path, row.to_line())


def latest_by_stage(rows: list[LedgerRow]) -> dict[int, LedgerRow]:
    latest: dict[int, LedgerRow] = {}
    for row in rows:
        latest[row.stage] = row
    return latest


def latest_done_by_stage(rows: list[LedgerRow]) -> dict[int, LedgerRow]:
    """For each stage its last `done` row in file order: a correction supersedes the row
    it replaces without rewriting history."""
    done: dict[int, LedgerRow] = {}
    for row in rows:
        if row.status == "done":
            done[row.stage] = row
    return done


@dataclass(frozen=True)
class Reservation:
    stage: int
    row: LedgerRow
    """The stage's latest row (reserved or started)."""
    run_id: str | None
    since: datetime
    stale_reason: str | None = None

    @property
    def stale(self) -> bool:
        return self.stale_reason is not None


@dataclass
class Streak:
    """A stage's current run of rows: from the row that brought its latest run id (or
    its first row) on. Indexes are into the rows the streaks were computed from."""

    run_id: str | None
    start: int
    previous_start: int | None = None
    """Where the streak before this one started (`deciding_rows` keeps it so the
    current streak still starts at `start` after the rows between are dropped)."""
    pid_at: int | None = None
    """The streak's last row naming an agent pid."""


def streaks(rows: list[LedgerRow]) -> dict[int, Streak]:
    """Each stage's current streak. A row with a run id other than the streak's starts a
    new one; a row without a run id continues it."""
    current: dict[int, Streak] = {}
    for i, row in enumerate(rows):
        streak = current.get(row.stage)
        if streak is None or (row.run_id and row.run_id != streak.run_id):
            streak = current[row.stage] = Streak(row.run_id, i, streak.start if streak else None)
        if row.pid is not None:
            streak.pid_at = i
    return current


def reservations(
    rows: list[LedgerRow],
    *,
    ttl_hours: float,
    now: datetime | None = None,
    host: str | None = None,
) -> dict[int, Reservation]:
    """Stages in flight: their latest row is `reserved` or `started`.

    A reservation is stale when its streak names an agent pid on this host that is gone,
    or when the stage has had no row for longer than the TTL. Stale ones are reported,
    never dropped: a person releases them. `since` is when the current streak began.
    """
    now = now or utc_now()
    host = host or hostname()
    latest = latest_by_stage(rows)
    result: dict[int, Reservation] = {}
    for stage, streak in streaks(rows).items():
        row = latest[stage]
        if row.status not in IN_FLIGHT:
            continue
        pid = rows[streak.pid_at].pid if streak.pid_at is not None else None
        why = None
        if pid is not None and row.host == host and not pid_alive(pid):
            why = f"agent pid {pid} on {host} is gone"
        elif (now - row.when).total_seconds() > ttl_hours * 3600:
            why = f"no ledger row for {_age(now - row.when)} (TTL {ttl_hours:g} h)"
        result[stage] = Reservation(stage, row, streak.run_id, rows[streak.start].when, why)
    return result


def last_run_id(rows: list[LedgerRow], stage: int) -> str | None:
    for row in reversed(rows):
        if row.stage == stage and row.run_id:
            return row.run_id
    return None


def hostname() -> str:
    return os.uname().nodename


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OverflowError:
        return False
    return True


def _age(delta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400 * 2:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} days"
