"""Conflicts foreseen before a handoff merges: each stage to merge, in merge order, is
merged in git's object store only (`git merge-tree --write-tree`), on top of what the
stages before it would have made, so the plan names the files each stage would conflict
in while the task worktree stays as it is.

Like the handoff itself, a stage that would conflict is left out and the next ones are
tried on top of what merged so far; a stage that would merge cleanly becomes a commit
(`git commit-tree`, no ref moved) for the next stage to be merged onto.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import git

if TYPE_CHECKING:
    from .plan import HandoffPlan


def predict_conflicts(plan: HandoffPlan) -> dict[int, list[str]]:
    """Per stage to merge that would conflict: the conflicting files (repository paths).
    Two git processes per stage at most; nothing in a work tree or ref changes."""
    repo = plan.task_worktree
    at = plan.task_head
    todo = [(n, plan.stage(n).done_commit) for n in plan.to_merge]
    conflicts: dict[int, list[str]] = {}
    identity: list[str] | None = None
    for i, (n, done) in enumerate(todo):
        if done is None:
            continue
        tree, files = git.merge_tree(repo, at, done)
        if files:
            conflicts[n] = files
            continue
        if tree is None or i == len(todo) - 1:
            continue
        if identity is None:
            identity = git.identity_args(repo)
        at = git.out(
            [*identity, "commit-tree", tree, "-p", at, "-p", done, "-m", f"okstra: predicted merge of stage {n}"],
            repo,
        )
    return conflicts
