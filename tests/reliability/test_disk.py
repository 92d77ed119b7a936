"""Disk full, read-only: a clear error (exit 2 with what and how), and no partial file.

Two ways to take the disk away:

- in this process, okstra's own writes fail (`fsio`'s `os.write` / `os.replace` replaced):
  runs everywhere (the tests run as root, where chmod does not stop a write);
- a real tmpfs of a few MB, mounted for the test, filled to the last byte and then
  remounted read-only: okstra home, the project and the agent home all on it, so git,
  SQLite and okstra meet the real ENOSPC and EROFS. Skipped where `mount` is not allowed.

After each refusal: nothing changed (ledger bytes, run dirs, refs, worktrees, registry
rows, no temp file), and once the space is back the next command works.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import uuid
from contextlib import closing
from pathlib import Path

import pytest

from okstra_engine import fsio
from okstra_engine.ledger import LEDGER_NAME
from okstra_engine.plans import plan_run_root
from tests.reliability.harness import cli
from tests.reliability.invariants import World, check

TASK = "auth/login"


class _Os:
    """`os` for fsio, with some calls replaced."""

    def __init__(self, **replaced) -> None:
        self._replaced = replaced

    def __getattr__(self, name):
        return self._replaced.get(name) or getattr(os, name)


def _state(task) -> dict:
    """What must not change when okstra refuses: every file okstra keeps (the registry
    by its rows), refs and worktrees."""
    import sqlite3

    from okstra_engine.locations import okstra_home
    from okstra_engine.registry import registry_path

    files = {}
    for root in (task.project.root / ".okstra", okstra_home()):
        for path in sorted(root.rglob("*")) if root.is_dir() else []:
            rel = str(path)
            if "/worktrees/" in rel or "/locks/" in rel or path.name.startswith("registry.sqlite3"):
                continue
            files[rel] = path.read_bytes() if path.is_file() else "dir"
    # immutable: a read that needs no `-shm` file, so it works on the full disk too
    with closing(sqlite3.connect(f"{registry_path().resolve().as_uri()}?immutable=1", uri=True)) as conn:
        rows = sorted(map(repr, conn.execute("SELECT * FROM worktrees").fetchall()))
    git = lambda *a: subprocess.run(["git", *a], cwd=task.project.root, capture_output=True, text=True).stdout  # noqa: E731
    return {
        "files": files,
        "rows": rows,
        "refs": git("for-each-ref"),
        "worktrees": git("worktree", "list", "--porcelain"),
    }


def _diff(a: dict, b: dict) -> list[str]:
    out = [k for k in ("rows", "refs", "worktrees") if a[k] != b[k]]
    files = sorted(k for k in a["files"].keys() | b["files"].keys() if a["files"].get(k) != b["files"].get(k))
    return out + files


def _refused(outcome, *words: str) -> None:
    assert outcome.rc == 2, (outcome.rc, outcome.err)
    assert "Traceback" not in outcome.err and "unexpected error" not in outcome.err, outcome.err
    for word in words:
        assert word in outcome.err, (word, outcome.err)
    assert "fix:" in outcome.err


@pytest.fixture
def started(repo: Path, tmp_path: Path):
    """Task auth/login of four independent stages, stage 1 prepared (task worktree,
    registry, ledger)."""
    from okstra_engine.plans import import_plan
    from okstra_engine.projects import init_project
    from okstra_engine.slugs import TaskRef
    from okstra_engine.tasks import new_task

    project, _ = init_project(repo, qa_commands=["true"])
    task = new_task(project, TaskRef.parse(TASK), title="Login")
    source = tmp_path / "stage-map.json"
    source.write_text(json.dumps({"stages": [{"stage": n, "title": f"S{n}", "depends_on": []} for n in range(1, 5)]}))
    import_plan(task, source, approve=True)
    assert cli("--project", str(repo), "prepare", TASK, "--type", "implementation").rc == 0
    return task


# ---------------------------------------------------------------------------- in this process


@pytest.mark.parametrize("how", ["nothing-written", "half-written"])
def test_record_on_a_full_disk_leaves_the_ledger_as_it_was(started, how) -> None:
    ledger = plan_run_root(started).dir / LEDGER_NAME
    before = ledger.read_bytes()

    def write(fd, data):
        if how == "nothing-written":
            raise OSError(errno.ENOSPC, "No space left on device")
        return os.write(fd, data[: len(data) // 2])  # the disk took half the line

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fsio, "os", _Os(write=write))
        outcome = cli("--project", str(started.project.root), "record", TASK, "--stage", "1", "--status", "started")
    _refused(outcome, "No space left on device")
    assert ledger.read_bytes() == before
    assert cli("--project", str(started.project.root), "record", TASK, "--stage", "1", "--status", "started").rc == 0


@pytest.mark.parametrize("fails", ["replace", "write", "open"])
def test_prepare_on_a_full_disk_makes_nothing(started, fails) -> None:
    """The run dir's files (atomic writes), or the reservation (the append), cannot be
    written: the stage worktree it made is taken back, and nothing is left."""
    before = _state(started)

    def no_space(*_a, **_k):
        raise OSError(errno.ENOSPC, "No space left on device")

    def append_open(path, flags, *rest):
        if flags & os.O_APPEND:
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return os.open(path, flags, *rest)

    replaced = {"replace": {"replace": no_space}, "write": {"write": no_space}, "open": {"open": append_open}}[fails]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fsio, "os", _Os(**replaced))
        outcome = cli("--project", str(started.project.root), "prepare", TASK, "--type", "implementation")
    _refused(outcome, "Read-only file system" if fails == "open" else "No space left on device")
    assert _diff(before, _state(started)) == []
    assert not list(started.project.root.joinpath(".okstra").rglob("*.tmp"))
    nxt = cli("--project", str(started.project.root), "prepare", TASK, "--type", "implementation")
    assert nxt.rc == 0, nxt.err
    assert check(World(started.project.root, TASK), settled=True).violations == []


# ---------------------------------------------------------------------------- a real small disk


def _mount(point: Path, size: str) -> bool:
    point.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return False
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", f"okstra-test-{uuid.uuid4().hex[:6]}", str(point)],
        capture_output=True,
    )
    return proc.returncode == 0


@pytest.fixture
def small_disk(tmp_path: Path, monkeypatch):
    """A 4 MB tmpfs holding okstra home, the agent home and the project."""
    point = tmp_path / "disk"
    if not _mount(point, "4m"):
        pytest.skip("cannot mount a tmpfs here (needs root and mount)")
    monkeypatch.setenv("OKSTRA_HOME", str(point / "okstra-home"))
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(point / "agent-home"))
    try:
        yield point
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(point)], capture_output=True)
        if subprocess.run(["umount", str(point)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(point)], capture_output=True)


def _fill(point: Path) -> Path:
    filler = point / "filler"
    # unbuffered: a buffered file keeps the part of its last chunk the disk refused, and
    # raises ENOSPC again when it closes (whether it does depends on the free space)
    with filler.open("wb", buffering=0) as handle:
        chunk = b"\0" * 65536
        try:
            while True:
                handle.write(chunk)
                handle.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    # the last few blocks too: a small file each, until nothing fits
    n = 0
    while True:
        try:
            (point / f"filler-{n}").write_bytes(b"\0" * 512)
            n += 1
        except OSError:
            break
    return filler


def _world_on(point: Path, plan_text: str):
    from okstra_engine.config import settings
    from okstra_engine.plans import import_plan
    from okstra_engine.projects import init_project
    from okstra_engine.slugs import TaskRef
    from okstra_engine.tasks import new_task
    from tests.reliability.harness import make_team
    from tests.support import make_repo

    settings.cache_clear()
    repo = make_repo(point / "repo")
    project, _ = init_project(repo, qa_commands=["true"])
    task = new_task(project, TaskRef.parse(TASK), title="Login")
    plan = point / "plan.md"
    plan.write_text(plan_text)
    import_plan(task, plan, approve=True)
    assert cli("--project", str(repo), "prepare", TASK, "--type", "implementation").rc == 0
    team = "okstra-auth-login-s9"
    files = make_team(team, 1)
    return task, team, files


@pytest.mark.slow
def test_a_full_disk_then_a_read_only_one(small_disk: Path) -> None:
    plan = "# Plan\n\n## Stage Map\n| Stage | Title | Depends on | Group |\n|---|---|---|---|\n" + "".join(
        f"| {n} | S{n} | - | A |\n" for n in range(1, 7)
    )
    task, team, files = _world_on(small_disk, plan)
    repo = task.project.root
    p = ["--project", str(repo)]
    world = World(repo, TASK, teams={team: files})
    ledger = plan_run_root(task).dir / LEDGER_NAME

    # ---- full
    filler = _fill(small_disk)
    # a row fits while the ledger's last block has room; then the disk says no
    for attempt in range(200):  # noqa: B007 - read after the loop
        last = ledger.read_bytes()
        outcome = cli(*p, "record", TASK, "--stage", "1", "--status", "started")
        if outcome.rc != 0:
            break
    _refused(outcome, "No space left on device")
    assert attempt > 0 or ledger.read_bytes() == last
    assert ledger.read_bytes() == last and last.endswith(b"\n")
    from okstra_engine.ledger import read_ledger

    assert read_ledger(ledger).warnings == []
    before = _state(task)
    outcome = cli(*p, "prepare", TASK, "--type", "implementation", "--json")
    _refused(outcome)
    assert outcome.out == "" and any(w in outcome.err for w in ("No space left", "disk is full", "disk space")), (
        outcome.err
    )
    assert _diff(before, _state(task)) == []
    # the trash is on the full disk too: the move fails or (renames need no space) works;
    # either way every file of the team is whole in one of the two places (checked below)
    moved = cli("quarantine", "move", team, "--yes")
    assert moved.rc in (0, 2) and "Traceback" not in moved.err and "unexpected error" not in moved.err, moved.err
    status = cli(*p, "status", TASK, "--json")
    assert status.rc == 0, status.err  # reading needs no space
    assert [s["state"] for s in json.loads(status.out)["stages"]][:1] == ["in-flight"]
    assert check(world, settled=False).violations == []
    for name in list(small_disk.glob("filler*")):
        name.unlink()
    assert not list(small_disk.rglob("*.tmp")) and not list(small_disk.rglob(".*.okstra-partial"))

    # ---- space back: the next commands work, and everything is settled
    nxt = cli(*p, "prepare", TASK, "--type", "implementation")
    assert nxt.rc == 0, nxt.err
    if moved.rc == 2:
        assert cli("quarantine", "move", team, "--yes").rc == 0
    assert check(world, settled=True).violations == []

    # ---- read-only
    before = _state(task)
    assert subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], capture_output=True).returncode == 0
    try:
        _refused(cli(*p, "record", TASK, "--stage", "2", "--status", "started"), "Read-only file system")
        outcome = cli(*p, "prepare", TASK, "--type", "implementation")
        _refused(outcome)
        assert "Read-only" in outcome.err or "read-only" in outcome.err or "readonly" in outcome.err, outcome.err
        status = cli(*p, "status", TASK, "--json")
        assert status.rc in (0, 2) and "Traceback" not in status.err and "unexpected error" not in status.err, (
            status.err
        )
    finally:
        assert subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], capture_output=True).returncode == 0
    assert _diff(before, _state(task)) == []
    assert cli(*p, "record", TASK, "--stage", "2", "--status", "started").rc == 0
    assert check(world, settled=True).violations == []
    assert filler  # (kept for the reader: the disk was filled to its last block above)


@pytest.mark.slow
def test_a_handoff_on_a_full_disk_leaves_no_half_written_file(small_disk: Path) -> None:
    """git gives up a merge half-way when the disk fills: the files it had begun to write
    into the task worktree go with the rest of the merge, and the next handoff works."""
    from okstra_engine.record import record
    from okstra_engine.worktrees import stage_target, task_target
    from tests.support import commit, git

    plan = "# Plan\n\n## Stage Map\n| Stage | Title | Depends on | Group |\n|---|---|---|---|\n| 1 | S1 | - | A |\n"
    task, _team, _files = _world_on(small_disk, plan)
    repo = task.project.root
    stage_wt, task_wt = stage_target(task, 1).path, task_target(task).path
    big = os.urandom(700 * 1024)  # does not compress: the merge must write all of it
    (stage_wt / "data").mkdir()
    (stage_wt / "data" / "blob.bin").write_bytes(big)
    git(stage_wt, "add", "data/blob.bin")
    sha = commit(stage_wt, {"small.txt": "small\n"}, "stage 1")
    record(task, 1, "done", commit=sha)
    with (repo / ".git" / "info" / "exclude").open("a") as exclude:
        exclude.write("*.local\n")
    (task_wt / "notes.local").write_text("mine\n")  # the person's own ignored file stays
    head = git(task_wt, "rev-parse", "HEAD")

    filler = _fill(small_disk)
    # room for okstra's journal and the merge's small objects, not for the big file
    os.truncate(filler, filler.stat().st_size - 300 * 1024)
    outcome = cli("--project", str(repo), "handoff", TASK, "--group", "A", "--merge")
    _refused(outcome)
    assert git(task_wt, "rev-parse", "HEAD") == head
    assert not (task_wt / "data").exists() and not (task_wt / "small.txt").exists()
    assert (task_wt / "notes.local").read_text() == "mine\n"
    for name in list(small_disk.glob("filler*")):
        name.unlink()

    nxt = cli("--project", str(repo), "handoff", TASK, "--group", "A", "--merge")
    assert nxt.rc == 0, nxt.err
    assert (task_wt / "data" / "blob.bin").read_bytes() == big
