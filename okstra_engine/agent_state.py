"""What the agent of an in-flight stage is doing, from the rows its hooks appended to the
run's `agent-events.jsonl` (see `agent_events`), else from whether its process lives.

The one place that says what each hook event means:

| event | state |
|---|---|
| SessionStart (startup, resume) | starting |
| SessionStart (clear: the person cleared the session; compact: mid-turn) | idle; working |
| UserPromptSubmit | working |
| PermissionRequest; Notification `permission_prompt` or `elicitation_dialog` | needs-input |
| PostToolUse (a tool ran: a permission was granted, say) | working, from starting or needs-input only |
| Notification `idle_prompt`; Stop | idle |
| StopFailure (the turn ended on an API error) | failed |
| SessionEnd | exited |

Other events and notification types change nothing. Rows come from every session that
inherited the run's hooks (teammates too): a session waiting for the person makes the
agent `needs-input`; otherwise the lead's session (the first one, or the one a `/clear`
started) says. An agent whose process is gone is `exited` whatever its last row said
(`failed` stays). Without rows (no hooks, or none fired yet): `starting` until the stage
is recorded started or the process is known alive without hooks, then `working`; a
known-dead process is `exited`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from .agent_events import EVENTS_NAME, SETTINGS_NAME
from .run_folder import run_folder_of

if TYPE_CHECKING:
    from .ledger_state import LedgerState
    from .stage_view import StageView
    from .tasks import Task


class AgentState(StrEnum):
    STARTING = "starting"
    WORKING = "working"
    NEEDS_INPUT = "needs-input"
    IDLE = "idle"
    FAILED = "failed"
    EXITED = "exited"


@dataclass(frozen=True)
class AgentView:
    state: AgentState
    since: str | None
    """When it entered this state (the ISO time of the row that moved it)."""
    session_id: str | None = None
    seen: bool = True
    """False when nothing here tells: no hook has spoken and the agent's process is not
    one this machine can look at (another host's, or no pid) — the state is then what
    the ledger suggests, not what the agent does."""

    def to_json(self) -> dict[str, Any]:
        return {"state": str(self.state), "since": self.since, "session_id": self.session_id, "seen": self.seen}


_TAIL = 256 * 1024
"""How much of the end of a long session's rows the state reads (~1,000 rows): agents
call `status` in loops, and a session fires a row per tool call."""

_NEEDS_INPUT_NOTICES = frozenset({"permission_prompt", "elicitation_dialog"})


def event_state(row: dict[str, str], now: AgentState | None) -> AgentState | None:
    """The state a hook row moves its session to from `now`; None: it changes nothing."""
    event = row.get("event")
    if event == "SessionStart":
        source = row.get("source")
        if source == "clear":
            return AgentState.IDLE
        return AgentState.WORKING if source == "compact" else AgentState.STARTING
    if event == "UserPromptSubmit":
        return AgentState.WORKING
    if event == "PermissionRequest":
        return AgentState.NEEDS_INPUT
    if event == "Notification":
        kind = row.get("notification_type")
        if kind in _NEEDS_INPUT_NOTICES:
            return AgentState.NEEDS_INPUT
        return AgentState.IDLE if kind == "idle_prompt" else None
    if event == "PostToolUse":
        # asynchronous, so it may land after the turn's Stop (or its session's end),
        # which it must not undo
        return AgentState.WORKING if now in (None, AgentState.STARTING, AgentState.NEEDS_INPUT) else None
    if event == "Stop":
        return AgentState.IDLE
    if event == "StopFailure":
        return AgentState.FAILED
    return AgentState.EXITED if event == "SessionEnd" else None


def read_events(run_dir: Path, *, tail: int | None = None) -> list[dict[str, str]]:
    """The rows of a run's `agent-events.jsonl`; a torn or foreign line is skipped (the
    file is a hint about a live process, not a record anybody settles on). `tail`: only
    the first row (it names the lead's session) and the rows in the last `tail` bytes."""
    try:
        with (run_dir / EVENTS_NAME).open("rb") as handle:
            data = handle.read() if tail is None else _first_and_last(handle, tail)
    except OSError:
        return []
    rows = []
    for line in data.splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and isinstance(row.get("event"), str) and isinstance(row.get("ts"), str):
            rows.append({k: v for k, v in row.items() if isinstance(v, str)})
    return rows


def _first_and_last(handle: BinaryIO, tail: int) -> bytes:
    first = handle.readline()
    size = os.fstat(handle.fileno()).st_size
    if size - len(first) <= tail:
        return first + handle.read()
    handle.seek(size - tail)
    last = handle.read()
    return first + last[last.find(b"\n") + 1 :]  # from the first whole line on


def fold_events(rows: list[dict[str, str]]) -> AgentView | None:
    """The agent's state after `rows` (in file order); None when no row says anything."""
    sessions: dict[str, AgentView] = {}
    lead: str | None = None
    for row in rows:
        sid = row.get("session_id", "")
        if lead is None or (row["event"] == "SessionStart" and row.get("source") == "clear"):
            lead = sid
        before = sessions.get(sid)
        state = event_state(row, before.state if before else None)
        if state is not None and (before is None or before.state is not state):
            sessions[sid] = AgentView(state, row["ts"], sid or None)
    waiting = [view for view in sessions.values() if view.state is AgentState.NEEDS_INPUT]
    if waiting:
        return max(waiting, key=lambda view: view.since or "")
    return sessions.get(lead) if lead is not None else None


def agent_view(
    run_dir: Path | None, *, alive: bool | None, since: str | None, recorded_started: bool = False
) -> AgentView:
    """The agent of the run in `run_dir`. `alive`: whether its process lives (None: not
    known here: no pid recorded, or another host's); `since`: when its stage was taken."""
    rows = read_events(run_dir, tail=_TAIL) if run_dir is not None else []
    view = fold_events(rows)
    if view is None:
        if alive is False:
            return AgentView(AgentState.EXITED, since)
        hooked = run_dir is not None and (run_dir / SETTINGS_NAME).is_file()
        waiting = hooked if alive else not recorded_started
        return AgentView(AgentState.STARTING if waiting else AgentState.WORKING, since, seen=alive is not None)
    if alive is False and view.state not in (AgentState.EXITED, AgentState.FAILED):
        return AgentView(AgentState.EXITED, rows[-1]["ts"], view.session_id)
    return view


def stage_agents(task: Task, ledger: LedgerState, views: list[StageView]) -> dict[int, AgentView]:
    """The agent of every stage in flight (or stale), by stage."""
    from . import clock
    from .ledger import hostname, pid_alive

    here = hostname()
    agents: dict[int, AgentView] = {}
    for view in views:
        held = ledger.stages.get(view.stage)
        if not view.is_flying or held is None:
            continue
        pid = held.local_pid(here)
        alive = pid_alive(pid) if pid is not None else None
        run_dir = run_folder_of(task.runs_dir, view.run_id)
        since = clock.iso(view.since) if view.since else None
        agents[view.stage] = agent_view(
            run_dir, alive=alive, since=since, recorded_started=held.latest.status == "started"
        )
    return agents
