"""Rendered lead prompts, compared with reviewed golden files.

Regenerate after an intended template change with `OKSTRA_UPDATE_GOLDEN=1 pytest
tests/test_prompts.py`, then read the diff of tests/golden/ before committing it.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import replace
from pathlib import Path

import pytest

from okstra_engine.errors import OkstraError
from okstra_engine.prompts import PromptInputs, TeamPlan, lead_prompt, parse_workers, render_text, team_plan
from okstra_engine.slugs import TaskRef
from okstra_engine.teams import team_name

GOLDEN = Path(__file__).parent / "golden" / "prompts"


OKSTRA = ("/opt/okstra venv/bin/okstra",)
"""A path with a space: every command must quote it."""


def _inputs(task_type: str, *, workers=(), concurrent=(), stage=None, teams="explicit") -> PromptInputs:
    return PromptInputs(
        task_ref="auth/login",
        task_key="auth-login",
        project_id="repo",
        task_title="Login flow",
        task_type=task_type,
        project_root=Path("/work/project"),
        run_id="20260101T000000Z-run",
        run_dir=Path("/work/project/.okstra/tasks/auth/login/runs/20260101T000000Z-run"),
        plan_dir=Path("/work/project/.okstra/tasks/auth/login/runs/20251231T000000Z-planning-abc123"),
        ledger_path=Path("/work/project/.okstra/tasks/auth/login/runs/20251231T000000Z-planning-abc123/consumers.jsonl")
        if task_type == "implementation"
        else None,
        qa_commands=["pytest -q", "ruff check ."],
        worktree_path="/home/u/.local/share/okstra/worktrees/project/auth/login" + (f"-s{stage}" if stage else ""),
        worktree_branch="okstra/feature/auth/login" + (f"-s{stage}" if stage else ""),
        worktree_base="0123456789abcdef0123456789abcdef01234567",
        worktree_status="created",
        worktree_note="",
        workers=workers,
        stage=stage,
        stage_title="Importer" if stage else None,
        concurrent_stages=concurrent,
        concurrent_places={
            n: (f"/home/u/.local/share/okstra/worktrees/project/auth/login-s{n}", f"okstra/feature/auth/login-s{n}")
            for n in concurrent
        },
        teams=teams,
        okstra=OKSTRA,
        qa_manifest=Path("/work/project/.okstra/tasks/auth/login/qa/conformance-manifest.json"),
    )


CASES = {
    # phase × team mode × teams kind (the file's name: phase-mode[-concurrent][-kind])
    "implementation-gate": _inputs("implementation", workers=["claude", "codex"], stage=2),
    "implementation-no-team": _inputs("implementation", workers=["claude"], stage=2, concurrent=[3, 4]),
    "implementation-single-lead": _inputs("implementation", stage=2),
    "implementation-single-lead-concurrent": _inputs("implementation", stage=2, concurrent=[3], teams="implicit"),
    "implementation-implicit": _inputs("implementation", workers=["claude", "codex"], stage=2, teams="implicit"),
    "implementation-implicit-concurrent": _inputs(
        "implementation", workers=["claude"], stage=2, concurrent=[3, 4], teams="implicit"
    ),
    "implementation-background": _inputs("implementation", workers=["codex", "gemini"], stage=2, teams="none"),
    "implementation-background-concurrent": _inputs(
        "implementation", workers=["claude"], stage=2, concurrent=[1], teams="none"
    ),
    "planning-gate": _inputs("planning", workers=["claude", "gemini"]),
    "planning-single-lead": _inputs("planning"),
    "planning-implicit": _inputs("planning", workers=["claude"], teams="implicit"),
    "planning-background": _inputs("planning", workers=["gemini"], teams="none"),
    "final-verification-gate": _inputs("final-verification", workers=["codex"]),
    "final-verification-single-lead": _inputs("final-verification"),
    "final-verification-implicit": _inputs("final-verification", workers=["claude", "codex"], teams="implicit"),
    "improvement-discovery-gate": _inputs("improvement-discovery", workers=["claude", "codex", "gemini"]),
    "improvement-discovery-implicit": _inputs("improvement-discovery", workers=["claude"], teams="implicit"),
    "improvement-discovery-background": _inputs("improvement-discovery", workers=["codex"], teams="none"),
    "release-handoff-single-lead": _inputs("release-handoff", workers=["claude"]),
    "release-handoff-single-lead-none": _inputs("release-handoff", workers=["codex"], teams="none"),
    # a new worktree okstra made ready: files copied, a shared folder, setup run, ports given
    "implementation-single-lead-ready": replace(
        _inputs("implementation", stage=2),
        copied=[".env", "config/app.local"],
        linked=["node_modules"],
        setup_commands=["npm ci --offline", "make dev-db"],
        setup_log=Path("/work/project/.okstra/tasks/auth/login/runs/20260101T000000Z-run/setup.log"),
        port=20340,
    ),
}
_UNFILLED = re.compile(r"\{\{\s*[A-Za-z0-9_]+\s*\}\}")


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_prompt(name: str) -> None:
    text, team = lead_prompt(CASES[name])
    phase = CASES[name].task_type
    mode = name.removeprefix(phase + "-").removesuffix("-ready").removesuffix("-none").removesuffix("-concurrent")
    assert mode == team.mode
    golden = GOLDEN / f"{name}.md"
    if os.environ.get("OKSTRA_UPDATE_GOLDEN") == "1":
        golden.write_text(text)
    assert golden.exists(), f"no golden file: run OKSTRA_UPDATE_GOLDEN=1 pytest {__file__}"
    assert text == golden.read_text()
    assert not _UNFILLED.search(text)


def test_team_modes_and_names() -> None:
    def mode(phase, stage, workers, concurrent, teams="explicit"):
        return team_plan(phase, "p", "a/b", stage, workers, concurrent, teams)

    for teams in ("explicit", "implicit", "none"):
        assert mode("release-handoff", None, ["claude"], [], teams).mode == "single-lead"
        assert mode("planning", None, [], [], teams).mode == "single-lead"
        assert mode("implementation", 3, [], [2], teams).mode == "single-lead"
    assert mode("implementation", 3, ["claude"], [2]).mode == "no-team"
    plan = mode("implementation", 3, ["claude"], [])
    task_team = team_name("p", TaskRef("a", "b"))
    assert (plan.mode, plan.name) == ("gate", f"{task_team}-s3")
    assert mode("planning", None, ["claude"], []).name == task_team
    assert mode("final-verification", 3, ["codex"], [2]).name == task_team
    # the session's own team, or none: nothing for okstra to name, beside stages in flight or not
    for concurrent in ([], [2]):
        assert mode("implementation", 3, ["claude"], concurrent, "implicit") == TeamPlan("implicit", None)
        assert mode("implementation", 3, ["claude"], concurrent, "none") == TeamPlan("background", None)


def test_no_team_block_names_stages_and_reason() -> None:
    text, _ = lead_prompt(CASES["implementation-no-team"])
    assert '"reason": "concurrent-run", "concurrentStages": [3, 4]' in text
    assert "okstra-auth-login" not in text and "team_name" not in text


def test_gate_names_exact_team_and_quarantine_path() -> None:
    text, _ = lead_prompt(CASES["implementation-gate"])
    team = team_name("repo", TaskRef("auth", "login"), 2)
    assert (
        f"`{team}`" in text
        and f"`{shlex.join(OKSTRA)} quarantine move {team} --run 20260101T000000Z-run --yes`" in text
    )
    assert "rm -rf" not in text


def test_workers() -> None:
    assert parse_workers("claude, Codex,claude") == ["claude", "codex"]
    assert parse_workers("") == [] and parse_workers(None) == []
    with pytest.raises(OkstraError, match="unknown worker"):
        parse_workers("claude,gpt")


def test_strict_render_errors() -> None:
    with pytest.raises(OkstraError, match=r"t\.md uses unknown token\(s\): NOPE"):
        render_text("a {{NOPE}} b", {}, "t.md")
    with pytest.raises(OkstraError, match="STAGE have no value"):
        render_text("stage {{STAGE}}", {"STAGE": None}, "t.md")
    with pytest.raises(OkstraError, match="line 2: a stray '{{'"):
        render_text("ok {{A}}\n{{ broken", {"A": "x"}, "t.md")
    assert render_text("{{A}} and {{ A }}", {"A": "{{B}}"}, "t.md") == "{{B}} and {{B}}"


def test_only_implementation_may_write_the_carry_sidecar() -> None:
    """A final verification of one stage names the stage but records nothing: offering it
    the carry sidecar invited a verifier to write a done row's twin."""
    verify, _ = lead_prompt(_inputs("final-verification", stage=3))
    implement, _ = lead_prompt(_inputs("implementation", stage=3))
    assert "carry/stage-3.json" not in verify
    assert "carry/stage-3.json" in implement
