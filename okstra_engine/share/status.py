"""`okstra share status`: what a project shares, and what this machine last saw of it."""

from __future__ import annotations

from typing import Any

from ..errors import OkstraError
from ..ledger import hostname
from ..plans import plan_run_root
from ..projects import Project
from ..tasks import list_tasks, load_task
from .journal import read_journal
from .machine import machine_id
from .place import shared


def share_status(project: Project) -> dict[str, Any]:
    """Read only: it neither fetches nor writes (`okstra share sync` does)."""
    doc: dict[str, Any] = {
        "project": project.id,
        "remote": project.config.share_remote,
        "machine": machine_id(),
        "host": hostname(),
    }
    share = shared(project)
    if share is None:
        return {**doc, "remote": None, "tasks": [], "clashes": []}
    from .rows import unpublished
    from .tasks import shared_tasks

    journal = read_journal(project)
    there = shared_tasks(share)
    here = set(list_tasks(project))
    tasks = []
    for ref in sorted(here | set(there), key=str):
        queued = 0
        if ref in here:
            try:
                task = load_task(project, ref)
                plan = plan_run_root(task)
                queued = len(unpublished(share, task, plan)[0]) if plan is not None else 0
            except OkstraError:
                pass
        tasks.append(
            {
                "task": str(ref),
                "here": ref in here,
                "there": ref in there,
                "queued": queued,
                "branch": journal.branch_notes.get(str(ref)),
            }
        )
    return {
        **doc,
        "place": share.place,
        "reachable": journal.reachable,
        "error": journal.error,
        "fetched": journal.fetched,
        "published": journal.published,
        "tasks": tasks,
        "clashes": [c.model_dump() for c in journal.clashes],
    }
