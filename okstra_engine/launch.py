"""`okstra launch RUN_DIR`: replace this process with the configured agent on a prepared run.

exec, not spawn: the reservation records this pid, and after exec it is the agent's, so
a crashed agent makes its reservation stale on this host at once.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import settings
from .documents import Doc, load_doc
from .errors import OkstraError
from .locations import config_file
from .runs import RunManifest


class _Worktree(Doc):
    path: str | None = None
    branch: str | None = None
    base_ref: str | None = None
    status: str = ""
    note: str | None = None


class LaunchManifest(RunManifest):
    """A prepared run's manifest, with the fields launch (and the simulated lead) use
    typed: a hand-edited or damaged manifest is refused with the file and field named,
    never half-used."""

    project_root: str | None = None
    ledger_path: str | None = None
    worktree: _Worktree | None = None


@dataclass(frozen=True)
class LaunchPlan:
    argv: list[str]
    cwd: Path
    run_dir: Path
    manifest: dict[str, Any]


def read_manifest(run_dir: Path) -> dict[str, Any]:
    try:
        doc = load_doc(run_dir / "manifest.json", LaunchManifest, how="prepare the run again")
    except FileNotFoundError:
        raise OkstraError(
            f"{run_dir} is not a prepared run (no manifest.json)", "prepare one: okstra prepare GROUP/ID --type TYPE"
        ) from None
    return doc.model_dump(by_alias=True)


def plan_launch(run_dir: Path) -> LaunchPlan:
    run_dir = run_dir.resolve()
    manifest = read_manifest(run_dir)
    prompt_file = run_dir / "prompt.md"
    if not prompt_file.exists():
        raise OkstraError(f"{run_dir} has no prompt.md", "prepare the run again")
    worktree = (manifest.get("worktree") or {}).get("path") or manifest.get("project_root") or str(run_dir)
    cwd = Path(worktree)
    if not cwd.is_dir():
        raise OkstraError(
            f"the run's worktree {cwd} does not exist", "prepare the run again (it recreates the worktree)"
        )
    values = {
        "prompt": prompt_file.read_text(encoding="utf-8"),
        "prompt_file": str(prompt_file),
        "run_dir": str(run_dir),
        "worktree": str(cwd),
    }
    template = settings().agent_command
    if not template:
        raise OkstraError(
            f"agent_command in {config_file()} is empty", 'set it, e.g. agent_command = ["claude", "{prompt}"]'
        )
    try:
        argv = [part.format_map(values) for part in template]
    except (KeyError, ValueError) as exc:
        raise OkstraError(
            f"agent_command in {config_file()} has an unknown placeholder: {exc}",
            "use only {prompt}, {prompt_file}, {run_dir} and {worktree}",
        ) from exc
    if shutil.which(argv[0]) is None:
        raise OkstraError(
            f"the agent command {argv[0]!r} is not installed or not on PATH",
            f'install it, or set agent_command in {config_file()} (e.g. agent_command = ["claude", "{{prompt}}"])',
        )
    return LaunchPlan(argv, cwd, run_dir, manifest)


def launch(run_dir: Path) -> None:
    """Never returns on success."""
    plan = plan_launch(run_dir)
    _record_agent_pid(plan)
    os.chdir(plan.cwd)
    os.execvp(plan.argv[0], plan.argv)


def _record_agent_pid(plan: LaunchPlan) -> None:
    """Re-state the reservation with our pid, which exec hands to the agent."""
    stage = plan.manifest.get("stage")
    ledger = plan.manifest.get("ledger_path")
    if stage is None or not ledger or not plan.manifest.get("project_root") or not plan.manifest.get("worktree"):
        return
    from .ledger import append_row
    from .prepare import WorktreeInfo, reserved_row
    from .projects import load_project
    from .slugs import TaskRef
    from .tasks import load_task

    task = load_task(load_project(Path(plan.manifest["project_root"])), TaskRef.parse(plan.manifest["task"]))
    worktree = WorktreeInfo.model_validate(plan.manifest["worktree"])
    append_row(Path(ledger), reserved_row(task, int(stage), plan.manifest["run_id"], worktree, pid=os.getpid()))
