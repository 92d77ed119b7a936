"""The engine's clock and id source: every time okstra writes down (ledger rows,
manifests, registry rows) comes from `now()`; every id (run ids, trash stamps) is built
from `stamp()` and `token()`.

`pinned(...)` fixes any of them for a block, `pin(...)` for the rest of the process:
`time` fixes `now()` (and so the stamps), `stamps` fixes only the stamps (the time keeps
running, so reservations still age), `token` fixes the random tail of ids. The snapshot
tests and the screenshot script pin the stamps and the token, so run ids and trash
stamps are the same on every run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True)
class _Pins:
    time: datetime | None = None
    stamps: datetime | None = None
    token: str | None = None


_pins = _Pins()


def now() -> datetime:
    """The current time, in UTC."""
    return _pins.time or datetime.now(UTC)


def token(nbytes: int = 3) -> str:
    """A random hex tail for an id."""
    return _pins.token or os.urandom(nbytes).hex()


def stamp(moment: datetime | None = None) -> str:
    """`20260610T120000Z` of `moment` (default: now): run ids and trash stamps start with
    it, so they sort by time."""
    return (moment or _pins.stamps or now()).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def iso(moment: datetime | None = None) -> str:
    """`2026-06-10T12:00:00Z`: the time every okstra file writes."""
    return (moment or now()).astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def local_iso(moment: datetime | None = None) -> str:
    """`2026-06-10T14:00:00+02:00`: a time a person reads (when a project or task was made)."""
    return (moment or now()).astimezone().isoformat(timespec="seconds")


def pin(*, time: datetime | None = None, stamps: datetime | None = None, token: str | None = None) -> None:
    """Fix what is given from here on (nothing given: unpin everything)."""
    global _pins
    _pins = _Pins(_utc(time), _utc(stamps), token)


@contextmanager
def pinned(*, time: datetime | None = None, stamps: datetime | None = None, token: str | None = None) -> Iterator[None]:
    """`pin` for the block; what was pinned before comes back after it."""
    global _pins
    before = _pins
    pin(time=time, stamps=stamps, token=token)
    try:
        yield
    finally:
        _pins = before


def _utc(moment: datetime | None) -> datetime | None:
    return moment.astimezone(UTC) if moment is not None else None
