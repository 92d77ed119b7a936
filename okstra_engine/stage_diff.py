"""A stage's change as a person reviews it: the commit range from the stage's base to its
done commit (or, while it is in flight, to its branch tip), and that range's diff.

The base is the one reconcile fingerprints a done commit with (`reconcile.stage_base`):
the stage's recorded base ref when it is an ancestor of the head, else the merge-base of
the head and the task branch. Only when that gives no range (the head is already in the
task branch and no base was recorded) does the preview fall back to the head's parent,
and for a root commit to the empty tree of the repository's hash algorithm.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from . import git
from .ledger_state import LedgerState
from .reconcile import stage_base, target_commit
from .tasks import Task, stage_branch

BaseFrom = Literal["recorded", "merge_base", "parent", "empty"]
HeadFrom = Literal["done", "branch"]


@dataclass(frozen=True)
class StageChange:
    stage: int
    base: str
    head: str
    base_from: BaseFrom
    """Which rule gave the base (see the module docstring)."""
    head_from: HeadFrom
    """`done`: the stage's done commit; `branch`: the tip of its branch (no done commit in
    the repository yet)."""


@dataclass(frozen=True)
class StageDiff:
    change: StageChange
    text: str
    """`git diff --stat --patch` of the range, for a person to read."""
    truncated: bool


def stage_change(task: Task, ledger: LedgerState, stage: int) -> StageChange | None:
    """The stage's commit range; None when it has nothing to show yet (no done commit in
    the repository and no branch), or the project is not a git repository."""
    if not task.project.is_git:
        return None
    root = task.project.root
    known = ledger.stages.get(stage)
    done = known.done.head_commit if known and known.done else None
    head: str | None = git.resolve_commit(root, done) if done else None
    head_from: HeadFrom = "done"
    if head is None:
        head, head_from = git.resolve_commit(root, f"refs/heads/{stage_branch(task, stage)}"), "branch"
    if head is None:
        return None
    found = stage_base(root, ledger.base_ref(stage), head, lambda: target_commit(task))
    if found is not None:
        return StageChange(stage, found[0], head, found[1], head_from)
    parent = git.resolve_commit(root, f"{head}^")
    if parent is not None:
        return StageChange(stage, parent, head, "parent", head_from)
    return StageChange(stage, git.empty_tree(root), head, "empty", head_from)


def stage_diff(task: Task, ledger: LedgerState, stage: int) -> StageDiff | None:
    """The stage's change and its diff text (cut at a size a screen can hold)."""
    change = stage_change(task, ledger, stage)
    if change is None:
        return None
    text, truncated = git.diff_preview(task.project.root, change.base, change.head)
    return StageDiff(change, text, truncated)
