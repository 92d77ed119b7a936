from __future__ import annotations

from pathlib import Path

from okstra_engine.carry import CarrySidecar, backfill_done_from_carry, read_carry, write_carry
from okstra_engine.ledger import LEDGER_NAME, append_row, new_row, read_ledger
from okstra_engine.ledger_state import LedgerState


def test_backfill_appends_missing_done_once(tmp_path: Path) -> None:
    write_carry(tmp_path, CarrySidecar(stage=2, head_commit="b" * 40, impl_task_key="auth-login", summary="done"))
    append_row(tmp_path / LEDGER_NAME, new_row(2, "reserved", run_id="r2"))
    added = backfill_done_from_carry(tmp_path)
    assert [(r.stage, r.reason, r.run_id) for r in added] == [(2, "carry-backfill", "r2")]
    assert backfill_done_from_carry(tmp_path) == []
    assert LedgerState.of(read_ledger(tmp_path / LEDGER_NAME).rows).done_rows()[2].head_commit == "b" * 40


def test_a_correction_is_not_undone_by_an_old_sidecar(tmp_path: Path) -> None:
    ledger = tmp_path / LEDGER_NAME
    write_carry(tmp_path, CarrySidecar(stage=1, head_commit="a" * 40, impl_task_key="k"))
    append_row(ledger, new_row(1, "done", head_commit="a" * 40))
    append_row(ledger, new_row(1, "done", head_commit="c" * 40, replaces="a" * 40, reason="auto-patch-id"))
    assert backfill_done_from_carry(tmp_path) == []


def test_abbreviated_sidecar_commit_matches(tmp_path: Path) -> None:
    write_carry(tmp_path, CarrySidecar(stage=1, head_commit="abcdef12", impl_task_key="k"))
    append_row(tmp_path / LEDGER_NAME, new_row(1, "done", head_commit="abcdef12" + "0" * 32))
    assert backfill_done_from_carry(tmp_path) == []


def test_bad_sidecars_are_reported_not_fatal(tmp_path: Path) -> None:
    carry = tmp_path / "carry"
    carry.mkdir()
    (carry / "stage-1.json").write_text("{not json")
    (carry / "stage-2.json").write_text('{"stage": 3, "head_commit": "abcd1234", "impl_task_key": "k"}')
    (carry / "stage-4.json").write_text('{"stage": 4, "impl_task_key": "k"}')
    (carry / "notes.txt").write_text("ignored")
    read = read_carry(tmp_path)
    assert read.sidecars == {}
    assert len(read.warnings) == 3
    assert any("stage-4.json: field 'head_commit'" in w for w in read.warnings)
