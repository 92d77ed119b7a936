"""Agent profiles: which lead agent a run launches, its teams kind (from Claude Code's
version, asked once per binary and cached), the settings that override it, and the
prompt and manifest that follow it. A fake `claude` on PATH plays the installed one."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from okstra_engine.agent_events import okstra_argv
from okstra_engine.agents import cache_file, claude_teams, lead_agent
from tests.support import call, fake_program, write_settings

TASK = "auth/login"


@pytest.fixture
def bin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder first on PATH, for fake agents."""
    folder = tmp_path / "bin"
    folder.mkdir()
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    return folder


def _runs(program: Path) -> int:
    counter = program.with_name(program.name + ".runs")
    return len(counter.read_text().splitlines()) if counter.exists() else 0


@pytest.mark.parametrize(
    ("version", "teams"),
    [
        ("2.1.328 (Claude Code)", "implicit"),
        ("2.1.178 (Claude Code)", "implicit"),
        ("2.1.177 (Claude Code)", "explicit"),
        ("2.1.32 (Claude Code)", "explicit"),
        ("2.1.31 (Claude Code)", "none"),
        ("1.0.128 (Claude Code)", "none"),
    ],
)
def test_claude_version_decides_the_teams_kind(bin_dir: Path, version: str, teams: str) -> None:
    fake_program(bin_dir, "claude", prints=version)
    detected = lead_agent()
    assert detected.agent.model_dump() == {"name": "claude", "version": version.split(" ", 1)[0], "teams": teams}
    assert detected.notices == []


def test_the_version_is_asked_once_per_binary_and_cached(bin_dir: Path) -> None:
    claude = fake_program(bin_dir, "claude", prints="2.1.100 (Claude Code)")
    assert lead_agent().agent.teams == "explicit" and _runs(claude) == 1
    assert lead_agent().agent.teams == "explicit" and _runs(claude) == 1  # from the cache
    doc = json.loads(cache_file().read_text())
    assert doc["binaries"][str(claude.resolve())]["version"] == "2.1.100"
    # an update replaces the binary: another size or mtime, asked again
    time.sleep(0.01)
    fake_program(bin_dir, "claude", prints="2.1.400 (Claude Code)")
    assert lead_agent().agent.teams == "implicit" and _runs(claude) == 2
    cache_file().write_text("not json")  # a damaged cache is only a cache
    assert lead_agent().agent.version == "2.1.400" and _runs(claude) == 3


def test_a_render_only_detection_writes_no_cache(bin_dir: Path) -> None:
    claude = fake_program(bin_dir, "claude", prints="2.1.328 (Claude Code)")
    assert lead_agent(cache=False).agent.teams == "implicit"
    assert not cache_file().exists()
    lead_agent()
    lead_agent(cache=False)  # a cached answer is still used
    assert _runs(claude) == 2


def test_missing_or_unreadable_claude_is_said_and_taken_for_a_current_one(bin_dir: Path) -> None:
    detected = lead_agent()
    assert detected.agent.model_dump() == {"name": "claude", "version": None, "teams": "implicit"}
    assert "'claude' is not installed or not on PATH" in detected.notices[0]
    assert 'agent_teams = "explicit" or "none"' in detected.notices[1]
    fake_program(bin_dir, "claude", prints="something went wrong", exit_code=3)
    detected = lead_agent()
    assert detected.agent.teams == "implicit"
    assert "said 'something went wrong' (exit 3): no version in it" in detected.notices[0]
    assert not cache_file().exists()  # a failure is asked again next time


def test_settings_override_detection(bin_dir: Path) -> None:
    fake_program(bin_dir, "claude", prints="2.1.328 (Claude Code)")
    write_settings(agent_teams="explicit")
    assert lead_agent().agent.model_dump() == {"name": "claude", "version": "2.1.328", "teams": "explicit"}
    write_settings(agent_teams="none")
    assert lead_agent().agent.teams == "none"
    write_settings(agent_teams="auto")
    assert lead_agent().agent.teams == "implicit"


def test_other_agents_have_no_teams(bin_dir: Path) -> None:
    for command, name in ((["codex", "{prompt}"], "codex"), (["/opt/x/gemini", "-i", "{prompt}"], "gemini")):
        write_settings(agent_command=command)
        assert lead_agent().agent.model_dump() == {"name": name, "version": None, "teams": "none"}
    write_settings(agent_command=["my-agent", "{prompt_file}"])
    detected = lead_agent()
    assert detected.agent.model_dump() == {"name": "my-agent", "version": None, "teams": "none"}
    assert detected.notices == []
    write_settings(agent_command=["my-agent"], agent_teams="implicit")  # it says it has Claude's teams
    assert lead_agent().agent.teams == "implicit"


def test_a_bad_agent_teams_setting_is_exit_2(task, capsys) -> None:
    write_settings(agent_teams="sometimes")
    code, _, err = call(capsys, "--project", str(task.project.root), "prepare", TASK, "--type", "implementation")
    assert code == 2 and "agent_teams" in err and "'implicit'" in err and "Traceback" not in err


def test_claude_teams_without_a_version() -> None:
    assert claude_teams(None) == "implicit" and claude_teams("weird") == "implicit"


def test_okstra_argv_is_this_okstra() -> None:
    argv = okstra_argv()
    assert Path(argv[0]).is_absolute()
    assert argv == [str(Path(sys.executable).with_name("okstra"))] or argv[1:] == ["-m", "okstra_tui.entry"]


# ---------------------------------------------------------------------------- the prompt


def _prepare(capsys, task, *args: str) -> tuple[dict, str]:
    code, out, err = call(
        capsys, "--project", str(task.project.root), "prepare", TASK, "--type", "implementation", "--json", *args
    )
    assert code == 0, err
    manifest = json.loads(out)
    return manifest, Path(manifest["prompt"]).read_text()


def test_an_older_claude_gets_the_team_creation_gate(task, bin_dir: Path, capsys) -> None:
    fake_program(bin_dir, "claude", prints="2.1.150 (Claude Code)")
    manifest, prompt = _prepare(capsys, task, "--workers", "claude")
    assert manifest["agent"] == {"name": "claude", "version": "2.1.150", "teams": "explicit"}
    assert manifest["team"]["mode"] == "gate"
    assert f"Create the team named exactly `{manifest['team']['name']}`" in prompt
    assert '"teamCreate": {"attempted": true, "status": "ok"}' in prompt


def test_a_current_claude_never_sees_team_create_as_a_step(task, bin_dir: Path, capsys) -> None:
    fake_program(bin_dir, "claude", prints="2.1.328 (Claude Code)")
    manifest, prompt = _prepare(capsys, task, "--workers", "claude,codex")
    assert manifest["agent"] == {"name": "claude", "version": "2.1.328", "teams": "implicit"}
    assert manifest["team"] == {"mode": "implicit", "name": None}
    assert "Create the team" not in prompt and "teamCreate" not in prompt and "quarantine" not in prompt
    assert "the Agent tool with a `name`" in prompt and "session-" in prompt
    run_dir = Path(manifest["run_dir"])
    schema = json.loads((run_dir / "team-state.schema.json").read_text())
    assert schema["title"] == "okstra team state" and "teamCreate" in schema["properties"]
    assert f"`{run_dir / 'team-state.json'}`" in prompt


def test_an_agent_without_teams_runs_workers_in_the_background(task, capsys) -> None:
    write_settings(agent_command=["codex", "{prompt}"])
    manifest, prompt = _prepare(capsys, task, "--workers", "claude,gemini")
    assert manifest["agent"] == {"name": "codex", "version": None, "teams": "none"}
    assert manifest["team"] == {"mode": "background", "name": None}
    run_dir = manifest["run_dir"]
    assert f'claude -p "<its task>" > {run_dir}/workers/claude.md &' in prompt
    assert f'gemini -p "<its task>" > {run_dir}/workers/gemini.md &' in prompt


def test_a_run_beside_stages_in_flight_names_them_in_every_kind(task, bin_dir: Path, capsys) -> None:
    from tests.test_prepare import _finish

    _prepare(capsys, task)
    _finish(task, 1)
    two, _ = _prepare(capsys, task, "--workers", "claude")
    for setting in ("implicit", "none", "explicit"):
        write_settings(agent_teams=setting)
        code, out, err = call(
            capsys, "--project", str(task.project.root), "prepare", TASK, "--type", "implementation", "--json",
            "--render-only", "--workers", "claude", "--stage", "3",
        )  # fmt: skip
        assert code == 0, err
        doc = json.loads(out)
        assert doc["concurrentRun"] == {"detected": True, "activeStages": [2]}
        assert "## Stages in flight elsewhere" in doc["prompt_text"]
        assert (
            f"stage 2: worktree `{two['worktree']['path']}`, branch `{two['worktree']['branch']}`"
            in (doc["prompt_text"])
        )
        assert doc["team"]["mode"] == {"implicit": "implicit", "none": "background", "explicit": "no-team"}[setting]
