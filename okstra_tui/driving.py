"""Driving the app headless (Pilot): waiting for it to settle instead of sleeping.

Shared by the tests, `scripts/screenshots.py` and `benchmarks/tui_bench.py`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
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
            app = pilot.app
            seen = f"screen {app.screen!r}, notes {[n.message for n in app._notifications]}"  # not a UI text
            raise AssertionError(
                f"the app did not reach the expected state in time: {seen} {getattr(app.screen, 'what', '')}"
            )  # not a UI text
        await pilot.pause(0.02)


async def board_ready(pilot: Any) -> Any:
    """Wait until the stage board shows its first load and its reconcile panel; return it."""
    from .screens.board import BoardScreen
    from .widgets.reconcile_panel import ReconcilePanel

    def ready() -> bool:
        screen = pilot.app.screen
        return isinstance(screen, BoardScreen) and screen.loads > 0 and screen.query_one(ReconcilePanel).loaded

    await settle(pilot, ready)
    return pilot.app.screen


def finish_stages(task: Any, stages: list[int], *, release: tuple[int, ...] = ()) -> dict[int, str]:
    """Move the demo on the way a person would with its simulated lead: release what
    another run holds (`release`), then prepare each stage and play its lead to done.
    Returns each stage's done commit. (Tests and screenshots use it to reach a group
    that can be handed off.)"""
    from pathlib import Path

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
