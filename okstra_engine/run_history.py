"""A task's runs as history: for each run folder, when it was made, its phase and stage,
its agent, how far it got and what came of it, and the files it left that a person can
read; and what the runs say of each phase (verified, handed off).

Run folders are the agents' workplaces: every file here is read without following a
link (`fsio.read_text_nofollow`), a folder that is a link is no run (`runs.run_dirs`),
and a manifest that cannot be read leaves its run listed with what is known.
"""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .fsio import read_bytes_nofollow, read_text_nofollow
from .run_contract import PHASE_OUTPUTS, VERDICTS, verdict_of
from .runs import PHASES, run_dirs

if TYPE_CHECKING:
    from .status import TaskStatus
    from .tasks import Task

PROMPT_NAME = "prompt.md"
_READ_LIMIT = 64 * 1024
"""How much of an output the history reads to tell its outcome (a verdict's first line)."""


@dataclass(frozen=True)
class RunRecord:
    """One run folder, as far as its files tell."""

    run_id: str
    dir: Path
    phase: str | None
    """None when its manifest cannot be read."""
    stage: int | None
    created: str | None
    """When it was made (UTC, ISO 8601): its id's stamp, else its manifest's word."""
    agent: str | None
    """The lead agent the run was prepared for (`claude`, …)."""
    plan_run: str | None
    """The plan it worked from (a run id), as its manifest says."""
    state: str
    """`prepared` (nothing ran yet), the agent's state from its hooks (`working`,
    `needs-input`, `idle`, `failed`, `exited`), or `finished` (its output is written)."""
    outcome: str | None
    """What came of it: `current` / `approved` / `draft` / `broken` (a plan), `done` /
    `released` / `in-flight` (an implementation run's stage, by its ledger rows),
    `PASS` / `FAIL` (a verdict), `written` (another phase's output), or None."""
    commit: str | None = None
    """An implementation run's done commit."""
    outputs: tuple[str, ...] = ()
    """The files a person can read, by name: the phase's output, the handoff reports
    beside a plan, the other phases' outputs an agent left, the prompt."""

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "phase": self.phase,
            "stage": self.stage,
            "created": self.created,
            "agent": self.agent,
            "plan_run": self.plan_run,
            "state": self.state,
            "outcome": self.outcome,
            "commit": self.commit,
            "outputs": list(self.outputs),
        }


def _manifest(run: Path) -> dict[str, Any]:
    data = read_bytes_nofollow(run / "manifest.json", limit=1024 * 1024)
    try:
        doc = json.loads(data) if data is not None else None
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _text(doc: dict[str, Any], key: str) -> str | None:
    value = doc.get(key)
    return value if isinstance(value, str) else None


def outputs(run: Path) -> tuple[str, ...]:
    """The readable files of a run folder: each phase's output, the handoff reports
    (beside a plan), then the prompt; plain files only."""
    names = [name for name, _ in PHASE_OUTPUTS.values()]
    with contextlib.suppress(OSError):
        names += sorted(p.name for p in run.glob("handoff-*.md"))
    names.append(PROMPT_NAME)
    return tuple(n for n in dict.fromkeys(names) if (run / n).is_file() and not (run / n).is_symlink())


def read_output(task: Task, run_id: str, name: str) -> str:
    """The text of one of a run's `outputs`, never through a link; an `OkstraError`
    when it is not one of them."""
    from .errors import OkstraError
    from .run_folder import run_folder_of

    run = run_folder_of(task.runs_dir, run_id)
    if run is None or run.is_symlink() or name not in outputs(run):
        raise OkstraError(f"run {run_id} of {task.ref} has no {name}", "pick one of the files its history lists")
    text = read_text_nofollow(run / name)
    if text is None:
        raise OkstraError(f"{run / name} cannot be read (okstra follows no link)", "look at the file by hand")
    return text


def task_runs(task: Task, status: TaskStatus | None = None) -> list[RunRecord]:
    """Every run of the task, newest first. `status` (the task's, when at hand) tells
    which plan is current and what its ledger holds."""
    from .agent_state import fold_events, read_events
    from .ledger import read_ledger
    from .run_folder import LEDGER_NAME

    current = Path(status.plan_run).name if status is not None and status.plan_run else None
    ledgers: dict[str, dict[str, tuple[str, str | None]]] = {}

    def ledger_of(plan: str) -> dict[str, tuple[str, str | None]]:
        """Each run id's latest row in the ledger beside `plan`: its status, its commit."""
        if plan not in ledgers:
            rows = read_ledger(task.runs_dir / plan / LEDGER_NAME).rows if (task.runs_dir / plan).is_dir() else []
            ledgers[plan] = {r.run_id: (r.status, r.head_commit) for r in rows if r.run_id}
        return ledgers[plan]

    records = []
    for run in sorted(run_dirs(task.runs_dir), key=_made, reverse=True):
        doc = _manifest(run)
        phase = _text(doc, "task_type")
        phase = phase if phase in PHASES else None
        stage = doc.get("stage") if isinstance(doc.get("stage"), int) else None
        agent = doc.get("agent")
        plan_run = _text(doc, "plan_run")
        plan = Path(plan_run).name if plan_run else None
        files = outputs(run)
        output = PHASE_OUTPUTS[phase][0] if phase else None
        commit = None
        outcome: str | None = None
        if phase == "planning":
            outcome = _plan_outcome(run, current)
        elif phase == "implementation" and stage is not None and plan is not None:
            status_row = ledger_of(plan).get(run.name)
            if status_row is not None:
                row_status, commit = status_row
                outcome = {"done": "done", "released": "released"}.get(row_status, "in-flight")
                commit = commit if row_status == "done" else None
        elif phase == "final-verification" and output in files:
            outcome = verdict_of(read_text_nofollow(run / output, limit=_READ_LIMIT) or "")[0]
        elif output in files:
            outcome = "written"
        if output is not None and output in files:
            state = "finished"
        else:
            view = fold_events(read_events(run, tail=64 * 1024))
            state = str(view.state) if view is not None else "prepared"
        records.append(
            RunRecord(
                run.name,
                run,
                phase,
                stage,
                _stamp(run.name) or _text(doc, "created"),
                _text(agent, "name") if isinstance(agent, dict) else None,
                plan,
                state,
                outcome,
                commit,
                files,
            )
        )
    return records


def _stamp(run_id: str) -> str | None:
    """The UTC time a run id starts with (`runs.new_run_id`), as ISO 8601, or None."""
    stamp = run_id.split("-", 1)[0]
    if not re.fullmatch(r"\d{8}T\d{6}Z", stamp):
        return None
    return f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]}T{stamp[9:11]}:{stamp[11:13]}:{stamp[13:15]}Z"


def _made(run: Path) -> tuple[str, int]:
    """When a run was made: its id's stamp (to the second), then its manifest's mtime
    (runs made in the same second)."""
    try:
        mtime = (run / "manifest.json").lstat().st_mtime_ns
    except OSError:
        mtime = 0
    return run.name.split("-", 1)[0], mtime


def _plan_outcome(run: Path, current: str | None) -> str:
    from .errors import OkstraError
    from .plans import PLAN_NAME, is_approved
    from .stage_map import load_stage_map

    if run.name == current:
        return "current"
    try:
        load_stage_map(run)
    except OkstraError:
        return "broken"
    return "approved" if is_approved(read_text_nofollow(run / PLAN_NAME, limit=_READ_LIMIT) or "") else "draft"


def last_verification(runs: list[RunRecord], plan_run: str | None) -> RunRecord | None:
    """The newest final verification of the whole task under the plan `plan_run` (a
    path or run id) that gave a verdict, or None."""
    plan = Path(plan_run).name if plan_run else None
    return next(
        (
            r
            for r in runs
            if r.phase == "final-verification" and r.stage is None and r.plan_run == plan and r.outcome in VERDICTS
        ),
        None,
    )


def phase_marks(runs: list[RunRecord], plan_run: str | None) -> dict[str, str]:
    """What the runs under the plan `plan_run` say of each phase that ran: `verified` /
    `verification-failed` (the newest verdict on the whole task), `handed-off` (a release
    handoff wrote its notes), `findings` (improvement discovery wrote its findings)."""
    marks: dict[str, str] = {}
    checked = last_verification(runs, plan_run)
    if checked is not None:
        marks["final-verification"] = "verified" if checked.outcome == "PASS" else "verification-failed"
    plan = Path(plan_run).name if plan_run else None
    for phase, mark in (("release-handoff", "handed-off"), ("improvement-discovery", "findings")):
        if any(
            r.phase == phase and r.outcome == "written" and (r.plan_run == plan or r.plan_run is None) for r in runs
        ):
            marks[phase] = mark
    return marks
