"""The ledger's state: what okstra derives from a task's ledger, folded from its rows one
row at a time, and the readers that keep it up to date by parsing only appended bytes.

`LedgerState` holds, for each stage, a `StageLedger`: its latest row, its latest done
row (none once a `reopened` row follows it), the latest run id and base ref any of its rows named, its current streak (the rows
since its latest run id began: where that began and the last agent pid it named), and
every commit it was ever recorded done at. Every derived question (which stages are
done, which are in flight and whether stale, a stage's base, which carry sidecars are
not in the ledger yet) is answered from these fields, so a ledger of any length costs
what its stages cost. Folding is incremental: `state.fold(rows).fold(more)` equals
`state.fold(rows + more)`.

`read_state` is what commands call. It resumes from a cache in okstra's home (the state
of a prefix of the file, with the prefix's length and CRC-32), parses only what was
appended since, and refreshes the cache when it parsed many lines. A cache that does not
match the file byte for byte (the ledger was replaced, edited or cut) is ignored.
`LedgerFollower` is the same reader kept in memory, for the board.
"""

from __future__ import annotations

import contextlib
import os
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from pydantic import ValidationError

from .documents import Doc
from .ledger import IN_FLIGHT, LedgerRow, hostname, parse_ledger, pid_alive, utc_now

CACHE_VERSION = 3
# below this many freshly parsed lines, re-reading next time is cheaper than writing
CACHE_AFTER_LINES = 64


@dataclass(frozen=True, slots=True)
class Streak:
    """A stage's current run of rows: from the row that brought its latest run id (or its
    first row) on. A row with another run id starts a new streak; a row without one
    continues it."""

    start: LedgerRow
    """The streak's first row: an in-flight stage is held since its time."""
    run_id: str | None = None
    pid: int | None = None
    """The last agent pid a row of the streak named."""


@dataclass(frozen=True, slots=True)
class StageLedger:
    """What one stage's rows say, as of the last row folded."""

    stage: int
    latest: LedgerRow
    streak: Streak
    done: LedgerRow | None = None
    """The latest `done` row in file order, unless a `reopened` row came after it: a
    correction supersedes the row it replaces, a reopen takes the stage's done back,
    neither rewriting history."""
    run_id: str | None = None
    """The latest run id any row named."""
    base_ref: str | None = None
    """The latest base ref any row named (a reservation's, or a done row's)."""
    done_commits: frozenset[str] = frozenset()
    """Every commit a done row named, as its commit or as the commit it `replaces` (kept
    after a reopen: a carry sidecar of the commit taken back must not make it done again)."""

    @property
    def in_flight(self) -> bool:
        return self.latest.status in IN_FLIGHT

    def held_by(self, run_id: str) -> bool:
        """Whether the run `run_id` still holds the stage (in flight, in its streak)."""
        return self.in_flight and self.streak.run_id == run_id

    def local_pid(self, host: str | None = None) -> int | None:
        """The pid of the agent its streak names, when its latest row was written here (on
        this host, `host` by default, and by this okstra home's machine): only such a pid
        can be looked at."""
        pid = self.streak.pid
        if pid is None or self.latest.host != (host or hostname()):
            return None
        # and on the machine that wrote it: a shared task's rows come from other machines,
        # whose host names may be this one's (two okstra homes on one computer)
        from .share.machine import existing_machine_id

        return pid if self.latest.machine in (None, existing_machine_id()) else None


@dataclass(frozen=True)
class Reservation:
    stage: int
    row: LedgerRow
    """The stage's latest row (reserved or started)."""
    run_id: str | None
    since: datetime
    stale_reason: str | None = None

    @property
    def stale(self) -> bool:
        return self.stale_reason is not None


@dataclass(frozen=True)
class LedgerState:
    """Every stage's `StageLedger`, and the warnings of the lines that were skipped."""

    stages: Mapping[int, StageLedger] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    @classmethod
    def of(cls, rows: Iterable[LedgerRow], warnings: Iterable[str] = ()) -> LedgerState:
        return cls().fold(rows, warnings)

    def fold(self, rows: Iterable[LedgerRow], warnings: Iterable[str] = ()) -> LedgerState:
        """This state with `rows` (in file order) and `warnings` added; self is unchanged."""
        stages = dict(self.stages)
        touched: dict[int, _Folding] = {}
        for row in rows:
            folding = touched.get(row.stage)
            if folding is None:
                touched[row.stage] = _Folding(stages.get(row.stage), row)
            else:
                folding.add(row)
        for stage, folding in touched.items():
            stages[stage] = folding.freeze()
        return LedgerState(stages, (*self.warnings, *warnings))

    def latest_rows(self) -> dict[int, LedgerRow]:
        return {n: s.latest for n, s in self.stages.items()}

    def done_rows(self) -> dict[int, LedgerRow]:
        """Each stage's latest done row, for the stages that have one."""
        return {n: s.done for n, s in self.stages.items() if s.done is not None}

    def run_id(self, stage: int) -> str | None:
        found = self.stages.get(stage)
        return found.run_id if found else None

    def base_ref(self, stage: int) -> str | None:
        found = self.stages.get(stage)
        return found.base_ref if found else None

    def reservations(
        self, *, ttl_hours: float, now: datetime | None = None, host: str | None = None
    ) -> dict[int, Reservation]:
        """Stages in flight: their latest row is `reserved` or `started`.

        A reservation is stale when its streak names an agent pid on this host that is
        gone, or when the stage has had no row for longer than the TTL. Stale ones are
        reported, never dropped: a person releases them. `since` is when the current
        streak began.
        """
        now = now or utc_now()
        host = host or hostname()
        result: dict[int, Reservation] = {}
        for n, s in self.stages.items():
            if not s.in_flight:
                continue
            row, pid = s.latest, s.local_pid(host)
            why = None
            if pid is not None and not pid_alive(pid):
                why = f"agent pid {pid} on {host} is gone"
            elif (now - row.when).total_seconds() > ttl_hours * 3600:
                why = f"no ledger row for {_age(now - row.when)} (TTL {ttl_hours:g} h)"
            result[n] = Reservation(n, row, s.streak.run_id, s.streak.start.when, why)
        return result


class _Folding:
    """One stage's `StageLedger` while rows are folded into it (frozen at the end)."""

    __slots__ = ("base_ref", "commits", "done", "latest", "pid", "run_id", "stage", "start", "streak_run")

    def __init__(self, before: StageLedger | None, row: LedgerRow) -> None:
        self.stage = row.stage
        if before is None:
            self.start, self.streak_run, self.pid = row, row.run_id, None
            self.done, self.run_id, self.base_ref = None, None, None
            self.commits: set[str] = set()
        else:
            self.start, self.streak_run, self.pid = before.streak.start, before.streak.run_id, before.streak.pid
            self.done, self.run_id, self.base_ref = before.done, before.run_id, before.base_ref
            self.commits = set(before.done_commits)
        self.add(row)

    def add(self, row: LedgerRow) -> None:
        self.latest = row
        if row.run_id:
            self.run_id = row.run_id
            if row.run_id != self.streak_run:
                self.start, self.streak_run, self.pid = row, row.run_id, None
        if row.pid is not None:
            self.pid = row.pid
        if row.base_ref:
            self.base_ref = row.base_ref
        if row.status == "done":
            self.done = row
            if row.head_commit:
                self.commits.add(row.head_commit)
            if row.replaces:
                self.commits.add(row.replaces)
        elif row.status == "reopened":
            self.done = None

    def freeze(self) -> StageLedger:
        return StageLedger(
            self.stage,
            self.latest,
            Streak(self.start, self.streak_run, self.pid),
            self.done,
            self.run_id,
            self.base_ref,
            frozenset(self.commits),
        )


def _age(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400 * 2:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} days"


class LedgerFollower:
    """Reads one ledger again and again, parsing only the bytes appended since the last
    read and folding them into its state — a board stays open all day over ledgers of
    tens of thousands of rows.

    An unfinished last line (a writer mid-write) waits for its newline; a file that was
    replaced or shrank (never done by okstra) is read again from the start. With `cached`,
    the first read starts from the cache in okstra's home when it still matches the file,
    and a read that parsed many lines refreshes it.
    """

    def __init__(self, path: Path, *, cached: bool = False) -> None:
        self.path = path
        self._reset(None)
        self._key, self._cache = _cache_file(path) if cached else (None, None)
        self._verify = self._resume()

    def _reset(self, inode: int | None) -> None:
        self._inode, self._offset, self._crc = inode, 0, 0
        self.lines = 0
        """Complete lines counted so far."""
        self.fresh_lines = 0
        """Complete lines the last read parsed (not taken from memory or the cache)."""
        self.state = LedgerState()
        """The state of every complete line read so far."""

    def read(self) -> LedgerState:
        return self.read_with_tail()[0]

    def read_with_tail(self) -> tuple[LedgerState, bytes]:
        """The state of every complete line, and the unfinished rest of the file."""
        verify, self._verify = self._verify, False
        self.fresh_lines = 0
        try:
            with self.path.open("rb") as handle:
                stat = os.fstat(handle.fileno())
                if stat.st_ino != self._inode or stat.st_size < self._offset:
                    self._reset(stat.st_ino)
                if verify and self._offset:
                    # state from the cache: the bytes it counted must be these bytes
                    data = handle.read()
                    if zlib.crc32(memoryview(data)[: self._offset]) != self._crc:
                        self._reset(stat.st_ino)
                    else:
                        data = data[self._offset :]
                else:
                    handle.seek(self._offset)
                    data = handle.read()
        except FileNotFoundError:
            self._reset(None)
            return self.state, b""
        end = data.rfind(b"\n") + 1
        if end:
            chunk = parse_ledger(data[:end], self.path.name, first_line=self.lines + 1)
            self.state = self.state.fold(chunk.rows, chunk.warnings)
            self._crc = zlib.crc32(data[:end], self._crc)
            self._offset += end
            self.fresh_lines = data.count(b"\n", 0, end)
            self.lines += self.fresh_lines
            if self.fresh_lines >= CACHE_AFTER_LINES:
                self._save()
        return self.state, data[end:]

    def _resume(self) -> bool:
        if self._cache is None:
            return False
        try:
            doc = LedgerCache.model_validate_json(self._cache.read_bytes())
        except (OSError, ValidationError, ValueError):
            return False
        if doc.v != CACHE_VERSION or doc.ledger != self._key:
            return False
        try:
            stages = {s.stage: s.thaw(doc.rows) for s in doc.stages}
        except IndexError:
            return False
        self._inode, self._offset, self.lines, self._crc = doc.inode, doc.offset, doc.lines, doc.crc
        self.state = LedgerState(stages, tuple(doc.warnings))
        return True

    def _save(self) -> None:
        if self._cache is None or self._key is None or self._inode is None:
            return
        from .fsio import atomic_write_text

        rows: list[LedgerRow] = []
        index: dict[int, int] = {}  # id(row) -> its place in rows

        def at(row: LedgerRow) -> int:
            if id(row) not in index:
                index[id(row)] = len(rows)
                rows.append(row)
            return index[id(row)]

        stages = [_CachedStage.freeze(s, at) for s in self.state.stages.values()]
        doc = LedgerCache(
            ledger=self._key,
            inode=self._inode,
            offset=self._offset,
            lines=self.lines,
            crc=self._crc,
            warnings=list(self.state.warnings),
            rows=rows,
            stages=stages,
        )
        # a cache: a crash may lose it (it is rebuilt), never leave half of it
        with contextlib.suppress(OSError):
            atomic_write_text(self._cache, doc.model_dump_json(exclude_none=True), durable=False)


class _CachedStage(Doc):
    """A `StageLedger` on disk, its rows named by their place in the cache's rows (one row
    is often two of its fields at once: latest and streak start, latest and done)."""

    stage: int
    latest: int
    start: int
    done: int | None = None
    streak_run_id: str | None = None
    pid: int | None = None
    run_id: str | None = None
    base_ref: str | None = None
    done_commits: list[str] = []

    @classmethod
    def freeze(cls, s: StageLedger, at: Callable[[LedgerRow], int]) -> _CachedStage:
        return cls(
            stage=s.stage,
            latest=at(s.latest),
            start=at(s.streak.start),
            done=at(s.done) if s.done is not None else None,
            streak_run_id=s.streak.run_id,
            pid=s.streak.pid,
            run_id=s.run_id,
            base_ref=s.base_ref,
            done_commits=sorted(s.done_commits),
        )

    def thaw(self, rows: list[LedgerRow]) -> StageLedger:
        return StageLedger(
            self.stage,
            rows[self.latest],
            Streak(rows[self.start], self.streak_run_id, self.pid),
            rows[self.done] if self.done is not None else None,
            self.run_id,
            self.base_ref,
            frozenset(self.done_commits),
        )


class LedgerCache(Doc):
    """A follower's state on disk: the `LedgerState` of the ledger's first `offset` bytes."""

    v: int = CACHE_VERSION
    ledger: str
    inode: int
    offset: int
    lines: int
    crc: int
    warnings: list[str] = []
    rows: list[LedgerRow] = []
    stages: list[_CachedStage] = []


def read_state(path: Path) -> LedgerState:
    """The state of the ledger at `path`, and its warnings — what folding every row
    `read_ledger` gives would be, for the cost of the appended bytes."""
    follower = LedgerFollower(path, cached=True)
    state, rest = follower.read_with_tail()
    if rest.strip():  # a torn last line (or one a writer is finishing) counts as read_ledger says
        tail = parse_ledger(rest, path.name, first_line=follower.lines + 1)
        state = state.fold(tail.rows, tail.warnings)
    return state


def _cache_file(path: Path) -> tuple[str | None, Path | None]:
    """The ledger's resolved path (what its cache names) and its cache file."""
    from .locations import okstra_home

    try:
        key = str(path.resolve())
        return (
            key,
            okstra_home() / "cache" / "ledgers" / f"{zlib.crc32(key.encode()):08x}-{path.parent.name[-40:]}.json",
        )
    except Exception:  # noqa: BLE001 - no usable home: work without a cache
        return None, None
