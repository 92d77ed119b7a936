"""`okstra prepare`: pick the stage, provision its worktree, reserve it, write the run.

SPEC §4.1, in order, all under the task mutex (`locks.task_mutex`, a flock the OS frees
when its holder dies):

1. check the project (implementation needs QA commands);
2. provision the task worktree from `--base-ref` (default: the project's HEAD);
3. backfill done rows from carry sidecars, then auto-reconcile (best effort: a failure
   prints `git-reconcile skipped: …` and the normal gates decide);
4. select the stage (`--stage auto`: the lowest ready one);
5. note the other stages in flight (`concurrentRun`);
6. resolve the stage's base commit;
7. provision the stage worktree from it;
8. drop a stale QA waiver on this stage, unless this run's `--qa-waiver` re-waives it;
9. append the `reserved` row, write `manifest.json` and `prompt.md`.

A final-verification run checks its gates (okstra_engine.final_verification) where an
implementation run selects its stage.

Decisions where the spec is silent:
- A render-only run takes no lock and writes nothing (not even the registry or okstra
  home); it runs the same checks, so it fails where the real run would.
- `concurrentRun` counts stages whose run is live (`in-flight`), not `stale` ones: a
  stale reservation's agent is gone or silent past the TTL, so it is not racing anyone.
- A reused stage worktree keeps the base it was made from (the registry's): that is
  where its commits start, so that is what the `reserved` row records as `base_ref`.
- `--base-ref` only matters when the task worktree is first made; later it is ignored
  with a note (the task worktree has its own history by then).
- Other task types provision the task worktree and write the run; `--stage N` is refused
  for them except final verification (one stage, in that stage's worktree).
- Render-only does not auto-reconcile (it would write correction rows); its gates see
  the ledger as it is.
- Notices (carry backfill, ignored options) go to stderr so `--json` stays one document.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ConfigDict, Field

from . import faults, final_verification, git, registry, worktrees
from .carry import missing_done_rows, read_carry
from .conformance import clear_stale_waivers, parse_waiver_arg, set_waiver
from .documents import Doc
from .errors import OkstraError
from .fsio import write_dir
from .ledger import LEDGER_NAME, LedgerRow, append_row, new_row
from .ledger_state import LedgerState, read_state
from .locks import task_mutex
from .plans import PlanRun, plan_run_root, require_plan_run_root
from .runs import PHASES, RunManifest, new_run_id
from .slugs import check_slug
from .stage_map import StageMap
from .status import StageView, compute_states
from .tasks import Task
from .worktrees import SKIPPED_NESTED, SKIPPED_NON_GIT, Provision

PLAN_REQUIRED = ("implementation", "final-verification", "release-handoff")
STAGED = ("implementation", "final-verification")
LOCK_TIMEOUT_S = 900.0


# ---------------------------------------------------------------------------- manifest


class WorktreeInfo(Doc):
    model_config = ConfigDict(extra="allow")

    path: str | None
    branch: str | None
    base_ref: str | None
    status: str
    note: str | None = None


class ConcurrentRun(Doc):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    detected: bool = False
    active_stages: list[int] = Field([], alias="activeStages")


class TeamInfo(Doc):
    model_config = ConfigDict(extra="allow")

    mode: str
    name: str | None = None


class PreparedRun(RunManifest):
    """The manifest of a prepared run (SPEC §6 `prepare --json`), versioned by `v`."""

    project_root: str
    project_id: str
    prompt: str
    """Path of `prompt.md`."""
    plan_run: str | None = None
    ledger_path: str | None = None
    stage_title: str | None = None
    depends_on: list[int] = []
    worktree: WorktreeInfo
    task_worktree: WorktreeInfo
    concurrent_run: ConcurrentRun = Field(default_factory=ConcurrentRun, alias="concurrentRun")
    team: TeamInfo
    workers: list[str] = []
    render_only: bool = False

    def to_json(self) -> dict:
        doc = self.model_dump(mode="json", by_alias=True)
        if doc.get("source") is None:
            doc.pop("source", None)
        return doc


@dataclass(frozen=True)
class PrepareOptions:
    task_type: str
    stage: str = "auto"
    """`auto` or a stage number (as typed)."""
    base_ref: str | None = None
    render_only: bool = False
    workers: tuple[str, ...] = ()
    pid: int | None = None
    """The agent's pid, only when okstra runs the agent in place (`launch`, the TUI);
    a short-lived CLI `prepare` records none, so its reservation is never stale by pid."""
    lock_timeout: float | None = LOCK_TIMEOUT_S
    qa_waiver: str | None = None
    """`STAGEKEY=REASON`: waive that stage's conformance check (SPEC §4.6)."""


@dataclass
class Prepared:
    manifest: PreparedRun
    prompt_text: str
    notices: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------- the run


def prepare(task: Task, options: PrepareOptions, *, notice: Callable[[str], None] | None = None) -> Prepared:
    notices: list[str] = []

    def say(text: str) -> None:
        notices.append(text)
        if notice is not None:
            notice(text)

    if options.task_type not in PHASES:
        raise OkstraError(f"unknown run type {options.task_type!r}", f"pass --type with one of: {', '.join(PHASES)}")
    implementation = options.task_type == "implementation"
    staged = options.task_type in STAGED
    requested = _requested_stage(options, staged)
    if options.qa_waiver:
        parse_waiver_arg(options.qa_waiver)  # refuse a malformed one before any work
    project = task.project
    check_slug(project.id, "project id")  # it names folders under okstra home
    if implementation and not project.config.qa_commands:
        raise OkstraError(
            f"project {project.id} has no QA commands; an implementation run needs at least one to verify its stage",
            f"add one: okstra init {project.root} --qa-command 'pytest -q'",
        )
    plan = require_plan_run_root(task) if options.task_type in PLAN_REQUIRED else plan_run_root(task)
    stage_map = plan.stage_map() if staged else None
    if stage_map is not None and requested is not None and requested not in stage_map.by_number():
        known = ", ".join(str(s.stage) for s in stage_map.stages)
        raise OkstraError(
            f"stage {requested} is not in the Stage Map of {task.ref} (stages: {known})",
            "pass one of those stage numbers, or --stage auto",
        )

    lock = (
        nullcontext()
        if options.render_only
        else task_mutex(
            project.id,
            task.ref.group,
            task.ref.id,
            timeout=options.lock_timeout,
            on_wait=lambda path: say(f"okstra: waiting for another okstra process working on {task.ref} …"),
        )
    )
    with lock:
        if not options.render_only:
            faults.point("prepare.locked")
        return _prepare_locked(task, options, plan, stage_map, requested, say, notices)


def _requested_stage(options: PrepareOptions, staged: bool) -> int | None:
    text = str(options.stage or "auto").strip().lower()
    if text == "auto":
        return None
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise OkstraError(
            f"--stage {options.stage!r} is neither 'auto' nor a stage number", "pass --stage auto or --stage N (N ≥ 1)"
        )
    if not staged:
        raise OkstraError(
            f"--stage N goes with --type implementation or final-verification, not {options.task_type}", "drop --stage"
        )
    return int(text)


def _prepare_locked(
    task: Task,
    options: PrepareOptions,
    plan: PlanRun | None,
    stage_map: StageMap | None,
    requested: int | None,
    say: Callable[[str], None],
    notices: list[str],
) -> Prepared:
    project = task.project
    layout = repo_layout(project.root)
    dry = options.render_only

    # 2. the task worktree
    if layout == "git":
        base = _task_base(project.root, options.base_ref)
        task_target = worktrees.task_target(task)
        task_wt = worktrees.provision(task_target, base, dry_run=dry)
        _say_repair("the task worktree", task_wt, say)
        if options.base_ref and task_wt.status == worktrees.REUSED and task_wt.base_ref != base:
            say(f"okstra: --base-ref {options.base_ref} ignored: the task worktree exists already ({task_wt.path})")
    else:
        task_wt = _skipped(project.root, layout)

    made: list[tuple[worktrees.Target, Provision]] = []
    try:
        stage = None
        spec = None
        concurrent: list[int] = []
        stage_wt = task_wt
        target = None
        if stage_map is not None and plan is not None:
            ledger = _ledger_state(task, plan, dry, say, reconcile=layout != "non-git")
        if stage_map is not None and plan is not None and options.task_type == "final-verification":
            if requested is None:
                target = final_verification.check_whole_task(task, stage_map, ledger, task_wt)
            else:
                stage, spec = requested, stage_map.by_number()[requested]
                stage_wt = final_verification.check_one_stage(task, requested, ledger)
                target = f"stage {requested}"
        elif stage_map is not None and plan is not None:
            views = compute_states(stage_map, ledger)
            stage = pick_stage(task, views, requested)
            spec = stage_map.by_number()[stage]
            # the selected stage is ready, so never among those in flight
            concurrent = sorted(v.stage for v in views if v.state == "in-flight")
            stage_wt = _stage_worktree(task, plan, layout, task_wt, stage, spec.depends_on, ledger, dry, say)
            _say_repair(f"the stage {stage} worktree", stage_wt, say)
            if stage_wt.made_worktree:
                made.append((worktrees.stage_target(task, stage), stage_wt))
        if not dry:
            _qa_waivers(task, options.qa_waiver, stage if options.task_type == "implementation" else None, say)
        return _write_run(task, options, plan, stage, spec, task_wt, stage_wt, concurrent, notices, target)
    except BaseException:
        for target, provision in reversed(made):
            worktrees.undo(target, provision)
        raise


def _say_repair(what: str, provision: Provision, say: Callable[[str], None]) -> None:
    """Say when provisioning repaired what an interrupted run left (a worktree missing from
    the registry, a branch without its worktree, a half-made worktree)."""
    if provision.note and (provision.status == worktrees.RECREATED or "adopted" in provision.note):
        say(f"okstra: {what}: {provision.note}")


def repo_layout(root: Path) -> str:
    """`git`, `non-git`, or `nested` (the project root is itself a linked worktree)."""
    if not (root / ".git").exists():
        return "non-git"
    dirs = git.git_dirs(root)
    if dirs is None:
        return "non-git"
    git_dir, common_dir = dirs
    return "nested" if git_dir != common_dir else "git"


def _task_base(root: Path, base_ref: str | None) -> str:
    sha = git.resolve_commit(root, base_ref or "HEAD")
    if sha is not None:
        return sha
    if base_ref:
        raise OkstraError(
            f"--base-ref {base_ref!r} names no commit in {root}",
            "pass a branch, tag or SHA that exists in the project repository",
        )
    raise OkstraError(
        f"the project repository {root} has no commit yet",
        "commit something first: the task worktree starts from the project's HEAD",
    )


def _skipped(root: Path, layout: str) -> Provision:
    if layout == "non-git":
        return Provision(
            root,
            None,
            None,
            SKIPPED_NON_GIT,
            "the project is not a git repository: no worktrees; the agent works in the project directory",
        )
    return Provision(
        root,
        git.current_branch(root),
        git.head(root),
        SKIPPED_NESTED,
        "the project root is itself a linked git worktree: okstra does not nest worktrees; "
        "the agent works in the project directory, at its HEAD",
    )


def _ledger_state(task: Task, plan: PlanRun, dry: bool, say: Callable[[str], None], *, reconcile: bool) -> LedgerState:
    ledger = plan.dir / LEDGER_NAME
    if not dry:
        from . import reconcile as rec

        for row in rec.backfill_done(task):
            say(f"okstra: stage {row.stage} done at {(row.head_commit or '-')[:8]} recovered from its carry sidecar")
        if reconcile:
            try:
                for applied in rec.auto_reconcile(task):
                    say(applied.applied_line())
            except Exception as exc:  # noqa: BLE001 - reconcile helps; the gates below still decide
                say(f"git-reconcile skipped: {exc}")
        faults.point("prepare.reconciled")
        state = read_state(ledger)
        for warning in state.warnings:  # a torn line a crash left: skipped, and said so
            say(f"okstra: {warning}")
        return state
    state = read_state(ledger)
    return state.fold(missing_done_rows(state, read_carry(plan.dir).sidecars))


# ---------------------------------------------------------------------------- selection


def pick_stage(task: Task, views: list[StageView], requested: int | None) -> int:
    """`--stage auto` → the lowest ready stage; `--stage N` → N if ready, else why not."""
    if requested is None:
        ready = [v.stage for v in views if v.state == "ready"]
        if ready:
            return min(ready)
        raise nothing_ready(task, views)
    view = next(v for v in views if v.stage == requested)
    ref = task.ref
    release = f"okstra record {ref} --stage {requested} --status released"
    if view.state == "ready":
        return requested
    if view.state == "done":
        at = f" at {view.done_commit[:8]}" if view.done_commit else ""
        raise OkstraError(
            f"stage {requested} is done already{at} (run {view.run_id or '-'})",
            f"pick another stage (okstra status {ref}), or --stage auto for the lowest ready one",
        )
    if view.state == "in-flight":
        raise OkstraError(
            f"stage {requested} is in flight by run {view.run_id or '?'} (since {_when(view.since)})",
            f"let that run finish, or take another stage with --stage auto; if that run was abandoned, release it: {release}",
        )
    if view.state == "stale":
        raise OkstraError(
            f"stage {requested} is held by a stale reservation (run {view.run_id or '?'}: {view.stale_reason})",
            f"release it first, then rerun: {release}",
        )
    waits = ", ".join(map(str, view.waits_for))
    raise OkstraError(
        f"stage {requested} is blocked by stage(s) {waits}, not done yet",
        f"finish those first, or take a ready stage with --stage auto (see okstra status {ref})",
    )


def nothing_ready(task: Task, views: list[StageView]) -> OkstraError:
    if all(v.state == "done" for v in views):
        return OkstraError(
            f"every stage of {task.ref} is done: nothing left to implement",
            f"verify the whole task: okstra prepare {task.ref} --type final-verification",
        )
    parts = []
    waiting = [f"stage {v.stage} waits for {', '.join(map(str, v.waits_for))}" for v in views if v.state == "blocked"]
    if waiting:
        parts.append("; ".join(waiting))
    flying = [f"{v.stage} (run {v.run_id or '?'})" for v in views if v.state == "in-flight"]
    if flying:
        parts.append("in flight: " + ", ".join(flying))
    stale = [f"{v.stage} (run {v.run_id or '?'}: {v.stale_reason})" for v in views if v.state == "stale"]
    if stale:
        parts.append("stale: " + ", ".join(stale))
    how = f"wait for the stages in flight to finish (okstra status {task.ref})"
    if stale:
        first = next(v.stage for v in views if v.state == "stale")
        how += f"; release a stale one: okstra record {task.ref} --stage {first} --status released"
    return OkstraError(f"no stage of {task.ref} is ready: " + "; ".join(parts), how)


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if moment else "?"


# ---------------------------------------------------------------------------- base commit


def _stage_worktree(
    task: Task,
    plan: PlanRun,
    layout: str,
    task_wt: Provision,
    stage: int,
    depends_on: list[int],
    ledger: LedgerState,
    dry: bool,
    say: Callable[[str], None],
) -> Provision:
    root = task.project.root
    done = ledger.done_rows()
    if layout == "non-git":
        return _skipped(root, layout)
    if layout == "nested":
        provision = _skipped(root, layout)
        if len(depends_on) >= 2 and provision.base_ref:
            check_predecessors_merged(
                root,
                provision.base_ref,
                {d: done[d] for d in depends_on},
                task=task,
                stage=stage,
                merge_into=root,
                dry=dry,
                say=say,
            )
        return provision
    task_head = git.head(task_wt.path) if task_wt.made_worktree or task_wt.status == worktrees.REUSED else None
    task_head = task_head or task_wt.base_ref
    # the anchor is fixed by the first implementation run, whichever stage it takes
    slot = worktrees.task_slot(task)
    anchor = registry.anchor(slot) or (task_head if dry else registry.fix_anchor(slot, task_head))
    base = resolve_stage_base(
        task,
        plan,
        stage,
        depends_on,
        done,
        anchor=anchor,
        task_head=task_head,
        task_worktree=task_wt.path,
        dry=dry,
        say=say,
    )
    try:
        return worktrees.provision(worktrees.stage_target(task, stage), base, dry_run=dry, base_must_be_in_branch=True)
    except OkstraError as exc:
        if not depends_on:
            raise
        # a stage branch that will not take its base is most often a predecessor whose
        # recorded commit was rewritten under it: say how to find out
        raise OkstraError(
            exc.what, f"{exc.how}; if a predecessor was rebased or squashed, see: okstra reconcile {task.ref}"
        ) from exc


def resolve_stage_base(
    task: Task,
    plan: PlanRun,
    stage: int,
    depends_on: list[int],
    done: dict[int, LedgerRow],
    *,
    anchor: str,
    task_head: str,
    task_worktree: Path,
    dry: bool = False,
    say: Callable[[str], None] = lambda text: None,
) -> str:
    """The commit stage N's worktree branches from (SPEC §4.1 step 6):
    no dependency → the task's anchor; one → that stage's latest done commit;
    more → the task worktree HEAD, once every predecessor is merged into it."""
    root = task.project.root
    if not depends_on:
        return anchor
    for d in depends_on:
        if not done[d].head_commit:
            raise OkstraError(
                f"stage {d} is done but its ledger row names no commit, so stage {stage} has no base",
                f"record the commit stage {d} finished at: okstra record {task.ref} --stage {d} --status done --commit SHA",
            )
    if len(depends_on) == 1:
        d = depends_on[0]
        recorded = done[d].head_commit
        sha = git.resolve_commit(root, recorded) if git.looks_like_sha(recorded) else None
        if sha is None:
            raise OkstraError(
                f"stage {d}'s done commit {recorded[:8]} is not in the repository (rebased, amended or deleted?), so stage {stage} has no base",
                f"find the commit it became and record it: okstra record {task.ref} --stage {d} --status done --commit SHA",
            )
        return sha
    check_predecessors_merged(
        root,
        task_head,
        {d: done[d] for d in depends_on},
        task=task,
        stage=stage,
        merge_into=task_worktree,
        dry=dry,
        say=say,
    )
    return task_head


def check_predecessors_merged(
    repo: Path,
    target: str,
    predecessors: dict[int, LedgerRow],
    *,
    task: Task,
    stage: int,
    merge_into: Path,
    dry: bool = False,
    say: Callable[[str], None] = lambda text: None,
) -> None:
    """Refuse unless every predecessor's latest done commit is merged into `target`:
    an ancestor (one git process for all of them), or else patch-, squash-equivalent or
    content-present there — then a correction row is recorded (not in a dry run) so the
    next run sees an ancestor."""
    commits = {d: row.head_commit or "" for d, row in predecessors.items()}
    unmerged = git.not_ancestors(repo, list(commits.values()), target)
    missing = [d for d, sha in sorted(commits.items()) if sha in unmerged or not sha]
    if missing and task.project.is_git:
        from .reconcile import apply, suggestions

        found = [s for s in suggestions(task, stages=missing, target=target) if s.applicable]
        for applied in [] if dry else apply(task, found):
            say(applied.applied_line())
        missing = [d for d in missing if d not in {s.stage for s in found}]
    if not missing:
        return
    from .reconcile import fix_guidance

    listed = ", ".join(f"stage {d} ({commits[d][:8]})" for d in missing)
    raise OkstraError(
        f"stage {stage} depends on stages {', '.join(map(str, sorted(predecessors)))}, but {listed} "
        f"{'is' if len(missing) == 1 else 'are'} not merged into the task worktree {merge_into} ({target[:8]})",
        " | ".join(f"stage {d}: {fix_guidance(task, d)}" for d in missing) + "; then rerun",
    )


# ---------------------------------------------------------------------------- the run dir


def _info(provision: Provision) -> WorktreeInfo:
    return WorktreeInfo(
        path=str(provision.path) if provision.path else None,
        branch=provision.branch,
        base_ref=provision.base_ref,
        status=provision.status,
        note=provision.note or None,
    )


def _write_run(
    task: Task,
    options: PrepareOptions,
    plan: PlanRun | None,
    stage: int | None,
    spec,
    task_wt: Provision,
    stage_wt: Provision,
    concurrent: list[int],
    notices: list[str],
    target: str | None = None,
) -> Prepared:
    from .prompts import PromptInputs, lead_prompt

    project = task.project
    now = datetime.now(UTC)
    run_id = new_run_id(options.task_type, stage, now=now)
    run_dir = task.runs_dir / run_id
    ledger = plan.dir / LEDGER_NAME if plan is not None and options.task_type == "implementation" else None
    no_git = "(none: not a git repository)"
    text, team = lead_prompt(
        PromptInputs(
            task_ref=str(task.ref),
            task_key=task.key,
            task_title=task.doc.title,
            task_type=options.task_type,
            project_root=project.root,
            run_id=run_id,
            run_dir=run_dir,
            plan_dir=plan.dir if plan is not None else None,
            ledger_path=ledger,
            qa_commands=list(project.config.qa_commands),
            worktree_path=str(stage_wt.path),
            worktree_branch=stage_wt.branch or no_git,
            worktree_base=stage_wt.base_ref or no_git,
            worktree_status=stage_wt.status,
            worktree_note=stage_wt.note,
            workers=list(options.workers),
            stage=stage,
            stage_title=spec.title if spec is not None else None,
            concurrent_stages=concurrent,
            target=target,
        )
    )
    manifest = PreparedRun(
        run_id=run_id,
        run_dir=str(run_dir),
        task=str(task.ref),
        task_key=task.key,
        task_type=options.task_type,
        stage=stage,
        created=now.isoformat(timespec="seconds").replace("+00:00", "Z"),
        project_root=str(project.root),
        project_id=project.id,
        prompt=str(run_dir / "prompt.md"),
        plan_run=str(plan.dir) if plan is not None else None,
        ledger_path=str(ledger) if ledger else None,
        stage_title=spec.title if spec is not None else None,
        depends_on=list(spec.depends_on) if spec is not None else [],
        worktree=_info(stage_wt),
        task_worktree=_info(task_wt),
        concurrent_run=ConcurrentRun(detected=bool(concurrent), active_stages=concurrent),
        team=TeamInfo(mode=team.mode, name=team.name),
        workers=list(options.workers),
        render_only=options.render_only,
    )
    prepared = Prepared(manifest, text, notices)
    if options.render_only:
        return prepared

    write_dir(
        run_dir,
        {
            "prompt.md": text,
            "manifest.json": json.dumps(manifest.to_json(), indent=2, ensure_ascii=False) + "\n",
        },
        fault_prefix="prepare",
    )
    if stage is not None and ledger is not None:
        try:
            append_row(ledger, reserved_row(task, stage, run_id, stage_wt, pid=options.pid))
        except BaseException:
            shutil.rmtree(run_dir, ignore_errors=True)
            raise
    return prepared


def _qa_waivers(task: Task, waiver: str | None, stage: int | None, say: Callable[[str], None]) -> None:
    """SPEC §4.6, inside the task mutex: set this run's waiver, then clear what an earlier
    run left on the stage — a stale waiver would let the verifier skip it silently."""
    key = None
    if waiver:
        key, reason = parse_waiver_arg(waiver)
        set_waiver(task.dir, key, reason)
        say(f"okstra: QA waiver set on {key}")
    if stage is not None:
        for cleared in clear_stale_waivers(task.dir, stage, keep_key=key):
            say(f"okstra: stale QA waiver on {cleared} cleared (this run verifies stage {stage} again)")


def reserved_row(
    task: Task, stage: int, run_id: str, worktree: Provision | WorktreeInfo, *, pid: int | None = None
) -> LedgerRow:
    """The `reserved` row of a run: with the stage's base commit and branch (reconcile
    reads the stage's base from the latest one), and the agent's pid only when okstra
    itself runs the agent in place."""
    return new_row(
        stage,
        "reserved",
        run_id=run_id,
        impl_task_key=task.key,
        base_ref=worktree.base_ref,
        branch=worktree.branch,
        pid=pid,
    )


# ---------------------------------------------------------------------------- the command


def summary_lines(manifest: PreparedRun) -> list[str]:
    lines = [f"okstra run dir: {manifest.run_dir}", f"okstra prompt: {manifest.prompt}"]
    if manifest.stage is not None:
        lines.append(f"okstra stage: {manifest.stage}")
    lines.append(f"okstra worktree: {manifest.worktree.path} ({manifest.worktree.status})")
    if manifest.concurrent_run.detected:
        lines.append(f"okstra concurrent-run stages: {','.join(map(str, manifest.concurrent_run.active_stages))}")
    return lines


def run_command(args) -> int:
    """`okstra prepare …` (argparse namespace from cli.py)."""
    from .locations import default_root
    from .projects import config_path, init_project, load_project
    from .prompts import parse_workers
    from .slugs import TaskRef
    from .tasks import load_task

    ref = TaskRef.parse(args.task_ref)
    options = PrepareOptions(
        task_type=args.task_type,
        stage=args.stage,
        base_ref=args.base_ref,
        render_only=args.render_only,
        workers=tuple(parse_workers(args.workers)),
        qa_waiver=args.qa_waiver,
    )
    root = default_root(getattr(args, "project", None))
    if not options.render_only and (
        config_path(root).exists() or (root / ".okstra" / "tasks" / ref.group / ref.id / "task.json").exists()
    ):
        # step 1: a project registers itself (project.json, the machine's project list);
        # only where the task is, so a prepare run from inside a worktree (which has no
        # .okstra) does not make the worktree a project of its own
        init_project(root)
    task = load_task(load_project(root), ref)

    def notice(text: str) -> None:
        print(text, file=sys.stderr)

    prepared = prepare(task, options, notice=notice)
    manifest = prepared.manifest
    if args.json:
        doc = manifest.to_json()
        if options.render_only:
            doc["prompt_text"] = prepared.prompt_text
        print(json.dumps(doc, indent=2, ensure_ascii=False))
        return 0
    for line in summary_lines(manifest):
        print(line)
    if options.render_only:
        print("okstra render-only: nothing was written")
        print()
        print(prepared.prompt_text, end="" if prepared.prompt_text.endswith("\n") else "\n")
    return 0
