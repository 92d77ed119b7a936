"""The `okstra` command: the TUI by default, and the engine's commands for scripts and agents.

Handlers import what they need when they run, so `okstra status` and `okstra record`
(called by agents in loops) never load Textual, and rich only for human-readable output.
Exit codes: 0 ok, 2 bad input or a gate said no, 1 an unexpected failure.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import OkstraError, print_error

if TYPE_CHECKING:
    from .handoff import HandoffResult
    from .plans import PlanRun
    from .projects import Project
    from .reconcile import Suggestion
    from .tasks import Task

REPLACE_HELP = "approve it although the current plan has progress: the old plan and its ledger stay, untouched"
Handler = Callable[[argparse.Namespace], int]


def main(argv: list[str] | None = None, *, open_ui: Callable[..., int] | None = None) -> int:
    """`open_ui` opens the terminal UI (given by `okstra_tui.entry`, the console script):
    the engine itself never imports the UI."""
    # okstra uses no pydantic plugins; looking them up scans every installed package's
    # metadata on the first model (~10 ms on each agent call)
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    words = sys.argv[1:] if argv is None else argv
    if words[:1] == [COMPLETE]:
        from .completion import complete

        _never_fail_to_print()
        return complete(build_parser(), words[1:])
    args = build_parser().parse_args(argv)
    args.open_ui = open_ui
    debug = args.debug or os.environ.get("OKSTRA_DEBUG") == "1"
    _never_fail_to_print()
    try:
        from .locations import settle_places

        settle_places()
        return args.handler(args) or 0
    except OkstraError as exc:
        print_error(exc)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except OSError as exc:
        if exc.errno not in _ENVIRONMENT_ERRNOS:
            if debug:
                raise
            return _unexpected(exc)
        # a full disk, a read-only or forbidden place, a file where a folder belongs:
        # the machine's state, not a bug
        where = f": {exc.filename}" if exc.filename else ""
        how = (
            "a file stands where okstra keeps a folder, or a folder where it keeps a file: move it aside, then rerun"
            if exc.errno in (errno.ENOTDIR, errno.EISDIR)
            else "free some space, or make that place writable for you; okstra leaves no half-written file behind; "
            "then rerun"
        )
        print_error(OkstraError(f"{exc.strerror or exc}{where}", how))
        return 2
    except Exception as exc:  # the boundary: anything else is our bug
        if debug:
            raise
        print(f"okstra: unexpected error: {type(exc).__name__}: {exc}", file=sys.stderr)
        print("  fix: rerun with --debug (or OKSTRA_DEBUG=1) and report the traceback", file=sys.stderr)
        return 1


_ENVIRONMENT_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.EISDIR}
)


def _never_fail_to_print() -> None:
    """A terminal whose encoding cannot show a name (PYTHONIOENCODING=ascii) gets it
    escaped, not a crash; JSON is written in ASCII there (see `_print_json`)."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            with contextlib.suppress(ValueError, OSError):
                reconfigure(errors="backslashreplace")


def _stdout_takes_unicode() -> bool:
    return (getattr(sys.stdout, "encoding", None) or "").lower().replace("-", "") in ("utf8", "utf16", "utf32")


def _unexpected(exc: BaseException) -> int:
    print(f"okstra: unexpected error: {type(exc).__name__}: {exc}", file=sys.stderr)
    print("  fix: rerun with --debug (or OKSTRA_DEBUG=1) and report the traceback", file=sys.stderr)
    return 1


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--project",
        metavar="PATH",
        default=argparse.SUPPRESS,
        help="project directory (default: the project holding the cwd)",
    )
    common.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks of unexpected errors"
    )

    # The top level declares its own --project/--debug: sharing the parent's action
    # objects would let a subcommand's default overwrite a value given before it.
    parser = argparse.ArgumentParser(prog="okstra", description="Run a coding task with AI agents in stages.")
    parser.add_argument(
        "--project", metavar="PATH", default=None, help="project directory (default: the project holding the cwd)"
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks of unexpected errors")
    parser.add_argument("--task", metavar="G/ID", help="open this task's stage board")
    parser.add_argument("--lang", choices=("en", "ko"), default=None, help="language of the TUI")
    parser.add_argument("--version", action=_Version, help="print okstra's version and exit")
    parser.set_defaults(handler=cmd_tui)
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    def command(name: str, handler: Handler, help: str, **kwargs: Any) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help, parents=[common], **kwargs)
        p.set_defaults(handler=handler)
        return p

    def commands_of(
        group: argparse.ArgumentParser, noun: str
    ) -> Callable[[str, Handler, str], argparse.ArgumentParser]:
        """How the commands under `group` are made (`okstra task new`, …)."""
        nested = group.add_subparsers(title=f"{noun} commands", metavar="COMMAND")

        def subcommand(name: str, handler: Handler, help: str) -> argparse.ArgumentParser:
            p = nested.add_parser(name, help=help, parents=[common])
            p.set_defaults(handler=handler)
            return p

        return subcommand

    p = command("demo", cmd_demo, "build the demo project, then open the TUI on it")
    p.add_argument("--dir", metavar="DIR", help="where to build it (default: a new temp dir)")
    p.add_argument("--no-tui", action="store_true", help="build it and print where, without opening the TUI")
    p.add_argument("--lang", choices=("en", "ko"), default=argparse.SUPPRESS, help="language of the TUI")

    p = command("init", cmd_init, "register a project (idempotent; can add QA commands)")
    p.add_argument(
        "path",
        nargs="?",
        help="project directory (default: --project, or the project holding the cwd, else its git toplevel)",
    )
    p.add_argument("--id", dest="project_id", metavar="ID", help="project id (default: from the directory name)")
    p.add_argument(
        "--qa-command",
        action="append",
        default=[],
        metavar="CMD",
        help="a shell command that verifies the code (repeatable)",
    )
    p.add_argument(
        "--setup-command",
        action="append",
        metavar="CMD",
        help="a shell command run in each new worktree, e.g. 'npm ci' (repeatable; replaces the project's)",
    )
    p.add_argument(
        "--symlink-dir",
        action="append",
        metavar="DIR",
        help="a folder of the checkout each new worktree links to, shared, e.g. node_modules (repeatable; replaces)",
    )
    p.add_argument("--no-setup", action="store_true", help="drop the project's setup commands and linked folders")
    p.add_argument(
        "--share",
        metavar="REMOTE",
        help="share the project's tasks through this git remote (a name `git remote` lists): their plans, "
        "ledgers and stage reservations travel as refs under refs/okstra/",
    )

    task = commands_of(command("task", _needs_subcommand, "work with tasks"), "task")
    p = task("new", cmd_task_new, "create a task")
    p.add_argument("task_ref", metavar="GROUP/ID")
    p.add_argument("--title", required=True)
    p.add_argument("--category", help="branch prefix (default: the project's workCategory)")
    p = task("list", cmd_task_list, "the project's tasks, with their plan and progress")
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")

    project = commands_of(command("project", _needs_subcommand, "the projects okstra knows on this machine"), "project")
    p = project("forget", cmd_project_forget, "drop a project whose folder is gone from okstra's list of projects")
    p.add_argument("name", metavar="ID", help="the project's id (or the folder it was registered at)")

    plan = commands_of(command("plan", _needs_subcommand, "import and approve plans"), "plan")
    p = plan("import", cmd_plan_import, "create a planning run from a plan.md or stage-map.json")
    p.add_argument("task_ref", metavar="GROUP/ID")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--approve", action="store_true", help="approve it at once: it becomes the task's current plan")
    p.add_argument("--replace", action="store_true", help=REPLACE_HELP)
    p = plan("approve", cmd_plan_approve, "make the task's newest plan (or --run's) its current, approved plan")
    p.add_argument("task_ref", metavar="GROUP/ID")
    p.add_argument("--run", dest="run_id", metavar="RUN_ID", help="the planning run to approve (default: the newest)")
    p.add_argument("--replace", action="store_true", help=REPLACE_HELP)

    share = commands_of(
        command("share", _needs_subcommand, "a project's tasks shared through a git remote (okstra init --share)"),
        "share",
    )
    p = share("status", cmd_share_status, "the remote, the shared tasks, when this machine last synced, what waits")
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")
    p = share("sync", cmd_share_sync, "fetch the shared tasks and publish this machine's rows now")
    p.add_argument("task_ref", metavar="GROUP/ID", nargs="?", help="only this task (default: every task)")
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")

    p = command("status", cmd_status, "the state of every stage of a task")
    p.add_argument(
        "task_ref",
        metavar="GROUP/ID",
        nargs="?",
        help="the task (default: the project's only task; else they are listed)",
    )
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")

    p = command("record", cmd_record, "record a stage's progress in the ledger")
    p.add_argument("task_ref", metavar="GROUP/ID")
    p.add_argument("--stage", type=int, required=True, metavar="N")
    p.add_argument("--status", required=True, choices=("started", "done", "released", "reopened"))
    p.add_argument("--commit", metavar="SHA", help="the commit the stage finished at (with --status done)")
    p.add_argument(
        "--force",
        action="store_true",
        help="with --commit FULL_SHA: record it even when it is the stage's base or off the stage's branch",
    )
    p.add_argument(
        "--empty",
        action="store_true",
        help="with --status done: the stage changes nothing, so it is done at the commit it started from",
    )
    p.add_argument(
        "--reason", metavar="TEXT", help="with --status reopened: why a stage recorded done is not done (required)"
    )
    p.add_argument("--run", dest="run_id", metavar="RUN_ID", help="the run (default: the stage's current run)")
    p.add_argument("--json", action="store_true", help="print the row written as JSON")

    p = command(
        "reconcile",
        cmd_reconcile,
        "find where rebased, squashed or cherry-picked stage commits went; record corrections",
    )
    p.add_argument("task_ref", metavar="GROUP/ID")
    p.add_argument(
        "--apply", action="store_true", help="record a correction row for each suggestion that names a commit"
    )
    p.add_argument("--stage", type=int, metavar="N", help="only this stage (with --commit: correct it by hand)")
    p.add_argument("--commit", metavar="SHA", help="with --stage: record that the stage's work is at this commit")
    p.add_argument(
        "--force",
        action="store_true",
        help="with --commit FULL_SHA: record it even when it is the stage's base or on neither its branch nor the task branch",
    )
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")

    p = command("prepare", cmd_prepare, "prepare an agent run: pick the stage, make its worktree, reserve it")
    p.add_argument("task_ref", metavar="GROUP/ID")
    p.add_argument(
        "--type",
        dest="task_type",
        required=True,
        metavar="TYPE",
        help="planning, implementation, final-verification, improvement-discovery or release-handoff",
    )
    p.add_argument(
        "--stage", default="auto", metavar="auto|N", help="the stage to implement (default: the lowest ready one)"
    )
    p.add_argument(
        "--workers", metavar="LIST", help="comma-separated workers: claude,codex,gemini (default: none, a single lead)"
    )
    p.add_argument("--base-ref", metavar="REF", help="where a new task worktree starts (default: the project's HEAD)")
    p.add_argument(
        "--qa-waiver", metavar="KEY=REASON", help="waive a stage's conformance check, e.g. login-stage-3='flaky API'"
    )
    p.add_argument("--render-only", action="store_true", help="print the prompt; change nothing on disk")
    p.add_argument(
        "--offline",
        action="store_true",
        help="a shared task whose remote does not answer: take the stage anyway, marked taken offline",
    )
    p.add_argument(
        "--replace",
        action="store_true",
        help="with --type planning: plan again although the current plan has progress (approving needs it too)",
    )
    p.add_argument("--json", action="store_true", help="print the run manifest as one JSON document")

    p = command("handoff", cmd_handoff, "land a finished group of stages in the task worktree (all or nothing)")
    p.add_argument("task_ref", metavar="GROUP/ID")
    p.add_argument("--group", metavar="G", help="the stage group (default: the first one not yet handed off)")
    p.add_argument(
        "--merge", action="store_true", help="merge the group's unmerged stages (without it: show the merge plan)"
    )
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")

    p = command("gc", cmd_gc, "list (and with --apply remove) the worktrees and branches okstra made that can go")
    p.add_argument(
        "task_ref", metavar="GROUP/ID", nargs="?", help="only this task (default: every task of the project)"
    )
    p.add_argument("--apply", action="store_true", help="remove them (without it: a dry run, with sizes)")
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")

    p = command("sync", cmd_sync, "merge the task branch into a stage's worktree (clean, not in flight)")
    p.add_argument("task_ref", metavar="GROUP/ID")
    p.add_argument("--stage", type=int, required=True, metavar="N")
    p.add_argument("--rebase", action="store_true", help="rebase the stage's branch onto the task branch instead")
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")

    quarantine = commands_of(
        command("quarantine", _needs_subcommand, "move leftover agent team state into the okstra trash, and back"),
        "quarantine",
    )
    p = quarantine("list", cmd_quarantine_list, "the okstra-* teams under the agent home, and the trash")
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")
    p = quarantine("move", cmd_quarantine_move, "move a team's teams/ and tasks/ folders into the trash")
    p.add_argument("team", metavar="TEAM")
    p.add_argument("--yes", action="store_true", help="move without asking (needed without a terminal)")
    p.add_argument("--run", dest="run_id", metavar="RUN_ID", help="the run asking: it may move the team only it holds")
    p.add_argument("--json", action="store_true", help="print the trash entry as JSON")
    p = quarantine("restore", cmd_quarantine_restore, "move a quarantined team back where it came from")
    p.add_argument("stamp", metavar="STAMP")
    p.add_argument("--json", action="store_true", help="print the trash entry as JSON")

    p = command("usage", cmd_usage, "the tokens a task's agents used, per run and per stage (from their transcripts)")
    p.add_argument("task_ref", metavar="GROUP/ID")
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")

    p = command(
        "report", cmd_report, "the task in Markdown, for a pull request: plan, stages, handoffs, verdict, tokens"
    )
    p.add_argument("task_ref", metavar="GROUP/ID")
    p.add_argument("--out", metavar="FILE", help="write it to FILE (atomically) instead of printing it")

    p = command("start", cmd_start, "prepare a stage and start its agent in a tmux session of its own")
    p.add_argument("task_ref", metavar="GROUP/ID")
    p.add_argument(
        "--stage", default="auto", metavar="auto|N", help="the stage to start (default: the lowest ready one)"
    )
    p.add_argument(
        "--workers", metavar="LIST", help="comma-separated workers: claude,codex,gemini (default: none, a single lead)"
    )
    p.add_argument(
        "--follow",
        action="store_true",
        help="autopilot: start every stage as it becomes ready, until all are done or nothing more can start",
    )
    p.add_argument("--max-parallel", type=int, metavar="N", help="with --follow: at most N agents at once (default 2)")
    p.add_argument(
        "--handoff", action="store_true", help="with --follow: hand off each group whose merge plan refuses nothing"
    )
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")

    p = command("agents", cmd_agents, "the agents okstra started in tmux sessions, and what each is doing")
    p.add_argument("task_ref", metavar="GROUP/ID", nargs="?", help="only this task's (default: every project's)")
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")

    p = command("attach", cmd_attach, "show a stage's agent session in this terminal (detach: C-b d)")
    p.add_argument("task_ref", metavar="GROUP/ID")
    p.add_argument("stage", type=int, metavar="N")

    p = command("stop", cmd_stop, "ask a stage's agent to stop (C-c), then release the stage once it has exited")
    p.add_argument("task_ref", metavar="GROUP/ID")
    p.add_argument("stage", type=int, metavar="N")
    p.add_argument("--json", action="store_true", help="print the session as JSON")

    p = command("launch", cmd_launch, "exec the configured agent command on a prepared run")
    p.add_argument("run_dir", metavar="RUN_DIR")

    command(
        "agent-event",
        cmd_agent_event,
        "record one hook of the agent's (its JSON on stdin) in the run of $OKSTRA_RUN_DIR; for the hooks launch sets",
    )

    p = command("validate-run", cmd_validate_run, "check a finished run against what its prompt asked")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")

    p = command("completion", cmd_completion, "print the shell completion script (commands, options, task refs)")
    p.add_argument("shell", choices=("bash", "zsh", "fish"))
    return parser


COMPLETE = "__complete"
"""The hidden command the completion scripts run at each TAB (see `completion.py`)."""


class _Version(argparse.Action):
    """`--version`: the installed distribution's version, looked up only when asked (the
    metadata machinery is not loaded on every command)."""

    def __init__(self, option_strings: list[str], dest: str, help: str | None = None) -> None:
        super().__init__(option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, nargs=0, help=help)

    def __call__(self, parser: argparse.ArgumentParser, *args: object, **kwargs: object) -> None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            found = version("okstra")
        except PackageNotFoundError:  # run from a source tree that was never installed
            from . import __version__ as found
        print(f"okstra {found}")
        parser.exit()


def _needs_subcommand(args: argparse.Namespace) -> int:
    raise OkstraError("a subcommand is missing", "see okstra --help")


def _project(args: argparse.Namespace) -> Project:
    from .locations import default_root
    from .projects import load_project

    return load_project(default_root(args.project))


def _task(args: argparse.Namespace) -> Task:
    from .slugs import TaskRef
    from .tasks import load_task

    ref = TaskRef.parse(args.task_ref)
    return load_task(_project(args), ref)


def _head_start(args: argparse.Namespace) -> None:
    """Begin reconcile's walk now, while the rest of the engine loads (`head_start`)."""
    from .head_start import begin

    begin(args.project, args.task_ref)


def _say_on_stderr(text: str) -> None:
    """Notices (waiting for another process, recoveries) go to stderr: stdout stays the
    command's answer, one JSON document with --json."""
    print(text, file=sys.stderr)


def _print_json(doc: object) -> None:
    print(json.dumps(doc, indent=2, ensure_ascii=not _stdout_takes_unicode()))


def _ui(args: argparse.Namespace) -> Callable[..., int]:
    if args.open_ui is None:
        raise OkstraError(
            "this entry point has no terminal UI (it runs the engine's commands only)",
            "run the `okstra` console script, or python -m okstra_tui.entry",
        )
    open_ui: Callable[..., int] = args.open_ui
    return open_ui


def cmd_tui(args: argparse.Namespace) -> int:
    return _ui(args)(project=args.project, task=args.task, lang=args.lang)


def cmd_demo(args: argparse.Namespace) -> int:
    import shlex
    import tempfile

    from .config import settings
    from .demo import build_demo, load_demo
    from .locations import user_path

    directory = user_path(args.dir, "--dir").resolve() if args.dir else Path(tempfile.mkdtemp(prefix="okstra-demo-"))
    info = load_demo(directory)
    if info is None:
        info = build_demo(directory)
        print(f"okstra demo: built in {info.dir}")
    else:
        print(f"okstra demo: reopening the demo built in {info.dir} at {info.built_at}")
    # the TUI (and every agent it starts) works on the demo's homes and config
    os.environ.update(info.env)
    settings.cache_clear()
    if args.no_tui:
        print(f"okstra demo: project {info.project_root}, task {info.task}")
        for key, value in info.env.items():
            print(f"  export {key}={shlex.quote(value)}")
        print(f"okstra demo: open it: okstra demo --dir {shlex.quote(info.dir)}")
        return 0
    open_ui = _ui(args)
    # when the TUI leaves to exec an agent (the simulated lead), it prints how to come back
    code = open_ui(
        project=info.project_root,
        task=info.task,
        lang=args.lang,
        command_env=info.env,
        reopen=f"okstra demo --dir {shlex.quote(info.dir)}",
    )
    print(f"okstra demo: kept in {info.dir}; open it again: okstra demo --dir {shlex.quote(info.dir)}")
    return code


def cmd_init(args: argparse.Namespace) -> int:
    from .locations import default_root
    from .projects import init_project, setup_of

    root = default_root(args.path or args.project)
    cleared: list[str] | None = [] if args.no_setup else None
    project, created = init_project(
        root,
        project_id=args.project_id,
        qa_commands=args.qa_command,
        setup_commands=args.setup_command or cleared,
        symlink_dirs=args.symlink_dir or cleared,
        share_remote=args.share,
    )
    verb = "registered" if created else "already registered"
    print(f"okstra: {verb} project {project.id} at {project.root}")
    if args.share:
        from .share.sync import sync

        report = sync(project)
        print(f"okstra: its tasks are shared through {args.share}")
        if report is not None:
            _print_sync(report)
    if project.config.qa_commands:
        print(f"okstra: QA commands: {'; '.join(project.config.qa_commands)}")
    else:
        print("okstra: no QA commands yet (implementation runs need one): okstra init --qa-command 'pytest -q'")
    setup = setup_of(project)
    if setup.commands:
        print(f"okstra: setup commands (each new worktree): {'; '.join(setup.commands)}")
    if setup.symlink_dirs:
        print(f"okstra: shared folders (linked in each new worktree): {', '.join(setup.symlink_dirs)}")
    return 0


def cmd_task_new(args: argparse.Namespace) -> int:
    from .slugs import TaskRef
    from .tasks import new_task

    task = new_task(_project(args), TaskRef.parse(args.task_ref), title=args.title, category=args.category)
    print(f"okstra: created task {task.ref} ({task.doc.title}) in {task.dir}")
    _share_now(task)
    return 0


def _share_now(task: Task) -> None:
    """A task made or a plan approved on a shared project is published at once."""
    if task.project.config.share_remote:
        from .share.sync import AUTO_TIMEOUT_S, sync

        report = sync(task.project, task.ref, timeout=AUTO_TIMEOUT_S)
        if report is not None and not report.reachable:
            _say_on_stderr(
                f"okstra: {task.ref} not shared yet: {report.remote} did not answer (the next sync shares it)"
            )


def cmd_plan_import(args: argparse.Namespace) -> int:
    from .locations import user_path
    from .plans import import_plan

    if args.replace and not args.approve:
        raise OkstraError("--replace goes with --approve (a plan not approved replaces nothing)", "add --approve")
    task = _task(args)
    plan = import_plan(task, user_path(args.file, "plan file"), approve=args.approve, replace=args.replace)
    state = "approved" if plan.approved else f"not approved yet (okstra plan approve {task.ref})"
    print(f"okstra: imported plan into {plan.dir} ({len(plan.stage_map().stages)} stages), {state}")
    _say_replaced(plan)
    if plan.approved:
        _share_now(task)
    return 0


def cmd_plan_approve(args: argparse.Namespace) -> int:
    from .plans import approve_plan

    task = _task(args)
    plan, changed = approve_plan(task, run=args.run_id, replace=args.replace)
    print(f"okstra: plan {plan.dir.name} {'approved' if changed else 'was already approved'}")
    if changed:
        _say_replaced(plan)
        _share_now(task)
    return 0


def _say_replaced(plan: PlanRun) -> None:
    """Name the plan `plan` has just replaced, and where its progress stays."""
    old = plan.replaced[-1] if plan.replaced else None
    if old is not None and old.replaced_by == plan.run_id:
        print(
            f"okstra: it replaces plan {old.run} ({old.progress()}); its run and ledger stay in {plan.dir.parent / old.run}"
        )


def cmd_status(args: argparse.Namespace) -> int:
    from .status import task_status

    task = _task(args) if args.task_ref else _only_task(args)
    if task is None:
        return 0
    remote = task.project.config.share_remote
    if remote:  # a shared task: what other machines did first (`share`)
        from .share.sync import auto_sync

        auto_sync(task)
    status = task_status(task)
    unsynced = branch = None
    if remote:
        from .share.journal import read_journal
        from .share.sync import not_synced

        journal = read_journal(task.project)
        unsynced = not_synced(task.project, journal)
        branch = journal.branch_notes.get(str(task.ref))
    if args.json:
        doc = status.to_json()
        if remote:
            doc["share"] = {"remote": remote, "synced": unsynced is None, "branch": branch}
        _print_json(doc)
        return 0
    for said in (unsynced, branch):
        if said:
            _say_on_stderr(f"okstra: {task.ref} {said}" if said is unsynced else f"okstra: {said}")
    from .status_table import print_status

    print_status(status)
    if status.plan_run is None:
        print(_next_without_plan(task))
    return 0


def _only_task(args: argparse.Namespace) -> Task | None:
    """`okstra status` without a task: the project's only task; else the tasks are
    listed (None), or, for `--json`, named in the refusal."""
    from .tasks import list_tasks, load_task

    project = _project(args)
    refs = list_tasks(project)
    if len(refs) == 1:
        return load_task(project, refs[0])
    if not refs:
        raise OkstraError(f"project {project.id} has no task yet", 'create one: okstra task new GROUP/ID --title "…"')
    if args.json:
        raise OkstraError(
            f"project {project.id} has {len(refs)} tasks: {', '.join(map(str, refs))}",
            f"name one: okstra status {refs[0]} --json",
        )
    _print_task_list(project, _task_overviews(project))
    print(f"okstra: name one: okstra status {refs[0]}")
    return None


def _next_without_plan(task: Task) -> str:
    """What a task without an approved plan waits for, as a command."""
    import shlex

    from .plans import plan_runs, run_phase
    from .runs import run_dirs

    drafts = plan_runs(task)
    if drafts:
        return f"next: read the plan ({drafts[-1].dir / 'plan.md'}), then approve it: okstra plan approve {task.ref}"
    planning = [run for run in run_dirs(task.runs_dir) if run_phase(run) == "planning"]
    if planning:
        return (
            f"next: planning run {planning[-1].name} has written no plan.md yet; start its agent: "
            f"okstra launch {shlex.quote(str(planning[-1]))} (or plan again: okstra prepare {task.ref} --type planning)"
        )
    return (
        f"next: plan it with an agent: okstra prepare {task.ref} --type planning (it prints the okstra launch line); "
        f"or import a plan you wrote: okstra plan import {task.ref} plan.md --approve"
    )


def cmd_task_list(args: argparse.Namespace) -> int:
    project = _project(args)
    overviews = _task_overviews(project)
    if args.json:
        _print_json({"project": project.id, "root": str(project.root), "tasks": overviews})
        return 0
    if not overviews:
        print(f'okstra: project {project.id} has no task yet: okstra task new GROUP/ID --title "…"')
        return 0
    _print_task_list(project, overviews)
    return 0


def _task_overviews(project: Project) -> list[dict[str, Any]]:
    """Each task of `project` with its plan (`plans.plan_state`: approved, draft, broken,
    none) and its stages' progress (done: merged into the task branch; not merged: done
    on its own branch); a task whose files do not load, with its error."""
    from .plans import plan_state
    from .stage_view import StageState
    from .status import task_status
    from .tasks import list_tasks, load_task

    found: list[dict[str, Any]] = []
    for ref in list_tasks(project):
        try:
            task = load_task(project, ref)
            status = task_status(task)
        except OkstraError as exc:
            found.append({"task": str(ref), "error": exc.what})
            continue
        states = [view.state for view in status.stages]
        found.append(
            {
                "task": str(ref),
                "title": task.doc.title,
                "category": task.doc.category,
                "created": task.doc.created,
                "plan": plan_state(task, status.plan_run),
                "stages": len(states),
                "done": states.count(StageState.DONE),
                "not_merged": states.count(StageState.NOT_MERGED),
                "in_flight": states.count(StageState.IN_FLIGHT),
                "stale": states.count(StageState.STALE),
                "next_stage": status.auto_stage,
            }
        )
    return found


def _print_task_list(project: Project, overviews: list[dict[str, Any]]) -> None:
    from .shown import shown

    print(f"okstra: tasks of project {project.id} ({project.root}):")
    width = max(len(o["task"]) for o in overviews)
    for o in overviews:
        if "error" in o:
            print(f"  {o['task']:<{width}}  cannot be read: {shown(o['error'])}")
            continue
        if o["plan"] != "approved":
            progress = {
                "draft": "plan waiting for approval",
                "broken": "its plan's Stage Map does not hold",
                "none": "no plan yet",
            }[o["plan"]]
        else:
            progress = f"{o['done']}/{o['stages']} done"
            if o["not_merged"]:
                progress += f", {o['not_merged']} not merged"
            if o["in_flight"]:
                progress += f", {o['in_flight']} in flight"
            if o["next_stage"] is not None:
                progress += f", next: stage {o['next_stage']}"
        print(f"  {o['task']:<{width}}  {shown(o['title'])}  ({progress})")


def cmd_project_forget(args: argparse.Namespace) -> int:
    from .projects import forget_project

    gone = forget_project(args.name)
    for entry in gone:
        print(f"okstra: forgot project {entry.project_id} (was at {entry.path})")
    return 0


def cmd_completion(args: argparse.Namespace) -> int:
    from .completion import script

    print(script(args.shell), end="")
    return 0


def cmd_record(args: argparse.Namespace) -> int:
    from .record import record

    task = _task(args)
    row = record(
        task,
        args.stage,
        args.status,
        commit=args.commit,
        run_id=args.run_id,
        force=args.force,
        empty=args.empty,
        reason=args.reason,
        on_wait=_say_on_stderr,
    )
    if args.json:
        _print_json(row.model_dump(exclude_none=True))
        return 0
    at = f" at {row.head_commit[:8]}" if row.head_commit else ""
    if row.empty:
        at += " (empty: it changes nothing)"
    if row.status == "reopened":
        at = f" (its done at {row.replaces[:8]} taken back)" if row.replaces else ""
    print(f"okstra: stage {row.stage} {row.status}{at} (run {row.run_id or '-'})")
    if row.status == "reopened":
        print(f"okstra: see what it waits for: okstra status {task.ref}")
    return 0


def cmd_reconcile(args: argparse.Namespace) -> int:
    if not args.commit:
        _head_start(args)
    from . import reconcile
    from .progress import working

    if args.commit and args.stage is None:
        raise OkstraError(
            "--commit needs --stage N (the stage whose done commit it corrects)",
            f"for example: okstra reconcile {args.task_ref} --stage 1 --commit SHA",
        )
    if args.force and not args.commit:
        raise OkstraError("--force goes with --stage N --commit FULL_SHA", "drop --force")
    task = _task(args)
    found: list[Suggestion] = []
    applied: list[Suggestion] = []
    with working(f"looking for where the done commits of {task.ref} went", quiet=args.json):
        if args.commit:
            one = reconcile.correct(task, args.stage, args.commit, force=args.force, on_wait=_say_on_stderr)
            applied = [one] if one else []
        elif args.apply:
            found, applied = reconcile.suggest_and_apply(
                task, stages=None if args.stage is None else [args.stage], on_wait=_say_on_stderr
            )
        else:
            found = reconcile.suggestions(task, stages=None if args.stage is None else [args.stage])
    if args.json:
        _print_json(
            {
                "task": str(task.ref),
                "suggestions": [s.to_json() for s in found],
                "applied": [s.to_json() for s in applied],
            }
        )
        return 0
    for s in found:
        print(s.line())
        if s.kind == "rewritten" and s.suggested:
            refusal = reconcile.rewritten_refusal(task, s.stage, s.recorded, s.suggested)
            print(f"  {refusal.what}\n  fix: {refusal.how}")
        elif s.not_in_target:
            print(f"  fix: {reconcile.fix_guidance(task, s.stage)}")
    for s in applied:
        print(
            f"okstra: stage {s.stage} done commit {s.recorded[:8]} -> {(s.suggested or '')[:8]} recorded ({s.reason})"
        )
    if args.commit and not applied:
        print(f"okstra: stage {args.stage} is already recorded at that commit; nothing to change")
    elif not args.commit and not found and not task.project.is_git:
        print(f"okstra: project {task.project.id} is not a git repository: there are no commits to reconcile")
    elif not args.commit and not found:
        print(f"okstra: every done stage of {task.ref} is in the task worktree HEAD")
    elif not args.apply and any(s.applicable for s in found):
        print(f"okstra: record these corrections: okstra reconcile {task.ref} --apply")
    return 0


def _task_to_prepare(args: argparse.Namespace, *, render_only: bool = False) -> Task:
    """The task of a command that prepares a run; its project registers itself
    (project.json, the machine's project list), unless nothing is to be written; only
    where the task is, so a prepare run from inside a worktree (which has no .okstra)
    does not make the worktree a project of its own."""
    from .locations import default_root
    from .projects import config_path, init_project, load_project
    from .slugs import TaskRef
    from .tasks import load_task

    ref = TaskRef.parse(args.task_ref)
    root = default_root(getattr(args, "project", None))
    if not render_only and (
        config_path(root).exists() or (root / ".okstra" / "tasks" / ref.group / ref.id / "task.json").exists()
    ):
        init_project(root)
    return load_task(load_project(root), ref)


def cmd_prepare(args: argparse.Namespace) -> int:
    if not args.render_only:
        _head_start(args)  # every prepare with a plan reconciles first
    from .prepare import PrepareOptions, prepare
    from .progress import working
    from .prompts import parse_workers

    options = PrepareOptions(
        task_type=args.task_type,
        stage=args.stage,
        base_ref=args.base_ref,
        render_only=args.render_only,
        workers=tuple(parse_workers(args.workers)),
        qa_waiver=args.qa_waiver,
        replace=args.replace,
        offline=args.offline,
    )
    task = _task_to_prepare(args, render_only=options.render_only)
    with working(f"preparing {task.ref} for {options.task_type}", quiet=args.json):
        prepared = prepare(task, options, notice=_say_on_stderr)
    manifest = prepared.manifest
    if args.json:
        doc = manifest.to_json()
        if options.render_only:
            doc["prompt_text"] = prepared.prompt_text
        _print_json(doc)
        return 0
    print(f"okstra run dir: {manifest.run_dir}")
    print(f"okstra prompt: {manifest.prompt}")
    if manifest.stage is not None:
        print(f"okstra stage: {manifest.stage}")
    from .worktrees import status_words

    status = status_words(manifest.worktree.status, render_only=options.render_only)
    print(f"okstra worktree: {manifest.worktree.path} ({status})")
    if manifest.concurrent_run.detected:
        print(f"okstra concurrent-run stages: {','.join(map(str, manifest.concurrent_run.active_stages))}")
    if options.render_only:
        print("okstra render-only: nothing was written")
        print()
        print(prepared.prompt_text, end="" if prepared.prompt_text.endswith("\n") else "\n")
    else:
        import shlex

        print(f"okstra next: start its agent: okstra launch {shlex.quote(str(manifest.run_dir))}")
    return 0


def cmd_share_status(args: argparse.Namespace) -> int:
    from .share.status import share_status

    doc = share_status(_project(args))
    if args.json:
        _print_json(doc)
        return 0
    if doc["remote"] is None:
        print(f"okstra: project {doc['project']} is not shared (share it: okstra init --share REMOTE)")
        return 0
    reach = {True: "answered", False: f"did not answer ({doc['error']})", None: "not tried yet"}[doc["reachable"]]
    print(f"okstra: project {doc['project']} shares its tasks through {doc['remote']}: it {reach}")
    print(f"okstra: this machine: {doc['machine']} ({doc['host']})")
    print(f"okstra: last fetch {doc['fetched'] or 'never'}, last publish {doc['published'] or 'never'}")
    for task in doc["tasks"]:
        where = (
            "here and on the remote"
            if task["here"] and task["there"]
            else "here only"
            if task["here"]
            else "on the remote only"
        )
        queued = f", {task['queued']} rows not published yet" if task["queued"] else ""
        print(f"  {task['task']}: {where}{queued}")
        if task["branch"]:
            print(f"okstra: {task['branch']}")
    for clash in doc["clashes"]:
        print(
            f"okstra: stage {clash['stage']} of {clash['task']} was taken offline here (run {clash['run_id']}) and by "
            f"{clash['host']} (machine {clash['machine']}, run {clash['their_run']}): release one of them "
            f"(okstra record {clash['task']} --stage {clash['stage']} --status released)"
        )
    return 0


def cmd_share_sync(args: argparse.Namespace) -> int:
    from .share.sync import sync
    from .slugs import TaskRef

    project = _project(args)
    if not project.config.share_remote:
        raise OkstraError(f"project {project.id} is not shared", "share it first: okstra init --share REMOTE")
    report = sync(project, TaskRef.parse(args.task_ref) if args.task_ref else None)
    assert report is not None
    if args.json:
        from dataclasses import asdict

        doc = asdict(report)
        doc["clashes"] = [c.model_dump() for c in report.clashes]
        _print_json(doc)
        return 0
    if not report.reachable:
        raise OkstraError(
            f"{report.remote} did not answer ({report.error}): nothing was synced",
            "okstra works on here; the rows wait and go with the next sync that reaches it",
        )
    _print_sync(report)
    return 0


def _print_sync(report: Any) -> None:
    if not report.reachable:
        print(f"okstra: {report.remote} did not answer ({report.error}): nothing synced; okstra works on here")
        return
    for line in report.said:
        print(f"okstra: {line}")
    print(f"okstra: synced with {report.remote}: {report.imported} rows came in, {report.published} ledgers published")
    for line in report.warnings:
        _say_on_stderr(f"okstra: {line}")
    for clash in report.clashes:
        _say_on_stderr(
            f"okstra: stage {clash.stage} of {clash.task} was taken offline here and by {clash.host} "
            f"(machine {clash.machine}) meanwhile: release one of them"
        )


def cmd_handoff(args: argparse.Namespace) -> int:
    from .handoff import HandoffError, run_handoff
    from .progress import working

    task = _task(args)
    # with --json, progress goes to stderr so stdout stays one document
    info = _say_on_stderr if args.json else print
    doing = "handing off" if args.merge else "planning the handoff of"
    try:
        with working(f"{doing} {task.ref}", quiet=args.json):
            result = run_handoff(task, args.group, merge=args.merge, notice=info, warn=_say_on_stderr)
    except HandoffError as exc:
        if args.json:
            _print_json(exc.to_json())
        raise
    if args.json:
        _print_json(result.to_json())
        return 0
    for line in _handoff_lines(result):
        print(line)
    return 0


def _handoff_lines(result: HandoffResult) -> list[str]:
    from .refusals import some

    plan = result.plan
    head = f"okstra handoff {plan.task.ref} group {plan.group}: stage(s) {', '.join(map(str, plan.stage_numbers))}"
    if result.would_merge:
        head += " — merge plan only, nothing merged (add --merge to merge)"
    lines = [head]
    for sp in plan.stages:
        label = f"  stage {sp.stage} ({sp.title}):"
        done = (sp.done_commit or "")[:8]
        if sp.stage in result.merge_commits:
            line = f"{label} merged {done} from {sp.branch} as {result.merge_commits[sp.stage][:8]}"
        elif sp.stage in result.would_merge:
            line = f"{label} would merge {done} from {sp.branch} ({sp.kind})"
            if sp.stage in plan.predicted_conflicts:
                line += f"; would conflict in {some(plan.predicted_conflicts[sp.stage])}"
        else:
            at = f" at {sp.match_commit[:8]}" if sp.match_commit and sp.match_commit != sp.done_commit else ""
            line = f"{label} already merged ({sp.kind}{at})"
        if sp.left_behind:
            many = len(sp.left_behind)
            line += f"; {many} commit{'s' if many > 1 else ''} after it on its branch left behind (tip {(sp.branch_head or '')[:8]})"
        lines.append(line)
    if result.would_merge:
        lines += [f"okstra: --merge would refuse now: {blocker}" for blocker in plan.merge_blockers()]
    moved = f" (was {result.head_before[:8]})" if result.task_head != result.head_before else ""
    lines.append(f"okstra task worktree: {plan.task_worktree} at {result.task_head[:8]}{moved}")
    if result.next_ready:
        lines.append(f"okstra ready next: {', '.join(map(str, result.next_ready))}")
    if result.report:
        lines.append(f"okstra report: {result.report}")
    lines.append(f"okstra next: {result.next_command}")
    return lines


def _items(count: int) -> str:
    return f"{count} item" if count == 1 else f"{count} items"


def cmd_gc(args: argparse.Namespace) -> int:
    from .gc import collect
    from .progress import working
    from .slugs import TaskRef

    with working("removing what can go" if args.apply else "looking for what can go", quiet=args.json):
        report = collect(_project(args), TaskRef.parse(args.task_ref) if args.task_ref else None, apply=args.apply)
    if args.json:
        _print_json(report.to_json())
        return 0
    for item in report.items:
        what = f"{item.task} " + ("task worktree" if item.stage is None else f"stage {item.stage}")
        parts = [p for p in (item.path, item.branch and f"branch {item.branch}") if p]
        if item.kept:
            print(f"  keep   {what}: {', '.join(parts)} — {item.kept}")
        else:
            verb = "removed" if item.removed else "can go"
            print(f"  {verb} {what}: {', '.join(parts)} ({item.why}; {_size(item.size)})")
    for warning in report.warnings:
        print(f"okstra: warning: {warning}", file=sys.stderr)
    count = len(report.removable)
    if not count:
        print("okstra gc: nothing to remove")
    elif args.apply:
        print(f"okstra gc: removed {_items(count)}, {_size(report.total)} freed")
    else:
        again = " ".join(["okstra gc", *([args.task_ref] if args.task_ref else []), "--apply"])
        print(
            f"okstra gc: {_items(count)} can go, {_size(report.total)}; remove {'it' if count == 1 else 'them'}: {again}"
        )
    return 0


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def cmd_sync(args: argparse.Namespace) -> int:
    from .sync import sync_stage

    result = sync_stage(_task(args), args.stage, rebase=args.rebase, on_wait=_say_on_stderr)
    if args.json:
        _print_json(result.to_json())
    elif result.changed:
        print(
            f"okstra sync: stage {result.stage}'s worktree {result.path} now has the task branch ({result.operation}, {result.before[:8]} -> {result.after[:8]})"
        )
    else:
        print(
            f"okstra sync: stage {result.stage}'s worktree {result.path} already has the task branch at {result.task_tip[:8]}"
        )
    return 0


def cmd_launch(args: argparse.Namespace) -> int:
    from .launch import launch
    from .locations import user_path

    launch(user_path(args.run_dir, "run dir"))
    return 0  # not reached: launch execs the agent


def cmd_start(args: argparse.Namespace) -> int:
    from . import tmux
    from .managed import start_stage
    from .prompts import parse_workers

    tmux.require()
    workers = tuple(parse_workers(args.workers))
    task = _task_to_prepare(args)
    info = _say_on_stderr if args.json else print
    if not args.follow:
        if args.handoff or args.max_parallel is not None:
            raise OkstraError("--max-parallel and --handoff go with --follow", "add --follow, or drop them")
        session = start_stage(task, args.stage, workers=workers, notice=_say_on_stderr)
        if args.json:
            _print_json(session.to_json())
            return 0
        print(f"okstra: stage {session.stage} of {task.ref} started in tmux session {session.session}")
        print(f"okstra: see it: okstra attach {task.ref} {session.stage}; all agents: okstra agents {task.ref}")
        return 0
    from .autopilot import DEFAULT_MAX_PARALLEL, follow

    limit = DEFAULT_MAX_PARALLEL if args.max_parallel is None else args.max_parallel
    if args.stage != "auto":
        first = start_stage(task, args.stage, workers=workers, notice=_say_on_stderr)
        info(f"okstra: stage {first.stage} started in tmux session {first.session}")
    try:
        result = follow(task, limit, handoff=args.handoff, workers=workers, notice=info)
    except KeyboardInterrupt:
        info(f"okstra: autopilot stopped; the agents keep running (okstra agents {task.ref})")
        return 130
    if args.json:
        _print_json(
            {
                "task": str(task.ref),
                "done": result.done,
                "started": [s.to_json() for s in result.started],
                "waiting": {str(n): state for n, state in result.waiting.items()},
            }
        )
        return 0 if result.done else 2
    if not result.done:
        waiting = ", ".join(f"{n} ({state})" for n, state in result.waiting.items())
        held = "".join(f"; the handoff waits: {why}" for why in result.held)
        raise OkstraError(
            f"nothing more of {task.ref} can start and no agent of it runs; not done: stage(s) {waiting}{held}",
            f"see why: okstra status {task.ref}"
            + ("" if args.handoff else f"; a stage waiting for a handoff: okstra start {task.ref} --follow --handoff"),
        )
    print(f"okstra: every stage of {task.ref} is done")
    return 0


def cmd_agents(args: argparse.Namespace) -> int:
    from .managed import sessions

    if args.task_ref:
        task = _task(args)
        found = sessions(task.project, task.ref)
    elif getattr(args, "project", None):
        found = sessions(_project(args))
    else:
        found = sessions()
    if args.json:
        _print_json([s.to_json() for s in found])
        return 0
    if not found:
        print("okstra: no agent in a managed session (start one: okstra start GROUP/ID)")
        return 0
    for s in found:
        where = s.session if s.alive else f"{s.session} (gone)"
        print(f"{s.project_id} {s.task} stage {s.stage}  {s.state:<11}  since {s.agent.since or s.since}  {where}")
    return 0


def cmd_attach(args: argparse.Namespace) -> int:
    from . import tmux
    from .managed import attach_argv, session_of

    tmux.require()
    argv = attach_argv(session_of(_task(args), args.stage))
    sys.stdout.flush()
    os.execvp(argv[0], argv)
    return 0  # not reached


def cmd_stop(args: argparse.Namespace) -> int:
    from .managed import stop

    task = _task(args)
    session = stop(task, args.stage)
    if args.json:
        _print_json(session.to_json())
        return 0
    released = "stage released" if not session.holds else "the stage stays held"
    print(f"okstra: the agent of stage {args.stage} of {task.ref} has exited; {released}")
    return 0


def cmd_usage(args: argparse.Namespace) -> int:
    from .usage import Usage, task_usage

    usage = task_usage(_task(args))
    if args.json:
        _print_json(usage.to_json())
        return 0
    for warning in usage.warnings:
        _say_on_stderr(f"okstra: warning: {warning}")
    if not usage.runs:
        print(f"okstra: no run of {usage.task.ref} has reported a transcript (agents okstra launch starts do)")
        return 0

    def line(label: str, used: Usage) -> str:
        numbers = (used.input, used.output, used.cache_read, used.cache_write)
        return f"{label:<58}" + "".join(f"{n:>14,}" for n in numbers)

    print(f"{'tokens of ' + str(usage.task.ref):<58}{'input':>14}{'output':>14}{'cache read':>14}{'cache write':>14}")
    for run in usage.runs:
        print(line(f"  run {run.run_id}", run.usage))
        for path in run.missing:
            print(f"    (transcript {path} is gone: not counted)")
    for stage, used in usage.stages().items():
        print(line(f"  stage {stage}", used))
    print(line("  total", usage.total))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .locations import user_path
    from .task_report import task_report, write_task_report

    if args.out is None:
        print(task_report(_task(args)), end="")
        return 0
    print(f"okstra: wrote {write_task_report(_task(args), user_path(args.out, '--out'))}")
    return 0


def cmd_agent_event(args: argparse.Namespace) -> int:
    from .agent_events import main as agent_event

    return agent_event()


def cmd_validate_run(args: argparse.Namespace) -> int:
    from .locations import user_path
    from .validate_run import validate_run

    check = validate_run(user_path(args.run_dir, "run dir"))
    if args.json:
        _print_json(check.to_json())
        return 0 if check.ok else 2
    what = f"run {check.run_id} ({check.task_type}{f', stage {check.stage}' if check.stage is not None else ''})"
    if check.ok:
        print(f"okstra: {what} did what its prompt asked")
        return 0
    many = len(check.violations)
    print(f"okstra: {what} breaks its prompt's contract in {many} place{'s' if many > 1 else ''}:")
    for v in check.violations:
        print(f"  {v.code}: {v.what}\n    in: {v.where}\n    fix: {v.how}")
    return 2


def cmd_quarantine_list(args: argparse.Namespace) -> int:
    from .quarantine import list_teams, list_trash

    teams = list_teams()
    if args.json:
        _print_json([info.to_json() for info in teams])
        return 0
    if not teams:
        print("okstra: no okstra-* team state under the agent home")
    for info in teams:
        kinds = ", ".join(p.parent.name for p in info.paths) or "-"
        if info.owner:
            state = (
                f"in flight: run {info.owned_by_run or '?'} ({info.owner.task} stage {info.owner.stage}), not offered"
            )
        elif info.problem:
            state = f"not offered: {info.problem}"
        else:
            state = f"can be quarantined: okstra quarantine move {info.team} --yes"
        if info.pending_stamp:
            state += f"; an interrupted quarantine {info.pending_stamp} holds a copy (rerun the move, or restore it)"
        print(f"{info.team}  [{kinds}]  {state}")
    trash = list_trash()
    if trash:
        print("trash:")
        for entry in trash:
            undo = f"  (okstra quarantine restore {entry.stamp})" if entry.state != "restored" else ""
            print(f"  {entry.stamp}  {entry.team}  {entry.state}{undo}")
    return 0


def cmd_quarantine_move(args: argparse.Namespace) -> int:
    from .quarantine import move_team, plan_move

    plan = plan_move(args.team, by_run=args.run_id)
    if not args.yes:
        if not _stdin_is_tty():
            raise OkstraError(
                f"not moving {args.team} without confirmation (no terminal to ask on); nothing moved",
                f"rerun with --yes: okstra quarantine move {args.team} --yes",
            )
        for line in plan.describe():
            print(line)
        try:
            answer = input("Quarantine it? [y/N] ").strip().lower()
        except EOFError:
            answer = ""
        if answer not in ("y", "yes"):
            print("okstra: nothing moved")
            return 0
    if plan.resuming:
        print(f"okstra: finishing the interrupted quarantine {plan.stamp} of {args.team}", file=sys.stderr)
    entry = move_team(args.team, by_run=args.run_id)
    if args.json:
        _print_json(entry.to_json())
        return 0
    for item in entry.items:
        print(f"okstra: {item.source} -> {entry.dir / item.moved_to}")
    print(f"okstra: quarantined {entry.team} in {entry.dir}; undo: okstra quarantine restore {entry.stamp}")
    return 0


def cmd_quarantine_restore(args: argparse.Namespace) -> int:
    from .quarantine import restore

    entry = restore(args.stamp)
    if args.json:
        _print_json(entry.to_json())
        return 0
    for item in entry.items:
        print(f"okstra: {entry.dir / item.moved_to} -> {item.source}")
    print(f"okstra: restored {entry.team} from {entry.stamp}")
    return 0


def _stdin_is_tty() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (AttributeError, ValueError, OSError):
        return False


if __name__ == "__main__":
    sys.exit(main())
