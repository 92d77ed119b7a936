"""Where okstra keeps machine-local state, and where the coding agent keeps its own."""

from __future__ import annotations

import os
from pathlib import Path


def user_path(text: str, what: str = "path") -> Path:
    """`Path(text).expanduser()`; a `~someone` that names no user is a clear error, not
    Python's RuntimeError."""
    try:
        return Path(text).expanduser()
    except RuntimeError:
        from .errors import OkstraError

        raise OkstraError(
            f"{what} {text!r}: cannot expand '~' (no such user, or no home directory)", "write the path out in full"
        ) from None


def default_root(project: str | None) -> Path:
    """The project a command works on: `--project PATH`, else the git toplevel of the
    cwd, else the cwd."""
    from . import git
    from .errors import OkstraError

    start = user_path(project, "--project") if project else Path.cwd()
    if not start.is_dir():
        raise OkstraError(f"project path {start} is not a directory", "pass --project with an existing directory")
    if project:
        return start.resolve()
    return (git.toplevel(start) or start).resolve()


def okstra_home() -> Path:
    """`$OKSTRA_HOME`, else the platform's user data dir for okstra."""
    env = os.environ.get("OKSTRA_HOME")
    if env:
        return user_path(env, "OKSTRA_HOME")
    import platformdirs

    return Path(platformdirs.user_data_dir("okstra"))


def config_file() -> Path:
    """`$OKSTRA_CONFIG`, else `config.toml` in the platform's user config dir."""
    env = os.environ.get("OKSTRA_CONFIG")
    if env:
        return user_path(env, "OKSTRA_CONFIG")
    import platformdirs

    return Path(platformdirs.user_config_dir("okstra")) / "config.toml"


def agent_home() -> Path:
    """The coding agent's config dir: `$CLAUDE_CONFIG_DIR`, else `~/.claude`."""
    env = os.environ.get("CLAUDE_CONFIG_DIR")
    return user_path(env, "CLAUDE_CONFIG_DIR") if env else user_path("~/.claude", "the agent home")


def projects_file() -> Path:
    return okstra_home() / "projects.json"
