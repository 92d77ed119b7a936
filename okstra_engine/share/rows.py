"""The ledger travels: each machine publishes its own rows on `…/ledger/<machine>`, a
chain of commits whose tree holds one `<plan run>.jsonl` per plan run (each commit's
file holds its parent's lines and maybe more, never fewer), and imports the other
machines' rows into its local ledger.

A row's identity is its line, exactly as written (nothing is added on import), so a
row imported twice, or published by two machines, is one row. Own rows: those whose
`machine` is this one, and those without one (written before the task was shared) that
no other machine published."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from .. import git
from ..fsio import append_line
from ..ledger import LedgerRow, parse_ts
from ..locks import task_mutex
from ..plans import PlanRun
from ..run_folder import LEDGER_NAME
from ..tasks import Task
from .machine import machine_id
from .objects import commit_files, files_in, text_of
from .place import Share


def lines_of(text: str) -> list[str]:
    """The lines of a ledger's text that hold a JSON object (a torn line is left out)."""
    found = []
    for line in text.split("\n"):
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            found.append(line)
    return found


def local_lines(ledger: Path) -> list[str]:
    try:
        return lines_of(ledger.read_bytes().decode("utf-8", "replace"))
    except FileNotFoundError:
        return []


def _machine_of(line: str) -> str | None:
    try:
        value = json.loads(line).get("machine")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def published(share: Share, task: Task) -> dict[str, str]:
    """Each machine's ledger ref of the task, as last fetched: machine → commit."""
    prefix = share.local_ref(task.ref, "ledger") + "/"
    return {ref[len(prefix) :]: sha for ref, sha, _ in git.refs_with_messages(share.repo, prefix)}


def lines_at(share: Share, commit: str, plan_run: str) -> list[str]:
    blob = files_in(share.repo, commit).get(f"{plan_run}.jsonl")
    text = text_of(share.repo, blob) if blob else None
    return lines_of(text) if text else []


def unpublished(share: Share, task: Task, plan: PlanRun) -> tuple[list[str], dict[str, str], str | None]:
    """This machine's rows of the plan run's ledger not yet on its ledger ref (in file
    order), the files that ref holds, and its commit."""
    me = machine_id()
    refs = published(share, task)
    mine = refs.get(me)
    before = (
        {name: text_of(share.repo, blob) or "" for name, blob in files_in(share.repo, mine).items()} if mine else {}
    )
    there = set(lines_of(before.get(f"{plan.run_id}.jsonl", "")))
    theirs: set[str] = set()
    for machine, sha in refs.items():
        if machine != me:
            theirs.update(lines_at(share, sha, plan.run_id))
    new = []
    for line in local_lines(plan.dir / LEDGER_NAME):
        if line in there:
            continue
        owner = _machine_of(line)
        if owner == me or (owner is None and line not in theirs):
            new.append(line)
            there.add(line)
    return new, before, mine


def own_update(share: Share, task: Task, plan: PlanRun) -> tuple[str, str, str | None] | None:
    """The push that publishes this machine's rows not yet on its ref (remote ref, new
    commit, the value the ref must hold now); None when all are."""
    new, files, mine = unpublished(share, task, plan)
    if not new:
        return None
    name = f"{plan.run_id}.jsonl"
    files[name] = files.get(name, "") + "".join(line + "\n" for line in new)
    me = machine_id()
    sha = commit_files(share.repo, files, f"okstra ledger of {task.ref} ({me}): {len(new)} more rows\n", mine)
    return share.remote_ref(task.ref, "ledger", me), sha, mine


def import_rows(share: Share, task: Task, plan: PlanRun) -> tuple[int, list[str]]:
    """Append the other machines' rows of the plan run's ledger this one lacks, oldest
    first, each one O_APPEND write, under the task mutex. Returns how many, and the
    warnings for lines that are not ledger rows (left out)."""
    me, plan_run = machine_id(), plan.run_id
    incoming: dict[str, LedgerRow] = {}
    warnings = []
    for machine, sha in sorted(published(share, task).items()):
        if machine == me:
            continue
        for line in lines_at(share, sha, plan_run):
            if line in incoming:
                continue
            try:
                incoming[line] = LedgerRow.model_validate_json(line)
            except ValidationError:
                warnings.append(f"a ledger row machine {machine} published is not one okstra reads: {line[:80]}")
    if not incoming:
        return 0, warnings
    ledger = plan.dir / LEDGER_NAME
    added = 0
    with task_mutex(task):
        have = set(local_lines(ledger))
        fresh = sorted((line for line in incoming if line not in have), key=lambda l: parse_ts(incoming[l].ts))
        for line in fresh:
            append_line(ledger, line)
            added += 1
    return added, warnings
