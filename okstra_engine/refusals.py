"""Typed refusals: why okstra will not do something now, as a stable code and plain JSON
parameters, with the English words of each code.

The engine decides a refusal once (`gates`, `final_verification`, `prepare`, `handoff`)
and raises it as a `RefusedError`; the CLI prints its `what` and `how`; the TUI renders
the same code and params in the person's language. Codes never change meaning; a new
reason gets a new code.

Codes and their params (`task` is always the task ref, `GROUP/ID`):

- `phase.unknown` {phase, phases}
- `phase.no_qa` {task, project, root}: implementation needs a QA command
- `phase.no_plan` {task} / `phase.plan_draft` {task}: no approved plan (none at all / not approved)
- `phase.plan_broken` {task, run, what}: no approved plan, and the newest one (planning run
  `run`) cannot be approved: its Stage Map does not hold (`what`, naming the file and line)
- `phase.all_done` {task}: implementation: every stage is done
- `phase.nothing_ready` {task, blocked: [{stage, waits_for, reason}], in_flight: [{stage, run}],
  stale: [{stage, run, why}]}: implementation: no stage is ready; `reason` is the blocked
  stage's `BlockedReason` as JSON ({code, stages[, groups]})
- `phase.stages_not_done` {task, stages}: final verification of the whole task
- `phase.stages_not_merged` {task, stages: [{stage, commit}], head, fix}: final
  verification of the whole task; `head` (task worktree HEAD) and `fix` (a command line)
  are null when the refusal comes from status alone
- `phase.not_verified` {task} / `phase.verification_failed` {task, run, verdict}: release
  handoff needs a passed final verification of the whole task: none gave a verdict yet /
  the newest one, `run`, says `verdict` (`FAIL`)
- `plan.replaces_progress` {task, plan, total, started, done, in_flight, fix}: a new plan
  (planning again, `plan import --approve`, `plan approve`) would set aside the progress
  of the current plan `plan` (a run id): `started`, `done` and `in_flight` list stage
  numbers of its `total`; `fix` is the command that re-plans anyway (`--replace`)
- `verify.task_worktree_dirty` {task, path, paths}
- `verify.stage_not_done` {task, stage}
- `verify.stage_worktree_missing` {task, stage, path, branch}: `path` null when unregistered
- `verify.stage_worktree_dirty` {task, stage, path, paths}
- `stage.unknown` {task, stage, stages}
- `stage.done` {task, stage, commit, run}
- `stage.in_flight` {task, stage, run, since}: `since` an ISO-8601 UTC time, or null
- `stage.stale` {task, stage, run, why}
- `stage.blocked` {task, stage, waits_for}
- `stage.needs_handoff` {task, stage, stages, groups}: its dependencies `stages` are done
  but not merged into the task worktree, where it starts; the handoff of `groups` merges them
- `stage.needs_merge` {task, stage, stages, groups, worktree, branches}: the same, but the
  handoff of `groups` waits for this stage: merged by hand (`branches`, the stages' branches)
- `stage.dep_no_commit` {task, stage, dep}
- `stage.dep_commit_missing` {task, stage, dep, commit}
- `stage.deps_not_merged` {task, stage, deps, unmerged: [{stage, commit}], worktree,
  head, fixes: [{stage, fix}]}
- `handoff.in_flight` {task, stage, run, since}
- `handoff.stale` {task, stage, run, why}
- `handoff.blocked` {task, stage, waits_for}
- `handoff.not_started` {task, stage}
- `handoff.no_commit` {task, stage}
- `handoff.unclassified` {task, stage, why}
- `handoff.commit_missing` {task, stage, commit, fix}
- `handoff.rewritten` {task, stage, commit, tip, branch, record, reset}: the stage's
  branch no longer contains its done commit (amended, rebased or reset after done);
  `record` and `reset` are the two ways out, as command lines
- `handoff.conflict` {task, group, worktree, head, conflicts: [{stage, title, files}],
  merges: [{stage, commit}]}: the group's merges conflicted and were undone; `merges`
  is what to merge by hand, in order, in the task worktree (`git merge --no-ff COMMIT`)
- `verify.stage_head_moved` {task, stage, commit, head, path, record, reset}: the stage
  worktree's HEAD is not the stage's done commit (command lines as for `handoff.rewritten`)
- `release.no_reservation` {task, stage, latest}: `latest` the status of the stage's
  latest ledger row, or null when it has none
- `record.commit_is_base` {task, stage, commit, base}: `done` at the commit the stage
  started from (nothing committed)
- `record.commit_not_on_branch` {task, stage, commit, branch, tip}: `done` at a commit
  the stage's branch does not contain
- `record.not_empty` {task, stage, commit, base}: `done --empty` at a commit that is not
  the one the stage started from
- `record.reopen_not_done` {task, stage, latest}: `reopened` on a stage that is not done
  (or in flight again); `latest` as for `release.no_reservation`
- `record.run_elsewhere` {task, stage, run, run_stage, plan, current}: a record naming a
  run prepared under another plan (one the task replaced; `plan` its folder, `current`
  the current one's) or for another stage (`run_stage`)
- `sync.in_flight` {task, stage, run, since}: `okstra sync` into a stage whose agent works there
- `sync.no_worktree` {task, stage}: the stage has no worktree to sync
- `sync.busy` {task, stage, path, operation}: a git operation ("a merge", …) is unfinished there
- `sync.dirty` {task, stage, path, paths}: uncommitted or untracked changes there
- `sync.rebase_done` {task, stage, commit}: a rebase would take a done stage's done
  commit off its branch
- `sync.conflict` {task, stage, path, paths, operation, branch}: the task branch's `merge` or
  `rebase` conflicted in `paths` and was aborted (the worktree is as it was)
- `reconcile.commit_not_on_branches` {task, stage, commit, branch, tip, task_branch,
  task_tip}: a correction to a commit neither the stage's branch nor the task branch
  contains
- `managed.no_tmux` {}: an agent in a managed terminal needs tmux, which is not installed
- `include.outside` {file, line, pattern}: a `.worktreeinclude` pattern names a place
  outside the project (a `..` folder, a path of the machine)
- `include.link_out` {path, target}: `.worktreeinclude`, or a file it matches, is a link
  (to `target`, as the link says) pointing outside the project
- `setup.failed` {command, worktree, code, log, tail, root}: a setup command failed in a new
  worktree (`code` its exit status; `tail` the end of `log`);
  the worktree was taken back
- `port.none_free` {first, last, block}: no block of `block` ports between `first` and
  `last` is free on the machine and unheld by the project's stages in flight
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from . import clock
from .errors import OkstraError

Params = dict[str, Any]
"""A refusal's parameters: plain JSON values (str, int, None, lists and dicts of them)."""


@dataclass(frozen=True)
class Refusal:
    """Why something cannot be done now: a stable `code` and its plain JSON `params`."""

    code: str
    params: Params = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.code not in _TEXTS:
            raise ValueError(f"unknown refusal code {self.code!r}")

    @property
    def what(self) -> str:
        return _TEXTS[self.code](self.params)[0]

    @property
    def how(self) -> str:
        return _TEXTS[self.code](self.params)[1]

    def error(self) -> RefusedError:
        return RefusedError(self)

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "params": self.params, "what": self.what, "how": self.how}


class RefusedError(OkstraError):
    """A refusal raised: an OkstraError (exit 2) whose words come from `refusal`."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.what, refusal.how)
        self.refusal = refusal


def refuse(refusal: Refusal | None) -> None:
    """Raise `refusal` when there is one."""
    if refusal is not None:
        raise refusal.error()


# ---------------------------------------------------------------------------- words


def some(paths: Sequence[str], most: int = 5) -> str:
    """The first `most` paths, and how many more."""
    shown = ", ".join(paths[:most])
    return shown + (f" and {len(paths) - most} more" if len(paths) > most else "")


def numbers(items: Sequence[Any]) -> str:
    return ", ".join(map(str, items))


def when(iso: object) -> str:
    """`2026-06-10 12:00 UTC` from the ISO time of a param (`?` when there is none)."""
    if not isinstance(iso, str):
        return "?"
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def iso(moment: datetime | None) -> str | None:
    """A time as a param: ISO-8601 UTC, or None."""
    return clock.iso(moment) if moment else None


def _short(sha: object) -> str:
    return sha[:8] if isinstance(sha, str) else "-"


def _release(p: Params) -> str:
    return f"okstra record {p['task']} --stage {p['stage']} --status released"


def _is_are(items: Sequence[Any]) -> str:
    return "is" if len(items) == 1 else "are"


Words = Callable[[Params], tuple[str, str]]
_TEXTS: dict[str, Words] = {}


def _words(code: str) -> Callable[[Words], Words]:
    def register(fn: Words) -> Words:
        _TEXTS[code] = fn
        return fn

    return register


def codes() -> list[str]:
    """Every refusal code, sorted."""
    return sorted(_TEXTS)


@_words("phase.unknown")
def _phase_unknown(p: Params) -> tuple[str, str]:
    return f"unknown run type {p['phase']!r}", f"pass --type with one of: {', '.join(p['phases'])}"


@_words("phase.no_qa")
def _phase_no_qa(p: Params) -> tuple[str, str]:
    return (
        f"project {p['project']} has no QA commands; an implementation run needs at least one to verify its stage",
        f"add one: okstra init {p['root']} --qa-command 'pytest -q'",
    )


@_words("phase.no_plan")
def _phase_no_plan(p: Params) -> tuple[str, str]:
    return f"task {p['task']} has no approved plan", f"import one: okstra plan import {p['task']} plan.md --approve"


@_words("phase.plan_draft")
def _phase_plan_draft(p: Params) -> tuple[str, str]:
    return f"task {p['task']} has no approved plan", f"approve the newest plan: okstra plan approve {p['task']}"


@_words("phase.plan_broken")
def _phase_plan_broken(p: Params) -> tuple[str, str]:
    return (
        f"the newest plan of {p['task']} ({p['run']}) cannot be approved: {p['what']}",
        f"fix its Stage Map and import it again: okstra plan import {p['task']} plan.md",
    )


@_words("phase.not_verified")
def _phase_not_verified(p: Params) -> tuple[str, str]:
    return (
        f"{p['task']} has no passed final verification; release handoff comes after it",
        f"verify the whole task: okstra prepare {p['task']} --type final-verification",
    )


@_words("phase.verification_failed")
def _phase_verification_failed(p: Params) -> tuple[str, str]:
    return (
        f"the final verification of {p['task']} did not pass (run {p['run']} says {p['verdict']})",
        f"fix what it found (its verification.md), then verify again: okstra prepare {p['task']} --type final-verification",
    )


@_words("phase.all_done")
def _phase_all_done(p: Params) -> tuple[str, str]:
    return (
        f"every stage of {p['task']} is done: nothing left to implement",
        f"verify the whole task: okstra prepare {p['task']} --type final-verification",
    )


@_words("phase.nothing_ready")
def _phase_nothing_ready(p: Params) -> tuple[str, str]:
    parts = []
    if p["blocked"]:
        parts.append("; ".join(_waits(b) for b in p["blocked"]))
    if p["in_flight"]:
        parts.append("in flight: " + ", ".join(f"{f['stage']} (run {f['run'] or '?'})" for f in p["in_flight"]))
    if p["stale"]:
        parts.append("stale: " + ", ".join(f"{s['stage']} (run {s['run'] or '?'}: {s['why']})" for s in p["stale"]))
    groups = handoff_groups(p["blocked"])
    hows = []
    if p["in_flight"]:
        hows.append(f"wait for the stages in flight to finish (okstra status {p['task']})")
    if p["stale"]:
        hows.append(
            f"release a stale one: okstra record {p['task']} --stage {p['stale'][0]['stage']} --status released"
        )
    if groups:
        hows.append(f"hand off group(s) {numbers(groups)}: {handoff_commands(p['task'], groups)}")
    if not hows:
        hows.append(f"see what each stage waits for: okstra status {p['task']}")
    return f"no stage of {p['task']} is ready: " + "; ".join(parts), "; ".join(hows)


def handoff_groups(blocked: Sequence[Params]) -> list[str]:
    """The groups whose handoff the blocked stages of `phase.nothing_ready` wait for."""
    reasons = [b.get("reason") or {} for b in blocked]
    return sorted({g for r in reasons if r.get("code") == "needs-handoff" for g in r["groups"]})


def _waits(blocked: Params) -> str:
    """What one blocked stage of `phase.nothing_ready` waits for, by its reason."""
    reason = blocked.get("reason") or {}
    if reason.get("code") == "needs-handoff":
        return f"stage {blocked['stage']} waits for the handoff of group(s) {numbers(reason['groups'])}"
    if reason.get("code") == "needs-merge":
        return f"stage {blocked['stage']} waits for stage(s) {numbers(reason['stages'])} to be merged by hand"
    return f"stage {blocked['stage']} waits for {numbers(blocked['waits_for'])}"


@_words("phase.stages_not_done")
def _phase_stages_not_done(p: Params) -> tuple[str, str]:
    return (
        f"final verification of {p['task']} needs every stage done; stage(s) {numbers(p['stages'])} are not",
        f"finish them first (okstra status {p['task']}), or verify one stage: --stage N",
    )


@_words("phase.stages_not_merged")
def _phase_stages_not_merged(p: Params) -> tuple[str, str]:
    listed = ", ".join(f"stage {s['stage']} ({_short(s['commit'])})" for s in p["stages"])
    head = f" (task HEAD {_short(p['head'])})" if p["head"] else ""
    how = f"hand the stages off (okstra handoff {p['task']} --merge)"
    return (
        f"final verification of {p['task']} needs every stage merged into the task worktree; {listed} "
        f"{_is_are(p['stages'])} not{head}",
        how + (f", or: {p['fix']}" if p["fix"] else ""),
    )


@_words("verify.task_worktree_dirty")
def _verify_task_worktree_dirty(p: Params) -> tuple[str, str]:
    return (
        f"the task worktree {p['path']} has uncommitted changes: {some(p['paths'])}",
        "commit or stash them there (okstra ignores .okstra and the project's cleanGateExcludes)",
    )


@_words("verify.stage_not_done")
def _verify_stage_not_done(p: Params) -> tuple[str, str]:
    return (
        f"stage {p['stage']} of {p['task']} is not done, so there is nothing to verify yet",
        f"finish it first (okstra status {p['task']})",
    )


@_words("verify.stage_worktree_missing")
def _verify_stage_worktree_missing(p: Params) -> tuple[str, str]:
    where = "is not registered" if p["path"] is None else f"{p['path']} does not exist"
    return (
        f"stage {p['stage']}'s worktree {where}",
        f"verify it through the task instead (hand it off, then okstra prepare {p['task']} --type final-verification), "
        f"or recreate it: git worktree add <path> {p['branch']}",
    )


@_words("verify.stage_worktree_dirty")
def _verify_stage_worktree_dirty(p: Params) -> tuple[str, str]:
    return (
        f"stage {p['stage']}'s worktree {p['path']} has uncommitted changes: {some(p['paths'])}",
        "commit or stash them there before verifying the stage",
    )


@_words("stage.unknown")
def _stage_unknown(p: Params) -> tuple[str, str]:
    return (
        f"stage {p['stage']} is not in the Stage Map of {p['task']} (stages: {numbers(p['stages'])})",
        f"pass one of those stage numbers (okstra status {p['task']} lists them)",
    )


@_words("stage.done")
def _stage_done(p: Params) -> tuple[str, str]:
    at = f" at {_short(p['commit'])}" if p["commit"] else ""
    return (
        f"stage {p['stage']} is done already{at} (run {p['run'] or '-'})",
        f"pick another stage (okstra status {p['task']}), or --stage auto for the lowest ready one",
    )


@_words("stage.in_flight")
def _stage_in_flight(p: Params) -> tuple[str, str]:
    return (
        f"stage {p['stage']} is in flight by run {p['run'] or '?'} (since {when(p['since'])})",
        f"let that run finish, or take another stage with --stage auto; if that run was abandoned, release it: {_release(p)}",
    )


@_words("stage.stale")
def _stage_stale(p: Params) -> tuple[str, str]:
    return (
        f"stage {p['stage']} is held by a stale reservation (run {p['run'] or '?'}: {p['why']})",
        f"release it first, then rerun: {_release(p)}",
    )


@_words("stage.blocked")
def _stage_blocked(p: Params) -> tuple[str, str]:
    return (
        f"stage {p['stage']} is blocked by stage(s) {numbers(p['waits_for'])}, not done yet",
        f"finish those first, or take a ready stage with --stage auto (see okstra status {p['task']})",
    )


def handoff_commands(task: str, groups: Sequence[str]) -> str:
    """The command lines that hand off `groups`, in order."""
    return "; ".join(f"okstra handoff {task} --group {shlex.quote(g)} --merge" for g in groups)


def merge_commands(worktree: str, branches: Sequence[str]) -> str:
    """The git command lines that merge `branches` into `worktree`, in order."""
    where = shlex.quote(worktree)
    return " && ".join(f"git -C {where} merge --no-ff {shlex.quote(b)}" for b in branches)


def _lacks(p: Params) -> str:
    return f"stage {p['stage']} starts from the task worktree, which lacks stage(s) {numbers(p['stages'])}: done, not merged yet"


@_words("stage.needs_handoff")
def _stage_needs_handoff(p: Params) -> tuple[str, str]:
    return (
        _lacks(p),
        f"hand off group(s) {numbers(p['groups'])} first, then rerun: {handoff_commands(p['task'], p['groups'])}",
    )


@_words("stage.needs_merge")
def _stage_needs_merge(p: Params) -> tuple[str, str]:
    return (
        f"{_lacks(p)}; the handoff of group(s) {numbers(p['groups'])} waits for stage {p['stage']} itself",
        f"merge them by hand, then rerun: {merge_commands(str(p['worktree']), p['branches'])} "
        f"(or re-plan with stage {p['stage']} in a later group)",
    )


@_words("stage.dep_no_commit")
def _stage_dep_no_commit(p: Params) -> tuple[str, str]:
    return (
        f"stage {p['dep']} is done but its ledger row names no commit, so stage {p['stage']} has no base",
        f"record the commit stage {p['dep']} finished at: okstra record {p['task']} --stage {p['dep']} --status done --commit SHA",
    )


@_words("stage.dep_commit_missing")
def _stage_dep_commit_missing(p: Params) -> tuple[str, str]:
    return (
        f"stage {p['dep']}'s done commit {_short(p['commit'])} is not in the repository (rebased, amended or deleted?), "
        f"so stage {p['stage']} has no base",
        f"find the commit it became and record it: okstra record {p['task']} --stage {p['dep']} --status done --commit SHA",
    )


@_words("stage.deps_not_merged")
def _stage_deps_not_merged(p: Params) -> tuple[str, str]:
    listed = ", ".join(f"stage {u['stage']} ({_short(u['commit'])})" for u in p["unmerged"])
    return (
        f"stage {p['stage']} depends on stages {numbers(p['deps'])}, but {listed} "
        f"{_is_are(p['unmerged'])} not merged into the task worktree {p['worktree']} ({_short(p['head'])})",
        " | ".join(f"stage {f['stage']}: {f['fix']}" for f in p["fixes"]) + "; then rerun",
    )


@_words("handoff.in_flight")
def _handoff_in_flight(p: Params) -> tuple[str, str]:
    return (
        f"stage {p['stage']} is in flight (run {p['run'] or '?'}, since {when(p['since'])})",
        f"let that run finish (okstra status {p['task']}); if it was abandoned: {_release(p)}",
    )


@_words("handoff.stale")
def _handoff_stale(p: Params) -> tuple[str, str]:
    return (
        f"stage {p['stage']} is held by a stale reservation (run {p['run'] or '?'}: {p['why']})",
        f"release it, finish the stage, then rerun: {_release(p)}",
    )


@_words("handoff.blocked")
def _handoff_blocked(p: Params) -> tuple[str, str]:
    return (
        f"stage {p['stage']} is not done (it waits for stage(s) {numbers(p['waits_for'])})",
        f"finish the stages of the group first (okstra status {p['task']})",
    )


@_words("handoff.not_started")
def _handoff_not_started(p: Params) -> tuple[str, str]:
    return (
        f"stage {p['stage']} is not done (ready, not started)",
        f"implement it first: okstra prepare {p['task']} --type implementation --stage {p['stage']}",
    )


@_words("handoff.no_commit")
def _handoff_no_commit(p: Params) -> tuple[str, str]:
    return (
        f"stage {p['stage']} is done but its ledger row names no commit",
        f"record the commit it finished at: okstra record {p['task']} --stage {p['stage']} --status done --commit SHA",
    )


@_words("handoff.unclassified")
def _handoff_unclassified(p: Params) -> tuple[str, str]:
    return (
        f"cannot tell whether stage {p['stage']} is merged: {p['why']}",
        f"see: okstra reconcile {p['task']} --stage {p['stage']}",
    )


def listed(stages: Sequence[Any]) -> str:
    """` (1, 2)` after a count, or nothing when there are none."""
    return f" ({numbers(stages)})" if stages else ""


@_words("plan.replaces_progress")
def _plan_replaces_progress(p: Params) -> tuple[str, str]:
    return (
        f"task {p['task']} is under way on plan {p['plan']} ({len(p['started'])} of {p['total']} stages started: "
        f"{len(p['done'])} done{listed(p['done'])}, {len(p['in_flight'])} in flight{listed(p['in_flight'])}); "
        "a new plan would set that aside and make every stage ready again",
        f"to re-plan anyway: {p['fix']} (plan {p['plan']} and its ledger stay on disk as they are)",
    )


@_words("record.commit_is_base")
def _record_commit_is_base(p: Params) -> tuple[str, str]:
    return (
        f"stage {p['stage']} would be done at {_short(p['commit'])}, the commit it started from "
        f"(base {_short(p['base'])}): nothing was committed for it",
        "commit the stage's work in its worktree, then record that commit (--commit HEAD there); "
        f"a stage that changes nothing is recorded so: okstra record {p['task']} --stage {p['stage']} --status done --empty; "
        "to insist on this commit, pass its full SHA with --force",
    )


@_words("record.commit_not_on_branch")
def _record_commit_not_on_branch(p: Params) -> tuple[str, str]:
    return (
        f"stage {p['stage']}'s branch {p['branch']} (at {_short(p['tip'])}) does not contain {_short(p['commit'])}",
        "record a commit of the stage's branch (--commit HEAD in its worktree); "
        "if the work is elsewhere on purpose, pass its full SHA with --force",
    )


@_words("record.not_empty")
def _record_not_empty(p: Params) -> tuple[str, str]:
    return (
        f"stage {p['stage']} would be done --empty at {_short(p['commit'])}, not at the commit it started from "
        f"(base {_short(p['base'])}): --empty is for a stage that changes nothing",
        f"record its work without --empty (okstra record {p['task']} --stage {p['stage']} --status done --commit HEAD "
        "in its worktree), or leave out --commit: an empty stage is done at its base",
    )


@_words("record.reopen_not_done")
def _record_reopen_not_done(p: Params) -> tuple[str, str]:
    return (
        f"stage {p['stage']} is not done (its latest row is {p['latest'] or 'none'}): there is nothing to reopen",
        f"see the stages: okstra status {p['task']}",
    )


@_words("record.run_elsewhere")
def _record_run_elsewhere(p: Params) -> tuple[str, str]:
    if p["plan"] is not None and p["plan"] != p["current"]:
        why = f"was prepared under plan {p['plan']}, which the task has replaced (its plan is now {p['current']})"
    else:
        why = f"is a run of stage {p['run_stage']}"
    return (
        f"run {p['run']} {why}: it records nothing for stage {p['stage']} of {p['task']}",
        f"stop that run's agent; see the stages under the current plan: okstra status {p['task']}",
    )


@_words("reconcile.commit_not_on_branches")
def _reconcile_commit_not_on_branches(p: Params) -> tuple[str, str]:
    return (
        f"neither stage {p['stage']}'s branch {p['branch']} (at {_short(p['tip'])}) nor the task branch "
        f"{p['task_branch']} (at {_short(p['task_tip'])}) contains {_short(p['commit'])}",
        "name a commit of the stage's branch, or the task branch commit that holds its work (a squash); "
        "if the work is elsewhere on purpose, pass its full SHA with --force",
    )


@_words("share.stage_taken")
def _share_stage_taken(p: Params) -> tuple[str, str]:
    return (
        f"stage {p['stage']} of {p['task']} is taken on another machine: {p['host']} (machine {p['machine']}, run {p['run']})",
        f"take another stage (okstra prepare {p['task']} --type implementation --stage auto), or, when that machine "
        f"is gone, release it: okstra record {p['task']} --stage {p['stage']} --status released",
    )


@_words("share.unreachable")
def _share_unreachable(p: Params) -> tuple[str, str]:
    return (
        f"{p['task']} is shared through {p['remote']}, which did not answer, so no stage can be taken: {p['error']}",
        "try again once the remote answers, or take it anyway, marked taken offline (another machine may take it "
        "too; the next sync shows both): add --offline",
    )


@_words("release.no_reservation")
def _release_no_reservation(p: Params) -> tuple[str, str]:
    return (
        f"stage {p['stage']} has no reservation to release (its latest row is {p['latest'] or 'none'})",
        f"see what is in flight: okstra status {p['task']}",
    )


@_words("handoff.commit_missing")
def _handoff_commit_missing(p: Params) -> tuple[str, str]:
    return (
        f"stage {p['stage']}'s done commit {_short(p['commit'])} is not in the repository, "
        "and its work is not found in the task worktree",
        str(p["fix"]),
    )


@_words("handoff.rewritten")
def _handoff_rewritten(p: Params) -> tuple[str, str]:
    return (
        f"stage {p['stage']}'s branch {p['branch']} no longer contains its done commit {_short(p['commit'])} "
        f"(amended, rebased or reset after it was recorded done; the branch is at {_short(p['tip'])})",
        f"accept the branch's new work: {p['record']} — or put the branch back at the done commit: {p['reset']}",
    )


@_words("handoff.conflict")
def _handoff_conflict(p: Params) -> tuple[str, str]:
    parts = "; ".join(f"stage {c['stage']} ({c['title']}) conflicts in {some(c['files'])}" for c in p["conflicts"])
    return (
        f"handoff of group {p['group']} of {p['task']} undone: {parts}; nothing of the group was merged "
        f"(task worktree back at {_short(p['head'])}, clean)",
        "merge the group's stages by hand, in this order: "
        + "; ".join(_merge_step(p["worktree"], m) for m in p["merges"])
        + f" — resolve the conflicts and commit where git stops, then rerun okstra handoff {p['task']} "
        f"--group {shlex.quote(p['group'])} --merge (the stages merged are counted, not merged again)",
    )


def _merge_step(worktree: str, merge: Params) -> str:
    """One stage's merge of a conflict's fix: `git -C WT merge --no-ff COMMIT (stage N)`."""
    return f"git -C {shlex.quote(worktree)} merge --no-ff {str(merge['commit'])[:12]} (stage {merge['stage']})"


@_words("verify.stage_head_moved")
def _verify_stage_head_moved(p: Params) -> tuple[str, str]:
    return (
        f"stage {p['stage']}'s worktree {p['path']} is at {_short(p['head'])}, not at the stage's done commit "
        f"{_short(p['commit'])}: final verification checks the commit that was recorded done",
        f"record the worktree's work as the stage's done commit: {p['record']} — or put it back at the done commit: "
        f"{p['reset']}",
    )


@_words("sync.in_flight")
def _sync_in_flight(p: Params) -> tuple[str, str]:
    return (
        f"stage {p['stage']} is in flight (run {p['run'] or '?'}, since {when(p['since'])}): its agent works in the "
        "worktree a sync would change",
        f"let that run finish, then sync; if it was abandoned: {_release(p)}",
    )


@_words("sync.no_worktree")
def _sync_no_worktree(p: Params) -> tuple[str, str]:
    return (
        f"stage {p['stage']} of {p['task']} has no worktree to sync",
        f"a stage gets one when it is prepared: okstra prepare {p['task']} --type implementation --stage {p['stage']}",
    )


@_words("sync.busy")
def _sync_busy(p: Params) -> tuple[str, str]:
    return (
        f"{p['operation']} is in progress in stage {p['stage']}'s worktree {p['path']}",
        f"finish or abort it first (git -C {shlex.quote(str(p['path']))} status), then rerun",
    )


@_words("sync.dirty")
def _sync_dirty(p: Params) -> tuple[str, str]:
    return (
        f"stage {p['stage']}'s worktree {p['path']} has uncommitted changes: {some(p['paths'])}",
        "commit or stash them there, then rerun the sync",
    )


@_words("sync.rebase_done")
def _sync_rebase_done(p: Params) -> tuple[str, str]:
    return (
        f"stage {p['stage']} is done at {_short(p['commit'])}: a rebase would take that commit off its branch, "
        "and the handoff would refuse the stage",
        f"merge the task branch instead: okstra sync {p['task']} --stage {p['stage']}",
    )


@_words("sync.conflict")
def _sync_conflict(p: Params) -> tuple[str, str]:
    return (
        f"the task branch does not {p['operation']} cleanly into stage {p['stage']}'s worktree {p['path']}: "
        f"conflicts in {some(p['paths'])}; the {p['operation']} was aborted and nothing changed there",
        f"{p['operation']} it by hand and resolve the conflicts: git -C {shlex.quote(str(p['path']))} {p['operation']} "
        f"{p['branch']} — or leave the stage as it is: the handoff brings the stages together",
    )


@_words("managed.no_tmux")
def _managed_no_tmux(p: Params) -> tuple[str, str]:
    return (
        "tmux is not installed: okstra runs each agent in a tmux session of its own",
        "install tmux (apt install tmux, brew install tmux or dnf install tmux), then rerun; or run the agent "
        "in this terminal: okstra prepare GROUP/ID --type implementation, then okstra launch RUN_DIR",
    )


@_words("include.outside")
def _include_outside(p: Params) -> tuple[str, str]:
    return (
        f"{p['file']} line {p['line']}: the pattern {p['pattern']} names a place outside the project",
        "write it relative to the project's folder (/.env, config/local.toml) or remove it, then rerun",
    )


@_words("include.link_out")
def _include_link_out(p: Params) -> tuple[str, str]:
    return (
        f"{p['path']} is a link to {p['target']}, outside the project: okstra copies nothing from outside it",
        f"put a plain file at {p['path']} instead of the link, or drop it from .worktreeinclude; then rerun",
    )


@_words("setup.failed")
def _setup_failed(p: Params) -> tuple[str, str]:
    return (
        f"the setup command {p['command']} failed in {p['worktree']} (exit {p['code']}); the end of {p['log']}:\n{p['tail']}",
        "fix what it reports and rerun: the new worktree, its branch and its registry row were taken back "
        f"(set the setup commands again with: okstra init {p['root']} --setup-command CMD)",
    )


@_words("port.none_free")
def _port_none_free(p: Params) -> tuple[str, str]:
    return (
        f"no block of {p['block']} ports between {p['first']} and {p['last']} is free for the stage's OKSTRA_PORT",
        "stop the servers earlier runs left running, or release the stale stages (okstra status), then rerun",
    )
