"""Real git repositories for tests: commits, branches and helpers. No mocked git."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from okstra_engine.cli import main as cli_main

PLAN_4 = """---
title: four stages
---
# Plan

## Stage Map
| Stage | Title     | Depends on | Group |
|-------|-----------|------------|-------|
| 1     | Schema    | -          | A     |
| 2     | Importer  | 1          | B     |
| 3     | Exporter  | 1          | B     |
| 4     | CLI       | 2, 3       | C     |
"""

PLAN_BROKEN = """---
approved: false
---
# Plan

## Stage Map
| Stage | Title  | Depends on | Group |
|-------|--------|------------|-------|
| 1     | Schema | 3          | A     |
| 2     | Import | 1          | A     |
| 3     | Export | 2          | B     |
| 4     | CLI    | 9          | B     |
"""
"""A plan as an agent may write it: stage 4 depends on an unknown stage, and once that is
fixed (`| 9 ` → `| - `) stages 1, 2 and 3 (lines 9, 10, 11) form a cycle."""


def git(repo: Path, *args: str, check: bool = True) -> str:
    proc = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr}")
    return proc.stdout.strip()


def commit(repo: Path, files: dict[str, str], message: str) -> str:
    for name, content in files.items():
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        git(repo, "add", "--", name)
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def make_repo(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    commit(path, {"README.md": "hello\n"}, "initial")
    return path


def run_cli(*args: str, cwd: Path | None = None) -> tuple[int, str, str]:
    """The real console script in a subprocess: what an agent sees."""
    exe = Path(sys.executable).with_name("okstra")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "okstra_tui.entry"]
    proc = subprocess.run([*cmd, *args], cwd=cwd, capture_output=True, text=True, env=os.environ.copy())
    return proc.returncode, proc.stdout, proc.stderr


def call(capsys, *args: str) -> tuple[int, str, str]:
    """The CLI in-process: fast, for the many small cases."""
    capsys.readouterr()
    code = cli_main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


_MUTEX_HOLDER = """
import sys, time
from pathlib import Path
from okstra_engine.locks import task_mutex
from okstra_engine.projects import load_project
from okstra_engine.slugs import TaskRef
from okstra_engine.tasks import load_task
with task_mutex(load_task(load_project(Path(sys.argv[1])), TaskRef.parse(sys.argv[2]))):
    print("locked", flush=True)
    time.sleep(120)
"""


@contextmanager
def mutex_held_elsewhere(task) -> Iterator[subprocess.Popen[str]]:
    """Another okstra process holds the task mutex for the block (killed at its end, as
    the OS frees the lock of a dead holder)."""
    with mutex_held_by(task.project.root, str(task.ref), os.environ.copy()) as holder:
        yield holder


@contextmanager
def mutex_held_by(root: Path, task: str, env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    """The same, for the project at `root` as the okstra home of `env` sees it."""
    holder = subprocess.Popen(
        [sys.executable, "-c", _MUTEX_HOLDER, str(root), task],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        yield holder
    finally:
        holder.kill()
        holder.wait(timeout=10)


def write_settings(**values: object) -> None:
    """The person's okstra settings file holds `values` (TOML: JSON's strings and lists
    are TOML's); the next command reads it again."""
    from okstra_engine.config import settings

    lines = [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    Path(os.environ["OKSTRA_CONFIG"]).write_text("".join(line + "\n" for line in lines))
    settings.cache_clear()


def fake_program(directory: Path, name: str, *, prints: str, exit_code: int = 0) -> Path:
    """An executable `name` in `directory` that prints `prints` and exits `exit_code`,
    counting its runs in `name.runs` beside it."""
    directory.mkdir(parents=True, exist_ok=True)
    program = directory / name
    program.write_text(
        f"#!/bin/sh\necho run >> {json.dumps(str(program) + '.runs')}\nprintf '%s\\n' {json.dumps(prints)}\n"
        f"exit {exit_code}\n"
    )
    program.chmod(0o755)
    return program


def set_agent_command(command: list[str]) -> None:
    """The test's settings file names `command` as the agent command."""
    write_settings(agent_command=command)


def prepared_run(task, stage: str = "1") -> Path:
    """A real implementation run of `stage`, prepared in-process (no agent pid); its folder."""
    from okstra_engine.prepare import PrepareOptions, prepare

    return Path(prepare(task, PrepareOptions("implementation", stage=stage)).manifest.run_dir)


def a_run(task, run_id: str, phase: str, files: dict[str, str], **manifest) -> Path:
    """A run folder as an agent leaves it (its manifest as `prepare` writes it)."""
    import json

    run = task.runs_dir / run_id
    run.mkdir(parents=True)
    doc = {"v": 1, "run_id": run_id, "run_dir": str(run), "task": str(task.ref), "task_key": task.key}
    doc |= {"task_type": phase, "created": "2026-06-10T12:00:00Z", **manifest}
    (run / "manifest.json").write_text(json.dumps(doc))
    for name, text in files.items():
        (run / name).write_text(text)
    return run


def a_verification(task, verdict: str = "PASS", run_id: str = "20260610T120000Z-final-verification-aaaaaa") -> Path:
    """A finished final verification of the whole task under its current plan."""
    from okstra_engine.plans import plan_run_root

    plan = plan_run_root(task)
    assert plan is not None
    return a_run(task, run_id, "final-verification", {"verification.md": f"{verdict}\n"}, plan_run=str(plan.dir))
