"""Projects: `.okstra/project.json` in the repository, and the machine's project list."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

from pydantic import ConfigDict, Field

from . import clock, git
from .documents import Doc, load_doc, save_doc
from .errors import OkstraError
from .fsio import atomic_write_text
from .locations import okstra_home, projects_file
from .locks import file_lock
from .slugs import check_slug, slugify

OKSTRA_DIR = ".okstra"


class ProjectConfig(Doc):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    v: int = 1
    project_id: str = Field(alias="projectId")
    name: str
    qa_commands: list[str] = Field([], alias="qaCommands")
    work_category: str = Field(default="feature", alias="workCategory")
    clean_gate_excludes: list[str] = Field([], alias="cleanGateExcludes")


class KnownProject(Doc):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    project_id: str = Field(alias="projectId")
    name: str
    path: str
    registered: str


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


def load_project(root: Path) -> Project:
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
    return Project(root, config)


def init_project(root: Path, *, project_id: str | None = None, qa_commands: Sequence[str] = ()) -> tuple[Project, bool]:
    """Register `root` (idempotent); return the project and whether it was new."""
    root = root.resolve()
    if not root.is_dir():
        raise OkstraError(f"{root} is not a directory", "create it first, or pass an existing path")
    if project_id is not None:
        check_slug(project_id, "project id")
    path = config_path(root)
    try:
        config = load_doc(path, ProjectConfig)
        created = False
        if project_id and project_id != config.project_id:
            raise OkstraError(
                f"{root} is already registered as project {config.project_id!r}",
                f"drop --id, or edit {path} by hand to rename it",
            )
    except FileNotFoundError:
        config = ProjectConfig(project_id=project_id or slugify(root.name), name=root.name)
        created = True
    added = [c for c in qa_commands if c not in config.qa_commands]
    if created or added:
        config.qa_commands = [*config.qa_commands, *added]
        save_doc(path, config)
    project = Project(root, config)
    if project.is_git:
        _exclude_okstra_dir(project)
    _remember(root, config)
    return project, created


def _exclude_okstra_dir(project: Project) -> None:
    """Keep the project's `.okstra/` out of git: a line in the repository's `info/exclude`
    (shared by all its worktrees) naming it from the work tree's root."""
    exclude = git.git_path(project.root, "info/exclude")
    try:
        lines = exclude.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        lines = []
    path = f"{project.prefix}{OKSTRA_DIR}"
    if any(line.strip() in (path, f"{path}/", f"/{path}", f"/{path}/") for line in lines):
        return
    atomic_write_text(exclude, "\n".join([*lines, f"/{path}/"]) + "\n")


def _remember(root: Path, config: ProjectConfig) -> None:
    with file_lock(okstra_home() / "locks" / "projects.lock"):
        known = list_projects()
        if any(Path(p.path) == root for p in known):
            return
        entry = KnownProject(
            project_id=config.project_id,
            name=config.name,
            path=str(root),
            registered=clock.local_iso(),
        )
        save_doc(projects_file(), ProjectList(projects=[*known, entry]))


def list_projects() -> list[KnownProject]:
    try:
        return load_doc(projects_file(), ProjectList).projects
    except FileNotFoundError:
        return []


def projects_inside(folder: Path) -> list[KnownProject]:
    """The registered projects still in `folder` or a subfolder of it (a monorepo's)."""
    return [p for p in list_projects() if Path(p.path).is_relative_to(folder) and config_path(Path(p.path)).is_file()]
