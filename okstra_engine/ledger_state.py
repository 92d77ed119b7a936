"""The ledger's present: the few rows that decide what every okstra command derives from
a ledger, kept up to date by reading only appended bytes, and remembered across processes.

A ledger only grows (a stage is reserved, started and released many times over a long
task), yet every question okstra asks of it is about the latest row of a stage, its latest
done row, its latest run and base, the first row and last pid of a run, and which commits
a stage was ever recorded done at. `deciding_rows` keeps exactly the rows those answers
come from, in file order, so `latest_by_stage`, `latest_done_by_stage`, `last_run_id`,
`reservations`, `missing_done_rows` and `stage_base_ref` give the same answers on them as
on every row (a property test holds them to it). The reduction is incremental:
reducing (reduced prefix + appended rows) equals reducing every row.

`read_current` is what commands call. It resumes from a cache in okstra's home (the
reduced rows of a prefix of the file, with the prefix's length and CRC-32), parses only
what was appended since, and refreshes the cache when it parsed many lines. A cache that
does not match the file byte for byte (the ledger was replaced, edited or cut) is ignored.
"""

from __future__ import annotations

import contextlib
import os
import zlib
from pathlib import Path

from pydantic import ValidationError

from .documents import Doc
from .ledger import LedgerRead, LedgerRow, parse_ledger, streaks

CACHE_VERSION = 1
# below this many freshly parsed lines, re-reading next time is cheaper than writing
CACHE_AFTER_LINES = 64


def deciding_rows(rows: list[LedgerRow]) -> list[LedgerRow]:
    """The rows any derived answer depends on, in file order (see the module docstring)."""
    keep: set[int] = set()
    last: dict[int, int] = {}
    last_done: dict[int, int] = {}
    last_run: dict[int, int] = {}
    last_base: dict[int, int] = {}
    done_commits: dict[int, set[str]] = {}
    for i, row in enumerate(rows):
        stage = row.stage
        last[stage] = i
        if row.run_id:
            last_run[stage] = i
        if row.base_ref:
            last_base[stage] = i
        if row.status == "done":
            last_done[stage] = i
            seen = done_commits.setdefault(stage, set())
            new = {c for c in (row.head_commit, row.replaces) if c} - seen
            if new:  # the first row to name a commit keeps it known
                seen |= new
                keep.add(i)
    for chosen in (last, last_done, last_run, last_base):
        keep.update(chosen.values())
    for streak in streaks(rows).values():
        keep.update(i for i in (streak.start, streak.previous_start, streak.pid_at) if i is not None)
    if len(keep) == len(rows):
        return rows
    return [rows[i] for i in sorted(keep)]


class LedgerFollower:
    """Reads one ledger again and again, parsing only the bytes appended since the last
    read, and keeping only the deciding rows — a board stays open all day over ledgers of
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
        self._read = LedgerRead()

    def read(self) -> LedgerRead:
        return self.read_with_tail()[0]

    def read_with_tail(self) -> tuple[LedgerRead, bytes]:
        """The deciding rows of every complete line, and the unfinished rest of the file."""
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
            return LedgerRead(), b""
        end = data.rfind(b"\n") + 1
        if end:
            chunk = parse_ledger(data[:end], self.path.name, first_line=self.lines + 1)
            self._read.rows = deciding_rows(self._read.rows + chunk.rows)
            self._read.warnings.extend(chunk.warnings)
            self._crc = zlib.crc32(data[:end], self._crc)
            self._offset += end
            self.fresh_lines = data.count(b"\n", 0, end)
            self.lines += self.fresh_lines
            if self.fresh_lines >= CACHE_AFTER_LINES:
                self._save()
        # callers may keep what they were given while the next read appends
        return LedgerRead(list(self._read.rows), list(self._read.warnings)), data[end:]

    def _resume(self) -> bool:
        if self._cache is None:
            return False
        try:
            doc = LedgerCache.model_validate_json(self._cache.read_bytes())
        except (OSError, ValidationError, ValueError):
            return False
        if doc.v != CACHE_VERSION or doc.ledger != self._key:
            return False
        self._inode, self._offset, self.lines, self._crc = doc.inode, doc.offset, doc.lines, doc.crc
        self._read = LedgerRead(doc.rows, doc.warnings)
        return True

    def _save(self) -> None:
        if self._cache is None or self._inode is None:
            return
        from .fsio import atomic_write_text

        doc = LedgerCache(
            ledger=self._key,
            inode=self._inode,
            offset=self._offset,
            lines=self.lines,
            crc=self._crc,
            warnings=self._read.warnings,
            rows=self._read.rows,
        )
        # a cache: a crash may lose it (it is rebuilt), never leave half of it
        with contextlib.suppress(OSError):
            atomic_write_text(self._cache, doc.model_dump_json(exclude_none=True), durable=False)


class LedgerCache(Doc):
    """A follower's state on disk: the deciding rows of the ledger's first `offset` bytes."""

    v: int = CACHE_VERSION
    ledger: str
    inode: int
    offset: int
    lines: int
    crc: int
    warnings: list[str] = []
    rows: list[LedgerRow] = []


def read_current(path: Path) -> LedgerRead:
    """The deciding rows of the ledger at `path`, and its warnings — the same answers as
    `read_ledger` gives for every derived question, for the cost of the appended bytes."""
    follower = LedgerFollower(path, cached=True)
    read, rest = follower.read_with_tail()
    if rest.strip():  # a torn last line (or one a writer is finishing) counts as read_ledger says
        tail = parse_ledger(rest, path.name, first_line=follower.lines + 1)
        read = LedgerRead(deciding_rows(read.rows + tail.rows), read.warnings + tail.warnings)
    return read


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
