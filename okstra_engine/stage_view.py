"""One stage's state as status computes it: plain data, no pydantic, so the terminal UI
can receive a computed board (`okstra_tui.first_board`) before it loads the engine."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

State = Literal["done", "not-merged", "in-flight", "stale", "ready", "blocked"]


@dataclass
class StageView:
    stage: int
    title: str
    depends_on: list[int]
    group: str
    state: State
    done_commit: str | None = None
    worktree: str | None = None
    run_id: str | None = None
    since: datetime | None = None
    """When the in-flight run took the stage."""
    stale_reason: str | None = None
    waits_for: list[int] = field(default_factory=list)
    """Dependencies not yet done (blocked stages)."""

    def to_json(self) -> dict:
        return {
            "stage": self.stage,
            "title": self.title,
            "depends_on": self.depends_on,
            "group": self.group,
            "state": self.state,
            "done_commit": self.done_commit,
            "worktree": self.worktree,
            "run_id": self.run_id,
            "stale_reason": self.stale_reason,
            "waits_for": self.waits_for,
        }


def first_ready(stages: list[StageView]) -> int | None:
    """What `--stage auto` picks: the lowest ready stage."""
    return next((s.stage for s in stages if s.state == "ready"), None)
