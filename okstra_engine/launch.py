"""`okstra launch RUN_DIR`: replace this process with the configured agent on a prepared run.

exec, not spawn: the reservation records this pid, and after exec it is the agent's, so
a crashed agent makes its reservation stale on this host at once. In a managed terminal
(`managed`) this process is the tmux pane's own, so the pane's pid is the agent's too.

The agent's environment names the run (`OKSTRA_RUN_DIR`) and, for a stage, its block of
ports (`OKSTRA_PORT`, from its reservation in the ledger, never the manifest). Claude Code is also given
`--settings <run dir>/agent-settings.json`, whose hooks report each of its events to
`okstra agent-event` (the person's own settings stay as they are: Claude Code merges the
file over them); `agent_state` reads what they wrote.
"""

from __future__ import annotations

import os
import shutil
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import settings
from .documents import Doc, load_doc
from .errors import OkstraError
from .ledger import LedgerRow
from .ledger_state import StageLedger
from .locations import config_file
from .projects import load_project
from .run_folder import OKSTRA_DIR, run_place
from .runs import RunManifest
from .slugs import TaskRef
from .tasks import Task, load_task


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
    task: Task
    env: dict[str, str] = field(default_factory=dict)
    """Set in the agent's environment."""
    settings: dict[str, Any] | None = None
    """The hooks document `argv` passes with `--settings` (written by `launch`)."""


def run_context(run_dir: Path) -> tuple[Task, LaunchManifest]:
    """A prepared run's task and manifest.

    The run folder's place says which project and task it belongs to
    (`<project>/.okstra/tasks/GROUP/ID/runs/RUN_ID`); its manifest, which anybody who can
    write the project can edit, only says what the run is (its phase and stage) and must
    agree with that place. No path is ever taken from the manifest.
    """
    run_dir = run_dir.resolve()
    manifest_path = run_dir / "manifest.json"
    if not manifest_path.is_file():
        raise OkstraError(
            f"{run_dir} is not a prepared run (no manifest.json)", "prepare one: okstra prepare GROUP/ID --type TYPE"
        )
    place = run_place(run_dir)
    if place is None:
        raise OkstraError(
            f"{run_dir} is not a run folder of an okstra task",
            f"pass the folder prepare printed: PROJECT/{OKSTRA_DIR}/tasks/GROUP/ID/runs/RUN_ID",
        )
    task = load_task(load_project(place.project_root), TaskRef.parse(f"{place.group}/{place.task_id}"))
    manifest = load_doc(manifest_path, LaunchManifest, how="prepare the run again")
    if manifest.run_id != run_dir.name or manifest.task != str(task.ref):
        raise OkstraError(
            f"{manifest_path} names run {manifest.run_id!r} of task {manifest.task!r}, "
            f"but it is in the folder of run {run_dir.name!r} of task {task.ref}",
            "prepare the run again",
        )
    return task, manifest


def plan_launch(run_dir: Path) -> LaunchPlan:
    task, doc = run_context(run_dir)
    run_dir = run_dir.resolve()
    held = _check_reserved(task, doc)
    manifest = doc.model_dump(by_alias=True)
    prompt_file = run_dir / "prompt.md"
    if not prompt_file.is_file() or prompt_file.is_symlink():
        raise OkstraError(f"{run_dir} has no prompt.md", "prepare the run again")
    cwd = workplace(task, doc.stage)
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
    argv = [_fill(part, values) for part in template]
    program = shutil.which(argv[0])
    if program is None:
        raise OkstraError(
            f"the agent command {argv[0]!r} is not installed or not on PATH",
            f'install it, or set agent_command in {config_file()} (e.g. agent_command = ["claude", "{{prompt}}"])',
        )
    _check_startable(argv[0], Path(program))
    settings_doc = None
    if Path(program).name == "claude" and "--settings" not in argv:
        from .agent_events import SETTINGS_NAME, hook_settings

        settings_doc = hook_settings()
        from .agents import lead_agent

        if lead_agent().agent.teams != "none":
            # the prompt's team block counts on teams, which this Claude Code keeps behind a flag
            settings_doc["env"] = {"CLAUDE_CODE_EXPERIMENTAL_AGENT_TEAMS": "1"}
        argv[1:1] = ["--settings", str(run_dir / SETTINGS_NAME)]
    from .agent_events import RUN_DIR_VARIABLE

    env = {RUN_DIR_VARIABLE: str(run_dir)}
    port = _port(held)
    if port is not None:
        from .ports import VARIABLE

        env[VARIABLE] = str(port)
    return LaunchPlan(argv, cwd, run_dir, manifest, task, env, settings_doc)


def _port(held: StageLedger | None) -> int | None:
    """The block of ports the stage's reservation holds (prepare wrote it in the
    `reserved` row its current streak starts with)."""
    if held is None:
        return None
    from .ports import block_of

    return block_of(held)


def _fill(part: str, values: dict[str, str]) -> str:
    """`part` with its placeholders replaced: plain names only (a format spec such as
    `{prompt:>99999999999}` would make Python build a string of any size)."""
    out = []
    try:
        pieces = list(string.Formatter().parse(part))
    except ValueError as exc:
        raise _bad_placeholder(part, str(exc)) from None
    for literal, name, spec, conversion in pieces:
        out.append(literal)
        if name is None:
            continue
        if name not in values:
            raise _bad_placeholder(part, f"unknown placeholder {{{name}}}")
        if spec or conversion:
            raise _bad_placeholder(part, f"{{{name}}} takes no format spec or conversion")
        out.append(values[name])
    return "".join(out)


def _bad_placeholder(part: str, why: str) -> OkstraError:
    return OkstraError(
        f"agent_command in {config_file()} has an unknown placeholder in {part!r}: {why}",
        "use only {prompt}, {prompt_file}, {run_dir} and {worktree}, as they are (write {{ and }} for braces)",
    )


def workplace(task: Task, stage: int | None) -> Path:
    """Where the run's agent works, from the registry: the project's folder in the stage's
    worktree for a stage run, else in the task worktree (`<worktree>/<prefix>` for a
    project in a subfolder of its repository); the project folder itself where okstra
    makes no worktrees (not in git, or a linked worktree of its own)."""
    from . import registry
    from .prepare import repo_layout
    from .worktrees import task_slot

    rows = registry.task_worktrees(task_slot(task))
    row = rows.get(stage) if stage is not None else rows.get(None)
    if row is not None:
        return Path(row.path) / task.project.prefix
    if repo_layout(task.project.repo) == "git":
        what = f"stage {stage}" if stage is not None else "the task"
        raise OkstraError(f"{what} of {task.ref} has no worktree", "prepare the run again (it makes the worktree)")
    return task.project.root


def _check_reserved(task: Task, manifest: LaunchManifest) -> StageLedger | None:
    """An implementation run starts its agent only while the run still holds its stage:
    launching an old run must not take back a stage that was done, released or taken."""
    if manifest.task_type != "implementation" or manifest.stage is None:
        return None
    from .ledger_state import read_state
    from .plans import require_plan_run_root
    from .run_folder import LEDGER_NAME

    stage, run = manifest.stage, manifest.run_id
    ledger = read_state(require_plan_run_root(task).dir / LEDGER_NAME).stages.get(stage)
    if ledger is not None and ledger.held_by(run):
        return ledger
    if ledger is None:
        now = "has no ledger row"
    elif ledger.in_flight:
        now = f"is held by run {ledger.streak.run_id}"
    else:
        now = f"is {ledger.latest.status} (since {ledger.latest.ts})"
    raise OkstraError(
        f"run {run} does not hold stage {stage} of {task.ref} any more: the stage {now}",
        f"prepare a new run: okstra prepare {task.ref} --type implementation --stage {stage}",
    )


def _check_startable(name: str, program: Path) -> None:
    """What exec would refuse, said before okstra writes anything: a script whose `#!`
    names no program."""
    try:
        with program.open("rb") as handle:
            first = handle.readline(256)
    except OSError as exc:
        raise OkstraError(f"cannot read the agent command {name!r} ({program}): {exc.strerror}", _FIX) from None
    if not first.startswith(b"#!"):
        return
    words = first[2:].split()
    interpreter = Path(os.fsdecode(words[0])) if words else None
    if interpreter is None or not (interpreter.is_file() and os.access(interpreter, os.X_OK)):
        said = os.fsdecode(first[2:].strip()) or "nothing"
        raise OkstraError(
            f"the agent command {name!r} ({program}) cannot start: its first line names {said!r}, "
            "which is not a program here",
            _FIX,
        )


_FIX = "fix its first line (#!) or install what it names, or set agent_command to another program"


def launch(run_dir: Path) -> None:
    """Never returns on success."""
    from .ledger import append_row, new_row
    from .locks import task_mutex
    from .plans import require_plan_run_root
    from .run_folder import LEDGER_NAME

    plan = plan_launch(run_dir)
    manifest = LaunchManifest.model_validate(plan.manifest)
    held = record_agent_pid(plan.task, manifest, os.getpid())  # exec hands our pid to the agent
    ledger = require_plan_run_root(plan.task).dir / LEDGER_NAME if held is not None else None
    if plan.settings is not None:
        import json

        from .agent_events import SETTINGS_NAME
        from .fsio import atomic_write_text

        atomic_write_text(plan.run_dir / SETTINGS_NAME, json.dumps(plan.settings, indent=2) + "\n", durable=False)
    os.environ.update(plan.env)
    os.chdir(plan.cwd)
    try:
        os.execvp(plan.argv[0], plan.argv)
    except OSError as exc:
        if held is not None and ledger is not None:  # our pid names the reservation, and we are about to exit
            with task_mutex(plan.task):
                append_row(
                    ledger,
                    new_row(
                        held.stage,
                        "released",
                        run_id=manifest.run_id,
                        reason=f"the agent command could not start: {exc.strerror}",
                    ),
                )
        raise OkstraError(f"cannot run the agent command {plan.argv[0]!r}: {exc.strerror}", _FIX) from None


def record_agent_pid(
    task: Task, manifest: LaunchManifest, pid: int, *, unless_known: bool = False
) -> StageLedger | None:
    """Under the task mutex, while the run holds its stage: re-state the reservation
    prepare wrote (base and branch from the ledger, not the manifest) with the agent's
    `pid`; the stage's ledger it held, or None for a run of no stage. `unless_known`:
    only while the latest row is a reservation naming no pid (a managed terminal's
    pane, whose own launch may have written it, or gone on to record more, already)."""
    from .ledger import append_row, new_row
    from .locks import task_mutex
    from .plans import require_plan_run_root
    from .run_folder import LEDGER_NAME

    with task_mutex(task):
        try:
            held = _check_reserved(task, manifest)
        except OkstraError:
            if unless_known:  # the run has moved on (done, say) already: its own launch spoke
                return None
            raise
        if held is None or (unless_known and (held.latest.status != "reserved" or held.latest.pid is not None)):
            return held
        ledger = require_plan_run_root(task).dir / LEDGER_NAME
        append_row(ledger, new_row(held.stage, "reserved", **_restated(held.streak.start), pid=pid))
    return held


def _restated(row: LedgerRow) -> dict[str, Any]:
    from .ports import FIELD, port_of

    branch = (row.model_extra or {}).get("branch")
    port = port_of(row)
    return {
        "run_id": row.run_id,
        "impl_task_key": row.impl_task_key,
        "base_ref": row.base_ref,
        "branch": branch if isinstance(branch, str) else None,
        **({FIELD: port} if port is not None else {}),
    }
