"""File writes that never leave half a file, and appends that never glue lines."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path

from . import faults


def atomic_write_text(path: Path, text: str, *, durable: bool = True) -> None:
    """Replace `path` with `text` so readers see the old or the new file, never a mix.
    `durable=False` skips the fsyncs: for caches, which a crash may lose but not tear."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        faults.point("fsio.before-replace")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if durable:
        _fsync_dir(path.parent)


def append_line(path: Path, line: str) -> None:
    """Append one line with a single O_APPEND write, then fsync.

    When a crash left the file without a final newline, the write starts with one so
    the new row is not glued onto the torn line (which stays skipped and reported).
    When the disk takes only part of the line, that part is cut off again (unless another
    process appended since: then it stays, a torn line readers skip) and OSError says so.
    """
    if "\n" in line:
        raise ValueError("a ledger line must not contain a newline")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        prefix = b"\n" if size > 0 and os.pread(fd, 1, size - 1) != b"\n" else b""
        data = prefix + line.encode("utf-8") + b"\n"
        if faults.armed("fsio.append-torn"):  # tests only: die in the middle of the line
            os.write(fd, data[: len(data) // 2])
            faults.kill()
        written = os.write(fd, data)
        if written != len(data):  # a full disk can take part of a line: never leave it there
            if os.fstat(fd).st_size == size + written:
                os.ftruncate(fd, size)
            raise OSError(
                errno.ENOSPC,
                f"No space left on device (only {written} of {len(data)} bytes of a line fitted)",
                str(path),
            )
        os.fsync(fd)
        faults.point("fsio.appended")
    finally:
        os.close(fd)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_dir(final: Path, files: dict[str, str], *, fault_prefix: str | None = None) -> None:
    """Create the folder `final` holding `files` (name → text) all at once: built aside
    under a hidden name and renamed into place, so a reader or a crash never sees it half
    made. `fault_prefix` names the kill points the reliability tests use."""

    def point(name: str) -> None:
        if fault_prefix is not None:
            faults.point(f"{fault_prefix}.{name}")

    import shutil

    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        for index, (name, text) in enumerate(files.items()):
            atomic_write_text(staging / name, text)
            if index == 0:
                point("run-half-written")
        point("run-staged")
        os.rename(staging, final)
        point("run-renamed")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
