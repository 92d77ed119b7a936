"""Cross-process mutexes that the OS frees when their holder dies (flock), and the task
mutex every engine operation that reads a task's state and then writes it takes."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .tasks import Task

LOCK_TIMEOUT_S = 900.0
"""How long an engine operation waits for another okstra process on the same task."""

Notice = Callable[[str], None]


@contextmanager
def file_lock(
    path: Path,
    *,
    timeout: float | None = None,
    on_wait: Callable[[Path], None] | None = None,
    what: str | None = None,
) -> Iterator[None]:
    """Hold an exclusive flock on `path` (created if needed) for the block.

    `on_wait` is called once if another process holds it; after `timeout` seconds of
    waiting an OkstraError names `what` (None waits as long as it takes). The lock file
    stays behind on purpose: it is empty, and deleting it while another process waits
    on it would let two holders in.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait(path)
            _wait_for_lock(fd, path, timeout, what or path.name)
        yield
    finally:
        os.close(fd)


def task_lock_path(task: Task) -> Path:
    """`<okstra home>/locks/tasks/PROJECT/GROUP/ID.lock` (each part a slug, so no clash)."""
    from .locations import okstra_home

    return okstra_home() / "locks" / "tasks" / task.project.id / task.ref.group / f"{task.ref.id}.lock"


def waiting_message(task: Task) -> str:
    """What an operation says, once, when it has to wait for the task mutex."""
    return f"okstra: waiting for another okstra process on {task.ref} …"


# The depth of each task mutex this thread holds, by lock path. flock is per open file:
# a second open of the same lock file in this process would wait on the first forever,
# so a thread that holds the mutex enters it again without locking (prepare and handoff
# call reconcile and carry backfill, which take it too). Other threads open their own
# file and wait like another process would.
_held = threading.local()


def _depths() -> dict[str, int]:
    depths: dict[str, int] | None = getattr(_held, "depths", None)
    if depths is None:
        depths = _held.depths = {}
    return depths


@contextmanager
def task_mutex(task: Task, *, timeout: float | None = LOCK_TIMEOUT_S, on_wait: Notice | None = None) -> Iterator[None]:
    """The per-task mutex: one okstra process (one thread) at a time reads and changes a
    task's ledger, worktrees, reservations and QA manifest. Its holder dying (even by
    SIGKILL) frees it. Re-entrant within a thread.

    When another holder makes it wait, `on_wait` gets `waiting_message(task)` once; after
    `timeout` seconds an OkstraError says so (None waits as long as it takes).
    """
    path = task_lock_path(task)
    key = str(path)
    depths = _depths()
    if depths.get(key):
        depths[key] += 1
        try:
            yield
        finally:
            depths[key] -= 1
        return

    def waiting(_: Path) -> None:
        if on_wait is not None:
            on_wait(waiting_message(task))

    with file_lock(path, timeout=timeout, on_wait=waiting, what=str(task.ref)):
        depths[key] = 1
        try:
            yield
        finally:
            del depths[key]


def _wait_for_lock(fd: int, path: Path, timeout: float | None, what: str) -> None:
    if timeout is None:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                from .errors import OkstraError

                raise OkstraError(
                    f"another okstra process has been working on {what} for over {timeout:g} s (it holds {path})",
                    f"wait for it to finish, or find it with: fuser {path}",
                ) from None
            time.sleep(delay)
            delay = min(delay * 2, 0.1)
