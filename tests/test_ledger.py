from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from okstra_engine.fsio import append_line
from okstra_engine.ledger import (
    LedgerRow,
    append_row,
    format_ts,
    hostname,
    new_row,
    parse_ledger,
    read_ledger,
)
from okstra_engine.ledger_state import LedgerFollower, LedgerState, Reservation


def reservations(rows: list[LedgerRow], **options) -> dict[int, Reservation]:
    return LedgerState.of(rows).reservations(**options)


def test_append_and_read_round_trip(tmp_path: Path) -> None:
    ledger = tmp_path / "consumers.jsonl"
    append_row(ledger, new_row(1, "reserved", run_id="r1"))
    append_row(ledger, new_row(1, "done", run_id="r1", head_commit="a" * 40))
    read = read_ledger(ledger)
    assert read.warnings == []
    assert [(r.stage, r.status) for r in read.rows] == [(1, "reserved"), (1, "done")]
    assert ledger.read_text().count("\n") == 2


def test_unknown_fields_are_kept(tmp_path: Path) -> None:
    ledger = tmp_path / "consumers.jsonl"
    ledger.write_text('{"v":2,"ts":"2026-01-01T00:00:00Z","stage":3,"status":"started","future":{"x":1}}\n')
    row = read_ledger(ledger).rows[0]
    assert row.model_dump()["future"] == {"x": 1}
    append_row(ledger, row)
    assert json.loads(ledger.read_text().splitlines()[1])["future"] == {"x": 1}


def test_torn_last_line_is_skipped_and_next_append_not_glued(tmp_path: Path) -> None:
    ledger = tmp_path / "consumers.jsonl"
    append_row(ledger, new_row(1, "reserved", run_id="r1"))
    with ledger.open("a") as handle:
        handle.write('{"v":1,"ts":"2026-01-01T00:00:00Z","sta')  # crash mid-write
    read = read_ledger(ledger)
    assert len(read.rows) == 1
    assert read.warnings == ["consumers.jsonl line 2: torn write (no newline at the end); skipped"]
    append_row(ledger, new_row(2, "reserved", run_id="r2"))
    read = read_ledger(ledger)
    assert [r.stage for r in read.rows] == [1, 2]
    assert read.warnings == ["consumers.jsonl line 2: not valid JSON; skipped"]


def test_malformed_row_is_named_with_line_and_field(tmp_path: Path) -> None:
    ledger = tmp_path / "consumers.jsonl"
    append_row(ledger, new_row(1, "reserved"))
    append_line(ledger, '{"v":1,"ts":"x","stage":"two","status":"done"}')
    append_line(ledger, '{"v":1,"ts":"x","stage":2,"status":"finished"}')
    read = read_ledger(ledger)
    assert len(read.rows) == 1
    assert "line 2: field 'stage'" in read.warnings[0]
    assert "line 3: field 'status'" in read.warnings[1]


def test_two_objects_on_one_line_are_not_two_rows() -> None:
    row = '{"v":1,"ts":"2026-01-01T00:00:00Z","stage":1,"status":"reserved"}'
    read = parse_ledger(f"{row},{row}\n{row}\n".encode())
    assert len(read.rows) == 1
    assert "line 1" in read.warnings[0]


def test_latest_done_is_last_in_file_order() -> None:
    rows = [
        new_row(1, "done", head_commit="a" * 40),
        new_row(2, "done", head_commit="b" * 40),
        new_row(1, "done", head_commit="c" * 40, replaces="a" * 40, reason="manual"),
    ]
    latest = LedgerState.of(rows).done_rows()
    assert latest[1].head_commit == "c" * 40
    assert latest[2].head_commit == "b" * 40


def _at(moment: datetime, stage: int, status: str, **kw) -> LedgerRow:
    return LedgerRow(ts=format_ts(moment), stage=stage, status=status, host=hostname(), **kw)


def test_in_flight_and_superseded() -> None:
    now = datetime.now(UTC)
    rows = [
        _at(now, 1, "reserved", run_id="r1"),
        _at(now, 1, "done", run_id="r1", head_commit="a" * 40),
        _at(now, 2, "reserved", run_id="r2"),
        _at(now, 3, "reserved", run_id="r3"),
        _at(now, 3, "released", run_id="r3"),
        _at(now, 4, "reserved", run_id="r4"),
        _at(now, 4, "started", run_id="r4"),
    ]
    flying = reservations(rows, ttl_hours=24, now=now)
    assert sorted(flying) == [2, 4]
    assert not flying[2].stale and flying[4].run_id == "r4"


def test_stale_by_dead_pid_on_this_host() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    now = datetime.now(UTC)
    rows = [_at(now, 1, "reserved", run_id="r1", pid=proc.pid), _at(now, 2, "reserved", run_id="r2", pid=os.getpid())]
    flying = reservations(rows, ttl_hours=24, now=now)
    assert flying[1].stale and f"pid {proc.pid}" in flying[1].stale_reason
    assert not flying[2].stale


def test_pid_on_another_host_is_not_judged_here() -> None:
    now = datetime.now(UTC)
    row = LedgerRow(ts=format_ts(now), stage=1, status="reserved", host="elsewhere", pid=2**22 + 7)
    assert not reservations([row], ttl_hours=24, now=now)[1].stale


def test_stale_by_ttl_and_started_refreshes() -> None:
    now = datetime.now(UTC)
    old = now - timedelta(hours=30)
    flying = reservations([_at(old, 1, "reserved", run_id="r1")], ttl_hours=24, now=now)
    assert flying[1].stale and "TTL 24 h" in flying[1].stale_reason
    refreshed = reservations(
        [_at(old, 1, "reserved", run_id="r1"), _at(now - timedelta(hours=1), 1, "started", run_id="r1")],
        ttl_hours=24,
        now=now,
    )
    assert not refreshed[1].stale
    assert refreshed[1].since == old.replace(microsecond=0)


def test_no_pid_reservation_from_exited_cli_is_in_flight_not_stale() -> None:
    now = datetime.now(UTC)
    assert not reservations([_at(now, 1, "reserved", run_id="r1")], ttl_hours=24, now=now)[1].stale


def test_concurrent_appends_never_interleave(tmp_path: Path) -> None:
    ledger = tmp_path / "consumers.jsonl"
    script = (
        "import sys; from pathlib import Path; from okstra_engine.ledger import append_row, new_row\n"
        "for i in range(200): append_row(Path(sys.argv[1]), new_row(int(sys.argv[2]), 'started', run_id='x'*200))\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, str(ledger), str(n)]) for n in range(1, 5)]
    assert all(p.wait() == 0 for p in procs)
    read = read_ledger(ledger)
    assert read.warnings == [] and len(read.rows) == 800


row_dicts = st.fixed_dictionaries(
    {
        "ts": st.text(max_size=30),
        "stage": st.integers(-5, 10**12),
        "status": st.sampled_from(["reserved", "started", "done", "released", "bogus"]),
    },
    optional={"v": st.integers(), "run_id": st.one_of(st.none(), st.text()), "pid": st.integers(), "extra": st.text()},
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=80), row_dicts.map(lambda d: json.dumps(d).encode())), max_size=12))
def test_reader_never_crashes_on_hostile_lines(lines: list[bytes]) -> None:
    read = parse_ledger(b"\n".join(lines))
    for row in read.rows:
        assert row.status in ("reserved", "started", "done", "released")
    # every non-blank line is either a row or a warning, never silently lost
    nonblank = [l for l in b"\n".join(lines).split(b"\n") if l.strip()]
    assert len(read.rows) + len(read.warnings) == len(nonblank)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.integers(1, 5), st.sampled_from(["reserved", "started", "done", "released"])), max_size=30)
)
def test_round_trip_of_valid_rows(tmp_path_factory, entries) -> None:
    ledger = tmp_path_factory.mktemp("l") / "consumers.jsonl"
    for stage, status in entries:
        append_row(ledger, new_row(stage, status, run_id=f"r{stage}"))
    read = read_ledger(ledger)
    assert [(r.stage, r.status) for r in read.rows] == entries and read.warnings == []


def test_follower_reads_only_what_was_appended(tmp_path: Path) -> None:
    ledger = tmp_path / "consumers.jsonl"
    follower = LedgerFollower(ledger)
    assert follower.read() == LedgerState()
    append_row(ledger, new_row(1, "reserved", run_id="r1"))
    assert sorted(follower.read().stages) == [1]
    with ledger.open("ab") as handle:  # a writer mid-line: not a row yet, not a warning
        handle.write(b'{"v":1,"ts":"2026-01-01T00:00:00Z","stage":2,')
    read = follower.read()
    assert sorted(read.stages) == [1] and read.warnings == ()
    with ledger.open("ab") as handle:
        handle.write(b'"status":"reserved"}\n')
    append_row(ledger, new_row(3, "started"))
    assert sorted(follower.read().stages) == [1, 2, 3]
    assert follower.read() == LedgerState.of(read_ledger(ledger).rows)


def test_follower_names_bad_lines_by_their_number_and_survives_replacement(tmp_path: Path) -> None:
    ledger = tmp_path / "consumers.jsonl"
    append_row(ledger, new_row(1, "reserved"))
    follower = LedgerFollower(ledger)
    follower.read()
    append_line(ledger, "not json")
    append_row(ledger, new_row(2, "reserved"))
    read = follower.read()
    assert sorted(read.stages) == [1, 2] and read.warnings == ("consumers.jsonl line 2: not valid JSON; skipped",)
    replacement = tmp_path / "new.jsonl"
    append_row(replacement, new_row(7, "done"))
    os.replace(replacement, ledger)
    assert sorted(follower.read().stages) == [7]
