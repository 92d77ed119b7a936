"""`okstra report G/ID`: a task in Markdown, for a pull request. Its plan, each stage with
its state, done commit and branch, the lead's summaries, the handoffs, the corrections of
done commits and the stages taken back, the final verification's verdict, and the tokens
the agents used.

Read-only, from the readers `status` and `usage` use. Every text that came from a file a
person or an agent wrote (titles, groups, summaries, reasons, the verdict's line,
warnings) is escaped (`md_text`): it reads as the text it is, never as Markdown that
could open a link, an image, an HTML tag or a heading, or end a table cell.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from .fsio import atomic_write_text
from .shown import shown
from .tasks import Task

if TYPE_CHECKING:
    from .status import TaskStatus
    from .usage import TaskUsage

# What can make inline Markdown of text that never starts a line (a list item's or a
# table cell's words, a heading's after its `# `): emphasis, code, links and images,
# HTML and entities, a cell's end, strikethrough, a closing `#`, GitHub's math
_MARKDOWN = re.compile(r"[\\`*_\[\]()<>#|~&!$]")


def md_text(text: str) -> str:
    """`text` as literal Markdown, for a place that is not a line's start: control
    characters written as their escapes (`shown`), then each character that could act
    as Markdown backslash-escaped (CommonMark lets any ASCII punctuation be)."""
    return _MARKDOWN.sub(lambda m: "\\" + m.group(0), shown(text))


def md_code(text: str) -> str:
    """`text` in a code span (a commit, a branch, a run id): a fence longer than any run of
    backticks in it, and `|` escaped (GitHub's tables split a code span at a bare `|`)."""
    text = shown(text)
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text.replace('|', chr(92) + '|')}{pad}{fence}"


def write_task_report(task: Task, out: Path) -> Path:
    """The report, written to `out` atomically."""
    text = task_report(task)
    try:
        atomic_write_text(out, text)
    except OSError as exc:
        from .errors import OkstraError

        raise OkstraError(
            f"cannot write the report to {out}: {exc.strerror}", "give --out a file path you can write"
        ) from exc
    return out


def task_report(task: Task) -> str:
    from .status import task_status
    from .usage import task_usage

    status = task_status(task)
    usage = task_usage(task)
    lines = [f"# {md_text(task.doc.title)} ({md_code(str(task.ref))})", ""]
    lines += _head(task, status)
    if status.plan_run is not None:
        plan_dir = Path(status.plan_run)
        lines += _stages(task, status, plan_dir, usage)
        lines += _handoffs(plan_dir)
        lines += _corrections(plan_dir)
    lines += _verification(task, status)
    lines += _usage(usage)
    warnings = [*status.warnings, *usage.warnings]
    if warnings:
        lines += ["## Warnings", "", *(f"- {md_text(w)}" for w in warnings), ""]
    return "\n".join(lines)


def _head(task: Task, status: TaskStatus) -> list[str]:
    from .stage_view import StageState
    from .tasks import task_branch

    lines = [f"- task branch: {md_code(task_branch(task))}"]
    if status.plan_run is None:
        return [*lines, f"- plan: {md_text(status.warnings[0] if status.warnings else 'no plan yet')}", ""]
    plan_dir = Path(status.plan_run)
    title = _plan_title(plan_dir / "plan.md")
    lines.append(f"- plan: run {md_code(plan_dir.name)}" + (f" — {md_text(title)}" if title else ""))
    done = [v for v in status.stages if v.is_done]
    merged = sum(v.state is StageState.DONE for v in done)  # not-merged is done too
    lines.append(f"- stages: {len(done)} of {len(status.stages)} done, {merged} of them merged into the task branch")
    for replaced in status.replaced:
        lines.append(f"- replaced plan: run {md_code(replaced.run)} ({md_text(replaced.progress())})")
    return [*lines, ""]


def _plan_title(path: Path) -> str | None:
    """The plan's `title` in its front matter, else its first heading."""
    from .plans import front_matter

    try:
        text = path.read_text(encoding="utf-8") if not path.is_symlink() else ""
    except (OSError, UnicodeDecodeError):
        return None
    title = front_matter(text).get("title")
    if title:
        return title
    heading = re.search(r"^#[ \t]+(.+?)[ \t#]*$", text, re.M)
    return heading.group(1) if heading else None


def _stages(task: Task, status: TaskStatus, plan_dir: Path, usage: TaskUsage) -> list[str]:
    from .carry import read_carry
    from .tasks import stage_branch

    tokens = usage.stages()
    lines = [
        "## Stages",
        "",
        "| Stage | Title | Group | Depends on | State | Done commit | Branch | Tokens (input / output) |",
        "|------:|-------|-------|------------|-------|-------------|--------|-------------------------|",
    ]
    for v in status.stages:
        done = md_code(v.done_commit[:12]) if v.done_commit else "—"
        if v.empty:
            done += " (empty)"
        used = tokens.get(v.stage)
        cells = [
            str(v.stage),
            md_text(v.title),
            md_text(v.group),
            ", ".join(map(str, v.depends_on)) or "—",
            str(v.state),
            done,
            md_code(stage_branch(task, v.stage)),
            f"{used.input:,} / {used.output:,}" if used else "—",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    summaries = {n: c.summary for n, c in sorted(read_carry(plan_dir).sidecars.items()) if c.summary.strip()}
    if summaries:
        lines += ["", "What the lead said of each finished stage:", ""]
        lines += [f"- stage {n}: {md_text(text)}" for n, text in summaries.items()]
    return [*lines, ""]


def _handoffs(plan_dir: Path) -> list[str]:
    from .handoff.records import read_handoffs

    rows = read_handoffs(plan_dir).rows
    lines = ["## Handoffs", ""]
    if not rows:
        return [*lines, "No group has been handed off yet.", ""]
    lines += [
        "| When | Group | Stages | Merged now | Task HEAD |",
        "|------|-------|--------|------------|-----------|",
    ]
    for row in rows:
        merged = ", ".join(map(str, row.merged)) or "none (all were in already)"
        head = f"{md_code(row.head_before[:12])} → {md_code(row.head_after[:12])}"
        lines.append(
            f"| {_when(row.ts)} | {md_text(row.group)} | {', '.join(map(str, row.stages))} | {merged} | {head} |"
        )
    return [*lines, ""]


def _corrections(plan_dir: Path) -> list[str]:
    """Done commits corrected (reconcile: the row names the commit it `replaces`) and
    stages taken back (`reopened`), in ledger order."""
    from .ledger import read_ledger
    from .run_folder import LEDGER_NAME

    found = []
    for row in read_ledger(plan_dir / LEDGER_NAME).rows:
        when = _when(row.ts)
        why = f" ({md_text(row.reason)})" if row.reason else ""
        if row.status == "done" and row.replaces and row.head_commit:
            moved = f"{md_code(row.replaces[:12])} → {md_code(row.head_commit[:12])}"
            found.append(f"- {when}: stage {row.stage}'s done commit corrected, {moved}{why}")
        elif row.status == "reopened":
            was = f" (was done at {md_code(row.replaces[:12])})" if row.replaces else ""
            found.append(f"- {when}: stage {row.stage} taken back{was}{why}")
    if not found:
        return []
    return ["## Reconciles", "", *found, ""]


def _when(ts: str) -> str:
    """A row's time, as okstra reads it (a row is a file anyone can edit): `2026-06-10 12:00 UTC`."""
    from datetime import UTC, datetime

    from .ledger import parse_ts

    moment = parse_ts(ts)
    return "?" if moment == datetime.min.replace(tzinfo=UTC) else moment.strftime("%Y-%m-%d %H:%M UTC")


def _verification(task: Task, status: TaskStatus) -> list[str]:
    """Every final-verification run's verdict, oldest first, then the result as the release
    gate reads it (`run_history.last_verification`: the newest whole-task verdict under the
    current plan)."""
    from .documents import load_doc
    from .errors import OkstraError
    from .plans import run_phase
    from .run_contract import PHASE_OUTPUTS, verdict_of
    from .runs import RunManifest, run_dirs

    name = PHASE_OUTPUTS["final-verification"][0]
    lines = ["## Final verification", ""]
    runs = [run for run in run_dirs(task.runs_dir) if run_phase(run) == "final-verification"]
    if not runs:
        return [*lines, "No final verification has run yet.", ""]
    for run in runs:
        try:
            stage = load_doc(run / "manifest.json", RunManifest).stage
        except (OkstraError, OSError):
            stage = None
        scope = f"stage {stage}" if stage is not None else "the whole task"
        path = run / name
        try:
            text = path.read_text(encoding="utf-8") if not path.is_symlink() else None
        except (OSError, UnicodeDecodeError):
            text = None
        if text is None or not text.strip():
            said = f"no verdict written ({md_code(name)})"
        else:
            verdict, first = verdict_of(text)
            said = f"**{verdict}**" if verdict else "no PASS or FAIL"
            said += f" — {md_text(first[:200])}"
        lines.append(f"- run {md_code(run.name)} ({scope}): {said}")
    from .run_history import last_verification

    last = last_verification(status.runs, status.plan_run)
    if last is None:
        lines += ["", "Result: no verdict on the whole task under the current plan yet."]
    else:
        lines += [
            "",
            f"Result: **{last.outcome}** (run {md_code(last.run_id)}, the whole task under the current plan).",
        ]
    return [*lines, ""]


def _usage(usage: TaskUsage) -> list[str]:
    from .usage import Usage

    lines = ["## Tokens", ""]
    if not usage.runs:
        return [*lines, "No run has reported a transcript (agents `okstra launch` starts do).", ""]
    rows: dict[str, Usage] = {}
    for run in usage.runs:
        label = f"stage {run.implements}" if run.implements is not None else (run.phase or "unknown phase")
        rows[label] = rows.get(label, Usage()) + run.usage
    lines += [
        "| | Input | Output | Cache read | Cache write |",
        "|-|------:|-------:|-----------:|------------:|",
    ]

    def row(label: str, used: Usage) -> str:
        numbers = (used.input, used.output, used.cache_read, used.cache_write)
        return f"| {label} | " + " | ".join(f"{n:,}" for n in numbers) + " |"

    lines += [row(md_text(label), used) for label, used in rows.items()]
    lines.append(row("**total**", usage.total))
    missing = [path for run in usage.runs for path in run.missing]
    if missing:
        lines += ["", f"Not counted: {len(missing)} transcript(s) the hooks named are gone."]
    return [*lines, ""]
