"""`handoffs.jsonl` beside the plan: one row per successful handoff of a group, what
landed and where. Appended, never rewritten; a torn or invalid line is skipped and named."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ConfigDict

from ..documents import Doc
from ..fsio import append_line
from ..jsonl import parse_jsonl

HANDOFFS_NAME = "handoffs.jsonl"
SCHEMA_VERSION = 1


class LandedStage(Doc):
    """One stage of a recorded handoff."""

    model_config = ConfigDict(extra="allow")

    stage: int
    done_commit: str | None = None
    kind: str
    """How its work stood against the task HEAD before this handoff (`not-merged`, …)."""
    merged: bool = False
    """Merged by this handoff."""
    commit: str | None = None
    """Where its work is in the task history: okstra's merge commit, or the matching commit."""
    replaced: str | None = None
    """The done commit auto-reconcile replaced during this handoff."""


class HandoffRow(Doc):
    """A line of `handoffs.jsonl`: one successful handoff of one group."""

    model_config = ConfigDict(extra="allow")

    v: int = SCHEMA_VERSION
    ts: str
    task: str
    group: str
    stages: list[int]
    merged: list[int] = []
    already_merged: list[int] = []
    head_before: str
    head_after: str
    landed: list[LandedStage] = []
    host: str | None = None

    def to_line(self) -> str:
        return json.dumps(self.model_dump(mode="json", exclude_none=True), separators=(",", ":"), ensure_ascii=False)


@dataclass
class HandoffsRead:
    rows: list[HandoffRow] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def handed_off(self) -> list[str]:
        """Groups with at least one recorded handoff, in the order first recorded."""
        return list(dict.fromkeys(row.group for row in self.rows))


def handoffs_path(plan_dir: Path) -> Path:
    return plan_dir / HANDOFFS_NAME


def read_handoffs(plan_dir: Path) -> HandoffsRead:
    """Every valid row of `handoffs.jsonl`; a torn or invalid line is skipped and named."""
    try:
        data = handoffs_path(plan_dir).read_bytes()
    except FileNotFoundError:
        return HandoffsRead()
    rows, warnings = parse_jsonl(data, HandoffRow, HANDOFFS_NAME)
    return HandoffsRead(rows, warnings)


def append_handoff(plan_dir: Path, row: HandoffRow) -> None:
    """One O_APPEND write of one line, then fsync (`fsio.append_line`)."""
    append_line(handoffs_path(plan_dir), row.to_line())
