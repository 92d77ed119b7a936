"""Whole-file writes keep the file's mode; a new file gets what the umask gives."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from okstra_engine.fsio import atomic_write_text
from okstra_engine.projects import config_path, init_project
from tests.support import git


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_a_rewrite_keeps_the_mode(tmp_path) -> None:
    path = tmp_path / "doc.json"
    path.write_text("{}")
    for mode in (0o644, 0o640, 0o600, 0o664):
        path.chmod(mode)
        atomic_write_text(path, '{"a": 1}')
        assert _mode(path) == mode and path.read_text() == '{"a": 1}'


def test_a_new_file_gets_the_umask_mode(tmp_path) -> None:
    mask = os.umask(0o022)
    os.umask(mask)
    atomic_write_text(tmp_path / "new.json", "{}")
    assert _mode(tmp_path / "new.json") == 0o666 & ~mask


def test_project_json_and_info_exclude_keep_their_modes(repo) -> None:
    exclude = repo / ".git" / "info" / "exclude"
    exclude.chmod(0o644)
    init_project(repo)
    assert _mode(exclude) == 0o644 and "/.okstra/" in exclude.read_text()
    config_path(repo).chmod(0o664)
    init_project(repo, qa_commands=["pytest -q"])  # rewrites project.json
    assert _mode(config_path(repo)) == 0o664


def test_a_symlinked_info_exclude_is_written_through(tmp_path, repo) -> None:
    """A person who links `info/exclude` to a shared list keeps the link and the list's mode."""
    shared = tmp_path / "shared-exclude"
    shared.write_text("*.log\n")
    shared.chmod(0o640)
    exclude = repo / ".git" / "info" / "exclude"
    exclude.unlink()
    exclude.symlink_to(shared)
    init_project(repo)
    assert exclude.is_symlink() and os.readlink(exclude) == str(shared)
    assert shared.read_text() == "*.log\n/.okstra/\n" and _mode(shared) == 0o640
    assert git(repo, "status", "--porcelain") == ""


def test_a_symlink_okstra_did_not_make_is_replaced_not_followed(tmp_path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    link = tmp_path / "doc.json"
    link.symlink_to(victim)
    atomic_write_text(link, "{}")
    assert victim.read_text() == "precious" and not link.is_symlink() and link.read_text() == "{}"
