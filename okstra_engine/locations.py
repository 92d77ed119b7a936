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
    """The project a command works on: `--project PATH`; else the nearest project folder
    holding the cwd, up to its git work tree's root (a monorepo's `services/api`, from
    itself or any folder in it); else, in one of the project's linked worktrees, the
    project that owns it; else the cwd's git toplevel, else the cwd."""
    from . import git
    from .errors import OkstraError

    start = user_path(project, "--project") if project else Path.cwd()
    if not start.is_dir():
        raise OkstraError(f"project path {start} is not a directory", "pass --project with an existing directory")
    if project:
        return start.resolve()
    place = git.place(start)
    if place is None:
        return start.resolve()
    top, prefix = place
    return _nearest_project(top, prefix) or _owner_of_worktree(top, prefix) or top.resolve()


def _nearest_project(top: Path, prefix: str) -> Path | None:
    """The nearest folder holding an okstra project from `top/prefix` up to `top`."""
    parts = Path(prefix).parts
    for n in range(len(parts), -1, -1):
        folder = top.joinpath(*parts[:n])
        if (folder / ".okstra" / "project.json").is_file():
            return folder.resolve()
    return None


def _owner_of_worktree(root: Path, prefix: str) -> Path | None:
    """The project a linked worktree belongs to, when `root` is one (`prefix`: where the
    cwd is in it): agents run okstra from their stage worktree. The registry knows
    okstra's own worktrees; git's common dir names the repository of any other, whose
    main work tree holds the project in the same folder (or, from the worktree's root,
    the only project registered in it)."""
    from . import git, registry
    from .projects import projects_inside, registered_root

    row = registry.worktree_at(root)
    if row is not None and (owner := registered_root(row.project_id)) is not None:
        return owner.resolve()
    main = git.main_work_tree(root)
    if main is None or main == root:
        return None  # not a linked worktree
    found = _nearest_project(main, prefix)
    if found is not None or prefix:
        return found
    inside = projects_inside(main)
    return Path(inside[0].path).resolve() if len(inside) == 1 else None


PLACE_VARIABLES = ("OKSTRA_HOME", "OKSTRA_CONFIG", "CLAUDE_CONFIG_DIR")


def settle_places() -> None:
    """Once, at start: every place set by an environment variable becomes an absolute
    path (a relative one would name another place after a `cd`, and a trash manifest
    must say where things came from whatever the cwd), and the okstra home and the
    settings file must be what their names say."""
    from .errors import OkstraError

    for name in PLACE_VARIABLES:
        value = os.environ.get(name)
        if value:
            os.environ[name] = os.path.abspath(user_path(value, name))
    home, config = okstra_home(), config_file()
    if home.exists() and not home.is_dir():
        raise OkstraError(
            f"the okstra home {home} is not a folder" + (" (OKSTRA_HOME)" if os.environ.get("OKSTRA_HOME") else ""),
            "point OKSTRA_HOME at a folder (okstra makes it if it is missing), or move that file aside",
        )
    if config.exists() and not config.is_file():
        raise OkstraError(
            f"the settings file {config} is not a file"
            + (" (OKSTRA_CONFIG)" if os.environ.get("OKSTRA_CONFIG") else ""),
            "point OKSTRA_CONFIG at a TOML file (it may be missing), or move that folder aside",
        )


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
