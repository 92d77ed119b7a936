"""One stage's state as status computes it: plain data, no pydantic."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal


class StageState(StrEnum):
    """A stage's state. The one place that says which states count as done and which as
    in flight: callers ask `is_done` / `is_flying`, never list states themselves."""

    DONE = "done"
    NOT_MERGED = "not-merged"
    """Done on its own branch, waiting for its group's handoff."""
    IN_FLIGHT = "in-flight"
    STALE = "stale"
    """Reserved, but its agent is gone or silent past the TTL."""
    READY = "ready"
    BLOCKED = "blocked"

    @property
    def is_done(self) -> bool:
        return self in (StageState.DONE, StageState.NOT_MERGED)

    @property
    def is_flying(self) -> bool:
        return self in (StageState.IN_FLIGHT, StageState.STALE)


BlockedCode = Literal["deps-not-done", "needs-handoff", "needs-merge"]
BLOCKED_CODES: tuple[BlockedCode, ...] = ("deps-not-done", "needs-handoff", "needs-merge")


@dataclass(frozen=True)
class BlockedReason:
    """Why a blocked stage cannot be prepared yet; `code` is one of a closed set:

    - `deps-not-done`: `stages` are its dependencies with no done row yet.
    - `needs-handoff`: its dependencies are done, but it starts from the task worktree
      (it has several) and `stages` of them are not merged there; the handoff of `groups`
      (theirs) merges them.
    - `needs-merge`: the same, but no handoff can come first: one of those groups holds
      this stage or a stage that waits for it, and a group is handed off only whole. They
      are merged by hand (or the plan puts this stage in a later group).
    """

    code: BlockedCode
    stages: tuple[int, ...]
    groups: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"code": self.code, "stages": list(self.stages)}
        if self.code != "deps-not-done":
            doc["groups"] = list(self.groups)
        return doc


@dataclass
class StageView:
    stage: int
    title: str
    depends_on: list[int]
    group: str
    state: StageState
    done_commit: str | None = None
    worktree: str | None = None
    run_id: str | None = None
    since: datetime | None = None
    """When the in-flight run took the stage."""
    stale_reason: str | None = None
    waits_for: list[int] = field(default_factory=list)
    """Dependencies not yet done (blocked stages)."""
    empty: bool = False
    """Recorded done with `--empty`: the stage changes nothing (done at its base)."""
    reason: BlockedReason | None = None
    """Why it is blocked (None unless it is)."""

    @property
    def is_done(self) -> bool:
        return self.state.is_done

    @property
    def is_flying(self) -> bool:
        return self.state.is_flying

    def to_json(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "title": self.title,
            "depends_on": self.depends_on,
            "group": self.group,
            "state": str(self.state),
            "done_commit": self.done_commit,
            "worktree": self.worktree,
            "run_id": self.run_id,
            "stale_reason": self.stale_reason,
            "waits_for": self.waits_for,
            "empty": self.empty,
            "reason": self.reason.to_json() if self.reason else None,
        }


def first_ready(stages: list[StageView]) -> int | None:
    """What `--stage auto` picks: the lowest ready stage."""
    return next((s.stage for s in stages if s.state is StageState.READY), None)
