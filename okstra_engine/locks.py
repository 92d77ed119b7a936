"""Cross-process mutexes that the OS frees when their holder dies (flock)."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


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


def task_lock_path(project_id: str, task_group: str, task_id: str) -> Path:
    """`<okstra home>/locks/tasks/PROJECT/GROUP/ID.lock` (each part a slug, so no clash)."""
    from .locations import okstra_home

    return okstra_home() / "locks" / "tasks" / project_id / task_group / f"{task_id}.lock"


@contextmanager
def task_mutex(
    project_id: str,
    task_group: str,
    task_id: str,
    *,
    timeout: float | None = None,
    on_wait: Callable[[Path], None] | None = None,
) -> Iterator[None]:
    """The per-task mutex: one okstra process at a time changes a task's worktrees,
    reservations and QA manifest. Its holder dying (even by SIGKILL) frees it.

    `on_wait` is called once if another process holds it; after `timeout` seconds of
    waiting an OkstraError says so (None waits as long as it takes).
    """
    path = task_lock_path(project_id, task_group, task_id)
    with file_lock(path, timeout=timeout, on_wait=on_wait, what=f"{task_group}/{task_id}"):
        yield


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
