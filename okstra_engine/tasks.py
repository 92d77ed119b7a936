"""Tasks: `.okstra/tasks/GROUP/ID/task.json` and the folders of their runs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import ConfigDict, Field

from . import clock
from .documents import Doc, load_doc, save_doc
from .errors import OkstraError
from .fsio import refuse_links
from .projects import Project
from .run_folder import TASK_FILE, task_folder
from .slugs import TaskRef, check_slug, task_branch_name


class TaskDoc(Doc):
    model_config = ConfigDict(extra="allow")

    v: int = 1
    title: str = Field(min_length=1)
    category: str
    created: str


@dataclass(frozen=True)
class Task:
    project: Project
    ref: TaskRef
    doc: TaskDoc

    @property
    def dir(self) -> Path:
        return task_dir(self.project, self.ref)

    @property
    def runs_dir(self) -> Path:
        return self.dir / "runs"

    @property
    def key(self) -> str:
        return self.ref.key


def task_dir(project: Project, ref: TaskRef) -> Path:
    return task_folder(project.root, ref.group, ref.id)


def load_task(project: Project, ref: TaskRef) -> Task:
    path = task_dir(project, ref) / TASK_FILE
    refuse_links(project.okstra_dir, path)
    for folder in ("runs", "qa"):  # what okstra writes into, below the task
        refuse_links(project.okstra_dir, path.parent / folder)
    try:
        return Task(project, ref, load_doc(path, TaskDoc))
    except FileNotFoundError:
        raise OkstraError(
            f"no task {ref} in project {project.id} ({project.root})",
            f'create it: okstra task new {ref} --title "…"',
        ) from None


def new_task(project: Project, ref: TaskRef, *, title: str, category: str | None = None) -> Task:
    title = title.strip()
    if not title:
        raise OkstraError("the task title is empty", 'pass --title "what the task is about"')
    category = check_slug(category or project.config.work_category, "category")
    _check_branch_names(project, ref, category)
    path = task_dir(project, ref) / TASK_FILE
    refuse_links(project.okstra_dir, path)
    if path.exists():
        existing = load_task(project, ref)
        raise OkstraError(
            f"task {ref} already exists ({existing.doc.title!r}, created {existing.doc.created})",
            f"use it as it is (okstra status {ref}), or pick another id",
        )
    _check_branch_free(project, ref, category)
    doc = TaskDoc(title=title, category=category, created=clock.local_iso())
    save_doc(path, doc)
    return Task(project, ref, doc)


def _check_branch_names(project: Project, ref: TaskRef, category: str) -> None:
    """The task's branches (`okstra/CATEGORY/GROUP/ID`, `…-sN`) must be names git takes,
    or the first run would fail far from the cause."""
    from . import git

    branch = f"okstra/{category}/{ref.group}/{ref.id}"
    # a stage's `-sN` suffix cannot make a name git takes into one it refuses
    if git.branch_name_ok(branch, project.root):
        return
    raise OkstraError(
        f"task {ref} in category {category!r} would work on the branch {branch}, a name git refuses "
        "(no part of a branch name may end with '.lock', and a name may not end with '.')",
        "pick a group, id and category that do not end with '.lock' or '.'",
    )


def _check_branch_free(project: Project, ref: TaskRef, category: str) -> None:
    """Projects in subfolders of one repository (a monorepo's) share its branches: a task
    whose branch another project's task works on would take over that task's worktrees'
    branches and hand its work off. Refused, naming the other task."""
    from .projects import load_project, projects_inside

    if not project.is_git:
        return
    branch = f"okstra/{category}/{ref.group}/{ref.id}"
    for known in projects_inside(project.repo):
        root = Path(known.path)
        if root == project.root:
            continue
        try:
            other = load_task(load_project(root), ref)
        except OkstraError:  # no such task there (or a damaged one, which makes no branch)
            continue
        if task_branch(other) == branch and other.project.repo == project.repo:
            raise OkstraError(
                f"task {ref} would work on the branch {branch}, which task {ref} of project "
                f"{other.project.id} ({other.dir}) works on: both projects are in the repository "
                f"{project.repo}, and branches are the repository's",
                f"pick another group or id, or give this project's tasks their own category "
                f"(okstra task new {ref} --category {project.id} --title …, or workCategory in its .okstra/project.json)",
            )


def list_tasks(project: Project) -> list[TaskRef]:
    root = project.tasks_dir()
    refs = []
    for task_json in sorted(root.glob("*/*/task.json")):
        try:
            refs.append(
                TaskRef(check_slug(task_json.parent.parent.name, "group"), check_slug(task_json.parent.name, "id"))
            )
        except OkstraError:
            continue
    return refs


def task_branch(task: Task) -> str:
    """`okstra/CATEGORY/GROUP/ID`: the task worktree's branch."""
    return task_branch_name(task.doc.category, task.ref.group, task.ref.id)


def stage_branch(task: Task, stage: int) -> str:
    """`okstra/CATEGORY/GROUP/ID-sN`: stage N's worktree branch."""
    return f"{task_branch(task)}-s{stage}"


def task_worktree_path(task: Task) -> Path:
    from .locations import okstra_home

    return okstra_home() / "worktrees" / task.project.id / task.ref.group / task.ref.id


def stage_worktree_path(task: Task, stage: int) -> Path:
    path = task_worktree_path(task)
    return path.with_name(f"{path.name}-s{stage}")
