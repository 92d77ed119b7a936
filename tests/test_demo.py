"""The demo project: a real repository in a known state (no Textual here)."""

from __future__ import annotations

import os
import subprocess
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from okstra_engine.demo import DEMO_TASK, MARKER, build_demo, demo_environment, load_demo
from okstra_engine.errors import OkstraError
from okstra_engine.slugs import TaskRef
from okstra_engine.teams import team_name
from tests.support import call, git, make_repo

NOW = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)


@pytest.fixture
def demo(tmp_path: Path):
    return build_demo(tmp_path / "demo", now=NOW)


def _task(info):
    from okstra_engine.projects import load_project
    from okstra_engine.slugs import TaskRef
    from okstra_engine.tasks import load_task

    return load_task(load_project(Path(info.project_root)), TaskRef.parse(info.task))


def test_demo_states_tell_the_story(demo) -> None:
    from okstra_engine.status import task_status

    with demo_environment(demo.env):
        status = task_status(_task(demo), now=NOW + timedelta(minutes=1))
    states = {s.stage: s.state for s in status.stages}
    assert states == {1: "done", 2: "not-merged", 3: "in-flight", 4: "ready", 5: "blocked", 6: "blocked"}
    assert status.auto_stage == 4
    views = {s.stage: s for s in status.stages}
    assert views[3].run_id == demo.run_ids["s3"] and views[3].since == NOW - timedelta(minutes=14)
    assert views[1].done_commit == demo.commits["s1"] and views[2].done_commit == demo.commits["s2_recorded"]
    assert views[3].worktree and Path(views[3].worktree).name == "checkout-s3"
    reserved = status.ledger.stages[3].streak.start
    assert (reserved.status, reserved.host) == ("reserved", "build-box")
    assert not status.warnings


def test_demo_history_is_real_git(demo) -> None:
    from okstra_engine.tasks import stage_branch, task_branch

    root = Path(demo.project_root)
    with demo_environment(demo.env):
        task = _task(demo)
    tb = task_branch(task)
    x, x_rebased = demo.commits["s2_recorded"], demo.commits["s2_rebased"]

    def is_ancestor(a: str, b: str) -> bool:
        return subprocess.run(["git", "merge-base", "--is-ancestor", a, b], cwd=root).returncode == 0

    assert is_ancestor(demo.commits["s1"], tb)
    assert not is_ancestor(x, tb) and is_ancestor(x_rebased, tb)
    assert git(root, "rev-parse", stage_branch(task, 2)) == x_rebased
    assert git(root, "rev-parse", stage_branch(task, 3)) == demo.commits["s3_wip"]
    # the same patch, another commit: what reconcile calls patch-equivalent
    patch = lambda sha: git(root, "show", "--format=", sha)  # noqa: E731
    assert patch(x) == patch(x_rebased) and x != x_rebased
    # the recorded commit is pinned, so gc keeps it
    assert x in git(root, "for-each-ref", "--format=%(objectname)", "refs/okstra/")


def test_reconcile_suggests_the_rebased_commit(demo) -> None:
    from okstra_engine.reconcile import suggestions

    with demo_environment(demo.env):
        found = suggestions(_task(demo))
    assert [(s.stage, s.recorded, s.suggested, s.kind) for s in found] == [
        (2, demo.commits["s2_recorded"], demo.commits["s2_rebased"], "patch-equivalent")
    ]


def test_demo_is_reproducible(tmp_path: Path) -> None:
    a = build_demo(tmp_path / "a", now=NOW)
    b = build_demo(tmp_path / "b", now=NOW)
    assert a.commits == b.commits and a.run_ids == b.run_ids


def test_demo_homes_config_and_teams(demo, tmp_path: Path) -> None:
    # every home is the demo's own, even where the caller names an okstra home (conftest does)
    assert Path(demo.okstra_home) == tmp_path / "demo" / "okstra-home" != Path(os.environ["OKSTRA_HOME"])
    assert not Path(os.environ["OKSTRA_HOME"]).exists()
    assert Path(demo.agent_home) == tmp_path / "demo" / "agent-home"
    config = tomllib.loads(Path(demo.config_file).read_text())
    assert config["agent_command"][1:] == ["-m", "okstra_engine.sim_lead", "{run_dir}"]
    # its agents run on a tmux server of its own, never among the person's sessions
    assert config["tmux_socket"].startswith("okstra-demo-")
    for kind in ("teams", "tasks"):
        for stage in (3, 4):
            team = team_name("shop", TaskRef("demo", "checkout"), stage)
            assert (Path(demo.agent_home) / kind / team).is_dir()
    from okstra_engine.projects import list_projects

    with demo_environment(demo.env):
        assert [p.path for p in list_projects()] == [demo.project_root]
        from okstra_engine.config import settings

        assert settings().agent_command[-1] == "{run_dir}"
        assert settings().tmux_socket == config["tmux_socket"]


def test_environment_is_restored(demo) -> None:
    before = {k: os.environ.get(k) for k in demo.env}
    with demo_environment(demo.env):
        assert os.environ["CLAUDE_CONFIG_DIR"] == demo.agent_home
    assert {k: os.environ.get(k) for k in demo.env} == before


def test_marker_reopens_and_non_empty_dir_is_refused(demo, tmp_path: Path) -> None:
    assert load_demo(Path(demo.dir)) == demo
    assert load_demo(tmp_path) is None
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(OkstraError, match="not empty"):
        build_demo(other)
    assert (Path(demo.dir) / MARKER).is_file()


def test_okstra_demo_no_tui(tmp_path: Path, capsys, monkeypatch) -> None:
    target = tmp_path / "cli-demo"
    for key in ("OKSTRA_CONFIG", "CLAUDE_CONFIG_DIR"):
        monkeypatch.delenv(key, raising=False)
    code, out, err = call(capsys, "demo", "--dir", str(target), "--no-tui")
    assert code == 0, err
    assert f"built in {target}" in out and "export OKSTRA_HOME=" in out and DEMO_TASK in out
    assert os.environ["CLAUDE_CONFIG_DIR"] == str(target / "agent-home")
    code, out, _ = call(capsys, "demo", "--dir", str(target), "--no-tui")
    assert code == 0 and "reopening the demo" in out
    code, out, _ = call(capsys, "--project", str(target / "shop"), "status", DEMO_TASK, "--json")
    assert code == 0 and '"not-merged"' in out


def test_okstra_demo_registers_nothing_in_the_persons_okstra_home(tmp_path: Path, capsys, monkeypatch) -> None:
    from okstra_engine.projects import list_projects

    mine = tmp_path / "my-okstra-home"
    monkeypatch.setenv("OKSTRA_HOME", str(mine))
    code, _, err = call(capsys, "init", "--project", str(make_repo(tmp_path / "mine")))
    assert code == 0, err
    before = sorted(p.relative_to(mine) for p in mine.rglob("*"))
    target = tmp_path / "cli-demo"
    code, out, err = call(capsys, "demo", "--dir", str(target), "--no-tui")
    assert code == 0, err
    assert f"export OKSTRA_HOME={target / 'okstra-home'}" in out
    assert [p.project_id for p in list_projects()] == ["shop"]  # the demo's home is this process's now
    monkeypatch.setenv("OKSTRA_HOME", str(mine))
    assert [p.project_id for p in list_projects()] == ["mine"]
    assert sorted(p.relative_to(mine) for p in mine.rglob("*")) == before


def test_a_demo_marker_naming_the_persons_okstra_home_is_refused(demo, tmp_path: Path, monkeypatch) -> None:
    import json

    marker = Path(demo.dir) / MARKER
    doc = json.loads(marker.read_text())
    mine = tmp_path / "my-okstra-home"
    doc["env"]["OKSTRA_HOME"] = str(mine)
    marker.write_text(json.dumps(doc))
    monkeypatch.setenv("OKSTRA_HOME", str(mine))  # even the one this process uses
    with pytest.raises(OkstraError, match="is outside the demo's folder"):
        load_demo(Path(demo.dir))
