"""`prepare`: pick the stage, provision its worktree, reserve it, write the run.

In order, all under the task mutex (`locks.task_mutex`, a flock the OS frees when its
holder dies):

1. check the phase, the project and the plan (`gates.setup_refusal`), and for release
   handoff a passed final verification (`gates.verified_refusal`);
2. provision the task worktree from `--base-ref` (default: the project's HEAD);
3. backfill done rows from carry sidecars, then auto-reconcile (best effort: a failure
   prints `git-reconcile skipped: …` and the normal gates decide);
4. select the stage (`gates.pick_stage`; `--stage auto`: the lowest ready one);
5. note the other stages in flight (`concurrentRun`);
6. resolve the stage's base commit;
7. provision the stage worktree from it;
8. drop a stale QA waiver on this stage, unless this run's `--qa-waiver` re-waives it;
9. append the `reserved` row, write `manifest.json`, `prompt.md` and the team state's
   JSON Schema (`run_contract`).

A final-verification run checks its gates (`gates`, then `final_verification` for what
needs git) where an implementation run selects its stage. Every refusal is a
`RefusedError` (`refusals`). The engine prints nothing and registers no project: the
caller (the CLI, the TUI) does.

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
- Notices (carry backfill, ignored options, waiting for the task mutex) go to `notice`.
- The prompt follows the lead agent (`agents.lead_agent`: which one, its teams kind),
  asked before the lock; a render-only run caches nothing it learns.
- A run works in the project's folder of its worktree (`worktrees.project_dir`: the
  same subfolder when the project is a subfolder of its repository, made if no commit
  holds it yet); the manifest's worktree paths and the prompt name that folder.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from pydantic import ConfigDict, Field

from . import clock, faults, final_verification, gates, git, registry, worktrees
from .agents import AgentInfo
from .carry import missing_done_rows, read_carry
from .conformance import check_manifest, clear_stale_waivers, parse_waiver_arg, set_waiver
from .documents import Doc
from .errors import OkstraError
from .fsio import write_dir
from .gates import STAGED
from .ledger import LEDGER_NAME, LedgerRow, append_row, new_row
from .ledger_state import LedgerState, read_state
from .locks import LOCK_TIMEOUT_S, task_mutex
from .plans import PlanRun, adopt_current_plan, plan_run_root
from .refusals import Params, Refusal, refuse
from .runs import Phase, RunManifest, new_run_id
from .slugs import check_slug
from .stage_map import Stage, StageMap
from .stage_view import StageState
from .status import TaskStatus, compute_states, stage_views
from .tasks import Task
from .worktrees import SKIPPED_NESTED, SKIPPED_NON_GIT, Provision

# ---------------------------------------------------------------------------- manifest


class WorktreeInfo(Doc):
    model_config = ConfigDict(extra="allow")

    path: str | None
    branch: str | None
    base_ref: str | None
    status: str
    note: str | None = None
    findings: str | None = Field(default=None, exclude=True)
    """What provisioning found or repaired: the note without a dry run's remark that
    nothing was made (for a UI that says so its own way; not in the manifest)."""


class ConcurrentRun(Doc):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    detected: bool = False
    active_stages: list[int] = Field(default=[], alias="activeStages")


class TeamInfo(Doc):
    model_config = ConfigDict(extra="allow")

    mode: str
    name: str | None = None


class PreparedRun(RunManifest):
    """The manifest of a prepared run (what `prepare --json` prints), versioned by `v`."""

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
    agent: AgentInfo | None = None
    """The lead agent the prompt is written for (absent in runs prepared before okstra knew it)."""
    workers: list[str] = []
    render_only: bool = False

    def to_json(self) -> dict[str, Any]:
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
    """`STAGEKEY=REASON`: waive that stage's conformance check."""
    replace: bool = False
    """Planning: plan again although the current plan has progress (`gates.replan_refusal`)."""


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

    refuse(gates.known_phase(options.task_type))
    staged = options.task_type in STAGED
    requested = _requested_stage(options, staged)
    if options.qa_waiver:
        parse_waiver_arg(options.qa_waiver)  # refuse a malformed one before any work
    check_manifest(task.dir)  # a real prepare rewrites it: a preview must refuse it alike
    project = task.project
    check_slug(project.id, "project id")  # it names folders under okstra home
    plan = plan_run_root(task)
    refuse(gates.setup_refusal(task, options.task_type, plan_approved=plan is not None))
    if options.task_type == "planning" and plan is not None and not options.replace:
        from .status import task_status

        refuse(gates.replan_refusal(task_status(task)))
    if options.task_type == "release-handoff":
        from .status import task_status

        refuse(gates.verified_refusal(task_status(task)))
    stage_map = plan.stage_map() if staged and plan is not None else None
    if stage_map is not None and requested is not None:
        refuse(gates.unknown_stage(task, stage_map, requested))  # before waiting for the lock

    from .agents import lead_agent

    # asked before the lock (it may start the agent's binary to read its version); what
    # it has to say is said once the run is made, not before a refusal
    detected = lead_agent(cache=not options.render_only)
    lock = nullcontext() if options.render_only else task_mutex(task, timeout=options.lock_timeout, on_wait=say)
    with lock:
        if not options.render_only:
            faults.point("prepare.locked")
            adopt_current_plan(task)
        prepared = _prepare_locked(task, options, plan, stage_map, requested, say, notices, detected.agent)
    for text in detected.notices:
        say(text)
    return prepared


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
    agent: AgentInfo,
) -> Prepared:
    project = task.project
    layout = repo_layout(project.repo)
    dry = options.render_only

    # 2. the task worktree; what this run makes is taken back if it is refused later
    made: list[tuple[worktrees.Target, Provision]] = []
    if layout == "git":
        base = _task_base(project.repo, options.base_ref)
        task_target = worktrees.task_target(task)
        task_wt = worktrees.provision(task_target, base, dry_run=dry)
        if task_wt.made_worktree:
            made.append((task_target, task_wt))
        _say_repair("the task worktree", task_wt, say)
        if options.base_ref and task_wt.status == worktrees.REUSED and task_wt.base_ref != base:
            say(f"okstra: --base-ref {options.base_ref} ignored: the task worktree exists already ({task_wt.path})")
    else:
        task_wt = _skipped(project.root, layout)

    try:
        stage = None
        spec = None
        concurrent: list[int] = []
        stage_wt = task_wt
        target = None
        if stage_map is not None and plan is not None:
            ledger = _ledger_state(task, plan, dry, say, reconcile=layout != "non-git")
            if options.task_type == "implementation":
                # the stages as status sees them: what it calls ready is what this run takes
                views, task_worktree = stage_views(task, stage_map, ledger, [])
            else:
                # whether they are merged is final_verification's to say (it names the HEAD)
                views, task_worktree = compute_states(stage_map, ledger), None
            status = TaskStatus(task, str(plan.dir), task_worktree, views, [], stage_map, ledger)
        if stage_map is not None and plan is not None and options.task_type == "final-verification":
            if requested is None:
                refuse(gates.stages_refusal(status, "final-verification"))
                target = final_verification.check_whole_task(task, ledger, task_wt)
            else:
                refuse(gates.stage_refusal(status, requested, "final-verification"))
                stage, spec = requested, stage_map.by_number()[requested]
                stage_wt = final_verification.check_one_stage(task, requested, ledger)
                target = f"stage {requested}"
        elif stage_map is not None and plan is not None:
            stage = gates.pick_stage(status, requested)
            spec = stage_map.by_number()[stage]
            # the selected stage is ready, so never among those in flight
            concurrent = sorted(v.stage for v in status.stages if v.state is StageState.IN_FLIGHT)
            stage_wt = _stage_worktree(task, plan, layout, task_wt, stage, spec.depends_on, ledger, dry, say)
            _say_repair(f"the stage {stage} worktree", stage_wt, say)
            if stage_wt.made_worktree:
                made.append((worktrees.stage_target(task, stage), stage_wt))
        if not dry:
            _qa_waivers(task, options.qa_waiver, stage if options.task_type == "implementation" else None, say)
        return _write_run(task, options, plan, stage, spec, task_wt, stage_wt, concurrent, notices, agent, target)
    except BaseException:
        for made_target, provision in reversed(made):
            worktrees.undo(made_target, provision)
        raise


def _say_repair(what: str, provision: Provision, say: Callable[[str], None]) -> None:
    """Say when provisioning repaired what an interrupted run left (a worktree missing from
    the registry, a branch without its worktree, a half-made worktree)."""
    if provision.said and (provision.status == worktrees.RECREATED or "adopted" in provision.note):
        say(f"okstra: {what}: {provision.said}")


def repo_layout(root: Path) -> str:
    """`git`, `non-git`, or `nested` (the work tree `root` is itself a linked worktree)."""
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
    # a git layout always has the task worktree, provisioned (or planned) from a commit
    assert task_wt.path is not None and task_wt.base_ref is not None
    live = task_wt.made_worktree or task_wt.status == worktrees.REUSED
    task_head = (git.head(task_wt.path) if live else None) or task_wt.base_ref
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
    """The commit stage N's worktree branches from:
    no dependency → the task's anchor; one → that stage's latest done commit;
    more → the task worktree HEAD, once every predecessor is merged into it."""
    root = task.project.root
    if not depends_on:
        return anchor
    params: Params = {"task": str(task.ref), "stage": stage}
    for d in depends_on:
        if not done[d].head_commit:
            raise Refusal("stage.dep_no_commit", {**params, "dep": d}).error()
    if len(depends_on) == 1:
        d = depends_on[0]
        recorded = done[d].head_commit or ""
        sha = git.resolve_commit(root, recorded) if git.looks_like_sha(recorded) else None
        if sha is None:
            raise Refusal("stage.dep_commit_missing", {**params, "dep": d, "commit": recorded}).error()
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

    raise Refusal(
        "stage.deps_not_merged",
        {
            "task": str(task.ref),
            "stage": stage,
            "deps": sorted(predecessors),
            "unmerged": [{"stage": d, "commit": commits[d]} for d in missing],
            "worktree": str(merge_into),
            "head": target,
            "fixes": [{"stage": d, "fix": fix_guidance(task, d)} for d in missing],
        },
    ).error()


# ---------------------------------------------------------------------------- the run dir


def _info(task: Task, provision: Provision) -> WorktreeInfo:
    path = worktrees.project_dir(task, provision)
    return WorktreeInfo(
        path=str(path) if path else None,
        branch=provision.branch,
        base_ref=provision.base_ref,
        status=provision.status,
        note=provision.said or None,
        findings=provision.note or None,
    )


def _write_run(
    task: Task,
    options: PrepareOptions,
    plan: PlanRun | None,
    stage: int | None,
    spec: Stage | None,
    task_wt: Provision,
    stage_wt: Provision,
    concurrent: list[int],
    notices: list[str],
    agent: AgentInfo,
    target: str | None = None,
) -> Prepared:
    from .agent_events import okstra_argv
    from .conformance import manifest_path
    from .prompts import PromptInputs, lead_prompt
    from .run_contract import TEAM_STATE_SCHEMA_NAME, schema_text
    from .tasks import stage_branch, stage_worktree_path

    project = task.project
    run_id = new_run_id(options.task_type, stage)
    run_dir = task.runs_dir / run_id
    ledger = plan.dir / LEDGER_NAME if plan is not None and options.task_type == "implementation" else None
    no_git = "(none: not a git repository)"
    workdir = worktrees.project_dir(task, stage_wt)
    if workdir is not None and not options.render_only and stage_wt.path is not None and stage_wt.path.is_dir():
        # the project's folder holds no tracked file yet at the worktree's commit
        workdir.mkdir(parents=True, exist_ok=True)
    text, team = lead_prompt(
        PromptInputs(
            task_ref=str(task.ref),
            task_key=task.key,
            project_id=project.id,
            task_title=task.doc.title,
            task_type=options.task_type,
            project_root=project.root,
            run_id=run_id,
            run_dir=run_dir,
            plan_dir=plan.dir if plan is not None else None,
            ledger_path=ledger,
            qa_commands=list(project.config.qa_commands),
            worktree_path=str(workdir),
            worktree_branch=stage_wt.branch or no_git,
            worktree_base=stage_wt.base_ref or no_git,
            worktree_status=stage_wt.status,
            worktree_note=stage_wt.said,
            workers=list(options.workers),
            stage=stage,
            stage_title=spec.title if spec is not None else None,
            concurrent_stages=concurrent,
            # okstra's own worktrees of the stages in flight (none where it makes none)
            concurrent_places={
                n: (str(stage_worktree_path(task, n) / project.prefix), stage_branch(task, n))
                for n in (concurrent if stage_wt.status not in (SKIPPED_NON_GIT, SKIPPED_NESTED) else [])
            },
            target=target,
            teams=agent.teams,
            okstra=okstra_argv(),
            qa_manifest=manifest_path(task.dir),
        )
    )
    manifest = PreparedRun(
        run_id=run_id,
        run_dir=str(run_dir),
        task=str(task.ref),
        task_key=task.key,
        task_type=cast(Phase, options.task_type),  # a known phase: prepare refused any other
        stage=stage,
        created=clock.iso(),
        project_root=str(project.root),
        project_id=project.id,
        prompt=str(run_dir / "prompt.md"),
        plan_run=str(plan.dir) if plan is not None else None,
        ledger_path=str(ledger) if ledger else None,
        stage_title=spec.title if spec is not None else None,
        depends_on=list(spec.depends_on) if spec is not None else [],
        worktree=_info(task, stage_wt),
        task_worktree=_info(task, task_wt),
        concurrentRun=ConcurrentRun(detected=bool(concurrent), activeStages=concurrent),
        team=TeamInfo(mode=team.mode, name=team.name),
        agent=agent,
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
            TEAM_STATE_SCHEMA_NAME: schema_text(),
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
    """Inside the task mutex: set this run's waiver, then clear what an earlier
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
