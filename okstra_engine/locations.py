"""Where okstra keeps machine-local state, and where the coding agent keeps its own."""

from __future__ import annotations

import os
from pathlib import Path


def okstra_home() -> Path:
    """`$OKSTRA_HOME`, else the platform's user data dir for okstra."""
    env = os.environ.get("OKSTRA_HOME")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("okstra"))


def config_file() -> Path:
    """`$OKSTRA_CONFIG`, else `config.toml` in the platform's user config dir."""
    env = os.environ.get("OKSTRA_CONFIG")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_config_dir("okstra")) / "config.toml"


def agent_home() -> Path:
    """The coding agent's config dir: `$CLAUDE_CONFIG_DIR`, else `~/.claude`."""
    env = os.environ.get("CLAUDE_CONFIG_DIR")
    return Path(env).expanduser() if env else Path.home() / ".claude"


def projects_file() -> Path:
    return okstra_home() / "projects.json"
