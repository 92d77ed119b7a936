"""`okstra validate-run RUN_DIR`: check a finished run against what its prompt asked.

The run's project and task come from the run folder's place (`launch.run_context`); the
manifest only says what the run is (phase, stage, team mode, the lead agent's teams
kind). The checks:

- the team state (`run_contract.TeamState`) is there, valid, of this run, and says what
  its team mode allows (`run_contract` says which);
- the phase's output (`run_contract.PHASE_OUTPUTS`) is written: a plan with a Stage Map,
  a verdict that starts with PASS or FAIL, a report;
- an implementation run has its `started` and `done` rows, the done commit on the
  stage's branch, and a carry sidecar that says what the done row says.

Every violation is listed with what is wrong, where, and how to fix it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .agent_events import EVENTS_NAME
from .documents import Doc
from .errors import OkstraError, describe_validation_error
from .launch import run_context
from .run_contract import (
    PHASE_OUTPUTS,
    SESSION_TEAM,
    TEAM_STATE_NAME,
    TEAM_STATE_SCHEMA_NAME,
    WORKERS_DIR,
    RunTerms,
    TeamState,
    run_terms,
    session_team,
    verdict_of,
)
from .tasks import Task


@dataclass(frozen=True)
class Violation:
    code: str
    what: str
    where: str
    how: str


@dataclass
class RunCheck:
    run_id: str
    run_dir: Path
    task_type: str
    stage: int | None
    violations: list[Violation] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "run_dir": str(self.run_dir),
            "task_type": self.task_type,
            "stage": self.stage,
            "ok": self.ok,
            "violations": [asdict(v) for v in self.violations],
        }


def validate_run(run_dir: Path) -> RunCheck:
    task, launched = run_context(run_dir)
    run_dir = run_dir.resolve()
    manifest = run_terms(launched, run_dir)
    check = RunCheck(manifest.run_id, run_dir, manifest.task_type, manifest.stage)
    _check_team_state(check, manifest)
    _check_output(check, manifest)
    if manifest.task_type == "implementation" and manifest.stage is not None:
        _check_ledger(check, task, manifest.stage)
    return check


# ---------------------------------------------------------------------------- team state


def _check_team_state(check: RunCheck, manifest: RunTerms) -> None:
    path = check.run_dir / TEAM_STATE_NAME
    schema = check.run_dir / TEAM_STATE_SCHEMA_NAME
    fix = f"write it as the prompt's team block says (its JSON Schema: {schema})"

    def bad(code: str, what: str, how: str = fix) -> None:
        check.violations.append(Violation(f"team-state.{code}", what, str(path), how))

    if path.is_symlink() or (path.exists() and not path.is_file()):
        bad("missing", f"{TEAM_STATE_NAME} is not a plain file")
        return
    try:
        state = TeamState.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        bad("missing", f"the run has no team state ({TEAM_STATE_NAME})")
        return
    except (OSError, ValidationError) as exc:
        what = describe_validation_error(exc, TEAM_STATE_NAME) if isinstance(exc, ValidationError) else str(exc)
        bad("invalid", f"the team state does not follow its schema: {what}")
        return
    mode = manifest.team.mode
    if state.run_id != manifest.run_id:
        bad("run", f"runId is {state.run_id!r}, not this run's {manifest.run_id!r}")
    kind = manifest.teams_kind()
    if kind is not None and state.teams != kind:
        bad("teams", f'teams is "{state.teams}", but the prompt was written for "{kind}" agent teams')
    if state.mode != mode:
        bad("mode", f'mode is "{state.mode}", but the prompt gave this run the "{mode}" team block')
    for what, how in _team_rules(state, mode, manifest, check.run_dir):
        bad("contract", what, how)
    for worker in state.workers:
        if worker.result is None:
            continue
        result = Path(worker.result)
        if not result.is_absolute() or result.parent.resolve() != check.run_dir / WORKERS_DIR:
            bad(
                "worker",
                f"worker {worker.name!r}: its result {worker.result} is not in {check.run_dir / WORKERS_DIR}",
                "give each worker a result file in the run's workers folder",
            )
        elif not result.is_file():
            bad(
                "worker",
                f"worker {worker.name!r}: its result file {worker.result} was not written",
                "wait for the worker to finish, or say in your report why it did not, and drop it from workers",
            )


def _team_rules(state: TeamState, mode: str, manifest: RunTerms, run_dir: Path) -> list[tuple[str, str]]:
    """(what, how) for each way the state breaks its team mode's rules."""
    found: list[tuple[str, str]] = []
    create, name = state.team_create, state.team_name
    if mode == "gate":
        if create is None or not create.attempted or create.status not in ("ok", "error"):
            found.append(
                (
                    "the gate needs teamCreate {attempted: true, status: ok|error}, written before any dispatch",
                    "record what creating the team did",
                )
            )
        elif create.status == "error" and not create.error:
            found.append(("teamCreate.status is error, with no error message", "add what the team tool said"))
        if name != manifest.team.name:
            found.append((f"teamName is {name!r}, not {manifest.team.name!r}", "the team is the one okstra named"))
        return found
    if mode == "no-team":
        stages = manifest.concurrent_run.active_stages
        if (
            create is None
            or create.attempted
            or create.status != "skipped"
            or create.reason != "concurrent-run"
            or sorted(create.concurrent_stages or []) != sorted(stages)
        ):
            found.append(
                (
                    "beside stages in flight the team state must say teamCreate {attempted: false, status: skipped, "
                    f"reason: concurrent-run, concurrentStages: {stages}}}",
                    "record that no team was created, and why",
                )
            )
        if name is not None:
            found.append((f"teamName is {name!r}: this run creates no team", 'write "teamName": null'))
        return found
    if create is not None:
        why = "the session's team is implicit: there is nothing to create" if mode == "implicit" else "no team"
        found.append((f"teamCreate is recorded, but {why} ({mode})", "remove teamCreate"))
    if mode == "implicit":
        found += _session_team_rules(name, run_dir)
    elif name is not None:
        found.append((f"teamName is {name!r}, but this {mode} run has no team", 'write "teamName": null'))
    if mode == "single-lead" and state.workers:
        found.append(("a single lead dispatches no workers, yet workers are listed", "remove them"))
    return found


def _session_team_rules(name: str | None, run_dir: Path) -> list[tuple[str, str]]:
    if name is None:
        return []
    how = "write session- and the first 8 characters of the session id, or null when you do not know it"
    if not SESSION_TEAM.fullmatch(name):
        return [(f"teamName {name!r} is not a session's team (session-XXXXXXXX)", how)]
    sessions = _session_ids(run_dir / EVENTS_NAME)
    if sessions and name not in {session_team(s) for s in sessions}:
        return [(f"teamName {name!r} is no session's team that {EVENTS_NAME} names ({', '.join(sessions)})", how)]
    return []


class _Event(Doc):
    session_id: str | None = None


def _session_ids(path: Path) -> list[str]:
    from .jsonl import parse_jsonl

    try:
        rows, _ = parse_jsonl(path.read_bytes(), _Event, path.name)
    except OSError:
        return []
    return list(dict.fromkeys(r.session_id for r in rows if r.session_id))


# ---------------------------------------------------------------------------- outputs


def _check_output(check: RunCheck, manifest: RunTerms) -> None:
    name, what = PHASE_OUTPUTS[manifest.task_type]
    path = check.run_dir / name

    def bad(code: str, text: str, how: str) -> None:
        check.violations.append(Violation(f"output.{code}", text, str(path), how))

    try:
        text = path.read_text(encoding="utf-8") if not path.is_symlink() else None
    except (OSError, UnicodeDecodeError):
        text = None
    if not text or not text.strip():
        bad("missing", f"{what} ({name}) was not written", f"write {what} to {path}")
        return
    if manifest.task_type == "planning":
        from .plans import front_matter
        from .stage_map import parse_stage_map_markdown

        if "approved" not in front_matter(text):
            bad("plan", "the plan has no front matter with approved: false", "start it with ---, approved: false, ---")
        try:
            parse_stage_map_markdown(text, name)
        except OkstraError as exc:
            bad("plan", f"the plan's Stage Map cannot be read: {exc.what}", exc.how or "fix the table")
    elif manifest.task_type == "final-verification":
        verdict, first = verdict_of(text)
        if verdict is None:
            bad(
                "verdict", f"the verdict's first line is {first[:80]!r}, not PASS or FAIL", "start it with PASS or FAIL"
            )


# ---------------------------------------------------------------------------- ledger


def _check_ledger(check: RunCheck, task: Task, stage: int) -> None:
    from . import git
    from .carry import read_carry
    from .ledger import read_ledger
    from .plans import plan_run_root
    from .run_folder import LEDGER_NAME
    from .tasks import stage_branch

    plan = plan_run_root(task)
    if plan is None:
        check.violations.append(
            Violation("ledger.plan", f"{task.ref} has no current plan", str(task.dir), "approve the task's plan")
        )
        return
    ledger = plan.dir / LEDGER_NAME

    def bad(code: str, what: str, how: str, where: Path = ledger) -> None:
        check.violations.append(Violation(f"ledger.{code}", what, str(where), how))

    rows = [r for r in read_ledger(ledger).rows if r.stage == stage and r.run_id == check.run_id]
    started = next((i for i, r in enumerate(rows) if r.status == "started"), None)
    done = [(i, r) for i, r in enumerate(rows) if r.status == "done"]
    record = f"okstra record {task.ref} --stage {stage} --run {check.run_id}"
    if started is None:
        bad("started", f"stage {stage} has no started row of this run", f"{record} --status started")
    if not done:
        bad("done", f"stage {stage} has no done row of this run", f"{record} --status done --commit SHA")
        return
    at, row = done[-1]
    if started is not None and started > at:
        bad("order", f"stage {stage}'s started row comes after its done row", "record started before any change")
    commit = row.head_commit
    if commit and task.project.is_git:
        branch = stage_branch(task, stage)
        on_branch = git.contains(task.project.repo, f"refs/heads/{branch}", commit)
        if on_branch is False:
            bad(
                "commit",
                f"the done commit {commit[:12]} is not on the stage's branch {branch}",
                f"record the commit the stage's work ends at on {branch}",
            )
    sidecar = read_carry(plan.dir).sidecars.get(stage)
    where = plan.dir / "carry" / f"stage-{stage}.json"
    if sidecar is None:
        bad("carry", f"stage {stage} has no carry sidecar", "write it as the prompt's last steps say", where)
    elif commit and sidecar.head_commit != commit:
        bad(
            "carry",
            f"the carry sidecar says {sidecar.head_commit}, the done row {commit}",
            "write the done commit's full SHA in both",
            where,
        )
    elif sidecar.impl_task_key != task.key:
        bad("carry", f"the carry sidecar's impl_task_key is {sidecar.impl_task_key!r}", f"write {task.key!r}", where)
