"""The stage board: the task's Stage Map, live.

The screen shows at once, its body in Textual's loading state, and a thread worker reads
the board (`model.load_board`) and posts it back (`Loaded`); until the first read
arrives, the keys that act on a stage are disabled.

Live updates (`live.FileWatch`): every `poll_interval` (0.25 s) the screen stats the
files that can change the board (ledger, carry sidecars, runs folder, the worktree
registry's changes file, task branch refs — `model.watch_paths`). When they moved, and
no load is running, a thread worker reads and recomputes the status and posts it back;
a burst of appends while a load runs is picked up by the next tick as one more load
(coalesced). Every `FULL_REFRESH_S` the board reloads anyway (staleness by TTL is a function of the
clock), and every tick the ages move on with the app's clock.

Changes made elsewhere become notifications (`model.board_events`); changes this screen
made itself (a release, an applied suggestion) are announced once, by the action, and
those a screen above makes (`OkstraApp.changing_task`) not at all.
"""

from __future__ import annotations

import math
import shlex
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult, SuspendNotSupported
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import DataTable, Footer, Static

from okstra_engine.agent_state import AgentState
from okstra_engine.errors import OkstraError
from okstra_engine.slugs import TaskRef
from okstra_engine.stage_view import StageState

from ..base import OkstraScreen
from ..i18n import t
from ..live import FileWatch, Marks, fingerprint
from ..model import (
    ALERTS,
    BoardData,
    apply_suggestion,
    board_events,
    gone,
    load_board,
    load_suggestions,
    release,
    short,
)
from ..states import BOLD, ORDER, age, badge, stage_badge
from ..widgets.breadcrumb import Breadcrumb
from ..widgets.in_flight import InFlightPanel
from ..widgets.lanes import LanesView
from ..widgets.reconcile_panel import ReconcilePanel
from ..widgets.stage_detail import StageDetail
from ..widgets.stage_table import StageTable

if TYPE_CHECKING:
    from okstra_engine.reconcile import Suggestion

FULL_REFRESH_S = 15.0
SHARE_SYNC_S = 5.0
"""How often the board of a task shared through a git remote syncs it (in a worker)."""
SIDE_WIDTH = 40
SIDE_MIN_WIDTH = 24
"""The side column's widest, and the narrowest it is shown at: on a narrow terminal it
yields its room to the stage table, whose columns up to the state stay whole."""
_NEEDS_DATA = frozenset({"choose", "auto", "release", "diff", "apply", "handoff", "attach", "autopilot"})


class BoardScreen(OkstraScreen):
    HAS_PARENT = True
    BINDINGS = [
        Binding("enter", "choose", "bind.choose", id="board.choose", tooltip="tip.board.choose", priority=True),
        Binding("a", "auto", "bind.auto", id="board.auto", tooltip="tip.board.auto"),
        Binding("x", "release", "bind.release", id="board.release", tooltip="tip.board.release"),
        Binding("d", "diff", "bind.diff", id="board.diff", tooltip="tip.board.diff"),
        Binding("r", "apply", "bind.apply", id="board.apply", tooltip="tip.board.apply"),
        Binding("h", "handoff", "bind.handoff", id="board.handoff", tooltip="tip.board.handoff"),
        Binding("t", "attach", "bind.attach", id="board.attach", tooltip="tip.board.attach"),
        Binding("p", "autopilot", "bind.autopilot", id="board.autopilot", tooltip="tip.board.autopilot", show=False),
        Binding("n", "toggle_alerts", "bind.notify", id="board.notify", tooltip="tip.board.notify", show=False),
    ]

    loaded: reactive[bool] = reactive(False, bindings=True)
    """The first read arrived: the keys that act on a stage work from then on."""

    class Loaded(Message):
        """A fresh read of the board, or why it failed (`error`); a newer one replaces one
        still queued. `mark`: the fingerprint of its files, taken after the first read."""

        def __init__(
            self,
            data: BoardData | None,
            started: float,
            error: OkstraError | None = None,
            mark: Marks | None = None,
        ) -> None:
            super().__init__()
            self.data = data
            self.started = started
            """When the read began (`time.monotonic`): it saw every change made before."""
            self.error = error
            self.mark = mark

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, BoardScreen.Loaded)

    class SuggestionsLoaded(Message):
        def __init__(self, suggestions: list[Suggestion], plan_run: str | None) -> None:
            super().__init__()
            self.suggestions = suggestions
            self.plan_run = plan_run

    class ActionDone(Message):
        """A change this screen made to `stage` (a release, an applied suggestion) is
        recorded."""

        def __init__(self, stage: int, text: str) -> None:
            super().__init__()
            self.stage = stage
            self.text = text

    def __init__(self, root: Path, ref: TaskRef) -> None:
        super().__init__()
        self.root = root
        self.ref = ref
        self.data: BoardData | None = None
        self.error: OkstraError | None = None
        self._files = FileWatch()
        self._loader = None
        self._last_load = 0.0
        self._own: dict[int, float] = {}
        """Stages this screen changed, and when the change was recorded (infinity while it
        is being made): no read that began before then may announce it."""
        self._muted = False
        self._quiet_since: float | None = None
        """When a screen above stopped changing the task: reads that began before then
        announce nothing."""
        self._ages: tuple[str, ...] = ()
        """The ages shown of the stages in flight, as last painted."""
        self.autopilot = False
        """Whether each read of the board starts the stages that became ready
        (`autopilot.autopilot_step`, at most `DEFAULT_MAX_PARALLEL` agents at once)."""
        self._pilot = None

    def parent_screen(self) -> Screen[Any] | None:
        from .phases import PhaseScreen

        return PhaseScreen(self.root, self.ref)

    # ------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield Breadcrumb("okstra", self.root.name, str(self.ref), t("phase.name.implementation"), id="crumbs")
        yield Static(id="summary")
        # the body's widgets are mounted with the first data: the loading frame before it
        # need not compose and style them (a third of the way to that frame)
        yield Horizontal(id="body")
        yield Footer()

    def _body(self) -> list[Widget]:
        table = StageTable(id="stages")
        table.border_title = t("board.stages.title")
        lanes = LanesView(id="lanes")
        lanes.border_title = t("board.lanes.title")
        return [
            Vertical(table, lanes, StageDetail(id="stage-detail"), id="main"),
            Vertical(InFlightPanel(id="in-flight"), ReconcilePanel(id="reconcile"), id="side"),
        ]

    def on_mount(self) -> None:
        self.query_one("#body").loading = True
        self._render_summary()
        # the first read starts once the loading state is on screen: the worker's imports
        # and parsing hold the interpreter's lock, and would delay that frame
        self._last_load = time.monotonic()
        self.call_after_refresh(self._start_load)
        self.set_interval(self.okstra.poll_interval, self._tick)
        self.set_interval(SHARE_SYNC_S, self._share_tick)
        self.watch(self.okstra, "changing_task", self._task_changing, init=False)

    def on_resize(self) -> None:
        self._fit_side()

    def _fit_side(self) -> None:
        if self.data is None:
            return
        room = self.size.width - self.query_one("#stages", StageTable).width_through("state")
        side = self.query_one("#side")
        side.display = room >= SIDE_MIN_WIDTH
        side.styles.width = max(min(room, SIDE_WIDTH), SIDE_MIN_WIDTH)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in _NEEDS_DATA and not self.loaded:
            return None  # shown, disabled: the board is still loading
        return super().check_action(action, parameters)

    # ------------------------------------------------------------ live

    def _tick(self) -> None:
        if self._loader is not None and not self._loader.is_finished:
            return
        due = time.monotonic() - self._last_load > FULL_REFRESH_S
        if self.data is not None:
            # an agent killed outright changes no file: its pid is looked at too
            if self._files.moved(self.data.watch) or gone(self.data.pids) or due:
                self._start_load()
                return
        elif due:
            self._start_load()
            return
        self._refresh_ages()

    def _share_tick(self) -> None:
        if self.data is not None and self.data.task.project.config.share_remote:
            self._share_sync(self.data.task)

    @work(thread=True, exclusive=True, exit_on_error=False, group="board-share")
    def _share_sync(self, task: Any) -> None:
        """Fetch a shared task's refs and import the other machines' rows (a file the
        board watches); a reservation ref that came or went changes no file: read again."""
        from okstra_engine.share.sync import auto_sync

        if auto_sync(task) is not None:
            self.app.call_from_thread(self._start_load)

    def _start_load(self) -> None:
        self._last_load = time.monotonic()
        self._loader = self._load(first=self._files.mark is None)

    @work(thread=True, exclusive=True, exit_on_error=False, group="board-load")
    def _load(self, *, first: bool) -> None:
        """Read the board; after a first read (`first`), the fingerprint of its files too."""
        started = time.monotonic()
        try:
            data = load_board(self.root, self.ref, self.okstra.clock())
        except OkstraError as exc:
            # a plan or ledger being edited: say so on the board, keep the last good view
            self.post_message(self.Loaded(None, started, exc))
            return
        self.post_message(self.Loaded(data, started, mark=fingerprint(data.watch) if first else None))

    @on(Loaded)
    async def _loaded(self, message: Loaded) -> None:
        self.error = message.error
        body = self.query_one("#body")
        if message.data is None:
            if self.data is None:  # nothing to show but what is wrong
                body.loading = False
            self._render_summary()
            return
        if not body.children:
            await body.mount_all(self._body())
            self.query_one("#stages", StageTable).focus()
        body.loading = False
        if self._files.mark is None:
            self._files.mark = message.mark
        self._show(message.data, message.started)

    def _show(self, data: BoardData, started: float) -> None:
        old, self.data = self.data, data
        quiet = self._muted or self._quiet_since is not None
        if old is not None:
            for stage, (key, params) in board_events(old, self.data):
                alert = key in ALERTS
                if not alert and (quiet or stage in self._own):
                    continue
                text = t(key, **params)
                agent = key not in ("event.done", "event.stale") and alert
                self.say(text, title=t("detail.agent" if agent else "event.title"))
                if alert:
                    self.okstra.alert(text)
        # a change of ours is the board's news no more once a read that began after it
        # was recorded has shown it (a read begun earlier may still be arriving)
        self._own = {stage: at for stage, at in self._own.items() if at >= started}
        if self._quiet_since is not None and started > self._quiet_since:
            self._quiet_since = None
        self._paint()
        if self.autopilot:
            self._step_autopilot()
        if old is None:
            self.loaded = True
            # the git work of reconcile waits until the first board is on screen
            self.call_after_refresh(self._load_suggestions, data)
        else:
            self._load_suggestions(data)

    @work(thread=True, exclusive=True, exit_on_error=False, group="board-reconcile")
    def _load_suggestions(self, data: BoardData) -> None:
        suggestions = load_suggestions(data.task) if data.plan_run else []
        self.post_message(self.SuggestionsLoaded(suggestions, data.plan_run))

    @on(SuggestionsLoaded)
    def _suggestions_loaded(self, message: SuggestionsLoaded) -> None:
        if self.data is not None and message.plan_run == self.data.plan_run:
            self.query_one(ReconcilePanel).show(message.suggestions)

    # ------------------------------------------------------------ rendering

    def _paint(self) -> None:
        assert self.data is not None
        data, now = self.data, self.okstra.clock()
        table = self.query_one("#stages", StageTable)
        keep = table.selected_stage
        self.query_one("#crumbs", Breadcrumb).show(
            "okstra", data.project_name, str(self.ref), t("phase.name.implementation")
        )
        table.show(data, now, keep=keep)
        self._fit_side()
        self.query_one(LanesView).show(data, now, selected=table.selected_stage)
        self.query_one(InFlightPanel).show(data, now)
        self._render_summary()
        self._render_detail()
        self._ages = self._ages_at(now)

    def _ages_at(self, now) -> tuple[str, ...]:
        assert self.data is not None
        return tuple(age(view.since, now) for view in self.data.stages if view.is_flying)

    def _refresh_ages(self) -> None:
        """Repaint the ages when one of them reads otherwise (each second below 90 s)."""
        if self.data is None:
            return
        now = self.okstra.clock()
        ages = self._ages_at(now)
        if ages == self._ages:
            return
        self._ages = ages
        table = self.query_one("#stages", StageTable)
        table.show(self.data, now, keep=table.selected_stage)
        self.query_one(InFlightPanel).show(self.data, now)
        self.query_one(LanesView).show(self.data, now, selected=table.selected_stage)
        self._render_detail()

    def _render_summary(self) -> None:
        summary = self.query_one("#summary", Static)
        look = self.look
        if self.data is None:
            text = Text(
                self.error.what if self.error else t("board.loading"),
                style=look("okstra--stale") if self.error else "",
            )
            summary.update(text)
            return
        data = self.data
        text = Text(data.title, style="bold")
        if data.plan != "approved":
            text.append(
                "   " + t(f"board.plan.{data.plan}", task=str(self.ref)),
                style=look("okstra--ready"),
            )
            summary.update(text)
            return
        done = sum(v.is_done for v in data.stages)
        text.append("   ")
        text.append(t("tasks.done", done=done, total=len(data.stages)), style=look("okstra--done"))
        for state, key in ((StageState.IN_FLIGHT, "tasks.in_flight"), (StageState.STALE, "tasks.stale")):
            count = sum(v.state is state for v in data.stages)
            if count:
                text.append(" · ")
                text.append(t(key, n=count), style=look(f"okstra--{state}"))
        if data.needing_input:
            text.append(" · ")
            text.append(t("tasks.needs_input", n=len(data.needing_input)), style=look("agent--needs-input"))
        text.append(" · ")
        if data.auto_stage is not None:
            text.append(t("board.next", stage=data.auto_stage), style=look("okstra--ready") + BOLD)
        elif done == len(data.stages):
            text.append(t("tasks.all_done"), style=look("okstra--done") + BOLD)
        else:
            text.append(t("board.nothing_ready"), style=look("okstra--blocked"))
        if self.autopilot:
            text.append(" · " + t("board.autopilot_on"), style=look("okstra--in-flight") + BOLD)
        if self.okstra.alerts_on is False:
            text.append(" · " + t("board.alerts_off"), style=look("okstra--blocked"))
        if data.unsynced:
            text.append(" · " + t("board.not_synced", remote=data.unsynced), style=look("okstra--stale"))
        if self.error is not None:
            text.append("   ⚠ " + self.error.what, style=look("okstra--stale"))
        elif data.warnings:
            text.append("   ⚠ " + data.warnings[0], style=look("okstra--not-merged"))
        summary.update(text)

    def _render_detail(self) -> None:
        stage = self.query_one("#stages", StageTable).selected_stage
        self.query_one(StageDetail).show(self.data, stage, self.okstra.clock())

    def _selected_view(self):
        if self.data is None:
            return None
        stage = self.query_one("#stages", StageTable).selected_stage
        return self.data.views.get(stage) if stage is not None else None

    @on(DataTable.RowHighlighted, "#stages")
    def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.query_one(LanesView).mark_selected(self.query_one("#stages", StageTable).selected_stage)
        self._render_detail()

    @on(DataTable.RowSelected, "#stages")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_choose()

    @on(LanesView.Clicked)
    def _card_clicked(self, event: LanesView.Clicked) -> None:
        table = self.query_one("#stages", StageTable)
        table.select_stage(event.stage)
        table.focus()

    # ------------------------------------------------------------ actions

    def action_choose(self) -> None:
        self.after_keys(self._choose)

    def _choose(self) -> None:
        """An implementation run of the highlighted stage, or why `prepare` would refuse it."""
        from okstra_engine.gates import prepare_refusal

        view = self._selected_view()
        if view is None or self.data is None:
            return
        refusal = prepare_refusal(self.data.status, "implementation", view.stage)
        if refusal is not None:
            self.refuse(refusal)
            return
        self.okstra.open_run(self.data.task, "implementation", view.stage)

    def action_auto(self) -> None:
        """An implementation run of the stage `--stage auto` takes, or why there is none."""
        from okstra_engine.gates import prepare_refusal

        if self.data is None:
            return
        refusal = prepare_refusal(self.data.status, "implementation")
        auto = self.data.auto_stage
        if refusal is not None:
            self.refuse(refusal)
        elif auto is not None:  # nothing refused: there is a ready stage
            self.query_one("#stages", StageTable).select_stage(auto)
            self.okstra.open_run(self.data.task, "implementation", auto)

    def action_release(self) -> None:
        """Release the highlighted stage's stale reservation, once confirmed. A live run's
        is not released from the board (the engine would): the board says how, by hand."""
        from okstra_engine.gates import release_refusal

        view = self._selected_view()
        if view is None or self.data is None:
            return
        if view.state is StageState.IN_FLIGHT:
            self.say(
                t("release.live", stage=view.stage, run=view.run_id or "-", task=str(self.ref)),
                severity="warning",
                timeout=10,
            )
            return
        refusal = release_refusal(self.data.task, self.data.status.ledger, view.stage)
        if refusal is not None:
            self.refuse(refusal)
            return
        from .confirm import ConfirmModal

        stage, task = view.stage, self.data.task

        def answered(yes: bool | None) -> None:
            if yes:
                self._own[stage] = math.inf
                self._release(task, stage)

        self.app.push_screen(
            ConfirmModal(
                t("release.title", stage=stage, title=view.title),
                [
                    t("release.run", run=view.run_id or "-"),
                    t("release.why", why=view.stale_reason or ""),
                    t("release.effect"),
                ],
                confirm=t("release.confirm"),
                cancel=t("common.cancel"),
                danger=True,
            ),
            answered,
        )

    @work(thread=True, exclusive=True, exit_on_error=False, group="board-action")
    def _release(self, task, stage: int) -> None:
        release(task, stage)
        self.post_message(self.ActionDone(stage, t("release.done", stage=stage)))

    @on(ActionDone)
    def _action_done(self, message: ActionDone) -> None:
        """Say it, and read the board now rather than at the next tick."""
        self._own[message.stage] = time.monotonic()
        self.say(message.text)
        self._files.mark = None if self.data is None else fingerprint(self.data.watch)
        if self._loader is None or self._loader.is_finished:
            self._start_load()

    def action_diff(self) -> None:
        view = self._selected_view()
        if view is None or self.data is None:
            return
        from .diff import DiffScreen

        self.app.push_screen(DiffScreen(self.data, view.stage))

    def action_apply(self) -> None:
        if self.data is None:
            return
        panel = self.query_one(ReconcilePanel)
        suggestion = panel.selected
        if suggestion is None:
            self.say(t("reconcile.nothing"), severity="warning")
            return
        if not suggestion.applicable:
            self.say(
                t("reconcile.no_target", stage=suggestion.stage, kind=t("kind." + suggestion.kind)), severity="warning"
            )
            return
        from .confirm import ConfirmModal

        task = self.data.task

        def answered(yes: bool | None) -> None:
            if yes:
                self._own[suggestion.stage] = math.inf
                self._apply(task, suggestion)

        self.app.push_screen(
            ConfirmModal(
                t("reconcile.confirm_title", stage=suggestion.stage),
                [
                    t(
                        "reconcile.confirm_body",
                        old=short(suggestion.recorded),
                        new=short(suggestion.suggested),
                        kind=t("kind." + suggestion.kind),
                    ),
                    t("reconcile.confirm_effect"),
                ],
                confirm=t("reconcile.confirm"),
                cancel=t("common.cancel"),
            ),
            answered,
        )

    @work(thread=True, exclusive=True, exit_on_error=False, group="board-action")
    def _apply(self, task, suggestion: Suggestion) -> None:
        apply_suggestion(task, suggestion)
        self.post_message(
            self.ActionDone(
                suggestion.stage, t("reconcile.applied", stage=suggestion.stage, new=short(suggestion.suggested))
            )
        )

    def _task_changing(self, changing: bool) -> None:
        """A screen above changes the task (`OkstraApp.changing_task`): while it does, no
        read announces anything, nor does one that began before it was done."""
        if not changing and not self._muted:
            return  # not the end of a change (Textual also calls watchers as the app starts)
        self._muted = changing
        if not changing:
            self._quiet_since = time.monotonic()

    def action_attach(self) -> None:
        """Show the selected stage's agent in this terminal (its managed tmux session):
        the board suspends, and detaching (tmux's C-b d) comes back to it. From inside a
        session of the same tmux server, that client switches to the agent's session."""
        from okstra_engine.managed import attach_argv

        view = self._selected_view()
        if view is None or self.data is None:
            return
        found = self.data.terminal(view.stage)
        if found is None:
            self.say(t("board.no_terminal", stage=view.stage, task=str(self.ref)), severity="warning", timeout=8)
            return
        argv = attach_argv(found)
        if "switch-client" in argv:
            subprocess.run(argv, capture_output=True, check=False)
            self.say(t("board.switched", session=found.session), timeout=8)
            return
        try:
            with self.app.suspend():
                subprocess.run(argv, check=False)
        except SuspendNotSupported:
            self.say(t("board.attach_here", command=shlex.join(argv)), severity="warning", timeout=10)
            return
        self._start_load()  # what the agent did meanwhile

    def action_autopilot(self) -> None:
        """Keep the task moving: on each read, start the stages that became ready, each in
        its managed terminal, at most two agents at once (as `okstra start --follow`)."""
        self.autopilot = not self.autopilot
        self.say(t("board.autopilot_on" if self.autopilot else "board.autopilot_off"))
        self._render_summary()
        if self.autopilot:
            self._step_autopilot()

    def _step_autopilot(self) -> None:
        if self.data is None or (self._pilot is not None and not self._pilot.is_finished):
            return  # the next read steps again
        self._pilot = self._autopilot_step(self.data.task)

    @work(thread=True, exit_on_error=False, group="board-autopilot")
    def _autopilot_step(self, task) -> None:
        from okstra_engine.autopilot import DEFAULT_MAX_PARALLEL, autopilot_step

        for found in autopilot_step(task, DEFAULT_MAX_PARALLEL):
            self.post_message(
                self.ActionDone(found.stage, t("board.started", stage=found.stage, session=found.session))
            )

    def worker_failed(self, worker, error: BaseException) -> None:
        if worker.group == "board-autopilot":  # said in the error dialog; not again on every read
            self.autopilot = False
            self._render_summary()

    def action_toggle_alerts(self) -> None:
        """Turn calling the person back (bell, desktop notification) off or on."""
        app = self.okstra
        app.alerts_on = not app.alert_channels
        channels = app.alert_channels
        self.say(t("board.alerts_on", channels=", ".join(channels)) if channels else t("board.alerts_off"))
        self._render_summary()

    def action_handoff(self) -> None:
        """The handoff of the highlighted stage's group: its merge plan, then confirm."""
        view = self._selected_view()
        if view is None or self.data is None:
            return
        self.okstra.open_handoff(self.data.task, view.group)

    def help_legend(self) -> list[tuple[Any, Any]]:
        return [(badge(state, self.look), t("legend." + state)) for state in ORDER] + [
            (stage_badge(StageState.IN_FLIGHT, AgentState.NEEDS_INPUT, self.look), t("legend.agent"))
        ]
