"""The lead agent a run launches, what it supports, and how it calls okstra back.

The agent is the program `agent_command` names in the settings (`claude` by default).
Three are known by their program's name: Claude Code (`claude`), the Codex CLI (`codex`)
and the Gemini CLI (`gemini`); any other command is run as it is, with no teams.

Its **teams kind** is the contract the prompt's team block follows:

- `implicit`: Claude Code ≥ 2.1.178 gives every session one team of its own (named
  `session-<first 8 characters of the session id>`); teammates are spawned with the
  Agent tool's `name`, and there is no `TeamCreate` to call.
- `explicit`: Claude Code from 2.1.32 (its first agent teams) to 2.1.177: the lead
  creates a named team with `TeamCreate` first (the team creation gate).
- `none`: no agent teams (Codex, Gemini, an unknown command, an older Claude Code): the
  lead runs workers as background processes and polls their result files.

Claude Code's kind comes from its version (`claude --version`, e.g. `2.1.328 (Claude
Code)`), asked once per installed binary and cached by its path, size and mtime in the
okstra home (`cache/agents.json`, safe to delete). `agent_teams` in the settings
overrides the detection.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

from .documents import Doc

TeamsKind = Literal["implicit", "explicit", "none"]
TEAMS_KINDS: tuple[str, ...] = get_args(TeamsKind)

TEAMS_SINCE = (2, 1, 32)
"""The first Claude Code with agent teams (with `CLAUDE_CODE_EXPERIMENTAL_AGENT_TEAMS`)."""
IMPLICIT_TEAMS_SINCE = (2, 1, 178)
"""The first Claude Code whose sessions have their team implicitly (`TeamCreate` gone)."""

VERSION_TIMEOUT_S = 15.0
CACHE_NAME = "agents.json"
_VERSION = re.compile(r"(\d+)\.(\d+)\.(\d+)")


@dataclass(frozen=True)
class Profile:
    """What okstra knows of one agent program."""

    name: str
    label: str
    teams: TeamsKind | None
    """Its teams kind; None: ask the installed binary for its version."""
    hooks: bool
    """It runs the hooks a `--settings` file gives (okstra's agent state comes from them)."""
    headless: tuple[str, ...]
    """How a lead runs it as a worker: one task, no terminal, its answer on stdout."""


PROFILES: dict[str, Profile] = {
    "claude": Profile("claude", "Claude Code", None, True, ("claude", "-p")),
    "codex": Profile("codex", "Codex CLI", "none", False, ("codex", "exec", "--sandbox", "workspace-write")),
    "gemini": Profile("gemini", "Gemini CLI", "none", False, ("gemini", "-p")),
}


def profile(name: str) -> Profile | None:
    return PROFILES.get(name)


class AgentInfo(Doc):
    """The lead agent of a run, as `prepare --json` records it (`agent`)."""

    name: str
    version: str | None = None
    teams: TeamsKind


@dataclass
class Detected:
    agent: AgentInfo
    notices: list[str] = field(default_factory=list)
    """What a person should know (the binary is missing, its version is unreadable)."""


def lead_agent(*, cache: bool = True) -> Detected:
    """The lead agent `agent_command` names and its teams kind. `cache=False` writes
    nothing (a render-only prepare): a cached answer is still used."""
    from .config import settings
    from .locations import config_file

    current = settings()
    program = Path(current.agent_command[0]).name if current.agent_command else ""
    known = PROFILES.get(program)
    name = known.name if known else (program or "unknown")
    notices: list[str] = []
    version = None
    if known is not None and known.teams is None:
        found = shutil.which(current.agent_command[0])
        if found is None:
            notices.append(f"okstra: the agent command {current.agent_command[0]!r} is not installed or not on PATH")
        else:
            version, problem = claude_version(Path(found), cache=cache)
            if problem:
                notices.append(f"okstra: {problem}")
    if current.agent_teams != "auto":
        return Detected(AgentInfo(name=name, version=version, teams=current.agent_teams), notices)
    if known is None or known.teams is not None:
        return Detected(AgentInfo(name=name, version=version, teams=known.teams if known else "none"), notices)
    teams = claude_teams(version)
    if version is None or _parse(version) is None:
        notices.append(
            f"okstra: the prompt assumes a current Claude Code (implicit teams, ≥ {_dotted(IMPLICIT_TEAMS_SINCE)}); "
            f'to say otherwise, set agent_teams = "explicit" or "none" in {config_file()}'
        )
    return Detected(AgentInfo(name=name, version=version, teams=teams), notices)


def claude_teams(version: str | None) -> TeamsKind:
    """The teams kind of Claude Code `version`; a version okstra cannot read is taken
    for a current one."""
    parsed = _parse(version) if version else None
    if parsed is None or parsed >= IMPLICIT_TEAMS_SINCE:
        return "implicit"
    return "explicit" if parsed >= TEAMS_SINCE else "none"


def _parse(version: str | None) -> tuple[int, int, int] | None:
    match = _VERSION.search(version or "")
    return (int(match[1]), int(match[2]), int(match[3])) if match else None


def _dotted(version: tuple[int, int, int]) -> str:
    return ".".join(map(str, version))


# ---------------------------------------------------------------------------- the version


class CachedVersion(Doc):
    size: int
    mtime_ns: int
    version: str


class VersionCache(Doc):
    v: int = 1
    binaries: dict[str, CachedVersion] = {}
    """By the binary's resolved path."""


def cache_file() -> Path:
    from .locations import okstra_home

    return okstra_home() / "cache" / CACHE_NAME


def claude_version(program: Path, *, cache: bool = True) -> tuple[str | None, str | None]:
    """(`2.1.328`, None) from `program --version`, or (None, what went wrong)."""
    real = program.resolve()
    try:
        st = real.stat()
    except OSError as exc:
        return None, f"cannot read the agent command {program}: {exc.strerror}"
    known = _read_cache()
    hit = known.binaries.get(str(real))
    if hit is not None and (hit.size, hit.mtime_ns) == (st.st_size, st.st_mtime_ns):
        return hit.version, None
    version, problem = _ask_version(program)
    if version is not None and cache:
        known.binaries[str(real)] = CachedVersion(size=st.st_size, mtime_ns=st.st_mtime_ns, version=version)
        _write_cache(known)
    return version, problem


def _ask_version(program: Path) -> tuple[str | None, str | None]:
    try:
        proc = subprocess.run(
            [str(program), "--version"],
            check=False,
            capture_output=True,
            text=True,
            errors="replace",
            stdin=subprocess.DEVNULL,
            timeout=VERSION_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return None, f"`{program} --version` did not answer within {VERSION_TIMEOUT_S:.0f} s"
    except OSError as exc:
        return None, f"cannot run `{program} --version`: {exc.strerror}"
    said = (proc.stdout.strip() or proc.stderr.strip()).splitlines()
    first = said[0] if said else ""
    parsed = _parse(first) if proc.returncode == 0 else None
    if parsed is None:
        return None, f"`{program} --version` said {first[:200]!r} (exit {proc.returncode}): no version in it"
    return _dotted(parsed), None


def _read_cache() -> VersionCache:
    try:
        return VersionCache.model_validate_json(cache_file().read_bytes())
    except (OSError, ValueError):  # missing or damaged: it is only a cache
        return VersionCache()


def _write_cache(doc: VersionCache) -> None:
    from .fsio import atomic_write_text

    try:
        path = cache_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, doc.model_dump_json(indent=2) + "\n", durable=False)
    except OSError:  # a cache that cannot be written is asked again next time
        pass


# ---------------------------------------------------------------------------- okstra itself
