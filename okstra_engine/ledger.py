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
from typing import Any, Literal

from pydantic import ConfigDict

from . import clock
from .documents import Doc
from .fsio import append_line
from .jsonl import parse_jsonl
from .run_folder import LEDGER_NAME

SCHEMA_VERSION = 1

Status = Literal["reserved", "started", "done", "released", "reopened"]
"""`reopened`: a stage recorded done by mistake is not done any more (its done rows stay)."""
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
    """A correction: the done commit this row supersedes (a reopen: the one it takes back)."""
    reason: str | None = None
    empty: bool | None = None
    """A done row of a stage that changes nothing: its commit is the stage's base."""
    host: str | None = None
    pid: int | None = None
    machine: str | None = None
    """The okstra home that wrote the row (`share.machine`); rows of other machines come
    in through a shared task's sync, exactly as they were written."""

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


def new_row(stage: int, status: Status, **fields: Any) -> LedgerRow:
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
    """Append `row`, naming this okstra home's machine when it names none (stamped here,
    not when a row is made: status makes rows it never writes, and makes no machine id)."""
    if row.machine is None:
        from .share.machine import machine_id_if_any

        row.machine = machine_id_if_any()
    append_line(path, row.to_line())


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
