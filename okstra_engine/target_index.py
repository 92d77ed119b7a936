"""The target index: what reconcile learned about a repository's history, kept between
runs so that a second look at the same target asks git nothing but to resolve it.

It holds, per repository (its common git dir: a project and its worktrees share one),
in `cache/reconcile/` of the okstra home:
- walks: the commits of a range `TIP ^BASE` (each with its parents and committer time)
  and, for the non-merge ones, the paths they change among a filter (the paths of the
  stages asked about, a folder covering what is in it). A walk may extend an earlier
  one: `TIP ^PREV ^BASE` plus the walk of PREV, when TIP moved forward from PREV;
- stable patch-ids by commit (or that a commit has none: an empty change).

A commit's parents, paths and patch-id never change, so the records stay true whatever
happens to branches; a walk is only ever looked up by its exact tip and base.

The file is append-only. Each write is one block (`#okstra-target-index 1 FORMAT SIZE
CRC32` then SIZE bytes of records), appended with one O_APPEND write: a torn or damaged
block fails its checksum and is skipped, a missing file is an empty index, and deleting
the file only costs the next reconcile a walk. The object format (`sha1`, `sha256`) is
in each block and the file's name: a block of another format is never read. What is read
is data: a commit id is used only after it is checked to be hex of the format's length,
and a path is only compared with other paths as a string.

The order of a range's commits is git's (`git rev-list TIP ^BASE`: by committer time,
a commit after the first of its children git took), which the index reproduces when it
joins or narrows walks (`git_order`), so every answer is the one a fresh walk gives.
"""

from __future__ import annotations

import heapq
import os
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import git

MAGIC = b"#okstra-target-index 1 "
MAX_BYTES = 64 << 20
"""A file past this size is dropped and started again (it is only a cache)."""

walks: list[tuple[str, tuple[str, ...], int]] = []
"""Every walk of history this process asked git for: (tip, excluded, commits listed).
Tests read it to prove what a reconcile walked."""


@dataclass
class Range:
    """The commits of `tip ^base`, newest first in git's order, with what the walk
    learned about them."""

    tip: str
    base: str
    filter: frozenset[str]
    order: list[str]
    parents: dict[str, tuple[str, ...]]
    times: dict[str, int]
    paths: dict[str, tuple[str, ...]]
    """Non-merge commits changing something under `filter` → those paths."""

    def __contains__(self, commit: object) -> bool:
        return commit in self.parents

    def touching(self, paths: Iterable[str]) -> list[str]:
        """The non-merge commits changing one of `paths` (each inside the filter), newest
        first."""
        wanted = set(paths)
        return [c for c in self.order if c in self.paths and any(_covered(p, wanted) for p in self.paths[c])]

    def meets_base(self) -> bool:
        """Whether the tip shares history with the base: the range is empty, or one of
        its commits has a parent outside it (an ancestor of the base). False means the
        range is the tip's whole history."""
        return not self.order or any(p not in self.parents for ps in self.parents.values() for p in ps)

    def below(self, base: str) -> Range | None:
        """The range `tip ^base` for a `base` inside this one (its ancestors here leave);
        None when `base` is not in it."""
        if base not in self.parents:
            return None
        gone = _ancestors_within(base, self.parents)
        keep = [c for c in self.order if c not in gone]
        return Range(
            self.tip,
            base,
            self.filter,
            keep,
            {c: self.parents[c] for c in keep},
            {c: self.times[c] for c in keep},
            {c: self.paths[c] for c in keep if c in self.paths},
        )


def _covered(path: str, items: set[str]) -> bool:
    """Whether a pathspec item of `items` names `path` or a folder holding it."""
    if path in items:
        return True
    cut = path.rfind("/")
    while cut > 0:
        if path[:cut] in items:
            return True
        cut = path.rfind("/", 0, cut)
    return False


def _ancestors_within(start: str, parents: dict[str, tuple[str, ...]]) -> set[str]:
    found = {start}
    todo = [start]
    while todo:
        for p in parents.get(todo.pop(), ()):
            if p in parents and p not in found:
                found.add(p)
                todo.append(p)
    return found


def git_order(tip: str, parents: dict[str, tuple[str, ...]], times: dict[str, int]) -> list[str]:
    """The commits of `parents` reachable from `tip` inside it, in the order `git rev-list`
    prints a limited walk: the newest committer time first, a commit queued when the
    first of its children is taken, ties in the order queued."""
    queue = [(-times[tip], 0, tip)]
    seen = {tip}
    order = []
    n = 1
    while queue:
        commit = heapq.heappop(queue)[2]
        order.append(commit)
        for p in parents[commit]:
            if p in parents and p not in seen:
                seen.add(p)
                heapq.heappush(queue, (-times[p], n, p))
                n += 1
    return order


@dataclass
class _Walk:
    """One walk block: the commits of `tip ^prev ^base` (or `tip ^base`)."""

    tip: str
    base: str
    prev: str | None
    filter: frozenset[str]
    commits: list[tuple[str, int, tuple[str, ...], tuple[str, ...]]]
    serial: int = 0
    """Its place among the walks read and made: the newest has the largest."""


@dataclass
class _Store:
    """What one file holds, read up to `offset`."""

    offset: int = 0
    identity: tuple[int, int] = (0, 0)
    walks: dict[tuple[str, str], list[_Walk]] = field(default_factory=dict)
    ids: dict[str, str | None] = field(default_factory=dict)
    ranges: dict[tuple[str, str, frozenset[str]], Range] = field(default_factory=dict)
    serial: int = 0

    def add(self, block: _Walk) -> None:
        self.serial += 1
        block.serial = self.serial
        self.walks.setdefault((block.tip, block.base), []).append(block)


_STORES: dict[Path, _Store] = {}


class TargetIndex:
    """The index of one repository (`file`: None works without a file: nothing kept)."""

    def __init__(self, repo: Path, object_format: str, file: Path | None, *, shallow: bool = False) -> None:
        self.repo = repo
        self.shallow = shallow
        self.format = object_format
        self.length = 64 if object_format == "sha256" else 40
        self.file = file
        self.store = _load(file, object_format) if file else _Store()

    # ---- ranges ----

    def range(self, tip: str, base: str, paths: Iterable[str]) -> Range:
        """The commits of `tip ^base`, with the paths they change among `paths` (and any
        other paths an earlier walk was asked about)."""
        wanted = frozenset(paths)
        found = self._cached(tip, base, wanted)
        if found is not None:
            return found
        newest = self._newest(base, wanted)
        older = self._join(newest) if newest is not None else None
        if older is not None and older.tip != tip:
            grown = self._grow(older, tip)
            if grown is not None:
                return grown
        # a new walk also covers what the newest one from this base was asked about
        known = self._newest(base)
        filter_ = wanted | (known.filter if known is not None else frozenset())
        listed = self._walk_git(tip, [base])
        return self._keep(tip, base, None, filter_, listed, [c for c, _, _ in listed])

    def _cached(self, tip: str, base: str, wanted: frozenset[str]) -> Range | None:
        for key, known in self.store.ranges.items():
            if key[0] == tip and key[1] == base and wanted <= known.filter:
                return known
        for block in reversed(self.store.walks.get((tip, base), [])):
            if wanted <= block.filter:
                joined = self._join(block)
                if joined is not None:
                    return joined
        return None

    def _newest(self, base: str, wanted: frozenset[str] = frozenset()) -> _Walk | None:
        """The newest walk from `base` whose filter covers `wanted`."""
        blocks = [b for (_, of), bs in self.store.walks.items() if of == base for b in bs if wanted <= b.filter]
        return max(blocks, key=lambda b: b.serial, default=None)

    def _grow(self, older: Range, tip: str) -> Range | None:
        """`tip ^base` from the range of an older tip: when `tip` is below it (the branch
        went back), narrowed without git; when it descends from it, joined with a walk of
        `tip ^older ^base` only. None when neither (the branch was rewritten)."""
        if tip in older:
            parents = older.parents
            keep = _ancestors_within(tip, parents)
            sub = {c: parents[c] for c in keep}
            narrowed = Range(
                tip,
                older.base,
                older.filter,
                git_order(tip, sub, older.times),
                sub,
                {c: older.times[c] for c in keep},
                {c: older.paths[c] for c in keep if c in older.paths},
            )
            self.store.ranges[(tip, older.base, older.filter)] = narrowed
            return narrowed
        listed = self._walk_git(tip, [older.tip, older.base])
        if older.order and not any(older.tip in ps for _, _, ps in listed):
            return None
        return self._keep(tip, older.base, older.tip, older.filter, listed, None, older)

    def _walk_git(self, tip: str, exclude: list[str]) -> list[tuple[str, int, tuple[str, ...]]]:
        listed = git.walk_range(self.repo, tip, exclude)
        walks.append((tip, tuple(exclude), len(listed)))
        return listed

    def _keep(
        self,
        tip: str,
        base: str,
        prev: str | None,
        filter_: frozenset[str],
        listed: list[tuple[str, int, tuple[str, ...]]],
        order: list[str] | None,
        older: Range | None = None,
    ) -> Range:
        plain = [c for c, _, ps in listed if len(ps) <= 1]
        touched = git.paths_touched(self.repo, plain, sorted(filter_))
        block = _Walk(tip, base, prev, filter_, [(c, t, ps, tuple(touched.get(c, ()))) for c, t, ps in listed])
        self._append(_walk_text(block))
        self.store.add(block)
        found = self._join(block, older=older, order=order)
        assert found is not None  # its own commits and `older` are all there
        return found

    def _join(self, block: _Walk, *, older: Range | None = None, order: list[str] | None = None) -> Range | None:
        """The range a walk block stands for, following its chain of earlier tips."""
        key = (block.tip, block.base, block.filter)
        if key in self.store.ranges:
            return self.store.ranges[key]
        chain = [block]
        while chain[-1].prev is not None and older is None:
            prev = chain[-1].prev
            earlier = next(
                (b for b in reversed(self.store.walks.get((prev, block.base), [])) if b.filter == block.filter),
                None,
            )
            if earlier is None or len(chain) > 10_000:
                return None
            chain.append(earlier)
        parents: dict[str, tuple[str, ...]] = dict(older.parents) if older else {}
        times: dict[str, int] = dict(older.times) if older else {}
        paths: dict[str, tuple[str, ...]] = dict(older.paths) if older else {}
        for b in reversed(chain):
            for c, t, ps, touched in b.commits:
                parents[c], times[c] = ps, t
                if touched:
                    paths[c] = touched
        if block.tip not in parents and parents:
            return None
        if order is None:
            order = git_order(block.tip, parents, times) if parents else []
            if len(order) != len(parents):
                return None  # a chain that does not hang together: not this tip's range
        found = Range(block.tip, block.base, block.filter, order, parents, times, paths)
        self.store.ranges[key] = found
        return found

    # ---- patch-ids ----

    def patch_ids(self, commits: Sequence[str]) -> dict[str, str]:
        """The stable patch-id of each of `commits` that has one (from the index, else
        from git, which the index then keeps)."""
        ids = self.store.ids
        new = [c for c in commits if c not in ids]
        if new:
            found = git.patch_ids_of(self.repo, new)
            for c in new:
                ids[c] = found.get(c)
            self._append("P\n" + "".join(f"{c}\t{ids[c] or '-'}\n" for c in new))
        return {c: pid for c in commits if (pid := ids.get(c)) is not None}

    # ---- the file ----

    def _append(self, body: str) -> None:
        if self.file is None:
            return
        data = body.encode("utf-8", "surrogateescape")
        header = MAGIC + f"{self.format} {len(data)} {zlib.crc32(data):08x}\n".encode()
        try:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.file, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError:
            return  # no cache today: every answer still comes from git
        try:
            size = os.fstat(fd).st_size
            lead = b"\n" if size > 0 and os.pread(fd, 1, size - 1) != b"\n" else b""
            os.write(fd, lead + header + data)
        except OSError:
            pass
        finally:
            os.close(fd)


def _escape(path: str) -> str:
    if "\\" in path or "\t" in path or "\n" in path:
        return path.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
    return path


def _unescape(text: str) -> str:
    if "\\" not in text:
        return text
    out = []
    chars = iter(text)
    for ch in chars:
        if ch == "\\":
            nxt = next(chars, "")
            out.append({"t": "\t", "n": "\n"}.get(nxt, nxt))
        else:
            out.append(ch)
    return "".join(out)


def _walk_text(block: _Walk) -> str:
    head = "\t".join(["W", block.tip, block.base, block.prev or "-", str(len(block.commits))])
    lines = [head + "".join(f"\t{_escape(p)}" for p in sorted(block.filter))]
    for c, t, ps, touched in block.commits:
        lines.append(f"{c}\t{t}\t{' '.join(ps)}" + "".join(f"\t{_escape(p)}" for p in touched))
    return "\n".join(lines) + "\n"


_HEX = frozenset("0123456789abcdef")


def _sha(text: str, length: int) -> bool:
    return len(text) == length and set(text) <= _HEX


def _load(file: Path, object_format: str) -> _Store:
    """The store of `file`, read from where this process last stopped (the file only
    grows; one that shrank or was replaced is read again from its start)."""
    store = _STORES.get(file)
    try:
        fd = os.open(file, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        _STORES.pop(file, None)
        return _Store()
    try:
        info = os.fstat(fd)
        if info.st_size > MAX_BYTES:
            os.unlink(file)
            _STORES.pop(file, None)
            return _Store()
        identity = (info.st_dev, info.st_ino)
        if store is None or store.identity != identity or info.st_size < store.offset:
            store = _Store(identity=identity)
        os.lseek(fd, store.offset, os.SEEK_SET)
        data = b""
        while len(data) < info.st_size - store.offset:
            chunk = os.read(fd, info.st_size - store.offset - len(data))
            if not chunk:
                break
            data += chunk
    except OSError:
        return _Store()
    finally:
        os.close(fd)
    length = 64 if object_format == "sha256" else 40
    end = _read_blocks(data, object_format.encode(), length, store)
    store.offset += end
    _STORES[file] = store
    return store


def _read_blocks(data: bytes, object_format: bytes, length: int, store: _Store) -> int:
    """Read the whole blocks of `data` into `store`; returns how far it read (a block still
    being written at the end is left for next time)."""
    at = 0
    done = 0
    while True:
        start = data.find(MAGIC, at)
        if start < 0:
            return done if data.endswith(b"\n") or not data else max(done, data.rfind(b"\n") + 1)
        if start > 0 and data[start - 1 : start] != b"\n":
            at = start + 1
            continue
        eol = data.find(b"\n", start)
        if eol < 0:
            return start  # its header is still being written
        fields = data[start + len(MAGIC) : eol].split(b" ")
        body_at = eol + 1
        try:
            size, crc = int(fields[1]), int(fields[2], 16)
        except (IndexError, ValueError):
            at = body_at
            continue
        body = data[body_at : body_at + size]
        if len(body) < size:
            # torn, or still being written: later blocks (if any) are read from the next header
            at = body_at
            if data.find(MAGIC, body_at) < 0:
                return start
            continue
        if len(fields) != 3 or fields[0] != object_format or zlib.crc32(body) != crc or not body.endswith(b"\n"):
            at = body_at
            continue
        _take(body.decode("utf-8", "surrogateescape"), length, store)
        at = done = body_at + size


def _take(body: str, length: int, store: _Store) -> None:
    """One block's records into `store`; a block with a bad record is left out whole."""
    lines = body.split("\n")[:-1]
    if lines and lines[0] == "P":
        ids: dict[str, str | None] = {}
        for line in lines[1:]:
            c, _, pid = line.partition("\t")
            if not _sha(c, length) or not (pid == "-" or _sha(pid, 40) or _sha(pid, 64)):
                return
            ids[c] = None if pid == "-" else pid
        store.ids.update(ids)
        return
    head = lines[0].split("\t") if lines else []
    if len(head) < 5 or head[0] != "W" or not all(_sha(s, length) for s in head[1:3]):
        return
    prev = None if head[3] == "-" else head[3]
    if (prev is not None and not _sha(prev, length)) or head[4] != str(len(lines) - 1):
        return
    commits = []
    for line in lines[1:]:
        parts = line.split("\t")
        if len(parts) < 3 or not _sha(parts[0], length) or not parts[1].isdigit():
            return
        parents = tuple(parts[2].split(" ")) if parts[2] else ()
        if not all(_sha(p, length) for p in parents):
            return
        commits.append((parts[0], int(parts[1]), parents, tuple(_unescape(p) for p in parts[3:])))
    store.add(_Walk(head[1], head[2], prev, frozenset(_unescape(p) for p in head[5:]), commits))


def open_index(repo: Path) -> TargetIndex | None:
    """The index of the repository holding `repo` (None outside git); kept in memory only
    in a shallow clone, whose history is cut off where a later fetch may extend it."""
    facts = git.repo_facts(repo)
    if facts is None:
        return None
    common, object_format, shallow = facts
    return TargetIndex(repo, object_format, None if shallow else index_file(common, object_format), shallow=shallow)


def index_file(common_dir: Path, object_format: str) -> Path | None:
    """`cache/reconcile/<crc of the common git dir>-<name>-<format>.idx` in the okstra home."""
    from .locations import okstra_home

    try:
        key = str(common_dir)
        name = common_dir.parent.name if common_dir.name == ".git" else common_dir.name
        name = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "._-") else "_" for ch in name)
        return (
            okstra_home() / "cache" / "reconcile" / f"{zlib.crc32(key.encode()):08x}-{name[-40:]}-{object_format}.idx"
        )
    except Exception:  # noqa: BLE001 - no usable home: work without a cache
        return None
