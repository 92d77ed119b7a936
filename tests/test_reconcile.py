"""Git reconcile on real repositories: every kind, the stored fingerprint and
its pin, hostile user config, shallow clones, and the CLI."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from okstra_engine import reconcile
from okstra_engine.ledger import LEDGER_NAME, append_row, new_row, read_ledger
from okstra_engine.ledger_state import LedgerState
from okstra_engine.plans import plan_run_root
from okstra_engine.reconcile import content_merged, done_fingerprint
from okstra_engine.tasks import stage_branch, task_branch
from tests.support import call, commit, git, make_repo

LINES = "".join(f"line {n}\n" for n in range(1, 41))

# config that changes `git diff`/`git log -p` text, hence naive patch-ids
HOSTILE_CONFIG = {
    "diff.noprefix": "true",
    "diff.mnemonicPrefix": "true",
    "diff.context": "10",
    "diff.interHunkContext": "20",
    "diff.algorithm": "patience",
    "diff.renames": "copies",
    "diff.indentHeuristic": "false",
    "color.ui": "always",
    "color.diff": "always",
    "log.abbrevCommit": "true",
    "log.decorate": "full",
    "log.follow": "true",
    "format.pretty": "oneline",
    "core.quotePath": "false",
    "diff.suppressBlankEmpty": "true",
    "diff.wsErrorHighlight": "all",
    "diff.external": "false",
}


def edit(repo: Path, name: str, old: str, new: str, message: str) -> str:
    path = repo / name
    text = path.read_text()
    assert old in text, (name, old)
    return commit(repo, {name: text.replace(old, new, 1)}, message)


def checkout(repo: Path, rev: str, branch: str | None = None) -> None:
    git(repo, "checkout", "-q", *(["-b", branch] if branch else []), rev)


def cherry_pick(repo: Path, *revs: str) -> str:
    git(repo, "cherry-pick", "--allow-empty", *revs)
    return git(repo, "rev-parse", "HEAD")


def squash_merge(repo: Path, rev: str, message: str = "squash") -> str:
    git(repo, "merge", "--squash", rev)
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def history(tmp_path: Path):
    """base: two files; a 3-commit stage on `stage` (edits lines 10 and 20 of a.txt, adds
    c.txt); `main` moves on with an unrelated commit."""
    repo = make_repo(tmp_path / "hist")
    base = commit(repo, {"a.txt": LINES, "b.txt": "b\n"}, "base")
    checkout(repo, base, "stage")
    c1 = edit(repo, "a.txt", "line 10\n", "line ten\n", "s1")
    c2 = edit(repo, "a.txt", "line 20\n", "line twenty\n", "s2")
    x = commit(repo, {"c.txt": "new\n"}, "s3")
    checkout(repo, "main")
    commit(repo, {"b.txt": "b\nmore\n"}, "unrelated")
    return repo, base, [c1, c2, x], x


def configure(repo: Path, config: dict[str, str]) -> None:
    for key, value in config.items():
        git(repo, "config", key, value)


@pytest.fixture(params=["plain", "hostile-config"])
def hist(request, history):
    """The same scenarios with and without user config that would change patch-ids."""
    if request.param == "hostile-config":
        configure(history[0], HOSTILE_CONFIG)
    return history


# ---- every kind ----


def test_ancestor_after_a_real_merge(hist) -> None:
    repo, _base, _, x = hist
    git(repo, "merge", "-q", "--no-ff", "-m", "merge stage", "stage")
    assert content_merged(repo, x, "HEAD").kind == "ancestor"
    assert content_merged(repo, x, "HEAD").commit == x


def test_rebase_of_the_whole_stage_is_patch_equivalent(hist) -> None:
    repo, base, _commits, x = hist
    tip = cherry_pick(repo, f"{base}..{x}")
    commit(repo, {"b.txt": "b\nmore\nlater\n"}, "after the rebase")
    match = content_merged(repo, x, "HEAD", base=base)
    assert (match.kind, match.commit, match.ambiguous) == ("patch-equivalent", tip, False)
    # without a base: the merge-base of X and T gives the same range
    assert content_merged(repo, x, "HEAD").kind == "patch-equivalent"


def test_cherry_pick_of_part_of_the_stage_is_not_patch_equivalent(hist) -> None:
    repo, base, (c1, c2, x), _ = hist
    cherry_pick(repo, c1, c2)
    match = content_merged(repo, x, "HEAD", base=base)
    assert match.kind == "not-merged" and match.commit is None


def test_squash_merge_is_squash_equivalent(hist) -> None:
    repo, base, _, x = hist
    squashed = squash_merge(repo, "stage")
    commit(repo, {"b.txt": "b\nmore\nlater\n"}, "after the squash")
    match = content_merged(repo, x, "HEAD", base=base)
    assert (match.kind, match.commit) == ("squash-equivalent", squashed)


def test_squash_after_an_edit_near_the_change_is_content_present(hist) -> None:
    repo, base, _, x = hist
    # two lines from the stage's change: the squash commit's diff context differs, so
    # its patch-id matches nothing
    edit(repo, "a.txt", "line 8\n", "line eight\n", "edit near line 10")
    edit(repo, "a.txt", "line 21\n", "line twenty-one\n", "edit next to line 20")
    # git's merge calls the adjacent edit a conflict: the person squashes by hand
    text = (repo / "a.txt").read_text().replace("line 10\n", "line ten\n").replace("line 20\n", "line twenty\n")
    squashed = commit(repo, {"a.txt": text, "c.txt": "new\n"}, "squash, conflict resolved")
    edit(repo, "a.txt", "line 1\n", "line one\n", "later edit of the same file")
    commit(repo, {"d.txt": "d\n"}, "later, elsewhere")
    match = content_merged(repo, x, "HEAD", base=base)
    assert (match.kind, match.commit) == ("content-present", squashed)


def test_content_present_is_strict_about_the_change_itself(hist) -> None:
    repo, base, _, x = hist
    edit(repo, "a.txt", "line 9\n", "line nine\n", "edit next to line 10")
    text = (repo / "a.txt").read_text().replace("line 10\n", "line ten\n").replace("line 20\n", "line twenty\n")
    commit(repo, {"a.txt": text, "c.txt": "new\n"}, "squash by hand")
    assert content_merged(repo, x, "HEAD", base=base).kind == "content-present"
    edit(repo, "a.txt", "line ten\n", "line TEN\n", "then someone changes the stage's line")
    assert content_merged(repo, x, "HEAD", base=base).kind == "not-merged"


def test_content_present_refuses_a_deletion_brought_back(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "del")
    base = commit(repo, {"a.txt": LINES}, "base")
    checkout(repo, base, "stage")
    x = edit(repo, "a.txt", "line 10\n", "", "drop line 10")
    checkout(repo, "main")
    edit(repo, "a.txt", "line 9\n", "line nine\n", "edit next to it")
    assert content_merged(repo, x, "HEAD", base=base).kind == "not-merged"
    git(repo, "merge", "-q", "--squash", "-X", "theirs", "stage")
    git(repo, "commit", "-q", "-m", "squash")
    assert content_merged(repo, x, "HEAD", base=base).kind in ("content-present", "squash-equivalent")


def test_two_stages_squashed_into_one_commit(task) -> None:
    repo = task.project.root
    base = commit(repo, {"a.txt": LINES, "b.txt": LINES}, "base")
    git(repo, "branch", task_branch(task), base)
    checkout(repo, base, "s1")
    edit(repo, "a.txt", "line 5\n", "line five\n", "stage 1 a")
    x1 = edit(repo, "a.txt", "line 30\n", "line thirty\n", "stage 1 b")
    checkout(repo, x1, "s2")
    x2 = edit(repo, "b.txt", "line 7\n", "line seven\n", "stage 2")
    # the task branch: stage 1's squash would be patch-identical, so T edits nearby first
    checkout(repo, task_branch(task))
    edit(repo, "a.txt", "line 32\n", "line thirty-two\n", "edit near stage 1")
    both = squash_merge(repo, x2, "stages 1 and 2 in one commit")
    ledger = plan_run_root(task).dir / LEDGER_NAME
    append_row(ledger, new_row(1, "reserved", base_ref=base))
    append_row(ledger, new_row(1, "done", head_commit=x1))
    append_row(ledger, new_row(2, "reserved", base_ref=x1))
    append_row(ledger, new_row(2, "done", head_commit=x2))
    found = {s.stage: (s.kind, s.suggested) for s in reconcile.suggestions(task)}
    assert found == {1: ("content-present", both), 2: ("content-present", both)}


def test_revert_after_merge_still_finds_the_merge(hist) -> None:
    repo, base, _, x = hist
    # rebased in, then reverted: the stage was merged; the revert is a later decision
    tip = cherry_pick(repo, f"{base}..{x}")
    git(repo, "revert", "--no-edit", "HEAD~3..HEAD")
    assert (repo / "a.txt").read_text() == LINES
    match = content_merged(repo, x, "HEAD", base=base)
    assert (match.kind, match.commit) == ("patch-equivalent", tip)
    # squashed in, then reverted
    checkout(repo, base, "squash-then-revert")
    squashed = squash_merge(repo, "stage")
    git(repo, "revert", "--no-edit", "HEAD")
    match = content_merged(repo, x, "HEAD", base=base)
    assert (match.kind, match.commit) == ("squash-equivalent", squashed)


def test_real_merge_then_revert_is_ancestor(hist) -> None:
    repo, _, _, x = hist
    git(repo, "merge", "-q", "--no-ff", "-m", "merge", "stage")
    git(repo, "revert", "--no-edit", "-m", "1", "HEAD")
    assert content_merged(repo, x, "HEAD").kind == "ancestor"


def test_missing_commit_is_matched_by_stored_patch_ids(hist) -> None:
    repo, base, _, x = hist
    stored = done_fingerprint(repo, base, x)
    tip = cherry_pick(repo, f"{base}..{x}")
    gone = "0123456789abcdef0123456789abcdef01234567"
    match = content_merged(repo, gone, "HEAD", stored=stored)
    assert (match.kind, match.commit) == ("patch-equivalent", tip)
    assert content_merged(repo, gone, "HEAD").kind == "missing"
    checkout(repo, base, "elsewhere")
    squashed = squash_merge(repo, "stage")
    assert content_merged(repo, gone, "HEAD", stored=stored).commit == squashed
    git(repo, "reset", "-q", "--hard", base)
    assert content_merged(repo, gone, "HEAD", stored=stored).kind == "missing"


def test_ambiguous_when_two_target_commits_carry_the_id(hist) -> None:
    repo, base, (c1, _, _), _ = hist
    first = cherry_pick(repo, c1)
    git(repo, "revert", "--no-edit", "HEAD")
    again = cherry_pick(repo, c1)
    match = content_merged(repo, c1, "HEAD", base=base)
    assert (match.kind, match.commit, match.ambiguous) == ("patch-equivalent", again, True)
    assert first != again


def test_odd_file_names_and_content_present(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "odd")
    name = "dir with space/ü [x]*.txt"
    base = commit(repo, {name: LINES, "plain.txt": LINES}, "base")
    checkout(repo, base, "stage")
    edit(repo, name, "line 10\n", "line ten\n", "odd name")
    x = edit(repo, "plain.txt", "line 10\n", "line ten\n", "plain name")
    checkout(repo, "main")
    configure(repo, {"core.quotePath": "false"})
    edit(repo, name, "line 11\n", "line eleven\n", "next to it")
    assert content_merged(repo, x, "HEAD", base=base).kind == "not-merged"
    text = (repo / name).read_text().replace("line 10\n", "line ten\n")
    both = commit(repo, {name: text, "plain.txt": LINES.replace("line 10\n", "line ten\n")}, "by hand")
    assert content_merged(repo, x, "HEAD", base=base).commit == both
    assert done_fingerprint(repo, base, x)["paths"] == ["dir with space/ü [x]*.txt", "plain.txt"]


def test_binary_files(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "bin")
    blob = bytes(range(256)) * 8
    (repo / "img.bin").write_bytes(blob)
    git(repo, "add", "img.bin")
    git(repo, "commit", "-q", "-m", "base")
    base = git(repo, "rev-parse", "HEAD")
    checkout(repo, base, "stage")
    (repo / "img.bin").write_bytes(blob[::-1])
    git(repo, "commit", "-q", "-am", "stage changes the image")
    x = git(repo, "rev-parse", "HEAD")
    checkout(repo, base, "other")
    (repo / "img.bin").write_bytes(blob + b"other")
    git(repo, "commit", "-q", "-am", "a different change to the same image")
    assert content_merged(repo, x, "HEAD", base=base).kind == "not-merged"
    checkout(repo, "main")
    commit(repo, {"z.txt": "z\n"}, "unrelated")
    tip = cherry_pick(repo, x)
    assert (content_merged(repo, x, "HEAD", base=base).kind, content_merged(repo, x, "HEAD").commit) == (
        "patch-equivalent",
        tip,
    )


def test_many_stages_at_once(task) -> None:
    repo = task.project.root
    base = commit(repo, {"a.txt": LINES}, "base")
    git(repo, "branch", task_branch(task), base)
    heads = {}
    for n, line in ((1, 5), (2, 15), (3, 25), (4, 35)):
        checkout(repo, base, stage_branch(task, n))
        heads[n] = edit(repo, "a.txt", f"line {line}\n", f"line {line} by stage {n}\n", f"stage {n}")
    checkout(repo, task_branch(task))
    git(repo, "merge", "-q", "--no-ff", "-m", "merge 2", heads[2])
    rebased = cherry_pick(repo, heads[1])
    checkout(repo, "main")
    ledger = plan_run_root(task).dir / LEDGER_NAME
    for n in (1, 2, 4):
        append_row(ledger, new_row(n, "done", head_commit=heads[n], base_ref=base))
    append_row(ledger, new_row(3, "done", head_commit="9" * 40))
    found = {s.stage: (s.kind, s.suggested) for s in reconcile.suggestions(task)}
    assert found == {1: ("patch-equivalent", rebased), 3: ("missing", None), 4: ("not-merged", None)}
    assert [s.stage for s in reconcile.suggestions(task, stages=[4])] == [4]
    # only the not-merged one awaits its handoff; the others need a person
    assert [s.stage for s in reconcile.suggestions(task) if s.awaits_handoff] == [4]


# ---- shallow clones ----


def test_shallow_clone_answers_unknown_not_not_merged(history, tmp_path: Path) -> None:
    repo, base, _, x = history
    clone = tmp_path / "shallow"
    git(tmp_path, "clone", "-q", "--depth", "1", "--no-single-branch", f"file://{repo}", str(clone))
    assert git(clone, "rev-parse", "--is-shallow-repository") == "true"
    # X and T are both there, but without their history: no merge-base
    match = content_merged(clone, x, "origin/main")
    assert match.kind == "unknown"
    # a commit the clone does not have: 'missing' cannot be told from a cut-off history
    stored = done_fingerprint(repo, base, x)
    assert content_merged(clone, "f" * 40, "origin/main", stored=stored).kind == "unknown"
    # in the full repository the same questions have real answers
    assert content_merged(repo, x, "main").kind == "not-merged"


def test_shallow_clone_still_finds_a_rebase_inside_its_depth(history, tmp_path: Path) -> None:
    repo, base, _, x = history
    cherry_pick(repo, f"{base}..{x}")
    clone = tmp_path / "shallow"
    git(tmp_path, "clone", "-q", "--depth", "5", "--no-single-branch", f"file://{repo}", str(clone))
    stored = done_fingerprint(repo, base, x)
    match = content_merged(clone, "e" * 40, "origin/main", stored=stored)
    assert match.kind == "patch-equivalent"


# ---- fingerprints are config-proof ----


def test_fingerprint_ignores_user_config(history) -> None:
    repo, base, _, x = history
    plain = done_fingerprint(repo, base, x)
    # they are git's own stable ids of the usual diff text …
    reference = subprocess.run(
        f"git diff {base} {x} | git patch-id --stable",
        shell=True,
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()[0]
    assert plain["change_patch_id"] == reference
    # … whatever the user's config does to that text
    configure(repo, HOSTILE_CONFIG)
    assert done_fingerprint(repo, base, x) == plain
    assert plain["paths"] == ["a.txt", "c.txt"] and len(plain["patch_ids"]) == 3 and plain["base_ref"] == base


def test_stored_ids_from_a_plain_config_match_under_a_hostile_one(history) -> None:
    repo, base, _, x = history
    stored = done_fingerprint(repo, base, x)
    tip = cherry_pick(repo, f"{base}..{x}")
    configure(repo, HOSTILE_CONFIG)
    assert content_merged(repo, "d" * 40, "HEAD", stored=stored).commit == tip


def test_inherited_git_variables_do_not_leak(history, monkeypatch, tmp_path: Path) -> None:
    repo, base, _, x = history
    other = make_repo(tmp_path / "other")
    monkeypatch.setenv("GIT_DIR", str(other / ".git"))
    monkeypatch.setenv("GIT_WORK_TREE", str(other))
    assert done_fingerprint(repo, base, x)["paths"] == ["a.txt", "c.txt"]


def test_paths_include_files_a_later_commit_of_the_stage_undid(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "undo")
    base = commit(repo, {"a.txt": "a\n"}, "base")
    checkout(repo, base, "stage")
    commit(repo, {"tmp.txt": "scratch\n", "a.txt": "a\nb\n"}, "add scratch")
    git(repo, "rm", "-q", "tmp.txt")
    git(repo, "commit", "-q", "-m", "drop scratch")
    x = git(repo, "rev-parse", "HEAD")
    assert done_fingerprint(repo, base, x)["paths"] == ["a.txt", "tmp.txt"]
    checkout(repo, "main")
    commit(repo, {"z.txt": "z\n"}, "unrelated")
    cherry_pick(repo, f"{base}..{x}")
    assert content_merged(repo, x, "HEAD", base=base).kind == "patch-equivalent"


# ---- done rows: fingerprint and pin ----


def stage_work(task, stage_n: int = 1) -> tuple[str, str]:
    """Task branch at a base, stage branch with two commits; returns (base, X)."""
    repo = task.project.root
    base = commit(repo, {"a.txt": LINES}, "base")
    git(repo, "branch", task_branch(task), base)
    checkout(repo, base, stage_branch(task, stage_n))
    edit(repo, "a.txt", "line 3\n", "line three\n", "stage work 1")
    x = edit(repo, "a.txt", "line 33\n", "line thirty-three\n", "stage work 2")
    checkout(repo, "main")
    return base, x


def done_rows(task) -> dict:
    return LedgerState.of(read_ledger(plan_run_root(task).dir / LEDGER_NAME).rows).done_rows()


def test_record_done_stores_fingerprint_and_pins(task, capsys) -> None:
    repo = task.project.root
    base, x = stage_work(task)
    code, out, err = call(
        capsys,
        "--project",
        str(repo),
        "record",
        "auth/login",
        "--stage",
        "1",
        "--status",
        "done",
        "--commit",
        x[:10],
        "--json",
    )
    assert code == 0, err
    row = done_rows(task)[1]
    assert row.head_commit == x and row.base_ref == base and row.paths == ["a.txt"]
    assert len(row.patch_ids) == 2 and row.change_patch_id
    assert json.loads(out)["patch_ids"] == row.patch_ids
    assert git(repo, "rev-parse", f"refs/okstra/auth-login/s1/{x}") == x


def test_record_uses_the_reserved_rows_base_ref(task, capsys) -> None:
    repo = task.project.root
    _base, x = stage_work(task)
    first = git(repo, "rev-parse", f"{x}~1")
    append_row(plan_run_root(task).dir / LEDGER_NAME, new_row(1, "reserved", run_id="r1", base_ref=first))
    call(capsys, "--project", str(repo), "record", "auth/login", "--stage", "1", "--status", "done", "--commit", x)
    row = done_rows(task)[1]
    assert row.base_ref == first and len(row.patch_ids) == 1 and row.run_id == "r1"


def test_the_pin_keeps_an_amended_commit_through_gc(task, capsys) -> None:
    repo = task.project.root
    _base, x = stage_work(task)
    call(capsys, "--project", str(repo), "record", "auth/login", "--stage", "1", "--status", "done", "--commit", x)
    checkout(repo, stage_branch(task, 1))
    git(repo, "commit", "-q", "--amend", "-m", "stage work 2, better message")
    amended = git(repo, "rev-parse", "HEAD")
    checkout(repo, "main")
    git(repo, "update-ref", f"refs/heads/{task_branch(task)}", amended)
    git(repo, "reflog", "expire", "--expire=now", "--all")
    git(repo, "gc", "-q", "--prune=now")
    assert git(repo, "cat-file", "-t", x) == "commit"  # the pin kept it
    [s] = reconcile.suggestions(task)
    assert (s.kind, s.suggested) == ("patch-equivalent", amended)


def test_a_commit_truly_gone_is_matched_by_stored_patch_ids(task, capsys) -> None:
    repo = task.project.root
    _base, x = stage_work(task)
    call(capsys, "--project", str(repo), "record", "auth/login", "--stage", "1", "--status", "done", "--commit", x)
    checkout(repo, stage_branch(task, 1))
    git(repo, "commit", "-q", "--amend", "-m", "stage work 2, reworded")
    amended = git(repo, "rev-parse", "HEAD")
    checkout(repo, "main")
    git(repo, "update-ref", f"refs/heads/{task_branch(task)}", amended)
    git(repo, "update-ref", "-d", f"refs/okstra/auth-login/s1/{x}")
    git(repo, "reflog", "expire", "--expire=now", "--all")
    git(repo, "gc", "-q", "--prune=now")
    assert git(repo, "cat-file", "-t", x, check=False) == ""  # gone
    [s] = reconcile.suggestions(task)
    assert (s.recorded, s.kind, s.suggested) == (x, "patch-equivalent", amended)
    # without the stored ids there is nothing to go on
    assert content_merged(repo, x, amended).kind == "missing"


def test_carry_backfill_stores_fingerprint_and_pins(task) -> None:
    from okstra_engine.carry import CarrySidecar, write_carry

    repo = task.project.root
    base, x = stage_work(task)
    write_carry(plan_run_root(task).dir, CarrySidecar(stage=1, head_commit=x[:9], impl_task_key=task.key))
    [row] = reconcile.backfill_done(task)
    assert (row.head_commit, row.base_ref, row.reason) == (x, base, "carry-backfill") and row.patch_ids
    assert done_rows(task)[1].patch_ids == row.patch_ids
    assert git(repo, "rev-parse", f"refs/okstra/auth-login/s1/{x}") == x
    assert reconcile.backfill_done(task) == []


# ---- suggestions, apply, auto-reconcile, guidance ----


def rebased_task(task, capsys) -> tuple[str, str, str]:
    """Stage 1 recorded at X, then rebased onto the task branch; returns (base, X, tip)."""
    repo = task.project.root
    base, x = stage_work(task)
    call(capsys, "--project", str(repo), "record", "auth/login", "--stage", "1", "--status", "done", "--commit", x)
    checkout(repo, task_branch(task))
    commit(repo, {"other.txt": "o\n"}, "task branch moves on")
    tip = cherry_pick(repo, f"{base}..{x}")
    checkout(repo, "main")
    return base, x, tip


def test_target_is_the_task_branch_else_head(task) -> None:
    repo = task.project.root
    assert reconcile.target_commit(task) == git(repo, "rev-parse", "HEAD")
    base, _ = stage_work(task)
    assert reconcile.target_commit(task) == base


def test_reconcile_json_then_apply(task, capsys) -> None:
    repo = str(task.project.root)
    _base, x, tip = rebased_task(task, capsys)
    code, out, err = call(capsys, "--project", repo, "reconcile", "auth/login", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["suggestions"] == [
        {"stage": 1, "recorded": x, "suggested": tip, "kind": "patch-equivalent", "ambiguous": False}
    ]
    assert doc["applied"] == []
    code, out, _ = call(capsys, "--project", repo, "reconcile", "auth/login")
    assert f"stage 1: {x[:8]} -> {tip[:8]} (patch-equivalent)" in out and "--apply" in out
    code, out, _ = call(capsys, "--project", repo, "reconcile", "auth/login", "--apply", "--json")
    doc = json.loads(out)
    assert doc["applied"][0]["reason"] == "auto-patch-id" and doc["applied"][0]["suggested"] == tip
    row = done_rows(task)[1]
    assert (row.head_commit, row.replaces, row.reason) == (tip, x, "auto-patch-id") and row.patch_ids
    assert git(task.project.root, "rev-parse", f"refs/okstra/auth-login/s1/{tip}") == tip
    assert git(task.project.root, "rev-parse", f"refs/okstra/auth-login/s1/{x}") == x  # old pin stays
    code, out, _ = call(capsys, "--project", repo, "reconcile", "auth/login", "--json")
    assert json.loads(out) == {"task": "auth/login", "suggestions": [], "applied": []}
    code, out, _ = call(capsys, "--project", repo, "reconcile", "auth/login")
    assert "every done stage" in out
    # status agrees: the stage is done and merged
    status = json.loads(call(capsys, "--project", repo, "status", "auth/login", "--json")[1])
    assert status["stages"][0]["done_commit"] == tip


def test_not_merged_stage_shows_the_fix(task, capsys) -> None:
    repo = task.project.root
    _base, x = stage_work(task)
    call(capsys, "--project", str(repo), "record", "auth/login", "--stage", "1", "--status", "done", "--commit", x)
    _code, out, _ = call(capsys, "--project", str(repo), "reconcile", "auth/login")
    assert f"stage 1: {x[:8]} -> - (not-merged)" in out
    assert f"merge --no-ff {stage_branch(task, 1)}" in out
    assert "okstra reconcile auth/login --stage 1 --commit SHA" in out
    _code, out, _ = call(capsys, "--project", str(repo), "reconcile", "auth/login", "--apply", "--json")
    assert json.loads(out)["applied"] == [] and done_rows(task)[1].head_commit == x


def test_manual_correction(task, capsys) -> None:
    repo = task.project.root
    _base, x = stage_work(task)
    call(capsys, "--project", str(repo), "record", "auth/login", "--stage", "1", "--status", "done", "--commit", x)
    checkout(repo, task_branch(task))
    squashed = squash_merge(repo, x)
    checkout(repo, "main")
    code, out, err = call(
        capsys, "--project", str(repo), "reconcile", "auth/login", "--stage", "1", "--commit", squashed[:8], "--json"
    )
    assert code == 0, err
    assert json.loads(out)["applied"] == [
        {
            "stage": 1,
            "recorded": x,
            "suggested": squashed,
            "kind": "squash-equivalent",
            "ambiguous": False,
            "reason": "manual",
        }
    ]
    row = done_rows(task)[1]
    assert (row.head_commit, row.replaces, row.reason) == (squashed, x, "manual")
    code, out, _ = call(capsys, "--project", str(repo), "reconcile", "auth/login", "--stage", "1", "--commit", squashed)
    assert code == 0 and "nothing to change" in out


def test_manual_correction_refusals(task, capsys) -> None:
    repo = str(task.project.root)
    code, _, err = call(capsys, "--project", repo, "reconcile", "auth/login", "--commit", "HEAD")
    assert code == 2 and "--commit needs --stage" in err
    code, _, err = call(capsys, "--project", repo, "reconcile", "auth/login", "--stage", "1", "--commit", "HEAD")
    assert code == 2 and "no done commit to correct" in err and "okstra record" in err
    call(capsys, "--project", repo, "record", "auth/login", "--stage", "1", "--status", "done", "--commit", "HEAD")
    code, _, err = call(capsys, "--project", repo, "reconcile", "auth/login", "--stage", "1", "--commit", "deadbeef")
    assert code == 2 and "names no commit" in err
    code, _, err = call(capsys, "--project", repo, "reconcile", "auth/login", "--stage", "9", "--commit", "HEAD")
    assert code == 2 and "not in the Stage Map" in err


def test_auto_reconcile_applies_only_unambiguous(task, capsys) -> None:
    _base, x, tip = rebased_task(task, capsys)
    [applied] = reconcile.auto_reconcile(task)
    assert applied.applied_line() == f"git-reconcile: stage 1 done commit {x[:8]} -> {tip[:8]} (patch-equivalent)"
    assert reconcile.auto_reconcile(task) == []


def test_auto_reconcile_leaves_an_ambiguous_match_to_a_person(task, capsys) -> None:
    repo = task.project.root
    base, x = stage_work(task)
    call(capsys, "--project", str(repo), "record", "auth/login", "--stage", "1", "--status", "done", "--commit", x)
    checkout(repo, task_branch(task))
    commit(repo, {"other.txt": "o\n"}, "task branch moves on")
    cherry_pick(repo, f"{base}..{x}")
    git(repo, "revert", "--no-edit", "HEAD~2..HEAD")
    again = cherry_pick(repo, f"{base}..{x}")
    checkout(repo, "main")
    [s] = reconcile.suggestions(task)
    assert (s.kind, s.suggested, s.ambiguous, s.applicable) == ("patch-equivalent", again, True, True)
    assert reconcile.auto_reconcile(task) == []
    _code, out, _ = call(capsys, "--project", str(repo), "reconcile", "auth/login", "--apply", "--json")
    assert json.loads(out)["applied"][0]["suggested"] == again  # a person asked: applied


def test_apply_skips_a_suggestion_overtaken_by_another_row(task, capsys) -> None:
    _base, _x, _tip = rebased_task(task, capsys)
    found = reconcile.suggestions(task)
    assert reconcile.apply(task, found) and reconcile.apply(task, found) == []
    rows = read_ledger(plan_run_root(task).dir / LEDGER_NAME).rows
    assert [r.reason for r in rows if r.status == "done"] == [None, "auto-patch-id"]


def test_guidance_for_a_missing_stage_commit(task, capsys) -> None:
    repo = task.project.root
    append_row(plan_run_root(task).dir / LEDGER_NAME, new_row(2, "done", head_commit="c" * 40))
    [s] = reconcile.suggestions(task)
    assert s.kind == "missing"
    assert reconcile.fix_guidance(task, 2) == (
        "record the commit that holds stage 2's work: okstra reconcile auth/login --stage 2 --commit SHA"
    )
    stage_work(task)
    hint = reconcile.fix_guidance(task, 1, suggested="abc")
    assert f"git -C {repo} merge --no-ff {stage_branch(task, 1)}" in hint and "--commit abc" in hint


def test_reconcile_console_script(task, capsys) -> None:
    from tests.support import run_cli

    _base, _x, tip = rebased_task(task, capsys)
    code, out, err = run_cli("--project", str(task.project.root), "reconcile", "auth/login", "--json")
    assert code == 0, err
    assert json.loads(out)["suggestions"][0]["suggested"] == tip


def test_reconcile_cli_stays_light() -> None:
    code = "import okstra_engine.cli, okstra_engine.reconcile, okstra_engine.record\nimport sys; print(' '.join(sys.modules))"
    loaded = set(
        subprocess.run(
            [__import__("sys").executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.split()
    )
    assert not loaded & {"textual", "rich", "git", "okstra_tui"}


def test_reconcile_in_a_project_without_git(tmp_path: Path, plan_file: Path, capsys) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    call(capsys, "init", str(plain), "--qa-command", "true")
    call(capsys, "--project", str(plain), "task", "new", "a/b", "--title", "T")
    call(capsys, "--project", str(plain), "plan", "import", "a/b", str(plan_file), "--approve")
    call(capsys, "--project", str(plain), "record", "a/b", "--stage", "1", "--status", "done")
    code, out, _ = call(capsys, "--project", str(plain), "reconcile", "a/b")
    assert code == 0 and "not a git repository" in out
    assert json.loads(call(capsys, "--project", str(plain), "reconcile", "a/b", "--json")[1])["suggestions"] == []


@pytest.mark.parametrize("extra", [[], ["--apply"], ["--json"], ["--commit", "HEAD"]])
def test_a_stage_the_plan_does_not_have_is_exit_2(task, capsys, extra) -> None:
    code, out, err = call(
        capsys, "--project", str(task.project.root), "reconcile", str(task.ref), "--stage", "99", *extra
    )
    assert code == 2 and "99" in err and "Traceback" not in err
    assert out == ""
