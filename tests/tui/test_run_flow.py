"""Options → preview (the quarantine dialog over it) → confirm, driven with Pilot on the demo.

The demo is built at a fixed moment in the past (`conftest.NOW`): the apps' clocks are
frozen a minute later, but the engine's `prepare` reads the real clock, so for it stage 3
(in flight on another machine, 13 minutes before NOW) is stale by the TTL — no stage is
in flight, and a run with workers is a team run (`gate`). Tests that need stage 3 live
raise the TTL.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from okstra_engine.slugs import TaskRef
from okstra_engine.teams import team_name
from tests.tui.conftest import SIZE
from tests.tui.driving import Notes, board_ready, settle, text_of

pytestmark = pytest.mark.timeout(90)

TEAM = team_name("shop", TaskRef("demo", "checkout"), 4)


def _task(demo):
    from okstra_engine.projects import load_project
    from okstra_engine.slugs import TaskRef
    from okstra_engine.tasks import load_task

    return load_task(load_project(Path(demo.project_root)), TaskRef.parse(demo.task))


def _ledger(demo) -> Path:
    from okstra_engine.plans import plan_run_root

    return plan_run_root(_task(demo)).dir / "consumers.jsonl"


def _rows(demo) -> list[dict]:
    return [json.loads(line) for line in _ledger(demo).read_text().splitlines() if line.strip()]


def _runs(demo) -> list[str]:
    return sorted(p.name for p in _task(demo).runs_dir.iterdir())


def _configure(demo, text: str) -> None:
    from okstra_engine.config import settings

    Path(demo.config_file).write_text(text, encoding="utf-8")
    settings.cache_clear()


def _team_dirs(demo, team: str = TEAM) -> list[Path]:
    home = Path(demo.agent_home)
    return [p for p in (home / "teams" / team, home / "tasks" / team) if p.exists()]


async def _options(pilot, stage: int = 4):
    from okstra_tui.screens.run_options import RunOptionsScreen

    board = await board_ready(pilot)
    board.query_one("#stages").select_stage(stage)
    await pilot.press("enter")
    await settle(pilot, lambda: isinstance(pilot.app.screen, RunOptionsScreen) and pilot.app.screen.context is not None)
    return pilot.app.screen


async def _preview(pilot):
    from okstra_tui.screens.preview import PreviewScreen

    await settle(pilot, lambda: isinstance(pilot.app.screen, PreviewScreen) and pilot.app.screen.busy is None)
    return pilot.app.screen


async def test_options_then_preview_writes_nothing(make_app, demo) -> None:
    from okstra_tui.screens.preview import PreviewScreen
    from okstra_tui.screens.quarantine import QuarantineDialog

    ledger, runs = _ledger(demo).read_bytes(), _runs(demo)
    s4 = Path(demo.okstra_home) / "worktrees" / "shop" / "demo" / "checkout-s4"
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        options = await _options(pilot)
        assert options.query_one("#worker-claude").value and not options.query_one("#worker-codex").value
        assert options.query_one("#waiver-key").value == "checkout-stage-4"
        base = options.query_one("#base-ref")
        assert base.disabled  # the task worktree exists: a base ref would be ignored
        assert "exists already" in text_of(options.query_one("#base-note"))
        assert "okstra prepare demo/checkout --type implementation --stage 4 --workers claude" in text_of(
            options.query_one("#options-command")
        )
        options.query_one("#worker-codex").value = True
        await pilot.pause()
        assert "--workers claude,codex" in text_of(options.query_one("#options-command"))

        await pilot.press("ctrl+n")
        # a team run of stage 4, and the team an earlier attempt left is in its way
        await settle(pilot, lambda: isinstance(app.screen, QuarantineDialog))
        dialog = app.screen
        assert dialog.check.team == TEAM and dialog.check.offered
        plan = "\n".join(dialog.check.plan)
        assert f"teams/{TEAM} ->" in plan and "/trash/" in plan
        shown = text_of(dialog.query_one("#quarantine-plan"))
        assert f"agent-home/teams/{TEAM}\n    → " in shown and "/trash/" in shown
        assert dialog.focused.id == "quarantine-scroll"  # no button: enter chooses nothing
        await pilot.press("escape")  # skip
        preview = await _preview(pilot)
        assert isinstance(preview, PreviewScreen) and preview.decision == "kept"
        manifest = preview.preview.prepared.manifest
        assert (manifest.stage, manifest.team.mode, manifest.team.name, manifest.render_only) == (4, "gate", TEAM, True)
        assert manifest.workers == ["claude", "codex"]
        assert "## Implement stage 4: Inventory hold" in preview.query_one("#prompt").source
        facts = text_of(preview.query_one("#run-facts"))
        assert "checkout-s4" in facts and "will be created" in facts and "okstra/feature/demo/checkout-s4" in facts
        assert TEAM in facts and "still there" in facts
        assert "sim_lead" in facts  # the demo's agent command
    # render only: no run folder, no reservation, no worktree, the team untouched
    assert _ledger(demo).read_bytes() == ledger and _runs(demo) == runs
    assert not s4.exists() and len(_team_dirs(demo)) == 2


async def test_concurrent_stage_means_no_team_and_no_dialog(make_app, demo) -> None:
    from okstra_tui.screens.quarantine import QuarantineDialog

    _configure(demo, Path(demo.config_file).read_text() + "stale_ttl_hours = 1000000\n")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await _options(pilot)
        await pilot.press("ctrl+n")
        preview = await _preview(pilot)
        assert not isinstance(app.screen, QuarantineDialog)
        manifest = preview.preview.prepared.manifest
        assert manifest.team.mode == "no-team" and manifest.concurrent_run.active_stages == [3]
        assert preview.preview.team is None  # a no-team run creates no team: nothing to offer
        facts = text_of(preview.query_one("#run-facts"))
        assert "In flight in other runs right now: stage 3." in facts and "no team" in facts
    assert len(_team_dirs(demo)) == 2


async def test_without_tmux_quarantine_then_confirm_exits_to_launch_the_agent(
    make_app, demo, capsys, monkeypatch, tmp_path: Path
) -> None:
    """Without tmux the agent cannot start in a terminal of its own: the preview says so,
    and okstra exits to exec it in place. The trash folder the dialog shows and the run id
    the preview's prompt names are the ones used, however long the person looked at them
    (the clock is moved on)."""
    import shutil
    from datetime import timedelta

    from okstra_engine import clock
    from okstra_tui.app import after_exit
    from okstra_tui.runs import LaunchRequest
    from okstra_tui.screens.quarantine import QuarantineDialog

    bare = tmp_path / "bin"
    bare.mkdir()
    (bare / "git").symlink_to(shutil.which("git") or "git")
    monkeypatch.setenv("PATH", str(bare))
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        options = await _options(pilot)
        options.query_one("#waiver-reason").focus()
        await pilot.press("enter")  # enter in a field previews too
        await settle(pilot, lambda: isinstance(app.screen, QuarantineDialog))
        shown_stamp = app.screen.check.stamp
        assert shown_stamp and f"/trash/{shown_stamp}/" in text_of(app.screen.query_one("#quarantine-plan"))
        with clock.pinned(stamps=clock.now() + timedelta(minutes=5)):
            await pilot.press("y")
            preview = await _preview(pilot)
        assert preview.decision == "moved"
        assert not _team_dirs(demo)  # moved, not deleted:
        trash = Path(demo.okstra_home) / "trash"
        moved = list(trash.glob(f"*/teams/{TEAM}"))
        assert len(moved) == 1 and (moved[0] / "config.json").is_file()
        assert moved[0].parent.parent.name == shown_stamp
        assert "moved to okstra's trash" in text_of(preview.query_one("#run-facts"))
        assert "tmux is not installed: the agent takes this terminal" in text_of(preview.query_one("#run-facts"))
        shown_run = preview.preview.prepared.manifest.run_id
        assert shown_run in preview.query_one("#prompt").source
        with clock.pinned(stamps=clock.now() + timedelta(minutes=10), token="0d0d0d"):
            await pilot.press("enter")
            await settle(pilot, lambda: app.return_value is not None)
    request = app.return_value
    assert request.run_dir.name == shown_run
    assert isinstance(request, LaunchRequest) and request.stage == 4
    assert request.run_dir.is_dir() and (request.run_dir / "prompt.md").is_file()
    assert request.argv[1:3] == ["-m", "okstra_engine.sim_lead"] and request.cwd.name == "checkout-s4"
    reserved = [r for r in _rows(demo) if r["stage"] == 4 and r["status"] == "reserved"][-1]
    # the agent is exec'd in this process: its pid is the one the reservation names
    assert reserved["run_id"] == request.run_dir.name and reserved["pid"] == os.getpid()

    launched = []
    assert after_exit(request, reopen="okstra demo --dir DEMO", launcher=launched.append) == 0
    assert launched == [request.run_dir]
    out = capsys.readouterr().out
    assert "starting the agent (python) for stage 4 of demo/checkout" in out
    assert "open okstra again: okstra demo --dir DEMO" in out


async def test_agent_not_installed_shows_the_command(make_app, demo) -> None:
    """... and the board, back under it, does not announce the reservation as news: it
    is the person's own."""
    from okstra_engine.conformance import waivers
    from okstra_tui.screens.board import BoardScreen
    from okstra_tui.screens.prepared import PreparedScreen
    from okstra_tui.screens.quarantine import QuarantineDialog

    _configure(demo, 'agent_command = ["okstra-no-such-agent", "{prompt}"]\n')
    app, notes = make_app(command_env=demo.env), Notes()
    async with app.run_test(size=SIZE, message_hook=notes) as pilot:
        options = await _options(pilot)
        options.query_one("#worker-claude").value = False  # a single lead: no team, no dialog
        options.query_one("#waiver-reason").value = "payment sandbox is down"
        await pilot.press("ctrl+n")
        preview = await _preview(pilot)
        assert not isinstance(app.screen, QuarantineDialog)
        assert preview.preview.prepared.manifest.team.mode == "single-lead"
        facts = text_of(preview.query_one("#run-facts"))
        assert "single lead" in facts and "checkout-stage-4=payment sandbox is down" in facts
        assert "not installed here" in facts
        assert str(preview.query_one("#confirm").label) == "Prepare and start"
        await pilot.press("enter")
        await settle(pilot, lambda: isinstance(app.screen, PreparedScreen))
        prepared = app.screen
        run_dir = Path(prepared.manifest.run_dir)
        assert run_dir.is_dir() and app.return_value is None
        command = text_of(prepared.query_one("#prepared-command"))
        assert command.endswith(f"okstra launch {run_dir}") and "OKSTRA_HOME=" in command
        why = text_of(prepared.query_one("#prepared-why"))
        assert "'okstra-no-such-agent' is not installed" in why and "Fix: install it" in why
        assert "okstra record demo/checkout --stage 4 --status released" in text_of(
            prepared.query_one("#prepared-after")
        )
        # the options and preview are behind us: escape is the board, where 4 is taken
        await pilot.press("escape")
        await settle(
            pilot, lambda: isinstance(app.screen, BoardScreen) and app.screen.data.views[4].state == "in-flight"
        )
        assert len(app.screen_stack) == 2
        await pilot.pause(0.3)  # a few more polls of the board
        assert not [text for text in notes.texts if text.startswith("stage 4")]
    reserved = [r for r in _rows(demo) if r["stage"] == 4 and r["status"] == "reserved"][-1]
    assert reserved.get("pid") is None  # `okstra launch` records the agent's pid when it runs
    assert waivers(_task(demo).dir)["checkout-stage-4"].reason == "payment sandbox is down"
    assert len(_team_dirs(demo)) == 2


async def test_an_enter_typed_ahead_does_not_answer_the_quarantine(make_app, demo) -> None:
    """`enter` is "Prepare and start" on the preview: typed while the dialog opens over it,
    it neither moves the team nor skips the question, and the run is not prepared."""
    from okstra_tui.screens.quarantine import QuarantineDialog

    runs = _runs(demo)
    app, notes = make_app(), Notes()
    async with app.run_test(size=SIZE, message_hook=notes) as pilot:
        await _options(pilot)
        await pilot.press("ctrl+n", "enter", "enter")
        await settle(pilot, lambda: isinstance(app.screen, QuarantineDialog))
        await pilot.press("enter", "enter")
        await settle(pilot)
        assert isinstance(app.screen, QuarantineDialog)
        assert any("Answer with y" in text for text in notes.texts)
        await pilot.press("n")
        preview = await _preview(pilot)
        assert preview.decision == "kept"
    assert len(_team_dirs(demo)) == 2 and _runs(demo) == runs


async def test_skip_and_no_leave_the_team(make_app, demo) -> None:
    from okstra_tui.screens.quarantine import QuarantineDialog

    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await _options(pilot)
        await pilot.press("ctrl+n")
        await settle(pilot, lambda: isinstance(app.screen, QuarantineDialog))
        await pilot.press("n")
        preview = await _preview(pilot)
        assert preview.decision == "kept"
        await pilot.press("q")  # ask again: this time the Skip button
        await settle(pilot, lambda: isinstance(app.screen, QuarantineDialog))
        await pilot.click("#no")
        await _preview(pilot)
    assert len(_team_dirs(demo)) == 2
    assert not (Path(demo.okstra_home) / "trash").exists()


async def test_a_stage_that_is_not_ready_says_why(make_app, demo) -> None:
    from okstra_tui.screens.error import ErrorDialog
    from okstra_tui.screens.preview import PreviewScreen
    from okstra_tui.screens.run_options import RunOptionsScreen

    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await board_ready(pilot)
        app.open_run(_task(demo), "implementation", 5)  # blocked by 3
        await settle(pilot, lambda: isinstance(app.screen, RunOptionsScreen) and app.screen.context is not None)
        await pilot.press("ctrl+n")
        await settle(pilot, lambda: isinstance(app.screen, ErrorDialog))
        assert "stage 5 is blocked by stage(s) 3" in app.screen.what
        await pilot.press("escape")
        await settle(pilot, lambda: isinstance(app.screen, PreviewScreen))
        assert "cannot be prepared now" in text_of(app.screen.query_one("#run-facts"))
        assert not app.screen.check_action("confirm", ())
        await pilot.press("escape")
        await settle(pilot, lambda: isinstance(app.screen, RunOptionsScreen))


async def test_other_phases_take_the_same_path(make_app, demo) -> None:
    from okstra_tui.screens.phases import PhaseScreen
    from okstra_tui.screens.run_options import RunOptionsScreen
    from okstra_tui.screens.tasks import TasksScreen

    app = make_app(board=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: isinstance(app.screen, TasksScreen) and app.screen.summaries)
        await pilot.press("enter")
        await settle(pilot, lambda: isinstance(app.screen, PhaseScreen) and app.screen.choices)
        phases = app.screen
        phases.query_one("OptionList").highlighted = [c.phase for c in phases.choices].index("improvement-discovery")
        await pilot.press("enter")
        await settle(pilot, lambda: isinstance(app.screen, RunOptionsScreen) and app.screen.context is not None)
        options = app.screen
        assert options.stage is None and not options.query("#waiver-box")
        assert "Improvement discovery" in text_of(options.query_one("#options-head"))
        await pilot.press("ctrl+n")
        preview = await _preview(pilot)
        manifest = preview.preview.prepared.manifest
        assert (manifest.task_type, manifest.stage, manifest.team.mode, manifest.team.name) == (
            "improvement-discovery",
            None,
            "gate",
            team_name("shop", TaskRef("demo", "checkout")),
        )
        assert manifest.worktree.path.endswith("/checkout")  # the task worktree


async def test_release_handoff_is_a_single_lead(make_app, demo) -> None:
    from okstra_tui.screens.run_options import RunOptionsScreen

    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await board_ready(pilot)
        app.open_run(_task(demo), "release-handoff", None)
        await settle(pilot, lambda: isinstance(app.screen, RunOptionsScreen) and app.screen.context is not None)
        options = app.screen
        assert all(options.query_one(f"#worker-{k}").disabled for k in ("claude", "codex", "gemini"))
        assert options.choice().workers == ()
        assert "always a single lead" in text_of(options.query_one("#workers-note"))


async def test_help_and_palette_cover_the_run_screens(make_app, demo) -> None:
    from okstra_tui.screens.help import HelpScreen
    from okstra_tui.screens.quarantine import QuarantineDialog

    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        options = await _options(pilot)
        commands = {c.title: c.help for c in app.get_system_commands(options)}
        assert commands["preview"].startswith("Preview the run") and commands["preview"].endswith("(^n)")
        await pilot.press("question_mark")
        await settle(pilot, lambda: isinstance(app.screen, HelpScreen))
        assert {"preview", "back", "help"} <= {d for _, d, _ in app.screen.keys}
        assert "a single lead does the run" in text_of(app.screen.query_one(".help-body Static"))
        await pilot.press("escape")
        await settle(pilot, lambda: app.screen is options)
        await pilot.press("ctrl+n")
        await settle(pilot, lambda: isinstance(app.screen, QuarantineDialog))
        dialog_keys = {b.description for _, b in app._screen_keys(app.screen)}
        assert {"quarantine", "skip"} <= dialog_keys
        await pilot.press("n")
        preview = await _preview(pilot)
        commands = {c.title for c in app.get_system_commands(preview)}
        assert {"prepare", "quarantine", "back"} <= commands
        await pilot.press("question_mark")
        await settle(pilot, lambda: isinstance(app.screen, HelpScreen))
        assert "prepare" in {d for _, d, _ in app.screen.keys}
        assert "runs its workers in the background" in text_of(app.screen.query_one(".help-body Static"))


def test_after_exit_without_a_launch_does_nothing(capsys) -> None:
    from okstra_tui.app import after_exit

    assert after_exit(None) == 0
    assert capsys.readouterr().out == ""


def test_after_exit_when_the_agent_cannot_start(capsys, tmp_path: Path) -> None:
    from okstra_engine.errors import OkstraError
    from okstra_tui.app import after_exit
    from okstra_tui.i18n import set_language
    from okstra_tui.runs import LaunchRequest

    set_language("en")

    def refuse(run_dir: Path) -> None:
        raise OkstraError("the run's worktree /x does not exist", "prepare the run again")

    request = LaunchRequest(
        tmp_path / "run", ["claude", "prompt"], tmp_path, "demo/checkout", tmp_path, "implementation", 4
    )
    assert after_exit(request, launcher=refuse) == 2
    captured = capsys.readouterr()
    assert f"okstra --project {tmp_path} --task demo/checkout" in captured.out
    assert (
        "the run's worktree /x does not exist" in captured.err and f"okstra launch {tmp_path / 'run'}" in captured.err
    )
