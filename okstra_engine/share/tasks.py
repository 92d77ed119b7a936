"""The task travels: `…/task` points at a commit whose tree holds `task.json`,
`current-plan.json` and the current plan's run (`runs/<run>/plan.md`, `stage-map.json`,
`manifest.json`), published when the task is made or its plan approved, and written into
another clone's `.okstra/tasks/` by a sync. What comes from the remote is validated as
any file okstra reads (its models), and no path is taken from it: the run's folder is
named by a run id okstra checks, the manifest's places are this clone's."""

from __future__ import annotations

import json

from .. import git
from ..documents import load_doc
from ..errors import OkstraError
from ..fsio import atomic_write_text, refuse_links, remove_tree, write_dir
from ..locks import task_mutex
from ..plans import PLAN_NAME, STAGE_MAP_JSON, CurrentPlan, PlanRun, pointer_path, read_pointer
from ..runs import RunManifest, fits_run_id
from ..slugs import TaskRef, check_slug
from ..tasks import Task, TaskDoc, task_dir
from .objects import commit_files, files_in, folders_in, text_of
from .place import Share

PLAN_FILES = (PLAN_NAME, STAGE_MAP_JSON, "manifest.json")


def task_files(task: Task) -> dict[str, str]:
    """What the task's commit holds, read from this clone."""
    files = {"task.json": (task.dir / "task.json").read_text(encoding="utf-8")}
    pointer = read_pointer(task)
    if pointer is not None:
        files["current-plan.json"] = pointer_path(task).read_text(encoding="utf-8")
        run = task.runs_dir / pointer.run
        for name in PLAN_FILES:
            try:
                files[f"runs/{pointer.run}/{name}"] = (run / name).read_text(encoding="utf-8")
            except FileNotFoundError:
                continue
    return files


def shared_tasks(share: Share) -> dict[TaskRef, str]:
    """The tasks the remote shares for this project's place, as last fetched: ref → commit."""
    found: dict[TaskRef, str] = {}
    for ref, sha, _ in git.refs_with_messages(share.repo, share.local_prefix):
        parts = ref[len(share.local_prefix) :].split("/")
        if len(parts) == 3 and parts[2] == "task":
            try:
                found[TaskRef(check_slug(parts[0], "group"), check_slug(parts[1], "id"))] = sha
            except OkstraError:
                continue
    return found


def task_update(share: Share, task: Task, there: str | None) -> tuple[str, str, str | None] | None:
    """The push that publishes the task, when the remote lacks it, or lacks its plan, or
    holds a plan this clone's current plan replaced; None otherwise (the same plan, or
    one this clone has not seen: that one comes here instead)."""
    ours = read_pointer(task)
    if there is not None:
        theirs = _pointer_at(share, there)
        if ours is None:
            return None
        if theirs is not None and (theirs.run == ours.run or not any(r.run == theirs.run for r in ours.replaced)):
            return None
    sha = commit_files(share.repo, task_files(task), f"okstra task {task.ref}\n", there)
    return share.remote_ref(task.ref, "task"), sha, there


def _pointer_at(share: Share, commit: str) -> CurrentPlan | None:
    blob = files_in(share.repo, commit).get("current-plan.json")
    text = text_of(share.repo, blob) if blob else None
    if text is None:
        return None
    try:
        return CurrentPlan.model_validate_json(text)
    except ValueError:
        return None


def materialize(share: Share, ref: TaskRef, commit: str) -> str | None:
    """Write the remote's task into this clone where it lacks it, or its plan where the
    remote's replaced this clone's; what it did in words, None when nothing."""
    project = share.project
    folder = task_dir(project, ref)
    refuse_links(project.okstra_dir, folder / "task.json")
    top = files_in(share.repo, commit)
    doc_text = text_of(share.repo, top["task.json"]) if "task.json" in top else None
    if doc_text is None:
        return None
    try:
        doc = TaskDoc.model_validate_json(doc_text)
    except ValueError:
        return None
    said = None
    if not (folder / "task.json").exists():
        atomic_write_text(folder / "task.json", doc.model_dump_json(indent=2, exclude_none=True) + "\n")
        said = f"task {ref} ({doc.title}) came from {share.remote}"
    task = Task(project, ref, load_doc(folder / "task.json", TaskDoc))
    theirs = _pointer_at(share, commit)
    if (
        theirs is None
        or not fits_run_id(theirs.run, "planning")
        or theirs.run not in folders_in(share.repo, commit, "runs")
    ):
        return said
    with task_mutex(task):
        ours = read_pointer(task)
        if ours is not None and (ours.run == theirs.run or not any(r.run == ours.run for r in theirs.replaced)):
            return said
        run = task.runs_dir / theirs.run
        refuse_links(project.okstra_dir, run)
        if not run.exists():
            blobs = files_in(share.repo, commit, f"runs/{theirs.run}")
            files = {}
            for name in PLAN_FILES:
                text = text_of(share.repo, blobs[name]) if name in blobs else None
                if text is not None:
                    files[name] = text
            if PLAN_NAME not in files or "manifest.json" not in files:
                return said
            try:
                manifest = RunManifest.model_validate_json(files["manifest.json"])
            except ValueError:
                return said
            if manifest.run_id != theirs.run or manifest.task_type != "planning":
                return said
            manifest.run_dir, manifest.task, manifest.task_key = str(run), str(ref), ref.key
            files["manifest.json"] = manifest.model_dump_json(indent=2, by_alias=True, exclude_none=True) + "\n"
            write_dir(run, files)
            try:
                PlanRun(run, True).stage_map()  # a plan whose Stage Map does not hold is refused like any
            except OkstraError:
                remove_tree(run)
                raise
        PlanRun(run, True).stage_map()
        atomic_write_text(pointer_path(task), json.dumps(theirs.model_dump(mode="json"), indent=2) + "\n")
    return (said + "; " if said else "") + f"task {ref}: plan {theirs.run} came from {share.remote}"
