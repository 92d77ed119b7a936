"""`okstra validate-run`: a run the simulated lead played passes; a broken run is exit 2
with each violation named (what, where, how)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from okstra_engine.carry import CarrySidecar, write_carry
from okstra_engine.ledger import append_row, new_row
from okstra_engine.plans import plan_run_root
from okstra_engine.prepare import PrepareOptions, prepare
from okstra_engine.record import record
from okstra_engine.validate_run import validate_run
from tests.support import PLAN_4, call, commit, git, write_settings

TASK = "auth/login"


def _prepared(task, task_type: str = "implementation", *, workers: tuple[str, ...] = (), stage: str = "auto") -> Path:
    prepared = prepare(task, PrepareOptions(task_type=task_type, workers=workers, stage=stage))
    return Path(prepared.manifest.run_dir)


def _sim(run_dir: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "okstra_engine.sim_lead", str(run_dir)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr


def _codes(run_dir: Path) -> list[str]:
    return [v.code for v in validate_run(run_dir).violations]


def _state(run_dir: Path) -> dict:
    return json.loads((run_dir / "team-state.json").read_text())


def _write_state(run_dir: Path, doc: dict) -> None:
    (run_dir / "team-state.json").write_text(json.dumps(doc))


@pytest.mark.parametrize(
    ("teams", "workers", "mode"),
    [
        ("explicit", ("claude",), "gate"),
        ("implicit", ("claude", "codex"), "implicit"),
        ("none", ("codex",), "background"),
        ("implicit", (), "single-lead"),
    ],
)
def test_a_run_the_simulated_lead_played_passes(task, capsys, teams: str, workers, mode: str) -> None:
    write_settings(agent_teams=teams)
    run_dir = _prepared(task, workers=workers)
    _sim(run_dir)
    assert _state(run_dir)["mode"] == mode
    code, out, err = call(capsys, "validate-run", str(run_dir))
    assert code == 0, out + err
    assert f"run {run_dir.name} (implementation, stage 1) did what its prompt asked" in out
    code, out, _ = call(capsys, "validate-run", str(run_dir), "--json")
    assert code == 0 and json.loads(out)["ok"] is True and json.loads(out)["violations"] == []


def test_beside_stages_in_flight_the_simulated_lead_passes(task) -> None:
    write_settings(agent_teams="explicit")
    _sim(_prepared(task))
    two = _prepared(task, workers=("claude",))
    three = _prepared(task, workers=("claude",))
    _sim(three)
    assert _state(three)["teamCreate"] == {
        "attempted": False,
        "status": "skipped",
        "reason": "concurrent-run",
        "concurrentStages": [2],
    }
    assert validate_run(three).ok
    _sim(two)
    assert validate_run(two).ok


def test_a_run_nobody_played_names_everything_missing(task, capsys) -> None:
    run_dir = _prepared(task)
    code, out, _ = call(capsys, "validate-run", str(run_dir))
    assert code == 2
    assert "breaks its prompt's contract in 4 places" in out
    for code_, where in (
        ("team-state.missing", run_dir / "team-state.json"),
        ("output.missing", run_dir / "report.md"),
        ("ledger.started", plan_run_root(task).dir / "consumers.jsonl"),
        ("ledger.done", plan_run_root(task).dir / "consumers.jsonl"),
    ):
        assert f"  {code_}: " in out and f"in: {where}" in out
    assert "fix: okstra record auth/login --stage 1 --run" in out
    doc = json.loads(call(capsys, "validate-run", str(run_dir), "--json")[1])
    assert doc["ok"] is False and [v["code"] for v in doc["violations"]] == [
        "team-state.missing",
        "output.missing",
        "ledger.started",
        "ledger.done",
    ]
    assert all(set(v) == {"code", "what", "where", "how"} for v in doc["violations"])


def test_team_state_against_its_schema_and_its_run(task) -> None:
    write_settings(agent_teams="implicit")
    run_dir = _prepared(task, workers=("claude",))
    _sim(run_dir)
    good = _state(run_dir)
    (run_dir / "team-state.json").write_text("{not json")
    assert _codes(run_dir) == ["team-state.invalid"]
    _write_state(run_dir, {**good, "teamname": "x"})  # a misspelt key
    [violation] = validate_run(run_dir).violations
    assert violation.code == "team-state.invalid" and "teamname" in violation.what
    _write_state(run_dir, {**good, "runId": "another-run", "teams": "explicit", "mode": "gate"})
    assert _codes(run_dir) == ["team-state.run", "team-state.teams", "team-state.mode"]


def test_implicit_teams_have_nothing_to_create(task) -> None:
    write_settings(agent_teams="implicit")
    run_dir = _prepared(task, workers=("claude",))
    _sim(run_dir)
    good = _state(run_dir)
    _write_state(run_dir, {**good, "teamCreate": {"attempted": True, "status": "ok"}})
    [violation] = validate_run(run_dir).violations
    assert violation.code == "team-state.contract" and "nothing to create" in violation.what
    _write_state(run_dir, {**good, "teamName": "okstra-auth-login"})
    assert "is not a session's team" in validate_run(run_dir).violations[0].what
    # the session okstra's hooks recorded decides the name
    (run_dir / "agent-events.jsonl").write_text(
        json.dumps({"event": "SessionStart", "session_id": "0f1e2d3c-aaaa-bbbb-cccc-000000000000"}) + "\n"
    )
    _write_state(run_dir, {**good, "teamName": "session-12345678"})
    assert "is no session's team" in validate_run(run_dir).violations[0].what
    _write_state(run_dir, {**good, "teamName": "session-0f1e2d3c"})
    assert validate_run(run_dir).ok


def test_the_gate_and_the_no_team_block(task) -> None:
    write_settings(agent_teams="explicit")
    run_dir = _prepared(task, workers=("claude",))
    _sim(run_dir)
    good = _state(run_dir)
    assert good["teamCreate"]["status"] == "error"  # the simulated lead has no team tools
    _write_state(run_dir, {**good, "teamCreate": {"attempted": True, "status": "error"}})
    assert "with no error message" in validate_run(run_dir).violations[0].what
    _write_state(run_dir, {**good, "teamName": "okstra-someone-else"})
    assert "not 'okstra-auth-login-" in validate_run(run_dir).violations[0].what
    _write_state(run_dir, {k: v for k, v in good.items() if k != "teamCreate"})
    assert "the gate needs teamCreate" in validate_run(run_dir).violations[0].what
    _prepared(task, workers=("claude",))  # stage 2, in flight
    three = _prepared(task, workers=("claude",))
    _sim(three)
    no_team = _state(three)
    assert no_team["mode"] == "no-team" and validate_run(three).ok
    _write_state(three, {**no_team, "teamCreate": {**no_team["teamCreate"], "concurrentStages": [4]}})
    assert "reason: concurrent-run, concurrentStages: [2]" in validate_run(three).violations[0].what
    _write_state(three, {**no_team, "teamName": "okstra-x"})
    assert "this run creates no team" in validate_run(three).violations[0].what


def test_background_workers_leave_their_results(task) -> None:
    write_settings(agent_teams="none")
    run_dir = _prepared(task, workers=("codex",))
    _sim(run_dir)
    good = _state(run_dir)
    result = run_dir / "workers" / "codex.md"
    _write_state(run_dir, {**good, "workers": [{"name": "codex", "kind": "codex", "result": str(result)}]})
    [violation] = validate_run(run_dir).violations
    assert violation.code == "team-state.worker" and "was not written" in violation.what
    result.parent.mkdir()
    result.write_text("done\n")
    assert validate_run(run_dir).ok
    _write_state(run_dir, {**good, "workers": [{"name": "codex", "kind": "codex", "result": "/tmp/elsewhere.md"}]})
    assert "is not in" in validate_run(run_dir).violations[0].what


def test_the_ledger_and_the_carry_sidecar(task) -> None:
    run_dir = _prepared(task)
    _sim(run_dir)
    plan = plan_run_root(task).dir
    sidecar = json.loads((plan / "carry" / "stage-1.json").read_text())
    done = sidecar["head_commit"]
    write_carry(plan, CarrySidecar(**{**sidecar, "head_commit": done[:10]}))
    [violation] = validate_run(run_dir).violations
    assert violation.code == "ledger.carry" and f"says {done[:10]}, the done row {done}" in violation.what
    assert violation.where == str(plan / "carry" / "stage-1.json")
    (plan / "carry" / "stage-1.json").unlink()
    assert _codes(run_dir) == ["ledger.carry"]
    write_carry(plan, CarrySidecar(**sidecar))
    # a done row at a commit off the stage's branch (record refuses one; the ledger is a file)
    elsewhere = commit(task.project.root, {"elsewhere.txt": "x\n"}, "not the stage's work")
    append_row(plan / "consumers.jsonl", new_row(1, "done", run_id=run_dir.name, head_commit=elsewhere))
    codes = _codes(run_dir)
    assert "ledger.commit" in codes and "ledger.carry" in codes


def test_started_must_come_before_done(task) -> None:
    run_dir = _prepared(task)
    _sim(run_dir)
    record(task, 1, "reopened", reason="again")
    record(task, 1, "started", run_id=run_dir.name)
    wt = Path(json.loads((run_dir / "manifest.json").read_text())["worktree"]["path"])
    sha = commit(wt, {"more.txt": "x\n"}, "more")
    record(task, 1, "done", commit=sha, run_id=run_dir.name)
    assert _codes(run_dir) == ["ledger.carry"]  # the sidecar names the first done


def test_phase_outputs(task, tmp_path: Path) -> None:
    planning = _prepared(task, "planning")
    assert _codes(planning) == ["team-state.missing", "output.missing"]
    (planning / "plan.md").write_text("# a plan without its table\n")
    what = [v.what for v in validate_run(planning).violations]
    assert "the plan has no front matter with approved: false" in what
    assert any("Stage Map cannot be read" in w for w in what)
    (planning / "plan.md").write_text(PLAN_4.replace("title: four stages", "approved: false"))
    _write_state(planning, {"v": 1, "runId": planning.name, "teams": "implicit", "mode": "single-lead"})
    assert validate_run(planning).ok


def test_final_verification_starts_with_its_verdict(task, tmp_path: Path) -> None:
    from okstra_engine.plans import import_plan
    from okstra_engine.tasks import new_task

    plan = tmp_path / "one.md"
    plan.write_text(PLAN_4.split("| 2 ")[0])  # stage 1 only
    one = new_task(task.project, task.ref.__class__("auth", "one"), title="One stage")
    import_plan(one, plan, approve=True)
    stage_run = _prepared(one)
    _sim(stage_run)
    task_wt = Path(json.loads((stage_run / "manifest.json").read_text())["task_worktree"]["path"])
    git(task_wt, "merge", "-q", "--no-edit", "okstra/feature/auth/one-s1")
    run_dir = _prepared(one, "final-verification")
    _write_state(run_dir, {"v": 1, "runId": run_dir.name, "teams": "implicit", "mode": "single-lead"})
    (run_dir / "verification.md").write_text("Looks fine to me.\n")
    [violation] = validate_run(run_dir).violations
    assert violation.code == "output.verdict" and "'Looks fine to me.'" in violation.what
    (run_dir / "verification.md").write_text("**PASS**: every stage holds\n")
    assert validate_run(run_dir).ok


def test_not_a_run_folder_is_exit_2(tmp_path: Path, capsys) -> None:
    code, _, err = call(capsys, "validate-run", str(tmp_path))
    assert code == 2 and "is not a prepared run" in err
