"""A simulated lead: plays the agent's part of an implementation run, for the demo and
for end-to-end tests. It does what the prompt asks a real lead to do — write its team
state, announce the start, commit a change in the stage worktree, write the carry
sidecar, record done, write its report — through the same engine calls, so what it
exercises is the real protocol (and `okstra validate-run` passes its runs).

    python -m okstra_engine.sim_lead RUN_DIR [--delay SECONDS]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

from . import git
from .carry import CarrySidecar, write_carry
from .errors import OkstraError, print_error
from .fsio import atomic_write_text
from .launch import run_context, workplace
from .plans import require_plan_run_root
from .record import record
from .run_contract import (
    PHASE_OUTPUTS,
    TEAM_STATE_NAME,
    RunTerms,
    TeamCreate,
    TeamState,
    expected_team_state,
    run_terms,
)

SIM_AUTHOR = ("okstra sim lead", "sim-lead@okstra.invalid")


def run(run_dir: Path, *, delay: float = 0.0, say: Callable[[str], object] = print) -> str:
    task, manifest = run_context(run_dir)
    stage = manifest.stage
    if manifest.task_type != "implementation" or stage is None:
        raise OkstraError(
            f"the simulated lead plays implementation stages; {run_dir.name} is {manifest.task_type}",
            "prepare an implementation run",
        )
    run_id = manifest.run_id
    run_dir = run_dir.resolve()
    worktree = workplace(task, stage)
    title = require_plan_run_root(task).stage_map().by_number()[stage].title

    atomic_write_text(run_dir / TEAM_STATE_NAME, team_state(run_terms(manifest, run_dir), run_dir).to_text() + "\n")
    record(task, stage, "started", run_id=run_id)
    say(f"sim-lead: stage {stage} started in {worktree}")
    time.sleep(delay)
    name = f"sim/stage-{stage}.md"
    target = worktree / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(f"# Stage {stage}: {title}\n\nWritten by the simulated lead in run {run_id}.\n", encoding="utf-8")
    sha = git.commit_paths(worktree, [name], f"{task.ref} stage {stage}: {title}", author=SIM_AUTHOR)
    say(f"sim-lead: committed {sha[:8]}")
    time.sleep(delay)
    plan_root = require_plan_run_root(task).dir
    write_carry(
        plan_root,
        CarrySidecar(
            stage=stage, head_commit=sha, impl_task_key=task.key, summary=f"Simulated work for stage {stage} ({title})."
        ),
    )
    record(task, stage, "done", commit=sha, run_id=run_id)
    atomic_write_text(
        run_dir / PHASE_OUTPUTS["implementation"][0],
        f"# Stage {stage}: {title}\n\nThe simulated lead wrote `{name}` and committed it as {sha} on "
        f"{git.current_branch(worktree) or 'the stage branch'}. It ran no QA command and dispatched no worker.\n",
    )
    say(f"sim-lead: stage {stage} done at {sha[:8]}")
    return sha


def team_state(terms: RunTerms, run_dir: Path) -> TeamState:
    """The team state its prompt asks for, told truly: the simulated lead has no team
    tools, so a gate's team creation fails, and it starts no worker."""
    state = expected_team_state(
        run_id=terms.run_id,
        teams=terms.teams_kind() or "none",
        mode=terms.team.mode,
        team_name=terms.team.name,
        concurrent=terms.concurrent_run.active_stages,
        workers=[],
        run_dir=run_dir,
    )
    if terms.team.mode == "gate":
        state.team_create = TeamCreate(attempted=True, status="error", error="the simulated lead has no team tools")
    return state


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="okstra-sim-lead", description="Play the lead of a prepared implementation run."
    )
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds to pause between steps (to watch it live)")
    args = parser.parse_args(argv)
    try:
        run(args.run_dir, delay=args.delay)
    except OkstraError as exc:
        print_error(exc, "okstra-sim-lead")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
