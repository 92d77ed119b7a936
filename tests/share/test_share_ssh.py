"""A sync talks to the remote the way the person's git does: their `core.sshCommand`
(a key of their own, a jump host) is used, in batch mode so it never waits on a prompt."""

from __future__ import annotations

from pathlib import Path

from okstra_engine import git as okgit
from tests.support import git, make_repo


def test_a_remote_call_uses_the_persons_ssh_command(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("GIT_SSH_COMMAND", raising=False)
    repo = make_repo(tmp_path / "repo")
    log = tmp_path / "ssh.log"
    ssh = tmp_path / "my-ssh"
    ssh.write_text(f'#!/bin/sh\necho "$@" >> "{log}"\nexit 1\n')
    ssh.chmod(0o755)
    git(repo, "config", "core.sshCommand", str(ssh))
    git(repo, "remote", "add", "team", "ssh://git@example.invalid/team.git")
    proc = okgit.remote_call(["fetch", "team"], repo, timeout=10)
    assert proc is not None and proc.returncode != 0
    said = log.read_text()
    assert "BatchMode=yes" in said and "example.invalid" in said
