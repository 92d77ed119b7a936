"""Opting in, the task and its plan travelling, `share status` and `share sync`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.share.machines import TASK, bare_remote, machines, shared_task, stage_map
from tests.support import git


def test_the_task_and_its_plan_travel_to_another_clone(pair) -> None:
    remote, (a, b) = pair
    refs = git(remote, "for-each-ref", "--format=%(refname)")
    assert "refs/okstra/share/root/team/wide/task" in refs.splitlines()
    status_a, status_b = a.json("status", TASK), b.json("status", TASK)
    assert Path(status_b["plan_run"]).name == Path(status_a["plan_run"]).name
    assert [s["state"] for s in status_b["stages"]] == ["ready", "ready", "blocked"]
    doc = json.loads((b.clone / ".okstra/tasks/team/wide/task.json").read_text())
    assert doc["title"] == "Shared work"
    manifest = json.loads((Path(status_b["plan_run"]) / "manifest.json").read_text())
    assert manifest["run_dir"] == status_b["plan_run"]  # this clone's place, not the other's
    # the person's branches are not fetched, nor okstra's local refs of the other clone
    assert not git(b.clone, "for-each-ref", "--format=%(refname)", "refs/heads/okstra")


def test_init_share_refuses_what_is_not_a_remote_of_the_repository(tmp_path: Path) -> None:
    remote = bare_remote(tmp_path)
    (a,) = machines(tmp_path, remote, 1)
    for name in ("nope", "--upload-pack=touch /tmp/x", str(remote), "https://example.com/x.git"):
        proc = a.run("init", "--share", name)
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr
    assert (
        not (a.clone / ".okstra" / "project.json").exists()
        or "shareRemote" not in (a.clone / ".okstra" / "project.json").read_text()
    )


def test_a_share_remote_an_agent_wrote_into_project_json_is_checked(pair) -> None:
    _, (a, _) = pair
    path = a.clone / ".okstra" / "project.json"
    doc = json.loads(path.read_text())
    doc["shareRemote"] = "/tmp/elsewhere.git"
    path.write_text(json.dumps(doc))
    proc = a.run("share", "sync")
    assert proc.returncode == 2
    assert "shareRemote" in proc.stderr and "no remote named" in proc.stderr


def test_share_status_says_what_is_shared_and_when_it_synced(pair) -> None:
    _, (a, b) = pair
    doc = a.json("share", "status")
    assert doc["remote"] == "origin" and doc["reachable"] is True
    assert doc["tasks"] == [{"task": TASK, "here": True, "there": True, "queued": 0, "branch": None}]
    assert doc["fetched"] and doc["published"]
    assert len(doc["machine"]) == 16 and doc["machine"] != b.json("share", "status")["machine"]
    text = a.ok("share", "status")
    assert "shares its tasks through origin: it answered" in text


def test_a_project_not_shared_says_so(tmp_path: Path) -> None:
    remote = bare_remote(tmp_path)
    (a,) = machines(tmp_path, remote, 1)
    a.ok("init")
    assert a.json("share", "status")["remote"] is None
    proc = a.run("share", "sync")
    assert proc.returncode == 2 and "is not shared" in proc.stderr


def _git_in(clone: Path, text: str, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=clone, input=text, capture_output=True, text=True, check=True
    ).stdout.strip()


def _tree(clone: Path, entries: list[str]) -> str:
    """A tree of `mode type sha\tname` lines, as another machine could make it."""
    return _git_in(clone, "".join(e + "\n" for e in entries), "mktree")


def _blob(clone: Path, text: str) -> str:
    return _git_in(clone, text, "hash-object", "-w", "--stdin")


def _push_task(clone: Path, ref: str, entries: list[str]) -> None:
    """Publish a hand-made task commit as another machine could."""
    commit = git(clone, "commit-tree", _tree(clone, entries), "-m", "hand-made")
    git(clone, "push", "-q", "origin", f"{commit}:refs/okstra/share/root/{ref}/task")


def test_what_another_machine_published_is_read_as_data_only(pair, tmp_path: Path) -> None:
    _, (a, b) = pair
    task_json = _blob(a.clone, json.dumps({"title": "Evil", "category": "feature", "created": "2026-01-01"}))
    escape = _blob(a.clone, json.dumps({"run": "../../../../outside", "approved_at": "2026-01-01T00:00:00Z"}))
    _push_task(
        a.clone, "evil/escape", [f"100644 blob {task_json}\ttask.json", f"100644 blob {escape}\tcurrent-plan.json"]
    )
    run = "20260101T000000Z-planning-abc123"
    pointer = _blob(a.clone, json.dumps({"run": run, "approved_at": "2026-01-01T00:00:00Z"}))
    link = _blob(a.clone, "/etc/passwd")
    plan_tree = _tree(a.clone, [f"120000 blob {link}\tplan.md"])
    runs_tree = _tree(a.clone, [f"040000 tree {plan_tree}\t{run}"])
    _push_task(
        a.clone,
        "evil/link",
        [
            f"100644 blob {task_json}\ttask.json",
            f"100644 blob {pointer}\tcurrent-plan.json",
            f"040000 tree {runs_tree}\truns",
        ],
    )
    out = b.ok("share", "sync")
    assert "task evil/escape (Evil) came from origin" in out
    tasks = b.clone / ".okstra" / "tasks" / "evil"
    assert not (tasks / "escape" / "current-plan.json").exists()
    assert not (tasks / "link" / "current-plan.json").exists()
    assert not list((tasks / "link").glob("runs/*/plan.md"))
    assert not (tmp_path / "outside").exists()
    assert b.json("status", "evil/link")["plan_run"] is None


def test_a_project_is_known_by_its_place_in_the_repository(tmp_path: Path) -> None:
    from okstra_engine.share.place import place_key

    root, api, web = place_key(""), place_key("services/api/"), place_key("services/web/")
    assert root == "root" and api.startswith("sub-") and len({root, api, web}) == 3
    assert place_key("services/api") == api  # with or without its slash
    for key in (root, api, place_key("odd name: with ~ and ^/")):
        git(tmp_path, "check-ref-format", f"refs/okstra/share/{key}/team/wide/task")


def test_a_project_in_a_subfolder_shares_its_tasks_with_the_same_folder_elsewhere(tmp_path: Path) -> None:
    from okstra_engine.share.place import place_key
    from tests.share.machines import Machine
    from tests.support import commit

    remote = bare_remote(tmp_path)
    seed = tmp_path / "seed"
    git(tmp_path, "clone", "-q", str(remote), str(seed))
    commit(seed, {"services/api/app.py": "print('api')\n"}, "the api")
    git(seed, "push", "-q", "origin", "HEAD:main")
    a, b = machines(tmp_path, remote, 2)
    api_a = Machine("a", a.clone / "services" / "api", a.home)
    api_b = Machine("b", b.clone / "services" / "api", b.home)
    shared_task(tmp_path, [api_a, api_b], stage_map(tmp_path, 2))
    key = place_key("services/api/")
    assert f"refs/okstra/share/{key}/team/wide/task" in git(remote, "for-each-ref", "--format=%(refname)").split()
    assert [s["state"] for s in api_b.json("status", TASK)["stages"]] == ["ready", "ready"]
    assert not (b.clone / ".okstra").exists()  # the repository's root is no project of its own
