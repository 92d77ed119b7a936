"""The plan screen: the task's newest plan for review before it is approved. Its text as
Markdown (display only: links open nothing, nothing in it runs), its Stage Map as
written, one row per table line, with what keeps it from holding on the row's line (a
cycle, an unknown stage), and its shape as the board's lanes. `a` approves it (after a
confirmation), `i` imports another plan file in its place. Live: an approval or a new
plan made elsewhere shows at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Button, DataTable, Footer, Input, Label, Markdown, Static

from okstra_engine.shown import shown
from okstra_engine.slugs import TaskRef

from ..base import OkstraModal, OkstraScreen
from ..i18n import t
from ..live import Following, Marks, fingerprint
from ..model import PlanReview, approve, import_plan_file, load_plan_review
from ..states import BOLD
from ..widgets.breadcrumb import Breadcrumb
from ..widgets.lanes import LanesView

if TYPE_CHECKING:
    from okstra_engine.tasks import Task


class PlanScreen(Following, OkstraScreen):
    HAS_PARENT = True
    BINDINGS = [
        Binding("a", "approve", "bind.approve", id="plan.approve", tooltip="tip.plan.approve"),
        Binding("i", "import_plan", "bind.import", id="plan.import", tooltip="tip.plan.import"),
    ]

    class Loaded(Message):
        def __init__(self, review: PlanReview, mark: Marks) -> None:
            super().__init__()
            self.review = review
            self.mark = mark

    def __init__(self, root: Path, ref: TaskRef) -> None:
        super().__init__()
        self.root = root
        self.ref = ref
        self.review: PlanReview | None = None

    def parent_screen(self) -> Screen[Any] | None:
        from .phases import PhaseScreen

        return PhaseScreen(self.root, self.ref, plan_first=False)

    def compose(self) -> ComposeResult:
        yield Breadcrumb("okstra", self.root.name, str(self.ref), t("plan.crumb"), id="crumbs")
        yield Static(id="plan-head", classes="heading")
        with Horizontal(id="plan-body"):
            with VerticalScroll(id="plan-text"):
                yield Markdown(id="plan-markdown", open_links=False)
            with Vertical(id="plan-side"):
                yield DataTable(id="plan-stages", cursor_type="row", zebra_stripes=False)
                yield Static(id="plan-problem", classes="detail")
                yield LanesView(id="plan-lanes")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#plan-text").border_title = t("plan.text.title")
        self.query_one("#plan-stages").border_title = t("plan.stages.title")
        self.query_one("#plan-lanes").border_title = t("plan.lanes.title")
        table = self.query_one("#plan-stages", DataTable)
        for key in ("line", "stage", "title", "depends", "group"):
            table.add_column(Text(t(f"plan.col.{key}"), style="bold"), key=key)
        self.query_one("#plan-body").loading = True
        self.follow_files()
        self._reader = self._load()

    def on_screen_resume(self) -> None:
        if self.review is not None:
            self._reader = self._load()

    def reread(self):
        return self._load()

    @work(thread=True, exclusive=True, exit_on_error=False, group="plan")
    def _load(self) -> None:
        mark = fingerprint(self.files.paths)
        self.post_message(self.Loaded(load_plan_review(self.root, self.ref, self.okstra.clock()), mark))

    @on(Loaded)
    async def _loaded(self, message: Loaded) -> None:
        old, self.review = self.review, message.review
        review = message.review
        self.files.follow(review.watch, message.mark if old is not None else None)
        self.query_one("#plan-body").loading = False
        self.query_one("#crumbs", Breadcrumb).show("okstra", review.project_name, str(self.ref), t("plan.crumb"))
        self._show_head(review)
        if old is None or old.text != review.text:
            await self.query_one("#plan-markdown", Markdown).update(review.text or t("plan.none_text"))
        self._show_table(review)
        lanes = self.query_one("#plan-lanes", LanesView)
        lanes.display = bool(review.lanes)
        if review.lanes:
            lanes.show(review, self.okstra.clock(), selected=None)
        if old is None:
            self.query_one("#plan-stages", DataTable).focus()

    def _show_head(self, review: PlanReview) -> None:
        text = Text(shown(review.task.doc.title), style="bold")
        if review.run_id:
            text.append("   " + review.run_id, style=self.look("okstra--blocked"))
        look = {"approved": "okstra--done", "draft": "okstra--ready", "broken": "okstra--stale"}.get(
            review.state, "okstra--blocked"
        )
        text.append("   " + t(f"plan.state.{review.state}"), style=self.look(look))
        self.query_one("#plan-head", Static).update(text)

    def _show_table(self, review: PlanReview) -> None:
        table = self.query_one("#plan-stages", DataTable)
        keep = table.cursor_row
        table.clear()
        draft = review.draft
        problem = self.query_one("#plan-problem", Static)
        bad = self.look("okstra--stale")
        if draft is None:
            problem.update(Text(t("plan.none"), style=self.look("okstra--blocked")))
            table.display = False
            return
        table.display = bool(draft.stages)
        by_row: dict[int, list[str]] = {}
        for found in draft.problems:
            by_row.setdefault(found.index, []).append(found.what)
        for index, stage in enumerate(draft.stages):
            style = bad if index in by_row else ""
            cells = [
                Text(str(draft.lines.get(index, "")), style=self.look("okstra--blocked")),
                Text(str(stage.stage), style=bad + BOLD if index in by_row else "bold"),
                Text(shown(stage.title), style=style),
                Text(", ".join(map(str, stage.depends_on)) or "-", style=style),
                Text(shown(stage.group or "-"), style=style),
            ]
            table.add_row(*cells, key=str(index))
        if draft.stages:
            table.move_cursor(row=min(keep, len(draft.stages) - 1))
        if draft.error is not None:
            what = Text("⚠ " + draft.error.what, style=bad)
            if draft.error.how:
                what.append("\n" + t("error.how", how=draft.error.how), style=self.look("okstra--blocked"))
            problem.update(what)
        elif draft.problems:
            lines = [f"⚠ {p.what}" for p in dict((p.what, p) for p in draft.problems).values()]
            what = Text("\n".join(lines), style=bad)
            what.append("\n" + t("error.how", how=draft.problems[0].how), style=self.look("okstra--blocked"))
            problem.update(what)
        else:
            problem.update(Text(t("plan.holds", n=len(draft.stages)), style=self.look("okstra--done")))

    # ------------------------------------------------------------ actions

    def action_approve(self) -> None:
        review = self.review
        if review is None or review.run_id is None:
            self.say(t("plan.none"), severity="warning")
            return
        if review.state == "approved":
            self.say(t("plan.already", run=review.run_id))
            return
        if review.refusal is not None:
            self.refuse(review.refusal)
            return
        from .confirm import ConfirmModal

        task, run = review.task, review.run_id

        def answered(yes: bool | None) -> None:
            if yes:
                self._approve(task, run)

        self.app.push_screen(
            ConfirmModal(
                t("plan.approve_title", task=str(self.ref)),
                [t("plan.approve_body", run=run, n=len(review.stages)), t("plan.approve_effect")],
                confirm=t("plan.approve_confirm"),
                cancel=t("common.cancel"),
            ),
            answered,
        )

    @work(thread=True, exclusive=True, exit_on_error=False, group="plan-action")
    def _approve(self, task: Task, run: str) -> None:
        approve(task, run)
        self.app.call_from_thread(self.say, t("plan.approved", run=run))
        self.app.call_from_thread(self._reload)

    def _reload(self) -> None:
        if not self.reading():
            self._reader = self._load()

    def action_import_plan(self) -> None:
        review = self.review
        if review is None:
            return
        task = review.task

        def chosen(path: str | None) -> None:
            if path:
                self._import(task, path)

        self.app.push_screen(ImportForm(str(self.ref)), chosen)

    @work(thread=True, exclusive=True, exit_on_error=False, group="plan-action")
    def _import(self, task: Task, path: str) -> None:
        run = import_plan_file(task, path)
        self.app.call_from_thread(self.say, t("plan.imported", run=run))
        self.app.call_from_thread(self._reload)


class ImportForm(OkstraModal[str | None]):
    """The path of a plan file to import (a plan.md or a stage-map.json)."""

    BINDINGS = [
        Binding("escape", "cancel", "bind.cancel", id="import.cancel", tooltip="tip.cancel"),
    ]

    def __init__(self, task: str) -> None:
        super().__init__()
        self.task = task

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog -form"):
            yield Static(t("plan.import_title", task=self.task), classes="dialog-title", markup=False)
            yield Label(t("plan.import_path"))
            yield Input(placeholder=t("plan.import_placeholder"), id="path")
            with Horizontal(classes="dialog-buttons"):
                yield Button(t("plan.import_confirm"), id="import", action="screen.submit", variant="primary")
                yield Button(t("common.cancel"), id="cancel", action="screen.cancel")

    def on_mount(self) -> None:
        self.query_one("#path", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_submit()

    def action_submit(self) -> None:
        value = self.query_one("#path", Input).value.strip()
        if value:
            self.dismiss(value)

    def action_cancel(self) -> None:
        self.dismiss(None)
