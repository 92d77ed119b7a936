"""The engine's clock and id source, and the supported way to pin them."""

from __future__ import annotations

from datetime import UTC, datetime

from okstra_engine import clock
from okstra_engine.ledger import new_row
from okstra_engine.runs import new_run_id

NOW = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)


def test_pinned_stamps_and_token_fix_new_ids_while_time_runs() -> None:
    with clock.pinned(stamps=NOW, token="5a0b1c"):
        assert new_run_id("implementation", 4) == "20250314T093000Z-implementation-s4-5a0b1c"
        assert new_run_id("planning") == "20250314T093000Z-planning-5a0b1c"
        assert clock.now() > NOW  # reservations still age by the real clock
        assert clock.stamp(datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)) == "20240102T030405Z"  # a given time is kept
    assert new_run_id("planning") != "20250314T093000Z-planning-5a0b1c"


def test_pinned_time_is_the_time_everything_writes_and_nests() -> None:
    with clock.pinned(time=NOW):
        assert clock.now() == NOW and clock.iso() == "2025-03-14T09:30:00Z"
        assert new_row(1, "reserved").ts == "2025-03-14T09:30:00Z"
        assert new_run_id("planning").startswith("20250314T093000Z-planning-")
        with clock.pinned(token="abcdef"):
            assert clock.token() == "abcdef" and clock.now() != NOW
        assert clock.now() == NOW
    assert clock.now() != NOW
