"""Crash recovery of a handoff killed while it merges.

A handoff killed mid-merge (SIGKILL, power loss, a closed terminal taking git with it)
can leave, in the task worktree, a merge git never finished and git's lock files
(index.lock, HEAD.lock, the task branch's ref lock): every later git command there fails
until someone cleans up by hand. So the merges run under a journal (a small file beside
the plan, written before the first merge, removed when the task worktree is quiet again).
The next handoff finds it, under the task mutex, and clears what the dead handoff left:
it waits a moment for a git that outlived okstra, then removes the locks it left; aborts
the merge when it is okstra's own (its message says so); puts back the files a merge had
half-written (only those holding HEAD's or a merged stage's version: anything else is
someone's work); and takes back the merge commits the dead handoff made, when the task
branch holds nothing else since, so a group still lands all or nothing. Then the handoff
runs as usual. A `prepare` or `status` in between sees the worktree as the kill left it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from .. import clock, git, registry, worktrees
from ..fsio import atomic_write_text
from ..ledger import hostname
from ..plans import require_plan_run_root
from ..refusals import some
from ..tasks import Task, task_branch, task_worktree_path
from .plan import HandoffPlan

JOURNAL_NAME = ".handoff-in-progress.json"
STALE_LOCK_WAIT_S = 1.0


def journal_path(plan_dir: Path) -> Path:
    return plan_dir / JOURNAL_NAME


def begin_journal(plan: HandoffPlan) -> None:
    atomic_write_text(
        journal_path(plan.plan_dir),
        json.dumps(
            {
                "task": str(plan.task.ref),
                "group": plan.group,
                "task_worktree": str(plan.task_worktree),
                "head_before": plan.task_head,
                "started": clock.iso(),
                "host": hostname(),
                "commits": [plan.stage(n).done_commit for n in plan.to_merge],
            }
        )
        + "\n",
    )


def recover_interrupted(task: Task, say: Callable[[str], None]) -> None:
    """Clear what a handoff that died mid-merge left in the task worktree (see above)."""
    import os
    import time

    path = journal_path(require_plan_run_root(task).dir)
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        wt = Path(info["task_worktree"])
        group = str(info.get("group", "?"))
    except FileNotFoundError:
        return
    except (OSError, ValueError, KeyError, TypeError):
        path.unlink(missing_ok=True)  # written atomically, so never torn; tolerate an edit
        return
    row = registry.get_worktree(worktrees.task_slot(task), None)
    expected = Path(row.path) if row is not None else task_worktree_path(task)
    same = wt.is_dir() and os.path.realpath(wt) == os.path.realpath(expected)
    dirs = git.git_dirs(wt) if same else None  # never touch anything but the task worktree
    if dirs is None:
        path.unlink(missing_ok=True)
        return
    own, common = dirs
    locks = [
        own / "index.lock",
        own / "HEAD.lock",
        own / "ORIG_HEAD.lock",
        common / f"refs/heads/{task_branch(task)}.lock",
    ]
    deadline = time.monotonic() + STALE_LOCK_WAIT_S
    while any(lock.exists() for lock in locks) and time.monotonic() < deadline:
        time.sleep(0.05)  # a git the dead handoff started may still be finishing
    cleared = []
    for lock in locks:
        try:
            os.unlink(lock)
            cleared.append(lock.name)
        except FileNotFoundError:
            pass
    if git.operation_in_progress(wt) == "a merge":
        try:
            message = (own / "MERGE_MSG").read_text(encoding="utf-8", errors="replace")
        except OSError:
            message = ""
        if message.startswith(f"okstra handoff {task.ref} group ") and (
            git.merge_abort(wt) or git.reset(wt, "HEAD", "merge")
        ):
            cleared.append("its unfinished merge")
    commits = [c for c in info.get("commits", []) if isinstance(c, str) and git.looks_like_sha(c)]
    restored = _restore_merge_leftovers(task, wt, commits)
    if restored:
        cleared.append(f"the files its merge had half-written ({some(restored)})")
    undone = _undo_own_merges(task, wt, info.get("head_before"), group)
    if undone:
        cleared.append(
            f"its {undone} merge commit(s), so the group lands whole (task worktree back at {str(info['head_before'])[:8]})"
        )
    what = f"cleared {', '.join(cleared)}" if cleared else "nothing needed clearing"
    say(f"okstra: recovered from an interrupted handoff of group {group} (started {info.get('started', '?')}): {what}")
    path.unlink(missing_ok=True)


def _restore_merge_leftovers(task: Task, wt: Path, commits: list[str]) -> list[str]:
    """Files a killed `git merge` had written into the task worktree without committing
    them (no MERGE_HEAD yet, so no merge to abort). The handoff only merges into a clean
    worktree, so a changed path holding HEAD's or a merged stage's version of itself came
    from that merge: it goes back to HEAD; a new file holding the start of a merged
    stage's version is one the merge was writing when it died: it goes. Anything else is someone's work and stays
    (the clean gate then refuses, naming it)."""
    import os

    restored = []
    for path in git.dirty_paths(wt, task.project.config.clean_gate_excludes):
        here = wt / path
        try:
            mine = os.readlink(here).encode() if here.is_symlink() else here.read_bytes() if here.is_file() else None
        except OSError:
            continue
        if here.exists() and mine is None:
            continue
        ours, *merged = (git.blob(wt, c, path) for c in ["HEAD", *commits])
        if mine in (ours, *merged) and git.restore_path(wt, path):
            restored.append(path)
        elif ours is None and mine and any(v is not None and v.startswith(mine) for v in merged):
            # a file the merge was adding, cut short when it died: not in HEAD, so it goes
            here.unlink()
            restored.append(path)
    return restored


def _undo_own_merges(task: Task, wt: Path, head_before: object, group: str) -> int:
    """Take back the merge commits a killed handoff made (all or nothing): only when every
    commit since `head_before` on the task branch is one of okstra's merges of `group`."""
    head = git.head(wt)
    if not isinstance(head_before, str) or not git.looks_like_sha(head_before) or head in (None, head_before):
        return 0
    if not git.is_ancestor(wt, head_before, head):
        return 0
    proc = git.run(["log", "--first-parent", "--format=%P%x09%s", f"{head_before}..{head}"], wt, check=False)
    lines = proc.stdout.splitlines() if proc.returncode == 0 else []
    prefix = f"okstra handoff {task.ref} group {group}:"
    ours = all(
        len(parents.split()) == 2 and subject.startswith(prefix)
        for parents, _, subject in (l.partition("\t") for l in lines)
    )
    if not lines or not ours or not git.reset(wt, head_before, "keep"):
        return 0
    return len(lines)
