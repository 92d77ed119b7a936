"""The one invariant checker every reliability test uses.

`check(world, settled=...)` looks at everything okstra keeps for one project, task and
agent home, and returns the violations (empty: all is well). Two levels:

- always — right after a SIGKILL anywhere, before any repair:
  the ledger and `handoffs.jsonl` parse, and a skipped line is only ever a torn one (a
  prefix of a row, never a whole row that fails validation); no stage was reserved while
  in flight; every reservation points at a complete run dir and a registered stage
  worktree; every whole-file document okstra wrote (project, task, run manifests, carry
  sidecars, QA manifest, project list, trash manifests) is complete and valid; the task
  mutex and okstra's other locks are free; the registry passes SQLite's integrity check;
  every file of every team is complete in the agent home or the trash (at least once);
- settled — after the next command ran (it repairs what a kill left, and says so):
  no prunable, half-made or missing worktree; every `okstra/…` branch is checked out in
  a worktree; every registry row has its worktree and every okstra worktree its row; no
  git operation or lock file left in the repository; no unfinished quarantine and no
  staging copy; each team's files are in exactly one place.

Litter that harms nothing (a hidden temp file of an interrupted atomic write, an empty
trash folder a move died before writing its manifest into) is counted in `stats`, not
reported as a violation.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from okstra_engine.carry import CarrySidecar
from okstra_engine.errors import OkstraError
from okstra_engine.ledger import IN_FLIGHT, LEDGER_NAME, parse_ledger
from okstra_engine.locations import agent_home, okstra_home

GIT_ENV_DROP = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_CONFIG_PARAMETERS")


@dataclass
class World:
    """What to look at: a project (and one task of it), and the teams expected to exist."""

    repo: Path | None = None
    task: str | None = None
    """`GROUP/ID`."""
    teams: dict[str, dict[str, bytes | str]] = field(default_factory=dict)
    """team → {`teams/TEAM/…` or `tasks/TEAM/…`: bytes (a file) or `-> target` (a link)}."""
    damaged_qa_manifest: bool = False
    """The test damaged the QA manifest on purpose (it is not checked)."""


@dataclass
class Report:
    violations: list[str] = field(default_factory=list)
    stats: Counter = field(default_factory=Counter)

    def bad(self, text: str) -> None:
        self.violations.append(text)


def git(repo: Path, *args: str, check: bool = True) -> str:
    env = {k: v for k, v in os.environ.items() if k not in GIT_ENV_DROP}
    proc = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed in {repo}: {proc.stderr.strip()}")
    return proc.stdout


def check(world: World, *, settled: bool) -> Report:
    report = Report()
    task = _load_task(world, report)
    if task is not None:
        _task_documents(task, report, check_qa=not world.damaged_qa_manifest)
        _ledgers(task, report)
        _locks_free(task, report)
    _registry(report)
    _trash_and_teams(world, report, settled=settled)
    if settled and world.repo is not None and (world.repo / ".git").exists():
        _git_state(world, task, report)
    _litter(world, report)
    return report


# ---------------------------------------------------------------------------- documents


def _load_task(world: World, report: Report):
    if world.repo is None or world.task is None:
        return None
    from okstra_engine.projects import list_projects, load_project
    from okstra_engine.slugs import TaskRef
    from okstra_engine.tasks import load_task

    try:
        list_projects()
        return load_task(load_project(world.repo), TaskRef.parse(world.task))
    except (OkstraError, FileNotFoundError) as exc:
        report.bad(f"project/task documents: {exc}")
        return None


def _task_documents(task, report: Report, *, check_qa: bool = True) -> None:
    from okstra_engine.conformance import ConformanceManifest, manifest_path
    from okstra_engine.documents import load_doc
    from okstra_engine.runs import RunManifest

    runs = task.runs_dir
    for run in sorted(runs.iterdir()) if runs.is_dir() else []:
        if run.name.startswith("."):
            report.stats["hidden run staging dirs"] += 1
            continue
        if not run.is_dir():
            continue
        try:
            manifest = load_doc(run / "manifest.json", RunManifest)
        except (OkstraError, FileNotFoundError) as exc:
            report.bad(f"run {run.name}: manifest: {exc}")
            continue
        needed = ["plan.md"] if manifest.task_type == "planning" else ["prompt.md"]
        for name in needed:
            if not (run / name).is_file():
                report.bad(f"run {run.name}: {name} is missing (a run dir appeared incomplete)")
    try:
        plan = _plan_dir(task)
    except OkstraError as exc:
        report.bad(f"plan: {exc}")
        return
    carry = plan / "carry" if plan else None
    for path in sorted(carry.glob("stage-*.json")) if carry and carry.is_dir() else []:
        try:
            CarrySidecar.model_validate_json(path.read_bytes())
        except Exception as exc:  # noqa: BLE001 - any failure is the finding
            report.bad(f"carry {path.name}: {exc}")
    path = manifest_path(task.dir)
    if check_qa and path.exists():
        try:
            load_doc(path, ConformanceManifest)
        except OkstraError as exc:
            report.bad(f"QA manifest: {exc}")


def _plan_dir(task) -> Path | None:
    from okstra_engine.plans import plan_run_root

    plan = plan_run_root(task)
    if plan is not None:
        plan.stage_map()
    return plan.dir if plan else None


# ---------------------------------------------------------------------------- ledgers


def _ledgers(task, report: Report) -> None:
    from okstra_engine.handoff import read_handoffs

    plan = _plan_dir(task)
    if plan is None:
        return
    ledger = plan / LEDGER_NAME
    data = ledger.read_bytes() if ledger.exists() else b""
    read = parse_ledger(data)
    for warning in read.warnings:
        if "torn write" in warning or "not valid JSON" in warning:
            report.stats["torn ledger lines"] += 1
        else:
            report.bad(f"ledger: a whole line was skipped: {warning}")
    report.stats["ledger rows"] = len(read.rows)
    report.stats["ledger ends in a torn line"] = int(bool(data) and not data.endswith(b"\n"))
    state: dict[int, str] = {}
    for no, row in enumerate(read.rows, 1):
        if row.status == "reserved" and state.get(row.stage) in IN_FLIGHT:
            report.bad(f"ledger: stage {row.stage} reserved again while in flight (row {no}, run {row.run_id})")
        state[row.stage] = row.status
    latest = {}
    for row in read.rows:
        latest[row.stage] = row
    from okstra_engine import registry
    from okstra_engine.worktrees import task_slot

    registered = registry.task_worktrees(task_slot(task)) if task.project.is_git else {}
    for stage, row in sorted(latest.items()):
        if row.status not in IN_FLIGHT or not row.run_id:
            continue
        run = task.runs_dir / row.run_id
        if not (run / "manifest.json").is_file():
            report.bad(f"stage {stage} is reserved by run {row.run_id}, whose run dir is missing or incomplete")
        if task.project.is_git and stage not in registered:
            report.bad(f"stage {stage} is reserved by run {row.run_id}, but its worktree is not registered")
    handoffs = read_handoffs(plan)
    tail = plan / "handoffs.jsonl"
    report.stats["handoffs.jsonl ends in a torn line"] = int(tail.exists() and not tail.read_bytes().endswith(b"\n"))
    for warning in handoffs.warnings:
        if "torn write" in warning or "not valid JSON" in warning:
            report.stats["torn handoff lines"] += 1
        else:
            report.bad(f"handoffs.jsonl: a whole line was skipped: {warning}")


# ---------------------------------------------------------------------------- locks, registry


def _free(path: Path) -> bool:
    if not path.exists():
        return True
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def _locks_free(task, report: Report) -> None:
    from okstra_engine.locks import task_lock_path

    home = okstra_home()
    for path in (
        task_lock_path(task),
        home / "locks" / "quarantine.lock",
        home / "locks" / "projects.lock",
    ):
        if not _free(path):
            report.bad(f"lock {path} is still held")


def _registry(report: Report) -> None:
    from okstra_engine.registry import registry_path

    path = registry_path()
    if not path.exists():
        return
    wal = path.with_name(path.name + "-wal")
    try:
        try:
            conn = sqlite3.connect(path, timeout=15)
            verdict = conn.execute("PRAGMA integrity_check").fetchone()[0]
        except sqlite3.OperationalError as exc:
            # a full or read-only disk: WAL cannot share; read the whole file as it is
            if ("disk I/O" not in str(exc) and "unable to open" not in str(exc)) or (
                wal.exists() and wal.stat().st_size
            ):
                raise
            conn = sqlite3.connect(f"{path.resolve().as_uri()}?immutable=1", uri=True)
            verdict = conn.execute("PRAGMA integrity_check").fetchone()[0]
        try:
            conn.execute("SELECT count(*) FROM worktrees").fetchone()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        if "no such table" in str(exc):
            return  # its creator died before the schema: the next writer makes it
        report.bad(f"registry {path}: {exc}")
        return
    if verdict != "ok":
        report.bad(f"registry {path}: integrity check says {verdict}")


# ---------------------------------------------------------------------------- teams and trash


def tree(root: Path) -> dict[str, bytes | str]:
    """Every file (bytes) and link (`-> target`) under `root`, by path relative to it."""
    found: dict[str, bytes | str] = {}
    if not root.is_dir():
        return found
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                found[rel] = "-> " + os.readlink(path)
            elif path.is_file():
                found[rel] = path.read_bytes()
    return found


def _trash_and_teams(world: World, report: Report, *, settled: bool) -> None:
    from okstra_engine.quarantine import MANIFEST_NAME, STAMP_RE, load_entry, trash_root

    root = trash_root()
    entries = {}
    for child in sorted(root.iterdir()) if root.is_dir() else []:
        if not STAMP_RE.fullmatch(child.name):
            continue
        if not (child / MANIFEST_NAME).exists():
            # a move that died before its manifest was on disk moved nothing into it
            extra = [p.name for p in child.iterdir() if not (p.name.startswith(".") and p.name.endswith(".tmp"))]
            if extra:
                report.bad(f"trash entry {child.name} holds {extra} but has no manifest")
            report.stats["trash dirs without manifest"] += 1
            continue
        try:
            entries[child.name] = load_entry(child.name)
        except OkstraError as exc:
            report.bad(f"trash entry {child.name}: {exc}")
    for dirpath, dirnames, _ in os.walk(root) if root.is_dir() else []:
        for name in dirnames:
            if name.endswith(".okstra-partial"):
                report.stats["staging copies"] += 1
                if settled:
                    report.bad(f"a staging copy was left in the trash: {Path(dirpath) / name}")
    if settled:
        for stamp, entry in entries.items():
            if entry.state in ("moving", "restoring"):
                report.bad(f"quarantine {stamp} of {entry.team} is still {entry.state}")
    home = agent_home()
    for team, files in world.teams.items():
        places: list[tuple[str, dict]] = []
        for kind in ("teams", "tasks"):
            found = tree(home / kind / team)
            if found or (home / kind / team).exists():
                places.append((f"agent home {kind}", {f"{kind}/{team}/{k}": v for k, v in found.items()}))
        for stamp, entry in entries.items():
            if entry.team != team:
                continue
            for kind in ("teams", "tasks"):
                found = tree(entry.dir / kind / team)
                if found or (entry.dir / kind / team).exists():
                    places.append((f"trash {stamp} {kind}", {f"{kind}/{team}/{k}": v for k, v in found.items()}))
        seen: Counter = Counter()
        for where, found in places:
            for rel, content in found.items():
                if rel not in files and not rel.endswith("/") and not _is_dir_entry(files, rel):
                    report.bad(f"team {team}: {where} holds {rel}, which the team never had")
                elif rel in files and content != files[rel]:
                    report.bad(f"team {team}: {where} holds {rel} with other content (a partial copy at a final name)")
                elif rel in files:
                    seen[rel] += 1
        for rel in files:
            if seen[rel] == 0:
                report.bad(f"team {team}: {rel} is lost (neither in the agent home nor in the trash)")
            elif settled and seen[rel] > 1:
                report.bad(f"team {team}: {rel} is in {seen[rel]} places after the next command")


def _is_dir_entry(files: dict, rel: str) -> bool:
    prefix = rel + "/"
    return any(name.startswith(prefix) for name in files)


# ---------------------------------------------------------------------------- git


def worktree_entries(repo: Path) -> list[dict[str, str]]:
    entries, current = [], {}
    for field_ in git(repo, "worktree", "list", "--porcelain", "-z").split("\0"):
        if not field_:
            if current:
                entries.append(current)
                current = {}
            continue
        key, _, value = field_.partition(" ")
        current[key] = value
    if current:
        entries.append(current)
    return entries


def _git_state(world: World, task, report: Report) -> None:
    from okstra_engine import registry
    from okstra_engine.worktrees import task_slot

    repo = world.repo
    entries = worktree_entries(repo)
    listed = {}
    for e in entries:
        path = Path(e["worktree"])
        listed[os.path.realpath(path)] = e
        if "prunable" in e:
            report.bad(f"worktree {path} is prunable ({e['prunable']})")
        if e.get("locked") == "initializing":
            report.bad(f"worktree {path} is half-made (locked initializing)")
        if not (path / ".git").exists():
            report.bad(f"worktree {path} is listed by git but its folder is gone")
    by_branch = {e.get("branch"): e for e in entries if "branch" in e}
    for ref in git(repo, "for-each-ref", "--format=%(refname)", "refs/heads/okstra/").split():
        if ref not in by_branch:
            report.bad(f"branch {ref.removeprefix('refs/heads/')} has no worktree")
    worktrees_root = os.path.realpath(okstra_home() / "worktrees")
    ours = {p: e for p, e in listed.items() if p.startswith(worktrees_root + os.sep)}
    rows = registry.task_worktrees(task_slot(task)) if task is not None else {}
    registered = {os.path.realpath(r.path): r for r in rows.values()}
    for path, row in registered.items():
        e = listed.get(path)
        if e is None:
            report.bad(f"registry row for stage {row.stage} names {path}, which is no worktree")
        elif e.get("branch") != f"refs/heads/{row.branch}":
            report.bad(
                f"registry row for stage {row.stage}: {path} has {e.get('branch')} checked out, not {row.branch}"
            )
    for path in ours:
        if path not in registered:
            report.bad(f"worktree {path} is not in the registry")
    common = Path(git(repo, "rev-parse", "--git-common-dir").strip())
    common = common if common.is_absolute() else repo / common
    for lock in common.rglob("*.lock"):
        report.bad(f"git lock file left behind: {lock}")
    from okstra_engine.git import _IN_PROGRESS

    for e in entries:  # read git's files directly: one git process per worktree adds up
        path = Path(e["worktree"])
        dot_git = path / ".git"
        if dot_git.is_file():
            own = Path(dot_git.read_text().partition("gitdir:")[2].strip())
            own = own if own.is_absolute() else path / own
        elif dot_git.is_dir():
            own = dot_git
        else:
            continue
        busy = next((what for name, what in _IN_PROGRESS if (own / name).exists()), None)
        if busy:
            report.bad(f"{busy} is in progress in {path}")


# ---------------------------------------------------------------------------- litter


def _litter(world: World, report: Report) -> None:
    roots = [okstra_home(), agent_home()]
    if world.repo is not None:
        roots.append(world.repo / ".okstra")
    for root in roots:
        if root.is_dir():
            report.stats["temp files of interrupted writes"] += sum(1 for p in root.rglob(".*.tmp") if p.is_file())
