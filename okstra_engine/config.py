"""The user's okstra settings: a small TOML file, validated like every document, read
again whenever it changed (a running board sees an edit without a restart)."""

from __future__ import annotations

import difflib
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import ConfigDict, Field, ValidationError, field_validator

from .documents import Doc
from .errors import OkstraError, describe_validation_error
from .locations import config_file

NOTIFY_CHANNELS = ("bell", "osc9", "notify-send")
"""The terminal's bell; a desktop notification through the terminal (OSC 9); and
`notify-send`, where it is on PATH."""


class Settings(Doc):
    # a misspelt key would be ignored silently, its setting left at the default
    model_config = ConfigDict(extra="forbid")

    stale_ttl_hours: float = Field(default=24.0, gt=0)
    agent_command: list[str] = Field(default_factory=lambda: ["claude", "{prompt}"])
    agent_teams: Literal["auto", "implicit", "explicit", "none"] = "auto"
    """The prompt's team contract (`agents.TeamsKind`); `auto`: from the agent and its version."""
    tmux_socket: str | None = None
    """The tmux server managed agents run in (`tmux -L NAME`); none: the person's default
    server. `OKSTRA_TMUX_SOCKET` overrides it."""
    notify: str = ",".join(NOTIFY_CHANNELS)
    """How the board calls the person back when an agent needs input or finished: any of
    `NOTIFY_CHANNELS`, comma-separated, or `off`."""

    @field_validator("notify")
    @classmethod
    def _known_channels(cls, value: str) -> str:
        parts = [part.strip() for part in value.split(",") if part.strip()]
        if parts == ["off"]:
            return "off"
        unknown = [part for part in parts if part not in NOTIFY_CHANNELS]
        if unknown or not parts:
            raise ValueError(
                f"unknown channel {', '.join(unknown) or repr(value)}: "
                f"use any of {', '.join(NOTIFY_CHANNELS)}, comma-separated, or off"
            )
        return ",".join(dict.fromkeys(parts))

    @property
    def notify_channels(self) -> tuple[str, ...]:
        """The channels `notify` names; none when it is `off`."""
        return () if self.notify == "off" else tuple(self.notify.split(","))


class _Settings:
    """`settings()`: the settings as the file holds them now. One `stat` a call; the
    file is parsed again only when its mtime or size moved."""

    def __call__(self) -> Settings:
        path = config_file()
        try:
            info = path.stat()
        except FileNotFoundError:
            return _read(path, None)
        return _read(path, (info.st_mtime_ns, info.st_size))

    @staticmethod
    def cache_clear() -> None:
        _read.cache_clear()


settings = _Settings()


@lru_cache(maxsize=1)
def _read(path: Path, version: tuple[int, int] | None) -> Settings:
    if version is None:
        return Settings()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Settings()
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise OkstraError(f"{path}: not valid TOML: {exc}", "fix or delete the file") from exc
    unknown = [key for key in raw if key not in Settings.model_fields]
    if unknown:
        raise OkstraError(f"{path}: unknown setting '{unknown[0]}'", _known_hint(unknown[0]))
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        raise OkstraError(describe_validation_error(exc, str(path)), "fix the value in the file") from exc


def _known_hint(key: str) -> str:
    known = sorted(Settings.model_fields)
    close = difflib.get_close_matches(key, known, n=1)
    spelled = f"did you mean '{close[0]}'? " if close else ""
    return f"{spelled}the settings are {', '.join(known)}"
