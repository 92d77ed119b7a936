"""Driving the app headless (Pilot) through its public state: waiting for it to settle
instead of sleeping, the notifications it showed, the text a widget shows.

Shared by the tests, `scripts/screenshots.py` and `benchmarks/tui_bench.py`, which put
the repository root on `sys.path` and import it as `tests.tui.driving` (it is not part of
the shipped packages).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any


async def settle(pilot: Any, until: Callable[[], Any] = lambda: True, *, timeout: float = 10.0) -> None:
    """Let workers finish and messages land until `until()` holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        if until():
            return
        if loop.time() > deadline:
            screen = pilot.app.screen
            raise AssertionError(
                f"the app did not reach the expected state in time: screen {screen!r} {getattr(screen, 'what', '')}"
            )
        await pilot.pause(0.02)


def reconcile_answered(board: Any) -> bool:
    """The board's reconcile panel shows its answer, no longer that it is checking."""
    from okstra_tui.i18n import t

    panel = board.query_one("#reconcile")
    return panel.query_one("#reconcile-list").display or text_of(panel.query_one("#reconcile-empty")) != t(
        "board.reconcile.checking"
    )


async def board_ready(pilot: Any) -> Any:
    """Wait until the stage board shows its data and its reconcile panel's answer; return it."""
    from okstra_tui.screens.board import BoardScreen

    def ready() -> bool:
        screen = pilot.app.screen
        return isinstance(screen, BoardScreen) and screen.data is not None and reconcile_answered(screen)

    await settle(pilot, ready)
    return pilot.app.screen


class Seen:
    """The messages of one kind the app handled, in order: pass it as
    `app.run_test(message_hook=seen)`."""

    def __init__(self, kind: type) -> None:
        self.kind = kind
        self.messages: list[Any] = []

    def __call__(self, message: Any) -> None:
        if isinstance(message, self.kind):
            self.messages.append(message)

    def __len__(self) -> int:
        return len(self.messages)


class Notes(Seen):
    """The texts of the notifications the app showed."""

    def __init__(self) -> None:
        from textual.notifications import Notify

        super().__init__(Notify)

    @property
    def texts(self) -> list[str]:
        return [message.notification.message for message in self.messages]


def text_of(widget: Any) -> str:
    """The plain text a Static shows, whatever it was given (str, Text, Content, rich)."""
    import io

    from rich.console import Console
    from rich.text import Text
    from textual.content import Content

    content = widget.content
    if isinstance(content, (str, Text, Content)):
        return str(content) if not isinstance(content, Text) else content.plain
    console = Console(width=400, file=io.StringIO(), color_system=None, record=True)
    console.print(content)
    return console.export_text()


def finish_stages(task: Any, stages: list[int], *, release: tuple[int, ...] = ()) -> dict[int, str]:
    """Move the demo on the way a person would with its simulated lead: release what
    another run holds (`release`), then prepare each stage and play its lead to done.
    Returns each stage's done commit. (Tests and screenshots use it to reach a group
    that can be handed off.)"""
    from okstra_engine import sim_lead
    from okstra_engine.prepare import PrepareOptions, prepare
    from okstra_engine.record import record

    for n in release:
        record(task, n, "released")
    done = {}
    for n in stages:
        prepared = prepare(task, PrepareOptions(task_type="implementation", stage=str(n)))
        done[n] = sim_lead.run(Path(prepared.manifest.run_dir), say=lambda text: None)
    return done


REFUNDS_PLAN = """---
approved: false
---
# Plan: refunds

Customers ask for their money back from the order page; support staff approve or refuse.

## Approach

- A `Refund` model beside `Order`, with its own states (*requested*, *approved*, *paid*).
- The payment provider's refund call behind the existing gateway interface.
- Emails reuse the order templates.

## Stage Map
| Stage | Title                | Depends on | Group |
|-------|----------------------|------------|-------|
| 1     | Refund model         | -          | A     |
| 2     | Gateway refund call  | -          | A     |
| 3     | Request from order   | 1          | B     |
| 4     | Staff approval queue | 1, 2       | B     |
| 5     | Refund emails        | 3, 4       | C     |

## Risks

A refund paid twice: the gateway call is idempotent by refund id.
"""


def a_plan_to_review(project_root: str, plan: str = REFUNDS_PLAN) -> Any:
    """Task `demo/refunds` of the demo, whose plan (a planning run with a fixed id, as
    its lead left it) waits for approval. Returns the task."""
    from okstra_engine.projects import load_project
    from okstra_engine.slugs import TaskRef
    from okstra_engine.tasks import new_task
    from tests.support import a_run

    task = new_task(load_project(Path(project_root)), TaskRef.parse("demo/refunds"), title="Refunds")
    a_run(task, "20250314T091000Z-planning-7e1f0a", "planning", {"plan.md": plan})
    return task


def demo_runs(project_root: str, task_ref: str, run_ids: dict[str, str]) -> None:
    """Run folders for the demo's stage runs (`run_ids`: `s1` → run id), as their leads
    left them: a prompt each, a report from stages 1 and 2. The demo has their ledger
    rows only."""
    from okstra_engine.plans import plan_run_root
    from okstra_engine.projects import load_project
    from okstra_engine.slugs import TaskRef
    from okstra_engine.tasks import load_task
    from tests.support import a_run

    task = load_task(load_project(Path(project_root)), TaskRef.parse(task_ref))
    plan = plan_run_root(task)
    assert plan is not None
    agent = {"name": "claude", "version": "2.1.180", "teams": "implicit"}
    for key, run_id in sorted(run_ids.items()):
        stage = int(key[1:])
        files = {"prompt.md": f"# Implementation of stage {stage}\n\nYou are the lead of run `{run_id}`.\n"}
        if stage in (1, 2):
            files["report.md"] = (
                f"# Stage {stage} report\n\n**Done**, QA green.\n\n- tests added\n- [notes](file:///etc/passwd)\n"
            )
        a_run(task, run_id, "implementation", files, stage=stage, plan_run=str(plan.dir), agent=agent)


def hooks_say(run_dir: Path, *events: str, ts: str = "2025-03-14T09:30:00Z", **fields: str) -> None:
    """Append the rows an agent's hooks write for `events` (a hook event, or
    `Notification:TYPE`) to the run's events file, as `okstra agent-event` would."""
    import hashlib
    import json
    import uuid

    from okstra_engine.agent_events import EVENTS_NAME

    session = str(uuid.UUID(hashlib.md5(run_dir.name.encode()).hexdigest()))  # the same on every run
    run_dir.mkdir(parents=True, exist_ok=True)
    with (run_dir / EVENTS_NAME).open("a", encoding="utf-8") as handle:
        for event in events:
            name, _, kind = event.partition(":")
            row = {"ts": ts, "event": name, "session_id": session, **fields}
            if kind:
                row["notification_type"] = kind
            handle.write(json.dumps(row) + "\n")


def two_agents(task: Any, run_ids: dict[str, str]) -> Path:
    """The demo with two agents at work: stage 3's (on another machine) and stage 4's,
    prepared on the demo's `laptop`. Stage 4's run folder."""
    from unittest import mock

    import okstra_engine.ledger
    from okstra_engine.prepare import PrepareOptions, prepare

    with mock.patch.object(okstra_engine.ledger, "hostname", lambda: "laptop"):
        prepared = prepare(task, PrepareOptions("implementation", stage="4"))
    hooks_say(task.runs_dir / run_ids["s3"], "SessionStart", "UserPromptSubmit", ts="2025-03-14T09:17:00Z")
    four = Path(prepared.manifest.run_dir)
    hooks_say(four, "SessionStart", "UserPromptSubmit", ts="2025-03-14T09:29:00Z")
    return four


NEEDS_INPUT = ("Notification:permission_prompt",)
"""What stage 4's hooks say when its agent asks the person (after `two_agents`)."""
