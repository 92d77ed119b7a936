"""Task and stage worktrees: made with `git worktree add`, reused when healthy, and never
left half-made.

The task worktree (`okstra/CATEGORY/GROUP/ID`) is where stages are merged; each stage
gets its own (`…-sN`) so stages run side by side. Both are worktrees of the repository
holding the project (of the whole monorepo when the project is a subfolder of it; a run
then works in that subfolder of them: `project_dir`), live under okstra home
(`tasks.task_worktree_path` / `stage_worktree_path`) and are recorded in the registry
(`okstra_engine.registry`) only after git made them.

What `provision` does with what it finds (one `git worktree list` answers most of it):

| found | result |
|---|---|
| a healthy worktree of our branch at our path | `reused` (adopted into the registry if it was missing there) |
| the same, locked | `reused`, the lock reason in the note |
| our worktree, folder deleted by hand | `git worktree prune`, then made again: `recreated` |
| the same, but locked | error: unlock it first |
| our branch exists, checked out nowhere | a worktree on it (its commits kept): `recreated` |
| our branch checked out in another worktree | error naming that worktree and how to free it |
| our path exists but is not our worktree | error: move it away |
| nothing | `git worktree add -b BRANCH PATH BASE`: `created` |

A failure after git made something is rolled back in reverse order (registry row,
worktree, branch), so nothing half-made stays behind. `dry_run` (render-only) runs the
same checks and changes nothing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from . import faults, git, registry
from .errors import OkstraError
from .registry import TaskSlot, WorktreeRow
from .stage_view import StageState, StageView
from .tasks import Task, stage_branch, stage_worktree_path, task_branch, task_worktree_path

CREATED = "created"
REUSED = "reused"
RECREATED = "recreated"
SKIPPED_NON_GIT = "skipped-non-git"
SKIPPED_NESTED = "skipped-nested-worktree"
HALF_MADE = "initializing"
"""The lock reason git gives a worktree while `git worktree add` is making it."""
NOT_CREATED = "render only: not created"


@dataclass(frozen=True)
class Target:
    """One worktree okstra wants: the task's (stage None) or stage N's."""

    repo: Path
    slot: TaskSlot
    stage: int | None
    path: Path
    branch: str

    @property
    def what(self) -> str:
        return "the task worktree" if self.stage is None else f"the stage {self.stage} worktree"


@dataclass(frozen=True)
class Provision:
    """What became of a worktree: where it is, on which branch, from which base."""

    path: Path | None
    branch: str | None
    base_ref: str | None
    status: str
    note: str = ""
    """What provisioning found or repaired (`said` is how okstra words it all)."""
    made_worktree: bool = False
    """git made the worktree in this call (undo removes it)."""
    new_branch_at: str | None = None
    """git made the branch in this call, at this commit (undo deletes it)."""
    registered: bool = False
    """this call wrote the registry row (undo forgets it)."""
    render_only: bool = False
    """A dry run's answer for a worktree git would make: nothing was made."""

    @property
    def said(self) -> str:
        """The note as okstra prints it: a dry run's answer says that nothing was made."""
        return "; ".join(part for part in (self.note, NOT_CREATED if self.render_only else "") if part)


def status_words(status: str, *, render_only: bool) -> str:
    """A worktree's status as okstra prints it: a dry run made nothing, so what git would
    make is said as such (`would be created`), never as done."""
    return f"would be {status}" if render_only and status in (CREATED, RECREATED) else status


def task_slot(task: Task) -> TaskSlot:
    return TaskSlot(task.project.id, task.ref.group, task.ref.id)


def resolve_in_stage(task: Task, stage: int, rev: str) -> tuple[str | None, Path]:
    """The commit `rev` names as the stage's agent sees it, and where it was resolved: in
    the stage's worktree when it has one (there `HEAD` and `@~1` are the stage's work, not
    the project checkout's, which is the stage's base), else in the project checkout.
    Branches and SHAs name the same commit in both: worktrees share refs and objects."""
    row = registry.get_worktree(task_slot(task), stage)
    where = Path(row.path) if row is not None and Path(row.path).is_dir() else task.project.root
    return git.resolve_commit(where, rev), where


def project_dir(task: Task, provision: Provision) -> Path | None:
    """Where a run works: in a worktree okstra made (or reuses), the project's own folder
    in it (`<worktree>/<prefix>`: a project in a subfolder of its repository works in the
    same subfolder of the repository's worktrees); without one (a project not in git, or
    in a linked worktree of its own) the project folder, which `provision.path` is."""
    if provision.path is None or provision.status in (SKIPPED_NON_GIT, SKIPPED_NESTED):
        return provision.path
    return provision.path / task.project.prefix


def _real(path: Path | str) -> Path:
    return Path(os.path.realpath(path))


def task_target(task: Task) -> Target:
    return Target(task.project.repo, task_slot(task), None, _real(task_worktree_path(task)), task_branch(task))


def stage_target(task: Task, stage: int) -> Target:
    return Target(
        task.project.repo, task_slot(task), stage, _real(stage_worktree_path(task, stage)), stage_branch(task, stage)
    )


def provision(target: Target, base: str, *, dry_run: bool = False, base_must_be_in_branch: bool = False) -> Provision:
    """Make sure `target` exists as a worktree; `base` is the full SHA a new branch starts at.

    `base_must_be_in_branch`: when the branch exists already (an earlier attempt left it),
    refuse to reuse it unless `base` is in its history (a stage must start from its base).
    """
    repo, path, ref = target.repo, target.path, f"refs/heads/{target.branch}"
    registered = registry.get_worktree(target.slot, target.stage)
    listing = git.worktree_list(repo)
    mine = next((e for e in listing if "worktree" in e and _real(e["worktree"]) == path), None)
    prune = False
    repaired = ""

    if mine is not None and mine.get("locked") == HALF_MADE:
        # git marks a worktree `locked initializing` while `git worktree add` makes it and
        # unlocks it at the end: this one's maker died half-way (we hold the task mutex, so
        # it is not still running). It holds no work; take it away and make it again.
        repaired = f"a half-made worktree left at {path} by an interrupted git worktree add was removed"
        if dry_run:
            return Provision(
                path,
                target.branch,
                base,
                RECREATED,
                "render only: " + repaired.replace("was removed", "would be removed"),
            )
        _remove_half_made(repo, path)
        listing = git.worktree_list(repo)
        mine = None

    if mine is not None:
        gone = "prunable" in mine or not (path / ".git").exists()
        if not gone:
            return _reuse(target, mine, registered, base, dry_run=dry_run)
        if "locked" in mine and not path.exists():
            reason = f" ({mine['locked']})" if mine["locked"] else ""
            raise OkstraError(
                f"{target.what} {path} is locked{reason} in git, but its folder is gone",
                f"unlock it, then rerun: git -C {repo} worktree unlock {path}",
            )
        prune = True

    for other in listing:
        if other.get("branch") != ref or other is mine:
            continue
        where = Path(other["worktree"])
        if "prunable" in other or not where.exists():
            if "locked" in other:
                raise OkstraError(
                    f"branch {target.branch} belongs to a locked worktree {where} whose folder is gone",
                    f"unlock it, then rerun: git -C {repo} worktree unlock {where}",
                )
            prune = True
            continue
        raise OkstraError(
            f"branch {target.branch} is already checked out in another worktree: {where}",
            f"free it (after saving its work): git -C {where} switch --detach "
            f"(or git -C {repo} worktree remove {where}); then rerun",
        )

    if os.path.lexists(path) and not _is_empty_dir(path):
        hint = " (a folder whose .git is missing)" if mine is not None else ""
        raise OkstraError(
            f"{path} exists but is not okstra's worktree for {target.branch}{hint}",
            f"move it away (or delete it if nothing in it matters), then rerun: mv {path} {path}.old",
        )

    existing = git.resolve_commit(repo, ref)
    if existing and base_must_be_in_branch and not git.is_ancestor(repo, base, existing):
        raise OkstraError(
            f"branch {target.branch} exists at {existing[:8]} but does not contain the base {base[:8]} that {target.what} must start from",
            f"if that branch holds nothing you need, delete it and rerun: git -C {repo} branch -D {target.branch}; "
            f"otherwise merge {base[:12]} into it first",
        )
    status = RECREATED if (existing or registered or mine or repaired) else CREATED
    notes = [repaired] if repaired else []
    if existing:
        notes.append(f"branch {target.branch} existed at {existing[:8]}: checked out again with its commits")
    base_ref = registered.base_ref if (registered and existing) else base
    if dry_run:
        return Provision(path, target.branch, base_ref, status, "; ".join(notes), render_only=True)

    if prune:
        git.worktree_prune(repo)
    if not existing and git.clear_stale_ref_lock(repo, ref):
        # a git killed while it made this branch left its ref lock (we hold the task
        # mutex and the branch does not exist: no one else is writing it)
        notes.append(f"a stale git lock on {target.branch} left by an interrupted run was removed")
        status = RECREATED
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        git.worktree_add(repo, path, target.branch, base=None if existing else base)
    except OkstraError as exc:
        _clean_failed_add(target, new_branch_at=None if existing else base)
        raise OkstraError(
            f"could not make {target.what} {path}: {exc.what}",
            "nothing was left behind; fix what git reports (a failing post-checkout hook, disk space, permissions) and rerun",
        ) from exc
    made = Provision(
        path,
        target.branch,
        base_ref,
        status,
        "; ".join(notes),
        made_worktree=True,
        new_branch_at=None if existing else base,
    )
    try:
        faults.point("worktree.added")
        _register(target, base_ref)
    except BaseException:
        undo(target, made)
        raise
    faults.point("worktree.registered")
    return replace(made, registered=True)


def _reuse(
    target: Target, entry: dict[str, str], registered: WorktreeRow | None, base: str, *, dry_run: bool
) -> Provision:
    path, ref = target.path, f"refs/heads/{target.branch}"
    if entry.get("branch") != ref:
        holds = (
            f"branch {entry['branch'].removeprefix('refs/heads/')}"
            if "branch" in entry
            else f"a detached HEAD at {entry.get('HEAD', '?')[:8]}"
        )
        raise OkstraError(
            f"{target.what} {path} has {holds} checked out, not {target.branch}",
            f"switch it back (git -C {path} switch {target.branch}), or save its work and remove it "
            f"(git -C {target.repo} worktree remove {path}); then rerun",
        )
    notes = []
    if "locked" in entry:
        notes.append(f"locked in git{': ' + entry['locked'] if entry['locked'] else ''}")
    base_ref = registered.base_ref if registered else base
    if registered is None or registered.path != str(path) or registered.branch != target.branch:
        notes.append("adopted: it was not in okstra's registry")
        if not dry_run:
            _register(target, base_ref)
    if (
        target.stage is not None
        and base != base_ref
        and not git.is_ancestor(target.repo, base, entry.get("HEAD") or "HEAD")
    ):
        notes.append(
            f"its history does not contain the stage's base {base[:8]} now: merge it (git -C {path} merge {base[:12]})"
        )
    return Provision(path, target.branch, base_ref, REUSED, "; ".join(notes), registered=False)


def _register(target: Target, base_ref: str) -> None:
    registry.register_worktree(
        WorktreeRow(
            target.slot.project_id,
            target.slot.task_group,
            target.slot.task_id,
            target.stage,
            str(target.path),
            target.branch,
            base_ref,
        )
    )


def _remove_half_made(repo: Path, path: Path) -> None:
    """Take away a worktree whose `git worktree add` died half-way (see `provision`)."""
    if git.worktree_remove(repo, path):
        return
    git.run(["worktree", "unlock", "--", str(path)], repo, check=False)
    shutil.rmtree(path, ignore_errors=True)
    git.worktree_prune(repo)


def _is_empty_dir(path: Path) -> bool:
    try:
        return path.is_dir() and not path.is_symlink() and not any(path.iterdir())
    except OSError:
        return False


def _clean_failed_add(target: Target, *, new_branch_at: str | None) -> None:
    """Undo whatever a failed `git worktree add` left: its worktree, then its branch."""
    repo, path = target.repo, target.path
    listed = any(_real(e.get("worktree", "")) == path for e in git.worktree_list(repo))
    if listed and not git.worktree_remove(repo, path):
        shutil.rmtree(path, ignore_errors=True)
        git.worktree_prune(repo)
    elif not listed and path.exists() and not _is_empty_dir(path):
        shutil.rmtree(path, ignore_errors=True)
    if new_branch_at:
        git.delete_branch(repo, target.branch, new_branch_at)


def undo(target: Target, made: Provision) -> None:
    """Take back what `provision` made, newest first: registry row, worktree, branch.

    Best effort: each step runs even when an earlier one failed."""
    if made.registered or made.made_worktree:
        with contextlib.suppress(OkstraError):
            registry.forget_worktree(target.slot, target.stage)
    faults.point("worktree.undo-forgotten")
    if made.made_worktree and not git.worktree_remove(target.repo, target.path):
        shutil.rmtree(target.path, ignore_errors=True)
        git.run(["worktree", "prune"], target.repo, check=False)
    faults.point("worktree.undo-removed")
    if made.new_branch_at:
        git.delete_branch(target.repo, target.branch, made.new_branch_at)


def annotate_status(task: Task, views: list[StageView], warnings: list[str]) -> str | None:
    """Fill each stage view's `worktree` from the registry and turn `done` into
    `not-merged` where the done commit is not an ancestor of the task worktree HEAD.
    Returns the task worktree path (None when there is none).

    Cheap on purpose (status runs in agent loops): one registry query, and one git
    process for all done stages together (`git.not_ancestors`)."""
    rows = registry.task_worktrees(task_slot(task))
    for view in views:
        row = rows.get(view.stage)
        view.worktree = row.path if row else None
    task_row = rows.get(None)
    if task_row is None:
        return None
    path = Path(task_row.path)
    if not path.is_dir():
        warnings.append(f"the task worktree {path} is gone (the next prepare makes it again)")
        return task_row.path
    done = [v for v in views if v.state is StageState.DONE and v.done_commit]
    if done:
        try:
            unmerged = git.not_ancestors(path, [v.done_commit for v in done if v.done_commit], "HEAD")
        except OkstraError as exc:
            warnings.append(f"cannot tell which done stages are merged into the task worktree: {exc.what}")
        else:
            for view in done:
                if view.done_commit in unmerged:
                    view.state = StageState.NOT_MERGED
    return task_row.path


@dataclass(frozen=True)
class Overlap:
    """Two stages whose worktrees change the same files: a merge of both may conflict."""

    stages: tuple[int, int]
    files: list[str]

    def to_json(self) -> dict[str, object]:
        return {"stages": list(self.stages), "files": self.files}


def stage_overlaps(task: Task, views: list[StageView], warnings: list[str]) -> list[Overlap]:
    """The pairs of stages in flight or done but not merged whose worktrees change the
    same tracked files: each worktree's work tree against its base (`git diff --name-only
    BASE`: committed and uncommitted changes). Nothing is asked unless two such stages
    have worktrees; then one registry query and one git process per stage, run side by
    side. Files not yet added to git are not seen (a second process per stage, on every
    status call)."""
    wanted = [v for v in views if v.worktree and (v.is_flying or v.state is StageState.NOT_MERGED)]
    if len(wanted) < 2:
        return []
    rows = registry.task_worktrees(task_slot(task))
    places = [
        (v.stage, Path(row.path), row.base_ref)
        for v in wanted
        if (row := rows.get(v.stage)) is not None and Path(row.path).is_dir()
    ]
    if len(places) < 2:
        return []

    def changed(path: Path, base: str) -> list[str] | None:
        try:
            return git.changed_paths(path, base)
        except OkstraError as exc:
            warnings.append(f"cannot tell what the worktree {path} changes: {exc.what}")
            return None

    found = git.concurrently(*(lambda p=path, b=base: changed(p, b) for _, path, base in places))
    changes = {n: set(files) for (n, _, _), files in zip(places, found) if files}
    numbers = sorted(changes)
    overlaps = []
    for i, a in enumerate(numbers):
        for b in numbers[i + 1 :]:
            both = changes[a] & changes[b]
            if both:
                overlaps.append(Overlap((a, b), sorted(both)))
    return overlaps


def set_aside_stages(task: Task, stages: Iterable[int], label: str, *, flying: Iterable[int] = ()) -> list[str]:
    """Before a new plan replaces one whose stages have run: each stage's worktree goes
    and its branch is kept under `<branch>-replaced-<label>`, so the new plan's stage N
    starts fresh from the task's anchor instead of inheriting the old stage N's commits
    (nothing is lost: the renamed branch holds them, and the done commits are pinned).
    Refused, changing nothing, while one of them is in flight (`flying`: its agent works
    there) or holds uncommitted changes. Returns the branches' new names. The caller
    holds the task mutex."""
    repo = task.project.repo
    slot = task_slot(task)
    rows = registry.task_worktrees(slot)
    wanted = sorted(set(stages) | {n for n in rows if n is not None})
    busy = sorted(set(flying) & set(wanted))
    if busy:
        raise OkstraError(
            f"stage(s) {', '.join(map(str, busy))} of {task.ref} are in flight: their agents work in the worktrees "
            "a new plan would set aside",
            f"wait for them, or release them (okstra record {task.ref} --stage N --status released), then replace",
        )
    dirty = []
    for n in wanted:
        row = rows.get(n)
        if row is not None and Path(row.path).is_dir() and git.dirty_paths(Path(row.path)):
            dirty.append(f"stage {n} ({row.path})")
    if dirty:
        raise OkstraError(
            f"uncommitted changes in {', '.join(dirty)}: a new plan would set those worktrees aside",
            "commit them on the stage's branch (they are kept under a new name) or discard them, then replace",
        )
    renamed = []
    for n in wanted:
        row = rows.get(n)
        if row is not None and Path(row.path).is_dir() and not git.worktree_remove(repo, Path(row.path)):
            raise OkstraError(f"git would not remove the worktree {row.path}", "remove it by hand, then replace")
        registry.forget_worktree(slot, n)
        branch = stage_branch(task, n)
        if git.resolve_commit(repo, f"refs/heads/{branch}") is not None:
            kept = f"{branch}-replaced-{label}"
            git.run(["branch", "-m", branch, kept], repo)
            renamed.append(kept)
    git.run(["worktree", "prune"], repo, check=False)
    return renamed
