"""Project → task → phase → board, the forms and dialogs, help, palette and language."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import make_repo
from tests.tui.conftest import SIZE
from tests.tui.driving import Notes, board_ready, settle, text_of

pytestmark = pytest.mark.timeout(60)


async def test_walk_the_flow_and_back(make_app, demo) -> None:
    from okstra_tui.screens.board import BoardScreen
    from okstra_tui.screens.phases import PhaseScreen
    from okstra_tui.screens.projects import ProjectsScreen
    from okstra_tui.screens.tasks import TasksScreen

    app, notes = make_app(board=False, project=False), Notes()
    async with app.run_test(size=SIZE, message_hook=notes) as pilot:
        await settle(pilot, lambda: isinstance(app.screen, ProjectsScreen) and app.screen.entries)
        assert [e.id for e in app.screen.entries] == ["shop"]
        await pilot.press("enter")
        await settle(pilot, lambda: isinstance(app.screen, TasksScreen) and app.screen.summaries)
        summary = app.screen.summaries[0]
        assert (
            str(summary.ref),
            summary.plan,
            summary.done,
            summary.not_merged,
            summary.total,
            summary.in_flight,
            summary.auto_stage,
        ) == ("demo/checkout", "approved", 1, 1, 6, 1, 4)  # stage 2 is done, not merged
        await pilot.press("enter")
        await settle(pilot, lambda: isinstance(app.screen, PhaseScreen) and app.screen.choices)
        phases = app.screen
        available = {c.phase: c.available for c in phases.choices}
        assert available == {
            "planning": False,  # stages are done and in flight: a new plan would set them aside
            "implementation": True,
            "final-verification": False,
            "improvement-discovery": True,
            "release-handoff": False,  # the engine's gate: after a passed final verification
        }
        final = next(c for c in phases.choices if c.phase == "final-verification")
        assert final.refusal is not None and final.refusal.code == "phase.stages_not_done"
        assert final.refusal.params == {"task": "demo/checkout", "stages": [3, 4, 5, 6]}
        assert phases.reason_text(final) == "stages 3, 4, 5 and 6 not done"  # its brief; the detail says it in full
        planning = next(c for c in phases.choices if c.phase == "planning")
        assert planning.refusal is not None and planning.refusal.code == "plan.replaces_progress"
        assert phases.reason_text(planning) == (
            "under way (2 of 6 stages done, 1 in flight): a new plan sets that aside (--replace)"
        )
        assert final.refusal.what == (
            "final verification of demo/checkout needs every stage done; stage(s) 3, 4, 5, 6 are not"
        )
        assert phases.query_one("OptionList").highlighted == 1  # implementation
        await pilot.press("down")
        await pilot.press("enter")  # final verification: not available, says why and how
        await settle(pilot)
        assert isinstance(app.screen, PhaseScreen)
        assert f"{final.refusal.what}\nFix: {final.refusal.how}" in notes.texts
        await pilot.press("up")
        await pilot.press("enter")
        board = await board_ready(pilot)
        assert isinstance(board, BoardScreen)
        for expected in (PhaseScreen, TasksScreen, ProjectsScreen):
            await pilot.press("escape")
            await settle(pilot, lambda: isinstance(app.screen, expected))
        await pilot.press("escape")  # the first screen: nothing above it
        assert isinstance(app.screen, ProjectsScreen)


async def test_opened_on_a_task_escape_climbs_the_flow(make_app) -> None:
    from okstra_tui.screens.phases import PhaseScreen
    from okstra_tui.screens.tasks import TasksScreen

    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await board_ready(pilot)
        await pilot.press("escape")
        await settle(pilot, lambda: isinstance(app.screen, PhaseScreen) and app.screen.choices)
        await pilot.press("escape")
        await settle(pilot, lambda: isinstance(app.screen, TasksScreen) and app.screen.summaries)


async def test_register_the_current_directory(make_app, tmp_path: Path, monkeypatch) -> None:
    from okstra_engine.projects import load_project
    from okstra_tui.screens.projects import ProjectsScreen
    from okstra_tui.screens.register import RegisterForm

    repo = make_repo(tmp_path / "elsewhere")
    monkeypatch.chdir(repo)
    app, notes = make_app(board=False, project=False), Notes()
    async with app.run_test(size=SIZE, message_hook=notes) as pilot:
        await settle(pilot, lambda: isinstance(app.screen, ProjectsScreen) and app.screen.entries)
        await pilot.press("n")
        await settle(pilot, lambda: isinstance(app.screen, RegisterForm))
        assert app.screen.root == repo.resolve()
        await pilot.press("escape")  # changed its mind
        await settle(pilot, lambda: isinstance(app.screen, ProjectsScreen))
        assert len(app.screen.entries) == 1
        await pilot.press("n")
        await settle(pilot, lambda: isinstance(app.screen, RegisterForm))
        await pilot.press(*"make check", "ctrl+s")
        await settle(pilot, lambda: isinstance(app.screen, ProjectsScreen) and len(app.screen.entries) == 2)
        assert app.screen.selected.id == "elsewhere"
        await pilot.press("up")
        await pilot.press("n")  # registered already: said, and its row selected, no form
        await settle(pilot, lambda: app.screen.selected.id == "elsewhere")
        assert isinstance(app.screen, ProjectsScreen)
        assert f"elsewhere at {repo.resolve()} is registered already" in " ".join(notes.texts)
    assert load_project(repo).config.qa_commands == ["make check"]


async def test_okstra_in_an_unregistered_repo_offers_to_register_it(make_app, tmp_path: Path, monkeypatch) -> None:
    """The first thing `okstra` shows in a repository it does not know: one form for its
    QA and setup commands and its id; registered, it opens the project's tasks."""
    from okstra_engine.projects import init_project, load_project
    from okstra_tui.model import unregistered_repo
    from okstra_tui.screens.projects import ProjectsScreen
    from okstra_tui.screens.register import RegisterForm
    from okstra_tui.screens.tasks import TasksScreen

    repo = make_repo(tmp_path / "fresh")
    (repo / "src").mkdir()
    monkeypatch.chdir(repo / "src")  # anywhere in the repository
    assert unregistered_repo() == repo.resolve()
    app = make_app(board=False, project=False, register=unregistered_repo())
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: isinstance(app.screen, RegisterForm))
        form = app.screen
        assert isinstance(app.screen_stack[-2], ProjectsScreen)
        assert "fresh" in text_of(form.query_one(".dialog-title"))
        assert form.focused is form.query_one("#qa")
        await pilot.press(*"pytest -q", "enter", "enter", *"make lint")
        await pilot.press("tab")
        assert form.focused is form.query_one("#setup")
        await pilot.press(*"uv sync")
        await pilot.press("tab")
        assert form.focused is form.query_one("#id")
        await pilot.press(*"Fresh App", "enter")  # a bad id: said under it, the focus stays there
        await settle(pilot)
        assert app.screen is form and form.focused is form.query_one("#id")
        assert form.query_one("#id-error").display
        assert "'Fresh App' cannot be a project id" in text_of(form.query_one("#id-error"))
        assert not (repo / ".okstra").exists()
        form.query_one("#id").value = "fresh-app"
        await settle(pilot, lambda: not form.query_one("#id-error").display)  # editing clears it
        await pilot.press("ctrl+s")
        await settle(pilot, lambda: isinstance(app.screen, TasksScreen) and app.screen.project is not None)
        assert app.screen.root == repo.resolve()
        await pilot.press("escape")  # up to the picker, the new project selected
        await settle(pilot, lambda: isinstance(app.screen, ProjectsScreen) and len(app.screen.entries) == 2)
        assert app.screen.selected.id == "fresh-app"
    project = load_project(repo.resolve())
    assert (project.id, project.config.qa_commands) == ("fresh-app", ["pytest -q", "make lint"])
    from okstra_engine.projects import setup_of

    assert list(setup_of(project).commands) == ["uv sync"]
    monkeypatch.chdir(repo)
    assert unregistered_repo() is None  # registered now
    monkeypatch.chdir(tmp_path)
    assert unregistered_repo() is None  # not in git: nothing to offer
    mono = make_repo(tmp_path / "mono")
    (mono / "services" / "api").mkdir(parents=True)
    init_project(mono / "services" / "api")
    monkeypatch.chdir(mono)
    assert unregistered_repo() is None  # its projects are in subfolders: the picker lists them
    monkeypatch.chdir(mono / "services")
    assert unregistered_repo() is None


async def test_register_form_a_taken_id_refocuses_it(make_app, tmp_path: Path, demo) -> None:
    from okstra_tui.screens.error import ErrorDialog
    from okstra_tui.screens.register import RegisterForm

    repo = make_repo(tmp_path / "other")
    app = make_app(board=False, project=False, register=repo)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: isinstance(app.screen, RegisterForm))
        form = app.screen
        form.query_one("#id").value = "shop"  # the demo's
        await pilot.press("ctrl+s")
        await settle(pilot, lambda: isinstance(app.screen, ErrorDialog))
        assert "project id 'shop' is taken" in app.screen.what
        await pilot.press("escape")
        await settle(pilot, lambda: app.screen is form)
        assert form.focused is form.query_one("#id") and not form.query_one("#register").disabled
    assert not (repo / ".okstra").exists()


async def test_new_task_form(make_app, demo) -> None:
    from okstra_tui.screens.error import ErrorDialog
    from okstra_tui.screens.new_task import NewTaskForm
    from okstra_tui.screens.tasks import TasksScreen

    app, notes = make_app(board=False), Notes()
    async with app.run_test(size=SIZE, message_hook=notes) as pilot:
        await settle(pilot, lambda: isinstance(app.screen, TasksScreen) and app.screen.summaries)
        tasks = app.screen
        await pilot.press("n")
        await settle(pilot, lambda: isinstance(app.screen, NewTaskForm))
        form = app.screen
        assert "lower-case letters, digits, '.', '_' or '-'" in text_of(form.query_one(".form-hint"))
        await pilot.press(*"Bad Ref", "enter")  # moves on to the title
        await pilot.press(*"Returns", "enter")  # submits: the task name is said wrong, and has the focus
        await settle(pilot)
        assert app.screen is form and form.focused is form.query_one("#ref")
        assert "'Bad Ref' is not a task name: write GROUP/ID" in text_of(form.query_one("#ref-error"))
        await pilot.press(*["backspace"] * 7, *"demo/checkout")
        await settle(pilot, lambda: not form.query_one("#ref-error").display)
        await pilot.press("enter")  # the task exists: the engine says so, then its name has the focus
        await settle(pilot, lambda: isinstance(app.screen, ErrorDialog))
        assert "task demo/checkout already exists" in app.screen.what
        await pilot.press("escape")
        await settle(pilot, lambda: app.screen is form)
        assert form.focused is form.query_one("#ref")
        form.query_one("#ref").value = "demo/returns"
        form.query_one("#category").value = "Fix"
        form.query_one("#title").value = " "
        await pilot.press("enter")
        await settle(pilot)
        assert form.focused is form.query_one("#title") and form.query_one("#title-error").display
        form.query_one("#title").value = "Returns"
        await pilot.press("enter")
        await settle(pilot)
        assert form.focused is form.query_one("#category")
        assert "'Fix' cannot be a category" in text_of(form.query_one("#category-error"))
        form.query_one("#category").value = ""
        form.query_one("#title").focus()
        await pilot.press("enter")
        await settle(pilot, lambda: app.screen is tasks and len(tasks.summaries) == 2)
        assert str(tasks.selected.ref) == "demo/returns" and tasks.selected.plan == "none"
        assert "Created task demo/returns" in notes.texts
        await pilot.press("n")
        await settle(pilot, lambda: isinstance(app.screen, NewTaskForm))
        await pilot.click("#cancel")
        await settle(pilot, lambda: app.screen is tasks)


async def test_engine_errors_open_the_dialog_never_a_traceback(make_app, tmp_path: Path) -> None:
    from okstra_tui.screens.error import ErrorDialog
    from okstra_tui.screens.tasks import TasksScreen

    app = make_app(board=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: isinstance(app.screen, TasksScreen) and app.screen.summaries)
        app.open_project(tmp_path)  # not an okstra project
        await settle(pilot, lambda: isinstance(app.screen, ErrorDialog))
        dialog = app.screen
        assert "is not an okstra project" in dialog.what and dialog.how.startswith("run: okstra init")
        assert "Fix: run: okstra init" in text_of(dialog.query_one(".dialog-how"))
        await pilot.press("enter")
        await settle(pilot, lambda: isinstance(app.screen, TasksScreen))
        app.show_error(RuntimeError("boom"))  # a bug: said plainly, with what to do
        await settle(pilot, lambda: isinstance(app.screen, ErrorDialog))
        assert app.screen.unexpected and app.screen.what == "RuntimeError: boom" and "--debug" in app.screen.how
        assert app.return_code is None  # the app keeps running


async def test_help_lists_the_keys_and_the_legend(make_app) -> None:
    from okstra_tui.screens.help import HelpScreen

    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await board_ready(pilot)
        await pilot.press("question_mark")
        await settle(pilot, lambda: isinstance(app.screen, HelpScreen))
        keys = {description for _, description, _ in app.screen.keys}
        assert {"choose", "auto", "release", "diff", "apply fix", "handoff", "back", "help", "quit"} <= keys
        assert "not merged" in text_of(app.screen.query_one(".help-body Static"))
        await pilot.press("escape")
        await settle(pilot, lambda: not isinstance(app.screen, HelpScreen))


async def test_every_binding_has_an_id_and_a_description(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        board = await board_ready(pilot)
        shown = [a.binding for a in board.active_bindings.values() if a.binding.show and a.binding.id]
        assert {b.key for b in shown} >= {"enter", "a", "x", "d", "r", "h", "escape", "question_mark"}
        assert all(b.description and b.tooltip and "." not in b.description for b in shown)


async def test_palette_offers_this_screens_actions(make_app) -> None:
    from textual.command import CommandPalette

    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        board = await board_ready(pilot)
        commands = {c.title: c.help for c in app.get_system_commands(board)}
        assert commands["release"] == "Release the selected stage's stale reservation (x)"
        assert {"diff", "auto", "choose", "apply fix", "handoff", "back", "help", "quit"} <= set(commands)
        await pilot.press("ctrl+p")
        await settle(pilot, lambda: CommandPalette.is_open(app))
        await pilot.press(*"diff")
        await pilot.pause(0.3)
        await pilot.press("enter")
        from okstra_tui.screens.diff import DiffScreen

        await settle(pilot, lambda: isinstance(app.screen, DiffScreen))


async def test_korean(make_app) -> None:
    app = make_app(lang="ko")
    async with app.run_test(size=SIZE) as pilot:
        board = await board_ready(pilot)
        descriptions = {a.binding.description for a in board.active_bindings.values() if a.binding.id}
        assert {"선택", "자동", "해제"} <= descriptions
        assert "다음: 스테이지 4" in text_of(board.query_one("#summary"))
        assert "시작됨" in text_of(board.query_one("#in-flight-body")) and "15분" in text_of(
            board.query_one("#in-flight-body")
        )


def test_okstra_opens_on_the_register_form_only_in_an_unregistered_repo(tmp_path: Path, monkeypatch) -> None:
    from okstra_engine.projects import init_project
    from okstra_tui import app as app_module

    opened: list[Path | None] = []
    monkeypatch.setattr(app_module.OkstraApp, "run", lambda self: opened.append(self.register_root))
    repo = make_repo(tmp_path / "repo")
    monkeypatch.chdir(repo)
    assert app_module.run_app(project=None, task=None, lang="en") == 0
    app_module.run_app(project=repo, task=None, lang="en")  # a project named: opened as asked
    init_project(repo)
    app_module.run_app(project=None, task=None, lang="en")
    assert opened == [repo.resolve(), None, None]


def test_a_phase_agent_runs_beside_okstra_which_opens_again_on_its_task(tmp_path: Path, monkeypatch) -> None:
    """Planning holds no stage: its agent runs as a child and the app comes back on the task
    (a stage's agent without a managed terminal still takes this process)."""
    from okstra_engine.slugs import TaskRef
    from okstra_tui import app as app_module
    from okstra_tui.runs import LaunchRequest

    planning = LaunchRequest(tmp_path / "run", ["claude"], tmp_path, "auth/login", tmp_path, "planning")
    stage = LaunchRequest(tmp_path / "run2", ["claude"], tmp_path, "auth/login", tmp_path, "implementation", 2)
    results = iter([planning, stage])
    opened: list[tuple[Path | None, object, bool]] = []

    def run(self):
        opened.append((self.project_root, self.task_ref, self.at_phases))
        return next(results)

    monkeypatch.setattr(app_module.OkstraApp, "run", run)
    execs: list[Path] = []
    monkeypatch.setattr(app_module, "after_exit", lambda result, reopen=None: execs.append(result.run_dir) or 0)
    beside: list[Path] = []
    assert app_module.run_app(project=None, task=None, lang="en", beside=lambda r: beside.append(r.run_dir) or 0) == 0
    assert beside == [tmp_path / "run"] and execs == [tmp_path / "run2"]
    assert opened == [(None, None, False), (tmp_path, TaskRef.parse("auth/login"), True)]
