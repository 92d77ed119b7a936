"""The target index reconcile keeps between runs (`okstra_engine.target_index`): every
kind found again from it, what a second call and a target that moved forward ask git,
and an index that is deleted, torn, damaged or of another object format."""

from __future__ import annotations

import os
import subprocess
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from okstra_engine import git as okgit
from okstra_engine import reconcile, target_index
from okstra_engine.ledger import LEDGER_NAME, append_row, new_row
from okstra_engine.plans import plan_run_root
from okstra_engine.reconcile import content_merged, done_fingerprint
from okstra_engine.tasks import stage_branch, task_branch
from tests.support import commit, git, make_repo
from tests.test_reconcile import LINES, checkout, cherry_pick, edit, squash_merge


@pytest.fixture(autouse=True, params=["one", "two"])
def walk_strategy(request, monkeypatch) -> None:
    """Every test with each way of making a first walk (one git process, or two)."""
    monkeypatch.setattr(target_index, "walk_strategy", request.param)


@pytest.fixture
def history(tmp_path: Path):
    """base; a 3-commit stage on `stage` (a.txt lines 10 and 20, a new c.txt); `main`
    moves on with an unrelated commit."""
    repo = make_repo(tmp_path / "hist")
    base = commit(repo, {"a.txt": LINES, "b.txt": "b\n"}, "base")
    checkout(repo, base, "stage")
    edit(repo, "a.txt", "line 10\n", "line ten\n", "s1")
    edit(repo, "a.txt", "line 20\n", "line twenty\n", "s2")
    x = commit(repo, {"c.txt": "new\n"}, "s3")
    checkout(repo, "main")
    commit(repo, {"b.txt": "b\nmore\n"}, "unrelated")
    return repo, base, x


def stored_row(repo: Path, base: str, x: str) -> dict:
    """What a done row at x holds: the commit, its base and its fingerprint."""
    return {**done_fingerprint(repo, base, x), "head_commit": x}


@pytest.fixture(autouse=True)
def _walks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(target_index, "walks", [])


def index_files() -> list[Path]:
    folder = Path(os.environ["OKSTRA_HOME"]) / "cache" / "reconcile"
    return sorted(folder.glob("*.idx")) if folder.is_dir() else []


def forget() -> None:
    """A new process: nothing of the index in memory, only its file."""
    target_index._STORES.clear()


def walked() -> int:
    assert target_index.walks is not None
    return len(target_index.walks)


def listed(repo: Path, tip: str, base: str) -> list[str]:
    """The commits of `tip ^base` in git's order."""
    return git(repo, "rev-list", tip, f"^{base}").split()


def answer(match: reconcile.Match) -> tuple:
    return match.kind, match.commit, match.ambiguous


# ---- every kind, then again from the index ----


def ancestor(repo: Path, base: str, x: str) -> str:
    git(repo, "merge", "-q", "--no-ff", "-m", "merge stage", "stage")
    return "ancestor"


def patch_equivalent(repo: Path, base: str, x: str) -> str:
    cherry_pick(repo, f"{base}..{x}")
    commit(repo, {"b.txt": "b\nmore\nlater\n"}, "after the rebase")
    return "patch-equivalent"


def squash_equivalent(repo: Path, base: str, x: str) -> str:
    squash_merge(repo, "stage")
    return "squash-equivalent"


def content_present(repo: Path, base: str, x: str) -> str:
    edit(repo, "a.txt", "line 8\n", "line eight\n", "edit near line 10")
    text = (repo / "a.txt").read_text().replace("line 10\n", "line ten\n").replace("line 20\n", "line twenty\n")
    commit(repo, {"a.txt": text, "c.txt": "new\n"}, "squash by hand")
    commit(repo, {"d.txt": "d\n"}, "later, elsewhere")
    return "content-present"


def not_merged(repo: Path, base: str, x: str) -> str:
    edit(repo, "a.txt", "line 30\n", "line thirty\n", "other work on the same file")
    return "not-merged"


def ambiguous(repo: Path, base: str, x: str) -> str:
    cherry_pick(repo, f"{base}..{x}")
    git(repo, "revert", "--no-edit", "HEAD~3..HEAD")
    cherry_pick(repo, f"{base}..{x}")
    return "patch-equivalent"


@pytest.mark.parametrize(
    "scenario", [ancestor, patch_equivalent, squash_equivalent, content_present, not_merged, ambiguous]
)
def test_every_kind_again_from_the_index(history, scenario: Callable[[Path, str, str], str]) -> None:
    repo, base, x = history
    stored = stored_row(repo, base, x)
    kind = scenario(repo, base, x)
    first = content_merged(repo, x, "HEAD", base=base, stored=stored)
    assert first.kind == kind
    before = walked()
    forget()
    again = content_merged(repo, x, "HEAD", base=base, stored=stored)
    assert answer(again) == answer(first)
    assert walked() == before  # the range came from the file: git walked nothing
    # and the index agrees with an answer made without it
    for f in index_files():
        f.unlink()
    forget()
    assert answer(content_merged(repo, x, "HEAD", base=base, stored=stored)) == answer(first)


def test_missing_and_unknown_again_from_the_index(history, tmp_path: Path) -> None:
    repo, base, x = history
    stored = stored_row(repo, base, x)
    tip = cherry_pick(repo, f"{base}..{x}")
    gone = "0123456789abcdef0123456789abcdef01234567"
    row = {**stored, "head_commit": gone}
    for _ in range(2):
        forget()
        assert answer(content_merged(repo, gone, "HEAD", stored=row)) == ("patch-equivalent", tip, False)
    git(repo, "reset", "-q", "--hard", base)
    for _ in range(2):
        forget()
        assert content_merged(repo, gone, "HEAD", stored=row).kind == "missing"
    # no shared history at all: unknown, however often asked
    other = tmp_path / "other"
    git(tmp_path, "init", "-q", "-b", "main", str(other))
    commit(other, {"z.txt": "z\n"}, "unrelated root")
    git(repo, "fetch", "-q", str(other), "main:unrelated")
    for _ in range(2):
        forget()
        assert content_merged(repo, x, "unrelated", base=base, stored=stored).kind == "unknown"


def stage_one(task) -> tuple[Path, str, str]:
    """A base on the task branch, and stage 1's one commit on its own branch."""
    repo = task.project.root
    base = commit(repo, {"a.txt": LINES}, "base")
    git(repo, "branch", task_branch(task), base)
    checkout(repo, base, stage_branch(task, 1))
    return repo, base, edit(repo, "a.txt", "line 5\n", "line five\n", "stage 1")


def test_rewritten_again_from_the_index(task) -> None:
    repo, base, x = stage_one(task)
    ledger = plan_run_root(task).dir / LEDGER_NAME
    append_row(ledger, new_row(1, "done", **stored_row(repo, base, x)))
    git(repo, "commit", "-q", "--amend", "-m", "stage 1, amended")
    amended = git(repo, "rev-parse", "HEAD")
    checkout(repo, "main")
    for _ in range(2):
        forget()
        [found] = reconcile.suggestions(task)
        assert (found.kind, found.suggested) == ("rewritten", amended)


# ---- what a second call and a moving target ask git ----


def test_a_second_call_walks_nothing_and_one_new_commit_walks_one(history) -> None:
    repo, base, x = history
    stored = stored_row(repo, base, x)
    tip = cherry_pick(repo, f"{base}..{x}")
    assert content_merged(repo, x, "HEAD", base=base, stored=stored).commit == tip
    start = walked()
    forget()
    assert content_merged(repo, x, "HEAD", base=base, stored=stored).commit == tip
    assert walked() == start
    # the task branch moves on by one commit: only that commit is walked
    old = git(repo, "rev-parse", "HEAD")
    new = commit(repo, {"b.txt": "b\nmore\nnewer\n"}, "one more")
    forget()
    assert content_merged(repo, x, "HEAD", base=base, stored=stored).commit == tip
    assert target_index.walks[start:] == [(new, (old, base), 1)]
    # and the joined range is the one a fresh walk gives, in git's order
    forget()
    index = target_index.open_index(repo)
    assert index is not None
    joined = index.range(new, base, stored["paths"])
    assert joined.order == listed(repo, new, base)
    # the branch goes back a commit: answered without walking
    git(repo, "reset", "-q", "--hard", old)
    forget()
    before = walked()
    assert content_merged(repo, x, "HEAD", base=base, stored=stored).commit == tip
    assert walked() == before


def test_a_force_pushed_target_is_walked_again(history) -> None:
    repo, base, x = history
    stored = stored_row(repo, base, x)
    tip = cherry_pick(repo, f"{base}..{x}")
    assert content_merged(repo, x, "HEAD", base=base, stored=stored).commit == tip
    # the target is rewritten: its tip no longer descends from the one walked
    git(repo, "reset", "-q", "--hard", "HEAD~3")
    git(repo, "commit", "-q", "--amend", "-m", "unrelated, reworded")
    redone = cherry_pick(repo, f"{base}..{x}")
    start = walked()
    forget()
    assert answer(content_merged(repo, x, "HEAD", base=base, stored=stored)) == ("patch-equivalent", redone, False)
    assert [w[1] for w in target_index.walks[start:]][-1] == (base,)  # a whole walk since the base
    # rewritten to drop the stage: not merged, not the old answer
    git(repo, "reset", "-q", "--hard", "HEAD~3")
    forget()
    assert content_merged(repo, x, "HEAD", base=base, stored=stored).kind == "not-merged"


def test_two_stages_with_different_bases_share_one_walk(task) -> None:
    repo = task.project.root
    base = commit(repo, {"a.txt": LINES, "b.txt": LINES}, "base")
    git(repo, "branch", task_branch(task), base)
    checkout(repo, base, stage_branch(task, 1))
    x1 = edit(repo, "a.txt", "line 5\n", "line five\n", "stage 1")
    checkout(repo, task_branch(task))
    git(repo, "merge", "-q", "--no-ff", "-m", "merge stage 1", x1)
    base2 = git(repo, "rev-parse", "HEAD")
    checkout(repo, base2, stage_branch(task, 2))
    x2 = edit(repo, "b.txt", "line 7\n", "line seven\n", "stage 2")
    checkout(repo, task_branch(task))
    commit(repo, {"c.txt": "c\n"}, "other work")
    rebased = cherry_pick(repo, x2)
    checkout(repo, "main")
    ledger = plan_run_root(task).dir / LEDGER_NAME
    append_row(ledger, new_row(1, "done", **stored_row(repo, base, x1)))
    append_row(ledger, new_row(2, "done", **stored_row(repo, base2, x2)))
    start = walked()
    found = {s.stage: (s.kind, s.suggested) for s in reconcile.suggestions(task)}
    assert found == {2: ("patch-equivalent", rebased)}  # stage 1 is in T: no suggestion
    t = git(repo, "rev-parse", task_branch(task))
    assert target_index.walks[start:] == [(t, (base,), 4)]  # one walk for both stages
    forget()
    start = walked()
    assert {s.stage: (s.kind, s.suggested) for s in reconcile.suggestions(task)} == found
    assert walked() == start


# ---- an index that is gone, torn, damaged, or of another format ----


def reconciled_once(history) -> tuple[Path, str, str, dict, str]:
    repo, base, x = history
    stored = stored_row(repo, base, x)
    tip = cherry_pick(repo, f"{base}..{x}")
    assert content_merged(repo, x, "HEAD", base=base, stored=stored).commit == tip
    assert len(index_files()) == 1
    return repo, base, x, stored, tip


def test_a_deleted_index_is_an_empty_one(history) -> None:
    repo, base, x, stored, tip = reconciled_once(history)
    for f in index_files():
        f.unlink()
    forget()
    start = walked()
    assert content_merged(repo, x, "HEAD", base=base, stored=stored).commit == tip
    assert walked() == start + 1
    assert index_files()  # written again


@pytest.mark.parametrize("cut", [1, 10, 100, 1000])
def test_a_torn_index_is_read_up_to_the_tear(history, cut: int) -> None:
    repo, base, x, stored, tip = reconciled_once(history)
    [file] = index_files()
    data = file.read_bytes()
    file.write_bytes(data[: max(len(data) - cut, 0)])
    forget()
    assert answer(content_merged(repo, x, "HEAD", base=base, stored=stored)) == ("patch-equivalent", tip, False)
    # what it wrote after the tear is read back whole
    forget()
    start = walked()
    assert content_merged(repo, x, "HEAD", base=base, stored=stored).commit == tip
    assert walked() == start


def flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


def test_a_damaged_block_is_skipped(history) -> None:
    repo, base, x, stored, tip = reconciled_once(history)
    [file] = index_files()
    data = file.read_bytes()
    # one bit of the walk's body: its checksum fails, the walk is made again
    walk_at = data.index(b"\nW\t") + 10
    file.write_bytes(flip(data, walk_at))
    forget()
    start = walked()
    assert content_merged(repo, x, "HEAD", base=base, stored=stored).commit == tip
    assert walked() == start + 1
    # the walk written after the damaged one is read back
    forget()
    assert content_merged(repo, x, "HEAD", base=base, stored=stored).commit == tip
    assert walked() == start + 1


def block(body: str, fmt: str = "sha1") -> bytes:
    data = body.encode()
    return target_index.MAGIC + f"{fmt} {len(data)} {zlib.crc32(data):08x}\n".encode() + data


def test_a_block_with_a_bad_record_is_not_trusted(history) -> None:
    repo, base, x, stored, tip = reconciled_once(history)
    [file] = index_files()
    t = git(repo, "rev-parse", "HEAD")
    # well-formed blocks (their checksums hold) whose records are not what a walk writes
    lies = [
        f"W\t{t}\t{base}\t-\t1\t1\t0\ta.txt\n{'z' * 40}\ta.txt\n{t}\t1\t{base}\n",  # not hex
        f"W\t{t}\t{base}\t-\t2\t0\t0\ta.txt\n{t}\t1\t{base}\n",  # fewer commits than it says
        f"W\t{t[:39]}\t{base}\t-\t0\t0\t0\n",  # a short tip
        f"P\n{tip}\t{'g' * 40}\n",  # a patch-id that is no hex
        f"W\t{t}\t{base}\t-\t1\t0\t0\ta.txt\n{t}\tnow\t{base}\n",  # a time that is no number
        f"W\t{t}\t{base}\t-\t1\t0\t2\ta.txt\n{t}\t1\t{base}\n",  # stacked neither 0 nor 1
    ]
    file.write_bytes(b"".join(block(lie) for lie in lies) + b"garbage line\n")
    forget()
    start = walked()
    assert answer(content_merged(repo, x, "HEAD", base=base, stored=stored)) == ("patch-equivalent", tip, False)
    assert walked() == start + 1
    forget()
    assert answer(content_merged(repo, x, "HEAD", base=base, stored=stored)) == ("patch-equivalent", tip, False)
    assert walked() == start + 1


def test_a_sha256_repository_has_its_own_index(tmp_path: Path) -> None:
    repo = tmp_path / "sha256"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main", "--object-format=sha256")
    base = commit(repo, {"a.txt": LINES}, "base")
    assert len(base) == 64
    checkout(repo, base, "stage")
    x = edit(repo, "a.txt", "line 10\n", "line ten\n", "s1")
    checkout(repo, "main")
    commit(repo, {"b.txt": "b\n"}, "unrelated")
    stored = stored_row(repo, base, x)
    tip = cherry_pick(repo, x)
    # a sha1 block lying about this very range is never read
    folder = Path(os.environ["OKSTRA_HOME"]) / "cache" / "reconcile"
    folder.mkdir(parents=True)
    file = target_index.index_file(okgit.repo_facts(repo)[0], "sha256")  # type: ignore[index]
    assert file is not None and file.name.endswith("-sha256.idx")
    file.write_bytes(block(f"W\t{tip}\t{base}\t-\t0\n", "sha1"))
    for _ in range(2):
        forget()
        assert answer(content_merged(repo, x, "HEAD", base=base, stored=stored)) == ("patch-equivalent", tip, False)
    assert b" sha256 " in file.read_bytes()


def test_no_usable_home_still_answers(history, monkeypatch, tmp_path: Path) -> None:
    repo, base, x = history
    stored = stored_row(repo, base, x)
    tip = cherry_pick(repo, f"{base}..{x}")
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the okstra home's folders should be")
    monkeypatch.setenv("OKSTRA_HOME", str(blocked))
    assert content_merged(repo, x, "HEAD", base=base, stored=stored).commit == tip


# ---- git's order ----


def test_the_order_joined_or_narrowed_is_gits(tmp_path: Path) -> None:
    """Merges of topics whose commits are older than the mainline's, a clock that went
    back, and equal times: the index orders a range exactly as `git rev-list`."""
    repo = make_repo(tmp_path / "order")
    when = iter(range(1_600_000_000, 1_700_000_000, 1000))

    def at(seconds: int | None = None) -> dict[str, str]:
        stamp = f"@{seconds if seconds is not None else next(when)} +0000"
        return {**os.environ, "GIT_COMMITTER_DATE": stamp, "GIT_AUTHOR_DATE": stamp}

    def make(message: str, seconds: int | None = None, *extra: str) -> str:
        subprocess.run(
            ["git", "commit", "-q", "--allow-empty", "-m", message, *extra], cwd=repo, env=at(seconds), check=True
        )
        return git(repo, "rev-parse", "HEAD")

    base = make("base")
    checkout(repo, base, "topic")
    for n in range(3):
        make(f"old topic {n}")
    checkout(repo, "main")
    tips = []
    for n in range(4):
        make(f"main {n}")
        tips.append(make(f"main {n} again", 1_650_000_000))  # equal times, and back in time
    subprocess.run(["git", "merge", "-q", "--no-ff", "-m", "merge topic", "topic"], cwd=repo, env=at(), check=True)
    tips.append(git(repo, "rev-parse", "HEAD"))
    make("after", 1_600_000_500)
    tips.append(git(repo, "rev-parse", "HEAD"))
    index = target_index.TargetIndex(repo, "sha1", None)
    for tip in tips:  # each joined from the one before (or walked)
        assert index.range(tip, base, ["x"]).order == listed(repo, tip, base)
    for tip in tips:  # each narrowed from the newest, walked once
        fresh = target_index.TargetIndex(repo, "sha1", None)
        fresh.range(tips[-1], base, ["x"])
        start = walked()
        assert fresh.range(tip, base, ["x"]).order == listed(repo, tip, base)
        assert walked() == start


def test_odd_path_names_survive_the_index(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "odd")
    names = ["tab\there.txt", "new\nline.txt", "\nleading newline.txt", "back\\slash.txt", "ü [x]*.txt"]
    base = commit(repo, dict.fromkeys(names, LINES), "base")
    checkout(repo, base, "stage")
    for name in names:
        x = edit(repo, name, "line 10\n", "line ten\n", f"edit {name!r}")
    checkout(repo, "main")
    commit(repo, {"other.txt": "o\n"}, "unrelated")
    stored = stored_row(repo, base, x)
    assert sorted(stored["paths"]) == sorted(names)
    tip = cherry_pick(repo, f"{base}..{x}")
    for _ in range(2):
        forget()
        assert answer(content_merged(repo, x, "HEAD", base=base, stored=stored)) == ("patch-equivalent", tip, False)
    index = target_index.open_index(repo)
    assert index is not None
    found = index.range(git(repo, "rev-parse", "HEAD"), base, names)
    assert sorted(p for ps in found.paths.values() for p in ps) == sorted(names)


def test_a_done_row_with_an_abbreviated_commit_is_still_found_in_the_target(task) -> None:
    """A range is searched for the done commit as a string: a short one is asked of git."""
    repo, base, x = stage_one(task)
    checkout(repo, task_branch(task))
    git(repo, "merge", "-q", "--no-ff", "-m", "merge stage 1", x)
    checkout(repo, "main")
    ledger = plan_run_root(task).dir / LEDGER_NAME
    append_row(ledger, new_row(1, "done", **{**stored_row(repo, base, x), "head_commit": x[:12]}))
    assert reconcile.suggestions(task) == []


def test_a_second_call_asks_git_only_to_resolve(history, monkeypatch) -> None:
    repo, base, x = history
    stored = stored_row(repo, base, x)
    tip = cherry_pick(repo, f"{base}..{x}")
    assert content_merged(repo, x, "HEAD", base=base, stored=stored).commit == tip
    forget()
    asked: list[str] = []
    real = subprocess.Popen

    class Counted(real):  # type: ignore[misc, valid-type]
        def __init__(self, args, *rest, **kwargs) -> None:
            asked.append(" ".join(a for a in args[1:] if not a.startswith("-"))[:40])
            super().__init__(args, *rest, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", Counted)
    assert content_merged(repo, x, "HEAD", base=base, stored=stored).commit == tip
    # the target, the repository's identity, whether x is there: no walk, no diff
    assert [a.split(" ")[0] for a in asked] == ["rev-parse", "rev-parse", "cat-file"]


def test_a_commit_that_also_changes_other_files_is_not_hashed_but_keeps_its_place(history) -> None:
    """Its patch-id hashes a file outside the stage's paths, so it matches no id of the
    stage: not made; content-present still finds it."""
    repo, base, x = history
    stored = stored_row(repo, base, x)
    assert sorted(stored["paths"]) == ["a.txt", "c.txt"]
    edit(repo, "a.txt", "line 8\n", "line eight\n", "edit near line 10")
    text = (repo / "a.txt").read_text().replace("line 10\n", "line ten\n").replace("line 20\n", "line twenty\n")
    squashed = commit(repo, {"a.txt": text, "c.txt": "new\n", "b.txt": "b\nmore\nand more\n"}, "squash, and b")
    edit(repo, "a.txt", "line 1\n", "line one\n", "later edit of the same file")
    for _ in range(2):
        forget()
        assert answer(content_merged(repo, x, "HEAD", base=base, stored=stored)) == ("content-present", squashed, False)
    index = target_index.open_index(repo)
    assert index is not None
    assert squashed not in index.store.ids  # never hashed
    assert index.store.hashed[squashed] == ("a.txt", "b.txt")
    # a rebase that also touches b.txt in one of its commits cannot be patch-equivalent
    checkout(repo, base, "again")
    commit(repo, {"b.txt": "b\nmore\n"}, "unrelated")
    cherry_pick(repo, f"{base}..{x}~1")
    commit(repo, {"c.txt": "new\n", "b.txt": "b\nmore\nb\n"}, "s3 with more")
    forget()
    assert content_merged(repo, x, "HEAD", base=base, stored=stored).kind == "content-present"


def test_tree_diffs_split_between_two_processes_say_what_one_says(history, monkeypatch) -> None:
    repo, base, x = history
    cherry_pick(repo, f"{base}..{x}")
    commits = git(repo, "rev-list", "--no-merges", "HEAD", f"^{base}").split()
    paths = ["a.txt", "c.txt"]
    monkeypatch.setattr(okgit, "PARALLEL_DIFFS_FROM", 10**6)
    alone = okgit.paths_touched(repo, commits, paths)
    hashed_alone = okgit.hashed_paths(repo, commits)
    monkeypatch.setattr(okgit, "PARALLEL_DIFFS_FROM", 2)
    split = okgit.paths_touched(repo, commits, paths)
    assert split == alone and list(split) == list(alone)
    assert len(alone) == 3 and all(alone.values())  # the three copies of the stage's commits
    hashed_split = okgit.hashed_paths(repo, commits)
    assert hashed_split == hashed_alone and list(hashed_split) == list(hashed_alone) == commits
    assert sorted(p for ps in hashed_alone.values() for p in ps) == ["a.txt", "a.txt", "b.txt"]


def test_many_paths_asked_as_their_folders_say_what_the_paths_say(tmp_path: Path, monkeypatch) -> None:
    """Past `PATHSPEC_ITEMS`, git is asked about the paths' folders and what it lists is
    filtered: a commit changing only a neighbour of the paths in the same folder is not
    among those touching them, for either way of walking."""
    repo = make_repo(tmp_path / "deep")
    base = commit(repo, {"t/unit/a.c": "a\n", "t/unit/b.c": "b\n", "t/other.sh": "o\n", "top.txt": "t\n"}, "base")
    mine = commit(repo, {"t/unit/a.c": "a2\n", "top.txt": "t2\n"}, "touches the paths")
    commit(repo, {"t/other.sh": "o2\n", "t/unit/c.c": "c\n"}, "a neighbour only")
    both = commit(repo, {"t/unit/b.c": "b2\n", "t/other.sh": "o3\n"}, "one of each")
    tip = git(repo, "rev-parse", "HEAD")
    commits = git(repo, "rev-list", tip, f"^{base}").split()
    paths = ["t/unit/a.c", "t/unit/b.c", "top.txt"]
    answers = []
    for items in (10**6, 1):
        monkeypatch.setattr(okgit, "PATHSPEC_ITEMS", items)
        _, walked = okgit.walk_range_paths(repo, tip, [base], paths)
        answers.append((okgit.paths_touched(repo, commits, paths), walked))
    assert answers[0] == answers[1]
    assert answers[1][0] == {both: ["t/unit/b.c"], mine: ["t/unit/a.c", "top.txt"]}
    assert list(answers[1][1]) == [both, mine]


@pytest.mark.parametrize("packed", [False, True], ids=["loose", "packed"])
def test_a_replace_ref_is_never_answered_from_the_index(history, packed: bool) -> None:
    """`git replace` makes git show another commit in place of one: what a range holds
    changes with no commit changing, so while a replace ref stands nothing of the index is
    used or kept, and the answer is git's of now."""
    repo, base, x, stored, tip = reconciled_once(history)
    # the copy of the stage on HEAD is shown as a commit that changes something else
    git(repo, "checkout", "-q", "--detach", f"{tip}~1")
    other = commit(repo, {"b.txt": "b\nnot the stage\n"}, "something else")
    checkout(repo, "main")
    git(repo, "replace", tip, other)
    if packed:
        git(repo, "pack-refs", "--all")
        assert not list((repo / ".git" / "refs" / "replace").iterdir())
    before = index_files()[0].stat().st_size
    forget()
    assert content_merged(repo, x, tip, base=base, stored=stored).kind != "patch-equivalent"
    assert index_files()[0].stat().st_size == before  # nothing kept while replaced
    git(repo, "replace", "-d", tip)
    forget()
    assert content_merged(repo, x, tip, base=base, stored=stored).commit == tip
