"""Every okstra command a rendered prompt holds runs as it is written, from the run's
worktree, with `PATH=/usr/bin:/bin` (an agent's shell need not have okstra's venv on its
PATH): the prompt names the okstra that rendered it by its absolute path."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from okstra_engine.agent_events import okstra_argv
from okstra_engine.prepare import PrepareOptions, prepare
from tests.support import PLAN_4, commit, write_settings
from tests.test_quarantine import make_team

BARE_PATH = "/usr/bin:/bin"
_SPAN = re.compile(r"`([^`\n]+)`")


def _commands(prompt: str) -> list[str]:
    """The prompt's okstra commands, in order: every `...` span starting with its okstra."""
    okstra = shlex.join(okstra_argv())
    spans = [s for s in _SPAN.findall(prompt) if s == okstra or s.startswith(okstra + " ")]
    assert spans, "the prompt names no okstra command"
    return spans


def _run(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PATH"}
    return subprocess.run(
        ["/bin/sh", "-c", command], cwd=cwd, env={**env, "PATH": BARE_PATH}, capture_output=True, text=True
    )


def _ok(command: str, cwd: Path) -> None:
    proc = _run(command, cwd)
    assert proc.returncode == 0, f"{command}\n{proc.stdout}{proc.stderr}"


def _team_state(run_dir: Path, manifest) -> None:
    state = json.loads(re.search(r"`(\{\"v\": 1, \"runId\".*?)`", (run_dir / "prompt.md").read_text(), re.S).group(1))
    if state.get("teamName", "").startswith("session-<"):
        state["teamName"] = None  # no hooks here: no session id to name the team by
    for worker in state.get("workers", []):
        Path(worker["result"]).parent.mkdir(exist_ok=True)
        Path(worker["result"]).write_text("a worker's answer\n")
    (run_dir / "team-state.json").write_text(json.dumps(state))


@pytest.mark.parametrize(
    ("teams", "workers"),
    [("explicit", ("claude",)), ("implicit", ("claude", "codex")), ("none", ("gemini",)), ("implicit", ())],
)
def test_an_implementation_run_by_its_prompt_alone(task, teams: str, workers) -> None:
    write_settings(agent_teams=teams)
    prepared = prepare(task, PrepareOptions(task_type="implementation", workers=workers))
    manifest, run_dir = prepared.manifest, Path(prepared.manifest.run_dir)
    worktree = Path(manifest.worktree.path or "")
    if manifest.team.mode == "gate":
        make_team(manifest.team.name or "")  # a leftover the person approved moving
    commands = _commands(prepared.prompt_text)
    by_kind = {
        "okstra": [c for c in commands if c == shlex.join(okstra_argv())],
        "started": [c for c in commands if c.endswith("--status started")],
        "done": [c for c in commands if "--status done" in c],
        "quarantine": [c for c in commands if " quarantine move " in c],
        "validate": [c for c in commands if " validate-run " in c],
    }
    assert sorted(c for group in by_kind.values() for c in group) == sorted(commands), (
        "a command this test does not know"
    )
    assert len(by_kind["started"]) == len(by_kind["done"]) == len(by_kind["validate"]) == 1
    assert len(by_kind["quarantine"]) == (1 if manifest.team.mode == "gate" else 0)
    for bare in by_kind["okstra"]:
        _ok(f"{bare} --help", worktree)
    for command in by_kind["quarantine"]:
        _ok(command, worktree)
    _team_state(run_dir, manifest)
    _ok(by_kind["started"][0], worktree)
    sha = commit(worktree, {"stage1.txt": "stage 1\n"}, "stage 1")
    sidecar = re.search(r"Write the carry sidecar `([^`]+)`", prepared.prompt_text).group(1)
    Path(sidecar).parent.mkdir(exist_ok=True)
    Path(sidecar).write_text(json.dumps({"stage": 1, "head_commit": sha, "impl_task_key": task.key}))
    _ok(by_kind["done"][0], worktree)
    (run_dir / "report.md").write_text(f"Stage 1 committed at {sha}.\n")
    _ok(by_kind["validate"][0], worktree)


def test_a_planning_run_by_its_prompt_alone(task) -> None:
    prepared = prepare(task, PrepareOptions(task_type="planning", replace=True))
    run_dir, worktree = Path(prepared.manifest.run_dir), Path(prepared.manifest.worktree.path or "")
    commands = _commands(prepared.prompt_text)
    assert not any(" record " in c for c in commands)  # planning records nothing
    assert "ledger" not in prepared.prompt_text and "QA commands" not in prepared.prompt_text
    (run_dir / "plan.md").write_text(PLAN_4.replace("title: four stages", "approved: false"))
    _team_state(run_dir, prepared.manifest)
    validate = [c for c in commands if " validate-run " in c]
    approve = [c for c in commands if " plan approve " in c]
    assert sorted(validate + approve + [shlex.join(okstra_argv())]) == sorted(commands)
    _ok(validate[0], worktree)
    _ok(approve[0] + " --replace", worktree)


def test_the_bare_path_has_no_okstra() -> None:
    """The test means something: a plain `okstra` is not found with that PATH."""
    proc = _run("okstra --help", Path("/"))
    assert proc.returncode == 127
