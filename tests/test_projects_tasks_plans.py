from __future__ import annotations

import json
from pathlib import Path

import pytest

from okstra_engine.errors import OkstraError
from okstra_engine.plans import approve_plan, front_matter, import_plan, plan_run_root, plan_runs, with_approval
from okstra_engine.projects import init_project, list_projects, load_project
from okstra_engine.slugs import TaskRef
from okstra_engine.tasks import load_task, new_task
from tests.support import git


def test_init_registers_and_excludes_okstra_dir(repo: Path) -> None:
    project, created = init_project(repo, qa_commands=["pytest -q"])
    assert created and project.id == "repo"
    doc = json.loads((repo / ".okstra" / "project.json").read_text())
    assert doc["projectId"] == "repo" and doc["qaCommands"] == ["pytest -q"] and doc["workCategory"] == "feature"
    assert "/.okstra/" in (repo / ".git" / "info" / "exclude").read_text()
    assert git(repo, "status", "--porcelain") == ""
    assert [p.project_id for p in list_projects()] == ["repo"]


def test_init_is_idempotent_and_adds_qa_commands(repo: Path) -> None:
    init_project(repo, qa_commands=["pytest -q"])
    project, created = init_project(repo, qa_commands=["pytest -q", "ruff check"])
    assert not created and project.config.qa_commands == ["pytest -q", "ruff check"]
    assert (repo / ".git" / "info" / "exclude").read_text().count(".okstra") == 1
    assert len(list_projects()) == 1


def test_init_refuses_a_different_id(repo: Path) -> None:
    init_project(repo)
    with pytest.raises(OkstraError, match="already registered as project 'repo'"):
        init_project(repo, project_id="other")


def test_init_keeps_unknown_fields(repo: Path) -> None:
    init_project(repo)
    path = repo / ".okstra" / "project.json"
    doc = json.loads(path.read_text())
    doc["futureSetting"] = [1, 2]
    path.write_text(json.dumps(doc))
    init_project(repo, qa_commands=["make test"])
    assert json.loads(path.read_text())["futureSetting"] == [1, 2]


def test_non_git_project(tmp_path: Path) -> None:
    folder = tmp_path / "plain"
    folder.mkdir()
    project, _ = init_project(folder)
    assert not project.is_git and load_project(folder).id == "plain"


def test_bad_project_json_names_file_and_field(repo: Path) -> None:
    (repo / ".okstra").mkdir()
    (repo / ".okstra" / "project.json").write_text('{"projectId": 5, "name": "x"}')
    with pytest.raises(OkstraError, match=r"project.json: field 'projectId'"):
        load_project(repo)


@pytest.mark.parametrize(
    "text", ["a", "a/b/c", "A/b", "a/../b", "../x", "a/", "/b", "a b/c", "a/b c", "a/..", "a/" + "x" * 65, "-a/b"]
)
def test_task_refs_are_validated(text: str) -> None:
    with pytest.raises(OkstraError):
        TaskRef.parse(text)


def test_task_ref_ok() -> None:
    ref = TaskRef.parse("auth/login-flow.v2")
    assert ref.key == "auth-login-flow.v2" and str(ref) == "auth/login-flow.v2"


def test_new_task_and_duplicate(repo: Path) -> None:
    project, _ = init_project(repo)
    task = new_task(project, TaskRef("auth", "login"), title="Login")
    assert task.doc.category == "feature"
    assert load_task(project, task.ref).doc.title == "Login"
    with pytest.raises(OkstraError, match="already exists"):
        new_task(project, task.ref, title="Again")
    with pytest.raises(OkstraError, match="no task auth/other"):
        load_task(project, TaskRef("auth", "other"))


def test_plan_import_and_approve(repo: Path, plan_file: Path) -> None:
    project, _ = init_project(repo)
    task = new_task(project, TaskRef("auth", "login"), title="Login")
    plan = import_plan(task, plan_file)
    assert not plan.approved and plan_run_root(task) is None
    assert (plan.dir / "manifest.json").exists() and plan.dir.name.split("-")[1] == "planning"
    _approved, changed = approve_plan(task)
    assert changed and plan_run_root(task).dir == plan.dir
    text = (plan.dir / "plan.md").read_text()
    assert front_matter(text)["approved"] == "true" and front_matter(text)["title"] == "four stages"
    assert approve_plan(task)[1] is False


def test_bare_stage_map_json_import(repo: Path, tmp_path: Path) -> None:
    project, _ = init_project(repo)
    task = new_task(project, TaskRef("auth", "login"), title="Login")
    source = tmp_path / "stage-map.json"
    source.write_text(
        json.dumps({"stages": [{"stage": 1, "title": "One"}, {"stage": 2, "title": "Two", "depends_on": [1]}]})
    )
    plan = import_plan(task, source, approve=True)
    assert plan_run_root(task).dir == plan.dir
    assert [s.stage for s in plan.stage_map().stages] == [1, 2]


def test_a_bad_plan_leaves_no_run_behind(repo: Path, tmp_path: Path) -> None:
    project, _ = init_project(repo)
    task = new_task(project, TaskRef("auth", "login"), title="Login")
    bad = tmp_path / "bad.md"
    bad.write_text("## Stage Map\n| Stage | Title | Depends on |\n|---|---|---|\n| 1 | A | 2 |\n| 2 | B | 1 |\n")
    with pytest.raises(OkstraError, match="1 -> 2 -> 1|2 -> 1 -> 2"):
        import_plan(task, bad)
    assert plan_runs(task) == []
    assert not task.runs_dir.exists() or not any(task.runs_dir.iterdir())


def test_with_approval_variants() -> None:
    assert front_matter(with_approval("# x\n", "T"))["approved"] == "true"
    assert front_matter(with_approval("---\napproved: false\n---\n# x\n", "T"))["approved"] == "true"
    assert with_approval("---\napproved: false\n---\n# x\n", "T").endswith("---\n# x\n")


@pytest.mark.parametrize(
    ("ref", "category"),
    [("g/x.lock", None), ("g/x.", None), ("a.lock/b", None), ("g/x", "x.lock")],
)
def test_task_names_git_cannot_use_are_refused_at_task_new(repo, capsys, ref, category) -> None:
    """The task's branches are `okstra/CATEGORY/GROUP/ID` and `…-sN`: a name git refuses
    for a branch is refused when the task is made, with git's rule, not at the first run."""
    from tests.support import call

    call(capsys, "init", str(repo))
    extra = ["--category", category] if category else []
    code, _, err = call(capsys, "--project", str(repo), "task", "new", ref, "--title", "T", *extra)
    assert code == 2 and "git refuses" in err and ".lock" in err
    assert not (repo / ".okstra" / "tasks" / ref.split("/")[0] / ref.split("/")[1]).exists()
