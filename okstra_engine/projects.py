"""Projects: `.okstra/project.json` in the repository, and the machine's project list."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from pydantic import ConfigDict, Field

from . import clock, git
from .documents import Doc, load_doc, save_doc
from .errors import OkstraError
from .fsio import atomic_write_text
from .locations import okstra_home, projects_file
from .locks import file_lock
from .run_folder import OKSTRA_DIR
from .slugs import check_slug, slugify


class ProjectConfig(Doc):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    v: int = 1
    project_id: str = Field(alias="projectId")
    name: str
    qa_commands: list[str] = Field([], alias="qaCommands")
    work_category: str = Field(default="feature", alias="workCategory")
    clean_gate_excludes: list[str] = Field([], alias="cleanGateExcludes")
    share_remote: str | None = Field(None, alias="shareRemote")
    """The git remote the project's tasks are shared through (`share.place`)."""


class KnownProject(Doc):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    project_id: str = Field(alias="projectId")
    name: str
    path: str
    registered: str
    setup_commands: list[str] | None = Field(None, alias="setupCommands")
    """Run through the shell in each new worktree: kept here, in the okstra home, and not
    in the project's `project.json`, which the agents that work beside it can write."""
    symlink_dirs: list[str] | None = Field(None, alias="symlinkDirs")
    """Folders of the checkout each new worktree links to instead of having its own."""


@dataclass(frozen=True)
class Setup:
    """How a new worktree of a project is made ready after the `.worktreeinclude` copy."""

    commands: tuple[str, ...] = ()
    symlink_dirs: tuple[str, ...] = ()


class ProjectList(Doc):
    model_config = ConfigDict(extra="allow")

    v: int = 1
    projects: list[KnownProject] = []


class Project:
    """A registered project directory and its config.

    A project is a folder of a git work tree: its root (`repo`), or a subfolder of it
    (`prefix`, a monorepo's `services/api/`). okstra's worktrees are the repository's, and
    a run works in the same subfolder of them (`worktrees.project_dir`)."""

    def __init__(self, root: Path, config: ProjectConfig) -> None:
        self.root = root
        self.config = config

    @property
    def id(self) -> str:
        return self.config.project_id

    @property
    def okstra_dir(self) -> Path:
        return self.root / OKSTRA_DIR

    @cached_property
    def _place(self) -> tuple[Path, str] | None:
        if (self.root / ".git").exists():  # the work tree's root: no git process needed
            return self.root, ""
        return git.place(self.root)

    @property
    def is_git(self) -> bool:
        """Whether the project folder is in a git work tree (its root or a subfolder)."""
        return self._place is not None

    @property
    def repo(self) -> Path:
        """The root of the git work tree holding the project (the project folder itself
        when it is that root, or not in git)."""
        return self._place[0] if self._place is not None else self.root

    @property
    def prefix(self) -> str:
        """The project folder relative to `repo`, with a trailing slash (`services/api/`);
        '' when the project is the work tree's root or not in git."""
        return self._place[1] if self._place is not None else ""

    def tasks_dir(self) -> Path:
        return self.okstra_dir / "tasks"


def config_path(root: Path) -> Path:
    return root / OKSTRA_DIR / "project.json"


def _check_okstra_dir(root: Path) -> None:
    """`.okstra` must be a plain folder of the person's: a link committed in a repository
    (or made by an agent) would send every write of okstra wherever it points."""
    path = root / OKSTRA_DIR
    try:
        found = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(found.st_mode) or not stat.S_ISDIR(found.st_mode):
        what = "a symbolic link" if stat.S_ISLNK(found.st_mode) else "not a folder"
        raise OkstraError(
            f"{path} is {what}; okstra keeps its files only in a plain folder there",
            f"remove it (and check where it came from: git log -- {OKSTRA_DIR}), then: okstra init {root}",
        )
    if found.st_uid != os.getuid():
        raise OkstraError(
            f"{path} belongs to another user (uid {found.st_uid})", f"run okstra as its owner, or remove {path}"
        )


def load_project(root: Path) -> Project:
    _check_okstra_dir(root)
    path = config_path(root)
    try:
        config = load_doc(path, ProjectConfig)
    except FileNotFoundError:
        main = git.main_work_tree(root) if root.is_dir() else None
        inside = [Path(p.path) for p in projects_inside(main)] if main is not None else []
        raise OkstraError(
            f"{root} is not an okstra project (no {OKSTRA_DIR}/project.json)",
            f"work in one of the okstra projects of its repository (cd there, or pass --project): {', '.join(map(str, inside))}"
            if inside
            else f"run: okstra init {root}",
        ) from None
    try:  # it names folders under okstra home and the task's branches: a path segment
        check_slug(config.project_id, "project id")
    except OkstraError as exc:
        raise OkstraError(f"{path}: field 'projectId': {exc.what}", f"fix or restore {path}") from None
    known = list_projects()
    owner = _id_owner(known, config.project_id, root.resolve())
    if owner is not None:
        raise _id_taken(config.project_id, owner, root, known, copied=True)
    return Project(root, config)


def init_project(
    root: Path,
    *,
    project_id: str | None = None,
    qa_commands: Sequence[str] = (),
    setup_commands: Sequence[str] | None = None,
    symlink_dirs: Sequence[str] | None = None,
    share_remote: str | None = None,
) -> tuple[Project, bool]:
    """Register `root` (idempotent); return the project and whether it was new.

    `setup_commands` and `symlink_dirs`, when given, replace the project's (kept in the
    okstra home's project list); each linked folder is added to the repository's
    `info/exclude`, so the link a worktree holds is never committed.

    A new project gets `project_id`, else the first free id made from its folder's name
    (`app`, `app-2`…): the id names its worktrees, registry rows and locks, so no two
    projects in the okstra home may share one. A folder whose `project.json` carries
    another live project's id (a copied folder) is refused until `--id` gives it its own.
    """
    root = root.resolve()
    if not root.is_dir():
        raise OkstraError(f"{root} is not a directory", "create it first, or pass an existing path")
    if project_id is not None:
        check_slug(project_id, "project id")
    if symlink_dirs is not None:
        from .worktree_setup import check_dir

        symlink_dirs = list(dict.fromkeys(check_dir(d) for d in symlink_dirs))
    _check_okstra_dir(root)
    if share_remote is not None:
        from .share.place import check_git_remote

        check_git_remote(root, share_remote)
    path = config_path(root)
    with file_lock(okstra_home() / "locks" / "projects.lock"):
        known = list_projects()
        try:
            config = load_doc(path, ProjectConfig)
            created = False
        except FileNotFoundError:
            config, created = None, True
        if config is None:
            if project_id is None:
                project_id = free_project_id(slugify(root.name), known, root)
            elif (owner := _id_owner(known, project_id, root)) is not None:
                raise _id_taken(project_id, owner, root, known, copied=False)
            config = ProjectConfig(project_id=project_id, name=root.name)
        elif project_id and project_id != config.project_id:
            if _id_owner(known, config.project_id, root) is None:
                raise OkstraError(
                    f"{root} is already registered as project {config.project_id!r}",
                    f"drop --id, or edit {path} by hand to rename it",
                )
            if (owner := _id_owner(known, project_id, root)) is not None:
                raise _id_taken(project_id, owner, root, known, copied=False)
            config.project_id = project_id  # a copy takes its own id; its tasks come along
            created = True
        elif (owner := _id_owner(known, config.project_id, root)) is not None:
            raise _id_taken(config.project_id, owner, root, known, copied=True)
        added = [c for c in qa_commands if c not in config.qa_commands]
        sharing = share_remote is not None and share_remote != config.share_remote
        if created or added or sharing:
            config.qa_commands = [*config.qa_commands, *added]
            if sharing:
                config.share_remote = share_remote
            save_doc(path, config)
        project = Project(root, config)
        if project.is_git:
            exclude_in_repo(project, OKSTRA_DIR, folder=True)
            for folder in symlink_dirs or ():
                exclude_in_repo(project, folder, folder=False)
        setup = None
        if setup_commands is not None or symlink_dirs is not None:
            was = setup_of(project, known)
            setup = Setup(
                tuple(setup_commands) if setup_commands is not None else was.commands,
                tuple(symlink_dirs) if symlink_dirs is not None else was.symlink_dirs,
            )
        _remember(known, root, config, setup)
    return project, created


def free_project_id(base: str, known: Sequence[KnownProject], root: Path) -> str:
    """`base`, else `base-2`, `base-3`…: the first id no other live project has."""
    n = 1
    while True:
        suffix = "" if n == 1 else f"-{n}"
        candidate = base[: 64 - len(suffix)].rstrip("-._") + suffix
        if _id_owner(known, candidate, root) is None:
            return candidate
        n += 1


def registered_root(project_id: str) -> Path | None:
    """The folder of the registered project with this id, if it still says so."""
    return next(_holders(list_projects(), project_id), None)


def _id_owner(known: Sequence[KnownProject], project_id: str, root: Path) -> Path | None:
    """The other folder that holds `project_id`, if any."""
    return next((path for path in _holders(known, project_id) if path != root), None)


def _holders(known: Sequence[KnownProject], project_id: str) -> Iterator[Path]:
    """The registered folders with this id that still say so: a row whose folder is gone,
    or now says another id, holds nothing."""
    for entry in known:
        if entry.project_id != project_id:
            continue
        path = Path(entry.path)
        try:
            if load_doc(config_path(path), ProjectConfig).project_id == project_id:
                yield path
        except (OSError, OkstraError):
            continue


def _id_taken(project_id: str, owner: Path, root: Path, known: Sequence[KnownProject], *, copied: bool) -> OkstraError:
    what = (
        f"{root} says it is project {project_id!r}, but that id belongs to the project at {owner} "
        "(was the folder copied?)"
        if copied
        else f"project id {project_id!r} is taken by the project at {owner}"
    )
    free = free_project_id(project_id, known, root)
    return OkstraError(what, f"give this project its own id: okstra init --id {free} {root}")


def exclude_in_repo(project: Project, name: str, *, folder: bool) -> None:
    """Keep the project's `name` (`.okstra`, a linked folder) out of git: a line in the
    repository's `info/exclude` (shared by all its worktrees) naming it from the work
    tree's root; `folder`: only as a folder (a link of that name is not one)."""
    exclude = git.git_path(project.root, "info/exclude")
    try:
        lines = exclude.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        lines = []
    path = f"{project.prefix}{name}"
    same = (path, f"/{path}", *((f"{path}/", f"/{path}/") if folder else ()))
    if any(line.strip() in same for line in lines):
        return
    # the person's own file: a link to a shared exclude list is written through
    line = f"/{path}/" if folder else f"/{path}"
    atomic_write_text(exclude, "\n".join([*lines, line]) + "\n", through_symlink=True)


def _remember(known: list[KnownProject], root: Path, config: ProjectConfig, setup: Setup | None = None) -> None:
    """One row per folder and per id; rows that name this folder or this id under an
    older state (a folder gone, a copy re-registered) give way to this one, keeping the
    folder's setup unless `setup` replaces it. The caller holds the projects lock."""
    keep = []
    before = None
    for entry in known:
        path = Path(entry.path)
        if path == root:
            if entry.project_id == config.project_id and setup is None:
                return  # already known as it is
            before = entry
            continue
        if entry.project_id == config.project_id and _id_owner([entry], config.project_id, root) is None:
            continue
        keep.append(entry)
    if setup is None and before is not None:
        setup = project_setup(before)
    entry = KnownProject(
        project_id=config.project_id,
        name=config.name,
        path=str(root),
        registered=before.registered if before and before.project_id == config.project_id else clock.local_iso(),
        setup_commands=list(setup.commands) if setup and setup.commands else None,
        symlink_dirs=list(setup.symlink_dirs) if setup and setup.symlink_dirs else None,
    )
    save_doc(projects_file(), ProjectList(projects=[*keep, entry]))


def project_setup(known: KnownProject) -> Setup:
    return Setup(tuple(known.setup_commands or ()), tuple(known.symlink_dirs or ()))


def setup_of(project: Project, known_projects: Sequence[KnownProject] | None = None) -> Setup:
    """The project's setup, from the okstra home's project list (none when unlisted)."""
    root = project.root.resolve()
    for known in list_projects() if known_projects is None else known_projects:
        if known.project_id == project.id and Path(known.path) == root:
            return project_setup(known)
    return Setup()


def list_projects() -> list[KnownProject]:
    try:
        return load_doc(projects_file(), ProjectList).projects
    except FileNotFoundError:
        return []


def projects_inside(folder: Path) -> list[KnownProject]:
    """The registered projects still in `folder` or a subfolder of it (a monorepo's)."""
    return [p for p in list_projects() if Path(p.path).is_relative_to(folder) and config_path(Path(p.path)).is_file()]


def forget_project(name: str) -> list[KnownProject]:
    """Drop the rows of the project list that name `name` (a project id, or the folder a
    project was registered at) and whose folder is gone or says another id now; return
    them. A live project is refused: any okstra command in its folder registers it again.
    Its worktrees and registry rows are left as they are (a worktree may hold work)."""
    with file_lock(okstra_home() / "locks" / "projects.lock"):
        known = list_projects()
        named = [entry for entry in known if name in (entry.project_id, entry.path)]
        if not named:
            path = Path(name).expanduser()
            named = [entry for entry in known if path.is_absolute() and Path(entry.path) == path.resolve()]
        if not named:
            ids = ", ".join(sorted({entry.project_id for entry in known})) or "none"
            raise OkstraError(
                f"okstra knows no project {name!r} (known: {ids})", "name one by its id: okstra project forget ID"
            )
        live = [entry for entry in named if any(_holders([entry], entry.project_id))]
        if live:
            entry = live[0]
            raise OkstraError(
                f"project {entry.project_id} is still at {entry.path}: okstra forgets only a project whose folder "
                "is gone (or no longer says that id)",
                f"to stop using it, move {Path(entry.path) / OKSTRA_DIR} aside (its tasks and runs are in it), "
                f"then: okstra project forget {entry.project_id}",
            )
        save_doc(projects_file(), ProjectList(projects=[entry for entry in known if entry not in named]))
    return named
