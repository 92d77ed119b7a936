"""`okstra status` for people: a rich table. Only imported when no `--json` is asked."""

from __future__ import annotations

from datetime import datetime

from rich.console import Console
from rich.table import Table
from rich.text import Text

from . import clock
from .gates import blocked_refusal
from .refusals import handoff_commands, merge_commands, numbers
from .shown import shown
from .stage_view import StageState, StageView
from .status import TaskStatus

STATE_STYLE = {
    StageState.DONE: "green",
    StageState.NOT_MERGED: "yellow",
    StageState.IN_FLIGHT: "cyan",
    StageState.STALE: "red",
    StageState.READY: "bold",
    StageState.BLOCKED: "dim",
}


def age(since: datetime | None, now: datetime | None = None) -> str:
    if since is None:
        return ""
    seconds = int(((now or clock.now()) - since).total_seconds())
    if seconds < 90:
        return f"{max(seconds, 0)}s"
    if seconds < 5400:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def blocked_note(view: StageView) -> str:
    """What a blocked stage waits for, short enough for its cell."""
    reason = view.reason
    if reason is None:
        return ""
    if reason.code == "needs-handoff":
        return f"needs group(s) {numbers(reason.groups)} handed off"
    if reason.code == "needs-merge":
        return f"needs {numbers(reason.stages)} merged by hand"
    return f"waits for {numbers(reason.stages)}"


def print_status(status: TaskStatus) -> None:
    # every value here may come from a person or an agent (titles, groups, paths, hosts):
    # it reaches the terminal as Text, never parsed as markup
    console = Console()

    def say(text: str, style: str = "") -> None:
        console.print(Text(shown(text), style=style), soft_wrap=True)

    console.print(Text.assemble((str(status.task.ref), "bold"), " ", shown(status.task.doc.title)), soft_wrap=True)
    if status.plan_run:
        say(f"plan: {status.plan_run}", "dim")
    for old in status.replaced:
        say(f"replaced plan: {old.run} ({old.progress()}; replaced {old.replaced_at}; kept as it was)", "dim")
    for warning in status.warnings:
        say(f"warning: {warning}", "yellow")
    if not status.stages:
        return
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("stage", "title", "deps", "group", "state", "commit", "run", "age"):
        table.add_column(column)
    auto = status.auto_stage
    for view in status.stages:
        note = view.stale_reason or blocked_note(view)
        state = Text(str(view.state), style=STATE_STYLE[view.state])
        if note:
            state.append(f" ({shown(note)})", style="dim")
        marker = "→" if view.stage == auto else " "
        table.add_row(
            f"{marker}{view.stage}",
            Text(shown(view.title)),
            ", ".join(map(str, view.depends_on)) or "-",
            Text(shown(view.group)),
            state,
            (view.done_commit or "")[:8],
            Text(shown(view.run_id or "")),
            age(view.since),
        )
    console.print(table)
    if auto is not None:
        say(f"next: stage {auto} (okstra prepare {status.task.ref} --type implementation)", "dim")
    # what helps a stage that waits for a merge, in full: a cell cannot hold the command
    for view in status.stages:
        if view.state is StageState.BLOCKED and view.reason is not None and view.reason.code != "deps-not-done":
            p = blocked_refusal(status, view).params
            helps = (
                handoff_commands(p["task"], p["groups"])
                if view.reason.code == "needs-handoff"
                else merge_commands(str(p["worktree"]), p["branches"])
            )
            say(f"stage {view.stage} {blocked_note(view)}: {helps}", "dim")
