"""The task branch (`okstra/CATEGORY/GROUP/ID`, where handoffs merge a group's stages) as
`…/<GROUP>/<ID>/head` on the remote, so a handoff on one machine reaches the others.

It only ever moves forward, and never on its own across a fork:
- a head this machine fetched that is ahead of the local task branch fast-forwards it
  (`git merge --ff-only` in the worktree that has it checked out, refused while that one
  is dirty or busy; `git update-ref` expecting its old value when none has; made at the
  head when this clone has no task branch yet);
- a local task branch ahead of the head (a handoff here) is pushed expecting the head
  this machine last fetched (created only where none is, and only once a handoff here
  merged something: a branch no handoff moved is just this clone's starting point);
- a local branch and a head that went apart are named, with the merge that joins them,
  and nothing moves.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from .. import git
from ..plans import plan_run_root
from ..refusals import some
from ..tasks import Task, task_branch, task_worktree_path
from .place import Share

HEAD = "head"


@dataclass(frozen=True)
class Settled:
    update: tuple[str, str, str | None] | None = None
    """The push that publishes the local task branch: (remote ref, new tip, head expected)."""
    said: str | None = None
    """The local task branch moved to the fetched head."""
    warning: str | None = None
    """Why nothing moved though the two differ."""


def settle(share: Share, task: Task) -> Settled:
    """Under the task mutex, after a fetch: what the local task branch and the fetched
    head call for (the fast-forward is done here; the publish is left to the caller)."""
    repo, branch = share.repo, task_branch(task)
    local = git.resolve_commit(repo, f"refs/heads/{branch}")
    there = git.resolve_commit(repo, share.local_ref(task.ref, HEAD))
    publish = share.remote_ref(task.ref, HEAD)
    if there is None:
        if local is not None and _handed_off_here(task):
            return Settled(update=(publish, local, None))
        return Settled()
    if local == there:
        return Settled()
    if local is None:
        git.update_ref(repo, f"refs/heads/{branch}", there, "")
        return Settled(said=f"task {task.ref}: task branch {branch} made at {share.remote}'s head {there[:12]}")
    if git.is_ancestor(repo, there, local):
        return Settled(update=(publish, local, there))
    if git.is_ancestor(repo, local, there):
        return _fast_forward(share, task, local, there)
    return Settled(warning=apart(share, task))


def apart(share: Share, task: Task) -> str:
    """What to do when the local task branch does not contain the head fetched from the remote."""
    wt = checked_out(task)
    fetched = share.local_ref(task.ref, HEAD)
    make = ""
    if wt is None:
        wt = task_worktree_path(task)
        make = f"git -C {shlex.quote(str(share.repo))} worktree add {shlex.quote(str(wt))} {task_branch(task)}, then "
    return (
        f"task {task.ref}: the task branch here and on {share.remote} went apart (each holds a handoff the other "
        f"lacks): merge {share.remote}'s into the task worktree: {make}git -C {shlex.quote(str(wt))} merge "
        f"{fetched}, then okstra share sync"
    )


def checked_out(task: Task) -> Path | None:
    """The worktree that has the task branch checked out (the task worktree, normally)."""
    ref = f"refs/heads/{task_branch(task)}"
    for entry in git.worktree_list(task.project.repo):
        if entry.get("branch") == ref and "prunable" not in entry and Path(entry["worktree"]).is_dir():
            return Path(entry["worktree"])
    return None


def _fast_forward(share: Share, task: Task, local: str, there: str) -> Settled:
    branch = task_branch(task)
    said = (
        f"task {task.ref}: task branch {branch} fast-forwarded to {share.remote}'s head {there[:12]} (was {local[:12]})"
    )
    wt = checked_out(task)
    if wt is None:
        git.update_ref(share.repo, f"refs/heads/{branch}", there, local)
        return Settled(said=said)
    busy = git.operation_in_progress(wt)
    dirty = [] if busy else git.dirty_paths(wt, task.project.config.clean_gate_excludes)
    why = f"{busy} is in progress there" if busy else f"it has uncommitted changes: {some(dirty)}" if dirty else None
    if why is None:
        proc = git.run(["merge", "--ff-only", "--quiet", "--end-of-options", there], wt, check=False)
        if proc.returncode == 0:
            return Settled(said=said)
        why = f"git merge --ff-only failed: {git.failure_message(proc)}"
    return Settled(
        warning=(
            f"task {task.ref}: {share.remote}'s head {there[:12]} is ahead of the task branch here, but the task "
            f"worktree {wt} was not fast-forwarded: {why}; nothing moved: commit or stash there "
            f"(git -C {shlex.quote(str(wt))} status), then okstra share sync"
        )
    )


def _handed_off_here(task: Task) -> bool:
    """Whether a handoff here merged something into the task branch (so it is worth
    publishing where the remote has no head yet)."""
    from ..handoff.records import read_handoffs

    plan = plan_run_root(task)
    return plan is not None and any(row.merged for row in read_handoffs(plan.dir).rows)
