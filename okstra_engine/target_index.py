"""The target index: what reconcile learned about a repository's history, kept between
runs so that a second look at the same target asks git nothing but to resolve it.

It holds, per repository (its common git dir: a project and its worktrees share one),
in `cache/reconcile/` of the okstra home:
- walks: the commits of a range `TIP ^BASE` (each with its parents and committer time)
  and, for the non-merge ones, the paths they change among a filter (the paths of the
  stages asked about, a folder covering what is in it). A walk may extend an earlier
  one: `TIP ^PREV ^BASE` plus the walk of PREV, when TIP moved forward from PREV;
- stable patch-ids by commit (or that a commit has none: an empty change);
- by commit, the files its patch-id surely hashes (modified from some content to other
  content), which says, without a diff, that it cannot match a change of other files.

A commit's parents, paths and patch-id never change, so the records stay true whatever
happens to branches; a walk is only ever looked up by its exact tip and base.

The file is append-only. Each write is one block (`#okstra-target-index 1 FORMAT SIZE
CRC32` then SIZE bytes of records), appended with one O_APPEND write: a torn or damaged
block fails its checksum and is skipped, a missing file is an empty index, and deleting
the file only costs the next reconcile a walk. The object format (`sha1`, `sha256`) is
in each block and the file's name: a block of another format is never read. What is read
is data, checked when read (commit ids are hex of the format's length; a walk's lines are
what git prints), and a path is only compared with other paths as a string. A block holds
one kind of record: `W` a walk, `P` patch-ids, `H` hashed files (`_take` reads them).

The order of a range's commits is git's (`git rev-list TIP ^BASE`: by committer time,
a commit after the first of its children git took), which the index reproduces when it
joins or narrows walks (`git_order`), so every answer is the one a fresh walk gives.
"""

from __future__ import annotations

import heapq
import os
import re
import threading
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import git

MAGIC = b"#okstra-target-index 1 "
MAX_BYTES = 64 << 20
"""A file past this size is dropped and started again (it is only a cache)."""

walk_strategy = "auto"
"""How a first walk is made: `one` git process listing commits and paths (cheaper where
history is mostly linear), `two` (rev-list, then diff-tree over its non-merge commits:
cheaper where merges are many), `auto`: `one` unless the tip's newest commits hold a
merge. Both give the same answer; tests run each."""

walks: list[tuple[str, tuple[str, ...], int]] | None = None
"""When a list (tests set one), every walk of history this process asks git for: (tip,
excluded, commits listed), to prove what a reconcile walked. None otherwise: a board open
all day would keep every walk."""


@dataclass
class _Walk:
    """One walk: the commits of `tip ^prev ^base` (or `tip ^base`) as git listed them."""

    tip: str
    base: str
    prev: str | None
    filter: frozenset[str]
    stacked: bool
    """Git's order of the whole range is this walk's then the range of `prev`'s."""
    paths: list[tuple[str, tuple[str, ...]]]
    """Its non-merge commits changing something under `filter`, in git's order."""
    commits: str
    """`\nCOMMIT\tTIME\tPARENTS` per commit, in git's order (searched, parsed when needed)."""
    serial: int = 0
    """Its place among the walks read and made: the newest has the largest."""

    @property
    def count(self) -> int:
        return self.commits.count("\n") - 1 if self.commits else 0

    def has(self, commit: str) -> bool:
        return f"\n{commit}\t" in self.commits

    def time_of(self, commit: str) -> int | None:
        at = self.commits.find(f"\n{commit}\t")
        if at < 0:
            return None
        stamp = self.commits[at + len(commit) + 2 : self.commits.find("\t", at + len(commit) + 2)]
        return int(stamp) if stamp.isdigit() else None


@dataclass
class _Graph:
    parents: dict[str, tuple[str, ...]]
    times: dict[str, int]
    order: list[str]


class Range:
    """The commits of `tip ^base`, newest first in git's order, with what the walks
    learned about them: walks stacked newest first, or a graph computed from them."""

    def __init__(
        self,
        tip: str,
        base: str,
        filter_: frozenset[str],
        walks: list[_Walk],
        graph: _Graph | None = None,
        paths: dict[str, tuple[str, ...]] | None = None,
    ) -> None:
        self.tip, self.base, self.filter = tip, base, filter_
        self.walks = walks
        self._graph = graph
        self._paths = paths
        self.length = 64 if len(tip) == 64 else 40

    def __contains__(self, commit: object) -> bool:
        if not isinstance(commit, str):
            return False
        if self._graph is not None:
            return commit in self._graph.parents
        return any(w.has(commit) for w in self.walks)

    @property
    def empty(self) -> bool:
        return not self._graph.order if self._graph is not None else not any(w.commits for w in self.walks)

    def members(self) -> set[str] | dict[str, tuple[str, ...]]:
        """Its commits, for many membership questions at once."""
        if self._graph is not None:
            return self._graph.parents
        return {line[: self.length] for w in self.walks for line in w.commits.split("\n") if line}

    @property
    def paths(self) -> dict[str, tuple[str, ...]]:
        """Non-merge commits changing something under `filter` → those paths."""
        if self._paths is None:
            self._paths = {c: ps for w in self.walks for c, ps in w.paths}
        return self._paths

    def touching(self, paths: Iterable[str]) -> list[str]:
        """The non-merge commits changing one of `paths` (each inside the filter), newest
        first."""
        wanted = set(paths)
        if self._graph is not None:
            found = self.paths
            return [c for c in self._graph.order if c in found and any(git.covered(p, wanted) for p in found[c])]
        return [c for w in self.walks for c, ps in w.paths if any(git.covered(p, wanted) for p in ps)]

    def graph_lines(self) -> tuple[dict[str, tuple[str, ...]], dict[str, int], list[str]] | None:
        """Parents, times and the listed order of its walks' commits (None: a bad record)."""
        parents: dict[str, tuple[str, ...]] = {}
        times: dict[str, int] = {}
        order: list[str] = []
        for w in self.walks:
            for line in w.commits.split("\n")[1:-1]:
                commit, _, rest = line.partition("\t")
                stamp, _, listed = rest.partition("\t")
                ps = tuple(listed.split(" ")) if listed else ()
                if not _sha(commit, self.length) or not stamp.isdigit() or not all(_sha(p, self.length) for p in ps):
                    return None
                parents[commit], times[commit] = ps, int(stamp)
                order.append(commit)
        return parents, times, order

    def graph(self) -> _Graph | None:
        """Parents, times and git's order of the whole range (None: a damaged record)."""
        if self._graph is None:
            lines = self.graph_lines()
            if lines is None:
                return None
            parents, times, order = lines
            if not all(w.stacked for w in self.walks[:-1]) and parents:
                order = git_order(self.tip, parents, times)
            if len(order) != len(parents) or (parents and order[0] != self.tip):
                return None
            self._graph = _Graph(parents, times, order)
        return self._graph

    @property
    def order(self) -> list[str]:
        found = self.graph()
        return found.order if found is not None else []

    def meets_base(self) -> bool:
        """Whether the tip shares history with the base: the range is empty, or one of
        its commits has a parent outside it (an ancestor of the base). False means the
        range is the tip's whole history (or could not be read)."""
        found = self.graph()
        if found is None:
            return False
        parents = found.parents
        return not parents or any(p not in parents for c in reversed(found.order) for p in parents[c])

    def below(self, base: str) -> Range | None:
        """The range `tip ^base` for a `base` inside this one (its ancestors here leave);
        None when `base` is not in it."""
        if base not in self:
            return None
        found = self.graph()
        if found is None:
            return None
        gone = _ancestors_within(base, found.parents)
        keep = [c for c in found.order if c not in gone]
        graph = _Graph({c: found.parents[c] for c in keep}, {c: found.times[c] for c in keep}, keep)
        paths = {c: ps for c, ps in self.paths.items() if c not in gone}
        return Range(self.tip, base, self.filter, [], graph, paths)


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
class _Store:
    """What one file holds, read up to `offset`."""

    offset: int = 0
    identity: tuple[int, int] = (0, 0)
    walks: dict[tuple[str, str], list[_Walk]] = field(default_factory=dict)
    ids: dict[str, str | None] = field(default_factory=dict)
    hashed: dict[str, tuple[str, ...]] = field(default_factory=dict)
    ranges: dict[tuple[str, str, frozenset[str]], Range] = field(default_factory=dict)
    serial: int = 0

    def add(self, block: _Walk) -> None:
        self.serial += 1
        block.serial = self.serial
        self.walks.setdefault((block.tip, block.base), []).append(block)


_STORES: dict[Path, _Store] = {}
_READING = threading.Lock()  # the board's workers may read one file at once


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
        found = self._walk(tip, base, None, filter_)
        if found is None:
            raise git.GitError(f"git listed commits of {tip} that do not hang together", "run reconcile again")
        return found

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
            found = older.graph()
            if found is None:
                return None
            keep = _ancestors_within(tip, found.parents)
            sub = {c: found.parents[c] for c in keep}
            graph = _Graph(sub, {c: found.times[c] for c in keep}, git_order(tip, sub, found.times))
            narrowed = Range(
                tip, older.base, older.filter, [], graph, {c: ps for c, ps in older.paths.items() if c in keep}
            )
            self.store.ranges[(tip, older.base, older.filter)] = narrowed
            return narrowed
        return self._walk(tip, older.base, older, older.filter)

    def _walk(self, tip: str, base: str, older: Range | None, filter_: frozenset[str]) -> Range | None:
        """Walk `tip ^base` (`tip ^older ^base` joined to `older`), keep it, and return
        its range; None when `tip` does not descend from the older tip."""
        exclude = [older.tip, base] if older is not None else [base]
        paths = sorted(filter_)
        touched: dict[str, list[str]] | None = None
        if (
            older is None
            and paths
            and (walk_strategy == "one" or (walk_strategy == "auto" and not git.has_merges_near(self.repo, tip)))
        ):
            text, touched = git.walk_range_paths(self.repo, tip, exclude, paths)
        else:
            text = git.walk_range(self.repo, tip, exclude)
        stacked = False
        if touched is not None:  # the paths came with the walk: its lines need no reading
            if walks is not None:
                walks.append((tip, tuple(exclude), text.count("\n")))
            commits = list(touched)  # in git's order, as listed
        else:
            lines = [line.split("\t") for line in text.split("\n") if line]
            if any(len(fields) != 3 for fields in lines):
                raise git.GitError(
                    f"git rev-list printed what okstra cannot read in {self.repo}", "check git's version"
                )
            if walks is not None:
                walks.append((tip, tuple(exclude), len(lines)))
            if older is not None:
                parents = {p for _, _, listed in lines for p in listed.split(" ") if p}
                if not older.empty and older.tip not in parents:
                    return None  # not a descendant of the tip walked: rewritten
                stacked = _stacks(lines, older)
            touched = git.paths_touched(self.repo, [c for c, _, listed in lines if " " not in listed], paths)
            commits = [c for c, _, _ in lines if c in touched]
        block = _Walk(
            tip,
            base,
            older.tip if older is not None else None,
            filter_,
            stacked,
            [(c, tuple(touched[c])) for c in commits],
            "\n" + text if text else "",
        )
        self._append(_walk_text(block))
        self.store.add(block)
        return self._join(block, older=older)

    def _join(self, block: _Walk, *, older: Range | None = None) -> Range | None:
        """The range a walk block stands for, following its chain of earlier tips (None
        when a link is missing or damaged)."""
        key = (block.tip, block.base, block.filter)
        if key in self.store.ranges:
            return self.store.ranges[key]
        if block.prev is None:
            found: Range | None = Range(block.tip, block.base, block.filter, [block])
        else:
            if older is None:
                earlier = [
                    b
                    for b in self.store.walks.get((block.prev, block.base), [])
                    if b.filter == block.filter and b.serial < block.serial
                ]
                older = self._join(earlier[-1]) if earlier else None
            if older is None:
                return None
            if block.stacked and older._graph is None:
                found = Range(block.tip, block.base, block.filter, [block, *older.walks])
            else:
                found = _joined(block, older)
        if found is None or (block.commits and block.tip not in found):
            return None
        self.store.ranges[key] = found
        return found

    # ---- patch-ids ----

    def patch_ids(self, commits: Sequence[str], within: Iterable[str] | None = None) -> dict[str, str]:
        """The stable patch-id of each of `commits` that has one (from the index, else
        from git, which the index then keeps). `within`: paths the ids will be compared
        for; a commit whose change surely reaches outside them (a file modified there:
        its id hashes that file, so it equals no id of a change inside them) gets `""`,
        its id not made."""
        ids = self.store.ids
        new = [c for c in commits if c not in ids]
        if new and within is not None:
            reach = self.hashed_paths(new)
            inside = set(within)
            outside = {c for c in new if any(not git.covered(p, inside) for p in reach[c])}
            new = [c for c in new if c not in outside]
        else:
            outside = set()
        if new:
            found = git.patch_ids_of(self.repo, new)
            for c in new:
                ids[c] = found.get(c)
            self._append("P\n" + "".join(f"{c}\t{ids[c] or '-'}\n" for c in new))
        got = {c: pid for c in commits if (pid := ids.get(c)) is not None}
        return {**got, **dict.fromkeys((c for c in outside if c not in got), "")}

    def hashed_paths(self, commits: Sequence[str]) -> dict[str, list[str]]:
        """`git.hashed_paths` of each of `commits`, through the index."""
        known = self.store.hashed
        new = [c for c in commits if c not in known]
        if new:
            found = git.hashed_paths(self.repo, new)
            known.update({c: tuple(found.get(c, ())) for c in new})
            lines = "".join(f"{c}" + "".join(f"\t{_escape(p)}" for p in known[c]) + "\n" for c in new)
            self._append("H\n" + lines)
        return {c: list(known[c]) for c in commits}

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
            return  # no index today: every answer still comes from git
        try:
            before = os.fstat(fd)
            lead = b"\n" if before.st_size > 0 and os.pread(fd, 1, before.st_size - 1) != b"\n" else b""
            written = os.write(fd, lead + header + data)
            after = os.fstat(fd)
        except OSError:
            return
        finally:
            os.close(fd)
        with _READING:
            _adopt(self.file, self.store, before, after, written)


def _adopt(file: Path, store: _Store, before: os.stat_result, after: os.stat_result, written: int) -> None:
    """After this process appended `written` bytes: when the file held nothing it had not
    read and nobody wrote beside it, its store already holds what it wrote, so the next
    open reads on from after it (rather than parsing its own block again)."""
    identity = (after.st_dev, after.st_ino)
    fresh = store.identity == (0, 0) and store.offset == 0 == before.st_size
    if (fresh or store.identity == identity) and store.offset == before.st_size == after.st_size - written:
        store.identity = identity
        store.offset = after.st_size
        _STORES[file] = store


def _stacks(lines: list[list[str]], older: Range) -> bool:
    """Whether git's order of a joined range is the new commits' (`lines`), then the
    older range's: every new commit is newer than the old tip and none has a parent in
    the old range but the old tip, so git takes the old tip after all of them, alone."""
    old_time = next((t for w in older.walks if (t := w.time_of(older.tip)) is not None), None)
    if old_time is None or not all(stamp.isdigit() and int(stamp) > old_time for _, stamp, _ in lines):
        return False
    new = {c for c, _, _ in lines}
    outside = [p for _, _, listed in lines for p in listed.split(" ") if p and p not in new and p != older.tip]
    known = older.members() if len(outside) > 8 else older
    return not any(p in known for p in outside)


def _joined(block: _Walk, older: Range) -> Range | None:
    """A walk joined to the older range it extends, ordered the way git orders the
    whole (`git_order`)."""
    found = older.graph()
    if found is None:
        return None
    own = Range(block.tip, block.base, block.filter, [block]).graph_lines()
    if own is None:
        return None
    parents = {**found.parents, **own[0]}
    times = {**found.times, **own[1]}
    order = git_order(block.tip, parents, times) if parents else []
    if len(order) != len(parents):
        return None
    return Range(
        block.tip, block.base, block.filter, [], _Graph(parents, times, order), {**older.paths, **dict(block.paths)}
    )


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
    """`W TIP BASE PREV COUNT NPATHS STACKED FILTER…`, the commits with paths (`COMMIT
    PATH…`), then the commits as git listed them; tab-separated, one record a line."""
    fields = ["W", block.tip, block.base, block.prev or "-", str(block.count), str(len(block.paths))]
    head = "\t".join([*fields, "1" if block.stacked else "0", *(_escape(p) for p in sorted(block.filter))])
    touched = "".join(f"{c}\t" + "\t".join(_escape(p) for p in ps) + "\n" for c, ps in block.paths)
    return f"{head}\n{touched}{block.commits[1:]}"


_HEX = frozenset("0123456789abcdef")
# the commit lines of a walk, checked as a whole (~1 ms a thousand commits); the length
# of each parent is checked when they are read (`Range.graph_lines`)
_COMMIT_LINES = {n: re.compile(rf"(?:\n[0-9a-f]{{{n}}}\t[0-9]+\t[0-9a-f ]*)*\n") for n in (40, 64)}


def _sha(text: str, length: int) -> bool:
    return len(text) == length and set(text) <= _HEX


def _load(file: Path, object_format: str) -> _Store:
    """The store of `file`, read from where this process last stopped (the file only
    grows; one that shrank or was replaced is read again from its start)."""
    with _READING:
        return _load_locked(file, object_format)


def _load_locked(file: Path, object_format: str) -> _Store:
    store = _STORES.get(file)
    try:
        fd = os.open(file, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        # no file yet: an empty store, which this process's first append adopts
        if store is None or store.identity != (0, 0):
            store = _STORES[file] = _Store()
        return store
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
    """Read the whole, sound blocks of `data` into `store`; returns where the last one
    ends (what follows, a block still being written or a damaged one, is looked at again
    next time)."""
    at = done = 0
    while (start := data.find(MAGIC, at)) >= 0:
        at = start + 1
        if start > 0 and data[start - 1] != 0x0A:  # a header starts a line
            continue
        eol = data.find(b"\n", start)
        if eol < 0:
            break
        fields = data[start + len(MAGIC) : eol].split(b" ")
        if len(fields) != 3 or fields[0] != object_format or not fields[1].isdigit():
            continue
        body = data[eol + 1 : eol + 1 + int(fields[1])]
        if len(body) != int(fields[1]) or not body.endswith(b"\n") or f"{zlib.crc32(body):08x}".encode() != fields[2]:
            continue  # torn, damaged, or still being written: the next header may be sound
        _take(body.decode("utf-8", "surrogateescape"), length, store)
        at = done = eol + 1 + len(body)
    return done


def _take(body: str, length: int, store: _Store) -> None:
    """One block's records into `store`; a block with a bad record is left out whole."""
    if body.startswith("P\n"):
        ids: dict[str, str | None] = {}
        for line in body[2:].split("\n")[:-1]:
            c, _, pid = line.partition("\t")
            if not _sha(c, length) or not (pid == "-" or _sha(pid, 40) or _sha(pid, 64)):
                return
            ids[c] = None if pid == "-" else pid
        store.ids.update(ids)
        return
    if body.startswith("H\n"):
        hashed: dict[str, tuple[str, ...]] = {}
        for line in body[2:].split("\n")[:-1]:
            c, *touched = line.split("\t")
            if not _sha(c, length) or not all(touched):
                return
            hashed[c] = tuple(_unescape(p) for p in touched)
        store.hashed.update(hashed)
        return
    end = body.find("\n")
    head = body[:end].split("\t")
    if len(head) < 7 or head[0] != "W" or not all(_sha(h, length) for h in head[1:3]) or head[6] not in ("0", "1"):
        return
    prev = None if head[3] == "-" else head[3]
    if (prev is not None and not _sha(prev, length)) or not head[4].isdigit() or not head[5].isdigit():
        return
    paths = []
    for _ in range(int(head[5])):
        start, end = end + 1, body.find("\n", end + 1)
        if end < 0:
            return
        commit, *touched = body[start:end].split("\t")
        if not _sha(commit, length) or not touched:
            return
        paths.append((commit, tuple(_unescape(p) for p in touched)))
    commits = body[end:] if end + 1 < len(body) else ""
    if commits.count("\n") - 1 != int(head[4]) and not (commits == "" and head[4] == "0"):
        return
    if commits and not _COMMIT_LINES[length].fullmatch(commits):
        return
    store.add(_Walk(head[1], head[2], prev, frozenset(_unescape(p) for p in head[7:]), head[6] == "1", paths, commits))


def trusted_base(x: str, base: str | None, stored: Mapping[str, Any]) -> str | None:
    """The stage's base as a full SHA when the done row stored it for this very x (checked
    to be a proper ancestor of x when the row was written), so no git call checks it."""
    found = base or stored.get("base_ref")
    trusted = stored.get("head_commit") == x and (base is None or base == stored.get("base_ref"))
    # full SHAs of one length: a range is searched for x as a string
    same = git.is_full_sha(x) and git.is_full_sha(found) and len(x) == len(found or "")
    return found if trusted and same and found != x else None


class Target:
    """The target T of one call and what is known of its history: the range since each
    stage's base (from the index), walked once and shared by every stage and question,
    and each ancestry pair asked once."""

    def __init__(self, repo: Path, t: str) -> None:
        self.repo = repo
        self.t = t
        self.index = open_index(repo)
        self.ranges: dict[str, Range] = {}
        self.known: dict[tuple[str, str], bool | None] = {}

    def range(self, base: str, paths: Iterable[str] = ()) -> Range | None:
        """The commits of T since `base`, with what they change among `paths`; narrowed
        from the range of an older base when `base` is in it. None outside git."""
        if self.index is None:
            return None
        wanted = frozenset(paths)
        known = self.ranges.get(base)
        if known is not None and wanted <= known.filter:
            return known
        for other in list(self.ranges.values()):
            if wanted <= other.filter and (narrowed := other.below(base)) is not None:
                self.ranges[base] = narrowed
                return narrowed
        found = self.index.range(self.t, base, wanted | (known.filter if known else frozenset()))
        self.ranges[base] = found
        return found

    def holds(self, x: str, base: str | None, paths: Iterable[str] = ()) -> bool | None:
        """`git.ancestry(x, T)`: read from the range since `base` when that is a proper
        ancestor of x recorded for it (x is in T exactly when it is in `T ^base`), else
        asked of git. None: x is not in the repository. `paths`: what the walk should
        also learn (the stage's paths, asked next when x is not in T)."""
        found = self.range(base, paths) if base else None
        if found is None:
            return self.ancestry(x, self.t)
        if x in found:
            return True
        return False if git.resolve_commits(self.repo, [x])[0] else None

    def ancestry(self, ancestor: str, descendant: str) -> bool | None:
        """`git.ancestry`, asked once per pair."""
        key = (ancestor, descendant)
        if key not in self.known:
            self.known[key] = git.ancestry(self.repo, ancestor, descendant)
        return self.known[key]

    def candidates(self, base: str | None, paths: list[str]) -> list[tuple[str, str]]:
        """(commit, patch-id) of T's non-merge commits since `base` that touch `paths`
        and have a patch-id (all of T's history without a base), newest first; each
        hashed over its whole diff. A commit that also modifies a file outside `paths`
        matches no id of the stage: its id is not made (`""`), it only keeps its place
        for `_first_holding`."""
        found = self.range(base, paths) if base else None
        if found is None or self.index is None:
            return git.commit_patch_ids(self.repo, [self.t], [base] if base else [], paths)
        commits = found.touching(paths)
        ids = self.index.patch_ids(commits, within=paths)
        return [(c, ids[c]) for c in commits if c in ids]

    def shares_history(self, x: str, base: str | None) -> bool:
        """Whether x and T have a merge-base; a range since x's base that reaches below it
        says so without asking git."""
        found = self.range(base) if base else None
        if found is not None and found.meets_base():
            return True
        return git.merge_base(self.repo, x, self.t) is not None


_ahead: threading.Thread | None = None
_warmed: Target | None = None


def run_ahead(warm: Callable[[], Target | None]) -> None:
    """Run `warm` in a thread now (`head_start`); the Target it returns is what `target`
    gives for the same repository and T."""
    global _ahead
    _wait_for_head_start()  # one at a time: an earlier one may still be at work

    def run() -> None:
        global _warmed
        try:
            _warmed = warm()
        except Exception:  # noqa: BLE001 - a guess that failed: the engine does the work itself
            _warmed = None

    _ahead = threading.Thread(target=run, name="okstra-head-start", daemon=True)
    _ahead.start()


def target(repo: Path, t: str) -> Target:
    """A `Target` for T in `repo`: the one a head start warmed, when it guessed this very
    repository and T (taken once), else a new one."""
    global _warmed
    _wait_for_head_start()
    warmed = _warmed
    if warmed is not None and warmed.repo == repo and warmed.t == t:
        _warmed = None
        return warmed
    return Target(repo, t)


def _wait_for_head_start() -> None:
    """A head start and the engine never use the index at once: the engine waits for it
    (one walk at most; a wrong guess costs that wait)."""
    global _ahead
    running = _ahead
    if running is not None and running is not threading.current_thread():
        running.join()
        _ahead = None


def open_index(repo: Path) -> TargetIndex | None:
    """The index of the repository holding `repo` (None outside git). Nothing is kept
    between calls in a shallow clone, whose history is cut off where a later fetch may
    extend it, nor while `git replace` refs stand in for commits (what git then says of a
    range can change with them): there it only serves the call that opened it."""
    _wait_for_head_start()
    facts = git.repo_facts(repo)
    if facts is None:
        return None
    common, object_format, shallow = facts
    keep = not shallow and not git.has_replace_refs(repo, common)
    return TargetIndex(repo, object_format, index_file(common, object_format) if keep else None, shallow=shallow)


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
