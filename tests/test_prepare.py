"""`okstra prepare` on real repositories: stage selection, base commits, reservations,
the run folder, render-only, and the non-git / nested-worktree degrade."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from okstra_engine import registry
from okstra_engine.carry import CarrySidecar, write_carry
from okstra_engine.ledger import append_row, hostname, new_row, read_ledger
from okstra_engine.plans import import_plan, plan_run_root
from okstra_engine.prepare import PrepareOptions, prepare
from okstra_engine.projects import init_project
from okstra_engine.record import record
from okstra_engine.slugs import TaskRef
from okstra_engine.tasks import new_task
from okstra_engine.teams import team_name
from okstra_engine.worktrees import stage_target, task_target
from tests.support import call, commit, git, make_repo, run_cli, write_settings

TASK = "auth/login"


def _prep(capsys, repo: Path, *args: str, task: str = TASK) -> tuple[int, str, str]:
    return call(capsys, "--project", str(repo), "prepare", task, "--type", "implementation", *args)


def _prep_json(capsys, repo: Path, *args: str, task: str = TASK) -> dict:
    code, out, err = _prep(capsys, repo, "--json", *args, task=task)
    assert code == 0, err
    return json.loads(out)


def _rows(task) -> list[dict]:
    return [r.model_dump(exclude_none=True) for r in read_ledger(plan_run_root(task).dir / "consumers.jsonl").rows]


def _finish(task, stage: int, name: str | None = None) -> str:
    """Commit in the stage worktree and record the stage done there."""
    sha = commit(stage_target(task, stage).path, {name or f"stage{stage}.py": f"s = {stage}\n"}, f"stage {stage}")
    record(task, stage, "done", commit=sha)
    return sha


def _task_with(project, ref: str, stages: list[tuple[int, list[int]]], tmp_path: Path):
    doc = {"stages": [{"stage": n, "title": f"Stage {n}", "depends_on": deps} for n, deps in stages]}
    source = tmp_path / f"{ref.replace('/', '-')}.json"
    source.write_text(json.dumps(doc))
    task = new_task(project, TaskRef.parse(ref), title=f"Task {ref}")
    import_plan(task, source, approve=True)
    return task


# ---------------------------------------------------------------------------- the run


def test_first_run_makes_worktrees_reserves_and_writes_the_run(task, capsys) -> None:
    repo = task.project.root
    head = git(repo, "rev-parse", "HEAD")
    code, out, err = _prep(capsys, repo)
    assert code == 0, err
    lines = out.splitlines()
    run_dir = Path(lines[0].removeprefix("okstra run dir: "))
    s1 = stage_target(task, 1).path
    assert lines == [
        f"okstra run dir: {run_dir}",
        f"okstra prompt: {run_dir / 'prompt.md'}",
        "okstra stage: 1",
        f"okstra worktree: {s1} (created)",
        f"okstra next: start its agent: okstra launch {run_dir}",
    ]
    assert run_dir.parent == task.runs_dir and "-implementation-s1-" in run_dir.name
    assert not [p for p in task.runs_dir.iterdir() if p.name.startswith(".")]  # no staging left
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["stage"] == 1 and manifest["task_type"] == "implementation"
    assert manifest["worktree"] == {
        "path": str(s1),
        "branch": "okstra/feature/auth/login-s1",
        "base_ref": head,
        "status": "created",
        "note": None,
    }
    assert manifest["task_worktree"]["status"] == "created" and manifest["task_worktree"]["path"] == str(
        task_target(task).path
    )
    assert manifest["concurrentRun"] == {"detected": False, "activeStages": []}
    assert manifest["team"] == {"mode": "single-lead", "name": None}
    prompt = (run_dir / "prompt.md").read_text()
    for needed in ("auth/login", "stage 1", str(s1), "--status started", "--status done"):
        assert needed in prompt
    [row] = _rows(task)
    assert row["status"] == "reserved" and row["stage"] == 1 and row["run_id"] == manifest["run_id"]
    assert row["impl_task_key"] == "auth-login" and row["host"] == hostname()
    assert row["base_ref"] == head and row["branch"] == "okstra/feature/auth/login-s1"
    assert "pid" not in row  # a short-lived CLI prepare is not the agent
    assert registry.anchor(task_target(task).slot) == head


def test_json_is_the_manifest_with_stable_keys(task, capsys) -> None:
    doc = _prep_json(capsys, task.project.root)
    assert set(doc) >= {"run_id", "run_dir", "task_type", "stage", "worktree", "concurrentRun", "team"}
    assert set(doc["worktree"]) == {"path", "branch", "base_ref", "status", "note"}
    assert set(doc["concurrentRun"]) == {"detected", "activeStages"} and set(doc["team"]) == {"mode", "name"}
    assert doc == json.loads(Path(doc["run_dir"], "manifest.json").read_text())


# ---------------------------------------------------------------------------- base rules


def test_no_dependency_stage_starts_at_the_anchor_fixed_once(task, tmp_path: Path, capsys) -> None:
    project = task.project
    wide = _task_with(project, "auth/wide", [(1, []), (2, []), (3, [1])], tmp_path)
    first_head = git(project.root, "rev-parse", "HEAD")
    one = _prep_json(capsys, project.root, task="auth/wide")
    assert one["stage"] == 1 and one["worktree"]["base_ref"] == first_head
    # the project and the task worktree move on; the anchor does not
    commit(project.root, {"later.txt": "x"}, "main moves")
    commit(task_target(wide).path, {"merged.txt": "y"}, "task worktree moves")
    two = _prep_json(capsys, project.root, task="auth/wide")
    assert two["stage"] == 2 and two["worktree"]["base_ref"] == first_head
    assert git(stage_target(wide, 2).path, "rev-parse", "HEAD") == first_head


def test_one_dependency_starts_at_the_latest_done_commit(task, capsys) -> None:
    repo = task.project.root
    _prep(capsys, repo)
    first = _finish(task, 1)
    corrected = commit(stage_target(task, 1).path, {"fix.py": "1\n"}, "amended later")
    record(task, 1, "done", commit=corrected)  # a correction row: the latest done wins
    doc = _prep_json(capsys, repo)
    assert doc["stage"] == 2 and doc["worktree"]["base_ref"] == corrected != first
    assert git(stage_target(task, 2).path, "rev-parse", "HEAD") == corrected
    assert _rows(task)[-1]["base_ref"] == corrected


def test_one_dependency_whose_commit_vanished_is_refused(task, capsys) -> None:
    repo = task.project.root
    append_row(
        plan_run_root(task).dir / "consumers.jsonl",
        new_row(1, "done", head_commit="0" * 40, impl_task_key="auth-login"),
    )
    code, _, err = _prep(capsys, repo)
    assert code == 2 and "stage 1's done commit 00000000 is not in the repository" in err
    assert "okstra record auth/login --stage 1 --status done --commit" in err
    assert not stage_target(task, 2).path.exists()


def test_two_dependencies_need_both_merged_into_the_task_worktree(task, capsys) -> None:
    """Stage 4 (after 2 and 3) starts from the task worktree's HEAD: with 2 and 3 done but
    not merged there it is blocked, and the fix is their group's handoff."""
    repo = task.project.root
    _prep(capsys, repo)
    _finish(task, 1)
    _prep(capsys, repo)
    _prep(capsys, repo)
    _finish(task, 2), _finish(task, 3)
    task_wt = task_target(task).path
    runs_before = sorted(task.runs_dir.iterdir())
    code, _, err = _prep(capsys, repo)
    assert code == 2
    assert "no stage of auth/login is ready: stage 4 waits for the handoff of group(s) B" in err
    assert "okstra handoff auth/login --group B --merge" in err
    code, _, err = _prep(capsys, repo, "--stage", "4")
    assert code == 2
    assert "stage 4 starts from the task worktree, which lacks stage(s) 2, 3: done, not merged yet" in err
    assert "hand off group(s) B first, then rerun: okstra handoff auth/login --group B --merge" in err
    assert "git -C" not in err
    assert sorted(task.runs_dir.iterdir()) == runs_before and not stage_target(task, 4).path.exists()

    git(task_wt, "merge", "-q", "--no-edit", "okstra/feature/auth/login-s2")  # by hand: counts too
    code, _, err = _prep(capsys, repo, "--stage", "4")
    assert code == 2 and "which lacks stage(s) 3:" in err
    git(task_wt, "merge", "-q", "--no-edit", "okstra/feature/auth/login-s3")
    doc = _prep_json(capsys, repo)
    head = git(task_wt, "rev-parse", "HEAD")
    assert doc["stage"] == 4 and doc["worktree"]["base_ref"] == head
    assert git(stage_target(task, 4).path, "rev-parse", "HEAD") == head


def test_carry_sidecars_are_backfilled_before_selection(task, capsys) -> None:
    repo = task.project.root
    _prep(capsys, repo)
    sha = commit(stage_target(task, 1).path, {"a.py": "1\n"}, "stage 1")
    write_carry(plan_run_root(task).dir, CarrySidecar(stage=1, head_commit=sha, impl_task_key="auth-login"))
    code, out, err = _prep(capsys, repo)
    assert code == 0 and "okstra stage: 2" in out and "recovered from its carry sidecar" in err
    done = [r for r in _rows(task) if r["status"] == "done"]
    assert done == [{**done[0], "stage": 1, "head_commit": sha, "reason": "carry-backfill"}]


# ---------------------------------------------------------------------------- selection


def test_stage_n_refusals_say_why(task, capsys) -> None:
    repo = task.project.root
    code, _, err = _prep(capsys, repo, "--stage", "2")
    assert code == 2 and "stage 2 is blocked by stage(s) 1, not done yet" in err
    code, _, err = _prep(capsys, repo, "--stage", "9")
    assert code == 2 and "stage 9 is not in the Stage Map" in err
    code, _, err = _prep(capsys, repo, "--stage", "two")
    assert code == 2 and "neither 'auto' nor a stage number" in err

    run_id = _prep_json(capsys, repo, "--stage", "1")["run_id"]
    code, _, err = _prep(capsys, repo, "--stage", "1")
    assert code == 2 and f"stage 1 is in flight by run {run_id}" in err
    assert "okstra record auth/login --stage 1 --status released" in err

    _finish(task, 1)
    code, _, err = _prep(capsys, repo, "--stage", "1")
    assert code == 2 and "stage 1 is done already at" in err

    dead = subprocess.Popen(["true"])
    dead.wait()
    ledger = plan_run_root(task).dir / "consumers.jsonl"
    append_row(ledger, new_row(3, "reserved", run_id="run-dead", impl_task_key="auth-login", pid=dead.pid))
    code, _, err = _prep(capsys, repo, "--stage", "3")
    assert code == 2 and "stage 3 is held by a stale reservation (run run-dead" in err
    assert "release it first" in err and "okstra record auth/login --stage 3 --status released" in err
    assert "okstra stage: 2" in _prep(capsys, repo, "--stage", "2")[1]


def test_nothing_ready_lists_what_each_stage_waits_for_and_what_is_in_flight(task, capsys) -> None:
    repo = task.project.root
    run_id = _prep_json(capsys, repo)["run_id"]
    code, out, err = _prep(capsys, repo)
    assert code == 2 and out == ""
    assert "no stage of auth/login is ready" in err
    assert "stage 2 waits for 1; stage 3 waits for 1; stage 4 waits for 2, 3" in err
    assert f"in flight: 1 (run {run_id})" in err


def test_everything_done_points_to_final_verification(task, tmp_path: Path, capsys) -> None:
    one = _task_with(task.project, "auth/one", [(1, [])], tmp_path)
    _prep(capsys, task.project.root, task="auth/one")
    _finish(one, 1)
    code, _, err = _prep(capsys, task.project.root, task="auth/one")
    assert code == 2 and "every stage of auth/one is done" in err and "--type final-verification" in err


def test_released_stage_is_ready_again_and_its_worktree_reused(task, capsys) -> None:
    repo = task.project.root
    first = _prep_json(capsys, repo)
    record(task, 1, "released")
    again = _prep_json(capsys, repo)
    assert again["stage"] == 1 and again["worktree"]["status"] == "reused"
    assert again["worktree"]["base_ref"] == first["worktree"]["base_ref"]
    assert [r["status"] for r in _rows(task)] == ["reserved", "released", "reserved"]


def test_concurrent_stages_and_team_modes(task, capsys) -> None:
    """Explicit agent teams (an older Claude Code): the gate, and no team beside stages in
    flight."""
    write_settings(agent_teams="explicit")
    repo = task.project.root
    _prep(capsys, repo)
    _finish(task, 1)
    two = _prep_json(capsys, repo, "--workers", "claude,codex")
    assert two["team"] == {"mode": "gate", "name": team_name(task.project.id, task.ref, 2)}
    assert two["concurrentRun"] == {"detected": False, "activeStages": []}
    code, out, _ = _prep(capsys, repo, "--workers", "claude")
    assert code == 0 and out.splitlines()[-2] == "okstra concurrent-run stages: 2"
    three = json.loads(Path(out.splitlines()[0].removeprefix("okstra run dir: "), "manifest.json").read_text())
    assert three["stage"] == 3 and three["concurrentRun"] == {"detected": True, "activeStages": [2]}
    assert three["team"] == {"mode": "no-team", "name": None}
    code, _, err = _prep(capsys, repo, "--workers", "bard")
    assert code == 2 and "unknown worker" in err


# ---------------------------------------------------------------------------- render-only


def _snapshot(repo: Path, home: Path) -> dict[str, str]:
    files: dict[str, str] = {}
    for root in (repo, home):
        if not root.exists():
            files[str(root)] = "absent"
            continue
        for path in sorted(root.rglob("*")):
            if path.is_symlink():
                files[str(path)] = "link " + os.readlink(path)
            elif path.is_file():
                files[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                files[str(path)] = "dir"
    files["refs"] = git(repo, "for-each-ref")
    files["worktrees"] = git(repo, "worktree", "list", "--porcelain")
    return files


@pytest.mark.parametrize("after_a_run", [False, True])
def test_render_only_changes_nothing_on_disk(task, capsys, after_a_run: bool) -> None:
    repo = task.project.root
    home = Path(os.environ["OKSTRA_HOME"])
    if after_a_run:
        _prep(capsys, repo)
        _finish(task, 1)
    before = _snapshot(repo, home)
    code, out, err = _prep(capsys, repo, "--render-only")
    assert code == 0, err
    assert "okstra render-only: nothing was written" in out and "# okstra run" in out
    # nothing was made: what git would make is never said as made
    assert "(created)" not in out and "(recreated)" not in out
    assert out.count("(would be created)") == 2  # the summary line and the prompt
    assert f"okstra stage: {2 if after_a_run else 1}" in out
    code, out, _ = _prep(capsys, repo, "--render-only", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["render_only"] is True and "Implement stage" in doc["prompt_text"]
    assert not Path(doc["run_dir"]).exists()
    assert _snapshot(repo, home) == before
    # the manifest says nothing was made; `findings` (what a UI shows) leaves that out
    assert doc["worktree"]["note"] == "render only: not created" and "findings" not in doc["worktree"]
    prepared = prepare(task, PrepareOptions("implementation", render_only=True))
    assert prepared.manifest.worktree.note == "render only: not created" and prepared.manifest.worktree.findings is None


def test_render_only_reports_the_same_refusals(task, capsys) -> None:
    code, _, err = _prep(capsys, task.project.root, "--render-only", "--stage", "4")
    assert code == 2 and "blocked by stage(s) 2, 3" in err


# ---------------------------------------------------------------------------- degrade


def _plain_project(root: Path, plan_file: Path, *, git_repo: bool):
    if git_repo:
        make_repo(root)
    else:
        root.mkdir(parents=True)
    project, _ = init_project(root, qa_commands=["true"])
    task = new_task(project, TaskRef("auth", "login"), title="Login")
    import_plan(task, plan_file, approve=True)
    return task


def test_non_git_project_runs_without_worktrees(tmp_path: Path, plan_file: Path, capsys) -> None:
    task = _plain_project(tmp_path / "plain", plan_file, git_repo=False)
    root = task.project.root
    doc = _prep_json(capsys, root)
    assert doc["stage"] == 1
    assert doc["worktree"]["status"] == "skipped-non-git" and doc["worktree"]["path"] == str(root)
    assert doc["worktree"]["branch"] is None and "not a git repository" in doc["worktree"]["note"]
    assert doc["task_worktree"]["status"] == "skipped-non-git"
    [row] = _rows(task)
    assert row["status"] == "reserved" and "base_ref" not in row
    record(task, 1, "done")
    assert _prep_json(capsys, root)["stage"] == 2
    assert not (Path(os.environ["OKSTRA_HOME"]) / "worktrees").exists()


def test_project_root_that_is_a_linked_worktree_is_not_nested(tmp_path: Path, plan_file: Path, capsys) -> None:
    main = make_repo(tmp_path / "main")
    linked = tmp_path / "linked"
    git(main, "worktree", "add", "-q", "-b", "side", str(linked))
    project, _ = init_project(linked, qa_commands=["true"])
    task = new_task(project, TaskRef("auth", "login"), title="Login")
    import_plan(task, plan_file, approve=True)
    refs = git(main, "for-each-ref")
    doc = _prep_json(capsys, linked)
    head = git(linked, "rev-parse", "HEAD")
    assert doc["worktree"]["status"] == "skipped-nested-worktree" and doc["worktree"]["path"] == str(linked)
    assert doc["worktree"]["branch"] == "side" and doc["worktree"]["base_ref"] == head
    assert "linked git worktree" in doc["worktree"]["note"]
    assert git(main, "for-each-ref") == refs and _rows(task)[0]["base_ref"] == head


# ---------------------------------------------------------------------------- failures


def test_failed_stage_worktree_leaves_no_run_or_reservation(task, capsys) -> None:
    repo = task.project.root
    blocker = stage_target(task, 1).path
    blocker.mkdir(parents=True)
    (blocker / "keep.txt").write_text("someone's files")
    code, _, err = _prep(capsys, repo)
    assert code == 2 and "exists but is not okstra's worktree" in err
    assert not [p for p in task.runs_dir.iterdir() if "implementation" in p.name]
    assert _rows(task) == [] and "okstra/feature/auth/login-s1" not in git(repo, "branch")


def test_a_failure_after_the_stage_worktree_takes_it_back(task, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    import okstra_engine.prepare as prepare_module

    repo = task.project.root
    call(capsys, "--project", str(repo), "prepare", TASK, "--type", "planning")  # the task worktree exists already
    refs = git(repo, "for-each-ref")
    listed = git(repo, "worktree", "list", "--porcelain")

    def disk_full(path, row):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(prepare_module, "append_row", disk_full)
    code, _, err = _prep(capsys, repo)
    assert code == 2 and "No space left" in err  # the machine's state, not a bug: exit 2
    assert git(repo, "for-each-ref") == refs and git(repo, "worktree", "list", "--porcelain") == listed
    assert registry.get_worktree(stage_target(task, 1).slot, 1) is None and not stage_target(task, 1).path.exists()
    assert not [p for p in task.runs_dir.iterdir() if "implementation" in p.name]


def test_implementation_needs_qa_commands(repo: Path, plan_file: Path, capsys) -> None:
    project, _ = init_project(repo)
    task = new_task(project, TaskRef("auth", "login"), title="Login")
    import_plan(task, plan_file, approve=True)
    code, _, err = _prep(capsys, repo)
    assert code == 2 and "no QA commands" in err and "--qa-command" in err


def test_unregistered_project_registers_itself(task, capsys) -> None:
    repo = task.project.root
    (repo / ".okstra" / "project.json").unlink()
    code, _, err = _prep(capsys, repo)
    # registered again, but with no QA commands: the implementation gate says how to add one
    assert code == 2 and "no QA commands" in err and (repo / ".okstra" / "project.json").exists()


def test_prepare_inside_a_worktree_works_on_its_project(task, capsys) -> None:
    """Run from a stage worktree, prepare is the project's (stage 1 is in flight, so no
    stage is ready), and the worktree never becomes a project of its own."""
    _prep(capsys, task.project.root)
    inside = stage_target(task, 1).path
    code, _, err = run_cli("prepare", TASK, "--type", "implementation", cwd=inside)
    assert code == 2 and f"no stage of {TASK} is ready" in err and not (inside / ".okstra").exists()


def test_base_ref_picks_where_the_task_worktree_starts(task, capsys) -> None:
    repo = task.project.root
    old = git(repo, "rev-parse", "HEAD")
    commit(repo, {"new.txt": "n"}, "newer")
    doc = _prep_json(capsys, repo, "--base-ref", old[:10])
    assert doc["task_worktree"]["base_ref"] == old and doc["worktree"]["base_ref"] == old
    code, _, err = call(
        capsys, "--project", str(repo), "prepare", TASK, "--type", "improvement-discovery", "--base-ref", "HEAD"
    )
    assert code == 0 and "--base-ref HEAD ignored: the task worktree exists already" in err
    code, _, err = _prep(capsys, repo, "--base-ref", "no-such-ref")
    assert code == 2 and "names no commit" in err


def test_other_types_provision_the_task_worktree_only(task, capsys) -> None:
    repo = task.project.root
    code, out, err = call(capsys, "--project", str(repo), "prepare", TASK, "--type", "planning", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["task_type"] == "planning" and doc["stage"] is None
    assert doc["worktree"]["path"] == str(task_target(task).path) and doc["worktree"]["status"] == "created"
    assert Path(doc["run_dir"], "prompt.md").exists() and _rows(task) == []
    code, _, err = call(capsys, "--project", str(repo), "prepare", TASK, "--type", "planning", "--stage", "2")
    assert code == 2 and "--stage N goes with --type implementation" in err
    code, _, err = call(capsys, "--project", str(repo), "prepare", TASK, "--type", "nonsense")
    assert code == 2 and "unknown run type" in err


# ---------------------------------------------------------------------------- status


def test_status_reports_worktrees_and_not_merged(task, capsys) -> None:
    repo = task.project.root
    doc = json.loads(call(capsys, "--project", str(repo), "status", TASK, "--json")[1])
    assert doc["task_worktree"] is None and all(s["worktree"] is None for s in doc["stages"])
    _prep(capsys, repo)
    s1 = _finish(task, 1)
    doc = json.loads(call(capsys, "--project", str(repo), "status", TASK, "--json")[1])
    assert doc["task_worktree"] == str(task_target(task).path)
    stages = {s["stage"]: s for s in doc["stages"]}
    assert stages[1]["state"] == "not-merged" and stages[1]["done_commit"] == s1
    assert stages[1]["worktree"] == str(stage_target(task, 1).path) and stages[2]["worktree"] is None
    assert stages[2]["state"] == "ready" and stages[3]["state"] == "ready"  # not-merged counts as done
    git(task_target(task).path, "merge", "-q", "--no-edit", "okstra/feature/auth/login-s1")
    doc = json.loads(call(capsys, "--project", str(repo), "status", TASK, "--json")[1])
    assert doc["stages"][0]["state"] == "done"


def test_status_calls_a_missing_done_commit_not_merged(task, capsys) -> None:
    repo = task.project.root
    _prep(capsys, repo)
    append_row(plan_run_root(task).dir / "consumers.jsonl", new_row(1, "done", head_commit="f" * 40))
    doc = json.loads(call(capsys, "--project", str(repo), "status", TASK, "--json")[1])
    assert doc["stages"][0]["state"] == "not-merged"


def test_cli_prepare_that_exited_is_in_flight_not_stale(task) -> None:
    repo = task.project.root
    code, out, err = run_cli("--project", str(repo), "prepare", TASK, "--type", "implementation")
    assert code == 0, err
    code, out, _ = run_cli("--project", str(repo), "status", TASK, "--json")
    assert json.loads(out)["stages"][0]["state"] == "in-flight"
