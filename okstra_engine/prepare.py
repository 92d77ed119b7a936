"""`prepare`: pick the stage, provision its worktree, reserve it, write the run.

In order, all under the task mutex (`locks.task_mutex`, a flock the OS frees when its
holder dies):

1. check the phase, the project and the plan (`gates.setup_refusal`), and for release
   handoff a passed final verification (`gates.verified_refusal`); read what a new
   worktree gets (`.worktreeinclude`: a pattern leaving the project refuses here);
2. provision the task worktree from `--base-ref` (default: the project's HEAD);
3. backfill done rows from carry sidecars, then auto-reconcile (best effort: a failure
   prints `git-reconcile skipped: …` and the normal gates decide);
4. select the stage (`gates.pick_stage`; `--stage auto`: the lowest ready one); on a
   task shared through a git remote (synced before the lock), take it there too
   (`share.hooks.reserve`: another machine holding it, `auto` takes the next one);
5. note the other stages in flight (`concurrentRun`);
6. resolve the stage's base commit;
7. provision the stage worktree from it;
8. make each worktree this run made ready (`worktree_setup`: the include copy, the
   shared folders, the setup commands; a failing one refuses, and the worktrees go);
9. drop a stale QA waiver on this stage, unless this run's `--qa-waiver` re-waives it;
10. give an implementation stage its block of ports (`ports`), append the `reserved`
   row naming it, write `manifest.json`, `prompt.md`, `setup.log` and the team state's
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

from . import clock, faults, final_verification, gates, git, ports, registry, worktree_include, worktrees
from .agents import AgentInfo
from .carry import missing_done_rows, read_carry
from .conformance import check_manifest, clear_stale_waivers, parse_waiver_arg, set_waiver
from .documents import Doc
from .errors import OkstraError
from .fsio import write_dir
from .gates import STAGED
from .ledger import LedgerRow, append_row, new_row
from .ledger_state import LedgerState, read_state
from .locks import LOCK_TIMEOUT_S, task_mutex
from .plans import PlanRun, adopt_current_plan, plan_run_root
from .projects import Setup, setup_of
from .refusals import Params, Refusal, RefusedError, refuse
from .run_folder import LEDGER_NAME
from .runs import Phase, RunManifest, fits_run_id, new_run_id
from .slugs import check_slug
from .stage_map import Stage, StageMap
from .stage_view import StageState
from .status import TaskStatus, compute_states, stage_views
from .tasks import Task
from .worktree_setup import LOG_NAME, Readied, is_ready, make_ready, mark_ready
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
    copied: list[str] | None = None
    """Files `.worktreeinclude` brought from the checkout into this new worktree
    (project-relative; in a render-only run, what would be copied)."""
    linked: list[str] | None = None
    """Folders of the checkout this new worktree links to (`okstra init --symlink-dir`)."""
    setup: list[str] | None = None
    """The setup commands run in this new worktree, in order."""
    left_out: list[str] | None = None
    """What `.worktreeinclude` or a linked folder named but was not copied or linked, and why."""


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
    port: int | None = None
    """The first of the stage's block of ports (`OKSTRA_PORT`; `ports`)."""
    setup_log: str | None = None
    """The setup commands' output (`setup.log` in the run folder)."""

    def to_json(self) -> dict[str, Any]:
        doc = self.model_dump(mode="json", by_alias=True)
        # what a run without them never had stays out of its manifest
        for key in ("source", "port", "setup_log"):
            if doc.get(key) is None:
                doc.pop(key, None)
        for worktree in (doc["worktree"], doc["task_worktree"]):
            for key in _READY_KEYS:
                if worktree.get(key) is None:
                    worktree.pop(key, None)
        return doc


_READY_KEYS = ("copied", "linked", "setup", "left_out")


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
    offline: bool = False
    """On a shared task whose remote does not answer: take the stage anyway, marked
    taken offline (`share`); without it such a prepare is refused."""
    run_id: str | None = None
    """The run id a render-only prepare showed (the TUI's preview): the run gets it when it
    is one of this phase and stage and no run has it yet, else a new one."""


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
    from .share.hooks import after_prepare, before_prepare

    before_prepare(task, render_only=options.render_only)
    lock = nullcontext() if options.render_only else task_mutex(task, timeout=options.lock_timeout, on_wait=say)
    with lock:
        if not options.render_only:
            faults.point("prepare.locked")
            adopt_current_plan(task)
        prepared = _prepare_locked(task, options, plan, stage_map, requested, say, notices, detected.agent)
    if not options.render_only and prepared.manifest.stage is not None and options.task_type == "implementation":
        after_prepare(task)
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
    if layout == "git":
        worktree_include.read_patterns(project.root)  # a bad pattern refuses before a worktree is made
    setup = setup_of(project) if layout == "git" else Setup()

    # 2. the task worktree; what this run makes is taken back if it is refused later
    made: list[tuple[worktrees.Target, Provision]] = []
    planned: list[tuple[worktrees.Target, Provision]] = []
    if layout == "git":
        base = _task_base(project.repo, options.base_ref)
        task_target = worktrees.task_target(task)
        task_wt = worktrees.provision(task_target, base, dry_run=dry)
        planned.append((task_target, task_wt))
        if task_wt.made_worktree:
            made.append((task_target, task_wt))
        _say_repair("the task worktree", task_wt, say)
        if options.base_ref and task_wt.status == worktrees.REUSED and task_wt.base_ref != base:
            say(f"okstra: --base-ref {options.base_ref} ignored: the task worktree exists already ({task_wt.path})")
    else:
        task_wt = _skipped(project.root, layout)

    run_id: str | None = None
    offline = False
    reserved_here: int | None = None
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
            if not dry:  # on a shared task, the remote's word too (`share`)
                from .share.hooks import reserve

                stage, run_id, offline = reserve(
                    task,
                    status,
                    requested,
                    stage,
                    lambda n: _run_id(task, options, n),
                    pid=options.pid,
                    offline=options.offline,
                )
                reserved_here = None if offline else stage
            spec = stage_map.by_number()[stage]
            # the selected stage is ready, so never among those in flight
            concurrent = sorted(v.stage for v in status.stages if v.state is StageState.IN_FLIGHT)
            stage_wt = _stage_worktree(task, plan, layout, task_wt, stage, spec.depends_on, ledger, dry, say)
            _say_repair(f"the stage {stage} worktree", stage_wt, say)
            planned.append((worktrees.stage_target(task, stage), stage_wt))
            if stage_wt.made_worktree:
                made.append((worktrees.stage_target(task, stage), stage_wt))
        if run_id is None:
            run_id = _run_id(task, options, stage)
        ready = _make_ready(task, _unready(planned, dry), setup, run_id, dry, say)
        if not dry:
            _qa_waivers(task, options.qa_waiver, stage if options.task_type == "implementation" else None, say)
        # a stage's own ports: chosen, then written in its reserved row, under one lock (a
        # render-only run reserves nothing, so it names no ports)
        reserving = stage is not None and options.task_type == "implementation" and not dry
        with ports.ports_lock() if reserving else nullcontext():
            port = ports.pick(project, ports.held(project)) if reserving else None
            return _write_run(
                task,
                options,
                plan,
                stage,
                spec,
                task_wt,
                stage_wt,
                concurrent,
                notices,
                agent,
                run_id,
                ready,
                target,
                port,
                offline,
            )
    except BaseException:
        for made_target, provision in reversed(made):
            worktrees.undo(made_target, provision)
        if reserved_here is not None:
            from .share.hooks import give_back

            give_back(task, reserved_here, run_id)
        raise


def _run_id(task: Task, options: PrepareOptions, stage: int | None) -> str:
    """The run's id: the one the preview showed when it still fits, else a new one."""
    run_id = options.run_id
    if run_id is None or not fits_run_id(run_id, options.task_type, stage) or (task.runs_dir / run_id).exists():
        run_id = new_run_id(options.task_type, stage)
    return run_id


def _unready(planned: list[tuple[worktrees.Target, Provision]], dry: bool) -> list[tuple[worktrees.Target, Provision]]:
    """The worktrees to make ready: those this run makes (would make, in a render-only
    run), and any a killed prepare made but did not make ready."""
    if dry:
        return [(t, p) for t, p in planned if p.render_only]
    return [
        (t, p)
        for t, p in planned
        if p.made_worktree or (p.status == worktrees.REUSED and p.path is not None and not is_ready(p.path))
    ]


@dataclass
class Ready:
    """What making this run's new worktrees ready did: per worktree (None: the task's,
    N: stage N's), and the setup commands' output."""

    worktrees: dict[int | None, Readied] = field(default_factory=dict)
    log: str | None = None


def _make_ready(
    task: Task,
    made: list[tuple[worktrees.Target, Provision]],
    setup: Setup,
    run_id: str,
    dry: bool,
    say: Callable[[str], None],
) -> Ready:
    """Copy, link and set up each worktree in `made` (`worktree_setup`); a render-only
    run says what a new worktree would get. A failed setup refuses, naming its log, kept
    beside the run folders as `RUN_ID.setup.log` (no run folder is made for a run that
    was not prepared); the caller takes the worktrees back."""
    ready = Ready()
    if not made:
        return ready
    chosen = worktree_include.select(task.project.root, task.project.prefix)
    if dry:
        for target, _ in made:
            ready.worktrees[target.stage] = Readied(list(chosen.files), list(setup.symlink_dirs), list(setup.commands))
        return ready
    task.runs_dir.mkdir(parents=True, exist_ok=True)
    log = task.runs_dir / f".{run_id}.{LOG_NAME}"
    try:
        for target, provision in made:
            into = worktrees.project_dir(task, provision)
            assert into is not None  # a worktree okstra made has a place
            into.mkdir(parents=True, exist_ok=True)  # no commit may hold the project's folder yet
            what = target.what
            ready.worktrees[target.stage] = readied = make_ready(
                task.project, chosen, setup, into, log, what=what, say=say
            )
            for note in readied.notes:
                say(f"okstra: {what}: {note}")
            assert provision.path is not None
            mark_ready(provision.path)
    except RefusedError as exc:
        if exc.refusal.code != "setup.failed" or not log.is_file():
            raise
        kept = task.runs_dir / f"{run_id}.{LOG_NAME}"
        log.replace(kept)
        raise Refusal("setup.failed", {**exc.refusal.params, "log": str(kept)}).error() from None
    except BaseException:
        log.unlink(missing_ok=True)
        raise
    if log.is_file():
        ready.log = log.read_text(encoding="utf-8", errors="replace")
        log.unlink()
    return ready


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


def _info(task: Task, provision: Provision, readied: Readied | None) -> WorktreeInfo:
    path = worktrees.project_dir(task, provision)
    return WorktreeInfo(
        path=str(path) if path else None,
        branch=provision.branch,
        base_ref=provision.base_ref,
        status=provision.status,
        note=provision.said or None,
        findings=provision.note or None,
        copied=readied.copied or None if readied else None,
        linked=readied.linked or None if readied else None,
        setup=readied.ran or None if readied else None,
        left_out=readied.notes or None if readied else None,
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
    run_id: str,
    ready: Ready,
    target: str | None = None,
    port: int | None = None,
    offline: bool = False,
) -> Prepared:
    from .agent_events import okstra_argv
    from .conformance import manifest_path
    from .prompts import PromptInputs, lead_prompt
    from .run_contract import TEAM_STATE_SCHEMA_NAME, schema_text
    from .tasks import stage_branch, stage_worktree_path

    project = task.project
    run_dir = task.runs_dir / run_id
    ledger = plan.dir / LEDGER_NAME if plan is not None and options.task_type == "implementation" else None
    here = ready.worktrees.get(stage if stage_wt is not task_wt else None)
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
            worktree_status=worktrees.status_words(stage_wt.status, render_only=options.render_only),
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
            copied=here.copied if here else (),
            linked=here.linked if here else (),
            setup_commands=here.ran if here else (),
            setup_log=run_dir / LOG_NAME if ready.log is not None else None,
            port=port,
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
        worktree=_info(task, stage_wt, here),
        task_worktree=_info(task, task_wt, ready.worktrees.get(None)),
        concurrentRun=ConcurrentRun(detected=bool(concurrent), activeStages=concurrent),
        team=TeamInfo(mode=team.mode, name=team.name),
        agent=agent,
        workers=list(options.workers),
        render_only=options.render_only,
        port=port,
        setup_log=str(run_dir / LOG_NAME) if ready.log is not None else None,
    )
    prepared = Prepared(manifest, text, notices)
    if options.render_only:
        return prepared

    files = {
        "prompt.md": text,
        "manifest.json": json.dumps(manifest.to_json(), indent=2, ensure_ascii=False) + "\n",
        TEAM_STATE_SCHEMA_NAME: schema_text(),
    }
    if ready.log is not None:
        files[LOG_NAME] = ready.log
    write_dir(run_dir, files, fault_prefix="prepare")
    if stage is not None and ledger is not None:
        try:
            row = reserved_row(task, stage, run_id, stage_wt, pid=options.pid, port=port, offline=offline)
            append_row(ledger, row)
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
    task: Task,
    stage: int,
    run_id: str,
    worktree: Provision | WorktreeInfo,
    *,
    pid: int | None = None,
    port: int | None = None,
    offline: bool = False,
) -> LedgerRow:
    """The `reserved` row of a run: with the stage's base commit and branch (reconcile
    reads the stage's base from the latest one), its block of ports (`ports`), and the
    agent's pid only when okstra itself runs the agent in place."""
    from .ports import FIELD

    extra: dict[str, object] = {FIELD: port} if port is not None else {}
    if offline:  # taken while the shared task's remote did not answer (`share`)
        extra["offline"] = True
    return new_row(
        stage,
        "reserved",
        run_id=run_id,
        impl_task_key=task.key,
        base_ref=worktree.base_ref,
        branch=worktree.branch,
        pid=pid,
        **extra,
    )
