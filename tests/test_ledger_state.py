"""The ledger's state: folding is incremental, the state answers every derived question as
the rows themselves do, and the cross-process cache never answers for a file it does not
match byte for byte."""

from __future__ import annotations

import itertools
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from okstra_engine.carry import CarrySidecar, missing_done_rows
from okstra_engine.fsio import append_line
from okstra_engine.ledger import IN_FLIGHT, LedgerRow, append_row, format_ts, new_row, pid_alive, read_ledger
from okstra_engine.ledger_state import CACHE_AFTER_LINES, LedgerFollower, LedgerState, read_state

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
STAGES = (1, 2, 3)
TTL_HOURS = 24

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
        st.sampled_from(["reserved", "started", "done", "released", "reopened"]),
        st.sampled_from([None, "", "r1", "r2", "r3"]),
        st.sampled_from([None, 1, 2**22]),  # 2**22: beyond pid_max, never alive
        st.sampled_from([None, "aaaa1111", "bbbb2222", "cccc3333"]),
        st.sampled_from([None, "aaaa1111", "dddd4444"]),
        st.sampled_from([None, "base1", "base2"]),
        st.sampled_from(["here", "elsewhere"]),
        st.integers(0, 60 * 24 * 3),
    ),
    max_size=40,
)
SIDECARS = {
    n: CarrySidecar(stage=n, head_commit=commit, impl_task_key="k")
    for n, commit in zip(STAGES, ("aaaa1111", "bbbb", "dddd4444"))
}


# ---- what okstra derived from every row before the state existed: the reference


def rows_latest(rows: list[LedgerRow]) -> dict[int, LedgerRow]:
    return {row.stage: row for row in rows}


def rows_latest_done(rows: list[LedgerRow]) -> dict[int, LedgerRow]:
    """Each stage's latest done row, unless a reopened row came after it."""
    found: dict[int, LedgerRow] = {}
    for row in rows:
        if row.status == "done":
            found[row.stage] = row
        elif row.status == "reopened":
            found.pop(row.stage, None)
    return found


def rows_last_run_id(rows: list[LedgerRow], stage: int) -> str | None:
    return next((r.run_id for r in reversed(rows) if r.stage == stage and r.run_id), None)


def rows_base_ref(rows: list[LedgerRow], stage: int) -> str | None:
    return next((r.base_ref for r in reversed(rows) if r.stage == stage and r.base_ref), None)


def rows_reservations(rows: list[LedgerRow]) -> dict[int, tuple]:
    """Each in-flight stage's (latest row, streak run id, streak start time, stale?): a
    streak starts at a stage's first row and at every row with a new run id."""
    streaks: dict[int, list] = {}  # stage -> [run id, start row, last pid]
    for row in rows:
        streak = streaks.get(row.stage)
        if streak is None or (row.run_id and row.run_id != streak[0]):
            streak = streaks[row.stage] = [row.run_id, row, None]
        if row.pid is not None:
            streak[2] = row.pid
    found = {}
    for stage, (run_id, start, pid) in streaks.items():
        row = rows_latest(rows)[stage]
        if row.status not in IN_FLIGHT:
            continue
        dead = pid is not None and row.host == "here" and not pid_alive(pid)
        silent = (NOW - row.when).total_seconds() > TTL_HOURS * 3600
        found[stage] = (row, run_id, start.when, dead or silent)
    return found


def rows_missing_done(rows: list[LedgerRow]) -> list[tuple]:
    known: dict[int, set[str]] = {}
    for row in rows:
        if row.status == "done":
            known.setdefault(row.stage, set()).update(c for c in (row.head_commit, row.replaces) if c)
    return [
        (stage, sidecar.head_commit, rows_last_run_id(rows, stage))
        for stage, sidecar in sorted(SIDECARS.items())
        if not any(sidecar.head_commit.startswith(c) or c.startswith(sidecar.head_commit) for c in known.get(stage, ()))
    ]


def from_rows(rows: list[LedgerRow]) -> dict:
    return {
        "latest": rows_latest(rows),
        "done": rows_latest_done(rows),
        "run": {n: rows_last_run_id(rows, n) for n in STAGES},
        "base": {n: rows_base_ref(rows, n) for n in STAGES},
        "flying": rows_reservations(rows),
        "missing": rows_missing_done(rows),
    }


def from_state(state: LedgerState) -> dict:
    flying = state.reservations(ttl_hours=TTL_HOURS, now=NOW, host="here")
    return {
        "latest": state.latest_rows(),
        "done": state.done_rows(),
        "run": {n: state.run_id(n) for n in STAGES},
        "base": {n: state.base_ref(n) for n in STAGES},
        "flying": {n: (r.row, r.run_id, r.since, r.stale) for n, r in flying.items()},
        "missing": [(r.stage, r.head_commit, r.run_id) for r in missing_done_rows(state, SIDECARS)],
    }


@settings(max_examples=300, deadline=None)
@given(rows_strategy)
def test_the_state_answers_every_question_as_all_rows_do(rows: list[LedgerRow]) -> None:
    assert from_state(LedgerState.of(rows)) == from_rows(rows)


@settings(max_examples=300, deadline=None)
@given(rows_strategy, st.lists(st.integers(0, 40), max_size=5))
def test_folding_in_parts_is_folding_at_once(rows: list[LedgerRow], cuts: list[int]) -> None:
    state, warnings = LedgerState(), []
    for start, end in itertools.pairwise([0, *sorted(cuts), len(rows)]):  # the follower's and the cache's way
        before = state
        state = state.fold(rows[start:end], [f"lines {start}-{end}"])
        assert before == LedgerState.of(rows[:start], warnings)  # a fold leaves the state it started from alone
        warnings.append(f"lines {start}-{end}")
    assert state == LedgerState.of(rows, warnings)


def test_a_stage_ledger_holds_what_its_rows_say() -> None:
    rows = [
        new_row(1, "reserved", run_id="r1", base_ref="b" * 40, pid=11),
        new_row(1, "started", pid=12),
        new_row(1, "done", head_commit="a" * 40),
        new_row(1, "done", head_commit="c" * 40, replaces="a" * 40, reason="manual"),
        new_row(1, "reserved", run_id="r2"),
    ]
    [(n, stage)] = LedgerState.of(rows).stages.items()
    assert (n, stage.latest, stage.done, stage.run_id, stage.base_ref) == (1, rows[4], rows[3], "r2", "b" * 40)
    assert (stage.streak.start, stage.streak.run_id, stage.streak.pid) == (rows[4], "r2", None)
    assert stage.done_commits == {"a" * 40, "c" * 40} and stage.in_flight


def test_a_reopen_takes_the_done_back_and_keeps_its_commits() -> None:
    rows = [
        new_row(1, "done", head_commit="a" * 40),
        new_row(1, "reopened", replaces="a" * 40, reason="done by mistake"),
    ]
    stage = LedgerState.of(rows).stages[1]
    assert (stage.latest, stage.done, stage.in_flight) == (rows[1], None, False)
    assert stage.done_commits == {"a" * 40}  # an old carry sidecar does not make it done again
    again = new_row(1, "done", head_commit="c" * 40)
    assert LedgerState.of([*rows, again]).done_rows() == {1: again}


# ---- the readers


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


def full(ledger: Path) -> LedgerState:
    read = read_ledger(ledger)
    return LedgerState.of(read.rows, read.warnings)


def test_read_state_caches_a_long_ledger_and_resumes_from_it(tmp_path: Path) -> None:
    ledger = tmp_path / "consumers.jsonl"
    fill(ledger, CACHE_AFTER_LINES - 1)
    assert read_state(ledger) == full(ledger) and cache_files() == []  # short: not worth a write
    fill(ledger, 500, start=CACHE_AFTER_LINES)
    assert read_state(ledger) == full(ledger)
    [cache] = cache_files()
    before = cache.read_bytes()
    append_row(ledger, new_row(2, "done", run_id="late", head_commit="f" * 40))
    current = read_state(ledger)
    assert current == full(ledger) and current.done_rows()[2].run_id == "late"
    assert cache.read_bytes() == before  # one appended line is parsed, not cached again


@pytest.mark.parametrize(
    "change", ["edit-in-place", "replace", "truncate", "garbage-cache", "older-cache", "cache-naming-no-row"]
)
def test_a_cache_that_does_not_match_the_file_is_ignored(tmp_path: Path, change: str) -> None:
    ledger = tmp_path / "consumers.jsonl"
    fill(ledger, 300)
    read_state(ledger)
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
    elif change == "older-cache":  # an earlier okstra's cache, matching the file: its layout is not this one
        doc = json.loads(cache.read_bytes())
        cache.write_text(json.dumps({**doc, "v": 1, "stages": []}))
    elif change == "cache-naming-no-row":
        doc = json.loads(cache.read_bytes())
        cache.write_text(json.dumps({**doc, "stages": [{**doc["stages"][0], "latest": len(doc["rows"])}]}))
    else:
        cache.write_bytes(b'{"v":2,"ledger":')
    assert read_state(ledger) == full(ledger)


def test_torn_and_bad_lines_are_reported_as_read_ledger_reports_them(tmp_path: Path) -> None:
    ledger = tmp_path / "consumers.jsonl"
    fill(ledger, 200)
    append_line(ledger, "not json")
    fill(ledger, 100, start=200)
    read_state(ledger)  # cached, with the bad line's warning
    with ledger.open("ab") as handle:  # a crash mid-append
        handle.write(b'{"v":1,"ts":"2026-01-01T00:00:00Z","stage":2,')
    current = read_state(ledger)
    assert current == full(ledger)
    assert current.warnings == (
        "consumers.jsonl line 201: not valid JSON; skipped",
        "consumers.jsonl line 302: torn write (no newline at the end); skipped",
    )


def test_an_unwritable_home_only_costs_the_cache(tmp_path: Path, monkeypatch) -> None:
    blocker = tmp_path / "home-is-a-file"
    blocker.write_text("")
    monkeypatch.setenv("OKSTRA_HOME", str(blocker))
    ledger = tmp_path / "consumers.jsonl"
    fill(ledger, 300)
    assert read_state(ledger) == full(ledger)


def test_a_follower_starts_from_the_cache_and_keeps_following(tmp_path: Path) -> None:
    ledger = tmp_path / "consumers.jsonl"
    fill(ledger, 400)
    read_state(ledger)  # a command left the cache
    follower = LedgerFollower(ledger, cached=True)
    assert follower.read() == full(ledger) and follower.fresh_lines == 0 and follower.lines == 400
    append_row(ledger, new_row(4, "done", run_id="r-late", head_commit="e" * 40))
    assert follower.read() == full(ledger) and follower.fresh_lines == 1


def test_a_follower_handles_a_shrunk_file(tmp_path: Path) -> None:
    ledger = tmp_path / "consumers.jsonl"
    fill(ledger, 20)
    follower = LedgerFollower(ledger)
    follower.read()
    ledger.write_bytes(ledger.read_bytes()[: ledger.read_bytes().index(b"\n") + 1])  # cut in place, same inode
    assert follower.read() == full(ledger) and sorted(follower.read().stages) == [1]
