"""Plans: a planning run's `plan.md`, its front matter and Stage Map, and which plan is
the task's current one.

The current plan is the planning run the task's pointer (`current-plan.json` in the task
folder) names, with when it was approved and the plans it replaced; only a planning run
(its manifest says so) can be named. `plan import --approve` and `plan approve` write it,
atomically and under the task mutex. A task without a pointer takes the newest approved
planning run by its approval time, and the first command that writes anyway (`plan
import`, `plan approve`, `prepare`) records that choice as its pointer; `status` never
writes it.

The current plan's run folder is the task's plan run root: the ledger, carry sidecars
and handoff records of implementation live beside it. So a plan that replaces another
starts with a ledger of its own, and the replaced plan's stays as it was. A plan whose
ledger has rows is replaced only when asked (`--replace`): `gates.replan_refusal` says
what would be set aside.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from . import clock
from .documents import Doc, load_doc, save_doc
from .errors import OkstraError
from .fsio import atomic_write_text, read_bytes_nofollow, write_dir
from .locks import task_mutex
from .run_folder import POINTER_NAME, run_folder_of
from .runs import RunManifest, new_run_id, run_dirs
from .stage_map import StageMap, load_stage_map, parse_stage_map_json, parse_stage_map_markdown, render_stage_map_table
from .tasks import Task

if TYPE_CHECKING:
    from .refusals import Refusal

PLAN_NAME = "plan.md"
STAGE_MAP_JSON = "stage-map.json"
_FRONT = re.compile(r"\A---[ \t]*\n(.*?)^---[ \t]*$\n?", re.S | re.M)
_APPROVED = re.compile(r"^approved[ \t]*:[ \t]*(\S+)[ \t]*$", re.M | re.I)


def front_matter(text: str) -> dict[str, str]:
    """The `key: value` lines of a YAML-style front matter block (flat values only)."""
    match = _FRONT.match(text)
    if not match:
        return {}
    fields = {}
    for line in match.group(1).splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() and not key.startswith((" ", "\t", "#")):
            fields[key.strip().lower()] = value.strip().strip("'\"")
    return fields


def plan_body(text: str) -> str:
    """`text` without its front matter block (what a person reads of a plan)."""
    match = _FRONT.match(text)
    return text[match.end() :] if match else text


def is_approved(text: str) -> bool:
    return front_matter(text).get("approved", "").lower() in ("true", "yes", "1")


def with_approval(text: str, when: str) -> str:
    """`text` with `approved: true` in its front matter (added when there is none)."""
    match = _FRONT.match(text)
    if not match:
        return f"---\napproved: true\napproved_at: {when}\n---\n{text}"
    body = match.group(1)
    if _APPROVED.search(body):
        body = _APPROVED.sub("approved: true", body, count=1)
    else:
        body += "approved: true\n"
    if "approved_at:" not in body:
        body += f"approved_at: {when}\n"
    return f"---\n{body}---\n{text[match.end() :]}"


# ---------------------------------------------------------------------------- planning runs


class ReplacedPlan(Doc):
    """A plan that was the task's current plan until another replaced it, and what its
    ledger held then (its run folder, ledger included, stays as it was)."""

    run: str
    approved_at: str | None = None
    replaced_at: str
    replaced_by: str
    stages: int = 0
    started: list[int] = []
    done: list[int] = []
    in_flight: list[int] = []

    def progress(self) -> str:
        """`2 of 4 stages done, 1 in flight`, or `nothing started`."""
        if not self.started:
            return "nothing started"
        return f"{len(self.done)} of {self.stages} stages done, {len(self.in_flight)} in flight"


class CurrentPlan(Doc):
    """`current-plan.json`: the planning run holding the task's current plan."""

    v: int = 1
    run: str = Field(min_length=1, description="the planning run's folder name in the task's runs folder")
    approved_at: str
    replaced: list[ReplacedPlan] = []


@dataclass(frozen=True)
class PlanRun:
    dir: Path
    approved: bool
    approved_at: str | None = None
    """When it was approved: the pointer's time for the current plan, else the front matter's."""
    replaced: tuple[ReplacedPlan, ...] = ()
    """For the current plan: the plans that were current before it, oldest first."""

    @property
    def run_id(self) -> str:
        return self.dir.name

    @property
    def plan_md(self) -> Path:
        return self.dir / PLAN_NAME

    def stage_map(self) -> StageMap:
        return load_stage_map(self.dir)


def run_phase(run: Path) -> str | None:
    """The phase a run's `manifest.json` names (`planning`, …), or None when it has no
    readable one. Read without following a link."""
    data = read_bytes_nofollow(run / "manifest.json")
    try:
        doc = json.loads(data) if data is not None else None
    except ValueError:
        return None
    phase = doc.get("task_type") if isinstance(doc, dict) else None
    return phase if isinstance(phase, str) else None


def _plan_text(run: Path) -> str | None:
    try:
        return (run / PLAN_NAME).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def plan_runs(task: Task) -> list[PlanRun]:
    """Every planning run with a plan, oldest first. Another run's folder holding a
    `plan.md`, or a link in the runs folder, is no plan."""
    found = []
    for run in run_dirs(task.runs_dir):
        if run.is_symlink():
            continue
        text = _plan_text(run)
        if text is None or run_phase(run) != "planning":
            continue
        found.append(PlanRun(run, is_approved(text), front_matter(text).get("approved_at") or None))
    return found


def waiting_plan(task: Task) -> tuple[PlanRun | None, OkstraError | None]:
    """The newest plan (what `plan approve` approves) and why its Stage Map does not
    hold (None: it holds, and the plan waits for approval once it is not current).
    A broken plan does not wait for approval: approving it is refused."""
    runs = plan_runs(task)
    if not runs:
        return None, None
    try:
        runs[-1].stage_map()
    except OkstraError as exc:
        return runs[-1], exc
    return runs[-1], None


PlanState = Literal["none", "draft", "broken", "approved"]


def plan_state(task: Task, current: str | None) -> PlanState:
    """The task's plan as a person asks after it: `approved` (there is a current plan,
    `current` its run folder), `draft` (the newest plan waits for approval), `broken`
    (its Stage Map does not hold: it waits for nothing) or `none`."""
    if current is not None:
        return "approved"
    plan, problem = waiting_plan(task)
    if plan is None:
        return "none"
    return "broken" if problem is not None else "draft"


def _made_in(plan: PlanRun) -> str:
    """The second a run was made: its id starts with its UTC stamp."""
    return plan.run_id.split("-", 1)[0]


def _when(plan: PlanRun) -> datetime:
    """When `plan` was approved; without a readable time in its front matter, when it was made."""
    from .ledger import parse_ts

    never = datetime.min.replace(tzinfo=UTC)
    approved = parse_ts(plan.approved_at or "")
    if approved != never:
        return approved
    try:
        return datetime.strptime(_made_in(plan), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return never


def newest_approved(task: Task) -> PlanRun | None:
    """The plan of a task without a pointer: the approved planning run approved last."""
    approved = [p for p in plan_runs(task) if p.approved]
    return max(approved, key=lambda p: (_when(p), p.run_id), default=None)


# ---------------------------------------------------------------------------- the current plan


def pointer_path(task: Task) -> Path:
    return task.dir / POINTER_NAME


def _pointer_fix(task: Task) -> str:
    return (
        f"restore {pointer_path(task)}, or delete it: okstra then takes the newest approved planning run "
        f"(okstra status {task.ref} names it), and okstra plan approve {task.ref} --run RUN_ID makes another one current"
    )


def read_pointer(task: Task) -> CurrentPlan | None:
    """The task's pointer, validated (it may have been written by hand or by an agent),
    or None when there is none."""
    try:
        return load_doc(pointer_path(task), CurrentPlan, how=_pointer_fix(task), follow_symlinks=False)
    except FileNotFoundError:
        return None


def _pointed_run(task: Task, doc: CurrentPlan) -> PlanRun:
    """The planning run `doc` names, refused (never followed) when it is anything else."""
    path, name, fix = pointer_path(task), doc.run, _pointer_fix(task)
    run = run_folder_of(task.runs_dir, name)
    if run is None:
        raise OkstraError(f"{path} names run {name!r}, which is not a folder of the task's runs ({task.runs_dir})", fix)
    if run.is_symlink():
        raise OkstraError(
            f"{path} names run {name}, a symbolic link in {task.runs_dir}; okstra does not follow it", fix
        )
    if not run.is_dir():
        raise OkstraError(f"{path} names run {name}, which is not in {task.runs_dir}", fix)
    phase = run_phase(run)
    if phase != "planning":
        said = f"its manifest says {phase!r}" if phase else "it has no readable manifest.json"
        raise OkstraError(f"{path} names run {name}, which is not a planning run ({said})", fix)
    if not (run / PLAN_NAME).is_file():
        raise OkstraError(f"{path} names planning run {name}, which has no {PLAN_NAME}", fix)
    return PlanRun(run, True, doc.approved_at, tuple(doc.replaced))


def plan_run_root(task: Task) -> PlanRun | None:
    """The task's current plan (its pointer's, else the newest approved), or None."""
    doc = read_pointer(task)
    if doc is not None:
        return _pointed_run(task, doc)
    return newest_approved(task)


def require_plan_run_root(task: Task) -> PlanRun:
    plan = plan_run_root(task)
    if plan is None:
        from .gates import plan_refusal

        raise plan_refusal(task).error()
    return plan


def adopt_current_plan(task: Task) -> PlanRun | None:
    """The current plan, recorded as the task's pointer when it has none yet (a task
    planned by an okstra without pointers): from then on a plan approved later, by hand
    or by an agent, does not become current unless `plan approve` makes it so."""
    with task_mutex(task):
        doc = read_pointer(task)
        if doc is not None:
            return _pointed_run(task, doc)
        plan = newest_approved(task)
        if plan is not None:
            save_doc(pointer_path(task), CurrentPlan(run=plan.run_id, approved_at=clock.iso(_when(plan))))
        return plan


def _make_current(task: Task, plan: PlanRun, old: PlanRun | None, refusal: Refusal | None) -> PlanRun:
    """Write the pointer naming `plan`; `old`, the plan it replaces, joins the list of
    replaced plans with what `refusal` (`plan.replaces_progress`) said of its progress."""
    stamp = clock.iso()
    replaced = [r for r in (old.replaced if old is not None else ()) if r.run != plan.run_id]
    if old is not None:
        progress = refusal.params if refusal is not None else {}
        replaced.append(
            ReplacedPlan(
                run=old.run_id,
                approved_at=old.approved_at,
                replaced_at=stamp,
                replaced_by=plan.run_id,
                stages=progress.get("total", 0),
                started=progress.get("started", []),
                done=progress.get("done", []),
                in_flight=progress.get("in_flight", []),
            )
        )
    doc = CurrentPlan(run=plan.run_id, approved_at=stamp, replaced=replaced)
    save_doc(pointer_path(task), doc)
    return PlanRun(plan.dir, True, stamp, tuple(replaced))


def _replacing(task: Task, old: PlanRun | None, *, replace: bool, fix: str) -> Refusal | None:
    """What a new plan would set aside of `old` (None: no progress); raised unless
    `replace`. Replacing sets the old plan's stages aside: their worktrees go, their
    branches keep their work under other names, so the new plan's stages start fresh
    (`worktrees.set_aside_stages`; refused while a stage's agent works there)."""
    if old is None:
        return None
    from .gates import replan_refusal
    from .stage_view import StageState
    from .status import task_status
    from .worktrees import set_aside_stages

    try:
        status = task_status(task)
        refusal = replan_refusal(status, fix=fix)
    except OkstraError as exc:
        if replace:  # a plan that cannot be read can still be replaced
            return None
        raise OkstraError(f"the current plan {old.run_id} cannot be read: {exc.what}", f"fix it, or: {fix}") from exc
    if refusal is not None and not replace:
        raise refusal.error()
    if refusal is not None:
        flying = [v.stage for v in status.stages if v.state is StageState.IN_FLIGHT]
        set_aside_stages(task, refusal.params["started"], old.run_id, flying=flying)
    return refusal


# ---------------------------------------------------------------------------- import, approve


def import_plan(task: Task, source: Path, *, approve: bool = False, replace: bool = False) -> PlanRun:
    """Make a planning run from an existing `plan.md` or a bare `stage-map.json`; with
    `approve`, make it the current plan (refused when the current plan has progress,
    unless `replace`).

    The Stage Map is validated before anything is written, and the run folder is built
    aside and renamed into place, so a bad plan leaves no run behind.
    """
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise OkstraError(
            f"plan file {source} does not exist", "pass the path of a plan.md or stage-map.json"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise OkstraError(f"cannot read plan file {source}: {exc}", "pass a UTF-8 plan.md or stage-map.json") from exc
    files: dict[str, str] = {}
    if source.suffix.lower() == ".json":
        stage_map = parse_stage_map_json(text, str(source))
        files[STAGE_MAP_JSON] = stage_map.model_dump_json(indent=2, exclude_none=True) + "\n"
        plan_text = (
            f"---\napproved: false\nimported_from: {source.name}\n---\n"
            f"# Plan for {task.ref}: {task.doc.title}\n\n"
            f"Imported from `{source.name}`; `{STAGE_MAP_JSON}` beside this file is the Stage Map.\n\n"
            f"{render_stage_map_table(stage_map)}"
        )
    else:
        parse_stage_map_markdown(text, str(source))
        plan_text = text

    with task_mutex(task):
        old = adopt_current_plan(task)
        fix = f"okstra plan import {task.ref} {shlex.quote(str(source))} --approve --replace"
        refusal = _replacing(task, old, replace=replace, fix=fix) if approve else None
        stamp = clock.iso()
        files[PLAN_NAME] = with_approval(plan_text, stamp) if approve else plan_text
        run_id = new_run_id("planning")
        final = task.runs_dir / run_id
        manifest = RunManifest(
            run_id=run_id,
            run_dir=str(final),
            task=str(task.ref),
            task_key=task.key,
            task_type="planning",
            created=stamp,
            source=str(source.resolve()),
        )
        files["manifest.json"] = manifest.model_dump_json(indent=2, by_alias=True, exclude_none=True) + "\n"
        write_dir(final, files)
        plan = PlanRun(final, approve, stamp if approve else None)
        return _make_current(task, plan, old, refusal) if approve else plan


def approve_plan(task: Task, *, run: str | None = None, replace: bool = False) -> tuple[PlanRun, bool]:
    """Make a planning run's plan the current plan: the run `run` names, else the newest
    plan. Refused when the current plan has progress, unless `replace`. Returns the plan
    and whether the current plan changed."""
    with task_mutex(task):
        runs = plan_runs(task)
        if not runs:
            raise OkstraError(
                f"task {task.ref} has no plan to approve", f"import one: okstra plan import {task.ref} plan.md"
            )
        old = adopt_current_plan(task)
        target = _chosen(task, runs, run, old)
        target.stage_map()  # never approve a plan whose Stage Map does not hold
        if old is not None and old.dir == target.dir:
            return old, False
        picked = f" --run {run}" if run else ""
        refusal = _replacing(task, old, replace=replace, fix=f"okstra plan approve {task.ref}{picked} --replace")
        stamp = clock.iso()
        if not target.approved:
            atomic_write_text(target.plan_md, with_approval(target.plan_md.read_text(encoding="utf-8"), stamp))
        return _make_current(task, target, old, refusal), True


def _chosen(task: Task, runs: list[PlanRun], run: str | None, current: PlanRun | None) -> PlanRun:
    """The planning run `plan approve` approves: `run`, else the newest one. Two made in
    the same second (other than the current plan) cannot be told apart: refused."""
    if run is not None:
        found = next((p for p in runs if p.run_id == run), None)
        if found is None:
            listed = ", ".join(p.run_id for p in runs[-5:])
            raise OkstraError(
                f"task {task.ref} has no planning run {run!r}", f"pass one of its planning runs: {listed}"
            )
        return found
    newest = [p for p in runs if _made_in(p) == _made_in(runs[-1])]
    if len(newest) > 1 and current is not None:
        newest = [p for p in newest if p.dir != current.dir] or newest
    if len(newest) > 1:
        listed = ", ".join(p.run_id for p in newest)
        raise OkstraError(
            f"the newest plans of {task.ref} ({listed}) were made in the same second: which is newest is not known",
            f"say which: okstra plan approve {task.ref} --run RUN_ID",
        )
    return newest[0]
