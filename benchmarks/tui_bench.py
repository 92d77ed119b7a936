"""The TUI: start to the painted stage board, and board refresh after a ledger append.

    python benchmarks/tui_bench.py [--runs N] [--quick]

1. Start-up, as a ratio to its floor: `okstra --project DEMO --task demo/checkout` (the
   console script's `main`; the benchmark's own code, not okstra's, notes the times) in
   a real terminal (a pty, 120x36), from spawning the process until the board screen's
   first frame (its loading state) is painted, and until its first frame with data is;
   against a bare Textual app with one Static until its first frame. Then the same until
   each process has exited (both pay Textual's ~150 ms shutdown), for comparison with
   the other benchmarks' whole-process times. Both run as fresh processes, interleaved;
   the median of each counts. Goal for the loading state ≤1.3x.
2. Refresh latency: the board open (headless, default 0.25 s poll), another writer appends
   a ledger row; milliseconds until the board has reloaded and painted a frame with it,
   without a key pressed. Median and worst of the appends. Goal ≤250 ms.
3. A board of 200 stages and 20,000 ledger rows (Pilot): a key to the repainted
   selection (goal ≤50 ms), refresh after an append (≤250 ms), and the peak RSS.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import pty
import random
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from _common import HEADER, bench_args, bench_repo, bench_task, report, run_env  # noqa: E402

START_GOAL = 1.3  # the board's loading state (issue 14)
LATENCY_GOAL_MS = 250.0  # issue 8 (issue 7 asked ≤500 ms)
SIZE = (120, 36)

BARE = """
import sys, time
from pathlib import Path

from textual.app import App
from textual.widgets import Static


class Bare(App):
    def compose(self):
        yield Static("okstra")

    def on_mount(self):
        self.call_after_refresh(self.painted)

    def painted(self):
        Path(sys.argv[1]).write_text(repr(time.time()))
        self.exit()


Bare().run()
"""

OKSTRA = """
import sys, time
from pathlib import Path

from okstra_tui.screens.board import BoardScreen

marks = []


def note(screen, last=False):
    marks.append(repr(time.time()))
    if last:
        Path(sys.argv[1]).write_text(" ".join(marks))
        screen.app.exit()


mount = BoardScreen.on_mount


def on_mount(self):  # the frame after it is the screen's first: its loading state
    mount(self)
    self.call_after_refresh(note, self)


def watch_loaded(self, loaded):  # the first read is shown: the frame after it has the data
    if loaded:
        self.call_after_refresh(note, self, True)


BoardScreen.on_mount = on_mount
BoardScreen.watch_loaded = watch_loaded

from okstra_tui.entry import main

sys.exit(main(["--project", sys.argv[2], "--task", "demo/checkout"]))
"""


def in_terminal(code: list[str], env: dict[str, str]) -> tuple[list[float], float]:
    """Seconds from spawning `code` in a fresh 120x36 pty until each moment it notes (in
    the file named by its first argument: its first frame painted, ...), and until it
    exited."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", SIZE[1], SIZE[0], 0, 0))

    def drain() -> None:  # the app must never block on a full terminal
        try:
            while os.read(master, 65536):
                pass
        except OSError:
            pass

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    with tempfile.NamedTemporaryFile(suffix=".painted") as mark:
        start = time.time()
        proc = subprocess.Popen(
            [*code[:3], mark.name, *code[3:]], stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True
        )
        returncode = proc.wait(timeout=60)
        exited = time.time()
        painted = [float(moment) for moment in Path(mark.name).read_text().split()] or [float("nan")]
    os.close(slave)
    os.close(master)
    reader.join(timeout=1)
    if returncode != 0:
        raise SystemExit(f"{code[:3]} exited {returncode}")
    return [moment - start for moment in painted], exited - start


class Frames:
    """When Textual composed each frame of `app` (it calls `App._display` with each) and
    when the board's reads arrived (pass it as `run_test(message_hook=...)`)."""

    def __init__(self, app) -> None:
        from okstra_tui.screens.board import BoardScreen

        self.painted: list[float] = []
        self.loaded: list[float] = []
        self._loaded_kind = BoardScreen.Loaded
        self._app = app
        self._display = app._display

        def timed_display(screen, renderable) -> None:
            if renderable is not None:
                self.painted.append(time.perf_counter())
            self._display(screen, renderable)

        app._display = timed_display

    def __call__(self, message) -> None:
        if isinstance(message, self._loaded_kind) and message.data is not None:
            self.loaded.append(time.perf_counter())

    def first_after(self, moment: float) -> float | None:
        return next((p for p in self.painted if p >= moment), None)

    def stop(self) -> None:
        self._app._display = self._display


async def refresh(pilot, frames: Frames, write: Callable[[], object], timeout: float) -> float:
    """Seconds from `write()` until a frame with the board's next read is painted."""
    from tests.tui.driving import settle

    reads = len(frames.loaded)
    start = time.perf_counter()
    write()
    await settle(
        pilot, lambda: len(frames.loaded) > reads and frames.first_after(frames.loaded[reads]), timeout=timeout
    )
    return frames.first_after(frames.loaded[reads]) - start


async def refresh_latency(project: Path, appends: int) -> list[float]:
    from okstra_engine.projects import load_project
    from okstra_engine.record import record
    from okstra_engine.slugs import TaskRef
    from okstra_engine.tasks import load_task
    from okstra_tui.app import OkstraApp
    from tests.tui.driving import board_ready

    task = load_task(load_project(project), TaskRef.parse("demo/checkout"))
    app = OkstraApp(project=project, task=task.ref)
    frames = Frames(app)
    latencies = []
    async with app.run_test(size=SIZE, message_hook=frames) as pilot:
        await board_ready(pilot)
        rng = random.Random(7)
        for _ in range(appends):
            await pilot.pause(rng.uniform(0.05, 0.3))  # land anywhere in the poll period
            # what a lead's `okstra record` appends
            latencies.append(await refresh(pilot, frames, lambda: record(task, 3, "started"), 5))
    return latencies


BIG_STAGES, BIG_ROWS = 200, 20_000
KEY_GOAL_MS = 50.0


def build_big(root: Path) -> Path:
    """A task of 200 stages in chains of two, with a 20,000-row ledger."""
    from okstra_engine.ledger import LEDGER_NAME, new_row

    repo = root / "big"
    sha = bench_repo(repo)
    from okstra_engine.plans import plan_run_root

    plan_dir = plan_run_root(
        bench_task(
            repo,
            "big/board",
            "A board of 200 stages",
            {n: [n - 1] if n % 2 == 0 else [] for n in range(1, BIG_STAGES + 1)},
        )
    ).dir
    lines = []
    for i in range(BIG_ROWS):
        stage = i % BIG_STAGES + 1
        status = ("reserved", "started", "done", "released")[(i // BIG_STAGES) % 4]
        lines.append(new_row(stage, status, run_id=f"run-{i}", head_commit=sha if status == "done" else None).to_line())
    (plan_dir / LEDGER_NAME).write_text("\n".join(lines) + "\n")
    return repo


async def big_board(project: Path, presses: int) -> tuple[list[float], list[float], int]:
    """Key to repaint on the big board, refresh after appends, and the peak RSS (KiB)."""
    import resource

    from okstra_engine.projects import load_project
    from okstra_engine.record import record
    from okstra_engine.slugs import TaskRef
    from okstra_engine.tasks import load_task
    from okstra_tui.app import OkstraApp
    from tests.tui.driving import board_ready

    task = load_task(load_project(project), TaskRef.parse("big/board"))
    app = OkstraApp(project=project, task=task.ref)
    frames = Frames(app)
    painted = frames.painted
    keys, refreshes = [], []
    async with app.run_test(size=SIZE, message_hook=frames) as pilot:
        board = await board_ready(pilot)
        await pilot.pause()
        table, lanes = board.query_one("#stages"), board.query_one("#lanes")
        for i in range(presses):
            before = table.selected_stage
            start = time.perf_counter()
            app.simulate_key("down" if i % 10 < 5 else "up")
            moved = None
            while True:  # the first frame painted after the table and the lanes both moved
                await asyncio.sleep(0.0005)
                now = table.selected_stage
                if moved is None and now != before and getattr(lanes.cards.get(now), "selected", False):
                    moved = time.perf_counter()
                if moved is not None and painted and painted[-1] >= moved:
                    keys.append(next(p for p in painted if p >= moved) - start)
                    break
                if time.perf_counter() - start > 5:
                    raise SystemExit("the board never repainted the new selection")
            await pilot.pause()
        for _ in range(5):
            refreshes.append(await refresh(pilot, frames, lambda: record(task, 2, "started"), 10))
        frames.stop()
    return keys, refreshes, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main() -> int:
    args = bench_args(15)
    tmp = Path(tempfile.mkdtemp(prefix="okstra-tui-bench-"))
    try:
        from okstra_engine.config import settings
        from okstra_engine.demo import build_demo

        for key in ("OKSTRA_HOME", "OKSTRA_CONFIG", "CLAUDE_CONFIG_DIR"):
            os.environ.pop(key, None)
        info = build_demo(tmp / "demo", now=datetime.now(UTC))
        os.environ.update(info.env)
        settings.cache_clear()
        env = {**run_env(), "TERM": "xterm-256color", "COLUMNS": str(SIZE[0]), "LINES": str(SIZE[1])}
        env.pop("TEXTUAL", None)
        okstra = [sys.executable, "-c", OKSTRA, info.project_root]
        bare = [sys.executable, "-c", BARE]
        in_terminal(okstra, env)  # warm the page cache and pyc files
        in_terminal(bare, env)
        samples: dict[str, list[tuple[list[float], float]]] = {"okstra": [], "floor": []}
        for _ in range(args.runs):  # interleaved, so machine noise hits both alike
            samples["okstra"].append(in_terminal(okstra, env))
            samples["floor"].append(in_terminal(bare, env))
        frame = {k: statistics.median(p[0] for p, _ in v) for k, v in samples.items()}
        data = statistics.median(p[-1] for p, _ in samples["okstra"])
        whole = {k: statistics.median(e for _, e in v) for k, v in samples.items()}
        latencies = asyncio.run(refresh_latency(Path(info.project_root), 5 if args.quick else 20))
        keys, big_refresh, peak_kib = asyncio.run(big_board(build_big(tmp), 10 if args.quick else 40))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(HEADER)
    print(report("TUI start to the board loading (pty)", frame["okstra"], frame["floor"], START_GOAL))
    print(report("TUI start to the board with data (pty)", data, frame["floor"], None))
    print(report("TUI start, board with data and exit (pty)", whole["okstra"], whole["floor"], None))
    median_ms, worst_ms = statistics.median(latencies) * 1000, max(latencies) * 1000
    verdict = "ok" if median_ms <= LATENCY_GOAL_MS else "OVER"
    print(
        f"{'board refresh after a ledger append':<44} {median_ms:8.1f} ms  worst {worst_ms:6.1f} ms   goal ≤{LATENCY_GOAL_MS:g} ms  {verdict}"
    )
    key_ms = statistics.median(keys) * 1000
    verdict = "ok" if key_ms <= KEY_GOAL_MS else "OVER"
    print(
        f"{'200 stages, 20k rows: key to repaint':<44} {key_ms:8.1f} ms  worst {max(keys) * 1000:6.1f} ms   goal ≤{KEY_GOAL_MS:g} ms  {verdict}"
    )
    refresh_ms = statistics.median(big_refresh) * 1000
    verdict = "ok" if refresh_ms <= LATENCY_GOAL_MS else "OVER"
    print(
        f"{'200 stages, 20k rows: refresh after append':<44} {refresh_ms:8.1f} ms  worst {max(big_refresh) * 1000:6.1f} ms   goal ≤{LATENCY_GOAL_MS:g} ms  {verdict}"
    )
    print(f"{'200 stages, 20k rows: peak memory (RSS)':<44} {peak_kib / 1024:8.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
