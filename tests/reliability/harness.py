"""Kill-anywhere harness: SIGKILL an okstra command somewhere, let the next command run,
and check the invariants (`invariants.check`) before and after it.

How a command is killed (one *trial*):

- at a fault point — `OKSTRA_FAULT=@K` (the K-th point the command passes) or
  `OKSTRA_FAULT=NAME@K` (see `okstra_engine.faults`): the okstra process kills itself
  there, between two steps that matter (its git children have finished);
- after a random delay — the whole process group (okstra and the git it runs) gets
  SIGKILL wherever it is, in the middle of a `git worktree add` or a `git merge` too.

Then, in this order: the invariants that must hold at once (`settled=False`); the *next
command* (the same command again, as a person would rerun it), which must succeed and say
what it repaired; the settled invariants; then `prepare`, which must succeed too.

Trials run in batches, each batch in its own worker process (`python -m
tests.reliability.harness`, a JSON spec on stdin, a JSON result on stdout), so the suite
runs two batches at once on two cores. A batch builds its worlds in its own temp dir with
its own okstra home, agent home and git identity, through the engine in-process (fast);
only the killed command is a real `okstra` process.
"""

from __future__ import annotations

import io
import json
import os
import random
import signal
import subprocess
import sys
import time
from contextlib import redirect_stderr, redirect_stdout, suppress
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TASK = "rel/kill"


def okstra_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("okstra")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "okstra_tui.entry"]


# ---------------------------------------------------------------------------- environment


def enter(base: Path, *, okstra_home: Path | None = None) -> None:
    """Point this process (and the commands it starts) at homes under `base`."""
    home = base / "home"
    home.mkdir(parents=True, exist_ok=True)
    (home / ".gitconfig").write_text(
        "[user]\n\tname = Test\n\temail = test@example.com\n[init]\n\tdefaultBranch = main\n[commit]\n\tgpgsign = false\n"
    )
    for name in list(os.environ):
        if name.startswith("GIT_") or name.startswith("OKSTRA_"):
            del os.environ[name]
    os.environ.update(
        HOME=str(home),
        OKSTRA_HOME=str(okstra_home or base / "okstra-home"),
        OKSTRA_CONFIG=str(base / "okstra-config.toml"),
        CLAUDE_CONFIG_DIR=str(base / "agent-home"),
        PYDANTIC_DISABLE_PLUGINS="__all__",
    )
    from okstra_engine.config import settings

    settings.cache_clear()


# ---------------------------------------------------------------------------- running


@dataclass
class Outcome:
    rc: int
    out: str
    err: str

    @property
    def killed(self) -> bool:
        return self.rc == -signal.SIGKILL

    @property
    def text(self) -> str:
        return self.out + self.err


def killed_run(
    argv: list[str], *, fault: str | None = None, delay: float | None = None, timeout: float = 120
) -> Outcome:
    """Run `okstra ARGV` and SIGKILL it: at the fault point `fault`, or its whole process
    group after `delay` seconds."""
    env = os.environ.copy()
    if fault:
        env["OKSTRA_FAULT"] = fault
    proc = subprocess.Popen(
        [*okstra_cmd(), *argv],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        stdin=subprocess.DEVNULL,
    )
    if delay is not None:
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
    out, err = proc.communicate(timeout=timeout)
    return Outcome(proc.returncode, out, err)


def traced_points(argv: list[str], trace: Path) -> list[str]:
    """The fault points a full run of `okstra ARGV` passes, in order (it runs for real)."""
    trace.unlink(missing_ok=True)
    env = os.environ.copy()
    env["OKSTRA_FAULT_TRACE"] = str(trace)
    subprocess.run([*okstra_cmd(), *argv], env=env, capture_output=True, check=False, stdin=subprocess.DEVNULL)
    return trace.read_text().split() if trace.exists() else []


def cli(*argv: str) -> Outcome:
    """The CLI in this process (the next command after a kill: no process start)."""
    from okstra_engine.cli import main

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            rc = main(list(argv))
        except SystemExit as exc:
            rc = exc.code if isinstance(exc.code, int) else 2
    return Outcome(rc, out.getvalue(), err.getvalue())


def git(repo: Path, *args: str) -> str:
    from tests.reliability.invariants import git as _git

    return _git(repo, *args).strip()


# ---------------------------------------------------------------------------- worlds


def make_task(base: Path, stages: list[dict], *, project_id: str = "proj"):
    """A git project with task rel/kill and an approved plan of `stages` (stage-map.json rows)."""
    from okstra_engine.plans import import_plan
    from okstra_engine.projects import init_project
    from okstra_engine.slugs import TaskRef
    from okstra_engine.tasks import new_task
    from tests.support import make_repo

    repo = make_repo(base / project_id)
    project, _ = init_project(repo, project_id=project_id, qa_commands=["true"])
    task = new_task(project, TaskRef.parse(TASK), title="Kill anywhere")
    source = base / f"{project_id}-stage-map.json"
    source.write_text(json.dumps({"stages": stages}))
    import_plan(task, source, approve=True)
    return repo, task


def independent(numbers, group: str | None = None) -> list[dict]:
    return [
        {"stage": n, "title": f"Stage {n}", "depends_on": [], **({"group": group} if group else {})} for n in numbers
    ]


def prepare_now(task, stage: int | None = None) -> int:
    from okstra_engine.prepare import PrepareOptions, prepare

    return prepare(task, PrepareOptions("implementation", stage=str(stage) if stage else "auto")).manifest.stage


def commit_in_stage(task, stage: int, files: dict[str, str] | None = None) -> str:
    from okstra_engine.worktrees import stage_target
    from tests.support import commit

    return commit(stage_target(task, stage).path, files or {f"stage-{stage}.txt": f"stage {stage}\n"}, f"stage {stage}")


def ledger_rows(task):
    from okstra_engine.ledger import LEDGER_NAME, read_ledger
    from okstra_engine.plans import plan_run_root

    return read_ledger(plan_run_root(task).dir / LEDGER_NAME).rows


# ---------------------------------------------------------------------------- one trial


def anomalies(world) -> dict[str, tuple[str, str]]:
    """What a kill left that the next command has to repair: {what: (kind, the word the
    next command's output must contain to say so)}."""
    from okstra_engine import registry
    from okstra_engine.locations import okstra_home
    from okstra_engine.worktrees import task_slot
    from tests.reliability.invariants import worktree_entries

    found: dict[str, tuple[str, str]] = {}
    if world.repo is None:
        return found
    entries = worktree_entries(world.repo)
    ours = [
        e for e in entries if os.path.realpath(e["worktree"]).startswith(os.path.realpath(okstra_home() / "worktrees"))
    ]
    rows = {}
    if world.task:
        from okstra_engine.projects import load_project
        from okstra_engine.slugs import TaskRef
        from okstra_engine.tasks import load_task

        task = load_task(load_project(world.repo), TaskRef.parse(world.task))
        rows = {os.path.realpath(r.path) for r in registry.task_worktrees(task_slot(task)).values()}
    common = Path(git(world.repo, "rev-parse", "--git-common-dir"))
    common = common if common.is_absolute() else world.repo / common
    for lock in (common / "refs" / "heads" / "okstra").rglob("*.lock"):
        found[f"ref lock {lock.name}"] = ("stale ref lock", "stale git lock")
    for e in ours:
        if e.get("locked") == "initializing":
            found[f"half-made worktree {e['worktree']}"] = ("half-made worktree", "half-made")
        elif os.path.realpath(e["worktree"]) not in rows:
            found[f"unregistered worktree {e['worktree']}"] = ("worktree not in the registry", "adopted")
    from okstra_engine.quarantine import list_trash

    for entry in list_trash():
        if entry.state == "moving":
            found[f"unfinished quarantine {entry.stamp}"] = ("unfinished quarantine", "interrupted")
    if world.task:
        from okstra_engine.handoff import JOURNAL_NAME
        from okstra_engine.plans import plan_run_root

        plan = plan_run_root(task)
        if plan is not None and (plan.dir / JOURNAL_NAME).exists():
            found["journal of an interrupted handoff"] = ("interrupted handoff", "interrupted handoff")
    branches = {e.get("branch") for e in entries}
    for ref in git(world.repo, "for-each-ref", "--format=%(refname)", "refs/heads/okstra/").split():
        if ref not in branches:
            found[f"branch without worktree {ref}"] = ("branch without its worktree", "existed at")
    return found


def run_trial(
    world,
    argv: list[str],
    how: dict,
    *,
    follow,
    expect_follow=(0,),
    next_prepare=None,
    says_torn=False,
    settle_after_follow: bool = True,
) -> dict:
    """Kill `okstra ARGV` (`how`: {"fault": …} or {"delay": …}), check, run the next
    command `follow()`, check again, then `next_prepare()`."""
    from tests.reliability.invariants import check

    result: dict = {"argv": argv[2:] if argv[:1] == ["--project"] else argv, **how, "violations": [], "repairs": []}
    outcome = killed_run(argv, fault=how.get("fault"), delay=how.get("delay"))
    result["rc"] = outcome.rc
    result["killed"] = outcome.killed
    if not outcome.killed and outcome.rc not in (0, 2):
        result["violations"].append(
            f"the command itself failed unexpectedly (exit {outcome.rc}): {outcome.err.strip()[-400:]}"
        )
    if "Traceback" in outcome.err:
        result["violations"].append(f"a traceback: {outcome.err.strip()[-400:]}")
    now = check(world, settled=False)
    result["violations"] += [f"after the kill: {v}" for v in now.violations]
    torn_before = now.stats["torn ledger lines"]
    pending = anomalies(world)
    nxt = follow()
    result["follow_rc"] = nxt.rc
    if nxt.rc not in expect_follow:
        result["violations"].append(f"the next command failed (exit {nxt.rc}): {nxt.err.strip()[-600:]}")
    if says_torn and torn_before and "consumers.jsonl line" not in nxt.text:
        result["violations"].append("the next command skipped the torn ledger line without saying so")
    for what, (kind, word) in pending.items():
        result["repairs"].append(kind)
        if word not in nxt.text:
            result["violations"].append(
                f"the next command repaired '{what}' without saying so (no '{word}' in its output)"
            )
    settled = check(world, settled=settle_after_follow)
    result["violations"] += [f"after the next command: {v}" for v in settled.violations]
    result["stats"] = dict(settled.stats)
    result["torn"] = now.stats["ledger ends in a torn line"] + now.stats["handoffs.jsonl ends in a torn line"]
    if next_prepare is not None:
        try:
            next_prepare()
        except Exception as exc:  # noqa: BLE001 - the finding
            result["violations"].append(f"the next prepare failed: {type(exc).__name__}: {exc}")
        else:
            again = check(world, settled=True)
            result["violations"] += [f"after the next prepare: {v}" for v in again.violations]
    return result


# ---------------------------------------------------------------------------- batches


def batch_prepare(spec: dict, results: list[dict]) -> list[dict]:
    from tests.reliability.invariants import World

    base = Path(spec["base"])
    enter(base)
    variant = spec["variant"]
    if variant == "fresh":
        # a task's first prepare: the task worktree, the anchor, stage 1's worktree
        for i, how in enumerate(spec["trials"]):
            repo, task = make_task(
                base, [*independent([1, 2, 3]), {"stage": 4, "title": "S4", "depends_on": [1]}], project_id=f"p{i}"
            )
            world = World(repo, TASK)
            argv = ["--project", str(repo), "prepare", TASK, "--type", "implementation"]
            results.append(
                run_trial(
                    world, argv, how, follow=lambda: cli(*argv), next_prepare=lambda: prepare_now(task), says_torn=True
                )
            )
        return results
    # "busy": one task, many trials in a row; stage worktrees of independent stages, a
    # QA waiver, and dependent stages whose predecessor is done only per its carry sidecar
    size = 14
    world = task = repo = None
    for i, how in enumerate(spec["trials"]):
        if i % size == 0:
            n = i // size
            stages = [*independent(range(1, 3 * size + 1))]
            stages += [{"stage": 100 + k, "title": f"After {k}", "depends_on": [k]} for k in range(1, 3 * size + 1)]
            repo, task = make_task(base, stages, project_id=f"b{n}")
            world = World(repo, TASK)
            prepare_now(task)  # the task worktree exists from here on
        kind = i % 3
        argv = ["--project", str(repo), "prepare", TASK, "--type", "implementation"]
        if kind == 1:
            argv += ["--qa-waiver", f"kill-stage-{i % size + 1}=flaky upstream"]
        elif kind == 2:
            from okstra_engine.carry import CarrySidecar, write_carry
            from okstra_engine.plans import plan_run_root

            s = prepare_now(task)
            sha = commit_in_stage(task, s)
            write_carry(
                plan_run_root(task).dir,
                CarrySidecar(stage=s, head_commit=sha, impl_task_key="rel-kill", summary="done"),
            )
            argv += ["--stage", str(100 + s)]

        def follow(argv=argv):
            nxt = cli(*argv)
            if nxt.rc == 2 and "in flight" in nxt.err:  # the killed run had finished its work
                return cli(*argv[:-2]) if "--stage" in argv else nxt
            return nxt

        results.append(
            run_trial(world, argv, how, follow=follow, next_prepare=lambda: prepare_now(task), says_torn=True)
        )
    return results


def batch_prepare_undo(spec: dict, results: list[dict]) -> list[dict]:
    """A prepare that fails after it made the stage worktree (the disk fills up as it
    writes the run folder), killed while it takes the worktree back (registry row,
    worktree, branch, in that order). Its next run fails the same way (exit 2); the one
    after the disk has room again succeeds, and then everything is settled."""
    from okstra_engine.faults import FULL_ENV
    from tests.reliability.invariants import World

    base = Path(spec["base"])
    enter(base)
    repo, task = make_task(base, independent(range(1, 3 * len(spec["trials"]) + 3)), project_id="u")
    world = World(repo, TASK)
    prepare_now(task)
    for _i, how in enumerate(spec["trials"]):
        os.environ[FULL_ENV] = "prepare.run-staged"  # this batch runs in a worker process of its own
        argv = [
            "--project",
            str(repo),
            "prepare",
            TASK,
            "--type",
            "implementation",
            "--qa-waiver",
            "kill-stage-1=flaky",
        ]

        def next_prepare():
            os.environ.pop(FULL_ENV, None)
            prepare_now(task)

        results.append(
            run_trial(
                world,
                argv,
                how,
                follow=lambda argv=argv: cli(*argv),
                expect_follow=(2,),
                next_prepare=next_prepare,
                settle_after_follow=False,
            )
        )
    return results


def batch_record(spec: dict, results: list[dict]) -> list[dict]:
    from tests.reliability.invariants import World

    base = Path(spec["base"])
    enter(base)
    size = 16
    world = task = repo = None
    for i, how in enumerate(spec["trials"]):
        if i % size == 0:
            repo, task = make_task(base, independent(range(1, size + 2)), project_id=f"r{i // size}")
            world = World(repo, TASK)
        stage = prepare_now(task)
        if i % 4 == 3:
            argv = ["--project", str(repo), "record", TASK, "--stage", str(stage), "--status", "started"]
            want = ("started", None)
        else:
            sha = commit_in_stage(task, stage)
            argv = ["--project", str(repo), "record", TASK, "--stage", str(stage), "--status", "done", "--commit", sha]
            want = ("done", sha)
        result = run_trial(world, argv, how, follow=lambda argv=argv: cli(*argv))
        last = [r for r in ledger_rows(task) if r.stage == stage][-1]
        if (last.status, last.head_commit) != want:
            result["violations"].append(
                f"stage {stage}'s latest row is {last.status} at {last.head_commit}, not {want}"
            )
        results.append(result)
    # the next prepare after the last trial of each world is the next trial's; the last one:
    try:
        prepare_now(task)
    except Exception as exc:  # noqa: BLE001
        results[-1]["violations"].append(f"the next prepare failed: {exc}")
    return results


def batch_handoff(spec: dict, results: list[dict]) -> list[dict]:
    """Groups of two stages, all done; each trial hands one group off with --merge."""
    from okstra_engine.record import record
    from okstra_engine.tasks import task_branch
    from tests.reliability.invariants import World

    base = Path(spec["base"])
    enter(base)
    trials = spec["trials"]
    conflict_every = spec.get("conflict_every", 0)
    groups = len(trials)
    stages = []
    for g in range(1, groups + 1):
        stages += [
            {"stage": 2 * g - 1, "title": f"G{g} a", "depends_on": [], "group": f"G{g}"},
            {"stage": 2 * g, "title": f"G{g} b", "depends_on": [], "group": f"G{g}"},
        ]
    stages += [
        {"stage": 1000 + k, "title": f"Spare {k}", "depends_on": [], "group": "spare"} for k in range(1, groups + 2)
    ]
    repo, task = make_task(base, stages, project_id="h")
    world = World(repo, TASK)
    wt = None
    for g, how in enumerate(trials, 1):
        # the group's two stages are done just before their trial, so the other commands
        # see few finished stages that are not handed off yet (each costs auto-reconcile)
        group = f"G{g}"
        clash = bool(conflict_every) and g % conflict_every == 0
        for s in (2 * g - 1, 2 * g):
            assert prepare_now(task, s) == s
            name = f"g{g}.txt" if clash else f"stage-{s}.txt"
            sha = commit_in_stage(task, s, {name: f"stage {s} says {'a' if s % 2 else 'b'}\n"})
            record(task, s, "done", commit=sha)
        wt = wt or Path(json.loads(cli("--project", str(repo), "status", TASK, "--json").out)["task_worktree"])
        argv = ["--project", str(repo), "handoff", TASK, "--group", group, "--merge"]
        before = git(wt, "rev-parse", "HEAD")
        if clash and how.get("fault", "").startswith("@"):
            # a conflicting group passes 3 points (lock, first merge, conflict), not 8
            how = {"fault": f"@{(int(how['fault'][1:]) - 1) % 3 + 1}"}
        result = run_trial(
            world,
            argv,
            how,
            follow=lambda argv=argv: cli(*argv),
            expect_follow=(2,) if clash else (0,),
            next_prepare=lambda g=g: prepare_now(task, 1000 + g),
        )
        head = git(wt, "rev-parse", "HEAD")
        if clash:
            if head != before:
                result["violations"].append(f"a conflicting handoff moved the task worktree {before[:8]} -> {head[:8]}")
        else:
            for s in (2 * g - 1, 2 * g):
                done = [r for r in ledger_rows(task) if r.stage == s and r.status == "done"][-1].head_commit
                if subprocess.run(["git", "merge-base", "--is-ancestor", done, head], cwd=wt).returncode != 0:
                    result["violations"].append(f"stage {s} ({done[:8]}) is not merged after the next handoff")
            from okstra_engine.handoff import read_handoffs
            from okstra_engine.plans import plan_run_root

            rows = [r for r in read_handoffs(plan_run_root(task).dir).rows if r.group == group]
            if not rows or rows[-1].head_after != head:
                result["violations"].append(f"group {group}'s handoff is not recorded at the task HEAD {head[:8]}")
            elif not (plan_run_root(task).dir / f"handoff-{group}.md").is_file():
                result["violations"].append(f"group {group}'s report is missing")
        if git(wt, "status", "--porcelain"):
            result["violations"].append(f"the task worktree is not clean: {git(wt, 'status', '--porcelain')[:200]}")
        if git(wt, "symbolic-ref", "HEAD") != f"refs/heads/{task_branch(task)}":
            result["violations"].append("the task worktree is not on the task branch")
        result["group"] = group
        result["conflict"] = clash
        results.append(result)
    return results


def make_team(team: str, n: int) -> dict[str, bytes | str]:
    """A team's state as the agent leaves it (configs, inboxes, a blob, a link, a task
    list); returns {relative path: bytes or `-> target`}."""
    from okstra_engine.locations import agent_home

    home = agent_home()
    files: dict[str, bytes | str] = {
        f"teams/{team}/config.json": json.dumps({"name": team, "members": ["lead", "w1", "w2"]}).encode(),
        f"teams/{team}/blob.bin": bytes(range(256)) * (400 + n),
        f"tasks/{team}/.lock": b"",
    }
    for k in range(6):
        files[f"teams/{team}/inboxes/w{k}.json"] = json.dumps([{"from": "lead", "n": k, "team": team}]).encode()
        files[f"tasks/{team}/{k + 1}.json"] = json.dumps({"id": k + 1, "status": "pending"}).encode()
    for rel, data in files.items():
        path = home / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    os.symlink("config.json", home / "teams" / team / "link")
    files[f"teams/{team}/link"] = "-> config.json"
    return files


def batch_quarantine(spec: dict, results: list[dict]) -> list[dict]:
    from tests.reliability.invariants import World

    base = Path(spec["base"])
    enter(base, okstra_home=Path(spec["okstra_home"]) if spec.get("okstra_home") else None)
    size = 12
    world = task = repo = None
    for i, how in enumerate(spec["trials"]):
        if i % size == 0:
            repo, task = make_task(base, independent(range(1, size + 2)), project_id=f"q{i // size}")
            world = World(repo, TASK)
        team = f"okstra-rel-kill-s{500 + i}"
        world.teams[team] = make_team(team, i)
        restore = spec.get("restore") and i % 2 == 1
        if restore:
            moved = cli("quarantine", "move", team, "--yes", "--json")
            assert moved.rc == 0, moved.err
            stamp = json.loads(moved.out)["stamp"]
            argv = ["quarantine", "restore", stamp]

            def follow(stamp=stamp):
                nxt = cli("quarantine", "restore", stamp)
                return Outcome(0, nxt.out, nxt.err) if nxt.rc == 2 and "already restored" in nxt.err else nxt
        else:
            argv = ["quarantine", "move", team, "--yes"]

            def follow(team=team):
                nxt = cli("quarantine", "move", team, "--yes")
                # the killed move had finished: nothing is left to move
                return Outcome(0, nxt.out, nxt.err) if nxt.rc == 2 and "no team state named" in nxt.err else nxt

        result = run_trial(world, argv, how, follow=follow, next_prepare=lambda: prepare_now(task))
        from okstra_engine.locations import agent_home

        home = agent_home()
        left = [k for k in ("teams", "tasks") if (home / k / team).exists()]
        if restore and len(left) != 2:
            result["violations"].append(f"{team} is not back in the agent home after the next restore ({left})")
        if not restore and left:
            result["violations"].append(f"{team} is still in the agent home after the next move ({left})")
        results.append(result)
    return results


BATCHES = {
    "prepare": batch_prepare,
    "prepare-undo": batch_prepare_undo,
    "record": batch_record,
    "handoff": batch_handoff,
    "quarantine": batch_quarantine,
}


# ---------------------------------------------------------------------------- planning batches


def plan_trials(
    points: int,
    faults: int,
    delays: int,
    *,
    delay_range: tuple[float, float],
    rng: random.Random,
    named: list[str] = (),
) -> list[dict]:
    """`faults` trials walking `@1…@points` in turn (then the `named` points), and `delays`
    random-delay kills in `delay_range`."""
    trials = [{"fault": f"@{1 + k % points}"} for k in range(faults)]
    trials += [{"fault": name} for name in named]
    trials += [{"delay": round(rng.uniform(*delay_range), 3)} for _ in range(delays)]
    rng.shuffle(trials)
    return trials


def run_batches(specs: list[dict], *, workers: int = 2, timeout: float = 900) -> list[dict]:
    """Run each batch in a worker process, `workers` at a time; return every trial."""
    pending = list(specs)
    running: list[tuple[subprocess.Popen, dict]] = []
    results: list[dict] = []
    env = os.environ.copy()
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    deadline = time.monotonic() + timeout
    while pending or running:
        while pending and len(running) < workers:
            spec = pending.pop(0)
            path = Path(spec["base"]).with_suffix(".spec.json")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(spec))
            proc = subprocess.Popen(
                [sys.executable, "-m", "tests.reliability.harness", str(path)],
                cwd=ROOT,
                env=env,
                text=True,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            running.append((proc, spec))
        proc, spec = running.pop(0)
        out, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
        if proc.returncode != 0:
            raise AssertionError(
                f"worker for {spec['command']} batch {spec['base']} failed ({proc.returncode}):\n{err[-3000:]}"
            )
        for trial in json.loads(out):
            trial["batch"] = spec["base"]
            results.append(trial)
    return results


def summary(results: list[dict]) -> str:
    kills = sum(r["killed"] for r in results)
    faults = sum(r["killed"] and "fault" in r for r in results)
    delays = sum(r["killed"] and "delay" in r for r in results)
    repairs = sum(len(r["repairs"]) for r in results)
    torn = sum(r.get("torn", 0) > 0 for r in results)
    from collections import Counter

    kinds = Counter(kind for r in results for kind in r["repairs"])
    listed = ", ".join(f"{n} {kind}" for kind, n in kinds.most_common()) or "none needed"
    return (
        f"{kills} kills ({faults} at fault points, {delays} after random delays) of {len(results)} trials; "
        f"{torn} left a torn line; the next command repaired {repairs} thing(s) and said so: {listed}"
    )


def main() -> int:
    sys.path.insert(0, str(ROOT))
    spec = json.loads(Path(sys.argv[1]).read_text())
    results: list[dict] = []
    try:
        BATCHES[spec["command"]](spec, results)
    except Exception:  # noqa: BLE001 - a broken world is a finding too; keep what ran
        import traceback

        results.append(
            {
                "argv": [spec["command"]],
                "killed": False,
                "repairs": [],
                "rc": None,
                "violations": [f"the batch stopped: {traceback.format_exc()[-2500:]}"],
            }
        )
    json.dump(results, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
