"""Shared timing helpers: interleaved runs, medians, and a printed ratio to a floor."""

from __future__ import annotations

import argparse
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


def bench_args(runs: int, **options: dict) -> argparse.Namespace:
    """The command line every benchmark takes: `--runs N` (default `runs`) and `--quick`
    (3 runs per case: a smoke test, noisier figures), plus `options` (name → add_argument
    keywords)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=runs)
    parser.add_argument("--quick", action="store_true", help="3 runs per case (a smoke test, noisier figures)")
    for name, kwargs in options.items():
        parser.add_argument(f"--{name}", **kwargs)
    args = parser.parse_args()
    if args.quick:
        args.runs = 3
    return args


def run_env(env: dict | None = None) -> dict:
    """The environment timed processes run in: Python as installed for a user, with its
    bytecode cached (a wheel install compiles it; this machine sets
    PYTHONDONTWRITEBYTECODE, which would make every run compile okstra's modules)."""
    env = dict(os.environ if env is None else env)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def time_command(cmd: list[str], *, cwd: Path | None = None, env: dict | None = None) -> float:
    env = run_env(env)
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def interleaved(cases: dict[str, Callable[[], float]], runs: int) -> dict[str, float]:
    """Median seconds per case; the cases alternate so machine noise hits all alike."""
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(runs):
        for name, case in cases.items():
            samples[name].append(case())
    return {name: statistics.median(values) for name, values in samples.items()}


def report(what: str, okstra_s: float, floor_s: float, goal: float | None) -> str:
    """One table row; without a goal, a reference row (ratio shown, nothing judged)."""
    ratio = okstra_s / floor_s
    judged = "(reference)" if goal is None else f"goal ≤{goal:g}x  {'ok' if ratio <= goal else 'OVER'}"
    return f"{what:<44} {okstra_s * 1000:8.1f} ms {floor_s * 1000:8.1f} ms {ratio:6.2f}x  {judged}"


HEADER = f"{'case':<44} {'okstra':>11} {'floor':>11} {'ratio':>7}"


# What any okstra command pays before doing anything: the interpreter, plus pydantic and
# one model (every document okstra reads is a pydantic model). Printed beside the cases
# so a ratio can be read against what is physically left to win.
PYDANTIC_PROBE = "from pydantic import BaseModel\nclass Row(BaseModel):\n    stage: int\nRow(stage=1)"


def startup_floor() -> float:
    return time_command([sys.executable, "-c", PYDANTIC_PROBE])


GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.invalid",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.invalid",
}


def bench_git(repo: Path, *args: str) -> str:
    """git for building benchmark repositories (a fixed identity, no user config needed)."""
    return subprocess.run(
        ["git", *args], cwd=repo, env={**os.environ, **GIT_IDENTITY}, check=True, capture_output=True, text=True
    ).stdout.strip()


def bench_repo(path: Path) -> str:
    """A new repository with one empty commit; returns that commit."""
    path.mkdir(parents=True)
    bench_git(path, "init", "-q", "-b", "main")
    bench_git(path, "commit", "-q", "--allow-empty", "-m", "init")
    return bench_git(path, "rev-parse", "HEAD")


def bench_task(repo: Path, ref: str, title: str, depends_on: dict[int, list[int]]):
    """Register `repo`, create task `ref` and import an approved plan whose Stage Map is
    `depends_on` (stage → its dependencies). Returns the task."""
    from okstra_engine.plans import import_plan
    from okstra_engine.projects import init_project
    from okstra_engine.slugs import TaskRef
    from okstra_engine.tasks import new_task

    project, _ = init_project(repo, qa_commands=["true"])
    task = new_task(project, TaskRef.parse(ref), title=title)
    table = ["## Stage Map", "| Stage | Title | Depends on |", "|---|---|---|"]
    table += [f"| {n} | Stage {n} | {', '.join(map(str, deps)) or '-'} |" for n, deps in depends_on.items()]
    plan = repo.parent / f"{ref.replace('/', '-')}-plan.md"
    plan.write_text("\n".join(table) + "\n")
    import_plan(task, plan, approve=True)
    return task
