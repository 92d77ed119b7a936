"""`okstra gc`: the worktrees and branches okstra made that nothing needs any more, and
their removal.

What can go (each found from okstra's registry: a worktree it has no row for is never
okstra's to take):

- a stage's worktree and branch once its done commit is in the task branch: an
  ancestor, or its work there under another commit (patch- or squash-equivalent, or its
  content: `reconcile.content_merged`, the rule the handoff uses). The branch goes only
  when it holds nothing the task branch lacks (its tip is the done commit, behind it, or
  merged too);
- a released stage's worktree (its branch stays: it may hold work someone wants);
- the worktrees of a task whose folder is gone (deleted by hand);
- once the task itself is merged into the project's checked-out branch (released), the
  task worktree and branch, with its stages' worktrees.

What stays, whatever the above says: a worktree in flight (its agent works there), one
with uncommitted or untracked changes or a git operation left unfinished, one git has
locked, one that holds another branch than okstra gave it. okstra's pin refs
(`refs/okstra/…`) always stay: they keep recorded commits from `git gc`.

A dry run (the default) lists all of it with each worktree's size on disk; `apply`
removes what can go with git (`worktree remove`, then the branch), under the task
mutex, checking each worktree again just before.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import git, registry
from .errors import OkstraError
from .projects import Project
from .registry import TaskSlot, WorktreeRow
from .slugs import TaskRef
from .stage_view import StageState
from .tasks import Task, list_tasks, load_task, stage_branch, task_branch
from .worktrees import task_slot


@dataclass
class GcItem:
    """One worktree (or a branch left without one) and what gc makes of it."""

    task: str
    stage: int | None
    """None: the task worktree."""
    path: str | None
    """The worktree (None: a branch without one)."""
    branch: str | None
    """The branch that goes with it (None: the branch stays, or there is none)."""
    why: str
    """Why it can go: `merged (KIND)`, `released`, `task deleted`, `task released`."""
    size: int = 0
    """Bytes on disk of the worktree (du-like: blocks, links not followed, hard links once)."""
    kept: str | None = None
    """Why it stays after all (dirty, in flight, locked, not okstra's…); None: it can go."""
    removed: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "stage": self.stage,
            "path": self.path,
            "branch": self.branch,
            "why": self.why,
            "size": self.size,
            "kept": self.kept,
            "removed": self.removed,
        }


@dataclass
class GcReport:
    items: list[GcItem] = field(default_factory=list)
    applied: bool = False
    warnings: list[str] = field(default_factory=list)

    @property
    def removable(self) -> list[GcItem]:
        return [i for i in self.items if i.kept is None]

    @property
    def kept(self) -> list[GcItem]:
        return [i for i in self.items if i.kept is not None]

    @property
    def total(self) -> int:
        return sum(i.size for i in self.removable)

    def to_json(self) -> dict[str, Any]:
        return {
            "applied": self.applied,
            "removable": [i.to_json() for i in self.removable],
            "kept": [i.to_json() for i in self.kept],
            "total_size": self.total,
            "warnings": self.warnings,
        }


def tree_size(path: Path) -> int:
    """Bytes a folder takes on disk, as `du` counts them: allocated blocks, symlinks not
    followed, a hard-linked file once."""
    seen: set[tuple[int, int]] = set()
    total = 0
    stack = [str(path)]
    while stack:
        try:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    try:
                        info = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    if (info.st_dev, info.st_ino) in seen:
                        continue
                    seen.add((info.st_dev, info.st_ino))
                    total += getattr(info, "st_blocks", 0) * 512 or info.st_size
                    if stat.S_ISDIR(info.st_mode):
                        stack.append(entry.path)
        except OSError:
            continue
    return total


def collect(project: Project, ref: TaskRef | None = None, *, apply: bool = False) -> GcReport:
    """What can go in `project` (only task `ref`'s, when given); with `apply`, remove it."""
    if not project.is_git:
        raise OkstraError(
            f"project {project.id} is not a git repository: okstra made no worktrees for it", "nothing to collect"
        )
    report = GcReport(applied=apply)
    known = set(list_tasks(project))
    rows = registry.project_worktrees(project.id)
    wanted = [ref] if ref is not None else sorted(known | {TaskRef(r.task_group, r.task_id) for r in rows}, key=str)
    for one in wanted:
        if one in known:
            _task_items(load_task(project, one), report, apply=apply)
        else:
            _deleted_task_items(
                project, one, [r for r in rows if (r.task_group, r.task_id) == (one.group, one.id)], report, apply=apply
            )
    return report


def _deleted_task_items(
    project: Project, ref: TaskRef, rows: list[WorktreeRow], report: GcReport, *, apply: bool
) -> None:
    if not rows:
        raise OkstraError(f"task {ref} does not exist in project {project.id}", "see the tasks: okstra (the task list)")
    listing = git.worktree_list(project.repo)
    for row in sorted(rows, key=lambda r: r.stage or 0):
        item = GcItem(str(ref), row.stage, row.path, None, "task deleted")
        _check_worktree(item, row, listing)
        report.items.append(item)
        if apply and item.kept is None:
            _remove(project.repo, item, TaskSlot(project.id, ref.group, ref.id))


def _task_items(task: Task, report: GcReport, *, apply: bool) -> None:
    from .locks import task_mutex

    if apply:
        with task_mutex(task):
            _task_items_locked(task, report, apply=True)
    else:
        _task_items_locked(task, report, apply=False)


def _task_items_locked(task: Task, report: GcReport, *, apply: bool) -> None:
    from .reconcile import content_merged, target_commit
    from .status import task_status

    status = task_status(task)
    report.warnings += [f"{task.ref}: {w}" for w in status.warnings]
    if status.stage_map is None:
        return
    repo = task.project.root
    slot = task_slot(task)
    rows = registry.task_worktrees(slot)
    listing = git.worktree_list(task.project.repo)
    target = target_commit(task)
    done = status.ledger.done_rows()
    latest = status.ledger.latest_rows()
    released = _task_released(task, target)
    flying = [v.stage for v in status.stages if v.is_flying]
    items: list[tuple[GcItem, WorktreeRow | None]] = []
    for view in status.stages:
        n = view.stage
        row = rows.get(n)
        branch = stage_branch(task, n)
        tip = git.resolve_commit(repo, f"refs/heads/{branch}")
        if row is None and tip is None:
            continue
        why = None
        keep_branch = True
        if view.is_flying:
            if row is not None:
                items.append((GcItem(str(task.ref), n, row.path, None, "in flight", kept="in flight"), row))
            continue
        if view.is_done and view.done_commit:
            kind = "ancestor"
            if view.state is StageState.NOT_MERGED:
                try:
                    match = content_merged(
                        repo, view.done_commit, target, base=status.ledger.base_ref(n), stored=done.get(n)
                    )
                except OkstraError as exc:
                    report.warnings.append(f"{task.ref} stage {n}: {exc.what}")
                    continue
                kind = match.kind if match.merged else ""
            if kind:
                why = f"merged ({kind})"
                keep_branch = tip is not None and not _branch_merged(repo, tip, view.done_commit, target)
        elif n in latest and latest[n].status == "released":
            why = "released"
        if why is None and released:
            why = "task released"
            keep_branch = tip is not None and not git.is_ancestor(repo, tip, target)
        if why is None:
            continue
        item = GcItem(str(task.ref), n, row.path if row else None, None if keep_branch else branch, why)
        if row is None and item.branch is None:
            continue
        if why.startswith("merged") and keep_branch and tip is not None:
            item.why += f"; its branch {branch} stays: it has commits the task branch lacks"
        items.append((item, row))
    task_row = rows.get(None)
    if released:
        branch = task_branch(task)
        item = GcItem(
            str(task.ref),
            None,
            task_row.path if task_row else None,
            branch if git.resolve_commit(repo, f"refs/heads/{branch}") else None,
            "task released",
        )
        if flying:
            item.kept = f"stage(s) {', '.join(map(str, flying))} in flight"
        if item.path or item.branch:
            items.append((item, task_row))
    for item, row in items:
        if row is not None and item.kept is None:
            _check_worktree(item, row, listing)
        report.items.append(item)
        if apply and item.kept is None:
            _remove(repo, item, slot)


def _task_released(task: Task, target: str) -> bool:
    """Whether the task branch's work is in the project's checked-out branch (merged,
    squashed or rebased there): the task has been released."""
    from .reconcile import content_merged

    root = task.project.root
    head = git.head(root)
    anchor = registry.anchor(task_slot(task))
    if (
        head is None
        or anchor is None
        or target == anchor
        or git.resolve_commit(root, f"refs/heads/{task_branch(task)}") is None
    ):
        return False
    try:
        return content_merged(root, target, head, base=anchor).merged
    except OkstraError:
        return False


def _branch_merged(repo: Path, tip: str, done: str, target: str) -> bool:
    """Whether deleting a stage branch at `tip` loses nothing: it is the done commit,
    behind it, or in the task branch."""
    return tip == done or git.is_ancestor(repo, tip, done) or git.is_ancestor(repo, tip, target)


def _check_worktree(item: GcItem, row: WorktreeRow, listing: list[dict[str, str]]) -> None:
    """Set `item.kept` when its worktree must stay; measure it otherwise."""
    path = Path(row.path)
    entry = next(
        (e for e in listing if "worktree" in e and os.path.realpath(e["worktree"]) == os.path.realpath(path)), None
    )
    if entry is None or not path.is_dir():
        if path.exists():
            item.kept = "not a worktree of this repository any more: not okstra's to remove"
        else:
            item.path = None  # gone already: only its registry row (and branch) are left
        return
    if entry.get("branch") != f"refs/heads/{row.branch}":
        item.kept = (
            f"it holds {entry.get('branch', 'a detached HEAD').removeprefix('refs/heads/')}, not okstra's {row.branch}"
        )
        return
    if "locked" in entry:
        item.kept = "locked in git" + (f" ({entry['locked']})" if entry["locked"] else "")
        return
    busy = git.operation_in_progress(path)
    dirty = git.dirty_paths(path)
    if busy or dirty:
        from .refusals import some

        item.kept = f"{busy} in progress" if busy else f"uncommitted changes: {some(dirty, 3)}"
        return
    item.size = tree_size(path)


def _remove(repo: Path, item: GcItem, slot: TaskSlot) -> None:
    if item.path is not None:
        path = Path(item.path)
        if git.dirty_paths(path) or git.operation_in_progress(path):  # changed since it was listed
            item.kept = "uncommitted changes appeared"
            return
        if not git.worktree_remove(repo, path):
            item.kept = "git would not remove it"
            return
    registry.forget_worktree(slot, item.stage)
    if item.branch is not None and git.resolve_commit(repo, f"refs/heads/{item.branch}") is not None:
        # `branch -D`, not a bare ref deletion: git refuses a branch checked out anywhere
        proc = git.run(["branch", "-D", item.branch], repo, check=False)
        if proc.returncode != 0:  # the worktree is gone all the same
            item.why += f"; its branch {item.branch} stays: {git.failure_message(proc)}"
            item.branch = None
    item.removed = True
