"""A refusal's words in the person's language: `refusal_texts(refusal)` fills the texts
`refusal.<code>` (what) and `refusal.<code>.how` (the fix) with the refusal's params made
into display strings. In English the words are the CLI's (`Refusal.what` / `.how`).
`refusal_brief` is the short form a list row shows (`refusal.<code>.brief`, the phase
picker's), where a code has one.

Params that are lists or records are rendered with small texts of their own
(`refusal.part.*`); `fix` and `why` params are command lines and git's messages, shown as
they are. No Textual here.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence
from typing import Any

from okstra_engine.errors import OkstraError
from okstra_engine.refusals import (
    Params,
    Refusal,
    RefusedError,
    handoff_commands,
    handoff_groups,
    listed,
    merge_commands,
    numbers,
    when,
)

from .i18n import t, texts
from .model import short, stages_text

Fields = dict[str, str]
SHA_PARAMS = frozenset({"commit", "head", "base", "tip", "task_tip"})
MOST_PATHS = 5


def refusal_texts(refusal: Refusal) -> tuple[str, str]:
    """(what, how) of `refusal`, in the current language."""
    fields = _fields(refusal)
    key = "refusal." + refusal.code
    return t(key, **fields), t(key + ".how", **fields)


def refusal_brief(refusal: Refusal) -> str:
    """The short words of `refusal` for a list row, or its what when its code has none."""
    key = f"refusal.{refusal.code}.brief"
    if key not in texts():
        return refusal_texts(refusal)[0]
    return t(key, **_fields(refusal))


def _fields(refusal: Refusal) -> Fields:
    fields = {name: _display(name, value) for name, value in refusal.params.items()}
    extra = _EXTRA.get(refusal.code)
    if extra is not None:
        fields.update(extra(refusal.params))
    return fields


def error_texts(error: OkstraError) -> tuple[str, str]:
    """(what, how) of an engine error: a refusal in the current language, any other
    error in the engine's words."""
    if isinstance(error, RefusedError):
        return refusal_texts(error.refusal)
    return error.what, error.how


def _short(sha: str | None) -> str:
    return short(sha) or "-"


def _display(name: str, value: Any) -> str:
    if name in SHA_PARAMS:
        return _short(value)
    if name == "since":
        return when(value)
    if name == "paths":
        return _some(value)
    if value is None:
        return "?"
    if isinstance(value, list) and not any(isinstance(item, (dict, list)) for item in value):
        return numbers(value)
    return str(value)


def _some(paths: Sequence[str]) -> str:
    shown = ", ".join(paths[:MOST_PATHS])
    if len(paths) <= MOST_PATHS:
        return shown
    return t("refusal.part.more", shown=shown, more=len(paths) - MOST_PATHS)


def _run(run: object) -> str:
    return str(run) if run else "?"


def _unmerged(stages: Sequence[dict[str, Any]]) -> str:
    """`stage 4 (1a2b3c4d) is not`, `stage 2 (…), stage 3 (…) are not`."""
    listed = ", ".join(t("refusal.part.stage_commit", stage=s["stage"], commit=_short(s["commit"])) for s in stages)
    return t("refusal.part.unmerged.one" if len(stages) == 1 else "refusal.part.unmerged.many", listed=listed)


def _nothing_ready(p: Params) -> Fields:
    parts = []
    if p["blocked"]:
        parts.append("; ".join(_waits(b) for b in p["blocked"]))
    if p["in_flight"]:
        runs = ", ".join(t("refusal.part.run", stage=f["stage"], run=_run(f["run"])) for f in p["in_flight"])
        parts.append(t("refusal.part.in_flight", runs=runs))
    if p["stale"]:
        runs = ", ".join(
            t("refusal.part.stale_run", stage=s["stage"], run=_run(s["run"]), why=s["why"]) for s in p["stale"]
        )
        parts.append(t("refusal.part.stale", runs=runs))
    groups = handoff_groups(p["blocked"])
    hows = []
    if p["in_flight"]:
        hows.append(t("refusal.part.wait_in_flight", task=p["task"]))
    if p["stale"]:
        hows.append(t("refusal.part.release_stale", task=p["task"], stage=p["stale"][0]["stage"]))
    if groups:
        commands = handoff_commands(p["task"], groups)
        hows.append(t("refusal.part.handoff_groups", groups=numbers(groups), commands=commands))
    if not hows:
        hows.append(t("refusal.part.see_status", task=p["task"]))
    # the brief names what the stages wait on: those in flight, else those blocked
    waiting = sorted(s["stage"] for s in p["in_flight"] + p["stale"]) or [b["stage"] for b in p["blocked"]]
    return {
        "states": "; ".join(parts),
        "how": "; ".join(hows),
        "stages": numbers(waiting),
        "named": stages_text(waiting),
    }


def _waits(blocked: Params) -> str:
    """What one blocked stage waits for, by its reason."""
    reason = blocked.get("reason") or {}
    code = reason.get("code")
    if code == "needs-handoff":
        return t("refusal.part.waits_handoff", stage=blocked["stage"], groups=numbers(reason["groups"]))
    if code == "needs-merge":
        return t("refusal.part.waits_merge", stage=blocked["stage"], stages=numbers(reason["stages"]))
    return t("refusal.part.waits", stage=blocked["stage"], waits_for=numbers(blocked["waits_for"]))


def _needs_handoff(p: Params) -> Fields:
    return {"commands": handoff_commands(p["task"], p["groups"])}


def _needs_merge(p: Params) -> Fields:
    return {"merges": merge_commands(str(p["worktree"]), p["branches"])}


def _stages_not_merged(p: Params) -> Fields:
    return {
        "stages": numbers([s["stage"] for s in p["stages"]]),
        "named": stages_text([s["stage"] for s in p["stages"]]),
        "unmerged": _unmerged(p["stages"]),
        "task_head": t("refusal.part.task_head", head=_short(p["head"])) if p["head"] else "",
        "or_fix": t("refusal.part.or_fix", fix=p["fix"]) if p["fix"] else "",
    }


def _deps_not_merged(p: Params) -> Fields:
    fixes = " | ".join(t("refusal.part.stage_fix", stage=f["stage"], fix=f["fix"]) for f in p["fixes"])
    return {"unmerged": _unmerged(p["unmerged"]), "fixes": fixes}


def _stage_done(p: Params) -> Fields:
    return {
        "at": t("refusal.part.at", commit=_short(p["commit"])) if p["commit"] else "",
        "run": str(p["run"] or "-"),
    }


def _worktree_missing(p: Params) -> Fields:
    if p["path"] is None:
        return {"where": t("refusal.part.unregistered")}
    return {"where": t("refusal.part.path_missing", path=p["path"])}


def _no_reservation(p: Params) -> Fields:
    return {"latest": p["latest"] or t("refusal.part.no_row")}


def _conflict(p: Params) -> Fields:
    parts = "; ".join(
        t("refusal.part.conflict", stage=c["stage"], title=c["title"], files=_some(c["files"])) for c in p["conflicts"]
    )
    steps = "; ".join(
        t(
            "refusal.part.merge_step",
            worktree=shlex.quote(p["worktree"]),
            commit=str(m["commit"])[:12],
            stage=m["stage"],
        )
        for m in p["merges"]
    )
    return {"parts": parts, "steps": steps, "group_arg": shlex.quote(p["group"])}


def _replaces_progress(p: Params) -> Fields:
    counted = {f"{name}_n": str(len(p[name])) for name in ("started", "done", "in_flight")}
    return {**counted, "done": listed(p["done"]), "in_flight": listed(p["in_flight"])}


def _run_elsewhere(p: Params) -> Fields:
    if p["plan"] is not None and p["plan"] != p["current"]:
        return {"why": t("refusal.part.run_of_replaced_plan", plan=p["plan"], current=p["current"])}
    return {"why": t("refusal.part.run_of_other_stage", run_stage=p["run_stage"])}


def _stages_not_done(p: Params) -> Fields:
    return {"named": stages_text(p["stages"])}


_EXTRA: dict[str, Callable[[Params], Fields]] = {
    "phase.nothing_ready": _nothing_ready,
    "phase.stages_not_done": _stages_not_done,
    "phase.stages_not_merged": _stages_not_merged,
    "stage.deps_not_merged": _deps_not_merged,
    "stage.needs_handoff": _needs_handoff,
    "stage.needs_merge": _needs_merge,
    "stage.done": _stage_done,
    "verify.stage_worktree_missing": _worktree_missing,
    "release.no_reservation": _no_reservation,
    "record.reopen_not_done": _no_reservation,
    "handoff.conflict": _conflict,
    "plan.replaces_progress": _replaces_progress,
    "record.run_elsewhere": _run_elsewhere,
    "sync.busy": lambda p: {"path_arg": shlex.quote(p["path"])},
    "sync.conflict": lambda p: {"path_arg": shlex.quote(p["path"])},
}
"""The codes whose words hold more than their params one by one: lists of records, and
parts said only when a param is there."""
