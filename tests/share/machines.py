"""Simulated machines sharing a bare remote: each its own clone and okstra home, each
command its own `okstra` process with that machine's environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.support import git, make_repo

TASK = "team/wide"


def okstra_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("okstra")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "okstra_tui.entry"]


@dataclass
class Machine:
    name: str
    clone: Path
    home: Path

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "OKSTRA_HOME": str(self.home)}

    def cmd(self, *args: str) -> list[str]:
        return [*okstra_cmd(), "--project", str(self.clone), *args]

    def run(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.cmd(*args), capture_output=True, text=True, env={**self.env, **(env or {})}, timeout=300
        )

    def ok(self, *args: str) -> str:
        proc = self.run(*args)
        assert proc.returncode == 0, f"{self.name}: okstra {' '.join(args)}: {proc.stderr}"
        return proc.stdout

    def json(self, *args: str) -> dict:
        return json.loads(self.ok(*args, "--json"))

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.cmd(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.env
        )

    def ledger_lines(self, task: str = TASK) -> list[str]:
        doc = self.json("status", task)
        path = Path(doc["plan_run"]) / "consumers.jsonl"
        if not path.exists():
            return []
        return [line for line in path.read_text().splitlines() if line.strip()]


def bare_remote(tmp_path: Path) -> Path:
    source = make_repo(tmp_path / "source")
    remote = tmp_path / "remote.git"
    git(tmp_path, "clone", "-q", "--bare", str(source), str(remote))
    return remote


def machines(tmp_path: Path, remote: Path, count: int) -> list[Machine]:
    found = []
    for n in range(count):
        name = "abcdefgh"[n]
        clone = tmp_path / f"clone-{name}"
        git(tmp_path, "clone", "-q", str(remote), str(clone))
        found.append(Machine(name, clone, tmp_path / f"okstra-home-{name}"))
    return found


def stage_map(tmp_path: Path, stages: int, deps: dict[int, list[int]] | None = None) -> Path:
    path = tmp_path / f"stage-map-{stages}.json"
    path.write_text(
        json.dumps(
            {
                "stages": [
                    {"stage": n, "title": f"S{n}", "depends_on": (deps or {}).get(n, [])} for n in range(1, stages + 1)
                ]
            }
        )
    )
    return path


def shared_task(tmp_path: Path, fleet: list[Machine], plan: Path, task: str = TASK) -> None:
    """The first machine shares the project and makes the task; the others join."""
    first, *others = fleet
    first.ok("init", "--share", "origin", "--qa-command", "true")
    first.ok("task", "new", task, "--title", "Shared work")
    first.ok("plan", "import", task, str(plan), "--approve")
    for machine in others:
        out = machine.ok("init", "--share", "origin", "--qa-command", "true")
        assert f"task {task}" in out, out
