"""The selected stage in full: what its state means now, what it waits for and what
waits for it, its commit, run, the tokens its runs used, branch, worktree, the stages
whose worktrees change the same files, and the lead's summary."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from okstra_engine.agent_state import AgentView
from okstra_engine.refusals import some
from okstra_engine.shown import shown
from okstra_engine.stage_view import StageState

from ..i18n import t
from ..model import BoardData, blocked_text, home_relative
from ..plain import plain
from ..states import LOOKS, Looks, age, badge

if TYPE_CHECKING:
    from okstra_engine.usage import Usage


def tokens_text(used: Usage) -> str:
    """`1,200 in · 34 out · 5,000 cache read · 70 cache write`, in the person's language."""
    numbers = {"input": used.input, "output": used.output, "read": used.cache_read, "write": used.cache_write}
    return t("detail.tokens.value", **{key: f"{n:,}" for key, n in numbers.items()})


class StageDetail(Looks, VerticalScroll):
    COMPONENT_CLASSES = LOOKS

    def compose(self) -> ComposeResult:
        yield Static(id="stage-detail-body")

    def show(self, data: BoardData | None, stage: int | None, now: datetime) -> None:
        body = self.query_one("#stage-detail-body", Static)
        views = data.views if data else {}
        view = views.get(stage) if stage is not None else None
        if data is None or view is None:
            self.border_title = ""
            body.update("")
            return
        muted = self.look("okstra--blocked")
        self.border_title = plain(f"{t('board.detail.stage', stage=view.stage)} · {view.title}")
        host = data.hosts.get(view.stage) or "-"
        sentence = {
            StageState.DONE: lambda: t("board.detail.done"),
            StageState.NOT_MERGED: lambda: t("board.detail.not-merged"),
            StageState.IN_FLIGHT: lambda: t("board.detail.in-flight", host=host, age=age(view.since, now)),
            StageState.STALE: lambda: t("board.detail.stale", why=view.stale_reason or ""),
            StageState.READY: lambda: t("board.detail.ready"),
            StageState.BLOCKED: lambda: blocked_text(view, "detail"),
        }[view.state]()

        def stages(numbers: list[int]) -> Text:
            text = Text()
            for i, n in enumerate(numbers):
                if i:
                    text.append("   ")
                other = views[n]
                text.append(f"{n} ", style="bold")
                text.append(badge(other.state, self.look))
            return text if numbers else Text("—", style=muted)

        grid = Table.grid(padding=(0, 2))
        grid.add_column(style=muted, no_wrap=True)
        grid.add_column()
        grid.add_row(t("detail.deps"), stages(view.depends_on))
        dependents = [s.stage for s in data.stages if view.stage in s.depends_on]
        grid.add_row(t("detail.dependents"), stages(dependents))
        if view.done_commit or view.empty:
            commit = Text(" · ".join(p for p in (view.done_commit, view.empty and t("detail.empty")) if p))
            grid.add_row(t("detail.commit"), commit)
        if view.run_id:
            grid.add_row(t("detail.run"), Text(" · ".join(p for p in (view.run_id, data.hosts.get(view.stage)) if p)))
        agent = data.status.agents.get(view.stage)
        if agent is not None and agent.seen:  # a guess from the ledger is no news of the agent
            grid.add_row(t("detail.agent"), self._agent(agent, now))
        used = data.usage.get(view.stage)
        if used is not None:
            grid.add_row(t("detail.tokens"), Text(tokens_text(used), style=muted))
        grid.add_row(t("detail.branch"), Text(data.branches[view.stage]))
        if view.stage in data.worktrees:
            grid.add_row(t("detail.worktree"), Text(home_relative(Path(data.worktrees[view.stage]))))
        overlaps = [o for o in data.status.overlaps if view.stage in o.stages]
        if overlaps:
            grid.add_row(
                t("detail.overlaps"),
                Text(
                    "\n".join(
                        t(
                            "detail.overlap",
                            stage=next(n for n in o.stages if n != view.stage),
                            files=some([shown(f) for f in o.files]),
                        )
                        for o in overlaps
                    ),
                    style=self.look("okstra--not-merged"),
                ),
            )
        summary = data.summaries.get(view.stage)
        if summary:
            grid.add_row(t("detail.summary"), Text(summary))
        head = Text.assemble(badge(view.state, self.look), "  ", sentence)
        body.update(Group(head, grid))

    def _agent(self, agent: AgentView, now: datetime) -> Text:
        """What the stage's agent is doing, from its own hooks: needs-input stands out."""
        styles = {"needs-input": self.look("agent--needs-input"), "failed": self.look("okstra--stale")}
        text = Text(t(f"agent.state.{agent.state}"), style=styles.get(str(agent.state), ""))
        if agent.since:
            from okstra_engine.ledger import parse_ts

            text.append(" · " + age(parse_ts(agent.since), now), style=self.look("okstra--blocked"))
        if agent.session_id:
            text.append(
                " · " + t("detail.session", session=shown(agent.session_id)[:8]), style=self.look("okstra--blocked")
            )
        return text
