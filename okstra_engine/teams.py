"""Agent team names: `okstra-<task_key>` for a task's run, `okstra-<task_key>-s<N>` for
an implementation run of stage N (so two stages of one task never fight over one team,
like their `-sN` worktree branches)."""

from __future__ import annotations

import re

from .errors import OkstraError
from .slugs import SLUG_RULE

TEAM_PREFIX = "okstra-"

_SLUG = r"[a-z0-9][a-z0-9._-]{0,63}"
TEAM_RE = re.compile(rf"okstra-(?P<key>{_SLUG}-{_SLUG})(?:-s(?P<stage>[1-9][0-9]{{0,8}}))?")
_TASK_KEY_RE = re.compile(rf"{_SLUG}-{_SLUG}")


def team_name(task_key: str, stage: int | None = None) -> str:
    """The agent team of `task_key` (of its stage `stage`, when given)."""
    if not _TASK_KEY_RE.fullmatch(task_key) or ".." in task_key:
        raise OkstraError(f"invalid task key {task_key!r}: it must be GROUP-ID", "use TaskRef.key")
    if stage is not None and (isinstance(stage, bool) or not isinstance(stage, int) or stage < 1):
        raise OkstraError(f"invalid stage {stage!r}: stages are positive integers", "pass a Stage Map number")
    return check_team_name(f"{TEAM_PREFIX}{task_key}" + (f"-s{stage}" if stage is not None else ""))


def check_team_name(team: str) -> str:
    """`team` itself when it is `okstra-` + a valid task key (+ `-sN`), else OkstraError."""
    if not isinstance(team, str) or not TEAM_RE.fullmatch(team) or ".." in team:
        raise OkstraError(
            f"invalid team name {team!r}: it must be okstra-GROUP-ID or okstra-GROUP-ID-sN, "
            f"GROUP and ID each {SLUG_RULE} (no '/', no '..')",
            "pick a team from: okstra quarantine list",
        )
    return team
