from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import PLAN_4, make_repo


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own okstra home, config, agent home and git identity."""
    home = tmp_path / "home"
    home.mkdir()
    (home / ".gitconfig").write_text(
        "[user]\n\tname = Test\n\temail = test@example.com\n"
        "[init]\n\tdefaultBranch = main\n[commit]\n\tgpgsign = false\n"
    )
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("OKSTRA_HOME", str(tmp_path / "okstra-home"))
    monkeypatch.setenv("OKSTRA_CONFIG", str(tmp_path / "okstra-config.toml"))
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "agent-home"))
    for name in ("NO_COLOR", "OKSTRA_DEBUG", "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        monkeypatch.delenv(name, raising=False)
    import os

    for name in list(os.environ):
        # TEXTUAL_SNAPSHOT_*: pytest-textual-snapshot's own work dir, not a Textual setting
        if name.startswith("TEXTUAL_") and not name.startswith("TEXTUAL_SNAPSHOT_"):
            monkeypatch.delenv(name, raising=False)
    from okstra_engine.config import settings

    tmux_server = _private_tmux(monkeypatch)
    settings.cache_clear()
    yield home
    settings.cache_clear()
    tmux_server.close()


class _PrivateTmux:
    """The test's own tmux server (`tmux -L okstra-test-…`): no test ever reaches the
    person's sessions; killed at the end of the test when one was started."""

    def __init__(self, name: str) -> None:
        import shutil

        self.name = name
        self.program = shutil.which("tmux")  # a test may take tmux off PATH

    def close(self) -> None:
        import subprocess

        from okstra_engine import tmux

        socket = tmux.socket_path()
        if self.program is not None and socket.exists():
            subprocess.run([self.program, "-L", self.name, "kill-server"], capture_output=True, check=False)
            socket.unlink(missing_ok=True)  # tmux leaves it behind


def _private_tmux(monkeypatch: pytest.MonkeyPatch) -> _PrivateTmux:
    import secrets

    from okstra_engine.tmux import SOCKET_VARIABLE

    name = f"okstra-test-{secrets.token_hex(4)}"
    monkeypatch.setenv(SOCKET_VARIABLE, name)
    monkeypatch.delenv("TMUX", raising=False)
    return _PrivateTmux(name)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


@pytest.fixture
def plan_file(tmp_path: Path) -> Path:
    path = tmp_path / "plan.md"
    path.write_text(PLAN_4)
    return path


@pytest.fixture
def task(repo: Path, plan_file: Path):
    """A registered project with task auth/login and an approved 4-stage plan."""
    from okstra_engine.plans import import_plan
    from okstra_engine.projects import init_project
    from okstra_engine.slugs import TaskRef
    from okstra_engine.tasks import new_task

    project, _ = init_project(repo, qa_commands=["true"])
    task = new_task(project, TaskRef("auth", "login"), title="Login flow")
    import_plan(task, plan_file, approve=True)
    return task
