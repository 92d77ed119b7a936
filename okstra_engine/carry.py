"""Carry sidecars: `carry/stage-N.json`, written by the lead when stage N is finished.

They are the source of truth for completion: a `done` row the lead failed to append is
recovered from its sidecar (backfill).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ConfigDict, Field, ValidationError

from .documents import Doc
from .errors import describe_validation_error
from .fsio import atomic_write_text, refuse_links
from .ledger import LedgerRow, append_row, new_row
from .ledger_state import LedgerState, read_state
from .run_folder import LEDGER_NAME

CARRY_DIR = "carry"
_NAME = re.compile(r"stage-([0-9]+)\.json")


class CarrySidecar(Doc):
    model_config = ConfigDict(extra="allow")

    v: int = 1
    stage: int
    head_commit: str = Field(min_length=4)
    impl_task_key: str
    summary: str = ""


def carry_path(plan_root: Path, stage: int) -> Path:
    return plan_root / CARRY_DIR / f"stage-{stage}.json"


def write_carry(plan_root: Path, sidecar: CarrySidecar) -> Path:
    path = carry_path(plan_root, sidecar.stage)
    refuse_links(plan_root, path)
    atomic_write_text(path, sidecar.model_dump_json(indent=2) + "\n")
    return path


@dataclass
class CarryRead:
    sidecars: dict[int, CarrySidecar] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def read_carry(plan_root: Path) -> CarryRead:
    result = CarryRead()
    directory = plan_root / CARRY_DIR
    try:
        entries = sorted(directory.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return result
    for path in entries:
        match = _NAME.fullmatch(path.name)
        if not match:
            continue
        source = f"{CARRY_DIR}/{path.name}"
        try:
            sidecar = CarrySidecar.model_validate_json(path.read_bytes())
        except ValidationError as exc:
            result.warnings.append(describe_validation_error(exc, source) + "; ignored")
            continue
        except OSError as exc:
            result.warnings.append(f"{source}: cannot read ({exc.strerror}); ignored")
            continue
        if sidecar.stage != int(match.group(1)):
            result.warnings.append(f"{source}: says stage {sidecar.stage}, its name says {match.group(1)}; ignored")
            continue
        result.sidecars[sidecar.stage] = sidecar
    return result


def missing_done_rows(ledger: LedgerState, sidecars: dict[int, CarrySidecar]) -> list[LedgerRow]:
    """Done rows the sidecars prove but the ledger lacks.

    A sidecar's commit counts as recorded when a done row names it as its commit or as
    the commit it `replaces`, so a reconcile correction is never undone by an old sidecar.
    """
    missing = []
    for stage, sidecar in sorted(sidecars.items()):
        known = ledger.stages.get(stage)
        commits = known.done_commits if known else frozenset()
        if not any(_same_commit(sidecar.head_commit, c) for c in commits):
            missing.append(
                new_row(
                    stage,
                    "done",
                    run_id=ledger.run_id(stage),
                    impl_task_key=sidecar.impl_task_key,
                    head_commit=sidecar.head_commit,
                    reason="carry-backfill",
                )
            )
    return missing


def _same_commit(a: str, b: str) -> bool:
    # sidecars written by hand may hold an abbreviated SHA
    return a.startswith(b) or b.startswith(a)


def backfill_done_from_carry(
    plan_root: Path, *, complete: Callable[[LedgerRow], LedgerRow] | None = None
) -> list[LedgerRow]:
    """Append the done rows that only the sidecars know about; return them.

    `complete(row) -> row` may add what needs the repository (full SHA, fingerprint,
    pin): `reconcile.backfill_done(task)` passes one; prefer calling that.
    """
    ledger = plan_root / LEDGER_NAME
    rows = missing_done_rows(read_state(ledger), read_carry(plan_root).sidecars)
    if complete is not None:
        rows = [complete(row) for row in rows]
    for row in rows:
        append_row(ledger, row)
    return rows
