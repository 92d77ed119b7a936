"""Regenerate the SVG screenshots in `screenshots/` from the demo project.

    python scripts/screenshots.py [--out screenshots]

The demo is built at a fixed moment in a fixed place (so commits, run ids, ages and
paths come out the same every time), and each screen is driven headless with Pilot and
saved with `App.save_screenshot`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

NOW = datetime(2025, 3, 14, 9, 30, tzinfo=timezone.utc)
SIZE = (120, 36)
DEMO_DIR = Path("/tmp/okstra-screenshots-demo")


async def shoot(out: Path, name: str, steps: Callable[..., Awaitable[None]], *, board: bool = True, minutes: float = 1, lang: str = "en") -> Path:
    from okstra_engine.slugs import TaskRef
    from okstra_tui.app import OkstraApp

    moment = NOW + timedelta(minutes=minutes)
    app = OkstraApp(
        project=DEMO_DIR / "shop",
        task=TaskRef.parse("demo/checkout") if board else None,
        lang=lang,
        clock=lambda: moment,
    )
    async with app.run_test(size=SIZE) as pilot:
        await steps(pilot)
        await pilot.pause()
        path = Path(app.save_screenshot(f"{name}.svg", str(out)))
    print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return path


async def main(out: Path) -> None:
    from okstra_tui.driving import board_ready, settle
    from okstra_tui.screens.confirm import ConfirmModal
    from okstra_tui.screens.diff import DiffScreen
    from okstra_tui.screens.help import HelpScreen
    from okstra_tui.screens.phases import PhaseScreen
    from okstra_tui.screens.tasks import TasksScreen

    async def task_list(pilot) -> None:
        await settle(pilot, lambda: isinstance(pilot.app.screen, TasksScreen) and pilot.app.screen.summaries)

    async def phase_picker(pilot) -> None:
        await task_list(pilot)
        await pilot.press("enter")
        await settle(pilot, lambda: isinstance(pilot.app.screen, PhaseScreen) and pilot.app.screen.choices)

    async def reconcile(pilot) -> None:
        board = await board_ready(pilot)
        board.query_one("#stages").select_stage(2)
        await settle(pilot)

    async def release(pilot) -> None:
        board = await board_ready(pilot)
        board.query_one("#stages").select_stage(3)
        await pilot.press("x")
        await settle(pilot, lambda: isinstance(pilot.app.screen, ConfirmModal))

    async def help_screen(pilot) -> None:
        await board_ready(pilot)
        await pilot.press("question_mark")
        await settle(pilot, lambda: isinstance(pilot.app.screen, HelpScreen))

    async def diff(pilot) -> None:
        board = await board_ready(pilot)
        board.query_one("#stages").select_stage(2)
        await pilot.press("d")
        await settle(pilot, lambda: isinstance(pilot.app.screen, DiffScreen) and pilot.app.screen.query_one("DiffView").line_count)

    await shoot(out, "task-list", task_list, board=False)
    await shoot(out, "phase-picker", phase_picker, board=False)
    await shoot(out, "board-concurrent-stages", board_ready)
    await shoot(out, "board-reconcile-suggestion", reconcile)
    await shoot(out, "release-stale-reservation", release, minutes=3 * 24 * 60)
    await shoot(out, "help", help_screen)
    await shoot(out, "stage-diff", diff)


def build() -> None:
    from okstra_engine.config import settings
    from okstra_engine.demo import build_demo

    shutil.rmtree(DEMO_DIR, ignore_errors=True)
    for key in ("OKSTRA_HOME", "OKSTRA_CONFIG", "CLAUDE_CONFIG_DIR"):
        os.environ.pop(key, None)
    info = build_demo(DEMO_DIR, now=NOW)
    os.environ.update(info.env)
    os.environ["OKSTRA_LANG"] = "en"
    settings.cache_clear()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "screenshots")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    build()
    try:
        asyncio.run(main(args.out))
    finally:
        shutil.rmtree(DEMO_DIR, ignore_errors=True)
