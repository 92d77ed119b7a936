"""The ledger (`consumers.jsonl`): one JSON row per line, appended, never rewritten.

Readers are tolerant: a torn or malformed line is skipped and reported by its line
number, and every other line still counts. Appends are single O_APPEND writes.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, TypeAdapter, ValidationError

from .documents import Doc
from .errors import describe_validation_error
from .fsio import append_line

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


@cache
def _rows_adapter() -> TypeAdapter[list[LedgerRow]]:
    return TypeAdapter(list[LedgerRow])


def utc_now() -> datetime:
    return datetime.now(UTC)


def format_ts(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


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
    lines = data.split(b"\n")
    numbered = [(no, line) for no, line in enumerate(lines, first_line) if line.strip()]
    # Fast path: one validation call over the whole file as a JSON array. A healthy
    # ledger of 10,000 rows validates in a few ms this way; only a damaged one pays
    # for the line-by-line pass that names the bad lines.
    try:
        rows = _rows_adapter().validate_json(b"[" + b",".join(l for _, l in numbered) + b"]")
    except (ValidationError, ValueError):
        rows = None
    # a line holding `{..},{..}` would pass as two rows: only a count match is trusted
    if rows is not None and len(rows) == len(numbered):
        return LedgerRead(rows)
    result = LedgerRead()
    last = first_line - 1 + (len(lines) if lines[-1].strip() else len(lines) - 1)
    for no, line in numbered:
        try:
            result.rows.append(LedgerRow.model_validate_json(line))
        except ValidationError as exc:
            torn = no == last and not data.endswith(b"\n")
            if _is_json_error(exc):
                why = "torn write (no newline at the end)" if torn else "not valid JSON"
                result.warnings.append(f"{source} line {no}: {why}; skipped")
            else:
                result.warnings.append(describe_validation_error(exc, f"{source} line {no}") + "; skipped")
    return result


def _is_json_error(exc: ValidationError) -> bool:
    return any(err.get("type") == "json_invalid" for err in exc.errors())


def append_row(path: Path, row: LedgerRow) -> None:
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
