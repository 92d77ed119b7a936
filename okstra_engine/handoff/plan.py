"""The merge plan of a group: which stages it has, why any of them cannot be handed off
yet, and how each done commit stands against the task worktree HEAD
(`reconcile.content_merged`: merged already — ancestor, patch-, squash-equivalent,
content-present — or to be merged). Building it never writes: no lock, no ledger or git
change; the TUI shows it as the merge plan.

- What is merged is the stage's latest *done commit* (full SHA), not the tip of its `-sN`
  branch: commits made on the branch after the stage was recorded done are not part of
  the handoff; the plan names them (`left_behind`, per stage).
- A stage whose work is not in the task worktree while its branch no longer contains its
  done commit (amended, rebased or reset after done: `reconcile.rewritten_tip`) is
  refused (`handoff.rewritten`): merging the old commit would lose the new line, merging
  the tip would hand off work nobody recorded.
- A stage whose work is in the task worktree under another commit shows as already
  merged by its kind; a patch-equivalent match that is ambiguous counts as merged (its
  work is there) and the correction is left to a person (`okstra reconcile`).
- Default group: the first group of the Stage Map's order (`StageMap.groups()`: the
  shallowest first) that has no row in `handoffs.jsonl`; when all have one, an error
  that points at final verification (or `--group G` to hand one off again).
- A dirty task worktree (`.okstra` and the project's `cleanGateExcludes` do not count)
  or one with an unfinished merge/rebase blocks a handoff that has something to merge.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import git, registry, worktrees
from ..errors import OkstraError
from ..gates import handoff_refusal
from ..ledger import LedgerRow
from ..ledger_state import LedgerState
from ..plans import require_plan_run_root
from ..reconcile import MERGED_KINDS, Suggestion, content_merged, fix_guidance, rewritten_refusal, rewritten_tip
from ..refusals import Refusal, some
from ..stage_view import StageState
from ..status import task_status
from ..tasks import Task, stage_branch, task_branch, task_worktree_path
from .records import HandoffRow, read_handoffs


@dataclass
class StagePlan:
    """One stage of the group, as the handoff sees it."""

    stage: int
    title: str
    state: StageState
    branch: str
    done_commit: str | None = None
    branch_head: str | None = None
    """The tip of its `-sN` branch (None when the branch is gone)."""
    kind: str | None = None
    """`content_merged` of the done commit against the task HEAD (None when refused first)."""
    match_commit: str | None = None
    ambiguous: bool = False
    refused: Refusal | None = None
    """Why this stage keeps the group from being handed off."""
    reconciled_from: str | None = None
    """The done commit auto-reconcile replaced during this handoff (kind is then the
    replaced commit's relation to the task HEAD)."""
    left_behind: list[str] = field(default_factory=list)
    """The commits of its branch after its done commit, oldest first: not handed off."""

    @property
    def refusal(self) -> str | None:
        """The refusal in English (the CLI's words)."""
        return self.refused.what if self.refused else None

    @property
    def refusal_how(self) -> str | None:
        return self.refused.how if self.refused else None

    @property
    def action(self) -> str:
        """`merge`, `already-merged`, `refused`, or `unclassified` (a refusal elsewhere in
        the group stopped the handoff before this stage was compared with the task HEAD)."""
        if self.refusal:
            return "refused"
        if self.kind is None:
            return "unclassified"
        return "already-merged" if self.kind in MERGED_KINDS else "merge"

    def to_json(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "title": self.title,
            "state": str(self.state),
            "action": self.action,
            "kind": self.kind,
            "branch": self.branch,
            "done_commit": self.done_commit,
            "branch_head": self.branch_head,
            "match_commit": self.match_commit,
            "ambiguous": self.ambiguous,
            "reconciled_from": self.reconciled_from,
            "left_behind": self.left_behind,
            "refusal": self.refusal,
        }


@dataclass
class HandoffPlan:
    task: Task
    group: str
    stages: list[StagePlan]
    plan_dir: Path
    task_worktree: Path
    task_head: str
    groups: dict[str, list[int]]
    """Every group of the Stage Map, in handoff order."""
    handed_off: list[str]
    """Groups with a recorded handoff (before this one)."""
    dirty: list[str] = field(default_factory=list)
    """Uncommitted paths in the task worktree (excluding .okstra and cleanGateExcludes)."""
    busy: str | None = None
    """A git operation left unfinished in the task worktree ("a merge", "a rebase", …)."""
    warnings: list[str] = field(default_factory=list)
    history: list[HandoffRow] = field(default_factory=list, repr=False)
    predicted_conflicts: dict[int, list[str]] = field(default_factory=dict)
    """Per stage to merge, the files its merge would conflict in (`predict`), foreseen
    before merging; empty when not asked (a handoff that merges finds out by merging)."""

    @property
    def stage_numbers(self) -> list[int]:
        return [s.stage for s in self.stages]

    @property
    def refusals(self) -> dict[int, str]:
        """Each refused stage's refusal, in English."""
        return {s.stage: s.refused.what for s in self.stages if s.refused}

    @property
    def refused(self) -> dict[int, Refusal]:
        """Each refused stage's refusal."""
        return {s.stage: s.refused for s in self.stages if s.refused}

    @property
    def to_merge(self) -> list[int]:
        return [s.stage for s in self.stages if s.action == "merge"]

    @property
    def already_merged(self) -> list[int]:
        return [s.stage for s in self.stages if s.action == "already-merged"]

    def json_fields(self) -> dict[str, Any]:
        """What every `handoff --json` answer says of the plan, done or refused."""
        return {
            "task": str(self.task.ref),
            "group": self.group,
            "stages": self.stage_numbers,
            "task_worktree": str(self.task_worktree),
            "plan": [s.to_json() for s in self.stages],
            "left_behind": self.left_behind(),
            "predicted_conflicts": self.predicted(),
        }

    def predicted(self) -> dict[str, list[str]]:
        """`predicted_conflicts` as JSON: by stage number as a string."""
        return {str(n): files for n, files in sorted(self.predicted_conflicts.items())}

    def left_behind(self) -> dict[str, list[str]]:
        """Per stage (its number as a string) that has any: the commits of its branch after
        its done commit, which the handoff does not take."""
        return {str(s.stage): s.left_behind for s in self.stages if s.left_behind}

    def merge_blockers(self) -> list[str]:
        """Why a merge may not start in the task worktree (empty: it may)."""
        found = []
        if self.busy:
            found.append(f"{self.busy} is in progress in the task worktree {self.task_worktree}")
        if self.dirty:
            found.append(f"the task worktree {self.task_worktree} has uncommitted changes: {some(self.dirty)}")
        return found

    def stage(self, n: int) -> StagePlan:
        return next(s for s in self.stages if s.stage == n)

    def earlier_landing(self, sp: StagePlan) -> str | None:
        """The merge commit an earlier handoff made for this very done commit, if any."""
        for row in reversed(self.history):
            for item in row.landed:
                if item.stage == sp.stage and item.merged and item.done_commit == sp.done_commit and item.commit:
                    return item.commit
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "task": str(self.task.ref),
            "group": self.group,
            "stages": self.stage_numbers,
            "to_merge": self.to_merge,
            "already_merged": self.already_merged,
            "refusals": {str(n): why for n, why in self.refusals.items()},
            "task_worktree": str(self.task_worktree),
            "task_head": self.task_head,
            "dirty": self.dirty,
            "busy": self.busy,
            "groups": self.groups,
            "handed_off": self.handed_off,
            "warnings": self.warnings,
            "plan": [s.to_json() for s in self.stages],
            "left_behind": self.left_behind(),
            "predicted_conflicts": self.predicted(),
        }


def handoff_plan(task: Task, group: str | None = None) -> HandoffPlan:
    """The merge plan of `group` (default: the first group not yet handed off). Read-only:
    no lock, no ledger or git change. Raises OkstraError when there is no plan to make
    (no approved plan, unknown group, not a git project, no task worktree). The stages
    to merge carry the conflicts their merges would meet (`predicted_conflicts`)."""
    plan = build_plan(task, group, classify=True)
    foresee(plan)
    return plan


def foresee(plan: HandoffPlan) -> None:
    """Fill `predicted_conflicts` when the plan has something to merge and nothing refused."""
    if plan.to_merge and not plan.refused:
        from .predict import predict_conflicts

        try:
            plan.predicted_conflicts = predict_conflicts(plan)
        except OkstraError as exc:
            plan.warnings.append(f"cannot foresee the merges' conflicts: {exc.what}")


def pick_group(groups: dict[str, list[int]], handed_off: list[str], wanted: str | None, task: Task) -> str:
    """`wanted` (exact, else its only case-insensitive match), or the first group in
    handoff order that has no recorded handoff."""
    listed = ", ".join(groups) or "none"
    if wanted is not None:
        if wanted in groups:
            return wanted
        folded = [g for g in groups if g.casefold() == wanted.casefold()]
        if len(folded) == 1:
            return folded[0]
        raise OkstraError(
            f"group {wanted!r} is not in the Stage Map of {task.ref} (groups: {listed})",
            "pass one of those with --group",
        )
    for name in groups:
        if name not in handed_off:
            return name
    raise OkstraError(
        f"every group of {task.ref} has been handed off already ({listed})",
        f"verify the whole task: okstra prepare {task.ref} --type final-verification "
        f"(or hand a group off again: okstra handoff {task.ref} --group G)",
    )


def locate_task_worktree(task: Task) -> Path:
    """The task worktree (the registry's path, else the standard one), checked to be a
    git work tree on the task branch."""
    root = task.project.root
    row = registry.get_worktree(worktrees.task_slot(task), None)
    path = Path(row.path) if row is not None else task_worktree_path(task)
    branch = task_branch(task)
    if not path.is_dir():
        if git.resolve_commit(root, f"refs/heads/{branch}"):
            how = f"make it again: git -C {shlex.quote(str(root))} worktree add {shlex.quote(str(path))} {branch}"
        else:
            how = f"prepare the task first: okstra prepare {task.ref} --type implementation"
        raise OkstraError(f"the task worktree of {task.ref} ({path}) does not exist", how)
    top = git.toplevel(path)
    if top is None or top.resolve() != path.resolve():
        raise OkstraError(
            f"{path} is not a git work tree, so it cannot be the task worktree of {task.ref}",
            f"move it away, then make the worktree again: git -C {shlex.quote(str(root))} worktree add {shlex.quote(str(path))} {branch}",
        )
    current = git.current_branch(path)
    if current != branch:
        holds = f"branch {current}" if current else "a detached HEAD"
        raise OkstraError(
            f"the task worktree {path} has {holds} checked out, not the task branch {branch}",
            f"switch it back, then rerun: git -C {shlex.quote(str(path))} switch {branch}",
        )
    return path


def build_plan(
    task: Task,
    group: str | None,
    *,
    classify: bool,
    applied: Sequence[Suggestion] = (),
) -> HandoffPlan:
    plan_run = require_plan_run_root(task)
    stage_map = plan_run.stage_map()
    groups = stage_map.groups()
    history = read_handoffs(plan_run.dir)
    handed_off = history.handed_off()
    chosen = pick_group(groups, handed_off, group, task)
    if not task.project.is_git:
        raise OkstraError(
            f"project {task.project.id} is not a git repository: a handoff has nothing to merge",
            f"its stages count as done once recorded (okstra status {task.ref})",
        )
    wt = locate_task_worktree(task)
    head = git.head(wt)
    if head is None:
        raise OkstraError(f"the task worktree {wt} has no commit", f"check it: git -C {wt} status")
    status = task_status(task)
    views = {v.stage: v for v in status.stages}
    plan = HandoffPlan(
        task,
        chosen,
        [],
        plan_run.dir,
        wt,
        head,
        groups,
        handed_off,
        warnings=[*history.warnings, *status.warnings],
        history=history.rows,
    )
    done = status.ledger.done_rows()
    root = task.project.root
    corrected = {s.stage: s for s in applied}
    for n in groups[chosen]:
        view = views[n]
        sp = StagePlan(n, view.title, view.state, stage_branch(task, n))
        sp.branch_head = git.resolve_commit(root, f"refs/heads/{sp.branch}")
        row = done.get(n)
        if row is not None and row.head_commit:
            sp.done_commit = git.resolve_commit(root, row.head_commit) or row.head_commit
        sp.refused = handoff_refusal(status, n)
        if classify and sp.refused is None and row is not None:
            _classify(task, sp, status.ledger, row, head, corrected.get(n))
        plan.stages.append(sp)
    if classify:
        plan.dirty = git.dirty_paths(wt, task.project.config.clean_gate_excludes)
        plan.busy = git.operation_in_progress(wt)
    return plan


def _classify(
    task: Task, sp: StagePlan, ledger: LedgerState, row: LedgerRow, head: str, fix: Suggestion | None
) -> None:
    root = task.project.root
    if sp.done_commit is None:  # refused by state: a done stage names its commit
        return
    try:
        match = content_merged(root, sp.done_commit, head, base=ledger.base_ref(sp.stage), stored=row)
    except OkstraError as exc:
        sp.refused = Refusal("handoff.unclassified", {"task": str(task.ref), "stage": sp.stage, "why": exc.what})
        return
    sp.kind, sp.match_commit, sp.ambiguous = match.kind, match.commit, match.ambiguous
    if fix is not None and match.kind == "ancestor" and fix.suggested == sp.done_commit:
        # corrected in this handoff: say how the work was found, not that the new pin is in
        sp.kind, sp.match_commit, sp.reconciled_from = fix.kind, fix.suggested, fix.recorded
    exists = git.resolve_commit(root, sp.done_commit) is not None
    if match.kind == "missing" or (not match.merged and not exists):
        sp.refused = Refusal(
            "handoff.commit_missing",
            {"task": str(task.ref), "stage": sp.stage, "commit": sp.done_commit, "fix": fix_guidance(task, sp.stage)},
        )
        return
    if sp.branch_head in (None, sp.done_commit):
        return
    tip = None if match.merged else rewritten_tip(task, sp.stage, sp.done_commit)
    if tip is not None:
        sp.kind, sp.match_commit = "rewritten", tip
        sp.refused = rewritten_refusal(task, sp.stage, sp.done_commit, tip)
    elif not match.merged or git.contains(root, str(sp.branch_head), sp.done_commit):
        # the branch moved on past its done commit (a merged done commit the branch does
        # not hold, such as a squash recorded from the task branch, has nothing after it)
        sp.left_behind = git.out(["rev-list", "--reverse", f"{sp.done_commit}..{sp.branch_head}"], root).split()


# ---------------------------------------------------------------------------- errors


class HandoffError(OkstraError):
    """A handoff that was refused or undone; carries its plan (and conflicts) for the
    TUI and `--json`."""

    def __init__(
        self,
        what: str,
        how: str,
        plan: HandoffPlan,
        *,
        conflicts: dict[int, list[str]] | None = None,
        applied: Sequence[Suggestion] = (),
        refusal: Refusal | None = None,
    ) -> None:
        super().__init__(what, how)
        self.plan = plan
        self.conflicts = dict(conflicts or {})
        self.applied = list(applied)
        self.refusal = refusal
        """The refusal whose words these are (a conflict's), for the TUI and `--json`."""

    @property
    def refusals(self) -> dict[int, str]:
        return self.plan.refusals

    def to_json(self) -> dict[str, Any]:
        plan = self.plan
        return {
            **plan.json_fields(),
            "merged": [],
            "already_merged": plan.already_merged,
            "would_merge": plan.to_merge,
            "task_head": plan.task_head,
            "next_ready": [],
            "error": self.what,
            "fix": self.how,
            "refusals": {str(n): why for n, why in plan.refusals.items()},
            "conflicts": {str(n): files for n, files in sorted(self.conflicts.items())},
            "blockers": plan.merge_blockers(),
            "applied": [s.to_json() for s in self.applied],
            "refusal": self.refusal.to_json() if self.refusal else None,
        }


def refused_error(plan: HandoffPlan, applied: Sequence[Suggestion] = ()) -> HandoffError:
    refused = list(plan.refused.values())
    hows = list(dict.fromkeys(r.how for r in refused if r.how))
    return HandoffError(
        f"cannot hand off group {plan.group} of {plan.task.ref}: " + "; ".join(r.what for r in refused),
        "; ".join(hows) or f"see okstra status {plan.task.ref}",
        plan,
        applied=applied,
    )
