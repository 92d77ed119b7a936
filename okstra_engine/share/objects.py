"""Files as a git commit, and back: made with hash-object, mktree and commit-tree (no
work tree, no index), read with ls-tree and cat-file. What another machine wrote is
read as data only: plain files (mode 100644) at the names the reader asks for, never
a link, never a path taken from it."""

from __future__ import annotations

from pathlib import Path

from .. import git

MAX_FILE = 16_000_000
"""A file of another machine larger than this is not read."""


def commit_files(repo: Path, files: dict[str, str], message: str, parent: str | None = None) -> str:
    """A commit whose tree holds `files` (`a/b/c` names nest in folders)."""
    return git.write_commit(repo, _tree(repo, files), message, parent)


def _tree(repo: Path, files: dict[str, str]) -> str:
    here: list[tuple[str, str]] = []
    below: dict[str, dict[str, str]] = {}
    for name, text in files.items():
        first, slash, rest = name.partition("/")
        if slash:
            below.setdefault(first, {})[rest] = text
        else:
            here.append((name, git.write_blob(repo, text)))
    here += [(f"{folder}/", _tree(repo, inner)) for folder, inner in below.items()]
    return git.write_tree(repo, here)


def entries(repo: Path, commit: str, folder: str = "") -> list[tuple[str, str, str, str]]:
    """(mode, type, sha, name) of what `folder` of `commit` holds; [] when it is not a folder there."""
    try:
        return git.list_tree(repo, f"{commit}:{folder}" if folder else f"{commit}^{{tree}}")
    except git.GitError:
        return []


def files_in(repo: Path, commit: str, folder: str = "") -> dict[str, str]:
    """The plain files directly in `folder` of `commit`: name → blob."""
    return {name: sha for mode, kind, sha, name in entries(repo, commit, folder) if mode == "100644" and kind == "blob"}


def folders_in(repo: Path, commit: str, folder: str = "") -> list[str]:
    return [name for _, kind, _, name in entries(repo, commit, folder) if kind == "tree"]


def text_of(repo: Path, blob: str) -> str | None:
    """A blob's text; None when it is too large or not UTF-8."""
    data = git.read_blob(repo, blob)
    if data is None or len(data) > MAX_FILE:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None
