"""What a run's lead must leave in its run folder: the team state file and the phase's
outputs. The prompt tells the lead these names and formats (`prompts.py`), `prepare`
writes the team state's JSON Schema beside the prompt, the simulated lead writes them,
and `validate_run` checks a finished run against them.

The team state (`team-state.json`) says how the lead ran its team, before any worker
was dispatched. Its `mode` is the run's team mode (`prompts.TeamMode`):

- `gate` (explicit teams): `teamCreate: {attempted: true, status: ok|error[, error]}`
  and `teamName`, the exact team okstra named;
- `no-team` (explicit teams, other stages in flight): `teamCreate: {attempted: false,
  status: skipped, reason: concurrent-run, concurrentStages: [...]}`, no team name;
- `implicit`: no `teamCreate` (there is nothing to create); `teamName` the session's
  team, `session-` and 8 characters of its session id (null when unknown);
- `background` (no teams) and `single-lead`: no `teamCreate`, no team name.

`workers` lists the workers started as background processes, each with its result file
in the run folder.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .agents import AgentInfo, TeamsKind
from .documents import Doc
from .runs import RunManifest

TEAM_STATE_NAME = "team-state.json"
TEAM_STATE_SCHEMA_NAME = "team-state.schema.json"
WORKERS_DIR = "workers"
REPORT_NAME = "report.md"
"""Where okstra's hooks record the agent's session (`session_id` in each row)."""

TeamMode = Literal["gate", "no-team", "implicit", "background", "single-lead"]

PHASE_OUTPUTS: dict[str, tuple[str, str]] = {
    "planning": ("plan.md", "the plan"),
    "implementation": (REPORT_NAME, "your report"),
    "final-verification": ("verification.md", "the verdict"),
    "improvement-discovery": ("improvements.md", "the findings"),
    "release-handoff": ("handoff.md", "the handoff notes"),
}
"""The file each phase's lead writes into its run folder, and what it is."""

VERDICTS = ("PASS", "FAIL")
"""The first line of a final verification's verdict."""
_VERDICT = re.compile(rf"[#*_>\s]*({'|'.join(VERDICTS)})\b")


def verdict_of(text: str) -> tuple[str | None, str]:
    """A final verification's verdict (PASS or FAIL, None when its first line starts with
    neither; Markdown marks before the word are allowed) and that first non-empty line."""
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    found = _VERDICT.match(first)
    return (found.group(1) if found else None), first


SESSION_TEAM = re.compile(r"session-[0-9A-Za-z]{8}")


def session_team(session_id: str) -> str:
    """The implicit team of a Claude Code session."""
    return f"session-{session_id[:8]}"


class _Strict(BaseModel):
    # a misspelt key is an error the lead can fix, not a field silently dropped
    model_config = ConfigDict(extra="forbid", populate_by_name=True, defer_build=True)


class TeamCreate(_Strict):
    attempted: bool
    status: Literal["ok", "error", "skipped"]
    error: str | None = Field(default=None, description="what the team tool said, when status is error")
    reason: Literal["concurrent-run"] | None = Field(default=None, description="why no team was created")
    concurrent_stages: list[int] | None = Field(
        default=None, alias="concurrentStages", description="the stages in flight elsewhere"
    )


class Worker(_Strict):
    name: str = Field(min_length=1)
    kind: str = Field(min_length=1, description="claude, codex or gemini")
    result: str | None = Field(default=None, description="absolute path of its result file in the run folder")


class TeamState(_Strict):
    """`RUN_DIR/team-state.json`: how the lead ran its team (see the module doc)."""

    v: Literal[1] = 1
    run_id: str = Field(alias="runId")
    teams: TeamsKind
    mode: TeamMode
    team_name: str | None = Field(default=None, alias="teamName")
    team_create: TeamCreate | None = Field(default=None, alias="teamCreate")
    workers: list[Worker] = []
    notes: str | None = None

    def to_text(self) -> str:
        doc = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        if not doc["workers"]:
            del doc["workers"]
        return json.dumps(doc, ensure_ascii=False)


def schema_text() -> str:
    """The JSON Schema of `team-state.json`, as `prepare` writes it beside the prompt."""
    schema = TeamState.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "okstra team state"
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def expected_team_state(
    *,
    run_id: str,
    teams: TeamsKind,
    mode: TeamMode,
    team_name: str | None,
    concurrent: list[int],
    workers: list[str],
    run_dir: Path,
) -> TeamState:
    """The team state the prompt shows its lead: what okstra knows before the run (the
    gate's `status` is the lead's to write; an implicit team's name too)."""
    create = None
    if mode == "gate":
        create = TeamCreate(attempted=True, status="ok")
    elif mode == "no-team":
        create = TeamCreate(attempted=False, status="skipped", reason="concurrent-run", concurrent_stages=concurrent)
    # background processes: every worker without a team, and beside an implicit team
    # the workers that are not Claude Code teammates
    background = workers if mode in ("background", "no-team") else [w for w in workers if w != "claude"]
    listed = [] if mode in ("gate", "single-lead") else background
    return TeamState(
        run_id=run_id,
        teams=teams,
        mode=mode,
        team_name=team_name if mode == "gate" else None,
        team_create=create,
        workers=[Worker(name=w, kind=w, result=str(worker_result(run_dir, w))) for w in listed],
    )


def worker_result(run_dir: Path, name: str) -> Path:
    return run_dir / WORKERS_DIR / f"{name}.md"


class _Team(Doc):
    mode: TeamMode
    name: str | None = None


class _Concurrent(Doc):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    active_stages: list[int] = Field(default=[], alias="activeStages")


class RunTerms(RunManifest):
    """What a prepared run's manifest says its prompt asked for: its team mode, the
    agent's teams kind, the stages in flight beside it."""

    team: _Team
    agent: AgentInfo | None = None
    concurrent_run: _Concurrent = Field(default_factory=_Concurrent, alias="concurrentRun")

    def teams_kind(self) -> TeamsKind | None:
        """The teams kind the prompt was written for; a run prepared before okstra
        recorded it had the explicit contract (or, alone, none at all)."""
        if self.agent is not None:
            return self.agent.teams
        return "explicit" if self.team.mode in ("gate", "no-team") else None


def run_terms(manifest: RunManifest, run_dir: Path) -> RunTerms:
    """`manifest` (read by `launch.run_context`) with the contract's fields typed."""
    from .errors import OkstraError, describe_validation_error

    try:
        return RunTerms.model_validate(manifest.model_dump(by_alias=True))
    except ValidationError as exc:
        raise OkstraError(
            describe_validation_error(exc, str(run_dir / "manifest.json")), "prepare the run again"
        ) from exc
