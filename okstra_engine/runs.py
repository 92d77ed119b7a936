"""Runs: one prepared agent session of one phase, in `runs/RUN_ID/`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import ConfigDict, Field

from . import clock
from .documents import Doc

PHASES = ("planning", "implementation", "final-verification", "improvement-discovery", "release-handoff")
Phase = Literal["planning", "implementation", "final-verification", "improvement-discovery", "release-handoff"]


def new_run_id(phase: str, stage: int | None = None) -> str:
    """UTC stamp first, so run ids sort by time, then phase, stage and a random tail."""
    stage_part = f"-s{stage}" if stage is not None else ""
    return f"{clock.stamp()}-{phase}{stage_part}-{clock.token()}"


def fits_run_id(run_id: str, phase: str, stage: int | None = None) -> bool:
    """Whether `run_id` is one `new_run_id(phase, stage)` could have made."""
    stage_part = f"-s{stage}" if stage is not None else ""
    return re.fullmatch(rf"\d{{8}}T\d{{6}}Z-{re.escape(phase)}{stage_part}-[0-9a-z]+", run_id) is not None


class RunManifest(Doc):
    """What `prepare` (or `plan import`) decided for one run."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    v: int = 1
    run_id: str
    run_dir: str
    task: str
    task_key: str
    task_type: Phase
    stage: int | None = None
    created: str
    source: str | None = Field(default=None, description="where an imported plan came from")


def run_dirs(runs_root: Path) -> list[Path]:
    """Run folders, oldest first (run ids start with a UTC stamp)."""
    try:
        # a link among the runs was not made by okstra: it is no run of this task
        return sorted(
            p for p in runs_root.iterdir() if not p.name.startswith(".") and not p.is_symlink() and p.is_dir()
        )
    except FileNotFoundError:
        return []
