"""Agent team state quarantine: move a leftover `okstra-*` team out of the agent's way.

A team that an earlier attempt left behind in the agent home (`teams/TEAM/`, with its
task list in `tasks/TEAM/`) blocks the next team creation. okstra never deletes it: it
moves both into `<okstra home>/trash/<UTC-STAMP>/`, beside a manifest of where each came
from, and can move them back.

Layout of one trash entry::

    <okstra home>/trash/20260610T120000Z/manifest.json
    <okstra home>/trash/20260610T120000Z/teams/okstra-auth-login-0b215053-s2/
    <okstra home>/trash/20260610T120000Z/tasks/okstra-auth-login-0b215053-s2/

Crash safety. The manifest is written, marked `moving` (or `restoring`), before anything
moves. Each directory moves by `fsio.move_tree`, which never leaves a final name holding
less than a complete copy, even across file systems. A crash leaves the manifest in `moving`/`restoring`; `list_teams`
shows the half-done move (`pending_stamp`), and a later `move_team` (same team) or
`restore` (same stamp) finishes it: when both places hold the directory, the one that is a
byte-identical subset of the other is the leftover of the interrupted removal and goes.

Move and restore each plan first (`plan_move`, `plan_restore`: what the approval shows,
and the refusals) and then run exactly the planned steps, under one lock in the okstra
home.

- Ownership: a stage's team (`teams.team_name(project, task, N)`) is owned when that
  registered project's task has stage N in flight and not stale in its ledger; the task's
  team (no `-s<N>`) is owned when any stage of that task is. Stale reservations do
  not own a team (they are reported as `stale_run`). Unreadable projects are skipped.
- Only directories are team state; a file, a symlink or a special file at a team path is
  refused (and listed, not offered, with the reason).
- Restore goes back to the paths the manifest recorded, and only when the manifest's
  agent home is the current one (`CLAUDE_CONFIG_DIR`), so nothing is written outside it.
  A restored entry stays in the trash as its manifest, marked `restored`.
- Stamps are `YYYYMMDDTHHMMSSZ` (UTC), with `-2`, `-3`… when two moves share a second.
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict

from . import clock, faults, fsio
from .documents import Doc, load_doc, save_doc
from .errors import OkstraError
from .ledger_state import read_state
from .locations import agent_home, okstra_home
from .locks import file_lock
from .run_folder import LEDGER_NAME
from .teams import TEAM_PREFIX, TEAM_RE, check_team_name, team_name

Kind = Literal["teams", "tasks"]
KINDS: tuple[Kind, ...] = ("teams", "tasks")
MANIFEST_NAME = "manifest.json"

STAMP_RE = re.compile(r"[0-9]{8}T[0-9]{6}Z(?:-[0-9]{1,4})?")


# --------------------------------------------------------------------------- names


def check_stamp(stamp: str) -> str:
    if not isinstance(stamp, str) or not STAMP_RE.fullmatch(stamp):
        raise OkstraError(
            f"invalid trash stamp {stamp!r}: it looks like 20260610T120000Z",
            "see the stamps with: okstra quarantine list",
        )
    return stamp


def trash_root() -> Path:
    return okstra_home() / "trash"


# --------------------------------------------------------------------------- manifest


class TrashItem(Doc):
    model_config = ConfigDict(extra="allow")

    kind: Kind
    source: str
    """The original absolute path under the agent home."""
    moved_to: str
    """Where it went, relative to the trash entry (`teams/TEAM`)."""
    state: Literal["pending", "moved", "restored"] = "pending"


EntryState = Literal["moving", "moved", "restoring", "restored"]


class TrashEntry(Doc):
    """One quarantine: the manifest in `<okstra home>/trash/<stamp>/manifest.json`."""

    model_config = ConfigDict(extra="allow")

    v: int = 1
    stamp: str
    team: str
    agent_home: str
    state: EntryState
    created: str
    updated: str | None = None
    items: list[TrashItem] = []

    @property
    def dir(self) -> Path:
        return trash_root() / self.stamp

    def trashed_path(self, item: TrashItem) -> Path:
        return self.dir / item.kind / self.team

    @property
    def complete(self) -> bool:
        return self.state in ("moved", "restored")

    def to_json(self) -> dict[str, Any]:
        doc = self.model_dump(mode="json")
        doc["dir"] = str(self.dir)
        return doc


def _save_entry(entry: TrashEntry) -> None:
    entry.updated = clock.iso()
    save_doc(entry.dir / MANIFEST_NAME, entry)


def load_entry(stamp: str) -> TrashEntry:
    check_stamp(stamp)
    root = trash_root()
    entry_dir = root / stamp
    if entry_dir.is_symlink() or root.is_symlink():
        raise OkstraError(
            f"{entry_dir} is a symlink; okstra does not follow links in its trash", "remove the link by hand"
        )
    path = entry_dir / MANIFEST_NAME
    try:
        entry = load_doc(path, TrashEntry)
    except FileNotFoundError:
        raise OkstraError(
            f"no trash entry {stamp} (no {path})", "see the stamps with: okstra quarantine list"
        ) from None
    if entry.stamp != stamp:
        raise OkstraError(
            f"{path}: field 'stamp' is {entry.stamp!r}, but the entry is {stamp}", "fix or restore the manifest"
        )
    check_team_name(entry.team)
    if "\0" in entry.agent_home or not Path(entry.agent_home).is_absolute():
        raise OkstraError(
            f"{path}: field 'agent_home' is not an absolute path: {entry.agent_home!r}", "fix or restore the manifest"
        )
    for item in entry.items:
        if item.moved_to != f"{item.kind}/{entry.team}" or item.source != str(
            Path(entry.agent_home) / item.kind / entry.team
        ):
            raise OkstraError(
                f"{path}: item {item.kind} does not name {item.kind}/{entry.team} under {entry.agent_home}",
                "the manifest was edited; fix it or move the directories back by hand",
            )
    return entry


def list_trash() -> list[TrashEntry]:
    """Every trash entry with a readable manifest, newest first."""
    root = trash_root()
    if not root.is_dir() or root.is_symlink():
        return []
    entries = []
    for child in sorted(root.iterdir(), reverse=True):
        if not STAMP_RE.fullmatch(child.name) or not (child / MANIFEST_NAME).is_file():
            continue
        try:
            entries.append(load_entry(child.name))
        except OkstraError:
            continue
    return entries


# --------------------------------------------------------------------------- ownership


@dataclass(frozen=True)
class Owner:
    """The run whose reservation names a team."""

    run_id: str | None
    project_id: str
    project_root: Path
    task: str
    stage: int
    stale_reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "project": self.project_id,
            "project_root": str(self.project_root),
            "task": self.task,
            "stage": self.stage,
            "stale_reason": self.stale_reason,
        }


def team_owners() -> tuple[dict[str, Owner], dict[str, Owner]]:
    """(owned, stale): team name → the reservation in flight that names it.

    Every registered project's tasks are read: a task's reservations of stage N name
    `okstra-<key>-s<N>` and `okstra-<key>`. Projects or tasks that cannot be read are
    skipped: they cannot be running anything okstra can see.
    """
    from .config import settings
    from .plans import plan_run_root
    from .projects import list_projects, load_project
    from .tasks import list_tasks, load_task

    ttl = settings().stale_ttl_hours
    owned: dict[str, Owner] = {}
    stale: dict[str, Owner] = {}
    for known in list_projects():
        root = Path(known.path)
        try:
            if not root.is_dir():
                continue
            project = load_project(root)
            refs = list_tasks(project)
        except (OkstraError, OSError):
            continue
        for ref in refs:
            try:
                plan = plan_run_root(load_task(project, ref))
                if plan is None:
                    continue
                ledger = read_state(plan.dir / LEDGER_NAME)
            except (OkstraError, OSError):
                continue
            for stage, res in sorted(ledger.reservations(ttl_hours=ttl).items()):
                owner = Owner(res.run_id, project.id, project.root, str(ref), stage, res.stale_reason)
                target = stale if res.stale else owned
                target.setdefault(team_name(project.id, ref, stage), owner)
                target.setdefault(team_name(project.id, ref), owner)
    return owned, stale


# --------------------------------------------------------------------------- listing


@dataclass(frozen=True)
class TeamInfo:
    team: str
    paths: list[Path]
    owner: Owner | None = None
    """The in-flight (not stale) run that owns the team: never offered."""
    stale_owner: Owner | None = None
    problem: str | None = None
    """Why the team cannot be moved, apart from ownership (bad name, symlink, not a dir)."""
    pending_stamp: str | None = None
    """A move of this team that did not finish (a crash): rerun the move or restore it."""

    @property
    def owned_by_run(self) -> str | None:
        return self.owner.run_id if self.owner else None

    @property
    def offered(self) -> bool:
        return self.owner is None and self.problem is None

    def to_json(self) -> dict[str, Any]:
        return {
            "team": self.team,
            "paths": [str(p) for p in self.paths],
            "owned_by_run": self.owned_by_run,
            "offered": self.offered,
            "owner": self.owner.to_json() if self.owner else None,
            "stale_run": self.stale_owner.run_id if self.stale_owner else None,
            "problem": self.problem,
            "pending_stamp": self.pending_stamp,
        }


def list_teams() -> list[TeamInfo]:
    """The `okstra-*` entries under the agent home's `teams/` and `tasks/`, by name."""
    home = agent_home()
    names: set[str] = set()
    for kind in KINDS:
        folder = home / kind
        try:
            names.update(e.name for e in os.scandir(folder) if e.name.startswith(TEAM_PREFIX))
        except (FileNotFoundError, NotADirectoryError):
            continue
    if not names:
        return []
    owned, stale = team_owners()
    pending = _pending_moves()
    infos = []
    for name in sorted(names):
        paths = [home / kind / name for kind in KINDS if os.path.lexists(home / kind / name)]
        problem = None
        if not TEAM_RE.fullmatch(name) or ".." in name:
            problem = "not an okstra team name (okstra-GROUP-ID or okstra-GROUP-ID-sN)"
        else:
            try:
                _team_sources(name)
            except OkstraError as exc:
                problem = exc.what
        infos.append(TeamInfo(name, paths, owned.get(name), stale.get(name), problem, pending.get(name)))
    return infos


def _pending_moves() -> dict[str, str]:
    """team → stamp of its newest move that did not finish."""
    found: dict[str, str] = {}
    for entry in list_trash():
        if entry.state == "moving":
            found.setdefault(entry.team, entry.stamp)
    return found


# --------------------------------------------------------------------------- plans


@dataclass(frozen=True)
class MoveStep:
    kind: Kind
    source: Path
    destination: Path
    action: Literal["move", "drop-leftover", "done"]
    """`move`: source goes to destination. `drop-leftover`: the destination already holds
    the complete copy and the source is what an interrupted move left (a byte-identical
    subset of it). `done`: nothing left to do for this path."""

    def describe(self) -> str:
        if self.action == "move":
            return f"{self.source} -> {self.destination}"
        if self.action == "drop-leftover":
            return f"{self.source}: remove the leftover of an interrupted move (complete copy in {self.destination})"
        return f"{self.destination}: already done"


@dataclass(frozen=True)
class MovePlan:
    """What `move_team` does: shown by the approval dialog and the CLI prompt, then run.

    For a new move, `stamp` is the time of planning: `move_team(..., stamp=)` uses it.
    """

    team: str
    stamp: str
    trash_dir: Path
    finishing: list[MoveStep]
    """The steps left of an interrupted move (`pending`), in its own trash entry."""
    fresh: list[MoveStep]
    """Folders that go to a new trash entry."""
    pending: TrashEntry | None = field(default=None, compare=False, repr=False)

    @property
    def resuming(self) -> bool:
        """True when this finishes an earlier move that did not complete."""
        return self.pending is not None

    @property
    def steps(self) -> list[MoveStep]:
        return [*self.finishing, *self.fresh]

    def describe(self) -> list[str]:
        head = (
            f"finish the interrupted quarantine {self.stamp} of {self.team}"
            if self.resuming
            else f"quarantine {self.team} into {self.trash_dir}"
        )
        return [head, *(f"  {step.describe()}" for step in self.steps)]

    def to_json(self) -> dict[str, Any]:
        return {
            "team": self.team,
            "stamp": self.stamp,
            "trash_dir": str(self.trash_dir),
            "resuming": self.resuming,
            "steps": [
                {"kind": s.kind, "source": str(s.source), "destination": str(s.destination), "action": s.action}
                for s in self.steps
            ],
        }


def _team_sources(team: str) -> list[tuple[Kind, Path]]:
    """The team's existing directories under the agent home; OkstraError for anything unsafe."""
    home = agent_home()
    try:
        real_home = home.resolve(strict=False)
    except OSError as exc:
        raise OkstraError(f"cannot resolve the agent home {home}: {exc.strerror}", "check CLAUDE_CONFIG_DIR") from exc
    found = []
    for kind in KINDS:
        path = home / kind / team
        if (home / kind).is_symlink():
            raise OkstraError(
                f"{home / kind} is a symlink; okstra moves nothing out of a linked folder",
                "quarantine it by hand, or replace the link with the folder",
            )
        if path.is_symlink():
            raise OkstraError(
                f"{path} is a symlink; okstra does not move links", "look at where it points and move it by hand"
            )
        if not os.path.lexists(path):
            continue
        if not path.is_dir():
            raise OkstraError(
                f"{path} is not a directory; okstra only moves team folders", "look at it and move it by hand"
            )
        if not path.resolve().is_relative_to(real_home / kind):
            raise OkstraError(f"{path} resolves outside the agent home {real_home}", "move it by hand")
        found.append((kind, path))
    return found


def _check_trash_destination(path: Path) -> Path:
    root = trash_root()
    if root.is_symlink():
        raise OkstraError(
            f"the trash {root} is a symlink; okstra does not write through it", "replace the link with a folder"
        )
    real_root = root.resolve()
    if not path.parent.resolve().is_relative_to(real_root) or path.name in ("", ".", ".."):
        raise OkstraError(f"{path} is outside the trash {root}", "this is a bug: report it")
    return path


def _refuse_if_owned(team: str, by_run: str | None = None) -> None:
    owned, _ = team_owners()
    owner = owned.get(team)
    # the run in flight that owns the name may clear a leftover in its own way
    if owner is not None and (by_run is None or owner.run_id != by_run):
        raise OkstraError(
            f"team {team} belongs to run {owner.run_id or '?'} (task {owner.task}, stage {owner.stage}, project {owner.project_id}), which is in flight",
            f"let that run finish, or release it first: okstra --project {owner.project_root} record {owner.task} --stage {owner.stage} --status released",
        )


def _resume_steps(entry: TrashEntry) -> list[MoveStep]:
    steps = []
    for item in entry.items:
        source, dest = Path(item.source), entry.trashed_path(item)
        _check_trash_destination(dest)
        if dest.is_symlink():
            raise OkstraError(
                f"{dest} is a symlink; okstra does not follow links in its trash", "remove the link by hand"
            )
        here, there = os.path.lexists(source), dest.is_dir()
        if there and here and fsio.is_subset(source, dest):
            steps.append(MoveStep(item.kind, source, dest, "drop-leftover"))
        elif there:
            # complete in the trash; whatever is at the source now is not ours to drop
            steps.append(MoveStep(item.kind, source, dest, "done"))
        elif here:
            steps.append(MoveStep(item.kind, source, dest, "move"))
        else:
            raise OkstraError(
                f"{item.kind}/{entry.team} of quarantine {entry.stamp} is neither at {source} nor at {dest}",
                f"someone moved it; look for it, then fix {entry.dir / MANIFEST_NAME}",
            )
    return steps


def plan_move(team: str, *, by_run: str | None = None) -> MovePlan:
    """What `move_team(team)` moves where. Refuses (OkstraError) what it would refuse;
    `by_run`: the run asking, which may move a team only it owns."""
    check_team_name(team)
    _refuse_if_owned(team, by_run)
    pending = _pending_moves().get(team)
    sources = _team_sources(team)
    if pending is not None:
        entry = load_entry(pending)
        finishing = _resume_steps(entry)
        # what was recreated at a path whose copy is already complete goes to a new entry
        kept = {s.kind for s in finishing if s.action == "done" and os.path.lexists(s.source)}
        kept |= {kind for kind, _ in sources if kind not in {item.kind for item in entry.items}}
        again = trash_root() / clock.stamp()
        fresh = [_fresh_step(again, team, kind, path) for kind, path in sources if kind in kept]
        return MovePlan(team, entry.stamp, entry.dir, finishing, fresh, pending=entry)
    if not sources:
        raise OkstraError(
            f"no team state named {team} under {agent_home()} (teams/ or tasks/)",
            "see the teams with: okstra quarantine list",
        )
    stamp = clock.stamp()
    trash_dir = trash_root() / stamp
    return MovePlan(team, stamp, trash_dir, [], [_fresh_step(trash_dir, team, kind, path) for kind, path in sources])


def _fresh_step(trash_dir: Path, team: str, kind: Kind, source: Path) -> MoveStep:
    return MoveStep(kind, source, _check_trash_destination(trash_dir / kind / team), "move")


# --------------------------------------------------------------------------- moving


def move_team(team: str, *, by_run: str | None = None, stamp: str | None = None) -> TrashEntry:
    """Quarantine `team`: its `teams/` and `tasks/` folders go to a new trash entry.

    Finishes an earlier interrupted move of the same team first; when the team's folders
    still exist after that (recreated since), they go to a new entry. Returns the entry
    that holds what was moved last. `by_run`: the run asking (a lead whose own team's
    name is taken by a leftover), which may move a team only it owns. `stamp`: the new
    entry's, as a `MovePlan` shown to the person said (a later one when it is taken).
    """
    plan_move(team, by_run=by_run)  # refusals come before the lock, so a refused move leaves no trace at all
    with file_lock(okstra_home() / "locks" / "quarantine.lock"):
        plan = plan_move(team, by_run=by_run)
        last = None if plan.pending is None else _run_move(plan.pending, plan.finishing)
        if plan.fresh:
            entry = _claim_entry(team, [(step.kind, step.source) for step in plan.fresh], stamp)
            fresh = [replace(step, destination=entry.dir / step.kind / team) for step in plan.fresh]
            last = _run_move(entry, fresh)
        assert last is not None  # plan_move refuses a move with nothing to do
        return last


def _claim_entry(team: str, sources: list[tuple[Kind, Path]], stamp: str | None = None) -> TrashEntry:
    root = trash_root()
    if root.is_symlink():
        raise OkstraError(
            f"the trash {root} is a symlink; okstra does not write through it", "replace the link with a folder"
        )
    root.mkdir(parents=True, exist_ok=True)
    base = check_stamp(stamp) if stamp is not None else clock.stamp()
    for n in range(1, 10000):
        stamp = base if n == 1 else f"{base}-{n}"
        try:
            (root / stamp).mkdir()
        except FileExistsError:
            continue
        break
    else:  # pragma: no cover - ten thousand moves in one second
        raise OkstraError("too many quarantines in one second", "try again")
    home = agent_home()
    entry = TrashEntry(
        stamp=stamp,
        team=team,
        agent_home=str(home),
        state="moving",
        created=clock.iso(),
        items=[TrashItem(kind=kind, source=str(home / kind / team), moved_to=f"{kind}/{team}") for kind, _ in sources],
    )
    for item in entry.items:
        _check_trash_destination(entry.trashed_path(item))
    # the manifest is on disk before anything moves: a crash can always be finished or undone
    _save_entry(entry)
    return entry


def _run_move(entry: TrashEntry, steps: list[MoveStep]) -> TrashEntry:
    how = f"finish it: okstra quarantine move {entry.team} --yes, or undo it: okstra quarantine restore {entry.stamp}"
    by_kind = {item.kind: item for item in entry.items}
    for step in steps:
        try:
            if step.action == "move":
                step.destination.parent.mkdir(parents=True, exist_ok=True)
                fsio.move_tree(step.source, step.destination, fault_prefix="quarantine")
            elif step.action == "drop-leftover":
                fsio.remove_tree(step.source, fault_prefix="quarantine")
        except OSError as exc:
            raise OkstraError(f"quarantine {entry.stamp} of {entry.team} stopped at {step.source}: {exc}", how) from exc
        faults.point("quarantine.item-moved")
        by_kind[step.kind].state = "moved"
        _save_entry(entry)
    entry.state = "moved"
    _save_entry(entry)
    return entry


# --------------------------------------------------------------------------- restoring


@dataclass(frozen=True)
class RestoreStep:
    kind: Kind
    source: Path
    """In the trash."""
    destination: Path
    """The original path under the agent home."""
    action: Literal["move", "drop-leftover", "replace-leftover", "done"]
    """`drop-leftover`: the original is complete and the trash copy is what an interrupted
    restore left. `replace-leftover`: the trash copy is complete and the original is what
    an interrupted move left; the leftover goes, then the copy moves back."""


@dataclass(frozen=True)
class RestorePlan:
    entry: TrashEntry
    steps: list[RestoreStep] = field(default_factory=list)

    def describe(self) -> list[str]:
        lines = [f"restore {self.entry.team} from {self.entry.dir}"]
        for s in self.steps:
            lines.append(
                f"  {s.source} -> {s.destination}" if s.action != "done" else f"  {s.destination}: already back"
            )
        return lines


def plan_restore(stamp: str) -> RestorePlan:
    """What `restore(stamp)` would do; OkstraError when any path would be refused."""
    entry = load_entry(stamp)
    if entry.state == "restored":
        raise OkstraError(f"quarantine {stamp} of {entry.team} was already restored", "nothing to do")
    home = agent_home()
    if Path(entry.agent_home).resolve() != home.resolve():
        raise OkstraError(
            f"quarantine {stamp} came from the agent home {entry.agent_home}, not {home}",
            f"restore it with that agent home: CLAUDE_CONFIG_DIR={entry.agent_home} okstra quarantine restore {stamp}",
        )
    interrupted = entry.state in ("moving", "restoring")
    steps, refusals = [], []
    for item in entry.items:
        src, dest = entry.trashed_path(item), Path(item.source)
        parent = dest.parent
        if src.is_symlink() or parent.is_symlink() or dest.is_symlink():
            refusals.append(f"{src if src.is_symlink() else parent if parent.is_symlink() else dest} is a symlink")
            continue
        if not parent.resolve().is_relative_to(home.resolve()):
            refusals.append(f"{dest} would leave the agent home {home}")
            continue
        in_trash, at_home = src.is_dir(), os.path.lexists(dest)
        if in_trash and not at_home:
            steps.append(RestoreStep(item.kind, src, dest, "move"))
        elif at_home and not in_trash and interrupted:
            steps.append(RestoreStep(item.kind, src, dest, "done"))
        elif at_home and in_trash and interrupted and dest.is_dir() and fsio.is_subset(src, dest):
            steps.append(RestoreStep(item.kind, src, dest, "drop-leftover"))
        elif at_home and in_trash and interrupted and dest.is_dir() and fsio.is_subset(dest, src):
            steps.append(RestoreStep(item.kind, src, dest, "replace-leftover"))
        elif at_home:
            refusals.append(f"{dest} exists")
        else:
            refusals.append(f"{src} is missing from the trash")
    if refusals:
        raise OkstraError(
            f"restore of {stamp} refused, nothing moved: {'; '.join(refusals)}",
            "move the existing team out of the way first (okstra quarantine move TEAM --yes), then restore",
        )
    return RestorePlan(entry, steps)


def restore(stamp: str) -> TrashEntry:
    """Move a quarantined team back where it came from; the entry is marked `restored`.

    Refuses, moving nothing, when any original path is taken (except by what an
    interrupted move or restore of this very entry left behind).
    """
    plan_restore(stamp)  # refusals first: a refused restore leaves no trace
    with file_lock(okstra_home() / "locks" / "quarantine.lock"):
        plan = plan_restore(stamp)
        entry = plan.entry
        entry.state = "restoring"
        _save_entry(entry)
        by_kind = {item.kind: item for item in entry.items}
        for step in plan.steps:
            try:
                if step.action == "replace-leftover":
                    fsio.remove_tree(step.destination, fault_prefix="quarantine")
                if step.action in ("move", "replace-leftover"):
                    step.destination.parent.mkdir(parents=True, exist_ok=True)
                    fsio.move_tree(step.source, step.destination, fault_prefix="quarantine")
                elif step.action == "drop-leftover":
                    fsio.remove_tree(step.source, fault_prefix="quarantine")
            except OSError as exc:
                raise OkstraError(
                    f"restore of {stamp} stopped at {step.source}: {exc}",
                    f"rerun: okstra quarantine restore {stamp}",
                ) from exc
            faults.point("quarantine.item-restored")
            by_kind[step.kind].state = "restored"
            _save_entry(entry)
        for kind in KINDS:  # the entry keeps only its manifest, marked restored
            with contextlib.suppress(OSError):
                (entry.dir / kind).rmdir()
        entry.state = "restored"
        _save_entry(entry)
        return entry
