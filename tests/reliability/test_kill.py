"""Kill anywhere: SIGKILL `okstra prepare`, `record`, `handoff --merge` and `quarantine
move`/`restore` at every fault point they pass (`okstra_engine.faults`, walked in order
with `OKSTRA_FAULT=@K`) and after random delays (the whole process group, git included),
then prove the invariants (`invariants.check`) right after the kill, after the next
command (which must succeed and say what it repaired) and after the next `prepare`.

At least 50 kills per command. The trials run in worker processes, two at a time
(`harness.run_batches`); the random delays come from a seeded generator: set
`OKSTRA_RELIABILITY_SEED` to replay another run. The figures of a run are printed (`-s`).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
from pathlib import Path

import pytest

from tests.reliability.harness import plan_trials, run_batches, summary

pytestmark = pytest.mark.timeout(600)

SEED = int(os.environ.get("OKSTRA_RELIABILITY_SEED", "20250314"))
MIN_KILLS = 50


def _rng(name: str) -> random.Random:
    return random.Random(f"{SEED}-{name}")


def _verdict(command: str, results: list[dict]) -> str:
    kills = sum(r["killed"] for r in results)
    line = f"{command}: {summary(results)} (seed {SEED})"
    print("\n" + line)
    bad = [r for r in results if r["violations"]]
    details = "\n".join(
        f"- {r.get('fault') or 'delay ' + str(r.get('delay'))} on {' '.join(r['argv'])} (batch {Path(r['batch']).name}):\n    "
        + "\n    ".join(r["violations"])
        for r in bad[:12]
    )
    assert not bad, f"{line}\n{len(bad)} trial(s) broke an invariant:\n{details}"
    assert kills >= MIN_KILLS, f"{line}: fewer than {MIN_KILLS} kills"
    return line


def _shm(tmp_path: Path) -> Path | None:
    """A folder on another file system than `tmp_path` (so quarantine copies), if any."""
    shm = Path("/dev/shm")
    try:
        if shm.is_dir() and os.access(shm, os.W_OK) and shm.stat().st_dev != tmp_path.stat().st_dev:
            path = shm / f"okstra-rel-{os.getpid()}-{tmp_path.name}"
            path.mkdir()
            return path
    except OSError:
        return None
    return None


@pytest.mark.slow
def test_kill_prepare_anywhere(tmp_path: Path) -> None:
    rng = _rng("prepare")
    delays = (0.12, 0.42)
    specs = [
        # a task's first prepare passes 15 points: task worktree, anchor, stage worktree, run, row
        {
            "command": "prepare",
            "variant": "fresh",
            "base": str(tmp_path / "fresh"),
            "trials": plan_trials(15, 15, 4, delay_range=delays, rng=rng),
        },
        # later prepares: 13-14 points, with a QA waiver, or a carry backfill first
        {
            "command": "prepare",
            "variant": "busy",
            "base": str(tmp_path / "busy1"),
            "trials": plan_trials(14, 16, 4, delay_range=delays, rng=rng),
        },
        {
            "command": "prepare",
            "variant": "busy",
            "base": str(tmp_path / "busy2"),
            "trials": plan_trials(
                14, 14, 4, delay_range=delays, rng=rng, named=["fsio.append-torn", "fsio.append-torn@2"]
            ),
        },
        # a prepare that fails and takes its stage worktree back, killed half-way through that
        {
            "command": "prepare-undo",
            "base": str(tmp_path / "undo"),
            "trials": plan_trials(
                7, 7, 1, delay_range=delays, rng=rng, named=["worktree.undo-forgotten", "worktree.undo-removed"]
            ),
        },
    ]
    _verdict("prepare", run_batches(specs))


@pytest.mark.slow
def test_kill_record_anywhere(tmp_path: Path) -> None:
    rng = _rng("record")
    delays = (0.08, 0.2)
    specs = [
        {
            "command": "record",
            "base": str(tmp_path / f"r{n}"),
            "trials": plan_trials(3, 27, 6, delay_range=delays, rng=rng),
        }
        for n in (1, 2)
    ]
    _verdict("record", run_batches(specs))


@pytest.mark.slow
def test_kill_handoff_merge_anywhere(tmp_path: Path) -> None:
    rng = _rng("handoff")
    delays = (0.2, 0.45)
    # a group of two stages passes 8 points (lock, after each merge, after both, the row
    # torn/appended, recorded, the report); a conflicting group (every 5th) 3
    specs = [
        {
            "command": "handoff",
            "base": str(tmp_path / f"h{n}"),
            "conflict_every": 5,
            "trials": plan_trials(8, 13, 3, delay_range=delays, rng=rng),
        }
        for n in (1, 2, 3, 4)
    ]
    _verdict("handoff --merge", run_batches(specs))


@pytest.mark.slow
def test_kill_quarantine_move_and_restore_anywhere(tmp_path: Path) -> None:
    rng = _rng("quarantine")
    delays = (0.1, 0.32)
    specs = [
        # same file system: one rename per folder; 6 points
        {
            "command": "quarantine",
            "base": str(tmp_path / "same"),
            "trials": plan_trials(6, 18, 4, delay_range=delays, rng=rng),
        },
    ]
    other = _shm(tmp_path)
    if other is not None:
        # across file systems: copy, fsync, compare, rename into place, then remove; 14 points
        specs += [
            {
                "command": "quarantine",
                "base": str(tmp_path / "cross"),
                "okstra_home": str(other / "move"),
                "trials": plan_trials(14, 16, 4, delay_range=delays, rng=rng),
            },
            {
                "command": "quarantine",
                "base": str(tmp_path / "cross-restore"),
                "okstra_home": str(other / "restore"),
                "restore": True,
                "trials": plan_trials(14, 16, 4, delay_range=delays, rng=rng),
            },
        ]
    else:
        specs.append(
            {
                "command": "quarantine",
                "base": str(tmp_path / "same-restore"),
                "restore": True,
                "trials": plan_trials(6, 32, 8, delay_range=delays, rng=rng),
            }
        )
    try:
        _verdict("quarantine move/restore", run_batches(specs))
    finally:
        if other is not None:
            subprocess.run(["rm", "-rf", str(other)], check=False)


# ---------------------------------------------------------------------------- one by one
#
# The two states a kill inside git leaves, made on purpose (git's own markers), so the
# repairs are tested without luck.


def test_a_half_made_worktree_from_a_killed_git_worktree_add_is_made_again(task, capsys) -> None:
    from okstra_engine.worktrees import stage_target
    from tests.reliability.invariants import World, check
    from tests.support import call, git

    repo = task.project.root
    target = stage_target(task, 1)
    base = git(repo, "rev-parse", "HEAD")
    # what `git worktree add -b` leaves when it dies before its checkout finished
    git(repo, "worktree", "add", "--lock", "--reason", "initializing", "-b", target.branch, str(target.path), base)
    assert "locked initializing" in git(repo, "worktree", "list", "--porcelain")

    code, out, err = call(capsys, "--project", str(repo), "prepare", "auth/login", "--type", "implementation")

    assert code == 0, err
    assert f"okstra worktree: {target.path} (recreated)" in out
    assert "half-made worktree" in err and "interrupted git worktree add was removed" in err
    assert "locked" not in git(repo, "worktree", "list", "--porcelain")
    report = check(World(repo, "auth/login"), settled=True)
    assert report.violations == []


def test_a_handoff_killed_inside_git_merge_is_cleared_by_the_next_one(task, capsys) -> None:
    from okstra_engine import handoff as ho
    from okstra_engine.handoff.recovery import begin_journal
    from okstra_engine.plans import plan_run_root
    from okstra_engine.prepare import PrepareOptions, prepare
    from okstra_engine.record import record
    from okstra_engine.worktrees import stage_target, task_target
    from tests.reliability.invariants import World, check
    from tests.support import call, commit, git

    assert prepare(task, PrepareOptions("implementation")).manifest.stage == 1
    sha = commit(stage_target(task, 1).path, {"schema.py": "S = 1\n"}, "stage 1")
    record(task, 1, "done", commit=sha)
    wt = task_target(task).path
    before = git(wt, "rev-parse", "HEAD")
    plan = ho.handoff_plan(task, "A")
    # what a SIGKILL of the process group in the middle of okstra's `git merge` leaves:
    # the journal, git's unfinished merge, and its index lock
    begin_journal(plan)
    git(wt, "merge", "--no-ff", "--no-commit", "-m", "okstra handoff auth/login group A: stage 1 (Schema)", sha)
    git_dir = Path(git(wt, "rev-parse", "--absolute-git-dir"))
    (git_dir / "index.lock").write_bytes(b"")
    assert (git_dir / "MERGE_HEAD").exists()

    code, out, err = call(
        capsys, "--project", str(task.project.root), "handoff", "auth/login", "--group", "A", "--merge", "--json"
    )

    assert code == 0, err
    assert "recovered from an interrupted handoff of group A" in err
    assert "index.lock" in err and "its unfinished merge" in err
    doc = json.loads(out)
    assert doc["merged"] == [1] and doc["head_before"] == before
    assert git(wt, "rev-parse", f"{doc['task_head']}^2") == sha
    assert not (plan_run_root(task).dir / ho.JOURNAL_NAME).exists()
    assert check(World(task.project.root, "auth/login"), settled=True).violations == []


def test_a_merge_that_is_not_okstras_is_left_alone(task, capsys) -> None:
    """The journal clears only okstra's own merge: a person's merge in progress blocks
    the handoff with the usual message, untouched."""
    from okstra_engine import handoff as ho
    from okstra_engine.handoff.recovery import begin_journal
    from okstra_engine.prepare import PrepareOptions, prepare
    from okstra_engine.record import record
    from okstra_engine.worktrees import stage_target, task_target
    from tests.support import call, commit, git

    prepare(task, PrepareOptions("implementation"))
    sha = commit(stage_target(task, 1).path, {"schema.py": "S = 1\n"}, "stage 1")
    record(task, 1, "done", commit=sha)
    wt = task_target(task).path
    begin_journal(ho.handoff_plan(task, "A"))
    git(wt, "merge", "--no-ff", "--no-commit", "-m", "my own merge", sha)

    code, _, err = call(capsys, "--project", str(task.project.root), "handoff", "auth/login", "--group", "A", "--merge")

    assert code == 2
    assert "a merge is in progress in the task worktree" in err
    assert (Path(git(wt, "rev-parse", "--absolute-git-dir")) / "MERGE_HEAD").exists()


def test_the_fault_hook_is_inert_without_its_variable(monkeypatch) -> None:
    """`faults.point` costs nothing and does nothing unless OKSTRA_FAULT names it."""
    from okstra_engine import faults

    monkeypatch.delenv("OKSTRA_FAULT", raising=False)
    monkeypatch.delenv("OKSTRA_FAULT_TRACE", raising=False)
    for _ in range(3):
        faults.point("prepare.locked")
    assert not faults.armed("prepare.locked")


def test_files_a_killed_merge_half_wrote_are_put_back_and_its_merges_undone(task, capsys) -> None:
    """Killed after its first merge commit and while git wrote the second merge's files
    (no MERGE_HEAD yet): the next handoff puts those files back, takes back the first
    merge (the group lands whole), then merges the group again."""
    from okstra_engine import handoff as ho
    from okstra_engine.handoff.recovery import begin_journal
    from okstra_engine.prepare import PrepareOptions, prepare
    from okstra_engine.record import record
    from okstra_engine.worktrees import stage_target, task_target
    from tests.support import call, commit, git

    assert prepare(task, PrepareOptions("implementation")).manifest.stage == 1
    record(task, 1, "done", commit=commit(stage_target(task, 1).path, {"schema.py": "S = 1\n"}, "stage 1"))
    assert ho.run_handoff(task, "A", merge=True).merged == [1]
    shas = {}
    big = "".join(f"line {i}\n" for i in range(5000))
    for n, files in ((2, {"importer.py": "stage 2\n"}), (3, {"exporter.py": "stage 3\n", "big.bin": big})):
        assert prepare(task, PrepareOptions("implementation", stage=str(n))).manifest.stage == n
        shas[n] = commit(stage_target(task, n).path, files, f"stage {n}")
        record(task, n, "done", commit=shas[n])
    wt = task_target(task).path
    before = git(wt, "rev-parse", "HEAD")
    begin_journal(ho.handoff_plan(task, "B"))
    git(wt, "merge", "--no-ff", "-m", "okstra handoff auth/login group B: stage 2 (Importer)", shas[2])
    git(wt, "checkout", shas[3], "--", "exporter.py")  # the second merge, half-written
    (wt / "big.bin").write_text(big[: len(big) // 3])  # cut short as it wrote this one
    (wt / "notes.txt").write_text("mine\n")  # and a file of someone else's, untracked

    code, out, err = call(
        capsys, "--project", str(task.project.root), "handoff", "auth/login", "--group", "B", "--merge", "--json"
    )

    assert code == 2, out  # the untracked file is someone's work: the clean gate names it
    assert "exporter.py" in err and "its 1 merge commit(s)" in err
    assert "notes.txt" in err and (wt / "notes.txt").read_text() == "mine\n"
    assert git(wt, "rev-parse", "HEAD") == before and not (wt / "exporter.py").exists()
    assert not (wt / "big.bin").exists() and "big.bin" in err
    (wt / "notes.txt").unlink()
    code, out, err = call(
        capsys, "--project", str(task.project.root), "handoff", "auth/login", "--group", "B", "--merge", "--json"
    )
    assert code == 0, err
    assert json.loads(out)["merged"] == [2, 3]


def test_stale_ref_locks_a_killed_git_left_are_cleared(task, capsys) -> None:
    """A git killed while it wrote a ref leaves `REF.lock`, and every later update of that
    ref fails. okstra clears one that stayed (git holds one for milliseconds): on the
    branch of a worktree it is about to make, and on a pin ref it writes."""
    import time

    from okstra_engine.reconcile import pin_ref
    from okstra_engine.worktrees import stage_target
    from tests.reliability.invariants import World, check
    from tests.support import call, commit, git

    repo = task.project.root
    branch_lock = repo / ".git" / "refs" / "heads" / stage_target(task, 1).branch
    branch_lock = branch_lock.with_name(branch_lock.name + ".lock")
    branch_lock.parent.mkdir(parents=True, exist_ok=True)
    branch_lock.write_text("")
    old = time.time() - 60
    os.utime(branch_lock, (old, old))

    code, _out, err = call(capsys, "--project", str(repo), "prepare", "auth/login", "--type", "implementation")
    assert code == 0, err
    assert "stale git lock" in err and not branch_lock.exists()

    sha = commit(stage_target(task, 1).path, {"a.txt": "a\n"}, "stage 1")
    pin_lock = repo / ".git" / (pin_ref(task, 1, sha) + ".lock")
    pin_lock.parent.mkdir(parents=True, exist_ok=True)
    pin_lock.write_text("")
    os.utime(pin_lock, (old, old))
    code, _, err = call(
        capsys, "--project", str(repo), "record", "auth/login", "--stage", "1", "--status", "done", "--commit", sha
    )
    assert code == 0, err
    assert not pin_lock.exists() and git(repo, "rev-parse", pin_ref(task, 1, sha)) == sha
    assert check(World(repo, "auth/login"), settled=True).violations == []
