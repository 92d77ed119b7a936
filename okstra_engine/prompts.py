"""The lead prompt: strict `{{TOKEN}}` templates from `prompts/`, filled by the engine.

Strict means a template that names a token the engine did not compute, or a token left
without a value, is an error naming both — a prompt with a hole in it would send an
agent off with half its instructions.

The prompt follows the run's team mode, which the lead agent's teams kind
(`agents.TeamsKind`) decides for a run with workers: explicit teams create the team okstra
names (`gate`), or none while other stages are in flight (`no-team`); implicit teams use
the session's own (`implicit`); without teams workers run as background processes
(`background`). A phase without workers, or run alone, has a `single-lead`. Every path in
the prompt is absolute, and every okstra command names the okstra that rendered it (so it
runs whatever the agent's PATH). A run beside stages in flight names them and their
worktrees in every mode.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .agent_events import EVENTS_NAME
from .agents import PROFILES, TeamsKind
from .errors import OkstraError
from .resources import prompts_dir
from .run_contract import (
    PHASE_OUTPUTS,
    TEAM_STATE_NAME,
    TEAM_STATE_SCHEMA_NAME,
    WORKERS_DIR,
    TeamCreate,
    TeamMode,
    expected_team_state,
    worker_result,
)
from .slugs import TaskRef
from .teams import team_name

_TOKEN = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")
_BRACES = re.compile(r"\{\{|\}\}")

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
    task_type: str,
    project_id: str,
    task_ref: str,
    stage: int | None,
    workers: Sequence[str],
    concurrent: Sequence[int],
    teams: TeamsKind,
) -> TeamPlan:
    if task_type in SINGLE_LEAD_PHASES or not workers:
        return TeamPlan("single-lead", None)
    if teams == "implicit":
        return TeamPlan("implicit", None)  # the session's team: its name is the session's
    if teams == "none":
        return TeamPlan("background", None)
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
    teams: TeamsKind
    okstra: Sequence[str]
    """The command that runs this okstra (`agent_events.okstra_argv()`)."""
    qa_manifest: Path
    """The task's QA waivers (`conformance.manifest_path`)."""
    workers: Sequence[str] = ()
    stage: int | None = None
    stage_title: str | None = None
    target: str | None = None
    """What a final verification checks (`whole task`, `stage 3`)."""
    concurrent_stages: Sequence[int] = ()
    concurrent_places: Mapping[int, tuple[str, str]] = field(default_factory=dict)
    """Where the stages in flight work: stage → (worktree, branch)."""
    copied: Sequence[str] = ()
    """Files `.worktreeinclude` copied into the new worktree (relative to its project folder)."""
    linked: Sequence[str] = ()
    """Folders of the project checkout the new worktree links to, shared by every worktree."""
    setup_commands: Sequence[str] = ()
    """The setup commands run in the new worktree."""
    setup_log: Path | None = None
    port: int | None = None
    """The first port of the stage's block (`OKSTRA_PORT`)."""


def lead_prompt(inp: PromptInputs) -> tuple[str, TeamPlan]:
    team = team_plan(
        inp.task_type, inp.project_id, inp.task_ref, inp.stage, inp.workers, inp.concurrent_stages, inp.teams
    )
    okstra = shlex.join(inp.okstra)
    worktree_q = shlex.quote(inp.worktree_path)
    output_name, _ = PHASE_OUTPUTS[inp.task_type]
    state = expected_team_state(
        run_id=inp.run_id,
        teams=inp.teams,
        mode=team.mode,
        team_name=team.name,
        concurrent=list(inp.concurrent_stages),
        workers=list(inp.workers),
        run_dir=inp.run_dir,
    )
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
        "WORKTREE_PATH_Q": worktree_q,
        "WORKTREE_BRANCH": inp.worktree_branch,
        "WORKTREE_BASE": inp.worktree_base,
        "WORKTREE_STATUS": inp.worktree_status,
        "WORKTREE_NOTE": f"> {inp.worktree_note}" if inp.worktree_note else "",
        "WORKTREE_READY": _ready(inp),
        "WORKERS": ", ".join(inp.workers) if inp.workers else "none (single lead)",
        "WORKERS_DIR": str(inp.run_dir / WORKERS_DIR),
        "TEAM_NAME": team.name,
        "TEAMS_KIND": inp.teams,
        "CONCURRENT_STAGES": ", ".join(map(str, inp.concurrent_stages)) or None,
        "PLAN_PATH": str(inp.plan_dir / "plan.md") if inp.plan_dir else None,
        "LEDGER_PATH": str(inp.ledger_path) if inp.ledger_path else None,
        "CARRY_PATH": str(inp.plan_dir / "carry" / f"stage-{inp.stage}.json")
        if inp.plan_dir and inp.stage is not None
        else None,
        "OUTPUT_PATH": str(inp.run_dir / output_name),
        "QA_MANIFEST_PATH": str(inp.qa_manifest),
        "QA_COMMANDS": "\n".join(f"  - `{c}`" for c in inp.qa_commands)
        or "  - (none configured: say so in your report)",
        "OKSTRA": okstra,
        "HEAD_CMD": f"git -C {worktree_q} rev-parse HEAD",
        "VALIDATE_CMD": shlex.join([*inp.okstra, "validate-run", str(inp.run_dir)]),
        "PLAN_APPROVE_CMD": shlex.join(
            [*inp.okstra, "plan", "approve", inp.task_ref, "--project", str(inp.project_root)]
        ),
        "QUARANTINE_MOVE_CMD": shlex.join([*inp.okstra, "quarantine", "move", team.name, "--run", inp.run_id, "--yes"])
        if team.name
        else None,
        "TEAM_STATE_PATH": str(inp.run_dir / TEAM_STATE_NAME),
        "TEAM_STATE_SCHEMA_PATH": str(inp.run_dir / TEAM_STATE_SCHEMA_NAME),
        "TEAM_STATE_EXAMPLE": (
            state.model_copy(update={"team_name": "session-<first 8 characters of your session id>"})
            if team.mode == "implicit"
            else state
        ).to_text(),
        "TEAM_CREATE_ERROR": _json(
            TeamCreate(attempted=True, status="error", error="<what the tool said>").model_dump(exclude_none=True)
        ),
        "AGENT_EVENTS_PATH": str(inp.run_dir / EVENTS_NAME),
        "BACKGROUND_WHICH": " that is not a teammate" if team.mode == "implicit" else "",
        "WORKER_COMMANDS": "\n".join(
            f'  - {w}: `{shlex.join(PROFILES[w].headless)} "<its task>" > {shlex.quote(str(worker_result(inp.run_dir, w)))} &`'
            for w in inp.workers
        ),
        "CONCURRENT_PLACES": "\n".join(
            f"- stage {n}: worktree `{where}`, branch `{branch}`"
            for n, (where, branch) in sorted(inp.concurrent_places.items())
        ),
    }
    if inp.stage is not None:
        record = [
            *inp.okstra,
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
        tokens["RECORD_DONE_CMD"] = (
            shlex.join([*record, "--status", "done", "--commit"]) + f' "$({tokens["HEAD_CMD"]})"'
        )
    else:
        tokens["RECORD_STARTED_CMD"] = tokens["RECORD_DONE_CMD"] = None
    tokens["WRITE_PLACES"] = _write_places(inp, tokens)
    tokens["LEDGER_RULE"] = _optional("partials/ledger-rule.md", tokens, inp.ledger_path is not None)
    # a plan is words: there is nothing to verify yet
    tokens["QA_RULE"] = _optional("partials/qa-rule.md", tokens, inp.task_type != "planning")
    tokens["BACKGROUND_WORKERS"] = _optional(
        "partials/background-workers.md", tokens, team.mode in ("implicit", "background", "no-team")
    )
    tokens["CONCURRENT_NOTICE"] = _optional("partials/concurrent-run.md", tokens, bool(inp.concurrent_stages))
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


def _optional(name: str, tokens: Mapping[str, str | None], wanted: bool) -> str:
    """The partial `name` rendered, ending in one newline; nothing when not `wanted`."""
    return render_template(name, tokens).strip("\n") + "\n" if wanted else ""


def _ready(inp: PromptInputs) -> str:
    """What okstra put in the worktree and gave the run beyond git's files; nothing when
    it gave nothing."""
    lines = []
    if inp.port is not None:
        from .ports import BLOCK, VARIABLE

        lines.append(
            f"- **ports:** `{VARIABLE}={inp.port}` is in your environment: ports {inp.port}–{inp.port + BLOCK - 1} "
            "are this stage's own; start any server (and tell any worker to start its servers) on them, never on "
            "a fixed port another stage may use"
        )
    if inp.copied:
        files = ", ".join(f"`{f}`" for f in inp.copied)
        lines.append(
            f"- **copied from the project checkout** (`.worktreeinclude`): {files}; git ignores them: never commit "
            "them, and never print their secrets"
        )
    if inp.linked:
        folders = ", ".join(f"`{f}`" for f in inp.linked)
        lines.append(
            f"- **shared folders** (links to the project checkout's, shared by every worktree): {folders}; "
            "read them, never change them"
        )
    if inp.setup_commands:
        commands = ", ".join(f"`{c}`" for c in inp.setup_commands)
        log = f" (output: `{inp.setup_log}`)" if inp.setup_log else ""
        lines.append(f"- **set up** by okstra when the worktree was made: {commands}{log}")
    return "\n".join(lines)


def _json(doc: object) -> str:
    return json.dumps(doc, ensure_ascii=False)


def _write_places(inp: PromptInputs, tokens: Mapping[str, str | None]) -> str:
    """The exact places the lead may write, and what the worktree is for."""
    _, what = PHASE_OUTPUTS[inp.task_type]
    places = []
    if inp.task_type == "implementation":
        places.append(f"- `{inp.worktree_path}`: the stage's change, committed on `{inp.worktree_branch}`")
    places += [
        f"- `{tokens['OUTPUT_PATH']}`: {what}",
        f"- `{tokens['TEAM_STATE_PATH']}`: your team state",
    ]
    if inp.workers and inp.task_type not in SINGLE_LEAD_PHASES:
        places.append(f"- `{tokens['WORKERS_DIR']}/`: what the workers write")
    places.append(f"- `{inp.run_dir}/`: any other notes you write for people")
    if tokens["CARRY_PATH"] and inp.task_type == "implementation":
        places.append(f"- `{tokens['CARRY_PATH']}`: the carry sidecar, once the stage is finished")
    rest = ["Nowhere else: not other okstra worktrees, and no okstra file but these."]
    if inp.task_type == "planning":
        rest.append(f"`{inp.worktree_path}` is for reading: change nothing in it.")
    elif inp.task_type != "implementation":
        rest.append(
            f"`{inp.worktree_path}` is for reading: change nothing in it (running the QA commands there is fine)."
        )
    if Path(inp.worktree_path) != inp.project_root:
        rest.append(f"The project folder `{inp.project_root}` is another checkout: leave it alone.")
    return "\n".join(places) + "\n\n" + " ".join(rest)
