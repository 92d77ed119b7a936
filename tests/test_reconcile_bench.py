"""benchmarks/reconcile_bench.py still runs against the engine: every synthetic shape,
small, one run each. The bench itself checks that reconcile finds each case's kind on the
first call (cache deleted) and the second (cache kept), and that `git cherry` agrees."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "reconcile_bench.py"


@pytest.mark.slow
def test_every_synthetic_case_runs_and_finds_its_kind(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--runs", "1", "--sizes", "120"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    rows = proc.stdout.splitlines()[1:]
    for label in ("mid-rebase", "root-fork", "squash", "8 stages"):
        for call in ("1st call", "1st, in process", "2nd call", "2nd, in process"):
            assert any(f"reconcile 120 {label}, {call}" in row for row in rows), (label, call, rows)
    assert any("skipped: pass --real PATH" in row for row in rows)
    assert "CACHE_GLOB" not in proc.stderr, proc.stderr


def test_run_passes_a_real_repository_to_the_reconcile_bench_only(tmp_path: Path) -> None:
    """`benchmarks/run.py --real PATH` hands PATH to the reconcile bench, which checks it
    before any case: a path that is no repository fails that bench at once, naming it."""
    missing = tmp_path / "no repository"
    proc = subprocess.run(
        [sys.executable, str(BENCH.with_name("run.py")), "--quick", "--real", str(missing), "reconcile"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 1
    assert f"FAILED reconcile_bench.py: exit 1: ['reconcile_bench: --real {missing} is not a git repository']" in (
        proc.stdout
    )
