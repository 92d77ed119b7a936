"""The task's board, read by a child process while the terminal UI starts.

A bare Textual app spends most of its start importing Textual. Before okstra's first
board frame the engine costs about as much again: pydantic, the document models, then the
status itself. The two are independent until the frame, and the machine has a second
core, so `read_first_board` forks before Textual is imported. The child loads the
engine, reads the board, and sends it back pickled as plain data (`BoardData.plain`).
Meanwhile the parent imports Textual. The board arrives without a pydantic model in it,
so the UI paints it before it has loaded the engine. The engine loads after the first
frame, with the board's first full read.

Where there is no fork (Windows), the process already runs threads, or the child sends
nothing, the board is read in this process instead.
"""

from __future__ import annotations

import os
import pickle
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from okstra_engine.errors import OkstraError
from okstra_engine.slugs import TaskRef

if TYPE_CHECKING:
    from .model import BoardData


class FirstBoard:
    """A board being read; `result()` waits for it (the UI calls it from a worker)."""

    def __init__(self, root: Path, ref: TaskRef, now: datetime, receive) -> None:
        self._args = (root, ref, now)
        self._payload: tuple | None = None
        self._thread = threading.Thread(target=self._receive, args=(receive,), name="okstra-first-board", daemon=True)
        self._thread.start()

    def _receive(self, receive) -> None:
        try:
            self._payload = receive()
        except Exception:  # noqa: BLE001 - a child that died or sent garbage: result() reads the board here
            self._payload = None

    def ready(self) -> bool:
        """The board (or the reason it cannot be read) has arrived: `result()` returns at
        once."""
        return not self._thread.is_alive() and self._payload is not None

    def result(self) -> BoardData:
        self._thread.join()
        payload = self._payload
        if payload is not None and payload[0] == "board":
            return payload[1]
        if payload is not None and payload[0] == "error":
            raise OkstraError(payload[1], payload[2])
        from .model import load_board

        return load_board(*self._args)


def read_first_board(root: Path, ref: TaskRef, *, now: datetime | None = None) -> FirstBoard:
    """Start reading the board of `ref` in `root` as of `now` (default: the clock's).
    Call it before importing Textual: a fork copies the process as it is, and a small
    one copies fast."""
    now = now or datetime.now(UTC)
    # a fork copies only the calling thread: a lock another thread held would stay held
    # in the child for good (okstra forks before it starts any thread)
    if not hasattr(os, "fork") or threading.active_count() > 1:
        return FirstBoard(root, ref, now, lambda: _read(root, ref, now))
    read_end, write_end = os.pipe()
    sys.stdout.flush()  # what the parent printed must not be written twice
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        _child(write_end, root, ref, now)
    os.close(write_end)
    return FirstBoard(root, ref, now, lambda: _from_child(pid, read_end))


def _read(root: Path, ref: TaskRef, now: datetime) -> tuple:
    from .model import load_board

    try:
        return ("board", load_board(root, ref, now).plain())
    except OkstraError as exc:
        return ("error", exc.what, exc.how)


def _child(write_end: int, root: Path, ref: TaskRef, now: datetime) -> None:
    """Read the board, write it to `write_end`, and leave without running the parent's
    exit handlers. The terminal is the parent's: nothing of the child's may reach it."""
    code = 1
    try:
        quiet = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(quiet, fd)
        data = pickle.dumps(_read(root, ref, now), protocol=pickle.HIGHEST_PROTOCOL)
        with open(write_end, "wb") as out:
            out.write(data)
        code = 0
    finally:
        os._exit(code)


def _from_child(pid: int, read_end: int) -> tuple | None:
    chunks = []
    with open(read_end, "rb") as pipe:
        while chunk := pipe.read(1 << 16):
            chunks.append(chunk)
    os.waitpid(pid, 0)
    return pickle.loads(b"".join(chunks)) if chunks else None
