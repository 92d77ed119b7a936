"""Every phase through `prepare`: final-verification gates, QA waivers, planning and the
single-lead phases, a squash-merged predecessor, and a whole task run by the simulated lead."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from okstra_engine.conformance import set_waiver, waivers
from okstra_engine.ledger import read_ledger
from okstra_engine.ledger_state import LedgerState
from okstra_engine.plans import plan_run_root
from okstra_engine.teams import team_name
from okstra_engine.worktrees import stage_target, task_target
from tests.support import a_verification, call, commit, git, write_settings
from tests.test_prepare import _finish, _prep, _prep_json, _rows

TASK = "auth/login"


def _fv(capsys, repo: Path, *args: str) -> tuple[int, str, str]:
    return call(capsys, "--project", str(repo), "prepare", TASK, "--type", "final-verification", *args)


def _all_done_and_merged(task, capsys) -> Path:
    repo = task.project.root
    _prep(capsys, repo)
    _finish(task, 1)
    _prep(capsys, repo)
    _prep(capsys, repo)
    _finish(task, 2)
    _finish(task, 3)
    task_wt = task_target(task).path
    git(task_wt, "merge", "-q", "--no-edit", "okstra/feature/auth/login-s2", "okstra/feature/auth/login-s3")
    _prep(capsys, repo)
    _finish(task, 4)
    git(task_wt, "merge", "-q", "--no-edit", "okstra/feature/auth/login-s4")
    return task_wt


def test_final_verification_whole_task_gates_each_condition(task, capsys) -> None:
    repo = task.project.root
    _prep(capsys, repo)
    code, _, err = _fv(capsys, repo)
    assert code == 2 and "stage(s) 1, 2, 3, 4 are not" in err
    task_wt = _all_done_and_merged(task, capsys)

    (task_wt / "stray.txt").write_text("x")
    code, _, err = _fv(capsys, repo)
    assert code == 2 and "uncommitted changes: stray.txt" in err
    (task_wt / "stray.txt").unlink()

    # .okstra and the project's cleanGateExcludes do not count as dirty
    (task_wt / ".okstra").mkdir(exist_ok=True)
    (task_wt / ".okstra" / "note").write_text("x")
    cfg = repo / ".okstra" / "project.json"
    doc = json.loads(cfg.read_text())
    doc["cleanGateExcludes"] = ["build"]
    cfg.write_text(json.dumps(doc))
    (task_wt / "build").mkdir()
    (task_wt / "build" / "out.o").write_text("x")
    code, out, err = _fv(capsys, repo, "--json")
    assert code == 0, err
    manifest = json.loads(out)
    assert manifest["task_type"] == "final-verification" and manifest["stage"] is None
    assert manifest["worktree"]["path"] == str(task_wt)
    assert "the whole task" in Path(manifest["prompt"]).read_text()


def test_final_verification_refuses_an_unmerged_stage(task, capsys) -> None:
    repo = task.project.root
    task_wt = _all_done_and_merged(task, capsys)
    git(task_wt, "reset", "-q", "--hard", "HEAD~1")  # un-merge stage 4
    code, _, err = _fv(capsys, repo)
    assert code == 2 and "stage 4 (" in err and "not (task HEAD" in err and "okstra handoff" in err


def test_final_verification_of_one_stage_reuses_its_worktree(task, capsys) -> None:
    repo = task.project.root
    _prep(capsys, repo)
    code, _, err = _fv(capsys, repo, "--stage", "1")
    assert code == 2 and "stage 1 of auth/login is not done" in err
    sha = _finish(task, 1)
    stage_wt = stage_target(task, 1).path
    (stage_wt / "wip.py").write_text("x")
    code, _, err = _fv(capsys, repo, "--stage", "1")
    assert code == 2 and "stage 1's worktree" in err and "wip.py" in err
    (stage_wt / "wip.py").unlink()
    code, out, err = _fv(capsys, repo, "--stage", "1", "--json")
    assert code == 0, err
    manifest = json.loads(out)
    assert manifest["stage"] == 1 and manifest["worktree"]["status"] == "reused-stage"
    assert manifest["worktree"]["path"] == str(stage_wt) and sha[:8] in manifest["worktree"]["note"]
    assert [r["status"] for r in _rows(task) if r["stage"] == 1] == ["reserved", "done"]  # verifying reserves nothing


def test_final_verification_of_a_stage_whose_worktree_is_gone(task, capsys) -> None:
    repo = task.project.root
    _prep(capsys, repo)
    _finish(task, 1)
    git(repo, "worktree", "remove", "--force", str(stage_target(task, 1).path))
    code, _, err = _fv(capsys, repo, "--stage", "1")
    assert code == 2 and "does not exist" in err


def test_a_new_run_clears_a_stale_waiver_unless_rewaived(task, capsys) -> None:
    repo = task.project.root
    set_waiver(task.dir, "login-stage-1", "left by an earlier run")
    set_waiver(task.dir, "login-stage-2", "for later")
    code, _, err = _prep(capsys, repo)
    assert code == 0 and "stale QA waiver on login-stage-1 cleared" in err
    assert set(waivers(task.dir)) == {"login-stage-2"}
    _finish(task, 1)
    code, _, err = _prep(capsys, repo, "--qa-waiver", "login-stage-2=upstream API down, checked by hand")
    assert code == 0 and "cleared" not in err
    assert waivers(task.dir)["login-stage-2"].reason == "upstream API down, checked by hand"
    code, _, err = _prep(capsys, repo, "--qa-waiver", "nonsense")
    assert code == 2 and "STAGEKEY=REASON" in err


def test_render_only_leaves_waivers_alone(task, capsys) -> None:
    set_waiver(task.dir, "login-stage-1", "keep")
    code, _, _ = _prep(capsys, task.project.root, "--render-only")
    assert code == 0 and "login-stage-1" in waivers(task.dir)


def test_squash_merged_predecessor_is_accepted_and_corrected(task, capsys) -> None:
    repo = task.project.root
    _prep(capsys, repo)
    _finish(task, 1)
    _prep(capsys, repo)
    _prep(capsys, repo)
    commit(stage_target(task, 2).path, {"importer.py": "one\n"}, "stage 2, first half")
    s2 = _finish(task, 2)  # two commits: a squash of them matches neither alone
    _finish(task, 3)
    task_wt = task_target(task).path
    git(task_wt, "merge", "-q", "--no-edit", "okstra/feature/auth/login-s1")
    git(task_wt, "merge", "--squash", "-q", "okstra/feature/auth/login-s2")
    git(task_wt, "commit", "-q", "-m", "squash stage 2")
    squash = git(task_wt, "rev-parse", "HEAD")
    git(task_wt, "merge", "-q", "--no-edit", "okstra/feature/auth/login-s3")
    code, out, err = _prep(capsys, repo)
    assert code == 0, err
    assert "okstra stage: 4" in out
    assert f"git-reconcile: stage 2 done commit {s2[:8]} -> {squash[:8]} (squash-equivalent)" in err
    row = LedgerState.of(read_ledger(plan_run_root(task).dir / "consumers.jsonl").rows).done_rows()[2]
    assert (row.head_commit, row.replaces, row.reason) == (squash, s2, "auto-squash")


def test_planning_and_single_lead_phases(task, capsys) -> None:
    repo = task.project.root
    code, out, err = call(
        capsys, "--project", str(repo), "prepare", TASK, "--type", "planning", "--workers", "claude,codex", "--json"
    )
    assert code == 0, err
    manifest = json.loads(out)
    # no `claude` here: the prompt is written for a current Claude Code, and says so
    assert manifest["team"] == {"mode": "implicit", "name": None}
    assert manifest["agent"] == {"name": "claude", "version": None, "teams": "implicit"}
    assert "'claude' is not installed or not on PATH" in err and "agent_teams" in err
    prompt = Path(manifest["prompt"]).read_text()
    assert f"{manifest['run_dir']}/plan.md" in prompt and "## Stage Map" in prompt
    assert "TeamCreate` and `TeamDelete` tools no longer exist" in prompt
    write_settings(agent_teams="explicit")
    code, out, err = call(
        capsys, "--project", str(repo), "prepare", TASK, "--type", "planning", "--workers", "claude", "--json"
    )
    manifest = json.loads(out)
    assert manifest["team"] == {"mode": "gate", "name": team_name(task.project.id, task.ref)}
    assert manifest["agent"] == {"name": "claude", "version": None, "teams": "explicit"}
    assert "agent_teams" not in err  # the person said which: nothing to assume
    a_verification(task)  # release handoff comes after a passed final verification
    code, out, _ = call(
        capsys, "--project", str(repo), "prepare", TASK, "--type", "release-handoff", "--workers", "claude", "--json"
    )
    assert json.loads(out)["team"] == {"mode": "single-lead", "name": None}
    code, out, _ = call(capsys, "--project", str(repo), "prepare", TASK, "--type", "improvement-discovery", "--json")
    assert json.loads(out)["team"]["mode"] == "single-lead"


def _sim(run_dir: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "okstra_engine.sim_lead", run_dir],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_whole_task_run_by_the_simulated_lead(task, capsys) -> None:
    """1; 2←1; 3←1; 4←2,3 — with stages 2 and 3 running at the same time."""
    repo = task.project.root
    first = _prep_json(capsys, repo)
    assert _sim(first["run_dir"]).wait() == 0
    second, third = _prep_json(capsys, repo), _prep_json(capsys, repo)
    assert (second["stage"], third["stage"]) == (2, 3)
    assert third["concurrentRun"] == {"detected": True, "activeStages": [2]} and third["team"]["mode"] in (
        "no-team",
        "single-lead",
    )
    leads = [_sim(second["run_dir"]), _sim(third["run_dir"])]
    assert [lead.wait() for lead in leads] == [0, 0], [lead.stderr.read() for lead in leads]
    status = json.loads(call(capsys, "--project", str(repo), "status", TASK, "--json")[1])
    # 4 starts from the task worktree, where 2 and 3 are not merged yet: it waits for them
    assert [s["state"] for s in status["stages"]] == ["not-merged", "not-merged", "not-merged", "blocked"]
    assert status["stages"][3]["reason"] == {"code": "needs-handoff", "stages": [2, 3], "groups": ["B"]}
    task_wt = task_target(task).path
    git(
        task_wt,
        "merge",
        "-q",
        "--no-edit",
        "okstra/feature/auth/login-s1",
        "okstra/feature/auth/login-s2",
        "okstra/feature/auth/login-s3",
    )
    fourth = _prep_json(capsys, repo)
    assert fourth["stage"] == 4 and fourth["worktree"]["base_ref"] == git(task_wt, "rev-parse", "HEAD")
    assert _sim(fourth["run_dir"]).wait() == 0
    assert (stage_target(task, 4).path / "sim" / "stage-2.md").exists()  # built on its predecessors
    git(task_wt, "merge", "-q", "--no-edit", "okstra/feature/auth/login-s4")
    status = json.loads(call(capsys, "--project", str(repo), "status", TASK, "--json")[1])
    assert [s["state"] for s in status["stages"]] == ["done"] * 4
    carry = plan_run_root(task).dir / "carry"
    assert sorted(p.name for p in carry.iterdir()) == [f"stage-{n}.json" for n in (1, 2, 3, 4)]
    done = LedgerState.of(read_ledger(plan_run_root(task).dir / "consumers.jsonl").rows).done_rows()
    assert all(done[n].patch_ids and done[n].base_ref for n in (1, 2, 3, 4))  # fingerprinted at done time
    code, out, err = _fv(capsys, repo, "--json")
    assert code == 0, err
    verify = json.loads(out)
    assert _sim(verify["run_dir"]).wait() == 0
    assert Path(verify["run_dir"], "verification.md").read_text().startswith("PASS")
    code, out, err = call(capsys, "--project", str(repo), "prepare", TASK, "--type", "release-handoff", "--json")
    assert code == 0, err  # after a passed final verification, release handoff may start
    release = json.loads(out)
    assert _sim(release["run_dir"]).wait() == 0
    # every run did what its prompt asked
    for run in (first, second, third, fourth, verify, release):
        code, out, err = call(capsys, "validate-run", run["run_dir"])
        assert code == 0, out + err


def test_the_simulated_lead_plans_and_verifies_truly(repo: Path, capsys) -> None:
    """Its plan is one okstra can approve; its verdict passes a done stage and fails a task
    whose stages are not done and merged."""
    from okstra_engine.plans import approve_plan
    from okstra_engine.projects import init_project
    from okstra_engine.sim_lead import _verdict
    from okstra_engine.slugs import TaskRef
    from okstra_engine.tasks import new_task

    project, _ = init_project(repo, qa_commands=["true"])
    task = new_task(project, TaskRef("auth", "login"), title="Login | flow")
    code, out, err = call(capsys, "--project", str(repo), "prepare", TASK, "--type", "planning", "--json")
    assert code == 0, err
    planning = json.loads(out)
    assert _sim(planning["run_dir"]).wait() == 0
    code, out, err = call(capsys, "validate-run", planning["run_dir"])
    assert code == 0, out + err
    approve_plan(task)
    assert [s.title for s in plan_run_root(task).stage_map().stages] == ["Groundwork", "Login / flow"]
    first = _prep_json(capsys, repo)
    assert _sim(first["run_dir"]).wait() == 0  # done, not merged into the task branch yet
    code, out, err = _fv(capsys, repo, "--stage", "1", "--json")
    assert code == 0, err
    verify = json.loads(out)
    assert _sim(verify["run_dir"]).wait() == 0
    assert Path(verify["run_dir"], "verification.md").read_text().startswith("PASS")
    code, out, err = call(capsys, "validate-run", verify["run_dir"])
    assert code == 0, out + err
    assert _verdict(task, None) == "FAIL\n\nNot done and merged: stages 1, 2.\n"
