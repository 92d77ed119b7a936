"""The demo project, built at a fixed moment, and an app whose clock is frozen there."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

NOW = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)
"""When the demo was built; the apps' clocks run a minute later."""
SIZE = (120, 36)


@pytest.fixture
def demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from okstra_engine.demo import build_demo

    return use_demo(build_demo(tmp_path / "demo", now=NOW), tmp_path, monkeypatch)


def use_demo(info, cwd: Path, monkeypatch: pytest.MonkeyPatch):
    """Work in the demo `info` describes, from `cwd`, in English: its homes and config
    in the environment, okstra's settings read again."""
    from okstra_engine.config import settings

    for key, value in info.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("OKSTRA_LANG", "en")
    monkeypatch.chdir(cwd)
    settings.cache_clear()
    return info


@pytest.fixture
def make_app(demo):
    """`make_app(board=True, minutes=1, lang="en")`: the app on the demo, clock frozen."""
    from okstra_engine.slugs import TaskRef
    from okstra_tui.app import OkstraApp

    def make(*, board: bool = True, project: bool = True, minutes: float = 1, lang: str = "en", **kwargs):
        moment = NOW + timedelta(minutes=minutes)
        return OkstraApp(
            project=Path(demo.project_root) if project else None,
            task=TaskRef.parse(demo.task) if board else None,
            lang=lang,
            clock=lambda: moment,
            poll_interval=kwargs.pop("poll_interval", 0.05),
            **kwargs,
        )

    return make

