"""A head start for reconcile in a command that is about to run it (`okstra reconcile`,
`okstra prepare`): the walk of the task branch's history begins while Python is still
loading the rest of the engine (about 150 ms of a 2-core machine), not after it. On a
history reconcile has not seen, git's walk and Python's start then overlap.

It is a guess, never an answer:
- It reads the task's files as plain JSON, before any model has checked them, through
  no link (`fsio`). A value that does not look like what the engine would pass stops it:
  a full commit id for commits, a list of path strings for paths. It never raises and
  never prints.
- It asks what reconcile asks first, through the same `target_index.Target`: the range
  of T since the first done stage's base, over every done stage's paths, then the
  patch-ids of the commits touching a stage's paths when its done commit is not in T.
- Reconcile then reads the same files through their models and asks again (waiting for
  the head start first, `target_index.target`). When the guess was right, the answers
  are in memory. When it was wrong, the index holds a walk nobody asked for, and the
  wait cost one walk.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from . import git, target_index
from .fsio import read_bytes_nofollow, refuse_links
from .run_folder import LEDGER_NAME, OKSTRA_DIR, POINTER_NAME, TASK_FILE, task_folder
from .slugs import TaskRef, task_branch_name

MAX_LEDGER_BYTES = 16 << 20
"""A larger ledger is not guessed from (the engine reads it through its cache)."""


def begin(project: str | None, task_ref: str) -> None:
    """Start warming the target index for the task `task_ref` of the project a command
    names (`--project`, else the one holding the cwd)."""
    target_index.run_ahead(lambda: _warm_task(project, task_ref))


def _warm_task(project: str | None, task_ref: str) -> target_index.Target | None:
    from .locations import default_root

    # a bad reference or project raises here, in the thread: the command says what is wrong
    ref = TaskRef.parse(task_ref)
    return warm(default_root(project), ref.group, ref.id)


def warm(root: Path, group: str, task_id: str) -> target_index.Target | None:
    """Ask the target index what reconcile will ask for the task, from its files as they
    read now; the Target holding the answers (None: nothing to guess from)."""
    folder = task_folder(root, group, task_id)
    category = _field(root, folder / TASK_FILE, "category")
    run = _field(root, folder / POINTER_NAME, "run")
    if not isinstance(category, str) or not isinstance(run, str) or not _plain_name(run):
        return None
    stages = _done(root, folder / "runs" / run / LEDGER_NAME)
    if not stages:
        return None
    t = git.resolve_commit(root, f"refs/heads/{task_branch_name(category, group, task_id)}")
    if t is None:
        return None
    on = target_index.Target(root, t)
    every = sorted({p for _, _, paths in stages.values() for p in paths})
    for _, (x, base, paths) in sorted(stages.items()):
        found = on.range(base, every)
        if found is not None and x not in found and paths:
            on.candidates(base, paths)
    return on


def _field(root: Path, path: Path, name: str) -> object:
    doc = _json(root, path, limit=1 << 20)
    return doc.get(name) if isinstance(doc, dict) else None


def _json(root: Path, path: Path, *, limit: int) -> Any:
    refuse_links(root / OKSTRA_DIR, path)
    data = read_bytes_nofollow(path, limit=limit)
    return json.loads(data) if data else None


def _plain_name(name: str) -> bool:
    return bool(name) and not name.startswith(".") and "/" not in name and "\\" not in name and "\0" not in name


def _done(root: Path, ledger: Path) -> dict[int, tuple[str, str, list[str]]]:
    """Stage → (done commit, trusted base, paths) of each stage's latest done row."""
    refuse_links(root / OKSTRA_DIR, ledger)
    data = read_bytes_nofollow(ledger, limit=MAX_LEDGER_BYTES + 1)
    if not data or len(data) > MAX_LEDGER_BYTES:
        return {}
    latest: dict[int, dict[str, Any]] = {}
    for line in data.split(b"\n"):
        if b'"done"' not in line:
            continue
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and row.get("status") == "done" and type(row.get("stage")) is int:
            latest[row["stage"]] = row
    found = {}
    for n, row in latest.items():
        x, base, paths = row.get("head_commit"), row.get("base_ref"), row.get("paths")
        if not isinstance(x, str) or not isinstance(base, str) or not isinstance(paths, list):
            continue
        if not all(isinstance(p, str) and p and "\0" not in p for p in paths):
            continue
        base = target_index.trusted_base(x, None, row)
        if base is not None:
            found[n] = (x, base, paths)
    return found
