"""Agent team state quarantine: list, move, restore, and what is refused."""

from __future__ import annotations

import errno
import io
import json
import os
from datetime import timedelta
from pathlib import Path

import pytest

from okstra_engine import fsio
from okstra_engine import quarantine as q
from okstra_engine.errors import OkstraError
from okstra_engine.ledger import append_row, format_ts, new_row, utc_now
from okstra_engine.locations import agent_home, okstra_home
from okstra_engine.plans import plan_run_root
from okstra_engine.slugs import TaskRef
from okstra_engine.teams import check_team_name, team_name
from tests.reliability.invariants import tree
from tests.support import call, run_cli

TEAM = "okstra-auth-login-s2"
REMOVE_TREE = fsio.remove_tree


def make_team(name: str = TEAM, *, tasks: bool = True) -> dict[str, bytes]:
    """A team folder (and its task list) like the agent leaves behind; returns its files."""
    home = agent_home()
    files = {
        f"teams/{name}/config.json": b'{"name": "%s", "members": ["lead", "w1"]}\n' % name.encode(),
        f"teams/{name}/inboxes/w1.json": b"[]\n",
        f"teams/{name}/blob.bin": bytes(range(256)) * 300,
    }
    if tasks:
        files[f"tasks/{name}/1.json"] = b'{"id": 1, "status": "pending"}\n'
        files[f"tasks/{name}/.lock"] = b""
    for rel, data in files.items():
        path = home / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    os.symlink("config.json", home / "teams" / name / "link-to-config")
    return files


def everything() -> tuple[dict, dict]:
    return tree(agent_home()), tree(okstra_home())


def exdev(src, dst):
    raise OSError(errno.EXDEV, "Invalid cross-device link")


# --------------------------------------------------------------------------- names


def test_team_names() -> None:
    ref = TaskRef("auth", "login")
    name, stage_name = team_name("repo", ref), team_name("repo", ref, 2)
    assert name.startswith("okstra-auth-login-") and stage_name == f"{name}-s2"
    assert check_team_name(name) == name and check_team_name(stage_name) == stage_name
    for good in (
        "okstra-a-b",
        "okstra-a.b-c_d-s12",
        "okstra-my-group-my-id",
        "okstra-" + "g" * 64 + "-" + "i" * 64 + "-s3",  # an older okstra's name: still listed and movable
    ):
        assert check_team_name(good) == good
    with pytest.raises(OkstraError):
        team_name("repo", ref, 0)


def test_team_names_are_unique_per_project_and_task() -> None:
    """`a-b/c` and `a/b-c` have one task key; one task ref lives in many projects."""
    names = {
        team_name("app", TaskRef("a-b", "c")),
        team_name("app", TaskRef("a", "b-c")),
        team_name("app-2", TaskRef("a-b", "c")),
        team_name("app-2", TaskRef("a", "b-c")),
    }
    assert len(names) == 4
    long = team_name("p" * 64, TaskRef("g" * 64, "i" * 64), 123)
    assert len(long) <= len("okstra-") + 24 + 1 + 8 + len("-s123") and check_team_name(long) == long


HOSTILE = [
    "../x",
    "/abs",
    "okstra-",
    "okstra-Upper-case",
    "okstra-a/b",
    "other-team",
    "okstra-a-b/../../etc",
    "okstra-a..b-c",
    "okstra-ab",
    "okstra-a-b\n",
    ".",
    "..",
    "okstra-a-b/",
    "",
]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_are_refused_and_nothing_moves(name: str, tmp_path: Path) -> None:
    make_team()
    # things a traversal could reach, if anything followed the name
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep").write_text("keep")
    before = everything()
    for action in (q.plan_move, q.move_team):
        with pytest.raises(OkstraError) as info:
            action(name)
        assert "invalid team name" in info.value.what
    assert everything() == before
    assert (tmp_path / "x" / "keep").read_text() == "keep"
    assert not (okstra_home() / "trash").exists()


@pytest.mark.parametrize("stamp", ["../x", "/etc", "20260610T120000Z/../..", "x", ""])
def test_hostile_stamps_are_refused(stamp: str) -> None:
    with pytest.raises(OkstraError):
        q.restore(stamp)


@pytest.mark.parametrize("where", ["team-link", "tasks-link", "teams-folder-link"])
def test_symlinked_team_dirs_are_refused(where: str, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (outside / TEAM).mkdir(parents=True)
    (outside / TEAM / "secret").write_text("do not move me")
    home = agent_home()
    if where == "team-link":
        (home / "teams").mkdir(parents=True)
        os.symlink(outside / TEAM, home / "teams" / TEAM)
    elif where == "tasks-link":
        make_team(tasks=False)
        (home / "tasks").mkdir(parents=True)
        os.symlink(outside / TEAM, home / "tasks" / TEAM)
    else:
        home.mkdir(parents=True)
        os.symlink(outside, home / "teams")
    before = everything(), tree(outside)
    for action in (q.plan_move, q.move_team):
        with pytest.raises(OkstraError) as info:
            action(TEAM)
        assert "symlink" in info.value.what
    assert (everything(), tree(outside)) == before
    assert not (okstra_home() / "trash").exists()
    [info] = q.list_teams()
    assert info.team == TEAM and not info.offered and "symlink" in info.problem


def test_not_a_directory_and_missing_team_are_refused() -> None:
    home = agent_home()
    (home / "teams").mkdir(parents=True)
    (home / "teams" / TEAM).write_text("a file")
    with pytest.raises(OkstraError, match="not a directory"):
        q.move_team(TEAM)
    with pytest.raises(OkstraError, match="no team state named okstra-x-y"):
        q.move_team("okstra-x-y")
    assert (home / "teams" / TEAM).read_text() == "a file"


# --------------------------------------------------------------------------- round trip


def test_move_then_restore_round_trip() -> None:
    files = make_team()
    make_team("okstra-other-task")  # a neighbour that must not be touched
    original = tree(agent_home())

    plan = q.plan_move(TEAM)
    assert not plan.resuming and [s.action for s in plan.steps] == ["move", "move"]
    assert plan.steps[0].source == agent_home() / "teams" / TEAM
    assert plan.steps[0].destination.parent.parent.parent == okstra_home() / "trash"
    assert any(TEAM in line for line in plan.describe())

    entry = q.move_team(TEAM)
    assert entry.state == "moved" and entry.team == TEAM
    assert entry.dir.parent == okstra_home() / "trash" and q.STAMP_RE.fullmatch(entry.stamp)
    assert not (agent_home() / "teams" / TEAM).exists() and not (agent_home() / "tasks" / TEAM).exists()
    assert (agent_home() / "teams" / "okstra-other-task").is_dir()
    for rel in files:
        assert (entry.dir / rel).read_bytes() == files[rel]
    manifest = json.loads((entry.dir / "manifest.json").read_text())
    assert manifest["team"] == TEAM and manifest["state"] == "moved"
    assert {(i["source"], i["moved_to"]) for i in manifest["items"]} == {
        (str(agent_home() / "teams" / TEAM), f"teams/{TEAM}"),
        (str(agent_home() / "tasks" / TEAM), f"tasks/{TEAM}"),
    }
    assert [t.team for t in q.list_teams()] == ["okstra-other-task"]
    assert [e.stamp for e in q.list_trash()] == [entry.stamp]

    restored = q.restore(entry.stamp)
    assert restored.state == "restored"
    assert tree(agent_home()) == original
    assert sorted(p.name for p in entry.dir.iterdir()) == ["manifest.json"]
    with pytest.raises(OkstraError, match="already restored"):
        q.restore(entry.stamp)


def test_two_moves_in_one_second_get_their_own_stamps() -> None:
    make_team()
    first = q.move_team(TEAM)
    make_team()
    second = q.move_team(TEAM)
    assert first.stamp != second.stamp and first.dir.is_dir() and second.dir.is_dir()


def test_restore_refuses_when_a_destination_exists() -> None:
    make_team()
    entry = q.move_team(TEAM)
    (agent_home() / "teams" / TEAM).mkdir()
    (agent_home() / "teams" / TEAM / "config.json").write_text("{}")
    before = everything()
    with pytest.raises(OkstraError) as info:
        q.restore(entry.stamp)
    assert "exists" in info.value.what and "nothing moved" in info.value.what
    # tasks/TEAM was free, but nothing moves when anything would be refused
    assert not (agent_home() / "tasks" / TEAM).exists()
    assert everything() == before


def test_restore_refuses_an_edited_manifest_or_another_agent_home(tmp_path: Path, monkeypatch) -> None:
    make_team()
    entry = q.move_team(TEAM)
    path = entry.dir / "manifest.json"
    good = path.read_text()
    doc = json.loads(good)
    doc["items"][0]["source"] = "/etc/okstra-auth-login-s2"
    path.write_text(json.dumps(doc))
    with pytest.raises(OkstraError, match="does not name"):
        q.restore(entry.stamp)
    path.write_text(good)
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "another-agent-home"))
    with pytest.raises(OkstraError, match="came from the agent home"):
        q.restore(entry.stamp)
    assert not (tmp_path / "another-agent-home").exists()
    assert (entry.dir / "teams" / TEAM / "config.json").exists()


# --------------------------------------------------------------------------- crashes


def test_cross_device_move_and_restore_copy_and_verify(monkeypatch) -> None:
    monkeypatch.setattr(os, "rename", exdev)  # as across two file systems
    make_team()
    original = tree(agent_home())
    entry = q.move_team(TEAM)
    assert entry.state == "moved" and not (agent_home() / "teams" / TEAM).exists()
    assert tree(entry.dir / "teams" / TEAM) == tree_of(original, "teams")
    assert not [p for p in entry.dir.rglob("*") if p.name.endswith(".okstra-partial")]
    q.restore(entry.stamp)
    assert tree(agent_home()) == original


def tree_of(snapshot: dict, kind: str) -> dict:
    prefix = f"{kind}/{TEAM}/"
    return {k[len(prefix) :]: v for k, v in snapshot.items() if k.startswith(prefix)}


def _crash(*_a, **_k):
    raise RuntimeError("simulated crash between copy and remove")


def _assert_complete_somewhere(original: dict, entry_dir: Path) -> None:
    for kind in ("teams", "tasks"):
        want = tree_of(original, kind)
        homes = [tree(agent_home() / kind / TEAM), tree(entry_dir / kind / TEAM)]
        assert want in homes, kind


def test_crash_between_copy_and_remove_then_move_again(monkeypatch) -> None:
    monkeypatch.setattr(os, "rename", exdev)  # as across two file systems
    monkeypatch.setattr(fsio, "remove_tree", _crash)
    make_team()
    original = tree(agent_home())
    with pytest.raises(RuntimeError):
        q.move_team(TEAM)
    [entry] = q.list_trash()
    assert entry.state == "moving"
    _assert_complete_somewhere(original, entry.dir)
    # list sees the half-done move
    [info] = q.list_teams()
    assert info.pending_stamp == entry.stamp and info.offered
    plan = q.plan_move(TEAM)
    assert plan.resuming and plan.stamp == entry.stamp and [s.action for s in plan.steps] == ["drop-leftover", "move"]

    monkeypatch.setattr(fsio, "remove_tree", REMOVE_TREE)  # the rename stays cross-device
    finished = q.move_team(TEAM)
    assert finished.stamp == entry.stamp and finished.state == "moved"
    assert not (agent_home() / "teams" / TEAM).exists() and not (agent_home() / "tasks" / TEAM).exists()
    assert tree(finished.dir / "teams" / TEAM) == tree_of(original, "teams")
    assert tree(finished.dir / "tasks" / TEAM) == tree_of(original, "tasks")
    assert len(q.list_trash()) == 1
    q.restore(finished.stamp)
    assert tree(agent_home()) == original


def test_crash_in_the_middle_of_the_remove_then_restore(monkeypatch) -> None:
    """The source is half removed: restore puts back the complete trash copy."""

    def remove_one_file_then_crash(path: Path, **_: object) -> None:
        victim = next(p for p in sorted(path.rglob("*")) if p.is_file() and not p.is_symlink())
        victim.unlink()
        raise RuntimeError("crash mid-remove")

    monkeypatch.setattr(os, "rename", exdev)  # as across two file systems
    monkeypatch.setattr(fsio, "remove_tree", remove_one_file_then_crash)
    make_team()
    original = tree(agent_home())
    with pytest.raises(RuntimeError):
        q.move_team(TEAM)
    [entry] = q.list_trash()
    _assert_complete_somewhere(original, entry.dir)
    assert tree(agent_home() / "teams" / TEAM) != tree_of(original, "teams")  # a partial leftover

    monkeypatch.setattr(fsio, "remove_tree", REMOVE_TREE)
    plan = q.plan_restore(entry.stamp)
    assert [s.action for s in plan.steps] == ["replace-leftover", "done"]  # tasks/ never left
    q.restore(entry.stamp)
    assert tree(agent_home()) == original
    assert q.load_entry(entry.stamp).state == "restored"


def test_crash_during_the_copy_leaves_the_source_whole(monkeypatch) -> None:
    import shutil

    real_copytree = shutil.copytree
    calls = []

    def flaky_copy(src, dst, **kw):
        calls.append(src)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return shutil.copy2(src, dst, **kw)

    def flaky_copytree(src, dst, symlinks=False, ignore=None, copy_function=None, *rest, **kw):
        return real_copytree(src, dst, symlinks, ignore, flaky_copy, *rest, **kw)

    monkeypatch.setattr(os, "rename", exdev)  # as across two file systems
    monkeypatch.setattr(shutil, "copytree", flaky_copytree)
    make_team()
    original = tree(agent_home())
    with pytest.raises(OkstraError) as info:
        q.move_team(TEAM)
    assert "quarantine move" in info.value.how and "restore" in info.value.how
    assert tree(agent_home()) == original
    [entry] = q.list_trash()
    assert not (entry.dir / "teams" / TEAM).exists()
    assert not [p for p in entry.dir.rglob("*") if ".okstra-partial" in p.name]

    monkeypatch.setattr(shutil, "copytree", real_copytree)
    done = q.move_team(TEAM)
    assert done.stamp == entry.stamp and done.state == "moved"
    q.restore(done.stamp)
    assert tree(agent_home()) == original


def test_crash_after_restore_copy_then_restore_again(monkeypatch) -> None:
    monkeypatch.setattr(os, "rename", exdev)  # as across two file systems
    make_team()
    original = tree(agent_home())
    entry = q.move_team(TEAM)
    monkeypatch.setattr(fsio, "remove_tree", _crash)
    with pytest.raises(RuntimeError):
        q.restore(entry.stamp)
    assert q.load_entry(entry.stamp).state == "restoring"
    assert tree(agent_home() / "teams" / TEAM) == tree_of(original, "teams")

    monkeypatch.setattr(fsio, "remove_tree", REMOVE_TREE)
    assert {s.action for s in q.plan_restore(entry.stamp).steps} <= {"drop-leftover", "move"}
    q.restore(entry.stamp)
    assert tree(agent_home()) == original
    assert sorted(p.name for p in entry.dir.iterdir()) == ["manifest.json"]


def test_a_team_recreated_after_an_interrupted_move_goes_to_a_new_entry(monkeypatch) -> None:
    monkeypatch.setattr(os, "rename", exdev)  # as across two file systems
    monkeypatch.setattr(fsio, "remove_tree", _crash)
    make_team(tasks=False)
    with pytest.raises(RuntimeError):
        q.move_team(TEAM)

    monkeypatch.setattr(fsio, "remove_tree", REMOVE_TREE)
    # the agent wrote new state into the team after the copy: not a leftover, never dropped
    (agent_home() / "teams" / TEAM / "config.json").write_text('{"new": true}')
    [old] = q.list_trash()
    latest = q.move_team(TEAM)
    assert latest.stamp != old.stamp
    assert q.load_entry(old.stamp).state == "moved"
    assert (latest.dir / "teams" / TEAM / "config.json").read_text() == '{"new": true}'
    assert (old.dir / "teams" / TEAM / "config.json").read_bytes().startswith(b'{"name"')


# --------------------------------------------------------------------------- ownership


def _reserve(task, stage: int, run_id: str, *, age_hours: float = 0) -> None:
    row = new_row(stage, "reserved", run_id=run_id, impl_task_key=task.key)
    if age_hours:
        row.ts = format_ts(utc_now() - timedelta(hours=age_hours))
    append_row(plan_run_root(task).dir / "consumers.jsonl", row)


def test_a_team_owned_by_an_in_flight_run_is_not_offered_nor_moved(task, capsys) -> None:
    _reserve(task, 2, "20260610T120000Z-implementation-s2-abcd")
    _reserve(task, 3, "old-run", age_hours=100)  # stale: owns nothing
    s2, bare, s3, s4 = (team_name(task.project.id, task.ref, n) for n in (2, None, 3, 4))
    for name in (s2, bare, s3, s4):
        make_team(name)
    infos = {i.team: i for i in q.list_teams()}
    owned = infos[s2]
    assert owned.owned_by_run == "20260610T120000Z-implementation-s2-abcd" and not owned.offered
    assert owned.owner.task == "auth/login" and owned.owner.stage == 2
    assert infos[bare].owned_by_run == owned.owned_by_run  # any stage owns the bare name
    assert infos[s3].offered and infos[s3].stale_owner.run_id == "old-run"
    assert infos[s4].offered and infos[s4].owned_by_run is None

    before = everything()
    for action in (q.plan_move, q.move_team):
        with pytest.raises(OkstraError) as info:
            action(s2)
        assert "in flight" in info.value.what and "released" in info.value.how
    assert everything() == before
    code, _, err = call(capsys, "quarantine", "move", s2, "--yes")
    assert code == 2 and "in flight" in err and everything() == before

    doc = json.loads(call(capsys, "quarantine", "list", "--json")[1])
    by_team = {d["team"]: d for d in doc}
    assert by_team[s2]["owned_by_run"] == owned.owned_by_run
    assert by_team[s2]["offered"] is False
    assert by_team[s4]["owned_by_run"] is None

    # once released, the team is free
    append_row(plan_run_root(task).dir / "consumers.jsonl", new_row(2, "released", run_id=owned.owned_by_run))
    assert q.move_team(s2).state == "moved"


def test_the_run_that_holds_a_team_name_may_clear_its_leftover(task, capsys) -> None:
    """A lead of an explicit-teams run finds a leftover in the way of its own team: the
    prompt has it move the team as that run (`--run`); another run may not."""
    run = "20260610T120000Z-implementation-s2-abcd"
    _reserve(task, 2, run)
    s2 = team_name(task.project.id, task.ref, 2)
    make_team(s2)
    before = everything()
    code, _, err = call(capsys, "quarantine", "move", s2, "--run", "another-run", "--yes")
    assert code == 2 and f"belongs to run {run}" in err and everything() == before
    code, out, err = call(capsys, "quarantine", "move", s2, "--run", run, "--yes")
    assert code == 0, err
    assert f"quarantined {s2}" in out and not (agent_home() / "teams" / s2).exists()


# --------------------------------------------------------------------------- CLI


def test_cli_list_move_restore(capsys) -> None:
    make_team()
    original = tree(agent_home())
    code, out, _ = call(capsys, "quarantine", "list", "--json")
    assert code == 0
    [doc] = json.loads(out)
    assert doc["team"] == TEAM and doc["owned_by_run"] is None and doc["offered"] is True
    assert doc["paths"] == [str(agent_home() / "teams" / TEAM), str(agent_home() / "tasks" / TEAM)]
    code, out, _ = call(capsys, "quarantine", "list")
    assert code == 0 and f"okstra quarantine move {TEAM} --yes" in out

    code, out, _ = call(capsys, "quarantine", "move", TEAM, "--yes")
    assert code == 0 and "okstra quarantine restore" in out
    [entry] = q.list_trash()
    assert entry.stamp in out and not (agent_home() / "teams" / TEAM).exists()
    code, out, _ = call(capsys, "quarantine", "list")
    assert "no okstra-* team state" in out and entry.stamp in out

    code, out, _ = call(capsys, "quarantine", "restore", entry.stamp)
    assert code == 0 and f"restored {TEAM}" in out
    assert tree(agent_home()) == original
    code, _, err = call(capsys, "quarantine", "restore", entry.stamp)
    assert code == 2 and "already restored" in err


def test_cli_move_without_yes_and_without_a_terminal_moves_nothing(capsys, monkeypatch) -> None:
    make_team()
    before = everything()
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))  # not a TTY, even with a "y" waiting
    code, _out, err = call(capsys, "quarantine", "move", TEAM)
    assert code == 2 and "--yes" in err and "nothing moved" in err and "Traceback" not in err
    assert everything() == before


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_cli_move_asks_on_a_terminal(capsys, monkeypatch) -> None:
    make_team()
    before = everything()
    monkeypatch.setattr("sys.stdin", FakeTTY("\n"))
    code, out, _ = call(capsys, "quarantine", "move", TEAM)
    assert code == 0 and "nothing moved" in out and f"agent-home/teams/{TEAM} ->" in out
    assert everything() == before
    monkeypatch.setattr("sys.stdin", FakeTTY("y\n"))
    code, out, _ = call(capsys, "quarantine", "move", TEAM)
    assert code == 0 and "quarantined" in out and not (agent_home() / "teams" / TEAM).exists()


@pytest.mark.parametrize("name", ["../x", "/abs", "okstra-a/b", "other-team", "okstra-a-b/../../etc"])
def test_cli_refuses_hostile_names(name: str, capsys) -> None:
    make_team()
    before = everything()
    code, _, err = call(capsys, "quarantine", "move", name, "--yes")
    assert code == 2 and "invalid team name" in err and "fix:" in err
    assert everything() == before


def test_console_script_round_trip() -> None:
    make_team()
    original = tree(agent_home())
    code, out, err = run_cli("quarantine", "list", "--json")
    assert code == 0, err
    assert [d["team"] for d in json.loads(out)] == [TEAM]
    code, out, err = run_cli("quarantine", "move", TEAM, "--yes", "--json")
    assert code == 0, err
    entry = json.loads(out)
    assert entry["state"] == "moved" and entry["team"] == TEAM
    code, out, err = run_cli("quarantine", "restore", entry["stamp"])
    assert code == 0, err
    assert tree(agent_home()) == original
