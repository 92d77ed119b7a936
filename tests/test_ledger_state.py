"""The ledger's present: the deciding rows answer every derived question as all rows do,
and the cross-process cache never answers for a file it does not match byte for byte."""

from __future__ import annotations

import itertools
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from okstra_engine.carry import CarrySidecar, missing_done_rows
from okstra_engine.fsio import append_line
from okstra_engine.ledger import (
    LedgerRow,
    append_row,
    format_ts,
    last_run_id,
    latest_by_stage,
    latest_done_by_stage,
    new_row,
    read_ledger,
    reservations,
)
from okstra_engine.ledger_state import CACHE_AFTER_LINES, deciding_rows, read_current
from okstra_engine.reconcile import stage_base_ref

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
STAGES = (1, 2, 3)

rows_strategy = st.lists(
    st.builds(
        lambda stage, status, run, pid, head, replaces, base, host, minutes: LedgerRow(
            ts=format_ts(NOW - timedelta(minutes=minutes)),
            stage=stage,
            status=status,
            run_id=run,
            pid=pid,
            head_commit=head,
            replaces=replaces,
            base_ref=base,
            host=host,
        ),
        st.sampled_from(STAGES),
        st.sampled_from(["reserved", "started", "done", "released"]),
        st.sampled_from([None, "r1", "r2", "r3"]),
        st.sampled_from([None, 1, 2**22]),  # 2**22: beyond pid_max, never alive
        st.sampled_from([None, "aaaa1111", "bbbb2222", "cccc3333"]),
        st.sampled_from([None, "aaaa1111", "dddd4444"]),
        st.sampled_from([None, "base1", "base2"]),
        st.sampled_from(["here", "elsewhere"]),
        st.integers(0, 60 * 24 * 3),
    ),
    max_size=40,
)


def answers(rows: list[LedgerRow]) -> dict:
    sidecars = {
        n: CarrySidecar(stage=n, head_commit=commit, impl_task_key="k")
        for n, commit in zip(STAGES, ("aaaa1111", "bbbb", "dddd4444"))
    }
    return {
        "latest": latest_by_stage(rows),
        "done": latest_done_by_stage(rows),
        "run": {n: last_run_id(rows, n) for n in STAGES},
        "base": {n: stage_base_ref(rows, n) for n in STAGES},
        "flying": reservations(rows, ttl_hours=24, now=NOW, host="here"),
        "missing": [(r.stage, r.head_commit, r.run_id) for r in missing_done_rows(rows, sidecars)],
    }


@settings(max_examples=300, deadline=None)
@given(rows_strategy)
def test_deciding_rows_answer_every_question_as_all_rows_do(rows: list[LedgerRow]) -> None:
    kept = deciding_rows(rows)
    assert answers(kept) == answers(rows)
    assert [id(r) for r in kept] == sorted((id(r) for r in kept), key=[id(r) for r in rows].index)


@settings(max_examples=300, deadline=None)
@given(rows_strategy, st.lists(st.integers(0, 40), max_size=5))
def test_reducing_as_rows_are_appended_answers_as_all_rows_do(rows: list[LedgerRow], cuts: list[int]) -> None:
    kept: list[LedgerRow] = []
    bounds = [0, *sorted(cuts), len(rows)]
    for start, end in itertools.pairwise(bounds):  # the follower's and the cache's way
        kept = deciding_rows(kept + rows[start:end])
    assert answers(kept) == answers(rows)


def test_a_long_ledger_keeps_a_few_rows_per_stage() -> None:
    rows = []
    for i in range(2000):
        stage = i % 10 + 1
        status = ("reserved", "started", "done", "released")[i % 4]
        rows.append(new_row(stage, status, run_id=f"run-{i // 40}", head_commit="a" * 40 if status == "done" else None))
    assert len(deciding_rows(rows)) <= 10 * 4


def fill(ledger: Path, count: int, start: int = 0) -> None:
    lines = [
        new_row(i % 5 + 1, ("reserved", "started")[i % 2], run_id=f"r{i}").to_line()
        for i in range(start, start + count)
    ]
    with ledger.open("a") as handle:
        handle.write("\n".join(lines) + "\n")


def cache_files() -> list[Path]:
    folder = Path(os.environ["OKSTRA_HOME"]) / "cache" / "ledgers"
    return sorted(folder.glob("*.json")) if folder.exists() else []


def same(a, b) -> bool:
    return answers(a.rows) == answers(b.rows) and a.warnings == b.warnings


def test_read_current_caches_a_long_ledger_and_resumes_from_it(tmp_path: Path) -> None:
    ledger = tmp_path / "consumers.jsonl"
    fill(ledger, CACHE_AFTER_LINES - 1)
    assert same(read_current(ledger), read_ledger(ledger)) and cache_files() == []  # short: not worth a write
    fill(ledger, 500, start=CACHE_AFTER_LINES)
    assert same(read_current(ledger), read_ledger(ledger))
    [cache] = cache_files()
    before = cache.read_bytes()
    append_row(ledger, new_row(2, "done", run_id="late", head_commit="f" * 40))
    current = read_current(ledger)
    assert same(current, read_ledger(ledger)) and latest_done_by_stage(current.rows)[2].run_id == "late"
    assert cache.read_bytes() == before  # one appended line is parsed, not cached again


@pytest.mark.parametrize("change", ["edit-in-place", "replace", "truncate", "garbage-cache"])
def test_a_cache_that_does_not_match_the_file_is_ignored(tmp_path: Path, change: str) -> None:
    ledger = tmp_path / "consumers.jsonl"
    fill(ledger, 300)
    read_current(ledger)
    [cache] = cache_files()
    data = ledger.read_bytes()
    if change == "edit-in-place":  # same inode, same length, one row changed mid-file
        at = data.index(b'"stage":3')
        with ledger.open("r+b") as handle:
            handle.seek(at)
            handle.write(b'"stage":4')
        append_row(ledger, new_row(1, "started", run_id="x"))
    elif change == "replace":
        other = tmp_path / "other.jsonl"
        fill(other, 10, start=1000)
        os.replace(other, ledger)
    elif change == "truncate":
        ledger.write_bytes(data[: len(data) // 2].rsplit(b"\n", 1)[0] + b"\n")
    else:
        cache.write_bytes(b'{"v":1,"ledger":')
    assert same(read_current(ledger), read_ledger(ledger))


def test_torn_and_bad_lines_are_reported_as_read_ledger_reports_them(tmp_path: Path) -> None:
    ledger = tmp_path / "consumers.jsonl"
    fill(ledger, 200)
    append_line(ledger, "not json")
    fill(ledger, 100, start=200)
    read_current(ledger)  # cached, with the bad line's warning
    with ledger.open("ab") as handle:  # a crash mid-append
        handle.write(b'{"v":1,"ts":"2026-01-01T00:00:00Z","stage":2,')
    current, full = read_current(ledger), read_ledger(ledger)
    assert same(current, full)
    assert current.warnings == [
        "consumers.jsonl line 201: not valid JSON; skipped",
        "consumers.jsonl line 302: torn write (no newline at the end); skipped",
    ]


def test_an_unwritable_home_only_costs_the_cache(tmp_path: Path, monkeypatch) -> None:
    blocker = tmp_path / "home-is-a-file"
    blocker.write_text("")
    monkeypatch.setenv("OKSTRA_HOME", str(blocker))
    ledger = tmp_path / "consumers.jsonl"
    fill(ledger, 300)
    assert same(read_current(ledger), read_ledger(ledger))


def test_a_follower_starts_from_the_cache_and_keeps_following(tmp_path: Path) -> None:
    from okstra_engine.ledger_state import LedgerFollower

    ledger = tmp_path / "consumers.jsonl"
    fill(ledger, 400)
    read_current(ledger)  # a command left the cache
    follower = LedgerFollower(ledger, cached=True)
    assert same(follower.read(), read_ledger(ledger)) and follower.fresh_lines == 0 and follower.lines == 400
    append_row(ledger, new_row(4, "done", run_id="r-late", head_commit="e" * 40))
    assert same(follower.read(), read_ledger(ledger)) and follower.fresh_lines == 1
