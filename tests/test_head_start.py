"""The head start of `okstra reconcile` and `okstra prepare` (`okstra_engine.head_start`):
the target index is warmed from a guess while the engine loads, the engine then asks
nothing twice, and a wrong or hostile guess changes no answer."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from okstra_engine import head_start, target_index
from okstra_engine.ledger import LEDGER_NAME, append_row, new_row
from okstra_engine.plans import plan_run_root
from okstra_engine.tasks import task_branch
from tests.support import call, commit, git
from tests.test_reconcile import checkout, cherry_pick
from tests.test_reconcile_cache import stage_one, stored_row


class _Walks(list):
    """`target_index.walks`, also saying which thread asked git for each walk."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: list[str] = []

    def append(self, item) -> None:
        self.threads.append(threading.current_thread().name)
        super().append(item)


@pytest.fixture(autouse=True)
def _no_head_start_left(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(target_index, "_warmed", None)
    monkeypatch.setattr(target_index, "_ahead", None)


@pytest.fixture
def walks(monkeypatch: pytest.MonkeyPatch) -> _Walks:
    found = _Walks()
    monkeypatch.setattr(target_index, "walks", found)
    target_index._STORES.clear()  # a new process: nothing of the index in memory
    return found


@pytest.fixture
def rebased(task):
    """Stage 1 done at x, then copied onto the task branch after other work: reconcile
    finds it patch-equivalent. Returns (task, the copy)."""
    repo, base, x = stage_one(task)
    append_row(plan_run_root(task).dir / LEDGER_NAME, new_row(1, "done", **stored_row(repo, base, x)))
    checkout(repo, task_branch(task))
    commit(repo, {"other.txt": "other\n"}, "other work")
    copy = cherry_pick(repo, x)
    checkout(repo, "main")
    return task, copy


def reconcile_json(capsys, task) -> tuple[int, dict | str]:
    code, out, err = call(capsys, "--project", str(task.project.root), "reconcile", str(task.ref), "--json")
    return code, (json.loads(out) if code == 0 else err)


def test_the_engine_takes_the_walk_the_head_start_made(rebased, walks, capsys) -> None:
    task, copy = rebased
    code, found = reconcile_json(capsys, task)
    assert code == 0
    assert [(s["stage"], s["kind"], s["suggested"]) for s in found["suggestions"]] == [(1, "patch-equivalent", copy)]
    assert walks.threads == ["okstra-head-start"]  # one walk, made ahead; the engine asked for none


def test_without_a_head_start_the_engine_walks_itself(rebased, walks, capsys, monkeypatch) -> None:
    """The test above fails when the engine does not take what the head start warmed."""
    task, copy = rebased
    monkeypatch.setattr(head_start, "begin", lambda project, ref: None)
    _, found = reconcile_json(capsys, task)
    assert [(s["kind"], s["suggested"]) for s in found["suggestions"]] == [("patch-equivalent", copy)]
    assert walks.threads == ["MainThread"]


def test_a_target_that_moved_after_the_guess_is_reconciled_as_it_is_now(rebased, walks) -> None:
    task, copy = rebased
    repo = task.project.root
    guessed = head_start.warm(repo, task.ref.group, task.ref.id)
    assert guessed is not None and guessed.t == copy
    # the branch moves on before the engine asks: the guess is for another T
    checkout(repo, task_branch(task))
    later = commit(repo, {"more.txt": "more\n"}, "more work")
    checkout(repo, "main")
    target_index.run_ahead(lambda: guessed)
    from okstra_engine import reconcile

    [found] = reconcile.suggestions(task)
    assert (found.kind, found.suggested) == ("patch-equivalent", copy)
    assert target_index.target(repo, later) is not guessed


def _tamper(task, what: str) -> None:
    folder = task.dir
    ledger = plan_run_root(task).dir / LEDGER_NAME
    if what == "task.json not JSON":
        (folder / "task.json").write_text("{not json")
    elif what == "pointer leaves the task":
        pointer = json.loads((folder / "current-plan.json").read_text())
        (folder / "current-plan.json").write_text(json.dumps({**pointer, "run": "../../.."}))
    elif what == "rows of the wrong types":
        ledger.write_text(
            "\n".join(
                json.dumps(row)
                for row in (
                    {"stage": 1, "status": "done", "head_commit": "zz", "base_ref": 7, "paths": "a.txt"},
                    {"stage": "1", "status": "done", "head_commit": None, "paths": [None]},
                    {"stage": 1, "status": "done", "head_commit": "a" * 40, "base_ref": "b" * 40, "paths": ["a\0b"]},
                )
            )
            + "\n"
        )
    elif what == "ledger is a link":
        elsewhere = folder.parent / "elsewhere.jsonl"
        elsewhere.write_bytes(ledger.read_bytes())
        ledger.unlink()
        os.symlink(elsewhere, ledger)


TAMPERED = ["task.json not JSON", "pointer leaves the task", "rows of the wrong types", "ledger is a link"]


@pytest.mark.parametrize("what", TAMPERED)
def test_a_hostile_guess_changes_no_answer_and_says_nothing(rebased, walks, capsys, monkeypatch, what) -> None:
    task, _ = rebased
    _tamper(task, what)
    with_head_start = call(capsys, "--project", str(task.project.root), "reconcile", str(task.ref), "--json")
    assert target_index._warmed is None
    monkeypatch.setattr(head_start, "begin", lambda project, ref: None)
    target_index._STORES.clear()
    without = call(capsys, "--project", str(task.project.root), "reconcile", str(task.ref), "--json")
    assert with_head_start == without  # the same exit code, output and message
    assert "okstra-head-start" not in walks.threads


def test_one_head_start_at_a_time(tmp_path: Path) -> None:
    """A command that ended before it reconciled may leave its head start at work: the
    next one waits for it, so two never use the index at once."""
    ended = []

    def slow():
        time.sleep(0.3)
        ended.append("first")

    target_index.run_ahead(slow)
    target_index.run_ahead(lambda: ended.append("second"))
    target_index._wait_for_head_start()
    assert ended == ["first", "second"]


def test_a_guess_that_cannot_start_leaves_nothing_running(tmp_path: Path, walks) -> None:
    head_start.begin(str(tmp_path / "no such project"), "auth/login")
    head_start.begin(None, "not a ref")
    target_index._wait_for_head_start()
    assert target_index._warmed is None and walks == []


def test_a_second_look_in_the_same_process_reads_none_of_its_own_writes(rebased, walks) -> None:
    """What a process appended to the index is already in its memory: the next open
    neither reads it again nor holds the walk twice."""
    task, copy = rebased
    repo = task.project.root
    base = git(repo, "rev-parse", f"{copy}~2")
    index = target_index.open_index(repo)
    assert index is not None and index.file is not None
    index.range(copy, base, ["a.txt"])
    again = target_index.open_index(repo)
    assert again is not None and again.store is index.store
    assert again.store.offset == index.file.stat().st_size
    assert [len(blocks) for blocks in again.store.walks.values()] == [1]
