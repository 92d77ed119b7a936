"""`handoff-G.md` beside the plan: what a handoff landed, the tokens its stages used, what
is ready next, and the next command; written atomically. A group name that is not a safe file name is slugged
and suffixed with a short hash of the name."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from .. import clock
from ..fsio import atomic_write_text
from ..slugs import slugify
from ..stage_view import StageState
from ..status import TaskStatus
from ..tasks import task_branch
from ..usage import Usage, task_usage
from .plan import HandoffPlan

if TYPE_CHECKING:
    from .merge import HandoffResult


def report_name(group: str) -> str:
    """`handoff-<group>.md`, with a group name that is safe as a file name."""
    if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", group) and ".." not in group:
        return f"handoff-{group}.md"
    digest = hashlib.sha1(group.encode("utf-8")).hexdigest()[:8]
    return f"handoff-{slugify(group) if slugify(group) != 'project' else 'group'}-{digest}.md"


def write_report(plan: HandoffPlan, result: HandoffResult, after: TaskStatus) -> Path:
    """`handoff-G.md` beside the plan, written atomically."""
    path = plan.plan_dir / report_name(plan.group)
    atomic_write_text(path, render_report(plan, result, after, task_usage(plan.task).stages()))
    return path


def render_report(
    plan: HandoffPlan, result: HandoffResult, after: TaskStatus, usage: Mapping[int, Usage] | None = None
) -> str:
    """`usage`: the tokens each stage's runs used; the stages of the group that used any
    get a Tokens section."""
    task = plan.task
    when = result.record.ts if result.record else clock.iso()
    lines = [
        f"# Handoff of group {plan.group} — {task.ref}",
        "",
        f"{task.doc.title}",
        "",
        f"- when: {when}",
        f"- stages: {', '.join(map(str, plan.stage_numbers))}",
        f"- task worktree: `{plan.task_worktree}` (branch `{task_branch(task)}`)",
        f"- task HEAD: `{result.head_before[:12]}` → `{result.task_head[:12]}`"
        + ("" if result.merged else " (nothing merged: every stage was in already)"),
        "",
        "## What landed",
        "",
        "| Stage | Title | How | Done commit | In the task history at |",
        "|-------|-------|-----|-------------|------------------------|",
    ]
    notes = []
    for sp in plan.stages:
        merge_commit = result.merge_commits.get(sp.stage)
        if merge_commit:
            how, where = "merged now (`--no-ff`)", f"merge `{merge_commit[:12]}`"
        else:
            how = f"already there ({sp.kind})"
            if sp.reconciled_from:
                how += f"; done commit corrected from `{sp.reconciled_from[:12]}`"
            earlier = plan.earlier_landing(sp)
            at = earlier or sp.match_commit
            where = f"{'merge ' if earlier else ''}`{at[:12]}`" if at else "-"
        if sp.ambiguous:
            notes.append(
                f"- stage {sp.stage}: several commits carry its change; the done commit is left as it is — "
                f"pick the right one: `okstra reconcile {task.ref} --stage {sp.stage} --commit SHA`"
            )
        if sp.branch_head and sp.done_commit and sp.branch_head != sp.done_commit:
            notes.append(
                f"- stage {sp.stage}: branch `{sp.branch}` is at `{sp.branch_head[:12]}`, past its done commit; "
                "only the done commit was handed off"
            )
        done = f"`{sp.done_commit[:12]}`" if sp.done_commit else "-"
        lines.append(f"| {sp.stage} | {_cell(sp.title)} | {how} | {done} | {where} |")
    if notes:
        lines += ["", "Notes:", "", *notes]
    titles = {v.stage: v for v in after.stages}
    ready = [v for v in after.stages if v.state is StageState.READY]
    used = {n: usage[n] for n in plan.stage_numbers if usage and n in usage and usage[n] != Usage()}
    if used:
        lines += [
            "",
            "## Tokens",
            "",
            "| Stage | Input | Output | Cache read | Cache write |",
            "|------:|------:|-------:|-----------:|------------:|",
        ]
        for n, u in used.items():
            lines.append(f"| {n} | {u.input:,} | {u.output:,} | {u.cache_read:,} | {u.cache_write:,} |")
    lines += ["", "## Ready next", ""]
    if ready:
        for v in ready:
            deps = f" (depends on {', '.join(map(str, v.depends_on))})" if v.depends_on else ""
            lines.append(f"- stage {v.stage} — {v.title}{deps}")
    elif titles and all(v.state is StageState.DONE for v in after.stages):
        lines.append("- every stage is done and merged into the task worktree")
    else:
        waiting = [f"stage {v.stage} ({v.state})" for v in after.stages if v.state is not StageState.DONE]
        lines.append("- nothing is ready to implement" + (f"; still open: {', '.join(waiting)}" if waiting else ""))
    lines += ["", "## Next command", "", "```", result.next_command, "```", ""]
    return "\n".join(lines)


def _cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|")


def _some(paths: list[str], most: int = 5) -> str:
    shown = ", ".join(paths[:most])
    return shown + (f" and {len(paths) - most} more" if len(paths) > most else "")
