"""`.worktreeinclude`: the files of the person's checkout a new worktree needs but git does
not carry (`.env`, `config/local.toml`), copied into each worktree okstra makes.

The file is the one Claude Code, Codex, Conductor and ccmanager read: `.gitignore` syntax,
at the project's root (only there: a nested one is not read), and a file is copied only
when a pattern matches it AND git ignores it in the checkout, so nothing tracked is ever
duplicated. git decides both (`ls-files --others --ignored --exclude-from`, then
`check-ignore`); for a project in a subfolder of its repository the patterns that git
would anchor at the file's own folder are anchored at the project's folder.

Beyond the other tools: a pattern that leaves the project (a `..` segment, a path of the
machine such as `/etc/hosts` or `~/…`) is refused, and so is a link (the file itself or a
matched one) pointing outside the project; a link pointing inside is not copied. In the
worktree a file is written only where nothing is (a tracked file is never overwritten),
never through a link, and only when git ignores it there too, so it is never committed.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from . import git
from .refusals import Refusal

INCLUDE_FILE = ".worktreeinclude"
NEVER = (".git", ".okstra")
"""Top folders never copied whatever a pattern says: git's own, and okstra's."""
_GLOB = "*?[\\"
_HOME = re.compile(r"~[\w.-]*(/|$)")


@dataclass(frozen=True)
class Copied:
    """What went into one worktree: project-relative paths, and why others did not."""

    files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def read_patterns(root: Path) -> list[str] | None:
    """The lines of the project's `.worktreeinclude` (None when there is none), refused
    when the file is a link or a pattern leaves the project."""
    path = root / INCLUDE_FILE
    try:
        found = os.lstat(path)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(found.st_mode):
        raise Refusal("include.link_out", {"path": str(path), "target": os.readlink(path)}).error()
    if not stat.S_ISREG(found.st_mode):
        return None
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    for number, line in enumerate(lines, 1):
        if _leaves(root, line):
            raise Refusal("include.outside", {"file": str(path), "line": number, "pattern": line}).error()
    return lines


def _body(line: str) -> str:
    """A pattern line without its negation and trailing blanks ('' for a comment)."""
    if line.startswith("#"):
        return ""
    return line.removeprefix("!").rstrip(" \t")


def _leaves(root: Path, line: str) -> bool:
    body = _body(line)
    if not body:
        return False
    # `~/x` and `~me/x` are a home folder to a shell; `~$*.docx` is a file name
    if ".." in body.split("/") or _HOME.match(body):
        return True
    # `/name` is anchored at the project's root in gitignore; a path of the machine
    # (`/etc/hosts`, `/home/me/.env`) is what the person meant when its first folder
    # exists at the machine's root and not in the project
    first = body.lstrip("/").split("/", 1)[0]
    if body.startswith("/") and first and not any(c in first for c in _GLOB):
        return os.path.lexists(Path("/") / first) and not os.path.lexists(root / first)
    return False


def _anchored_at(prefix: str, line: str) -> str:
    """`line` as a pattern of the repository's root exclude file, meaning what it means in
    a `.gitignore` of the folder `prefix` (`services/api/`): a pattern with a slash at its
    start or middle is relative to that folder. One without (`*.local`, `.env`) matches at
    any depth; the pathspec `.` keeps it inside the project."""
    body = _body(line)
    if not prefix or not body or "/" not in body.rstrip("/"):
        return line
    escaped = "".join("\\" + c if c in _GLOB else c for c in prefix)
    return ("!" if line.startswith("!") else "") + "/" + escaped + body.lstrip("/")


def select(root: Path, prefix: str) -> Copied:
    """The checkout's files to copy (project-relative), for the project at `root`
    (`prefix`: its folder in its repository). Refused as `read_patterns` refuses, and
    when a matched file is a link pointing outside the project."""
    lines = read_patterns(root)
    if not lines:
        return Copied()
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", suffix=INCLUDE_FILE, delete=False) as handle:
        handle.write("\n".join(_anchored_at(prefix, line) for line in lines) + "\n")
    try:
        listed = _nul_split(
            git.run(
                ["ls-files", "-z", "--others", "--ignored", f"--exclude-from={handle.name}", "--", "."], root
            ).stdout
        )
    finally:
        os.unlink(handle.name)
    listed = [p for p in listed if p.split("/", 1)[0] not in NEVER]
    chosen = Copied()
    real_root = Path(os.path.realpath(root))
    for rel in ignored(root, listed):
        source = root / rel
        mode = os.lstat(source).st_mode
        if stat.S_ISLNK(mode):
            target = Path(os.path.realpath(source))
            if not target.is_relative_to(real_root):
                raise Refusal("include.link_out", {"path": str(source), "target": os.readlink(source)}).error()
            chosen.notes.append(f"{rel} is a link: not copied (okstra copies files, and follows no link)")
        elif stat.S_ISREG(mode) and Path(os.path.realpath(source.parent)).is_relative_to(real_root):
            chosen.files.append(rel)
    return chosen


def ignored(where: Path, paths: list[str]) -> list[str]:
    """Which of `paths` (relative to `where`) git ignores there, in their order."""
    if not paths:
        return []
    proc = git.run(["check-ignore", "-z", "--stdin"], where, check=False, input="\0".join(paths) + "\0")
    if proc.returncode not in (0, 1):
        raise git.GitError(f"git check-ignore failed in {where}: {proc.stderr.strip()}", "see git's message above")
    said = set(_nul_split(proc.stdout))
    return [p for p in paths if p in said]


def copy(root: Path, chosen: Copied, into: Path) -> Copied:
    """Copy the `chosen` files of the checkout `root` into the project folder `into` of a
    new worktree: only where nothing is, never through a link, and only what git ignores
    there as well (anything else would be committed with the stage's work)."""
    done = Copied(notes=list(chosen.notes))
    there = set(ignored(into, chosen.files))
    for rel in chosen.files:
        if os.path.lexists(into / rel):
            done.notes.append(f"{rel}: the worktree has it already (tracked, or copied before): kept as it is")
        elif rel not in there:
            done.notes.append(
                f"{rel}: git does not ignore it in the worktree, so it was not copied (it would be committed)"
            )
        elif why := _write_copy(root / rel, into, rel):
            done.notes.append(f"{rel}: {why}")
        else:
            done.files.append(rel)
    return done


def make_parents(into: Path, rel: str) -> str | None:
    """Make the folders above `into/rel`, never through a link (the worktree's commit may
    track one where the checkout has a folder); why not, or None."""
    here = into
    for part in Path(rel).parts[:-1]:
        here = here / part
        try:
            found = os.lstat(here)
        except FileNotFoundError:
            here.mkdir()
            continue
        if not stat.S_ISDIR(found.st_mode):
            return f"{here.relative_to(into)} is not a folder in the worktree"
    return None


def _write_copy(source: Path, into: Path, rel: str) -> str | None:
    """Copy one file; the reason it was not, or None."""
    if why := make_parents(into, rel):
        return f"{why}: not copied"
    dest = into / rel
    src_fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(src_fd, "rb") as src:
        mode = stat.S_IMODE(os.fstat(src.fileno()).st_mode)
        try:
            dest_fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
        except FileExistsError:
            return "the worktree has it already: kept as it is"
        try:
            with os.fdopen(dest_fd, "wb") as out:
                shutil.copyfileobj(src, out)
        except BaseException:
            with contextlib.suppress(OSError):
                dest.unlink()
            raise
    return None


def _nul_split(text: str) -> list[str]:
    return [p for p in text.split("\0") if p]
