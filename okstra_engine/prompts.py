"""The lead prompt: strict `{{TOKEN}}` templates from `prompts/`, filled by the engine.

Strict means a template that names a token the engine did not compute, or a token left
without a value, is an error naming both — a prompt with a hole in it would send an
agent off with half its instructions.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .errors import OkstraError
from .resources import prompts_dir
from .slugs import TaskRef
from .teams import team_name

_TOKEN = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")
_BRACES = re.compile(r"\{\{|\}\}")

TeamMode = Literal["gate", "no-team", "single-lead"]
WORKER_KINDS = ("claude", "codex", "gemini")
SINGLE_LEAD_PHASES = ("release-handoff",)


class RenderError(OkstraError):
    pass


def render_template(name: str, tokens: Mapping[str, str | None]) -> str:
    path = prompts_dir() / name
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RenderError(f"prompt template {name} is missing", "reinstall okstra") from None
    return render_text(text, tokens, name)


def render_text(text: str, tokens: Mapping[str, str | None], source: str) -> str:
    used = _TOKEN.findall(text)
    unknown = sorted({t for t in used if t not in tokens})
    if unknown:
        raise RenderError(
            f"template {source} uses unknown token(s): {', '.join(unknown)}",
            "fix the template, or compute the token in okstra_engine.prompts",
        )
    unfilled = sorted({t for t in used if tokens[t] is None})
    if unfilled:
        raise RenderError(
            f"template {source}: token(s) {', '.join(unfilled)} have no value for this run",
            "this phase does not provide them: remove them from the template",
        )
    stray = _BRACES.search(_TOKEN.sub("", text))
    if stray:
        line = text.count("\n", 0, _position_in(text, stray.group())) + 1
        raise RenderError(
            f"template {source} line {line}: a stray '{stray.group()}' is not a {{{{TOKEN}}}}", "close or remove it"
        )
    # one pass: values are inserted verbatim, never scanned again for tokens
    return _TOKEN.sub(lambda m: str(tokens[m.group(1)]), text)


def _position_in(text: str, needle: str) -> int:
    cleaned = _TOKEN.sub(lambda m: "\0" * len(m.group()), text)
    return max(cleaned.find(needle), 0)


@dataclass(frozen=True)
class TeamPlan:
    mode: TeamMode
    name: str | None


def team_plan(
    task_type: str, project_id: str, task_ref: str, stage: int | None, workers: Sequence[str], concurrent: Sequence[int]
) -> TeamPlan:
    if task_type in SINGLE_LEAD_PHASES or not workers:
        return TeamPlan("single-lead", None)
    if task_type == "implementation" and concurrent:
        return TeamPlan("no-team", None)
    # an implementation team is the stage's own; other phases' team is the task's
    ref = TaskRef.parse(task_ref)
    return TeamPlan("gate", team_name(project_id, ref, stage if task_type == "implementation" else None))


def parse_workers(text: str | None) -> list[str]:
    """`claude,codex` → ['claude', 'codex']; empty or None → no workers."""
    if not text:
        return []
    workers = [w.strip().lower() for w in text.split(",") if w.strip()]
    bad = [w for w in workers if w not in WORKER_KINDS]
    if bad:
        raise OkstraError(
            f"unknown worker(s): {', '.join(bad)}", f"choose from {', '.join(WORKER_KINDS)}, comma-separated"
        )
    return list(dict.fromkeys(workers))


@dataclass(frozen=True)
class PromptInputs:
    task_ref: str
    task_key: str
    project_id: str
    task_title: str
    task_type: str
    project_root: Path
    run_id: str
    run_dir: Path
    plan_dir: Path | None
    ledger_path: Path | None
    qa_commands: Sequence[str]
    worktree_path: str
    worktree_branch: str
    worktree_base: str
    worktree_status: str
    worktree_note: str
    workers: Sequence[str] = ()
    stage: int | None = None
    stage_title: str | None = None
    target: str | None = None
    """What a final verification checks (`whole task`, `stage 3`)."""
    concurrent_stages: Sequence[int] = ()


def lead_prompt(inp: PromptInputs) -> tuple[str, TeamPlan]:
    team = team_plan(inp.task_type, inp.project_id, inp.task_ref, inp.stage, inp.workers, inp.concurrent_stages)
    tokens: dict[str, str | None] = {
        "RUN_ID": inp.run_id,
        "RUN_DIR": str(inp.run_dir),
        "TASK_REF": inp.task_ref,
        "TASK_KEY": inp.task_key,
        "TASK_TITLE": inp.task_title,
        "TASK_TYPE": inp.task_type,
        "PROJECT_ROOT": str(inp.project_root),
        "STAGES": f"stage {inp.stage}" if inp.stage is not None else (inp.target or "the whole task"),
        "STAGE": str(inp.stage) if inp.stage is not None else None,
        "STAGE_TITLE": inp.stage_title,
        "WORKTREE_PATH": inp.worktree_path,
        "WORKTREE_BRANCH": inp.worktree_branch,
        "WORKTREE_BASE": inp.worktree_base,
        "WORKTREE_STATUS": inp.worktree_status,
        "WORKTREE_NOTE": f"> {inp.worktree_note}" if inp.worktree_note else "",
        "WORKERS": ", ".join(inp.workers) if inp.workers else "none (single lead)",
        "TEAM_NAME": team.name,
        "CONCURRENT_STAGES": ", ".join(map(str, inp.concurrent_stages)) or None,
        "PLAN_PATH": str(inp.plan_dir / "plan.md") if inp.plan_dir else None,
        "LEDGER_PATH": str(inp.ledger_path) if inp.ledger_path else "(none: this phase records nothing)",
        "CARRY_PATH": str(inp.plan_dir / "carry" / f"stage-{inp.stage}.json")
        if inp.plan_dir and inp.stage is not None
        else None,
        "QA_COMMANDS": "\n".join(f"  - `{c}`" for c in inp.qa_commands)
        or "  - (none configured: say so in your report)",
    }
    if inp.stage is not None:
        record = [
            "okstra",
            "record",
            inp.task_ref,
            "--stage",
            str(inp.stage),
            "--run",
            inp.run_id,
            "--project",
            str(inp.project_root),
        ]
        tokens["RECORD_STARTED_CMD"] = shlex.join([*record, "--status", "started"])
        tokens["RECORD_DONE_CMD"] = shlex.join([*record, "--status", "done", "--commit"]) + " <full SHA>"
    else:
        tokens["RECORD_STARTED_CMD"] = tokens["RECORD_DONE_CMD"] = None
    if inp.task_type == "implementation":
        for token, name in (
            ("IMPLEMENTATION_EXECUTOR", "implementation-executor"),
            ("IMPLEMENTATION_VERIFIER", "implementation-verifier"),
            ("IMPLEMENTATION_DELIVERABLE", "implementation-deliverable"),
        ):
            tokens[token] = render_template(f"partials/{name}.md", tokens).rstrip("\n")
    tokens["COMMON_CONTRACT"] = render_template("partials/common-contract.md", tokens).rstrip("\n")
    tokens["TEAM_BLOCK"] = render_template(f"teams/{team.mode}.md", tokens).rstrip("\n")
    tokens["PHASE_PROFILE"] = render_template(f"profiles/{inp.task_type}.md", tokens).rstrip("\n")
    text = render_template("launch.template.md", tokens)
    # an empty optional block (no worktree note) must not leave a hole of blank lines
    return re.sub(r"\n{3,}", "\n\n", text), team
