"""Regenerate the SVG screenshots in `screenshots/` from the demo project.

    python scripts/screenshots.py [--out screenshots]

The demo is built at a fixed moment in a fixed place (so commits, run ids, ages and
paths come out the same every time), and each screen is driven headless with Pilot and
saved with `App.save_screenshot`. What the engine stamps with the real clock while the
screens run (run ids, trash stamps, the dates of the commits the simulated lead and the
handoff make) is pinned to that moment too.

Each SVG is then made portable: a text run that starts with spaces is moved right past
them. Browsers draw those spaces, but librsvg (rsvg-convert, many image viewers) drops
them, which glues words together ("● readyevery dependency done").
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from okstra_engine.demo import DemoInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

NOW = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)
SIZE = (120, 36)
DEMO_DIR = Path("/tmp/okstra-screenshots-demo")


async def shoot(
    out: Path,
    name: str,
    steps: Callable[..., Awaitable[None]],
    *,
    board: bool = True,
    minutes: float = 1,
    lang: str = "en",
) -> Path:
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
    path.write_text(portable_svg(path.read_text(encoding="utf-8")), encoding="utf-8")
    print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return path


# rich's SVG export: one <text> per run of one style, each at its own x; a cell is
# 0.61 × the 20px font wide
CELL = 12.2
_LEADING = re.compile(
    r'(<text class="[^"]*" x=")([0-9.]+)(" y="[0-9.]+" textLength=")([0-9.]+)("[^>]*>)((?:&#160;)+)([^<]*)(</text>)'
)


def portable_svg(svg: str) -> str:
    """Start every text run at its first visible character (see the module docstring)."""

    def shift(m: re.Match[str]) -> str:
        spaces = m.group(6).count("&#160;")
        if not m.group(7):  # only spaces: the background rect already draws them
            return ""
        x = float(m.group(2)) + spaces * CELL
        length = float(m.group(4)) - spaces * CELL
        return f"{m.group(1)}{x:.1f}{m.group(3)}{length:.1f}{m.group(5)}{m.group(7)}{m.group(8)}"

    return _LEADING.sub(shift, svg)


async def main(out: Path) -> None:
    from okstra_engine.slugs import TaskRef
    from okstra_tui.screens.confirm import ConfirmModal
    from okstra_tui.screens.diff import DiffScreen
    from okstra_tui.screens.handoff import HandoffScreen
    from okstra_tui.screens.help import HelpScreen
    from okstra_tui.screens.phases import PhaseScreen
    from okstra_tui.screens.plan import PlanScreen
    from okstra_tui.screens.prepared import PreparedScreen
    from okstra_tui.screens.preview import PreviewScreen
    from okstra_tui.screens.quarantine import QuarantineDialog
    from okstra_tui.screens.run_options import RunOptionsScreen
    from okstra_tui.screens.runs import RunsScreen
    from okstra_tui.screens.tasks import TasksScreen
    from tests.tui.driving import NEEDS_INPUT, a_plan_to_review, board_ready, demo_runs, hooks_say, settle

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
        await settle(
            pilot,
            lambda: isinstance(pilot.app.screen, DiffScreen) and pilot.app.screen.query_one("DiffView").line_count,
        )

    async def run_options(pilot) -> None:
        await board_ready(pilot)
        await pilot.press("enter")  # stage 4, the one auto picks
        await settle(
            pilot, lambda: isinstance(pilot.app.screen, RunOptionsScreen) and pilot.app.screen.context is not None
        )

    async def quarantine(pilot) -> None:
        await run_options(pilot)
        await pilot.press("ctrl+n")
        await settle(pilot, lambda: isinstance(pilot.app.screen, QuarantineDialog))

    async def preview(pilot) -> None:
        await run_options(pilot)
        await pilot.press("ctrl+n")
        await settle(pilot, lambda: isinstance(pilot.app.screen, PreviewScreen) and pilot.app.screen.busy is None)

    async def handoff_plan(pilot) -> None:
        board = await board_ready(pilot)
        board.query_one("#stages").select_stage(3)
        await pilot.press("h")
        await settle(pilot, lambda: isinstance(pilot.app.screen, HandoffScreen) and pilot.app.screen.plan is not None)

    async def handoff_result(pilot) -> None:
        await handoff_plan(pilot)
        await pilot.press("y")
        await settle(pilot, lambda: pilot.app.screen.result is not None, timeout=30)
        pilot.app.clear_notifications()  # the toast would cover the result
        await pilot.pause()

    async def select_stage_4(pilot) -> None:
        board = await board_ready(pilot)
        board.query_one("#stages").select_stage(4)
        await settle(pilot)

    async def prepared(pilot) -> None:
        await board_ready(pilot)
        await pilot.press("enter")  # stage 5, ready once group B is handed off
        await settle(
            pilot, lambda: isinstance(pilot.app.screen, RunOptionsScreen) and pilot.app.screen.context is not None
        )
        pilot.app.screen.query_one("#worker-codex").value = True
        await pilot.press("ctrl+n")
        await settle(pilot, lambda: isinstance(pilot.app.screen, PreviewScreen) and pilot.app.screen.busy is None)
        await pilot.press("enter")
        await settle(pilot, lambda: isinstance(pilot.app.screen, PreparedScreen), timeout=30)

    async def plan_review(pilot) -> None:
        await task_list(pilot)
        pilot.app.open_task(DEMO_DIR / "shop", TaskRef.parse("demo/refunds"))
        await settle(pilot, lambda: isinstance(pilot.app.screen, PlanScreen) and pilot.app.screen.review is not None)

    async def run_history(pilot) -> None:
        await board_ready(pilot)
        pilot.app.open_runs(DEMO_DIR / "shop", TaskRef.parse("demo/checkout"), None)
        await settle(pilot, lambda: isinstance(pilot.app.screen, RunsScreen) and pilot.app.screen.runs)
        screen = pilot.app.screen
        screen.query_one("#runs").move_cursor(row=next(i for i, r in enumerate(screen.runs) if r.stage == 2))
        await pilot.press("enter")
        await settle(pilot, lambda: screen.shown_file is not None)

    await shoot(out, "task-list", task_list, board=False)
    await shoot(out, "phase-picker", phase_picker, board=False)
    a_plan_to_review(str(DEMO_DIR / "shop"))
    demo_runs(str(DEMO_DIR / "shop"), "demo/checkout", demo_run_ids())
    await shoot(out, "plan-review", plan_review, board=False)
    await shoot(out, "run-history", run_history)
    await shoot(out, "board-concurrent-stages", board_ready)
    await shoot(out, "board-reconcile-suggestion", reconcile)
    await shoot(out, "release-stale-reservation", release, minutes=3 * 24 * 60)
    await shoot(out, "help", help_screen)
    await shoot(out, "stage-diff", diff)
    await shoot(out, "run-options", run_options)
    # the engine reads the real clock: for it, stage 3 (in flight on the board's clock)
    # is stale by the TTL unless the TTL is raised. Stage 3 live: a run beside it has no
    # team; stage 3 stale: a team run, and the team an earlier attempt left is in its way
    with settings_file("stale_ttl_hours = 1000000\n"):
        await shoot(out, "run-preview-concurrent", preview)
    await shoot(out, "quarantine-dialog", quarantine)
    # then the story moves on: stage 3 released and redone, stage 4 done (the simulated
    # lead), so group B can be handed off
    finish_group_b()
    await shoot(out, "handoff-plan", handoff_plan)
    await shoot(out, "handoff-result", handoff_result)
    # an agent command that is not installed here: okstra shows the command to run
    missing = "claude" if shutil.which("claude") is None else "okstra-demo-no-such-agent"
    with settings_file(f'agent_command = ["{missing}", "{{prompt}}"]\n'):
        await shoot(out, "run-prepared-no-agent", prepared)
    # a fresh demo: stage 3's agent and stage 4's at work, then stage 4's asking the person
    four = two_agents_at_work(build())
    await shoot(out, "board-two-agents", select_stage_4)
    hooks_say(four, *NEEDS_INPUT)
    await shoot(out, "board-agent-needs-input", select_stage_4)


@contextmanager
def settings_file(extra: str) -> Iterator[None]:
    """The demo's settings with the lines of `extra` in, for the block (a key `extra`
    sets replaces the demo's own line of that key)."""
    from okstra_engine.config import settings

    path = Path(os.environ["OKSTRA_CONFIG"])
    saved = path.read_text(encoding="utf-8")
    keys = {line.split("=", 1)[0].strip() for line in extra.splitlines() if "=" in line}
    kept = [line for line in saved.splitlines(keepends=True) if line.split("=", 1)[0].strip() not in keys]
    path.write_text("".join(kept) + extra, encoding="utf-8")
    settings.cache_clear()
    try:
        yield
    finally:
        path.write_text(saved, encoding="utf-8")
        settings.cache_clear()


def demo_run_ids() -> dict[str, str]:
    from okstra_engine.demo import load_demo

    info = load_demo(DEMO_DIR)
    assert info is not None
    return info.run_ids


def finish_group_b() -> None:
    from okstra_engine.projects import load_project
    from okstra_engine.slugs import TaskRef
    from okstra_engine.tasks import load_task
    from tests.tui.driving import finish_stages

    finish_stages(load_task(load_project(DEMO_DIR / "shop"), TaskRef.parse("demo/checkout")), [3, 4], release=(3,))


def two_agents_at_work(info: DemoInfo) -> Path:
    from okstra_engine import clock
    from okstra_engine.projects import load_project
    from okstra_engine.slugs import TaskRef
    from okstra_engine.tasks import load_task
    from tests.tui.driving import two_agents

    task = load_task(load_project(DEMO_DIR / "shop"), TaskRef.parse("demo/checkout"))
    with clock.pinned(time=NOW, stamps=NOW, token="5a0b1c"):
        return two_agents(task, info.run_ids)


def pin_the_clock() -> None:
    """Run ids, trash stamps and the dates of new commits: all at NOW (see the docstring)."""
    import okstra_engine.git
    from okstra_engine import clock

    clock.pin(stamps=NOW, token="5a0b1c")
    plain_env = okstra_engine.git.git_env
    stamp = f"@{int(NOW.timestamp())} +0000"
    okstra_engine.git.git_env = lambda: {
        **plain_env(),
        "GIT_AUTHOR_DATE": stamp,
        "GIT_COMMITTER_DATE": stamp,
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
    }


def build() -> DemoInfo:
    from okstra_engine.config import settings
    from okstra_engine.demo import build_demo

    shutil.rmtree(DEMO_DIR, ignore_errors=True)
    for key in ("OKSTRA_HOME", "OKSTRA_CONFIG", "CLAUDE_CONFIG_DIR"):
        os.environ.pop(key, None)
    pin_the_clock()
    info = build_demo(DEMO_DIR, now=NOW)
    os.environ.update(info.env)
    os.environ["OKSTRA_LANG"] = "en"
    settings.cache_clear()
    return info


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
