"""A stage's change as a person reviews it: the commit range from the stage's base to where
its work is, and that range's diff.

Where its work is: its done commit; while a run holds the stage (taken again after it was
done, say), the tip of its branch; each is the other's fallback.

The base is the one the ledger records for that commit, checked the way reconcile
fingerprints a done commit (`reconcile.stage_base`: used when it is an ancestor of the
head, else the merge-base of the head and the task branch):
- a done row's own base ref (record and carry backfill write it), else the stage's latest
  one (its reservation's);
- a stage done at its recorded base changed nothing: the range is empty;
- a correction row (`reconcile`) that records no base of its own does not inherit the
  replaced commit's: a commit made on the task branch itself (a squash, a cherry-pick, a
  merge commit, on its first-parent line) is its own change, from its parent; any other
  is taken from the stage's base as above.
Only when that gives no range (the head is already in the task branch and no base was
recorded) does the preview fall back to the head's parent, and for a root commit to the
empty tree of the repository's hash algorithm.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from . import git
from .ledger import LedgerRow
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
    done = known.done if known else None
    places: list[tuple[HeadFrom, str]] = [("done", done.head_commit)] if done and done.head_commit else []
    places.append(("branch", f"refs/heads/{stage_branch(task, stage)}"))
    if known is not None and known.in_flight:
        places.reverse()
    found_head = next(((sha, place) for place, rev in places if (sha := git.resolve_commit(root, rev))), None)
    if found_head is None:
        return None
    head, head_from = found_head
    found = _base(task, ledger, stage, done if head_from == "done" else None, head)
    if found is not None:
        return StageChange(stage, found[0], head, found[1], head_from)
    parent = git.resolve_commit(root, f"{head}^")
    if parent is not None:
        return StageChange(stage, parent, head, "parent", head_from)
    return StageChange(stage, git.empty_tree(root), head, "empty", head_from)


def _base(
    task: Task, ledger: LedgerState, stage: int, done: LedgerRow | None, head: str
) -> tuple[str, BaseFrom] | None:
    """The base of `head` (`done`: the done row it is the commit of), by the rules of the
    module docstring; None when they give no range."""
    root = task.project.root
    if done is not None and done.replaces and not done.base_ref:
        target = target_commit(task)
        if git.on_first_parent_line(root, head, target):
            parent = git.resolve_commit(root, f"{head}^")
            return (parent, "parent") if parent else None
        return stage_base(root, ledger.base_ref(stage), head, target)
    recorded = (done.base_ref if done is not None else None) or ledger.base_ref(stage)
    if recorded and (recorded if git.is_full_sha(recorded) else git.resolve_commit(root, recorded)) == head:
        return head, "recorded"
    return stage_base(root, recorded, head, lambda: target_commit(task))


def stage_diff(task: Task, ledger: LedgerState, stage: int) -> StageDiff | None:
    """The stage's change and its diff text (cut at a size a screen can hold)."""
    change = stage_change(task, ledger, stage)
    if change is None:
        return None
    text, truncated = git.diff_preview(task.project.root, change.base, change.head)
    return StageDiff(change, text, truncated)
