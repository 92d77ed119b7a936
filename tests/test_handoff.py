"""Stage-group handoff on real repositories: merges of parallel stages, the
all-or-nothing undo on a conflict, refusals, the clean gate, squash-merged stages,
default group selection, the record and report, and the CLI."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from okstra_engine import handoff as ho
from okstra_engine.documents import save_doc
from okstra_engine.errors import OkstraError
from okstra_engine.ledger import LEDGER_NAME, read_ledger
from okstra_engine.plans import plan_run_root
from okstra_engine.prepare import PrepareOptions, prepare
from okstra_engine.projects import config_path, load_project
from okstra_engine.record import record
from okstra_engine.tasks import load_task, stage_branch, task_branch
from okstra_engine.worktrees import stage_target, task_target
from tests.support import call, commit, git, mutex_held_elsewhere, run_cli

TASK = "auth/login"


# ---------------------------------------------------------------------------- helpers


def prep(task) -> int:
    """An implementation run of the lowest ready stage; returns the stage."""
    return prepare(task, PrepareOptions("implementation")).manifest.stage


def finish(task, stage: int, *commits: dict[str, str]) -> str:
    """Commit each file set in the stage worktree (one commit each), record the stage done."""
    wt = stage_target(task, stage).path
    sha = ""
    for i, files in enumerate(commits or ({f"stage{stage}.py": f"s = {stage}\n"},)):
        sha = commit(wt, files, f"stage {stage} part {i + 1}")
    record(task, stage, "done", commit=sha)
    return sha


def task_wt(task) -> Path:
    return task_target(task).path


def head(path: Path) -> str:
    return git(path, "rev-parse", "HEAD")


def rows(task) -> list[dict]:
    path = plan_run_root(task).dir / ho.HANDOFFS_NAME
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def report(task, group: str) -> Path:
    return plan_run_root(task).dir / f"handoff-{group}.md"


def has_merge_head(path: Path) -> bool:
    return (
        subprocess.run(["git", "rev-parse", "-q", "--verify", "MERGE_HEAD"], cwd=path, capture_output=True).returncode
        == 0
    )


def group_a_handed_off(task, files: dict[str, str] | None = None) -> str:
    """Stage 1 done (with `files`) and group A handed off; returns stage 1's done commit."""
    assert prep(task) == 1
    done = finish(task, 1, files or {"shared.txt": "x = 1\n", "schema.py": "SCHEMA = 1\n"})
    result = ho.run_handoff(task, merge=True)
    assert (result.plan.group, result.merged) == ("A", [1])
    return done


def stages_2_and_3(task, files2: list[dict[str, str]], files3: list[dict[str, str]]) -> tuple[str, str]:
    assert prep(task) == 2 and prep(task) == 3
    return finish(task, 2, *files2), finish(task, 3, *files3)


def handoff_cli(capsys, task, *args: str) -> tuple[int, str, str]:
    return call(capsys, "--project", str(task.project.root), "handoff", TASK, *args)


# ---------------------------------------------------------------------------- merging


def test_two_parallel_stages_are_merged_recorded_and_reported(task) -> None:
    group_a_handed_off(task)
    wt = task_wt(task)
    s2, s3 = stages_2_and_3(task, [{"importer.py": "IMPORT = 2\n"}], [{"exporter.py": "EXPORT = 3\n"}])
    before = head(wt)

    result = ho.run_handoff(task, merge=True)  # default group: B (A is handed off)

    assert (result.plan.group, result.merged, result.already_merged) == ("B", [2, 3], [])
    after = head(wt)
    assert result.task_head == after != before and result.head_before == before
    assert (wt / "importer.py").read_text() == "IMPORT = 2\n" and (wt / "exporter.py").read_text() == "EXPORT = 3\n"
    for n, sha in ((2, s2), (3, s3)):
        merge_commit = result.merge_commits[n]
        assert git(wt, "rev-parse", f"{merge_commit}^2") == sha  # the done commit, --no-ff
        assert git(wt, "log", "-1", "--format=%s", merge_commit) == (
            f"okstra handoff auth/login group B: stage {n} ({'Importer' if n == 2 else 'Exporter'})"
        )
        assert stage_branch(task, n) in git(wt, "log", "-1", "--format=%b", merge_commit)
    assert git(wt, "rev-parse", f"{result.merge_commits[3]}^1") == result.merge_commits[2]  # stage order
    assert git(wt, "status", "--porcelain") == ""

    row = rows(task)[-1]
    assert row["group"] == "B" and row["stages"] == [2, 3] and row["merged"] == [2, 3]
    assert (row["head_before"], row["head_after"], row["v"]) == (before, after, 1)
    assert {item["stage"]: item["commit"] for item in row["landed"]} == {
        2: result.merge_commits[2],
        3: result.merge_commits[3],
    }
    text = report(task, "B").read_text()
    assert "okstra prepare auth/login --type implementation" in text
    assert "stage 4 — CLI" in text and result.merge_commits[2][:12] in text and s3[:12] in text
    assert result.next_ready == [4] and result.next_command == "okstra prepare auth/login --type implementation"

    # the next stage (two dependencies) can start from the task worktree now
    assert prep(task) == 4
    assert git(stage_target(task, 4).path, "rev-parse", "HEAD") == after


def test_a_second_handoff_of_the_same_group_merges_nothing(task) -> None:
    group_a_handed_off(task)
    stages_2_and_3(task, [{"importer.py": "i\n"}], [{"exporter.py": "e\n"}])
    first = ho.run_handoff(task, group="B", merge=True)
    wt = task_wt(task)
    at = head(wt)
    commits = git(wt, "rev-list", "--count", "HEAD")

    again = ho.run_handoff(task, group="B", merge=True)

    assert (again.merged, again.already_merged, again.merge_commits) == ([], [2, 3], {})
    assert {again.plan.stage(n).kind for n in (2, 3)} == {"ancestor"}
    assert head(wt) == at == again.task_head and git(wt, "rev-list", "--count", "HEAD") == commits
    last = rows(task)[-1]
    assert (last["group"], last["merged"], last["already_merged"]) == ("B", [], [2, 3])
    assert last["head_before"] == last["head_after"] == at
    # the report still says where the stages landed: the first handoff's merge commits
    text = report(task, "B").read_text()
    assert first.merge_commits[2][:12] in text and first.merge_commits[3][:12] in text


def test_a_conflict_undoes_the_whole_group(task) -> None:
    group_a_handed_off(task)
    wt = task_wt(task)
    s2, _s3 = stages_2_and_3(task, [{"shared.txt": "x = 2\n"}], [{"shared.txt": "x = 3\n"}])
    before = head(wt)
    rows_before = rows(task)

    with pytest.raises(ho.HandoffError) as caught:
        ho.run_handoff(task, merge=True)

    error = caught.value
    assert error.conflicts == {3: ["shared.txt"]}  # stage 2 merged, then stage 3 conflicted
    assert "stage 3" in error.what and "shared.txt" in error.what and "stage 2 (" not in error.what
    assert head(wt) == before and git(task.project.root, "rev-parse", task_branch(task)) == before
    assert git(wt, "status", "--porcelain") == "" and not has_merge_head(wt)
    assert (wt / "shared.txt").read_text() == "x = 1\n"
    assert (
        subprocess.run(["git", "merge-base", "--is-ancestor", s2, "HEAD"], cwd=wt).returncode == 1
    )  # stage 2's merge is gone too
    assert rows(task) == rows_before and not report(task, "B").exists()
    assert error.to_json()["conflicts"] == {"3": ["shared.txt"]} and error.to_json()["task_head"] == before


def test_every_conflicting_stage_is_named(task) -> None:
    group_a_handed_off(task)
    wt = task_wt(task)
    stages_2_and_3(task, [{"shared.txt": "x = 2\n", "a.txt": "a\n"}], [{"shared.txt": "x = 3\n"}])
    commit(wt, {"shared.txt": "x = task\n"}, "the task branch changed the same line")
    before = head(wt)
    with pytest.raises(ho.HandoffError) as caught:
        ho.run_handoff(task, group="B", merge=True)
    assert caught.value.conflicts == {2: ["shared.txt"], 3: ["shared.txt"]}
    assert head(wt) == before and git(wt, "status", "--porcelain") == "" and not has_merge_head(wt)


def test_conflict_through_the_cli_exits_2_with_json(task, capsys) -> None:
    group_a_handed_off(task)
    stages_2_and_3(task, [{"shared.txt": "x = 2\n"}], [{"shared.txt": "x = 3\n"}])
    before = head(task_wt(task))
    code, out, err = handoff_cli(capsys, task, "--merge", "--json")
    assert code == 2
    doc = json.loads(out)
    assert doc["conflicts"] == {"3": ["shared.txt"]} and doc["merged"] == [] and doc["task_head"] == before
    assert "stage 3" in err and "shared.txt" in err and "fix:" in err


def test_following_a_conflicts_fix_hands_the_group_off_in_one_round(task, capsys) -> None:
    group_a_handed_off(task)
    wt = task_wt(task)
    s2, s3 = stages_2_and_3(task, [{"shared.txt": "x = 2\n"}], [{"shared.txt": "x = 3\n"}])
    code, out, err = handoff_cli(capsys, task, "--merge", "--json")
    assert code == 2
    refusal = json.loads(out)["refusal"]
    assert refusal["code"] == "handoff.conflict" and refusal["params"]["worktree"] == str(wt)
    merges = refusal["params"]["merges"]
    assert merges == [{"stage": 2, "commit": s2}, {"stage": 3, "commit": s3}]  # the group, in order
    steps = [f"git -C {wt} merge --no-ff {m['commit'][:12]} (stage {m['stage']})" for m in merges]
    assert "; ".join(steps) in err  # what the person reads is what the params say

    # do what it says, literally: each merge in order in the task worktree, resolving where git stops
    for m in merges:
        merged = subprocess.run(
            ["git", "-C", refusal["params"]["worktree"], "merge", "--no-ff", "--no-edit", m["commit"]],
            capture_output=True,
            text=True,
        )
        if merged.returncode != 0:
            assert git(wt, "diff", "--name-only", "--diff-filter=U") == "shared.txt"
            (wt / "shared.txt").write_text("x = 2 and 3\n")
            git(wt, "add", "shared.txt")
            git(wt, "commit", "-q", "--no-edit")
    code, out, err = handoff_cli(capsys, task, "--merge", "--json")  # one round
    assert code == 0, err
    doc = json.loads(out)
    assert (doc["merged"], doc["already_merged"], doc["recorded"]) == ([], [2, 3], True)
    assert rows(task)[-1]["group"] == "B"


# ---------------------------------------------------------------------------- refusals


def test_refused_when_a_stage_is_not_done(task, capsys) -> None:
    group_a_handed_off(task)
    assert prep(task) == 2
    finish(task, 2)
    before = head(task_wt(task))
    with pytest.raises(ho.HandoffError) as caught:
        ho.run_handoff(task, group="B", merge=True)
    assert caught.value.refusals == {3: "stage 3 is not done (ready, not started)"}
    assert "okstra prepare auth/login --type implementation --stage 3" in caught.value.how
    code, out, err = handoff_cli(capsys, task, "--group", "B", "--merge")
    assert code == 2 and "stage 3 is not done" in err and out == ""
    assert head(task_wt(task)) == before and [r["group"] for r in rows(task)] == ["A"]


def test_refused_when_a_stage_is_in_flight(task, capsys) -> None:
    group_a_handed_off(task)
    assert prep(task) == 2 and prep(task) == 3
    finish(task, 2)
    code, out, err = handoff_cli(capsys, task, "--merge", "--json")
    assert code == 2
    doc = json.loads(out)
    assert list(doc["refusals"]) == ["3"] and "in flight" in doc["refusals"]["3"]
    assert "stage 3 is in flight (run " in err and "--status released" in err
    assert doc["merged"] == [] and not has_merge_head(task_wt(task))


def test_refused_when_the_task_worktree_is_dirty(task) -> None:
    group_a_handed_off(task)
    stages_2_and_3(task, [{"importer.py": "i\n"}], [{"exporter.py": "e\n"}])
    wt = task_wt(task)
    before = head(wt)
    (wt / "schema.py").write_text("SCHEMA = 'edited, not committed'\n")
    (wt / "scratch.txt").write_text("untracked\n")
    with pytest.raises(ho.HandoffError) as caught:
        ho.run_handoff(task, merge=True)
    assert "uncommitted changes" in caught.value.what
    assert "schema.py" in caught.value.what and "scratch.txt" in caught.value.what
    assert head(wt) == before and (wt / "schema.py").read_text() == "SCHEMA = 'edited, not committed'\n"
    # the merge plan still shows, and says --merge would refuse
    dry = ho.run_handoff(task, merge=False)
    assert dry.would_merge == [2, 3] and dry.plan.dirty == ["schema.py", "scratch.txt"]


def with_clean_gate_excludes(task, paths: list[str]):
    """The task, reloaded after its project's config lists `paths` as cleanGateExcludes."""
    config = task.project.config.model_copy(update={"clean_gate_excludes": paths})
    save_doc(config_path(task.project.root), config)
    return load_task(load_project(task.project.root), task.ref)


def test_okstra_dir_and_clean_gate_excludes_do_not_count_as_dirty(task) -> None:
    task = with_clean_gate_excludes(task, ["notes"])
    group_a_handed_off(task, {"shared.txt": "x = 1\n", "notes/todo.txt": "todo\n"})
    stages_2_and_3(task, [{"importer.py": "i\n"}], [{"exporter.py": "e\n"}])
    wt = task_wt(task)
    (wt / "notes" / "todo.txt").write_text("todo, edited locally\n")  # tracked, modified
    (wt / "notes" / "new.txt").write_text("untracked\n")
    (wt / ".okstra").mkdir(exist_ok=True)
    (wt / ".okstra" / "scratch.json").write_text("{}\n")

    result = ho.run_handoff(task, merge=True)

    assert result.merged == [2, 3]
    assert (wt / "notes" / "todo.txt").read_text() == "todo, edited locally\n"  # local changes kept
    assert (wt / "notes" / "new.txt").exists() and (wt / ".okstra" / "scratch.json").exists()


def test_excluded_local_changes_survive_a_conflict(task) -> None:
    task = with_clean_gate_excludes(task, ["notes"])
    group_a_handed_off(task, {"shared.txt": "x = 1\n", "notes/todo.txt": "todo\n"})
    stages_2_and_3(task, [{"shared.txt": "x = 2\n"}], [{"shared.txt": "x = 3\n"}])
    wt = task_wt(task)
    before = head(wt)
    (wt / "notes" / "todo.txt").write_text("mine\n")
    with pytest.raises(ho.HandoffError):
        ho.run_handoff(task, merge=True)
    assert head(wt) == before and not has_merge_head(wt)
    assert (wt / "notes" / "todo.txt").read_text() == "mine\n"
    assert git(wt, "status", "--porcelain") == "M notes/todo.txt"


# ---------------------------------------------------------------------------- reconcile


def test_a_squash_merged_stage_counts_as_already_merged(task) -> None:
    group_a_handed_off(task)
    wt = task_wt(task)
    s2, _s3 = stages_2_and_3(
        task,
        [{"importer.py": "IMPORT = 1\n"}, {"importer_test.py": "assert True\n"}],  # two commits
        [{"exporter.py": "EXPORT = 3\n"}],
    )
    git(wt, "merge", "--squash", s2)
    git(wt, "commit", "-q", "-m", "importer, squashed by hand")
    squash = head(wt)
    notices: list[str] = []

    result = ho.run_handoff(task, merge=True, notice=notices.append)

    assert (result.merged, result.already_merged) == ([3], [2])
    stage2 = result.plan.stage(2)
    assert (stage2.kind, stage2.match_commit, stage2.reconciled_from) == ("squash-equivalent", squash, s2)
    assert f"git-reconcile: stage 2 done commit {s2[:8]} -> {squash[:8]} (squash-equivalent)" in notices
    assert (
        subprocess.run(["git", "merge-base", "--is-ancestor", s2, "HEAD"], cwd=wt).returncode == 1
    )  # not merged again
    assert git(wt, "rev-list", "--count", "--merges", f"{squash}..HEAD") == "1"  # only stage 3's merge
    landed = {item["stage"]: item for item in rows(task)[-1]["landed"]}
    assert landed[2]["kind"] == "squash-equivalent" and landed[2]["commit"] == squash and landed[2]["replaced"] == s2
    assert "squash-equivalent" in report(task, "B").read_text()


def test_reconcile_failure_is_reported_and_the_handoff_goes_on(task, monkeypatch, capsys) -> None:
    from okstra_engine import reconcile

    group_a_handed_off(task)
    stages_2_and_3(task, [{"importer.py": "i\n"}], [{"exporter.py": "e\n"}])

    def broken(*args, **kwargs):
        raise OkstraError("the history cannot be read")

    monkeypatch.setattr(reconcile, "auto_reconcile", broken)
    code, out, err = handoff_cli(capsys, task, "--merge")
    assert code == 0 and "git-reconcile skipped: the history cannot be read" in err
    assert "stage 2 (Importer): merged" in out


# ---------------------------------------------------------------------------- dry run, groups


def test_without_merge_nothing_changes_and_the_plan_is_shown(task, capsys) -> None:
    group_a_handed_off(task)
    s2, _ = stages_2_and_3(task, [{"importer.py": "i\n"}], [{"exporter.py": "e\n"}])
    wt = task_wt(task)
    before = head(wt)
    refs = git(task.project.root, "for-each-ref", "refs/heads")
    ledger = (plan_run_root(task).dir / LEDGER_NAME).read_bytes()

    plan = ho.handoff_plan(task)
    assert (plan.group, plan.to_merge, plan.already_merged, plan.refusals) == ("B", [2, 3], [], {})
    assert plan.stage(2).done_commit == s2 and plan.stage(2).branch == stage_branch(task, 2)
    assert plan.stage(2).kind == "not-merged"

    code, out, err = handoff_cli(capsys, task)
    assert code == 0, err
    assert "would merge" in out and "add --merge" in out
    assert "okstra next: okstra handoff auth/login --group B --merge" in out
    code, out, _ = handoff_cli(capsys, task, "--json")
    doc = json.loads(out)
    assert (doc["merged"], doc["would_merge"], doc["already_merged"], doc["task_head"]) == ([], [2, 3], [], before)
    assert head(wt) == before and git(task.project.root, "for-each-ref", "refs/heads") == refs
    assert (plan_run_root(task).dir / LEDGER_NAME).read_bytes() == ledger
    assert [r["group"] for r in rows(task)] == ["A"] and not report(task, "B").exists()


def test_a_group_merged_by_hand_is_recorded_without_merge(task) -> None:
    group_a_handed_off(task)
    s2, s3 = stages_2_and_3(task, [{"importer.py": "i\n"}], [{"exporter.py": "e\n"}])
    wt = task_wt(task)
    git(wt, "merge", "-q", "--no-edit", s2)
    git(wt, "merge", "-q", "--no-edit", s3)
    at = head(wt)
    result = ho.run_handoff(task, merge=False)
    assert (result.plan.group, result.merged, result.already_merged, result.would_merge) == ("B", [], [2, 3], [])
    assert result.recorded and rows(task)[-1]["group"] == "B" and report(task, "B").exists()
    assert head(wt) == at
    assert ho.handoff_plan(task).group == "C"  # B counts as handed off now


def test_default_group_is_the_first_not_handed_off(task) -> None:
    assert prep(task) == 1
    finish(task, 1)
    assert ho.handoff_plan(task).group == "A"
    ho.run_handoff(task, merge=True)
    assert ho.handoff_plan(task).group == "B"
    assert ho.handoff_plan(task, "b").group == "B"  # case-insensitive when unambiguous
    assert ho.handoff_plan(task, "A").already_merged == [1]
    with pytest.raises(OkstraError, match=r"group 'Z' is not in the Stage Map of auth/login \(groups: A, B, C\)"):
        ho.handoff_plan(task, "Z")


def test_groups_default_to_dag_depth_and_all_handed_off_points_to_final_verification(task, tmp_path: Path) -> None:
    from okstra_engine.plans import import_plan
    from okstra_engine.slugs import TaskRef
    from okstra_engine.tasks import new_task

    source = tmp_path / "two.json"
    source.write_text(
        json.dumps(
            {
                "stages": [
                    {"stage": 1, "title": "One", "depends_on": []},
                    {"stage": 2, "title": "Two", "depends_on": [1]},
                ]
            }
        )
    )
    two = new_task(task.project, TaskRef("auth", "two"), title="Two stages, no groups")
    import_plan(two, source, approve=True)
    assert prep(two) == 1
    finish(two, 1)
    first = ho.run_handoff(two, merge=True)
    assert (first.plan.group, first.merged) == ("L1", [1])
    assert prep(two) == 2
    finish(two, 2)
    second = ho.run_handoff(two, merge=True)
    assert (second.plan.group, second.merged, second.next_ready) == ("L2", [2], [])
    assert second.next_command == "okstra prepare auth/two --type final-verification"
    assert "okstra prepare auth/two --type final-verification" in report(two, "L2").read_text()
    with pytest.raises(OkstraError, match="every group of auth/two has been handed off") as caught:
        ho.handoff_plan(two)
    assert "final-verification" in caught.value.how


def test_plan_is_read_only(task) -> None:
    group_a_handed_off(task)
    stages_2_and_3(task, [{"importer.py": "i\n"}], [{"exporter.py": "e\n"}])
    plan_dir = plan_run_root(task).dir
    snapshot = {p: p.read_bytes() for p in plan_dir.rglob("*") if p.is_file()}
    refs = git(task.project.root, "for-each-ref")
    ho.handoff_plan(task, "B")
    assert {p: p.read_bytes() for p in plan_dir.rglob("*") if p.is_file()} == snapshot
    assert git(task.project.root, "for-each-ref") == refs


# ---------------------------------------------------------------------------- git details


def test_merges_work_without_a_configured_git_identity(task, tmp_path: Path, monkeypatch) -> None:
    group_a_handed_off(task)
    stages_2_and_3(task, [{"importer.py": "i\n"}], [{"exporter.py": "e\n"}])
    bare_home = tmp_path / "bare-home"
    bare_home.mkdir()
    (bare_home / ".gitconfig").write_text("[commit]\n\tgpgsign = false\n")
    monkeypatch.setenv("HOME", str(bare_home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for name in ("EMAIL", "GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL"):
        monkeypatch.delenv(name, raising=False)
    wt = task_wt(task)
    assert subprocess.run(["git", "config", "user.email"], cwd=wt, capture_output=True).returncode == 1
    result = ho.run_handoff(task, merge=True)
    assert result.merged == [2, 3]
    assert git(wt, "log", "-1", "--format=%an <%ae>|%cn <%ce>") == "okstra <okstra@localhost>|okstra <okstra@localhost>"


def test_the_configured_identity_is_used_when_there_is_one(task) -> None:
    group_a_handed_off(task)
    assert git(task_wt(task), "log", "-1", "--format=%an <%ae>") == "Test <test@example.com>"


def test_handoff_runs_under_the_task_mutex(task) -> None:
    group_a_handed_off(task)
    stages_2_and_3(task, [{"importer.py": "i\n"}], [{"exporter.py": "e\n"}])
    before = head(task_wt(task))
    with mutex_held_elsewhere(task), pytest.raises(OkstraError, match="another okstra process"):
        ho.run_handoff(task, merge=True, lock_timeout=0.2)
    assert head(task_wt(task)) == before
    assert ho.run_handoff(task, merge=True).merged == [2, 3]


def test_a_merge_git_refuses_is_undone_with_its_message(task) -> None:
    # an untracked file in a cleanGateExcludes path does not make the worktree dirty,
    # but git will not let the stage 3 merge overwrite it
    task = with_clean_gate_excludes(task, ["exporter.py"])
    group_a_handed_off(task)
    stages_2_and_3(task, [{"importer.py": "i\n"}], [{"exporter.py": "e\n"}])
    wt = task_wt(task)
    before = head(wt)
    (wt / "exporter.py").write_text("local, untracked\n")
    with pytest.raises(ho.HandoffError) as caught:
        ho.run_handoff(task, merge=True)
    assert "git refused to merge stage 3" in caught.value.what and "nothing of group B was merged" in caught.value.what
    assert head(wt) == before and not has_merge_head(wt) and not (wt / "importer.py").exists()
    assert (wt / "exporter.py").read_text() == "local, untracked\n"


# ---------------------------------------------------------------------------- records and CLI


def test_handoff_json_shape_and_console_script(task) -> None:
    group_a_handed_off(task)
    stages_2_and_3(task, [{"importer.py": "i\n"}], [{"exporter.py": "e\n"}])
    code, out, err = run_cli("--project", str(task.project.root), "handoff", TASK, "--merge", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert {"group", "stages", "merged", "already_merged", "task_head", "next_ready"} <= set(doc)
    assert (doc["group"], doc["stages"], doc["merged"], doc["already_merged"], doc["next_ready"]) == (
        "B",
        [2, 3],
        [2, 3],
        [],
        [4],
    )
    assert doc["task_head"] == head(task_wt(task)) and len(doc["task_head"]) == 40
    assert {p["stage"]: p["kind"] for p in doc["plan"]} == {2: "not-merged", 3: "not-merged"}
    assert doc["conflicts"] == {} and doc["report"].endswith("handoff-B.md")
    code, out, err = run_cli("--project", str(task.project.root), "handoff", TASK, "--group", "nope")
    assert code == 2 and "group 'nope' is not in the Stage Map" in err and "fix:" in err


def test_handoffs_reader_skips_a_torn_line(task) -> None:
    group_a_handed_off(task)
    path = plan_run_root(task).dir / ho.HANDOFFS_NAME
    with path.open("a") as handle:
        handle.write('{"v":1,"group":"B","ts":"x"')  # torn: no newline, not JSON
    read = ho.read_handoffs(plan_run_root(task).dir)
    assert [r.group for r in read.rows] == ["A"]
    assert read.warnings == [f"{ho.HANDOFFS_NAME} line 2: torn write (no newline at the end); skipped"]
    assert ho.handoff_plan(task).group == "B"


def test_report_names_are_safe_file_names() -> None:
    assert ho.report_name("B") == "handoff-B.md"
    assert ho.report_name("L2") == "handoff-L2.md"
    odd = ho.report_name("../api & ui")
    assert odd.startswith("handoff-api-ui-") and "/" not in odd and odd.endswith(".md")
    assert ho.report_name("../api & ui") != ho.report_name("api/ui")


def test_done_ledger_is_untouched_by_a_clean_handoff(task) -> None:
    """A plain merge records no ledger correction: the done commits become ancestors."""
    group_a_handed_off(task)
    stages_2_and_3(task, [{"importer.py": "i\n"}], [{"exporter.py": "e\n"}])
    before = len(read_ledger(plan_run_root(task).dir / LEDGER_NAME).rows)
    result = ho.run_handoff(task, merge=True)
    assert result.applied == [] and len(read_ledger(plan_run_root(task).dir / LEDGER_NAME).rows) == before
