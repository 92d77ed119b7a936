"""Shared timing helpers: interleaved runs, medians, and a printed ratio to a floor."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path


def okstra_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("okstra")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "okstra_tui.entry"]


def time_command(cmd: list[str], *, cwd: Path | None = None, env: dict | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env or os.environ.copy(), check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def interleaved(cases: dict[str, Callable[[], float]], runs: int) -> dict[str, float]:
    """Median seconds per case; the cases alternate so machine noise hits all alike."""
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(runs):
        for name, case in cases.items():
            samples[name].append(case())
    return {name: statistics.median(values) for name, values in samples.items()}


def report(what: str, okstra_s: float, floor_s: float, goal: float) -> str:
    ratio = okstra_s / floor_s
    verdict = "ok" if ratio <= goal else "OVER"
    return f"{what:<44} {okstra_s * 1000:8.1f} ms {floor_s * 1000:8.1f} ms {ratio:6.2f}x  goal ≤{goal:g}x  {verdict}"


HEADER = f"{'case':<44} {'okstra':>11} {'floor':>11} {'ratio':>7}"


# What any okstra command pays before doing anything: the interpreter, plus pydantic and
# one model (every document okstra reads is a pydantic model). Printed beside the cases
# so a ratio can be read against what is physically left to win.
PYDANTIC_PROBE = "from pydantic import BaseModel\nclass Row(BaseModel):\n    stage: int\nRow(stage=1)"


def startup_floor() -> float:
    return time_command([sys.executable, "-c", PYDANTIC_PROBE])
