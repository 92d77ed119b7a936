"""`h` on the board: the handoff of the highlighted stage's group.

A worker reads the merge plan (`handoff.handoff_plan`, read-only): each stage of the
group with its branch, done commit, how that commit stands against the task worktree
HEAD (`content_merged`) and what the handoff does with it — merge (with the files its
merge is foreseen to conflict in), already merged, or refused with the reason. `y` (or the button) runs `handoff.run_handoff(task, group,
merge=True)` in a worker, the progress on screen, then shows the merged commits, or
what stopped it: the conflicting files per stage (the handoff is all or nothing, so the
task worktree is back where it was), the refusals, or the engine's what/how.

`g` moves to the next group of the plan, in handoff order. Leaving after a handoff that
merged says how to clean up the merged stages' worktrees (`okstra gc`).
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Button, Footer, Static

from okstra_engine.errors import OkstraError
from okstra_engine.shown import shown

from ..base import OkstraScreen
from ..i18n import plural, t, texts
from ..model import home_relative, short, stages_text
from ..refusal_text import error_texts, refusal_texts
from ..states import BOLD, Look, badge
from ..widgets.breadcrumb import Breadcrumb
from ..widgets.status_bar import StatusBar

if TYPE_CHECKING:
    from collections.abc import Callable

    from okstra_engine.handoff import HandoffPlan, HandoffResult
    from okstra_engine.tasks import Task


def kind_text(kind: str | None) -> str:
    if kind is None:
        return "—"
    key = "kind." + kind
    return t(key) if key in texts() else kind


class PlanTable:
    """The merge plan, one row per stage of the group, laid out for the width it gets:
    branch names whole where every cell fits on its line, folded where not (the last
    column says what the handoff does, and stays)."""

    def __init__(self, plan: HandoffPlan, look: Look, *, conflicts: dict[int, list[str]] | None = None) -> None:
        self.plan, self.look, self.conflicts = plan, look, conflicts

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        whole = min(max((len(s.branch) for s in self.plan.stages), default=10), 40)
        table = self.table(whole)
        if Measurement.get(console, options.update_width(10_000), table).maximum > options.max_width:
            table = self.table(12)  # every line would not fit unwrapped: branches fold too
        yield table

    def table(self, branch: int) -> Table:
        plan, look, conflicts = self.plan, self.look, self.conflicts
        muted = look("okstra--blocked")
        table = Table(box=None, padding=(0, 1), expand=True, header_style="bold", show_edge=False)
        table.add_column(t("handoff.col.stage"), justify="right", no_wrap=True)
        # no column has a ratio, nor a minimum beyond its longest word: rich crops the
        # last column where the minimums leave it too little
        table.add_column(t("handoff.col.title"))
        table.add_column(t("handoff.col.branch"), min_width=branch, overflow="fold")
        table.add_column(t("handoff.col.commit"), no_wrap=True)
        table.add_column(t("handoff.col.kind"), max_width=30)
        table.add_column(t("handoff.col.action"))
        for sp in plan.stages:
            commit = Text(short(sp.done_commit) or "—", style="" if sp.done_commit else muted)
            if sp.branch_head and sp.done_commit and sp.branch_head != sp.done_commit:
                commit.append("\n" + t("handoff.branch_tip", commit=short(sp.branch_head)), style=muted)
                if sp.left_behind:
                    commit.append(
                        "\n" + t(plural("handoff.left_behind", len(sp.left_behind)), count=len(sp.left_behind)),
                        style=muted,
                    )
            if sp.kind is not None:
                kind = Text(kind_text(sp.kind))
                if sp.match_commit and sp.kind != "ancestor":
                    kind.append(f" · {short(sp.match_commit)}", style=muted)
                if sp.ambiguous:
                    kind.append("\n" + t("board.reconcile.ambiguous"), style=look("okstra--not-merged"))
            else:
                kind = badge(sp.state, look)
            action = action_text(sp.action, look)
            if sp.stage in plan.predicted_conflicts and not conflicts:
                action.append("\n" + t("handoff.action.predicted"), style=look("okstra--not-merged") + BOLD)
                action.append("\n" + ", ".join(map(shown, plan.predicted_conflicts[sp.stage])), style="bold")
            if conflicts and sp.stage in conflicts:
                action = Text(t("handoff.action.conflict"), style=look("okstra--stale") + BOLD)
                action.append("\n" + ", ".join(map(shown, conflicts[sp.stage])), style="bold")
            table.add_row(
                Text(str(sp.stage), style="bold"),
                Text(shown(sp.title)),
                Text(sp.branch, style=muted),
                commit,
                kind,
                action,
            )
        return table


def action_text(action: str | None, look: Look) -> Text:
    """What the handoff does with a stage (`StagePlan.action`)."""
    if action == "merge":
        return Text(t("handoff.action.merge"), style=look("okstra--ready") + BOLD)
    if action == "already-merged":
        return Text(t("handoff.action.already"), style=look("okstra--done"))
    if action == "refused":  # why: under the table, where the line is long enough
        return Text(t("handoff.action.refused"), style=look("okstra--stale") + BOLD)
    return Text(t("handoff.action.unclassified"), style=look("okstra--blocked"))


class Busy(StrEnum):
    """What the handoff screen is doing; None when it waits for the person."""

    PLANNING = "planning"
    RUNNING = "running"


class HandoffScreen(OkstraScreen):
    BINDINGS = [
        Binding("y", "confirm", "bind.hand_off", id="handoff.confirm", tooltip="tip.handoff.confirm"),
        Binding("g", "next_group", "bind.next_group", id="handoff.next_group", tooltip="tip.handoff.next_group"),
    ]

    class Planned(Message):
        def __init__(self, plan: HandoffPlan | None, error: OkstraError | None = None) -> None:
            super().__init__()
            self.plan = plan
            self.error = error

    class Finished(Message):
        def __init__(self, result: HandoffResult | None, error: OkstraError | None = None) -> None:
            super().__init__()
            self.result = result
            self.error = error

    # plan and result: every assignment is news (always_update), no deep comparison of plans
    busy: reactive[Busy | None] = reactive(Busy.PLANNING, bindings=True, repaint=False)
    plan: reactive[HandoffPlan | None] = reactive(None, bindings=True, repaint=False, always_update=True)
    result: reactive[HandoffResult | None] = reactive(None, bindings=True, repaint=False, always_update=True)

    def __init__(self, task: Task, group: str) -> None:
        super().__init__()
        self.run_task = task
        self.group = group
        self.failure: OkstraError | None = None

    def compose(self) -> ComposeResult:
        yield Breadcrumb(*self._crumbs(), id="crumbs")
        yield Static(id="handoff-head", classes="heading")
        with VerticalScroll(id="handoff-body"):
            yield Static(id="handoff-plan")
            yield Static(id="handoff-notes")
            yield Static(id="handoff-result")
        yield StatusBar(
            Button(
                t("handoff.confirm", group=self.group),
                id="confirm",
                action="screen.confirm",
                variant="primary",
                disabled=True,
            ),
            Button(t("handoff.back"), id="back", action="screen.back"),
        )
        yield Footer()

    def _crumbs(self) -> list[str]:
        return [
            "okstra",
            self.run_task.project.config.name,
            str(self.run_task.ref),
            t("handoff.crumb", group=self.group),
        ]

    def on_mount(self) -> None:
        self.query_one("#handoff-plan").border_title = t("handoff.plan_title")
        self._start_plan()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "back":
            return self.busy != Busy.RUNNING and super().check_action(action, parameters)
        if action == "confirm":
            return self.busy is None and self.plan is not None and not self.plan.refused and self.result is None
        if action == "next_group":
            return self.busy != Busy.RUNNING and self.plan is not None and len(self.plan.groups) > 1
        return True

    # ------------------------------------------------------------ the plan

    def _start_plan(self) -> None:
        self.busy = Busy.PLANNING
        self.plan = self.result = self.failure = None
        self.query_one("#handoff-head", Static).update(Text(t("handoff.heading", group=self.group), style="bold"))
        self.query_one("#handoff-plan").border_title = t("handoff.plan_title")
        self.query_one("#handoff-plan").loading = True
        for name in ("#handoff-notes", "#handoff-result"):
            self.query_one(name, Static).update("")
        self.query_one("#confirm", Button).label = t("handoff.confirm", group=self.group)
        self.query_one("#confirm", Button).disabled = True
        self.query_one("#confirm", Button).display = True
        self.query_one("#crumbs", Breadcrumb).show(*self._crumbs())
        self._status(t("handoff.planning"), working=True)
        self._load_plan(self.group)

    @work(thread=True, exclusive=True, exit_on_error=False, group="handoff-plan")
    def _load_plan(self, group: str) -> None:
        from okstra_engine.handoff import handoff_plan

        try:
            self.post_message(self.Planned(handoff_plan(self.run_task, group)))
        except OkstraError as exc:
            self.post_message(self.Planned(None, exc))

    @on(Planned)
    def _planned(self, message: Planned) -> None:
        self.busy = None
        panel = self.query_one("#handoff-plan", Static)
        panel.loading = False
        if message.plan is None:
            assert message.error is not None
            self.failure = message.error
            panel.update(self._error_text(message.error, t("handoff.no_plan")))
            self._status(t("handoff.back_hint"))
            return
        self.plan = plan = message.plan
        self.query_one("#handoff-head", Static).update(self._head(plan))
        panel.update(PlanTable(plan, self.look))
        self.query_one("#handoff-notes", Static).update(self._notes(plan))
        confirm = self.query_one("#confirm", Button)
        confirm.disabled = bool(plan.refused)
        if plan.refused:
            self._status(t("handoff.refused_hint"))
        else:
            confirm.label = t("handoff.confirm_merge" if plan.to_merge else "handoff.confirm_record", group=plan.group)
            self._status(t("handoff.ready_hint"))
        self.query_one("#handoff-body").focus()

    def _head(self, plan: HandoffPlan) -> Text:
        from okstra_engine.tasks import task_branch

        muted = self.look("okstra--blocked")
        head = Text(t("handoff.heading_stages", group=plan.group, stages=stages_text(plan.stage_numbers)), style="bold")
        head.append(
            "\n"
            + t(
                "handoff.into",
                branch=task_branch(plan.task),
                head=short(plan.task_head),
                path=home_relative(plan.task_worktree),
            ),
            style=muted,
        )
        return head

    def _notes(self, plan: HandoffPlan) -> Group:
        muted = self.look("okstra--blocked")
        warn = self.look("okstra--not-merged")
        bad = self.look("okstra--stale") + BOLD
        lines: list[Any] = [Text("")]
        if plan.refused:
            lines.append(Text("✖ " + t("handoff.cannot", group=plan.group), style=bad))
            lines += self._refusal_lines(plan)
        elif plan.to_merge:
            lines.append(Text(t("handoff.will_merge", stages=stages_text(plan.to_merge), head=short(plan.task_head))))
            if plan.already_merged:
                lines.append(Text(t("handoff.will_count", stages=stages_text(plan.already_merged)), style=muted))
            for blocker in plan.merge_blockers():
                lines.append(Text("⚠ " + blocker, style=warn))
        else:
            lines.append(Text(t("handoff.all_merged", group=plan.group)))
        if plan.group in plan.handed_off:
            lines.append(Text(t("handoff.again", group=plan.group), style=warn))
        for warning in plan.warnings:
            lines.append(Text("⚠ " + warning, style=muted))
        return Group(*lines)

    def _refusal_lines(self, plan: HandoffPlan) -> list[Text]:
        """Why each refused stage keeps the group back, then the fixes (each once)."""
        said = [refusal_texts(refusal) for refusal in plan.refused.values()]
        lines = [Text("  " + what, style=self.look("okstra--stale")) for what, _ in said]
        hows = dict.fromkeys(how for _, how in said if how)
        return lines + [Text(t("error.how", how=how), style=self.look("okstra--blocked")) for how in hows]

    def _error_text(self, error: OkstraError, title: str) -> Text:
        what, how = error_texts(error)
        text = Text("✖ " + title, style=self.look("okstra--stale") + BOLD)
        text.append("\n" + what)
        if how:
            text.append("\n" + t("error.how", how=how), style=self.look("okstra--blocked"))
        return text

    def _status(self, text: str, *, working: bool = False) -> None:
        self.query_one(StatusBar).show(text, working=working)

    # ------------------------------------------------------------ actions

    def action_back(self) -> None:
        if self.result is not None and self.result.merged:  # merged stages' worktrees can go now
            self.say(t("handoff.gc_hint", task=str(self.run_task.ref)))
        super().action_back()

    def action_next_group(self) -> None:
        if self.plan is None:
            return
        names = list(self.plan.groups)
        self.group = names[(names.index(self.group) + 1) % len(names)] if self.group in names else names[0]
        self._start_plan()

    def action_confirm(self) -> None:
        if not self.check_action("confirm", ()):
            return
        assert self.plan is not None
        self.busy = Busy.RUNNING
        self.query_one("#confirm", Button).disabled = True
        self._status(t("handoff.running", group=self.plan.group), working=True)
        self.okstra.changing_task = True
        self._run(self.plan.group, self.query_one(StatusBar).report)

    @work(thread=True, exclusive=True, exit_on_error=False, group="handoff-run")
    def _run(self, group: str, say: Callable[[str], None]) -> None:
        from okstra_engine.handoff import run_handoff

        try:
            result = run_handoff(self.run_task, group, merge=True, notice=say, warn=say)
        except OkstraError as exc:
            self.post_message(self.Finished(None, exc))
            return
        self.post_message(self.Finished(result))

    def worker_failed(self, worker: Any, error: BaseException) -> None:
        if worker.group == "handoff-run":
            self.okstra.changing_task = False
            self.busy = None
            self._status(t("handoff.ready_hint"))
            self.query_one("#confirm", Button).disabled = False

    @on(Finished)
    def _finished(self, message: Finished) -> None:
        self.busy = None
        self.okstra.changing_task = False
        if message.result is not None:
            self.result = message.result
            self.plan = message.result.plan
            self.query_one("#handoff-head", Static).update(self._head(self.plan))
            self.query_one("#handoff-plan", Static).update(PlanTable(self.plan, self.look))
            self.query_one("#handoff-plan").border_title = t("handoff.plan_title_done")
            self.query_one("#handoff-notes", Static).update("")
            self.query_one("#handoff-result", Static).update(self._result(message.result))
            self._status(t("handoff.done_hint"))
            self.query_one("#confirm", Button).display = False
            self.say(t("handoff.done", group=self.plan.group, head=short(message.result.task_head)))
        else:
            assert message.error is not None
            self.failure = message.error
            self._show_failure(message.error)
        self.query_one("#back", Button).focus()

    def _show_failure(self, error: OkstraError) -> None:
        from okstra_engine.handoff import HandoffError

        muted = self.look("okstra--blocked")
        bad = self.look("okstra--stale") + BOLD
        parts: list[Any] = [Text("")]
        if isinstance(error, HandoffError):
            self.plan = error.plan
            self.query_one("#handoff-plan", Static).update(PlanTable(error.plan, self.look, conflicts=error.conflicts))
            title = (
                t("handoff.conflicted", group=error.plan.group, head=short(error.plan.task_head))
                if error.conflicts
                else t("handoff.failed", group=error.plan.group)
            )
            parts.append(Text("✖ " + title, style=bad))
            if error.conflicts:
                grid = Table.grid(padding=(0, 2))
                grid.add_column(style="bold", no_wrap=True)
                grid.add_column()
                grid.add_column(style="bold")
                for n, files in sorted(error.conflicts.items()):
                    title_of = next((s.title for s in error.plan.stages if s.stage == n), "")
                    grid.add_row(
                        t("run.stage", stage=n), Text(shown(title_of), style=muted), Text("\n".join(map(shown, files)))
                    )
                parts += [Text(t("handoff.conflicts")), grid]
            if error.plan.refused and not error.conflicts:
                # refused when it ran: the stages' refusals, in the person's language
                parts += self._refusal_lines(error.plan)
            else:
                what, how = refusal_texts(error.refusal) if error.refusal else (error.what, error.how)
                parts.append(Text(what, style=muted))
                if how:
                    parts.append(Text(t("error.how", how=how), style=muted))
        else:
            what, how = error_texts(error)
            parts.append(Text("✖ " + t("handoff.failed", group=self.group), style=bad))
            parts.append(Text(what))
            if how:
                parts.append(Text(t("error.how", how=how), style=muted))
        self.query_one("#handoff-notes", Static).update("")
        self.query_one("#handoff-result", Static).update(Group(*parts))
        self._status(t("handoff.failed_hint"))
        self.query_one("#confirm", Button).disabled = False

    def _result(self, result: HandoffResult) -> Group:
        muted = self.look("okstra--blocked")
        done = self.look("okstra--done") + BOLD
        plan = result.plan
        head = Text("✔ " + t("handoff.result_title", group=plan.group), style=done)
        if result.task_head != result.head_before:
            head.append(
                "   " + t("handoff.moved", old=short(result.head_before), new=short(result.task_head)), style="bold"
            )
        else:
            head.append("   " + t("handoff.unchanged", head=short(result.task_head)), style=muted)
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column(no_wrap=True)
        grid.add_column()
        for sp in plan.stages:
            n = sp.stage
            if n in result.merge_commits:
                how = Text.assemble(
                    (t("handoff.merged_at", commit=short(result.merge_commits[n])), self.look("okstra--done"))
                )
            elif n in result.already_merged and sp.kind in (None, "ancestor"):
                how = Text(t("handoff.already_in", commit=short(sp.match_commit or sp.done_commit)), style=muted)
            elif n in result.already_merged:
                how = Text(
                    t("handoff.already_at", kind=kind_text(sp.kind), commit=short(sp.match_commit or sp.done_commit)),
                    style=muted,
                )
            else:
                how = Text("—", style=muted)
            grid.add_row(t("run.stage", stage=n), Text(shown(sp.title)), how)
        parts: list[Any] = [Text(""), head, grid]
        for line in result.notices:
            parts.append(Text(line, style=muted))
        after = []
        if result.next_ready:
            after.append(t("handoff.next_ready", stages=stages_text(result.next_ready)))
        if result.next_command:
            after.append(t("handoff.next", command=result.next_command))
        if after:
            parts.append(Text(" · ".join(after)))
        if result.report is not None:
            parts.append(Text(t("handoff.report", path=home_relative(Path(result.report))), style=muted))
        return Group(*parts)

    def help_legend(self) -> list[tuple[Any, Any]]:
        return [
            (action_text(action, self.look), t(f"legend.handoff.{key}"))
            for action, key in (("merge", "merge"), ("already-merged", "already"), ("refused", "refused"))
        ]
