"""A project's id is unique in the okstra home: it names the project's worktrees, registry
rows and locks, so two projects sharing one would share those too."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from okstra_engine import handoff as ho
from okstra_engine.errors import OkstraError
from okstra_engine.plans import import_plan
from okstra_engine.prepare import PrepareOptions, prepare
from okstra_engine.projects import init_project, list_projects, load_project
from okstra_engine.record import record
from okstra_engine.slugs import TaskRef
from okstra_engine.tasks import new_task, task_branch
from okstra_engine.worktrees import stage_target
from tests.support import call, commit, git, make_repo


def _task(root: Path, plan_file: Path):
    project, _ = init_project(root, qa_commands=["true"])
    task = new_task(project, TaskRef("auth", "login"), title="Login flow")
    import_plan(task, plan_file, approve=True)
    return task


def test_two_clones_with_one_folder_name_get_two_ids_and_stay_apart(tmp_path, plan_file) -> None:
    a = make_repo(tmp_path / "one" / "app")
    b = tmp_path / "two" / "app"
    git(tmp_path, "clone", "-q", str(a), str(b))
    task_a, task_b = _task(a, plan_file), _task(b, plan_file)
    assert (task_a.project.id, task_b.project.id) == ("app", "app-2")

    wt_a = Path(prepare(task_a, PrepareOptions("implementation", stage="1")).manifest.worktree.path)
    wt_b = Path(prepare(task_b, PrepareOptions("implementation", stage="1")).manifest.worktree.path)
    assert wt_a != wt_b
    assert git(wt_a, "rev-parse", "--git-common-dir") != git(wt_b, "rev-parse", "--git-common-dir")

    a_task_head = git(a, "rev-parse", task_branch(task_a))
    sha = commit(stage_target(task_b, 1).path, {"schema.py": "B = 1\n"}, "stage 1 in B")
    record(task_b, 1, "done", commit=sha)
    assert ho.run_handoff(task_b, merge=True).merged == [1]
    # B's handoff went to B's task branch; A's is where it was
    assert git(a, "rev-parse", task_branch(task_a)) == a_task_head
    assert git(b, "merge-base", "--is-ancestor", sha, task_branch(task_b), check=False) == ""


def test_names_without_letters_do_not_collide(tmp_path) -> None:
    first, _ = init_project(make_repo(tmp_path / "1" / "日本"))
    second, _ = init_project(make_repo(tmp_path / "2" / "中文"))
    assert first.id != second.id
    assert len({p.project_id for p in list_projects()}) == 2


def test_a_clashing_id_is_refused(tmp_path, capsys) -> None:
    init_project(make_repo(tmp_path / "a"), project_id="shop")
    other = make_repo(tmp_path / "b")
    code, _out, err = call(capsys, "init", str(other), "--id", "shop")
    assert code == 2
    assert "shop" in err and str(tmp_path / "a") in err and "--id" in err
    assert not (other / ".okstra").exists()
    assert [p.project_id for p in list_projects()] == ["shop"]


def test_a_copied_project_folder_is_refused_until_it_has_its_own_id(tmp_path, capsys) -> None:
    """`cp -r app app-copy` copies `.okstra/project.json`, and with it the id."""
    original = make_repo(tmp_path / "app")
    init_project(original)
    copy = tmp_path / "app-copy"
    shutil.copytree(original, copy)

    with pytest.raises(OkstraError) as refused:
        load_project(copy)
    assert str(original) in refused.value.what and "okstra init --id" in refused.value.how
    code, _out, err = call(capsys, "task", "new", "auth/login", "--title", "x", "--project", str(copy))
    assert code == 2 and "app" in err

    code, _out, err = call(capsys, "init", str(copy))
    assert code == 2 and "--id" in err  # no silent re-id of a folder that has tasks of its own

    code, _out, err = call(capsys, "init", str(copy), "--id", "app-copy")
    assert code == 0, err
    assert load_project(copy).id == "app-copy" and load_project(original).id == "app"
    assert sorted((p.project_id, p.path) for p in list_projects()) == [
        ("app", str(original)),
        ("app-copy", str(copy)),
    ]


def test_a_project_whose_folder_is_gone_frees_its_id_and_its_row(tmp_path) -> None:
    gone = make_repo(tmp_path / "old" / "app")
    init_project(gone)
    shutil.rmtree(gone)
    fresh, _ = init_project(make_repo(tmp_path / "new" / "app"))
    assert fresh.id == "app"
    assert [(p.project_id, p.path) for p in list_projects()] == [("app", str(tmp_path / "new" / "app"))]


def test_the_same_folder_by_two_paths_is_one_row(tmp_path) -> None:
    real = make_repo(tmp_path / "real")
    link = tmp_path / "link"
    link.symlink_to(real)
    init_project(real)
    init_project(link)
    assert [p.path for p in list_projects()] == [str(real)]
    assert load_project(link).id == "real"


def test_the_project_list_shows_a_folder_once_even_from_an_older_list(tmp_path) -> None:
    """A list an older okstra wrote may name one folder twice; the TUI shows one row."""
    from okstra_engine.documents import save_doc
    from okstra_engine.locations import projects_file
    from okstra_engine.projects import ProjectList
    from okstra_tui.model import project_entries

    init_project(make_repo(tmp_path / "app"))
    (entry,) = list_projects()
    save_doc(projects_file(), ProjectList(projects=[entry, entry.model_copy()]))
    assert [e.path for e in project_entries()] == [tmp_path / "app"]
