"""Which plan is current (the task's pointer, only planning runs), and re-planning a task
in progress: refused unless `--replace`, which keeps the old plan's run and ledger as
they are and starts the new plan with a ledger of its own."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from okstra_engine import clock, gates
from okstra_engine.errors import OkstraError
from okstra_engine.ledger import LEDGER_NAME
from okstra_engine.plans import POINTER_NAME, approve_plan, import_plan, plan_run_root
from okstra_engine.prepare import PrepareOptions, prepare
from okstra_engine.refusals import RefusedError
from okstra_engine.slugs import TaskRef
from okstra_engine.stage_view import StageState
from okstra_engine.status import task_status
from okstra_engine.tasks import new_task
from tests.support import call
from tests.test_prepare import _finish
from tests.test_refusals import refused_by_prepare

TASK = "auth/login"
SECOND = datetime(2026, 6, 10, 12, 0, 0, tzinfo=UTC)

PLAN_2 = """---
title: two stages, again
---
# Plan, again

## Stage Map
| Stage | Title   | Depends on | Group |
|-------|---------|------------|-------|
| 1     | Redo    | -          | A     |
| 2     | Polish  | -          | A     |
"""
APPROVED_BY_HAND = PLAN_2.replace("---\ntitle", "---\napproved: true\ntitle")
"""A plan.md someone (or an agent) marked approved without `okstra plan approve`."""


def _cli(capsys, task, *args: str) -> tuple[int, str, str]:
    return call(capsys, "--project", str(task.project.root), *args)


def _new_plan(tmp_path: Path) -> Path:
    path = tmp_path / "again.md"
    path.write_text(PLAN_2)
    return path


def _planning_runs(task) -> list[str]:
    return sorted(p.name for p in task.runs_dir.iterdir() if "-planning-" in p.name)


def _in_progress(task) -> None:
    """Stage 1 done, stage 2 in flight — its agent gone (stale): a plan cannot be replaced
    under a live agent's feet, its worktree is set aside."""
    import subprocess

    prepare(task, PrepareOptions("implementation"))
    _finish(task, 1)
    gone = subprocess.Popen(["true"])
    gone.wait()
    prepare(task, PrepareOptions("implementation", stage="2", pid=gone.pid))


# ---------------------------------------------------------------------------- which plan is current


def test_two_plans_imported_in_the_same_second_the_one_approved_last_is_current(task, plan_file, tmp_path) -> None:
    fresh = new_task(task.project, TaskRef.parse("auth/twice"), title="Twice")
    # the second plan's run folder sorts before the first's: same second, smaller random tail
    with clock.pinned(stamps=SECOND, time=SECOND, token="ff0000"):
        first = import_plan(fresh, plan_file, approve=True)
    with clock.pinned(stamps=SECOND, time=SECOND, token="000000"):
        second = import_plan(fresh, _new_plan(tmp_path), approve=True)
    assert second.dir.name < first.dir.name
    assert plan_run_root(fresh).dir == second.dir
    pointer = json.loads((fresh.dir / POINTER_NAME).read_text())
    assert pointer["run"] == second.dir.name and pointer["approved_at"] == "2026-06-10T12:00:00Z"
    assert [r["run"] for r in pointer["replaced"]] == [first.dir.name]
    assert [s.title for s in task_status(fresh).stage_map.stages] == ["Redo", "Polish"]
    # approving the first again (nothing started) makes it current
    assert approve_plan(fresh, run=first.dir.name) == (plan_run_root(fresh), True)
    assert plan_run_root(fresh).dir == first.dir

    # two drafts of the same second: which one `plan approve` means is not guessed
    drafts = new_task(task.project, TaskRef.parse("auth/drafts"), title="Drafts")
    for token in ("aa0000", "bb0000"):
        with clock.pinned(stamps=SECOND, token=token):
            import_plan(drafts, plan_file)
    with pytest.raises(OkstraError, match="made in the same second") as caught:
        approve_plan(drafts)
    assert "--run RUN_ID" in caught.value.how
    assert plan_run_root(drafts) is None


def test_a_stray_plan_md_outside_a_planning_run_is_not_the_plan(task) -> None:
    plan = plan_run_root(task)
    with clock.pinned(stamps=datetime(2099, 1, 1, tzinfo=UTC)):  # a later run than the plan's
        prepared = prepare(task, PrepareOptions("implementation"))
    stray = Path(prepared.manifest.run_dir)
    (stray / "plan.md").write_text(APPROVED_BY_HAND)
    bare = task.runs_dir / "99991231T235959Z-notes"
    bare.mkdir()
    (bare / "plan.md").write_text(APPROVED_BY_HAND)
    assert plan.dir.name < stray.name < bare.name  # the old rule (folder-name sort) took a stray one
    assert plan_run_root(task).dir == plan.dir
    # without the pointer too: only planning runs are candidates
    (task.dir / POINTER_NAME).unlink()
    assert plan_run_root(task).dir == plan.dir
    assert [s.stage for s in task_status(task).stages] == [1, 2, 3, 4]


def test_a_task_without_a_pointer_keeps_its_plan_and_the_next_prepare_records_it(task, tmp_path, capsys) -> None:
    plan = plan_run_root(task)
    pointer = task.dir / POINTER_NAME
    pointer.unlink()  # a task planned before pointers existed
    code, out, _ = _cli(capsys, task, "status", TASK, "--json")
    assert code == 0 and json.loads(out)["plan_run"] == str(plan.dir)
    assert not pointer.exists()  # status never writes
    prepare(task, PrepareOptions("implementation"))
    assert json.loads(pointer.read_text())["run"] == plan.dir.name
    # a plan an agent writes as approved later does not become current by itself
    with clock.pinned(stamps=datetime(2099, 1, 1, tzinfo=UTC)):  # a later run than the plan's
        code, out, err = _cli(capsys, task, "prepare", TASK, "--type", "planning", "--replace", "--json")
    assert code == 0, err
    later = Path(json.loads(out)["run_dir"])
    (later / "plan.md").write_text(APPROVED_BY_HAND)
    assert later.name > plan.dir.name and plan_run_root(task).dir == plan.dir


def test_without_a_pointer_the_plan_approved_last_is_current(task, plan_file, tmp_path) -> None:
    fresh = new_task(task.project, TaskRef.parse("auth/old"), title="Planned before pointers")
    with clock.pinned(stamps=SECOND, time=SECOND.replace(minute=30), token="000000"):
        last = import_plan(fresh, plan_file, approve=True)
    with clock.pinned(stamps=SECOND, time=SECOND.replace(minute=10), token="ff0000"):
        first = import_plan(fresh, _new_plan(tmp_path), approve=True)
    assert first.dir.name > last.dir.name  # the folder sort would take `first`
    (fresh.dir / POINTER_NAME).unlink(missing_ok=True)  # planned before pointers
    assert plan_run_root(fresh).dir == last.dir  # by the approval time each plan.md records


@pytest.mark.parametrize(
    ("tamper", "said"),
    [
        ("outside", "which is not a folder of the task's runs"),
        ("absolute", "which is not a folder of the task's runs"),
        ("symlinked run", "a symbolic link"),
        ("implementation run", "which is not a planning run (its manifest says 'implementation')"),
        ("missing run", "which is not in"),
        ("symlinked pointer", "is a symbolic link; okstra does not follow it"),
        ("bad json", "current-plan.json"),
    ],
)
def test_a_tampered_pointer_is_refused_clearly_and_never_followed(task, tmp_path, capsys, tamper, said) -> None:
    pointer = task.dir / POINTER_NAME
    good = {"v": 1, "run": plan_run_root(task).dir.name, "approved_at": "2026-06-10T12:00:00Z"}
    # a planning run of another task, with a plan of its own: following a link there would "work"
    other = new_task(task.project, TaskRef.parse("auth/other"), title="Other")
    elsewhere = import_plan(other, _new_plan(tmp_path), approve=True).dir
    if tamper == "outside":
        good["run"] = f"../../other/runs/{elsewhere.name}"
    elif tamper == "absolute":
        good["run"] = str(elsewhere)
    elif tamper == "symlinked run":
        (task.runs_dir / "linked").symlink_to(elsewhere)
        good["run"] = "linked"
    elif tamper == "implementation run":
        good["run"] = Path(prepare(task, PrepareOptions("implementation")).manifest.run_dir).name
    elif tamper == "missing run":
        good["run"] = "20260101T000000Z-planning-000000"
    if tamper == "symlinked pointer":
        target = tmp_path / "pointer.json"
        target.write_text(json.dumps({**good, "run": elsewhere.name}))
        pointer.unlink(missing_ok=True)
        pointer.symlink_to(target)
    elif tamper == "bad json":
        pointer.write_text("{not json")
    else:
        pointer.write_text(json.dumps(good))
    for args in (("status", TASK), ("status", TASK, "--json"), ("prepare", TASK, "--type", "implementation")):
        code, out, err = _cli(capsys, task, *args)
        assert code == 2 and out == "", (args, err)
        assert said in err and "fix: restore" in err and "Traceback" not in err, err
    assert not (elsewhere / LEDGER_NAME).exists()  # nothing was reserved through the pointer


# ---------------------------------------------------------------------------- re-planning in progress


def test_replanning_in_progress_is_refused_and_replace_keeps_the_old_ledger(task, tmp_path, capsys) -> None:
    old = plan_run_root(task)
    _in_progress(task)
    ledger = old.dir / LEDGER_NAME
    before = ledger.read_bytes()
    runs = _planning_runs(task)
    source = _new_plan(tmp_path)

    code, out, err = _cli(capsys, task, "plan", "import", TASK, str(source), "--approve")
    assert code == 2 and out == ""
    assert f"task {TASK} is under way on plan {old.dir.name}" in err
    assert "(2 of 4 stages started: 1 done (1), 1 in flight (2))" in err
    assert f"okstra plan import {TASK} {source} --approve --replace" in err
    assert _planning_runs(task) == runs  # refused before anything was written

    code, _, err = _cli(capsys, task, "plan", "import", TASK, str(source))  # a draft replaces nothing
    assert code == 0, err
    draft = next(r for r in _planning_runs(task) if r not in runs)
    code, _, err = _cli(capsys, task, "plan", "approve", TASK)
    assert code == 2 and "1 done (1), 1 in flight (2)" in err and f"okstra plan approve {TASK} --replace" in err
    with pytest.raises(RefusedError) as caught:
        approve_plan(task)
    assert caught.value.refusal.code == "plan.replaces_progress"
    assert caught.value.refusal.params == {
        "task": TASK,
        "plan": old.dir.name,
        "total": 4,
        "started": [1, 2],
        "done": [1],
        "in_flight": [2],
        "fix": f"okstra plan approve {TASK} --replace",
    }
    assert plan_run_root(task).dir == old.dir

    code, out, err = _cli(capsys, task, "plan", "approve", TASK, "--replace")
    assert code == 0, err
    assert f"okstra: plan {draft} approved" in out
    assert f"it replaces plan {old.dir.name} (1 of 4 stages done, 1 in flight)" in out
    assert ledger.read_bytes() == before and old.plan_md.exists()
    assert plan_run_root(task).dir.name == draft

    code, out, _ = _cli(capsys, task, "status", TASK, "--json")
    doc = json.loads(out)
    assert Path(doc["plan_run"]).name == draft
    assert [(s["stage"], s["state"]) for s in doc["stages"]] == [(1, "ready"), (2, "ready")]
    [replaced] = doc["replaced_plans"]
    assert replaced["run"] == old.dir.name and replaced["run_dir"] == str(old.dir)
    assert (replaced["replaced_by"], replaced["done"], replaced["in_flight"]) == (draft, [1], [2])
    code, out, _ = _cli(capsys, task, "status", TASK)
    assert code == 0 and f"replaced plan: {old.dir.name}" in out.replace("\n", " ")
    from okstra_tui.model import watch_paths

    assert task.dir / POINTER_NAME in watch_paths(task, doc["plan_run"])  # the board sees a re-plan

    # the new plan starts clean, in a ledger of its own; the old one is never written again
    prepare(task, PrepareOptions("implementation", stage="2"))
    assert [r.stage for r in task_status(task).ledger.latest_rows().values()] == [2]
    assert task_status(task).stages[1].state is StageState.IN_FLIGHT
    assert ledger.read_bytes() == before


def test_import_approve_replace_names_the_replaced_plan(task, tmp_path, capsys) -> None:
    old = plan_run_root(task)
    _in_progress(task)
    before = (old.dir / LEDGER_NAME).read_bytes()
    source = str(_new_plan(tmp_path))
    code, _, err = _cli(capsys, task, "plan", "import", TASK, source, "--replace")
    assert code == 2 and "--replace goes with --approve" in err
    code, out, err = _cli(capsys, task, "plan", "import", TASK, source, "--approve", "--replace")
    assert code == 0, err
    assert f"it replaces plan {old.dir.name} (1 of 4 stages done, 1 in flight)" in out
    assert (old.dir / LEDGER_NAME).read_bytes() == before
    assert [v.state for v in task_status(task).stages] == [StageState.READY, StageState.READY]


def test_the_phase_gate_says_planning_is_not_ready_mid_implementation(task, capsys) -> None:
    assert gates.phase_refusal(task_status(task), "planning") is None  # nothing started yet
    _in_progress(task)
    refusal = gates.phase_refusals(task_status(task))["planning"]
    assert refusal is not None and refusal.code == "plan.replaces_progress"
    assert refusal.params["fix"] == f"okstra prepare {TASK} --type planning --replace"
    assert refused_by_prepare(task, "planning") == refusal
    code, out, err = _cli(capsys, task, "prepare", TASK, "--type", "planning")
    assert code == 2 and out == "" and err == f"okstra: {refusal.what}\n  fix: {refusal.how}\n"
    # asked for, it plans again; the plan stays current until approved with --replace
    prepared = prepare(task, PrepareOptions("planning", replace=True))
    assert prepared.manifest.task_type == "planning" and plan_run_root(task).dir.name != prepared.manifest.run_id
    assert Path(prepared.manifest.run_dir, "prompt.md").is_file()


def test_an_agent_of_a_replaced_plan_records_nothing_under_the_new_one(task, tmp_path, capsys) -> None:
    """Its prompt's record commands name its run: after `--replace` the run belongs to a
    plan the task has set aside, and the new plan's ledger must not hear from it."""
    from okstra_engine.record import record

    run = prepare(task, PrepareOptions("implementation", stage="1")).manifest.run_id
    record(task, 1, "released")  # the person gave up on it; its agent runs on
    assert _cli(capsys, task, "plan", "import", TASK, str(_new_plan(tmp_path)), "--approve", "--replace")[0] == 0
    ledger = plan_run_root(task).dir / LEDGER_NAME
    before = ledger.read_bytes() if ledger.exists() else b""
    code, _out, err = _cli(capsys, task, "record", TASK, "--stage", "1", "--status", "started", "--run", run)
    assert code == 2 and run in err and "replaced" in err
    assert (ledger.read_bytes() if ledger.exists() else b"") == before


def test_a_run_of_one_stage_records_nothing_for_another(task, capsys) -> None:
    run = prepare(task, PrepareOptions("implementation", stage="1")).manifest.run_id
    code, _out, err = _cli(capsys, task, "record", TASK, "--stage", "2", "--status", "started", "--run", run)
    assert code == 2 and "a run of stage 1" in err
    code, _out, err = _cli(capsys, task, "record", TASK, "--stage", "1", "--status", "started", "--run", run)
    assert code == 0, err


def test_a_replaced_plans_stage_branches_are_kept_aside_and_the_new_stages_start_fresh(task, tmp_path, capsys) -> None:
    """Without this, the new plan's stage 1 would reuse the old stage 1's branch, and its
    worktree would hold the old plan's work."""
    from okstra_engine.git import resolve_commit
    from okstra_engine.record import record
    from okstra_engine.tasks import stage_branch
    from okstra_engine.worktrees import stage_target
    from tests.support import commit

    old_plan = plan_run_root(task).run_id
    wt = Path(prepare(task, PrepareOptions("implementation", stage="1")).manifest.worktree.path)
    old_work = commit(wt, {"old.py": "old = 1\n"}, "the old plan's stage 1")
    record(task, 1, "done", commit=old_work)

    code, _out, err = _cli(capsys, task, "plan", "import", TASK, str(_new_plan(tmp_path)), "--approve", "--replace")
    assert code == 0, err
    kept = f"{stage_branch(task, 1)}-replaced-{old_plan}"
    repo = task.project.root
    assert resolve_commit(repo, f"refs/heads/{kept}") == old_work
    assert not wt.exists()

    fresh = Path(prepare(task, PrepareOptions("implementation", stage="1")).manifest.worktree.path)
    assert fresh == stage_target(task, 1).path and not (fresh / "old.py").exists()
    assert subprocess_rc(fresh, "merge-base", "--is-ancestor", old_work, "HEAD") == 1


def subprocess_rc(cwd: Path, *args: str) -> int:
    import subprocess

    return subprocess.run(["git", *args], cwd=cwd, capture_output=True).returncode


@pytest.mark.parametrize("how", ["in flight", "dirty"])
def test_replacing_a_plan_whose_stage_is_busy_changes_nothing(task, tmp_path, capsys, how) -> None:
    from okstra_engine.tasks import stage_branch
    from tests.support import git

    wt = Path(prepare(task, PrepareOptions("implementation", stage="1")).manifest.worktree.path)
    if how == "dirty":
        from okstra_engine.record import record

        record(task, 1, "released")
        (wt / "wip.py").write_text("half done\n")
    pointer = (task.dir / POINTER_NAME).read_bytes()
    code, _out, err = _cli(capsys, task, "plan", "import", TASK, str(_new_plan(tmp_path)), "--approve", "--replace")
    assert code == 2 and ("in flight" in err if how == "in flight" else "uncommitted" in err), err
    assert (task.dir / POINTER_NAME).read_bytes() == pointer and wt.is_dir()
    assert git(task.project.root, "branch", "--list", stage_branch(task, 1)) != ""
