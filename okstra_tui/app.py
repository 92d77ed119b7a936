"""`OkstraApp`: project → task → phase → stage board, keyboard first.

The app owns navigation (`open_*`, `go_back`), the error dialog (`show_error`, fed by
the one worker-failure handler in `base.py`), the command palette (the current screen's
actions, in the person's language) and `?` help. Screens do their engine work in thread
workers and never on the event loop.

After a stage or phase is chosen, `open_run` walks on: options → preview (the quarantine
dialog over it when a leftover team is in the way) → confirm, which prepares the run.
A stage's agent then starts in its managed terminal (a tmux session) and the app goes
back to the board (`show_started`). Without tmux, or for a phase's run, the app exits
with a `LaunchRequest`; `run_app` then execs the agent in this process, once Textual has
given the terminal back (`after_exit`), so the pid the reservation recorded becomes the
agent's.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable, Iterable
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.command import CommandPalette
from textual.message import Message
from textual.reactive import reactive
from textual.screen import Screen

from okstra_engine import clock as okstra_clock
from okstra_engine.errors import OkstraError
from okstra_engine.slugs import TaskRef

from .base import OkstraScreen, WorkerFailures
from .i18n import HELP_BINDING, set_language, t
from .states import COLOURS

if TYPE_CHECKING:
    from okstra_engine.managed import ManagedSession

    from .runs import LaunchRequest

Clock = Callable[[], datetime]
_HERE = Path(__file__).resolve().parent


class OkstraApp(WorkerFailures, App["LaunchRequest | None"]):
    # every screen's stylesheet, parsed once at start (a screen's own CSS_PATH would make
    # Textual reparse the whole stylesheet each time one is first pushed); absolute, so
    # subclasses may live anywhere
    CSS_PATH = [
        _HERE / "app.tcss",
        *(
            _HERE / "screens" / f"{name}.tcss"
            for name in ("lists", "board", "dialogs", "diff", "run", "handoff", "plan")
        ),
    ]
    TITLE = "okstra"
    BINDINGS = [
        Binding("question_mark", "help", "bind.help", id=HELP_BINDING, tooltip="tip.help"),
        Binding(
            "ctrl+p",
            "command_palette",
            "bind.palette",
            id="app.palette",
            tooltip="tip.palette",
            priority=True,
            show=False,
        ),
        Binding("ctrl+q", "quit", "bind.quit", id="app.quit", tooltip="tip.quit", priority=True),
        Binding("ctrl+c", "help_quit", show=False, system=True),
    ]

    class Alerted(Message):
        """The person was called back (`alert`): `text`, through `channels`."""

        def __init__(self, text: str, channels: tuple[str, ...]) -> None:
            super().__init__()
            self.text = text
            self.channels = channels

    changing_task: reactive[bool] = reactive(False, always_update=True)
    """True while a screen changes the task's files (prepares a run, hands off a group),
    False again when it is done. Screens that show the task watch it: what changes
    meanwhile is the person's own doing, not news (the board announces none of it)."""

    def __init__(
        self,
        *,
        project: Path | None = None,
        task: TaskRef | None = None,
        lang: str | None = None,
        clock: Clock | None = None,
        poll_interval: float = 0.25,
        command_env: dict[str, str] | None = None,
        register: Path | None = None,
        phases: bool = False,
    ) -> None:
        self.texts = set_language(lang)
        super().__init__()
        self.project_root = project
        self.task_ref = task
        self.register_root = register
        self.at_phases = phases
        """Open a task on its phases (the plan screen when its plan waits), not its board:
        where a person comes back to after a phase's agent."""
        """A project folder to offer to register first (`okstra` in a repository okstra
        does not know): the register form over the project picker."""
        self.clock: Clock = clock or okstra_clock.now
        self.poll_interval = poll_interval
        self.command_env = command_env or {}
        """Variables a command shown to the person needs (the demo's homes)."""
        self.last_workers: tuple[str, ...] = ("claude",)
        """The workers chosen for the last run (the options screen starts from them)."""
        self.alerts_on: bool | None = None
        """Whether `alert` calls the person back: None as the settings' `notify` says;
        the board's key turns it off or on for this session."""

    def get_theme_variable_defaults(self) -> dict[str, str]:
        return dict(COLOURS)

    def on_mount(self) -> None:
        """The first screen: the project picker, a project's task list, or a task's
        board; `escape` climbs from there (`go_back`)."""
        if self.project_root is None:
            from .screens.projects import ProjectsScreen

            picker = ProjectsScreen()
            self.push_screen(picker)
            if self.register_root is not None:
                picker.offer_registration(self.register_root, then_open=True)
        elif self.task_ref is None:
            self.open_project(self.project_root)
        elif self.at_phases:
            self.open_task(self.project_root, self.task_ref)
        else:
            self.open_board(self.project_root, self.task_ref)

    # ------------------------------------------------------------ navigation

    def open_project(self, root: Path) -> None:
        from .screens.tasks import TasksScreen

        self.push_screen(TasksScreen(root))

    def open_task(self, root: Path, ref: TaskRef) -> None:
        from .screens.phases import PhaseScreen

        self.push_screen(PhaseScreen(root, ref))

    def open_plan(self, root: Path, ref: TaskRef) -> None:
        from .screens.plan import PlanScreen

        self.push_screen(PlanScreen(root, ref))

    def open_runs(self, root: Path, ref: TaskRef, phase: str | None) -> None:
        from .screens.runs import RunsScreen

        self.push_screen(RunsScreen(root, ref, phase))

    def open_board(self, root: Path, ref: TaskRef) -> None:
        from .screens.board import BoardScreen

        self.push_screen(BoardScreen(root, ref))

    def open_run(self, task: Any, phase: str, stage: int | None) -> None:
        """The step after choosing a phase (and, for implementation, a stage): the run's
        options, then its preview and confirmation."""
        from .screens.run_options import RunOptionsScreen

        self.push_screen(RunOptionsScreen(task, phase, stage))

    def open_handoff(self, task: Any, group: str) -> None:
        from .screens.handoff import HandoffScreen

        self.push_screen(HandoffScreen(task, group))

    def show_prepared(self, screen: Screen[Any]) -> None:
        """A run was prepared but its agent is not started here: the options and preview
        are behind the person now, so they go, and `escape` from `screen` returns to where
        the run was chosen."""
        from .screens.preview import PreviewScreen
        from .screens.run_options import RunOptionsScreen

        while len(self.screen_stack) > 2 and isinstance(self.screen, (PreviewScreen, RunOptionsScreen)):
            self.pop_screen()
        self.push_screen(screen)

    def show_started(self, session: ManagedSession) -> None:
        """A stage's agent started in its managed terminal: the options and preview go,
        and the board under them shows it."""
        from .screens.preview import PreviewScreen
        from .screens.run_options import RunOptionsScreen

        while len(self.screen_stack) > 2 and isinstance(self.screen, (PreviewScreen, RunOptionsScreen)):
            self.pop_screen()
        self.notify(t("board.started", stage=session.stage, session=session.session), markup=False, timeout=8)

    def go_back(self, screen: OkstraScreen) -> None:
        if len(self.screen_stack) > 2:  # Textual's blank default screen is the bottom
            self.pop_screen()
            return
        parent = screen.parent_screen()
        if parent is not None:
            self.switch_screen(parent)

    # ------------------------------------------------------------ calling the person back

    @property
    def alert_channels(self) -> tuple[str, ...]:
        """The channels an alert goes out on now: the settings' (the default ones when the
        settings cannot be read), none once turned off, the default ones when turned on
        over settings that say `off`."""
        from okstra_engine.config import NOTIFY_CHANNELS, settings

        try:
            configured = settings().notify_channels
        except OkstraError:
            configured = NOTIFY_CHANNELS
        if self.alerts_on is None:
            return configured
        return (configured or NOTIFY_CHANNELS) if self.alerts_on else ()

    def alert(self, text: str) -> None:
        """Call the person back with `text` on every channel the settings name and this
        terminal has (a headless app writes nothing, as Textual's bell)."""
        from .alerts import notify_send_argv, osc9, run_quietly

        sent: list[str] = []
        for channel in self.alert_channels:
            if channel == "bell":
                self.bell()
            elif channel == "osc9":
                if not self.is_headless and self._driver is not None:
                    self._driver.write(osc9(text))
            else:
                argv = notify_send_argv("okstra", text)
                if argv is None:
                    continue
                if not self.is_headless:
                    self.run_worker(partial(run_quietly, argv), thread=True, group="alerts", exit_on_error=False)
            sent.append(channel)
        if sent:
            self.post_message(self.Alerted(text, tuple(sent)))

    # ------------------------------------------------------------ errors

    def show_error(self, error: BaseException) -> None:
        from .refusal_text import error_texts
        from .screens.error import ErrorDialog

        if isinstance(error, OkstraError):
            dialog = ErrorDialog(*error_texts(error))
        else:
            self.log.error(error)
            dialog = ErrorDialog(
                t("error.unexpected", kind=type(error).__name__, message=str(error)),
                t("error.unexpected_how"),
                unexpected=True,
            )
        top = self.screen
        if isinstance(top, ErrorDialog) and top.what == dialog.what:
            return
        self.push_screen(dialog)

    # ------------------------------------------------------------ keys, help, palette

    def _screen_keys(self, screen: Screen[Any]) -> list[tuple[Any, Binding]]:
        """The okstra bindings active on `screen`: ours carry an id, Textual's do not."""
        return [(active.node, active.binding) for active in screen.active_bindings.values() if active.binding.id]

    def action_help(self) -> None:
        from .screens.help import HelpScreen

        screen = self.screen
        if isinstance(screen, HelpScreen):
            return
        keys = [(self.get_key_display(b), b.description, b.tooltip) for _, b in self._screen_keys(screen)]
        legend = screen.help_legend() if isinstance(screen, OkstraScreen) else []
        self.push_screen(HelpScreen(t("help.title"), keys, legend))

    def action_help_quit(self) -> None:
        self.notify(t("app.how_to_quit"), markup=False)

    def action_command_palette(self) -> None:
        if self.use_command_palette and not CommandPalette.is_open(self):
            self.push_screen(CommandPalette(id="--command-palette", placeholder=t("palette.placeholder")))

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        for node, binding in self._screen_keys(screen):
            if binding.action in ("command_palette", "help_quit"):
                continue
            key = self.get_key_display(binding)
            help_text = f"{binding.tooltip} ({key})" if binding.tooltip else key
            yield SystemCommand(binding.description, help_text, _runner(self, binding.action, node))
        yield SystemCommand(t("palette.theme"), t("palette.theme_help"), self.action_change_theme)


def _runner(app: App[Any], action: str, node: Any) -> Callable[[], Any]:
    async def run() -> None:
        await app.run_action(action, node)

    return run


def after_exit(result: Any, *, reopen: str | None = None, launcher: Callable[[Path], Any] | None = None) -> int:
    """What happens once the app has exited and the terminal is the shell's again: when it
    exited to start an agent, say where it runs and how to come back, then exec it
    (`launch.launch` replaces this process; `launcher` stands in for it in tests)."""
    from .runs import LaunchRequest  # loaded once the app is done: it is not on the way to the first frame

    if not isinstance(result, LaunchRequest):
        return 0
    from okstra_engine.errors import print_error
    from okstra_engine.launch import launch

    what = t("run.stage", stage=result.stage) if result.stage is not None else t("phase.name." + result.phase)
    again = reopen or shlex.join(["okstra", "--project", str(result.project_root), "--task", result.task])
    agent = Path(result.argv[0]).name if result.argv else "?"
    print(t("launch.starting", what=what, task=result.task, agent=agent, cwd=str(result.cwd)))
    print(t("launch.reopen", command=again))
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        (launcher or launch)(result.run_dir)
    except OkstraError as exc:
        print_error(exc)
        print(t("launch.by_hand", command=shlex.join(["okstra", "launch", str(result.run_dir)])), file=sys.stderr)
        return 2
    return 0


def run_app(
    *,
    project: Path | None,
    task: TaskRef | None,
    lang: str | None,
    command_env: dict[str, str] | None = None,
    reopen: str | None = None,
    beside: Callable[[LaunchRequest], int] | None = None,
) -> int:
    """Run the app, then what it exited for (`after_exit`); `okstra_tui.entry.open_ui`
    resolves the arguments. Opened with neither, in a git repository whose project is not
    registered, it offers to register it first.

    A phase's agent (planning, a verification, the notes of the last phases) holds no
    stage, so no reservation needs its pid: it runs as a child (`beside`, `run_beside` by
    default) and the app opens again on its task when it is done, so a task goes from plan
    to release in one terminal. An implementation stage's agent, when no managed terminal
    can take it, replaces this process (the reservation names its pid)."""
    from .model import unregistered_repo

    register = unregistered_repo() if project is None and task is None else None
    phases = False
    while True:
        app = OkstraApp(
            project=project, task=task, lang=lang, command_env=command_env, register=register, phases=phases
        )
        result = app.run()
        from .runs import LaunchRequest  # once the app is done: not on the way to its first frame

        if not isinstance(result, LaunchRequest) or result.phase == "implementation":
            return after_exit(result, reopen=reopen)
        (beside or run_beside)(result)
        project, task, register, phases = result.project_root, TaskRef.parse(result.task), None, True


def run_beside(result: LaunchRequest) -> int:
    """Run a phase's agent as a child of this okstra (`okstra launch RUN_DIR`, which checks
    the run as it always does), then say how it ended. Its exit status."""
    import subprocess

    from okstra_engine.agent_events import okstra_argv

    what = t("phase.name." + result.phase)
    agent = Path(result.argv[0]).name if result.argv else "?"
    print(t("launch.starting", what=what, task=result.task, agent=agent, cwd=str(result.cwd)))
    print(t("launch.beside"))
    sys.stdout.flush()
    try:
        code = subprocess.run([*okstra_argv(), "launch", str(result.run_dir)], check=False).returncode
    except KeyboardInterrupt:
        code = 130
    print(t("launch.back", code=code))
    return code
