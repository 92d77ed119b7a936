"""The demo project, built at a fixed moment, and an app whose clock is frozen there."""

from __future__ import annotations

import asyncio
import inspect
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from okstra_tui.driving import board_ready, settle  # noqa: F401  (the tests import them from here)

NOW = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)
"""When the demo was built; the apps' clocks run a minute later."""
SIZE = (120, 36)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run `async def` tests in a fresh event loop (Pilot needs one; no plugin needed)."""
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    kwargs = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    asyncio.run(pyfuncitem.obj(**kwargs))
    return True


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


def text_of(widget) -> str:
    """The plain text a Static shows, whatever it was given (str, Text, Content, rich)."""
    import io

    from rich.console import Console
    from rich.text import Text
    from textual.content import Content

    content = widget.content
    if isinstance(content, (str, Text, Content)):
        return str(content) if not isinstance(content, Text) else content.plain
    console = Console(width=400, file=io.StringIO(), color_system=None, record=True)
    console.print(content)
    return console.export_text()
