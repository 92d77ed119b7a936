"""The user's okstra settings: a small TOML file, validated like every document."""

from __future__ import annotations

import tomllib
from functools import lru_cache
from typing import Literal

from pydantic import ConfigDict, Field, ValidationError

from .documents import Doc
from .errors import OkstraError, describe_validation_error
from .locations import config_file


class Settings(Doc):
    model_config = ConfigDict(extra="allow")

    stale_ttl_hours: float = Field(default=24.0, gt=0)
    agent_command: list[str] = Field(default_factory=lambda: ["claude", "{prompt}"])
    agent_teams: Literal["auto", "implicit", "explicit", "none"] = "auto"
    """The prompt's team contract (`agents.TeamsKind`); `auto`: from the agent and its version."""
    tmux_socket: str | None = None
    """The tmux server managed agents run in (`tmux -L NAME`); none: the person's default
    server. `OKSTRA_TMUX_SOCKET` overrides it."""


@lru_cache(maxsize=1)
def settings() -> Settings:
    path = config_file()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Settings()
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise OkstraError(f"{path}: not valid TOML: {exc}", "fix or delete the file") from exc
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        raise OkstraError(describe_validation_error(exc, str(path)), "fix the value in the file") from exc
