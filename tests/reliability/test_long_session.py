"""A long session: the TUI open on the demo's stage board while another process appends
2,000 ledger rows and makes 100 commits. The app must keep up without leaking: child
processes and open file descriptors stay bounded, memory grows by less than 20 MB, and
at the end the board's model is the final ledger (every update was taken in).

Measured in this process (the app runs here, under `run_test`): open descriptors from
/proc/self/fd, child processes from /proc/self/task/*/children (the writer excluded),
resident memory from /proc/self/statm, sampled every 50 ms while the writer runs.
(tracemalloc is not used: its own bookkeeping would inflate the RSS it is compared with.)
"""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

ROWS = 2000
COMMITS = 100
WRITE_SECONDS = 8.0
ROOT = Path(__file__).resolve().parents[2]
SIZE = (120, 36)


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _children(exclude: int) -> set[int]:
    found: set[int] = set()
    for tid in os.listdir("/proc/self/task"):
        try:
            text = Path(f"/proc/self/task/{tid}/children").read_text()
        except OSError:
            continue
        found.update(int(p) for p in text.split())
    found.discard(exclude)
    return found


def _rss() -> int:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
def test_board_open_through_2000_rows_and_100_commits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from okstra_engine.config import settings
    from okstra_engine.demo import build_demo
    from okstra_engine.ledger import LEDGER_NAME, read_ledger
    from okstra_engine.ledger_state import LedgerState
    from okstra_engine.plans import plan_run_root
    from okstra_engine.projects import load_project
    from okstra_engine.slugs import TaskRef
    from okstra_engine.status import task_status
    from okstra_engine.tasks import load_task
    from okstra_engine.worktrees import stage_target, task_target
    from okstra_tui.app import OkstraApp
    from okstra_tui.screens.board import BoardScreen
    from tests.tui.driving import Seen, board_ready, settle

    info = build_demo(tmp_path / "demo")
    for key, value in info.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("OKSTRA_LANG", "en")
    monkeypatch.chdir(tmp_path)
    settings.cache_clear()
    task = load_task(load_project(Path(info.project_root)), TaskRef.parse(info.task))
    ledger = plan_run_root(task).dir / LEDGER_NAME
    figures: dict[str, object] = {}

    async def session() -> None:
        app = OkstraApp(project=Path(info.project_root), task=TaskRef.parse(info.task), lang="en")
        loads = Seen(BoardScreen.Loaded)
        async with app.run_test(size=SIZE, message_hook=loads) as pilot:
            board = await board_ready(pilot)
            await pilot.pause(1.0)  # warm: the first refreshes, caches, the reconcile panel
            await app.workers.wait_for_complete()
            gc.collect()
            base_fds, base_rss, base_loads = _fds(), _rss(), len(loads)
            env = os.environ.copy()
            env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
            writer = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.reliability.long_writer",
                    str(ledger),
                    task.key,
                    str(task_target(task).path),
                    str(stage_target(task, 3).path),
                    str(ROWS),
                    str(COMMITS),
                    str(WRITE_SECONDS),
                ],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            max_fds = max_children = samples = 0
            start = time.monotonic()
            while writer.poll() is None:
                await pilot.pause(0.05)
                max_fds = max(max_fds, _fds())
                max_children = max(max_children, len(_children(writer.pid)))
                samples += 1
                assert time.monotonic() - start < 120, "the writer is stuck"
            out, err = writer.communicate()
            assert writer.returncode == 0, err
            final = read_ledger(ledger)
            assert len(final.rows) >= ROWS and final.warnings == []
            want = task_status(task)
            state = LedgerState.of(final.rows)

            def caught_up() -> bool:
                data = board.data
                return data.status.ledger == state and {v.stage: v.state for v in data.stages} == {
                    v.stage: v.state for v in want.stages
                }

            await settle(pilot, caught_up, timeout=30)
            await pilot.pause(0.5)
            await app.workers.wait_for_complete()
            gc.collect()
            data = board.data
            # the board holds the ledger's state, not its 2,000 rows
            assert data.status.ledger == state
            assert data.last_status[4] == "reserved" and data.views[4].run_id.endswith("-final")
            assert data.views[3].is_flying
            figures.update(
                rows=len(final.rows),
                commits=int(out.split()[1]),
                seconds=round(time.monotonic() - start, 1),
                loads=len(loads) - base_loads,
                samples=samples,
                fds=(base_fds, max_fds, _fds()),
                children_max=max_children,
                children_end=len(_children(writer.pid)),
                rss_mb=(round(base_rss / 2**20, 1), round(_rss() / 2**20, 1)),
            )

    asyncio.run(session())
    base_fds, max_fds, end_fds = figures["fds"]
    base_mb, end_mb = figures["rss_mb"]
    print(f"\nlong session: {figures}")
    assert figures["commits"] == COMMITS
    assert figures["loads"] >= 10, "the board did not keep refreshing while the writer ran"
    assert max_fds - base_fds <= 16 and end_fds - base_fds <= 4, figures
    assert figures["children_max"] <= 4 and figures["children_end"] == 0, figures
    # the growth is mostly the allocator's arenas, which RSS counts and never returns
    assert end_mb - base_mb < 20, figures
