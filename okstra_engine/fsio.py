"""File writes that never leave half a file, appends that never glue lines, and folder
moves that never lose data (even across file systems)."""

from __future__ import annotations

import errno
import os
import stat

from . import faults

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

# pathlib, shutil, tempfile and contextlib are imported where used: the agent's hook
# appends its row with `append_line` in a process that loads none of them


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# read once, while the process has one thread: setting it back and forth later would race
_NEW_FILE_MODE = 0o666 & ~_umask()


def atomic_write_text(path: Path, text: str, *, durable: bool = True, through_symlink: bool = False) -> None:
    """Replace `path` with `text` so readers see the old or the new file, never a mix.

    The file keeps its mode (a new one gets what the umask gives, as `open` would). A
    symlink at `path` is replaced, never followed, unless `through_symlink` (for files of
    the person's own git setup, such as a linked `info/exclude`): then its target is
    rewritten. `durable=False` skips the fsyncs: for caches, which a crash may lose but
    not tear."""
    import contextlib
    import tempfile
    from pathlib import Path

    if through_symlink:
        path = Path(os.path.realpath(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        old = os.lstat(path)
        mode = stat.S_IMODE(old.st_mode) if stat.S_ISREG(old.st_mode) else _NEW_FILE_MODE
    except FileNotFoundError:
        mode = _NEW_FILE_MODE
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
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
        fsync_dir(path.parent)


def read_bytes_nofollow(path: Path, *, limit: int | None = None) -> bytes | None:
    """A regular file's bytes (its first `limit`), never through a link; None when it is
    missing, a link, not a regular file, or unreadable. For files an agent may have
    replaced: what okstra did not make is not followed."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            return handle.read() if limit is None else handle.read(limit)
        except OSError:
            return None


def read_text_nofollow(path: Path, *, limit: int | None = None) -> str | None:
    """`read_bytes_nofollow` as UTF-8 text (bad bytes replaced), or None."""
    data = read_bytes_nofollow(path, limit=limit)
    return None if data is None else data.decode("utf-8", errors="replace")


def refuse_links(base: Path, path: Path) -> None:
    """Refuse when `path`, or a folder between `base` and it, is a symbolic link: under
    `.okstra/` okstra makes no links, so one there was put by someone else, and writing
    through it would write wherever it points. Parts that do not exist yet are fine."""
    from .errors import OkstraError

    here = base
    for part in path.relative_to(base).parts:
        here = here / part
        try:
            if not stat.S_ISLNK(os.lstat(here).st_mode):
                continue
        except FileNotFoundError:
            return
        raise OkstraError(
            f"{here} is a symbolic link; okstra never follows a link it did not make in its own folders",
            f"remove it (okstra makes a plain folder or file there): rm {here}",
        )


def append_line(path: str | os.PathLike[str], line: str) -> None:
    """Append one line with a single O_APPEND write, then fsync.

    When a crash left the file without a final newline, the write starts with one so
    the new row is not glued onto the torn line (which stays skipped and reported).
    When the disk takes only part of the line, that part is cut off again (unless another
    process appended since: then it stays, a torn line readers skip) and OSError says so.
    """
    if "\n" in line:
        raise ValueError("a ledger line must not contain a newline")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    try:  # never through a link: the ledger's link would append wherever it points
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
        from .errors import OkstraError

        raise OkstraError(
            f"{path} is a symbolic link; okstra appends only to the file it made",
            f"remove the link (okstra makes the file again): rm {path}",
        ) from None
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


def fsync_dir(directory: Path) -> None:
    """Make a rename or a new entry in `directory` survive a crash (best effort)."""
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
    import tempfile
    from pathlib import Path

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


# ---------------------------------------------------------------------------- moving trees

_STAGING_SUFFIX = ".okstra-partial"


def remove_tree(path: Path, *, fault_prefix: str | None = None) -> None:
    """Remove a directory tree whose complete copy is safe elsewhere, then make the
    removal durable. `fault_prefix` names the kill point the reliability tests use."""
    if fault_prefix is not None and faults.armed(f"{fault_prefix}.mid-remove"):
        for found in walk(path):  # tests only: die with the tree half removed
            if found.is_file() and not found.is_symlink():
                found.unlink()
                break
        faults.kill()
    import shutil

    shutil.rmtree(path)
    fsync_dir(path.parent)


def move_tree(src: Path, dst: Path, *, fault_prefix: str | None = None) -> str:
    """Move directory `src` to the free name `dst`, never losing data; returns how
    (`rename` or `copy`).

    One `rename` when both are on one file system; otherwise (EXDEV) a copy to a hidden
    staging name beside `dst`, fsynced, compared byte for byte with `src`, renamed into
    place, and only then is `src` removed. So `dst` only ever holds a complete copy, and
    the data is complete in at least one place whenever the process dies.
    """

    def point(name: str) -> None:
        if fault_prefix is not None:
            faults.point(f"{fault_prefix}.{name}")

    import shutil

    if os.path.lexists(dst):
        raise FileExistsError(errno.EEXIST, "destination exists", str(dst))
    try:
        os.rename(src, dst)  # OSError(EXDEV) across file systems: copied below
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    else:
        fsync_dir(src.parent)
        fsync_dir(dst.parent)
        return "rename"
    _check_plain_tree(src)
    staging = dst.with_name(f".{dst.name}{_STAGING_SUFFIX}")
    if staging.is_symlink():
        staging.unlink()
    elif staging.exists():
        shutil.rmtree(staging)  # our own half-made copy from a crash: the source is whole
    try:
        shutil.copytree(src, staging, symlinks=True)
        point("copied")
        _fsync_tree(staging)
        if not same_tree(src, staging):
            raise OSError(errno.EIO, "the copy differs from the original", str(staging))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    point("staged")
    os.replace(staging, dst)  # same file system: the final name appears complete
    fsync_dir(dst.parent)
    point("copy-in-place")
    remove_tree(src, fault_prefix=fault_prefix)
    return "copy"


def walk(root: Path) -> Iterator[Path]:
    """Every entry under `root` (not `root` itself), not following links."""
    from pathlib import Path

    stack = [root]
    while stack:
        current = stack.pop()
        with os.scandir(current) as it:
            for entry in it:
                path = Path(entry.path)
                yield path
                if entry.is_dir(follow_symlinks=False):
                    stack.append(path)


def is_subset(small: Path, big: Path) -> bool:
    """Every entry of `small` is in `big` with the same type and the same bytes/target."""
    try:
        if not small.is_dir() or small.is_symlink() or not big.is_dir() or big.is_symlink():
            return False
        for path in walk(small):
            other = big / path.relative_to(small)
            a, b = path.lstat(), os.lstat(other) if os.path.lexists(other) else None
            if b is None or stat.S_IFMT(a.st_mode) != stat.S_IFMT(b.st_mode):
                return False
            if stat.S_ISLNK(a.st_mode):
                if os.readlink(path) != os.readlink(other):
                    return False
            elif stat.S_ISREG(a.st_mode):
                if a.st_size != b.st_size or not _same_bytes(path, other):
                    return False
            elif not stat.S_ISDIR(a.st_mode):
                return False
        return True
    except OSError:
        return False


def same_tree(a: Path, b: Path) -> bool:
    return is_subset(a, b) and sum(1 for _ in walk(a)) == sum(1 for _ in walk(b))


def _check_plain_tree(root: Path) -> None:
    for path in walk(root):
        mode = path.lstat().st_mode
        if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
            raise OSError(errno.EINVAL, "not a file, folder or link; okstra will not copy it", str(path))


def _fsync_tree(root: Path) -> None:
    for path in walk(root):
        if path.is_symlink():
            continue
        if path.is_dir():
            fsync_dir(path)
            continue
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    fsync_dir(root)


def _same_bytes(a: Path, b: Path) -> bool:
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(1 << 20), fb.read(1 << 20)
            if x != y:
                return False
            if not x:
                return True
