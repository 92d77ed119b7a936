"""Fault points for the reliability tests: a place where the test suite may SIGKILL okstra.

`point("worktree.added")` does nothing unless the environment variable `OKSTRA_FAULT`
names that point; then this very process dies by SIGKILL on the spot, as if the machine
had lost power or the OOM killer had struck between two steps. The tests
(`tests/reliability/`) use it to prove that every interruption leaves okstra's state
valid, or repaired by the next command.

`OKSTRA_FAULT` forms (comma-separated alternatives):

- `NAME`    the first time point NAME is reached;
- `NAME@K`  the K-th time point NAME is reached (K ≥ 1), e.g. between the 2nd and 3rd merge;
- `@K`      the K-th fault point reached in this process, whatever its name (to walk
            every point of a command in order).

`OKSTRA_FAULT_TRACE=FILE` appends the name of each point reached, one per line (how
the tests enumerate the points a command passes).

`OKSTRA_FAULT_FULL=NAME` makes point NAME fail as a full disk would (OSError ENOSPC)
every time it is reached, so a test can stop a command at a chosen step without killing
it (and kill it while it cleans up).

Nothing else reads these variables; unset (always, outside the tests), a point costs
one environment lookup.
"""

from __future__ import annotations

import errno
import os

ENV = "OKSTRA_FAULT"
TRACE_ENV = "OKSTRA_FAULT_TRACE"
FULL_ENV = "OKSTRA_FAULT_FULL"

_hits: dict[str, int] = {}
_total = 0


def armed(name: str) -> bool:
    """Count one passage through point `name`; True when this passage is the one
    `OKSTRA_FAULT` names (the caller then does its partial work and calls `kill`)."""
    wanted = os.environ.get(ENV)
    trace = os.environ.get(TRACE_ENV)
    if not wanted and not trace:
        return False
    global _total
    _total += 1
    _hits[name] = count = _hits.get(name, 0) + 1
    if trace:
        with open(trace, "a", encoding="utf-8") as handle:
            handle.write(name + "\n")
    if not wanted:
        return False
    for spec in wanted.split(","):
        what, _, nth = spec.strip().partition("@")
        k = int(nth) if nth.isdigit() else 1
        if (what == name and count == k) or (not what and nth and _total == k):
            return True
    return False


def kill() -> None:
    """Die now, without cleanup, flush or exit handlers."""
    import signal  # here, not at the top: the agent's hook imports this module on every event

    os.kill(os.getpid(), signal.SIGKILL)


def point(name: str) -> None:
    """A place between two steps that matter: die here when `OKSTRA_FAULT` says so (or
    fail like a full disk when `OKSTRA_FAULT_FULL` does)."""
    if armed(name):
        kill()
    full = os.environ.get(FULL_ENV)
    if full and full == name:
        raise OSError(errno.ENOSPC, f"No space left on device ({FULL_ENV}={name})")
