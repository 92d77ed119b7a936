"""Titles, groups and folder names are text: the board shows them as they are."""

from __future__ import annotations

import html
import json
import re

import pytest

from tests.tui.driving import board_ready, settle

pytestmark = pytest.mark.timeout(120)

CASES = ["fix [/] bug", "[/]oops", "[bold red]loud[/]", "\x1b[31mred", "rtl \u202egnp.exe", "日本語 [wip]", "a\rb\nc"]


def _screen_text(app) -> str:
    svg = app.export_screenshot()
    rows: dict[float, list[tuple[float, str]]] = {}
    for m in re.finditer(r'<text[^>]*x="([\d.]+)" y="([\d.]+)"[^>]*>(.*?)</text>', svg):
        rows.setdefault(float(m.group(2)), []).append((float(m.group(1)), html.unescape(m.group(3))))
    return "\n".join("".join(t for _, t in sorted(parts)) for _, parts in sorted(rows.items())).replace("\xa0", " ")


@pytest.mark.parametrize("odd", CASES)
async def test_the_board_shows_odd_titles_as_they_are(tmp_path, odd, monkeypatch) -> None:
    from okstra_engine.plans import import_plan
    from okstra_engine.projects import init_project
    from okstra_engine.shown import shown
    from okstra_engine.slugs import TaskRef
    from okstra_engine.tasks import new_task
    from okstra_tui.app import OkstraApp
    from tests.support import make_repo

    monkeypatch.setenv("OKSTRA_LANG", "en")
    project, _ = init_project(make_repo(tmp_path / "[wip] [red]proj"), qa_commands=["true"])
    task = new_task(project, TaskRef("odd", "text"), title=f"task {odd}")
    stage_map = tmp_path / "stage-map.json"
    # a stage title must fit on one line (the plan refuses others); a task title need not
    stage_title = f"stage {odd}" if "\n" not in odd and "\r" not in odd else "stage on one line"
    stage_map.write_text(json.dumps({"stages": [{"stage": 1, "title": stage_title, "depends_on": [], "group": "G"}]}))
    import_plan(task, stage_map, approve=True)
    app = OkstraApp(project=project.root, task=task.ref, lang="en")
    async with app.run_test(size=(160, 40)) as pilot:
        await board_ready(pilot)
        text = _screen_text(app)
        assert shown(stage_title) in text, text
        assert "[wip] [red]proj" in text, text
        assert shown(f"task {odd}") in text, text
        board = app.screen
        await pilot.press("escape")  # the phase picker
        await settle(pilot, lambda: app.screen is not board and getattr(app.screen, "loaded", True))
        await settle(pilot, lambda: shown(f"task {odd}") in _screen_text(app))
        picker = app.screen
        await pilot.press("escape")  # the task list
        await settle(pilot, lambda: app.screen is not picker)
        await settle(pilot, lambda: shown(f"task {odd}") in _screen_text(app))
        assert "[wip] [red]proj" in _screen_text(app)
