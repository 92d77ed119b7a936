"""A simulated lead: plays the agent's part of a run, for the demo, for trying okstra
without an agent, and for end-to-end tests. It does what the prompt asks a real lead to
do, through the same engine calls, so what it exercises is the real protocol (and
`okstra validate-run` passes its runs):

- implementation: write its team state, announce the start, commit a change in the stage
  worktree, write the carry sidecar, record done, write its report;
- planning: a plan of two stages for the task's title, waiting for approval;
- final verification: PASS when every done stage in scope is in the task worktree's
  HEAD, FAIL naming those that are not;
- improvement discovery and release handoff: their notes.

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
from .launch import LaunchManifest, run_context, workplace
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
from .stage_view import StageState
from .tasks import Task

SIM_AUTHOR = ("okstra sim lead", "sim-lead@okstra.invalid")


def run(run_dir: Path, *, delay: float = 0.0, say: Callable[[str], object] = print) -> str:
    task, manifest = run_context(run_dir)
    stage = manifest.stage
    if manifest.task_type != "implementation":
        return _other_phase(task, manifest, run_dir.resolve(), say)
    if stage is None:
        raise OkstraError(
            f"the simulated lead plays implementation stages one at a time; {run_dir.name} names none",
            "prepare an implementation run of one stage (--stage auto or N)",
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


SIM_PLAN = """---
approved: false
---
# Plan: {title}

Written by the simulated lead: two stages, the second on top of the first.

## Stage Map
| Stage | Title | Depends on | Group |
|-------|-------|------------|-------|
| 1 | Groundwork | - | A |
| 2 | {title} | 1 | B |
"""


def _other_phase(task: Task, manifest: LaunchManifest, run_dir: Path, say: Callable[[str], object]) -> str:
    """A planning, final verification, improvement discovery or release handoff run: its
    team state and the phase's one output file."""
    atomic_write_text(run_dir / TEAM_STATE_NAME, team_state(run_terms(manifest, run_dir), run_dir).to_text() + "\n")
    name, _ = PHASE_OUTPUTS[manifest.task_type]
    title = task.doc.title
    if manifest.task_type == "planning":
        text = SIM_PLAN.format(title=title.replace("|", "/"))
    elif manifest.task_type == "final-verification":
        text = _verdict(task, manifest.stage)
    elif manifest.task_type == "improvement-discovery":
        text = f"# Improvements for {title}\n\nThe simulated lead looked at nothing and found nothing.\n"
    else:
        text = f"# Release notes: {title}\n\nThe simulated lead's stages, merged in the task branch.\n"
    atomic_write_text(run_dir / name, text)
    say(f"sim-lead: {manifest.task_type} wrote {name}")
    return name


def _verdict(task: Task, stage: int | None) -> str:
    """PASS when the work in scope is there: one stage done (on its branch), or the whole
    task done and merged in the task branch; FAIL naming the stages that are not."""
    from .status import task_status

    views = task_status(task).stages
    if stage is not None:
        left = [v.stage for v in views if v.stage == stage and not v.is_done]
    else:
        left = [v.stage for v in views if v.state is not StageState.DONE]
    if left:
        return "FAIL\n\nNot done and merged: stages " + ", ".join(map(str, left)) + ".\n"
    return (
        "PASS\n\nEvery stage in scope is done"
        + ("." if stage is not None else " and merged in the task branch.")
        + "\n"
    )


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
    parser = argparse.ArgumentParser(prog="okstra-sim-lead", description="Play the lead of a prepared run.")
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
