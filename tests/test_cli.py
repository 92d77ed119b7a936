from __future__ import annotations

import json
from pathlib import Path

from okstra_engine.carry import CarrySidecar, write_carry
from okstra_engine.plans import plan_run_root
from tests.support import call, commit, git, run_cli


def test_status_states_through_the_cli(task, capsys) -> None:
    repo = task.project.root
    sha = commit(repo, {"schema.py": "x = 1\n"}, "stage 1")
    code, out, _err = call(
        capsys, "--project", str(repo), "record", "auth/login", "--stage", "1", "--status", "done", "--commit", sha[:7]
    )
    assert code == 0 and f"stage 1 done at {sha[:8]}" in out
    call(
        capsys, "--project", str(repo), "record", "auth/login", "--stage", "2", "--status", "started", "--run", "run-2"
    )
    code, out, _ = call(capsys, "status", "auth/login", "--json", "--project", str(repo))
    doc = json.loads(out)
    assert set(doc) >= {"task", "task_key", "plan_run", "task_worktree", "warnings", "stages"}
    assert doc["task"] == "auth/login" and doc["task_key"] == "auth-login"
    states = {s["stage"]: (s["state"], s["done_commit"], s["run_id"]) for s in doc["stages"]}
    assert states == {
        1: ("done", sha, None),
        2: ("in-flight", None, "run-2"),
        3: ("ready", None, None),
        4: ("blocked", None, None),
    }
    assert set(doc["stages"][0]) >= {
        "stage",
        "title",
        "depends_on",
        "group",
        "state",
        "done_commit",
        "worktree",
        "run_id",
    }
    assert doc["stages"][3]["depends_on"] == [2, 3] and doc["stages"][3]["group"] == "C"


def test_record_refuses_unknown_commit_and_stage(task, capsys) -> None:
    repo = str(task.project.root)
    code, _, err = call(
        capsys, "--project", repo, "record", "auth/login", "--stage", "1", "--status", "done", "--commit", "deadbeef"
    )
    assert code == 2 and "names no commit" in err and "fix:" in err
    code, _, err = call(capsys, "--project", repo, "record", "auth/login", "--stage", "9", "--status", "started")
    assert code == 2 and "stage 9 is not in the Stage Map" in err
    code, _, err = call(capsys, "--project", repo, "record", "auth/login", "--stage", "1", "--status", "done")
    assert code == 2 and "needs the commit" in err
    code, _, err = call(
        capsys, "--project", repo, "record", "auth/login", "--stage", "1", "--status", "done", "--commit=--all"
    )
    assert code == 2 and "names no commit" in err
    code, _, err = call(capsys, "--project", repo, "record", "auth/login", "--stage", "1", "--status", "released")
    assert code == 2 and "no reservation to release" in err
    assert not (plan_run_root(task).dir / "consumers.jsonl").exists()


def test_release_frees_a_reservation(task, capsys) -> None:
    repo = str(task.project.root)
    call(capsys, "--project", repo, "record", "auth/login", "--stage", "1", "--status", "started", "--run", "r1")
    code, out, _ = call(capsys, "--project", repo, "record", "auth/login", "--stage", "1", "--status", "released")
    assert code == 0 and "run r1" in out
    doc = json.loads(call(capsys, "--project", repo, "status", "auth/login", "--json")[1])
    assert doc["stages"][0]["state"] == "ready"


def test_status_counts_carry_sidecars_without_writing(task, capsys) -> None:
    repo = task.project.root
    sha = commit(repo, {"a": "1"}, "s1")
    root = plan_run_root(task).dir
    write_carry(root, CarrySidecar(stage=1, head_commit=sha, impl_task_key="auth-login"))
    doc = json.loads(call(capsys, "--project", str(repo), "status", "auth/login", "--json")[1])
    assert doc["stages"][0]["state"] == "done" and "carry sidecar" in doc["warnings"][0]
    assert not (root / "consumers.jsonl").exists()


def test_status_human_table(task, capsys) -> None:
    code, out, _ = call(capsys, "--project", str(task.project.root), "status", "auth/login")
    assert code == 0 and "Login flow" in out and "ready" in out and "next: stage 1" in out


def test_status_without_approved_plan(repo: Path, capsys) -> None:
    call(capsys, "init", str(repo))
    call(capsys, "--project", str(repo), "task", "new", "a/b", "--title", "T")
    doc = json.loads(call(capsys, "--project", str(repo), "status", "a/b", "--json")[1])
    assert doc["plan_run"] is None and doc["stages"] == [] and doc["warnings"] == ["no plan yet"]


def test_bad_input_exit_2_without_traceback(repo: Path, capsys) -> None:
    code, _, err = call(capsys, "--project", str(repo), "status", "auth/login")
    assert code == 2 and "not an okstra project" in err and "okstra init" in err
    call(capsys, "init", str(repo))
    code, _, err = call(capsys, "--project", str(repo), "status", "Auth/../x")
    assert code == 2 and "Traceback" not in err
    code, _, err = call(capsys, "--project", str(repo), "task", "new", "a/b", "--title", "  ")
    assert code == 2 and "title is empty" in err


def test_console_script_end_to_end(repo: Path, plan_file: Path) -> None:
    assert run_cli("init", str(repo), "--qa-command", "pytest -q")[0] == 0
    assert run_cli("--project", str(repo), "task", "new", "auth/login", "--title", "Login")[0] == 0
    code, out, err = run_cli("--project", str(repo), "plan", "import", "auth/login", str(plan_file), "--approve")
    assert code == 0 and "4 stages" in out, err
    sha = git(repo, "rev-parse", "HEAD")
    code, out, err = run_cli("record", "auth/login", "--stage", "1", "--status", "done", "--commit", "HEAD", cwd=repo)
    assert code == 0, err
    code, out, err = run_cli("status", "auth/login", "--json", cwd=repo)
    assert code == 0 and json.loads(out)["stages"][0]["done_commit"] == sha
    code, out, err = run_cli("status", "nope/nope", cwd=repo)
    assert code == 2 and err.startswith("okstra: no task nope/nope") and "Traceback" not in err
    assert run_cli("demo", "--no-tui")[0] == 0


def test_unexpected_error_exit_1_with_short_message(task, capsys, monkeypatch) -> None:
    import okstra_engine.status

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug of ours")

    monkeypatch.setattr(okstra_engine.status, "task_status", broken)
    code, _, err = call(capsys, "--project", str(task.project.root), "status", "auth/login")
    assert code == 1 and "unexpected error" in err and "--debug" in err and "Traceback" not in err


def test_a_folder_where_the_ledger_file_belongs_is_exit_2(task, capsys) -> None:
    ledger = plan_run_root(task).dir / "consumers.jsonl"
    ledger.mkdir()
    code, _, err = call(capsys, "--project", str(task.project.root), "status", "auth/login")
    assert code == 2 and str(ledger) in err and "move it aside" in err and "Traceback" not in err
