"""Run a handoff: land a finished group of stages in the task worktree, all or nothing,
and write down what landed where. Under the task mutex (so a handoff and a `prepare` of
the same task never interleave):

1. clear what an interrupted handoff left (`recovery`);
2. refuse, with the reason per stage, when a stage of the group is not done or in flight;
3. carry backfill, then auto-reconcile against the task worktree HEAD (each correction is
   reported as `git-reconcile: stage N done commit A -> B (KIND)`; a failure as
   `git-reconcile skipped: <why>`, and the handoff goes on);
4. classify each stage again (corrected rows included);
5. with `merge`: refuse a dirty task worktree or one with an unfinished merge/rebase;
   then `git merge --no-ff` each unmerged stage's done commit in stage order. On a
   conflict the merge is aborted and the task worktree reset to the commit it had before
   the handoff (`reset --keep`: local changes in excluded paths survive), and the
   conflicting files are reported per stage;
6. after a successful merge, or when every stage of the group was merged already, append
   a row to `handoffs.jsonl` and write `handoff-G.md` atomically.

- After a conflict the remaining stages are still tried (on top of what merged so far,
  conflicting stages left out), so the error lists every stage that conflicts; then
  everything is undone.
- Merges run with `--no-verify` (no pre-merge-commit/commit-msg hooks), no autostash and
  no rerere auto-staging, like okstra's other mechanical commits. A merge git refuses for
  another reason than a conflict (hook, local change in an excluded path the merge would
  overwrite, a full disk) stops the handoff at once, everything undone, with git's
  message; the files those merges would add and that were not there before are removed
  too (a merge git gives up half-way can leave them, half written). The merge
  message names the task, group, stage and title on its first line, the branch and
  commit on the second.
- The author is the repository's configured identity; where `user.name`/`user.email`
  are unset, `okstra <okstra@localhost>` (CI machines with no git config).
- A dirty task worktree only blocks a handoff that has something to merge; recording a
  group that is already merged is allowed (nothing in git changes).
- Without `merge` nothing in the task worktree or its branch changes. Auto-reconcile still
  runs (it records ledger corrections and pins, like prepare), and when every stage of the
  group is merged already the handoff is recorded (row + report): that is how a group
  merged by hand is marked handed off.
- `next_ready` lists the stages `status` calls ready after the handoff; the next command is
  final verification when every stage is done and merged, else implementation when a stage
  is ready, else the handoff of the next fully-done group, else `okstra status`.
"""

from __future__ import annotations

import contextlib
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import clock, faults, git
from ..errors import OkstraError
from ..ledger import hostname
from ..locks import LOCK_TIMEOUT_S, Notice, task_mutex
from ..reconcile import Suggestion
from ..refusals import Refusal
from ..stage_view import StageState
from ..status import TaskStatus, task_status
from ..tasks import Task
from .plan import HandoffError, HandoffPlan, StagePlan, build_plan, foresee, refused_error
from .records import HandoffRow, LandedStage, append_handoff, handoffs_path
from .recovery import begin_journal, journal_path, recover_interrupted
from .report import write_report


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

    def to_json(self) -> dict[str, Any]:
        plan = self.plan
        return {
            **plan.json_fields(),
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

    from ..share.hooks import before_handoff

    before_handoff(task)  # a shared task: the done commits other machines recorded
    with task_mutex(task, timeout=lock_timeout, on_wait=lambda text: say(text, warn or notice)):
        faults.point("handoff.locked")
        recover_interrupted(task, lambda t: say(t, warn or notice))
        first = build_plan(task, group, classify=False)
        if first.refusals:
            raise refused_error(first)
        applied = _reconcile(task, first.task_head, lambda t: say(t, notice), lambda t: say(t, warn))
        plan = build_plan(task, first.group, classify=True, applied=applied)
        if plan.refusals:
            raise refused_error(plan, applied)
        before = plan.task_head
        result = HandoffResult(
            plan, merge, before, before, applied=applied, notices=notices, already_merged=plan.already_merged
        )
        if plan.to_merge and not merge:
            result.would_merge = plan.to_merge
            foresee(plan)
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
            begin_journal(plan)
            try:
                merges, up_to_date = _merge_group(plan, applied)
            finally:
                if git.operation_in_progress(plan.task_worktree) is None:
                    journal_path(plan.plan_dir).unlink(missing_ok=True)
            faults.point("handoff.merged-all")
            result.merge_commits = merges
            result.merged = [n for n in plan.to_merge if n in merges]
            result.already_merged = [n for n in plan.stage_numbers if n in plan.already_merged or n in up_to_date]
            result.task_head = git.head(plan.task_worktree) or before
        after = task_status(task)
        result.next_ready = [v.stage for v in after.stages if v.state is StageState.READY]
        if result.would_merge:
            result.next_command = f"okstra handoff {task.ref} --group {shlex.quote(plan.group)} --merge"
        else:
            result.record = _record(plan, result)
            faults.point("handoff.recorded")
            result.next_command = next_command(task, after, plan.groups, [*plan.handed_off, plan.group])
            result.report = write_report(plan, result, after)
    from ..share.hooks import after_handoff

    for line in after_handoff(task, merged=bool(result.merged)):  # a shared task: its task branch travels
        plan.warnings.append(line)
        say(line, warn or notice)
    return result


def _reconcile(task: Task, head: str, say: Notice, warn: Notice) -> list[Suggestion]:
    """Carry backfill, then auto-reconcile against the task HEAD; best effort."""
    from .. import reconcile

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
    created = _files_a_merge_may_create(plan)
    try:
        for n in plan.to_merge:
            sp = plan.stage(n)
            done = sp.done_commit
            assert done is not None  # a stage to merge was classified, so it names its done commit
            at = git.head(wt)
            proc = git.merge_no_ff(wt, done, _message(plan, sp), identity=identity)
            if proc.returncode == 0:
                now = git.head(wt)
                if now is None or now == at:
                    up_to_date.append(n)
                else:
                    merges[n] = now
                faults.point("handoff.merged-one")
                continue
            files = git.unmerged_paths(wt)
            if not files:
                why = git.failure_message(proc)
                raise HandoffError(
                    f"git refused to merge stage {n} ({done[:8]}) into the task worktree: {why}; "
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
        _restore(wt, before, created)
        raise
    if conflicts:
        _restore(wt, before, created)
        raise _conflict_error(plan, conflicts, applied)
    return merges, up_to_date


def _files_a_merge_may_create(plan: HandoffPlan) -> list[Path]:
    """The files the group's merges would add to the task worktree and that are not there
    now: a merge git gives up half-way (a full disk) can leave some of them, untracked and
    half written, and only those may be taken away after it."""
    wt, before = plan.task_worktree, plan.task_head
    top = git.toplevel(wt) or wt
    paths: set[str] = set()
    for n in plan.to_merge:
        done = plan.stage(n).done_commit
        if done is not None:
            paths.update(git.added_paths(wt, before, done))
    return [top / p for p in sorted(paths) if not os.path.lexists(top / p)]


def _restore(wt: Path, before: str, created: list[Path]) -> None:
    """Put the task worktree back at `before`, with no merge in progress, and without the
    files the merges created (`created`: none of them was there before); keep local
    changes in paths the handoff did not touch. Raise when git will not."""
    if git.operation_in_progress(wt) == "a merge" and not git.merge_abort(wt):
        git.reset(wt, "HEAD", "merge")
    if git.head(wt) != before and not git.reset(wt, before, "keep"):
        git.reset(wt, before, "merge")
    for path in created:
        with contextlib.suppress(FileNotFoundError):
            if path.is_symlink() or path.is_file():
                path.unlink()
                _prune_empty_parents(path.parent, wt)
    if git.head(wt) != before or git.operation_in_progress(wt):
        q = shlex.quote(str(wt))
        raise OkstraError(
            f"the handoff could not put the task worktree {wt} back at {before[:12]}",
            f"restore it by hand (this discards uncommitted changes there): git -C {q} merge --abort; git -C {q} reset --hard {before}",
        )


def _prune_empty_parents(folder: Path, top: Path) -> None:
    """Remove the folders a removed file leaves empty, up to (not including) `top`."""
    while folder != top and top in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


def _conflict_error(plan: HandoffPlan, conflicts: dict[int, list[str]], applied: list[Suggestion]) -> HandoffError:
    """The conflict, undone; its fix merges every stage the handoff would have merged, in
    its order: the stages before the first conflict are undone too, and merging only the
    conflicting one would conflict again when the next handoff merges them."""
    refusal = Refusal(
        "handoff.conflict",
        {
            "task": str(plan.task.ref),
            "group": plan.group,
            "worktree": str(plan.task_worktree),
            "head": plan.task_head,
            "conflicts": [
                {"stage": n, "title": plan.stage(n).title, "files": files} for n, files in sorted(conflicts.items())
            ],
            "merges": [{"stage": n, "commit": plan.stage(n).done_commit} for n in plan.to_merge],
        },
    )
    return HandoffError(refusal.what, refusal.how, plan, conflicts=conflicts, applied=applied, refusal=refusal)


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
                commit=result.merge_commits.get(sp.stage) or plan.earlier_landing(sp) or sp.match_commit,
                replaced=sp.reconciled_from,
            )
        )
    row = HandoffRow(
        ts=clock.iso(),
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


def next_command(task: Task, status: TaskStatus, groups: dict[str, list[int]], handed_off: list[str]) -> str:
    """What to run after a handoff: final verification when every stage is done and
    merged; implementation when a stage is ready; else the handoff of the next group whose
    stages are all done; else `okstra status`."""
    ref = task.ref
    states = {v.stage: v.state for v in status.stages}
    if states and all(s is StageState.DONE for s in states.values()):
        return f"okstra prepare {ref} --type final-verification"
    if any(s is StageState.READY for s in states.values()):
        return f"okstra prepare {ref} --type implementation"
    for name, members in groups.items():
        if all((n in states and states[n].is_done) for n in members) and (
            name not in handed_off or any(states.get(n) is StageState.NOT_MERGED for n in members)
        ):
            return f"okstra handoff {ref} --group {shlex.quote(name)} --merge"
    return f"okstra status {ref}"
