"""Every git call okstra makes goes through this module.

Argument lists only (never a shell string), `--end-of-options` before anything a user
typed, and an environment stripped of inherited `GIT_*` variables so that a hook or an
outer git process cannot point us at another repository. We call the `git` binary
rather than GitPython: a process costs ~2 ms, importing GitPython ~100 ms, and the CLI
is called by agents in loops.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from .errors import OkstraError


class GitError(OkstraError):
    """git said no; `what` carries its message."""


def git_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        LC_ALL="C",
        GIT_TERMINAL_PROMPT="0",
        # user config must not change what we parse: pagers, colour, advice
        GIT_PAGER="cat",
        GIT_CONFIG_COUNT="2",
        GIT_CONFIG_KEY_0="color.ui",
        GIT_CONFIG_VALUE_0="never",
        GIT_CONFIG_KEY_1="advice.detachedHead",
        GIT_CONFIG_VALUE_1="false",
    )
    return env


def run(
    args: list[str],
    cwd: Path | str,
    *,
    check: bool = True,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(
            ["git", *args],
            cwd=cwd,
            env=git_env(),
            input=input,
            capture_output=True,
            text=True,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
    except FileNotFoundError as exc:
        raise OkstraError(
            "git is not installed or not on PATH", "install git 2.38 or newer"
        ) from exc
    if check and proc.returncode != 0:
        message = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
        first = message[0] if message else f"exit {proc.returncode}"
        raise GitError(f"git {args[0]} failed in {cwd}: {first}", "see git's message above")
    return proc


def out(args: list[str], cwd: Path | str) -> str:
    return run(args, cwd).stdout.strip()


def toplevel(path: Path) -> Path | None:
    """The work tree root holding `path`, or None outside git."""
    proc = run(["rev-parse", "--show-toplevel"], path, check=False)
    return Path(proc.stdout.strip()) if proc.returncode == 0 else None


def resolve_commit(repo: Path, rev: str) -> str | None:
    """The full SHA of the commit `rev` names, or None when it names none."""
    proc = run(
        ["rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}"],
        repo,
        check=False,
    )
    return proc.stdout.strip() if proc.returncode == 0 else None


def head(repo: Path) -> str | None:
    return resolve_commit(repo, "HEAD")


def is_ancestor(repo: Path, ancestor: str, descendant: str) -> bool:
    proc = run(["merge-base", "--is-ancestor", ancestor, descendant], repo, check=False)
    return proc.returncode == 0


def git_path(repo: Path, name: str) -> Path:
    """A path inside the git dir (`info/exclude`), right for linked worktrees too."""
    return (repo / out(["rev-parse", "--git-path", name], repo)).resolve()


def commit_paths(worktree: Path, paths: list[str], message: str, *, author: tuple[str, str] | None = None) -> str:
    """Stage `paths` and commit them; return the new commit's SHA."""
    run(["add", "--", *paths], worktree)
    identity = ["-c", f"user.name={author[0]}", "-c", f"user.email={author[1]}"] if author else []
    run([*identity, "commit", "--quiet", "--no-verify", "-m", message, "--", *paths], worktree)
    return out(["rev-parse", "HEAD"], worktree)
