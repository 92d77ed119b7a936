"""Plans: a planning run's `plan.md`, its front matter, and its Stage Map.

The newest approved plan is the task's plan run root: the ledger, carry sidecars and
handoff records of implementation live beside it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from . import clock
from .errors import OkstraError
from .fsio import atomic_write_text, write_dir
from .runs import RunManifest, new_run_id, run_dirs
from .stage_map import StageMap, load_stage_map, parse_stage_map_json, parse_stage_map_markdown, render_stage_map_table
from .tasks import Task

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


@dataclass(frozen=True)
class PlanRun:
    dir: Path
    approved: bool

    @property
    def plan_md(self) -> Path:
        return self.dir / PLAN_NAME

    def stage_map(self) -> StageMap:
        return load_stage_map(self.dir)


def plan_runs(task: Task) -> list[PlanRun]:
    """Every run with a plan, oldest first."""
    found = []
    for run in run_dirs(task.runs_dir):
        plan = run / PLAN_NAME
        try:
            text = plan.read_text(encoding="utf-8")
        except (FileNotFoundError, NotADirectoryError, UnicodeDecodeError):
            continue
        found.append(PlanRun(run, is_approved(text)))
    return found


def plan_run_root(task: Task) -> PlanRun | None:
    """The newest approved plan, or None."""
    return next((p for p in reversed(plan_runs(task)) if p.approved), None)


def require_plan_run_root(task: Task) -> PlanRun:
    plan = plan_run_root(task)
    if plan is None:
        from .gates import plan_refusal

        raise plan_refusal(task).error()
    return plan


def import_plan(task: Task, source: Path, *, approve: bool = False) -> PlanRun:
    """Make a planning run from an existing `plan.md` or a bare `stage-map.json`.

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
    stamp = clock.iso()
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
    if approve:
        plan_text = with_approval(plan_text, stamp)
    files[PLAN_NAME] = plan_text

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
    return PlanRun(final, approve)


def approve_plan(task: Task) -> tuple[PlanRun, bool]:
    """Approve the newest plan; return it and whether anything changed."""
    runs = plan_runs(task)
    if not runs:
        raise OkstraError(
            f"task {task.ref} has no plan to approve", f"import one: okstra plan import {task.ref} plan.md"
        )
    newest = runs[-1]
    newest.stage_map()  # never approve a plan whose Stage Map does not hold
    if newest.approved:
        return newest, False
    stamp = clock.iso()
    atomic_write_text(newest.plan_md, with_approval(newest.plan_md.read_text(encoding="utf-8"), stamp))
    return PlanRun(newest.dir, True), True
