"""Stage-group handoff (SPEC §4.5): land a finished group of stages in the task worktree,
all or nothing, and write down what landed where.

`handoff_plan(task, group)` is read-only: which stages the group has, why any of them
cannot be handed off yet (not done, in flight, stale, a done commit that is gone), and for
the others how their done commit stands against the task worktree HEAD
(`reconcile.content_merged`: merged already — ancestor, patch-, squash-equivalent,
content-present — or to be merged). The TUI shows it as the merge plan.

`run_handoff(task, group, merge)` does it, under the task mutex (so a handoff and a
`prepare` of the same task never interleave):
1. refuse, with the reason per stage, when a stage of the group is not done or in flight;
2. carry backfill, then auto-reconcile against the task worktree HEAD (each correction is
   reported as `git-reconcile: stage N done commit A -> B (KIND)`; a failure as
   `git-reconcile skipped: <why>`, and the handoff goes on);
3. classify each stage again (corrected rows included);
4. with `merge`: refuse a dirty task worktree (`.okstra` and the project's
   `cleanGateExcludes` do not count) or one with an unfinished merge/rebase; then
   `git merge --no-ff` each unmerged stage's done commit in stage order. On a conflict
   the merge is aborted and the task worktree reset to the commit it had before the
   handoff (`reset --keep`: local changes in excluded paths survive), and the
   conflicting files are reported per stage;
5. after a successful merge, or when every stage of the group was merged already, append
   a row to `handoffs.jsonl` (plan run root) and write `handoff-G.md` atomically.

Decisions where SPEC.md is silent:
- What is merged is the stage's latest *done commit* (full SHA), not the tip of its `-sN`
  branch: commits made on the branch after the stage was recorded done are not part of
  the handoff (the plan shows the branch tip when it differs). The merge message names the
  task, group, stage and title on its first line, the branch and commit on the second.
- After a conflict the remaining stages are still tried (on top of what merged so far,
  conflicting stages left out), so the error lists every stage that conflicts; then
  everything is undone.
- Merges run with `--no-verify` (no pre-merge-commit/commit-msg hooks), no autostash and
  no rerere auto-staging, like okstra's other mechanical commits. A merge git refuses for
  another reason than a conflict (hook, local change in an excluded path the merge would
  overwrite) stops the handoff at once, everything undone, with git's message.
- The author is the repository's configured identity; where `user.name`/`user.email`
  are unset, `okstra <okstra@localhost>` (CI machines with no git config).
- A dirty task worktree only blocks a handoff that has something to merge; recording a
  group that is already merged is allowed (nothing in git changes).
- Without `merge` nothing in the task worktree or its branch changes. Auto-reconcile still
  runs (it records ledger corrections and pins, like prepare), and when every stage of the
  group is merged already the handoff is recorded (row + report): that is how a group
  merged by hand is marked handed off.
- `handoff_plan` never writes (no reconcile corrections, no lock): a stage whose work is
  in the task worktree under another commit shows as already merged by its kind.
- A patch-equivalent match that is ambiguous counts as merged (its work is there); the
  correction is left to a person (`okstra reconcile`), and the report says so.
- Default group: the first group of the Stage Map's order (`StageMap.groups()`: the
  shallowest first) that has no row in `handoffs.jsonl`; when all have one, an error
  that points at final verification (or `--group G` to hand one off again).
- `next_ready` lists the stages `status` calls ready after the handoff; the next command is
  final verification when every stage is done and merged, else implementation when a stage
  is ready, else the handoff of the next fully-done group, else `okstra status`.
- The report file is `handoff-<group>.md`; a group name that is not a safe file name is
  slugged and suffixed with a short hash of the name.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ConfigDict, ValidationError

from . import faults, git, registry, worktrees
from .documents import Doc
from .errors import OkstraError, describe_validation_error
from .fsio import append_line, atomic_write_text
from .ledger import LedgerRow, format_ts, hostname, utc_now
from .ledger_state import LedgerState
from .locks import task_mutex
from .plans import require_plan_run_root
from .reconcile import MERGED_KINDS, Suggestion, content_merged, fix_guidance
from .slugs import slugify
from .status import StageView, TaskStatus, task_status
from .tasks import Task, stage_branch, task_branch, task_worktree_path

HANDOFFS_NAME = "handoffs.jsonl"
SCHEMA_VERSION = 1
LOCK_TIMEOUT_S = 900.0
DONE_STATES = ("done", "not-merged")

Notice = Callable[[str], None]


# ---------------------------------------------------------------------------- the record


class LandedStage(Doc):
    """One stage of a recorded handoff."""

    model_config = ConfigDict(extra="allow")

    stage: int
    done_commit: str | None = None
    kind: str
    """How its work stood against the task HEAD before this handoff (`not-merged`, …)."""
    merged: bool = False
    """Merged by this handoff."""
    commit: str | None = None
    """Where its work is in the task history: okstra's merge commit, or the matching commit."""
    replaced: str | None = None
    """The done commit auto-reconcile replaced during this handoff."""


class HandoffRow(Doc):
    """A line of `handoffs.jsonl`: one successful handoff of one group."""

    model_config = ConfigDict(extra="allow")

    v: int = SCHEMA_VERSION
    ts: str
    task: str
    group: str
    stages: list[int]
    merged: list[int] = []
    already_merged: list[int] = []
    head_before: str
    head_after: str
    landed: list[LandedStage] = []
    host: str | None = None

    def to_line(self) -> str:
        return json.dumps(self.model_dump(mode="json", exclude_none=True), separators=(",", ":"), ensure_ascii=False)


@dataclass
class HandoffsRead:
    rows: list[HandoffRow] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def handed_off(self) -> list[str]:
        """Groups with at least one recorded handoff, in the order first recorded."""
        return list(dict.fromkeys(row.group for row in self.rows))


def handoffs_path(plan_dir: Path) -> Path:
    return plan_dir / HANDOFFS_NAME


def read_handoffs(plan_dir: Path) -> HandoffsRead:
    """Every valid row of `handoffs.jsonl`; a torn or invalid line is skipped and named."""
    path = handoffs_path(plan_dir)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return HandoffsRead()
    result = HandoffsRead()
    lines = data.split(b"\n")
    last = max((no for no, line in enumerate(lines, 1) if line.strip()), default=0)
    for no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            result.rows.append(HandoffRow.model_validate_json(line))
        except ValidationError as exc:
            if any(err.get("type") == "json_invalid" for err in exc.errors()):
                torn = no == last and not data.endswith(b"\n")
                why = "torn write (no newline at the end)" if torn else "not valid JSON"
                result.warnings.append(f"{HANDOFFS_NAME} line {no}: {why}; skipped")
            else:
                result.warnings.append(describe_validation_error(exc, f"{HANDOFFS_NAME} line {no}") + "; skipped")
    return result


def append_handoff(plan_dir: Path, row: HandoffRow) -> None:
    """One O_APPEND write of one line, then fsync (`fsio.append_line`)."""
    append_line(handoffs_path(plan_dir), row.to_line())


def report_name(group: str) -> str:
    """`handoff-<group>.md`, with a group name that is safe as a file name."""
    if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", group) and ".." not in group:
        return f"handoff-{group}.md"
    digest = hashlib.sha1(group.encode("utf-8")).hexdigest()[:8]
    return f"handoff-{slugify(group) if slugify(group) != 'project' else 'group'}-{digest}.md"


# ---------------------------------------------------------------------------- the plan


@dataclass
class StagePlan:
    """One stage of the group, as the handoff sees it."""

    stage: int
    title: str
    state: str
    """Its status state (done, not-merged, in-flight, stale, ready, blocked)."""
    branch: str
    done_commit: str | None = None
    branch_head: str | None = None
    """The tip of its `-sN` branch (None when the branch is gone)."""
    kind: str | None = None
    """`content_merged` of the done commit against the task HEAD (None when refused first)."""
    match_commit: str | None = None
    ambiguous: bool = False
    refusal: str | None = None
    refusal_how: str | None = None
    reconciled_from: str | None = None
    """The done commit auto-reconcile replaced during this handoff (kind is then the
    replaced commit's relation to the task HEAD)."""

    @property
    def action(self) -> str:
        """`merge`, `already-merged`, `refused`, or `unclassified` (a refusal elsewhere in
        the group stopped the handoff before this stage was compared with the task HEAD)."""
        if self.refusal:
            return "refused"
        if self.kind is None:
            return "unclassified"
        return "already-merged" if self.kind in MERGED_KINDS else "merge"

    def to_json(self) -> dict:
        return {
            "stage": self.stage,
            "title": self.title,
            "state": self.state,
            "action": self.action,
            "kind": self.kind,
            "branch": self.branch,
            "done_commit": self.done_commit,
            "branch_head": self.branch_head,
            "match_commit": self.match_commit,
            "ambiguous": self.ambiguous,
            "reconciled_from": self.reconciled_from,
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

    @property
    def stage_numbers(self) -> list[int]:
        return [s.stage for s in self.stages]

    @property
    def refusals(self) -> dict[int, str]:
        return {s.stage: s.refusal for s in self.stages if s.refusal}

    @property
    def to_merge(self) -> list[int]:
        return [s.stage for s in self.stages if s.action == "merge"]

    @property
    def already_merged(self) -> list[int]:
        return [s.stage for s in self.stages if s.action == "already-merged"]

    def merge_blockers(self) -> list[str]:
        """Why a merge may not start in the task worktree (empty: it may)."""
        found = []
        if self.busy:
            found.append(f"{self.busy} is in progress in the task worktree {self.task_worktree}")
        if self.dirty:
            found.append(f"the task worktree {self.task_worktree} has uncommitted changes: {_some(self.dirty)}")
        return found

    def stage(self, n: int) -> StagePlan:
        return next(s for s in self.stages if s.stage == n)

    def to_json(self) -> dict:
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
        }


def handoff_plan(task: Task, group: str | None = None) -> HandoffPlan:
    """The merge plan of `group` (default: the first group not yet handed off). Read-only:
    no lock, no ledger or git change. Raises OkstraError when there is no plan to make
    (no approved plan, unknown group, not a git project, no task worktree)."""
    return _build_plan(task, group, classify=True)


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


def _build_plan(
    task: Task,
    group: str | None,
    *,
    classify: bool,
    applied: list[Suggestion] = (),
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
        _refuse_by_state(task, sp, view, row)
        if classify and sp.refusal is None:
            _classify(task, sp, status.ledger, row, head, corrected.get(n))
        plan.stages.append(sp)
    if classify:
        plan.dirty = git.dirty_paths(wt, task.project.config.clean_gate_excludes)
        plan.busy = git.operation_in_progress(wt)
    return plan


def _refuse_by_state(task: Task, sp: StagePlan, view: StageView, row: LedgerRow | None) -> None:
    ref, n = task.ref, sp.stage
    release = f"okstra record {ref} --stage {n} --status released"
    if view.state == "in-flight":
        since = view.since.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if view.since else "?"
        sp.refusal = f"stage {n} is in flight (run {view.run_id or '?'}, since {since})"
        sp.refusal_how = f"let that run finish (okstra status {ref}); if it was abandoned: {release}"
    elif view.state == "stale":
        sp.refusal = f"stage {n} is held by a stale reservation (run {view.run_id or '?'}: {view.stale_reason})"
        sp.refusal_how = f"release it, finish the stage, then rerun: {release}"
    elif view.state == "blocked":
        waits = ", ".join(map(str, view.waits_for))
        sp.refusal = f"stage {n} is not done (it waits for stage(s) {waits})"
        sp.refusal_how = f"finish the stages of the group first (okstra status {ref})"
    elif view.state == "ready":
        sp.refusal = f"stage {n} is not done (ready, not started)"
        sp.refusal_how = f"implement it first: okstra prepare {ref} --type implementation --stage {n}"
    elif row is None or not row.head_commit:
        sp.refusal = f"stage {n} is done but its ledger row names no commit"
        sp.refusal_how = f"record the commit it finished at: okstra record {ref} --stage {n} --status done --commit SHA"


def _classify(
    task: Task, sp: StagePlan, ledger: LedgerState, row: LedgerRow, head: str, fix: Suggestion | None
) -> None:
    root = task.project.root
    try:
        match = content_merged(root, sp.done_commit, head, base=ledger.base_ref(sp.stage), stored=row)
    except OkstraError as exc:
        sp.refusal = f"cannot tell whether stage {sp.stage} is merged: {exc.what}"
        sp.refusal_how = f"see: okstra reconcile {task.ref} --stage {sp.stage}"
        return
    sp.kind, sp.match_commit, sp.ambiguous = match.kind, match.commit, match.ambiguous
    if fix is not None and match.kind == "ancestor" and fix.suggested == sp.done_commit:
        # corrected in this handoff: say how the work was found, not that the new pin is in
        sp.kind, sp.match_commit, sp.reconciled_from = fix.kind, fix.suggested, fix.recorded
    exists = git.resolve_commit(root, sp.done_commit) is not None
    if match.kind == "missing" or (not match.merged and not exists):
        sp.refusal = (
            f"stage {sp.stage}'s done commit {sp.done_commit[:8]} is not in the repository, "
            f"and its work is not found in the task worktree"
        )
        sp.refusal_how = fix_guidance(task, sp.stage)


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
        applied: list[Suggestion] = (),
    ) -> None:
        super().__init__(what, how)
        self.plan = plan
        self.conflicts = dict(conflicts or {})
        self.applied = list(applied)

    @property
    def refusals(self) -> dict[int, str]:
        return self.plan.refusals

    def to_json(self) -> dict:
        plan = self.plan
        return {
            "task": str(plan.task.ref),
            "group": plan.group,
            "stages": plan.stage_numbers,
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
            "task_worktree": str(plan.task_worktree),
            "plan": [s.to_json() for s in plan.stages],
        }


def _refused(plan: HandoffPlan, applied: list[Suggestion] = ()) -> HandoffError:
    refused = [s for s in plan.stages if s.refusal]
    hows = list(dict.fromkeys(s.refusal_how for s in refused if s.refusal_how))
    return HandoffError(
        f"cannot hand off group {plan.group} of {plan.task.ref}: " + "; ".join(s.refusal for s in refused),
        "; ".join(hows) or f"see okstra status {plan.task.ref}",
        plan,
        applied=applied,
    )


# ---------------------------------------------------------------------------- the run


@dataclass
class HandoffResult:
    plan: HandoffPlan
    merge: bool
    """Whether merging was asked for (False: a merge plan, nothing merged)."""
    head_before: str
    task_head: str
    merged: list[int] = field(default_factory=list)
    already_merged: list[int] = field(default_factory=list)
    would_merge: list[int] = field(default_factory=list)
    """Without `merge`: what `--merge` would merge."""
    merge_commits: dict[int, str] = field(default_factory=dict)
    next_ready: list[int] = field(default_factory=list)
    next_command: str = ""
    applied: list[Suggestion] = field(default_factory=list)
    record: HandoffRow | None = None
    report: Path | None = None
    notices: list[str] = field(default_factory=list)

    @property
    def recorded(self) -> bool:
        return self.record is not None

    def to_json(self) -> dict:
        plan = self.plan
        return {
            "task": str(plan.task.ref),
            "group": plan.group,
            "stages": plan.stage_numbers,
            "merged": self.merged,
            "already_merged": self.already_merged,
            "would_merge": self.would_merge,
            "task_head": self.task_head,
            "head_before": self.head_before,
            "next_ready": self.next_ready,
            "next_command": self.next_command,
            "dry_run": not self.merge,
            "recorded": self.recorded,
            "record": str(handoffs_path(plan.plan_dir)) if self.recorded else None,
            "report": str(self.report) if self.report else None,
            "merge_commits": {str(n): sha for n, sha in sorted(self.merge_commits.items())},
            "conflicts": {},
            "blockers": plan.merge_blockers() if self.would_merge else [],
            "applied": [s.to_json() for s in self.applied],
            "task_worktree": str(plan.task_worktree),
            "plan": [s.to_json() for s in plan.stages],
            "warnings": plan.warnings,
        }


def run_handoff(
    task: Task,
    group: str | None = None,
    merge: bool = True,
    *,
    notice: Notice | None = None,
    warn: Notice | None = None,
    lock_timeout: float | None = LOCK_TIMEOUT_S,
) -> HandoffResult:
    """Hand off `group` (default: the first not yet handed off), under the task mutex.

    `notice` gets progress lines (carry backfill, each applied reconcile correction),
    `warn` the problems that do not stop the handoff (`git-reconcile skipped: …`); both
    are also kept in the result's `notices`. Raises HandoffError (an OkstraError) when a
    stage is refused, the task worktree cannot take a merge, or a merge conflicts (then
    nothing of the group is merged and the task worktree is back where it was)."""
    notices: list[str] = []

    def say(text: str, sink: Notice | None) -> None:
        notices.append(text)
        if sink is not None:
            sink(text)

    with task_mutex(
        task.project.id,
        task.ref.group,
        task.ref.id,
        timeout=lock_timeout,
        on_wait=lambda path: say(f"okstra: waiting for another okstra process working on {task.ref} …", warn or notice),
    ):
        faults.point("handoff.locked")
        _recover_interrupted(task, lambda t: say(t, warn or notice))
        first = _build_plan(task, group, classify=False)
        if first.refusals:
            raise _refused(first)
        applied = _reconcile(task, first.task_head, lambda t: say(t, notice), lambda t: say(t, warn))
        plan = _build_plan(task, first.group, classify=True, applied=applied)
        if plan.refusals:
            raise _refused(plan, applied)
        before = plan.task_head
        result = HandoffResult(
            plan, merge, before, before, applied=applied, notices=notices, already_merged=plan.already_merged
        )
        if plan.to_merge and not merge:
            result.would_merge = plan.to_merge
        elif plan.to_merge:
            blockers = plan.merge_blockers()
            if blockers:
                raise HandoffError(
                    f"cannot merge group {plan.group} of {task.ref}: " + "; ".join(blockers),
                    f"commit, stash or finish what is there first (git -C {shlex.quote(str(plan.task_worktree))} status); "
                    "okstra ignores .okstra and the project's cleanGateExcludes",
                    plan,
                    applied=applied,
                )
            _begin_journal(plan)
            try:
                merges, up_to_date = _merge_group(plan, applied)
            finally:
                if git.operation_in_progress(plan.task_worktree) is None:
                    _journal_path(plan.plan_dir).unlink(missing_ok=True)
            faults.point("handoff.merged-all")
            result.merge_commits = merges
            result.merged = [n for n in plan.to_merge if n in merges]
            result.already_merged = [n for n in plan.stage_numbers if n in plan.already_merged or n in up_to_date]
            result.task_head = git.head(plan.task_worktree) or before
        after = task_status(task)
        result.next_ready = [v.stage for v in after.stages if v.state == "ready"]
        if result.would_merge:
            result.next_command = f"okstra handoff {task.ref} --group {shlex.quote(plan.group)} --merge"
        else:
            result.record = _record(plan, result)
            faults.point("handoff.recorded")
            result.next_command = next_command(task, after, plan.groups, [*plan.handed_off, plan.group])
            result.report = write_report(plan, result, after)
        return result


# ---------------------------------------------------------------------------- crash recovery
#
# A handoff killed while it merges (SIGKILL, power loss, a closed terminal taking git with
# it) can leave, in the task worktree, a merge git never finished and git's lock files
# (index.lock, HEAD.lock, the task branch's ref lock): every later git command there fails
# until someone cleans up by hand. So the merges run under a journal (a small file beside
# the plan, written before the first merge, removed when the task worktree is quiet again).
# The next handoff finds it, under the task mutex, and clears what the dead handoff left:
# it waits a moment for a git that outlived okstra, then removes the locks it left; aborts
# the merge when it is okstra's own (its message says so); puts back the files a merge had
# half-written (only those holding HEAD's or a merged stage's version: anything else is
# someone's work); and takes back the merge commits the dead handoff made, when the task
# branch holds nothing else since, so a group still lands all or nothing. Then the handoff
# runs as usual. A `prepare` or `status` in between sees the worktree as the kill left it.

JOURNAL_NAME = ".handoff-in-progress.json"
STALE_LOCK_WAIT_S = 1.0


def _journal_path(plan_dir: Path) -> Path:
    return plan_dir / JOURNAL_NAME


def _begin_journal(plan: HandoffPlan) -> None:
    atomic_write_text(
        _journal_path(plan.plan_dir),
        json.dumps(
            {
                "task": str(plan.task.ref),
                "group": plan.group,
                "task_worktree": str(plan.task_worktree),
                "head_before": plan.task_head,
                "started": format_ts(utc_now()),
                "host": hostname(),
                "commits": [plan.stage(n).done_commit for n in plan.to_merge],
            }
        )
        + "\n",
    )


def _recover_interrupted(task: Task, say: Callable[[str], None]) -> None:
    """Clear what a handoff that died mid-merge left in the task worktree (see above)."""
    import os
    import time

    path = _journal_path(require_plan_run_root(task).dir)
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
        cleared.append(f"the files its merge had half-written ({_some(restored)})")
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
    from that merge: it goes back to HEAD. Anything else is someone's work and stays
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
        if any(mine == git.blob(wt, c, path) for c in ["HEAD", *commits]) and git.restore_path(wt, path):
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


def _reconcile(task: Task, head: str, say: Notice, warn: Notice) -> list[Suggestion]:
    """Carry backfill, then auto-reconcile against the task HEAD; best effort."""
    from . import reconcile

    try:
        for row in reconcile.backfill_done(task):
            say(f"okstra: stage {row.stage} done at {(row.head_commit or '-')[:8]} recovered from its carry sidecar")
    except OkstraError as exc:
        warn(f"okstra: carry backfill skipped: {exc.what}")
    try:
        applied = reconcile.auto_reconcile(task, target=head)
    except (OkstraError, OSError, ValueError) as exc:
        warn(f"git-reconcile skipped: {getattr(exc, 'what', None) or exc}")
        return []
    for s in applied:
        say(s.applied_line())
    return applied


def _message(plan: HandoffPlan, sp: StagePlan) -> list[str]:
    return [
        f"okstra handoff {plan.task.ref} group {plan.group}: stage {sp.stage} ({sp.title})",
        f"Merge {sp.branch} at {sp.done_commit} (stage {sp.stage}'s done commit).",
    ]


def _merge_group(plan: HandoffPlan, applied: list[Suggestion]) -> tuple[dict[int, str], list[int]]:
    """Merge each stage to merge, in stage order; all or nothing. Returns the merge
    commit of each merged stage, and the stages git found up to date."""
    wt, before = plan.task_worktree, plan.task_head
    identity = git.identity_args(wt)
    merges: dict[int, str] = {}
    up_to_date: list[int] = []
    conflicts: dict[int, list[str]] = {}
    try:
        for n in plan.to_merge:
            sp = plan.stage(n)
            at = git.head(wt)
            proc = git.merge_no_ff(wt, sp.done_commit, _message(plan, sp), identity=identity)
            if proc.returncode == 0:
                now = git.head(wt)
                if now == at:
                    up_to_date.append(n)
                else:
                    merges[n] = now
                faults.point("handoff.merged-one")
                continue
            files = git.unmerged_paths(wt)
            if not files:
                why = git.failure_message(proc)
                raise HandoffError(
                    f"git refused to merge stage {n} ({sp.done_commit[:8]}) into the task worktree: {why}; "
                    f"nothing of group {plan.group} was merged (task worktree back at {before[:8]})",
                    f"fix what git reports in {wt}, then rerun: okstra handoff {plan.task.ref} --group {shlex.quote(plan.group)} --merge",
                    plan,
                    applied=applied,
                )
            conflicts[n] = files
            faults.point("handoff.conflicted")
            if not git.merge_abort(wt) or git.head(wt) != at:
                raise OkstraError(f"git merge --abort failed in {wt} after stage {n} conflicted", "")
    except BaseException:
        _restore(wt, before)
        raise
    if conflicts:
        _restore(wt, before)
        raise _conflict_error(plan, conflicts, applied)
    return merges, up_to_date


def _restore(wt: Path, before: str) -> None:
    """Put the task worktree back at `before`, with no merge in progress; keep local
    changes in paths the handoff did not touch. Raise when git will not."""
    if git.operation_in_progress(wt) == "a merge" and not git.merge_abort(wt):
        git.reset(wt, "HEAD", "merge")
    if git.head(wt) != before and not git.reset(wt, before, "keep"):
        git.reset(wt, before, "merge")
    if git.head(wt) != before or git.operation_in_progress(wt):
        q = shlex.quote(str(wt))
        raise OkstraError(
            f"the handoff could not put the task worktree {wt} back at {before[:12]}",
            f"restore it by hand (this discards uncommitted changes there): git -C {q} merge --abort; git -C {q} reset --hard {before}",
        )


def _conflict_error(plan: HandoffPlan, conflicts: dict[int, list[str]], applied: list[Suggestion]) -> HandoffError:
    parts = [f"stage {n} ({plan.stage(n).title}) conflicts in {_some(files)}" for n, files in sorted(conflicts.items())]
    first = min(conflicts)
    sp = plan.stage(first)
    q = shlex.quote(str(plan.task_worktree))
    return HandoffError(
        f"handoff of group {plan.group} of {plan.task.ref} undone: "
        + "; ".join(parts)
        + f"; nothing of the group was merged (task worktree back at {plan.task_head[:8]}, clean)",
        f"merge it by hand and resolve: git -C {q} merge --no-ff {sp.done_commit[:12]} (stage {first}), fix the conflicts, "
        f"commit, then rerun okstra handoff {plan.task.ref} --group {shlex.quote(plan.group)} --merge "
        "(a stage already merged is counted, not merged again)",
        plan,
        conflicts=conflicts,
        applied=applied,
    )


def _record(plan: HandoffPlan, result: HandoffResult) -> HandoffRow:
    landed = []
    for sp in plan.stages:
        merged = sp.stage in result.merge_commits
        landed.append(
            LandedStage(
                stage=sp.stage,
                done_commit=sp.done_commit,
                kind=sp.kind or "unknown",
                merged=merged,
                commit=result.merge_commits.get(sp.stage) or _earlier_landing(plan, sp) or sp.match_commit,
                replaced=sp.reconciled_from,
            )
        )
    row = HandoffRow(
        ts=format_ts(utc_now()),
        task=str(plan.task.ref),
        group=plan.group,
        stages=plan.stage_numbers,
        merged=result.merged,
        already_merged=result.already_merged,
        head_before=result.head_before,
        head_after=result.task_head,
        landed=landed,
        host=hostname(),
    )
    append_handoff(plan.plan_dir, row)
    return row


def _earlier_landing(plan: HandoffPlan, sp: StagePlan) -> str | None:
    """The merge commit an earlier handoff made for this very done commit, if any."""
    for row in reversed(plan.history):
        for item in row.landed:
            if item.stage == sp.stage and item.merged and item.done_commit == sp.done_commit and item.commit:
                return item.commit
    return None


def next_command(task: Task, status: TaskStatus, groups: dict[str, list[int]], handed_off: list[str]) -> str:
    """What to run after a handoff: final verification when every stage is done and
    merged; implementation when a stage is ready; else the handoff of the next group whose
    stages are all done; else `okstra status`."""
    ref = task.ref
    states = {v.stage: v.state for v in status.stages}
    if states and all(s == "done" for s in states.values()):
        return f"okstra prepare {ref} --type final-verification"
    if any(s == "ready" for s in states.values()):
        return f"okstra prepare {ref} --type implementation"
    for name, members in groups.items():
        if all(states.get(n) in DONE_STATES for n in members) and (
            name not in handed_off or any(states.get(n) == "not-merged" for n in members)
        ):
            return f"okstra handoff {ref} --group {shlex.quote(name)} --merge"
    return f"okstra status {ref}"


# ---------------------------------------------------------------------------- the report


def write_report(plan: HandoffPlan, result: HandoffResult, after: TaskStatus) -> Path:
    """`handoff-G.md` beside the plan, written atomically."""
    path = plan.plan_dir / report_name(plan.group)
    atomic_write_text(path, render_report(plan, result, after))
    return path


def render_report(plan: HandoffPlan, result: HandoffResult, after: TaskStatus) -> str:
    task = plan.task
    when = result.record.ts if result.record else format_ts(datetime.now(UTC))
    lines = [
        f"# Handoff of group {plan.group} — {task.ref}",
        "",
        f"{task.doc.title}",
        "",
        f"- when: {when}",
        f"- stages: {', '.join(map(str, plan.stage_numbers))}",
        f"- task worktree: `{plan.task_worktree}` (branch `{task_branch(task)}`)",
        f"- task HEAD: `{result.head_before[:12]}` → `{result.task_head[:12]}`"
        + ("" if result.merged else " (nothing merged: every stage was in already)"),
        "",
        "## What landed",
        "",
        "| Stage | Title | How | Done commit | In the task history at |",
        "|-------|-------|-----|-------------|------------------------|",
    ]
    notes = []
    for sp in plan.stages:
        merge_commit = result.merge_commits.get(sp.stage)
        if merge_commit:
            how, where = "merged now (`--no-ff`)", f"merge `{merge_commit[:12]}`"
        else:
            how = f"already there ({sp.kind})"
            if sp.reconciled_from:
                how += f"; done commit corrected from `{sp.reconciled_from[:12]}`"
            earlier = _earlier_landing(plan, sp)
            at = earlier or sp.match_commit
            where = f"{'merge ' if earlier else ''}`{at[:12]}`" if at else "-"
        if sp.ambiguous:
            notes.append(
                f"- stage {sp.stage}: several commits carry its change; the done commit is left as it is — "
                f"pick the right one: `okstra reconcile {task.ref} --stage {sp.stage} --commit SHA`"
            )
        if sp.branch_head and sp.done_commit and sp.branch_head != sp.done_commit:
            notes.append(
                f"- stage {sp.stage}: branch `{sp.branch}` is at `{sp.branch_head[:12]}`, past its done commit; "
                "only the done commit was handed off"
            )
        done = f"`{sp.done_commit[:12]}`" if sp.done_commit else "-"
        lines.append(f"| {sp.stage} | {_cell(sp.title)} | {how} | {done} | {where} |")
    if notes:
        lines += ["", "Notes:", "", *notes]
    titles = {v.stage: v for v in after.stages}
    ready = [v for v in after.stages if v.state == "ready"]
    lines += ["", "## Ready next", ""]
    if ready:
        for v in ready:
            deps = f" (depends on {', '.join(map(str, v.depends_on))})" if v.depends_on else ""
            lines.append(f"- stage {v.stage} — {v.title}{deps}")
    elif titles and all(v.state == "done" for v in after.stages):
        lines.append("- every stage is done and merged into the task worktree")
    else:
        waiting = [f"stage {v.stage} ({v.state})" for v in after.stages if v.state not in ("done",)]
        lines.append("- nothing is ready to implement" + (f"; still open: {', '.join(waiting)}" if waiting else ""))
    lines += ["", "## Next command", "", "```", result.next_command, "```", ""]
    return "\n".join(lines)


def _cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|")


def _some(paths: list[str], most: int = 5) -> str:
    shown = ", ".join(paths[:most])
    return shown + (f" and {len(paths) - most} more" if len(paths) > most else "")


# ---------------------------------------------------------------------------- the command


def run_command(task: Task, args) -> int:
    """`okstra handoff GROUP/ID [--group G] [--merge] [--json]` (argparse namespace)."""
    as_json = bool(getattr(args, "json", False))

    def info(text: str) -> None:
        print(text, file=sys.stderr if as_json else sys.stdout)

    def warn(text: str) -> None:
        print(text, file=sys.stderr)

    try:
        result = run_handoff(task, getattr(args, "group", None), merge=bool(args.merge), notice=info, warn=warn)
    except HandoffError as exc:
        if as_json:
            print(json.dumps(exc.to_json(), indent=2, ensure_ascii=False))
        raise
    if as_json:
        print(json.dumps(result.to_json(), indent=2, ensure_ascii=False))
        return 0
    for line in summary_lines(result):
        print(line)
    return 0


def summary_lines(result: HandoffResult) -> list[str]:
    plan = result.plan
    head = f"okstra handoff {plan.task.ref} group {plan.group}: stage(s) {', '.join(map(str, plan.stage_numbers))}"
    if result.would_merge:
        head += " — merge plan only, nothing merged (add --merge to merge)"
    lines = [head]
    for sp in plan.stages:
        label = f"  stage {sp.stage} ({sp.title}):"
        if sp.stage in result.merge_commits:
            lines.append(
                f"{label} merged {sp.done_commit[:8]} from {sp.branch} as {result.merge_commits[sp.stage][:8]}"
            )
        elif sp.stage in result.would_merge:
            lines.append(f"{label} would merge {sp.done_commit[:8]} from {sp.branch} ({sp.kind})")
        else:
            at = f" at {sp.match_commit[:8]}" if sp.match_commit and sp.match_commit != sp.done_commit else ""
            lines.append(f"{label} already merged ({sp.kind}{at})")
    if result.would_merge:
        for blocker in plan.merge_blockers():
            lines.append(f"okstra: --merge would refuse now: {blocker}")
    moved = f" (was {result.head_before[:8]})" if result.task_head != result.head_before else ""
    lines.append(f"okstra task worktree: {plan.task_worktree} at {result.task_head[:8]}{moved}")
    if result.next_ready:
        lines.append(f"okstra ready next: {', '.join(map(str, result.next_ready))}")
    if result.report:
        lines.append(f"okstra report: {result.report}")
    lines.append(f"okstra next: {result.next_command}")
    return lines
