"""Agent team names: `okstra-<task key>-<tag>` for a task's run, `…-s<N>` for an
implementation run of stage N (so two stages of one task never fight over one team, like
their `-sN` worktree branches).

The tag (8 hex digits of a hash of the project id, the group and the id) makes the name
unique per project and task: the key alone is the same for tasks `a-b/c` and `a/b-c`, and
for one task ref in two projects, and two runs would share one team. The key is cut to
24 characters, so a name stays short; it is there for people to read."""

from __future__ import annotations

import hashlib
import re

from .errors import OkstraError
from .slugs import SLUG_RULE, TaskRef

TEAM_PREFIX = "okstra-"

_SLUG = r"[a-z0-9][a-z0-9._-]{0,63}"
TEAM_RE = re.compile(rf"okstra-(?P<key>{_SLUG}-{_SLUG})(?:-s(?P<stage>[1-9][0-9]{{0,8}}))?")
_KEY_CHARS = 24


def team_name(project_id: str, ref: TaskRef, stage: int | None = None) -> str:
    """The agent team of task `ref` of project `project_id` (of its stage `stage`)."""
    if stage is not None and (isinstance(stage, bool) or not isinstance(stage, int) or stage < 1):
        raise OkstraError(f"invalid stage {stage!r}: stages are positive integers", "pass a Stage Map number")
    tag = hashlib.sha256(f"{project_id}\0{ref.group}\0{ref.id}".encode()).hexdigest()[:8]
    head = ref.key[:_KEY_CHARS].rstrip("-._")
    return check_team_name(f"{TEAM_PREFIX}{head}-{tag}" + (f"-s{stage}" if stage is not None else ""))


def check_team_name(team: str) -> str:
    """`team` itself when it is `okstra-` + a valid task key (+ `-sN`), else OkstraError."""
    if not isinstance(team, str) or not TEAM_RE.fullmatch(team) or ".." in team:
        raise OkstraError(
            f"invalid team name {team!r}: it must be okstra-GROUP-ID or okstra-GROUP-ID-sN, "
            f"GROUP and ID each {SLUG_RULE} (no '/', no '..')",
            "pick a team from: okstra quarantine list",
        )
    return team
