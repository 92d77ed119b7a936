"""Making a new worktree ready to work in, after git made it: the `.worktreeinclude` copy
(`worktree_include`), links to the checkout's shared folders (`okstra init --symlink-dir`),
then the person's setup commands (`okstra init --setup-command`), in that order.

The setup commands are the person's own words from their own command line, kept in the
okstra home (`projects.Setup`), so they run through the shell; no command is ever taken
from a file in the project, which its agents can write. Their output goes to the run's
`setup.log`; a command that fails refuses the prepare (`setup.failed`), which then takes
the new worktree back.

A worktree is ready once all of it ran: a mark in its own git folder says so
(`okstra-ready`), so a worktree a killed prepare left unready is made ready by the next
prepare that reuses it (a copy never overwrites, so doing it again adds only what is
missing).

A linked folder points at the checkout's own (`node_modules`): every worktree shares it,
and the prompt tells the agent to read it and never change it. It is made only where the
worktree has nothing, never through a link, and only when git ignores the link there.
"""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from . import git, worktree_include
from .errors import OkstraError
from .projects import Project, Setup
from .refusals import Refusal

LOG_NAME = "setup.log"
TAIL_LINES = 20
READY_MARK = "okstra-ready"
"""In the worktree's own git folder (`.git/worktrees/NAME/`): it went through `make_ready`."""


@dataclass
class Readied:
    """What making one worktree ready did: project-relative files copied and folders
    linked, the setup commands run, and what was left out and why."""

    copied: list[str] = field(default_factory=list)
    linked: list[str] = field(default_factory=list)
    ran: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def check_dir(text: str) -> str:
    """A `--symlink-dir` as okstra keeps it (`node_modules`, `web/node_modules`), or an
    error when it is not a folder inside the project."""
    path = PurePosixPath(text.strip())
    if not text.strip() or path.is_absolute() or text.strip().startswith("~") or ".." in path.parts:
        raise OkstraError(
            f"--symlink-dir {text!r} is not a folder inside the project",
            "name it relative to the project's folder: --symlink-dir node_modules",
        )
    if str(path) == ".":
        raise OkstraError(
            "--symlink-dir . would link the whole project", "name a folder in it: --symlink-dir node_modules"
        )
    if path.parts[0] in worktree_include.NEVER:
        raise OkstraError(f"--symlink-dir {text!r} is git's or okstra's own folder", "name a folder of the project's")
    return str(path)


def is_ready(worktree: Path) -> bool:
    return git.git_path(worktree, READY_MARK).is_file()


def mark_ready(worktree: Path) -> None:
    git.git_path(worktree, READY_MARK).write_text("", encoding="utf-8")


def make_ready(
    project: Project,
    chosen: worktree_include.Copied,
    setup: Setup,
    into: Path,
    log: Path,
    *,
    what: str,
    say: Callable[[str], None],
) -> Readied:
    """Copy, link, then run the setup commands in `into` (the project's folder of a new
    worktree); `log` collects the commands' output (appended: a prepare may make two
    worktrees). Refused when a command fails."""
    copied = worktree_include.copy(project.root, chosen, into)
    done = Readied(copied=copied.files, notes=copied.notes)
    for folder in setup.symlink_dirs:
        why = _link(project.root, folder, into)
        if why:
            done.notes.append(f"{folder}: {why}")
        else:
            done.linked.append(folder)
    for command in setup.commands:
        say(f"okstra: running setup in {what}: {command}")
        _run(command, into, log, project.root)
        done.ran.append(command)
    return done


def _link(root: Path, folder: str, into: Path) -> str | None:
    """Link `into/folder` to the checkout's `root/folder`; why not, or None."""
    source = root / folder
    try:
        found = os.lstat(source)
    except FileNotFoundError:
        return "the project has no such folder: not linked"
    if not stat.S_ISDIR(found.st_mode):
        return "it is not a plain folder in the project (a link or a file): not linked"
    if not Path(os.path.realpath(source)).is_relative_to(os.path.realpath(root)):
        return "it lies outside the project: not linked"
    if why := worktree_include.make_parents(into, folder):
        return f"{why}: not linked"
    dest = into / folder
    if os.path.lexists(dest):
        return "the worktree has it already (tracked, or linked before): not linked"
    if not worktree_include.ignored(into, [folder]):
        return "git does not ignore it in the worktree, so the link would be committed: not linked"
    os.symlink(source, dest, target_is_directory=True)
    return None


def _run(command: str, into: Path, log: Path, root: Path) -> None:
    # a git hook's variables (GIT_DIR…) must not point the command at another repository
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    with log.open("a", encoding="utf-8") as out:
        out.write(f"$ {command}\n  (in {into})\n")
        out.flush()
        code = subprocess.run(
            command,
            check=False,
            shell=True,
            cwd=into,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        ).returncode
        out.write(f"[exit {code}]\n\n")
    if code != 0:
        raise Refusal(
            "setup.failed",
            {
                "command": command,
                "worktree": str(into),
                "code": code,
                "log": str(log),
                "tail": tail(log),
                "root": str(root),
            },
        ).error()


def tail(log: Path, lines: int = TAIL_LINES) -> str:
    text = log.read_text(encoding="utf-8", errors="replace")
    return "\n".join(text.rstrip("\n").splitlines()[-lines:])
