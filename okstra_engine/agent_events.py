"""`okstra agent-event`: the agent's hooks call it with the hook's JSON on stdin; it appends
one row to the run's `agent-events.jsonl` and returns.

It runs on every hook, inside the agent's turn, so it imports only the standard library
and `fsio`, and it never fails into the agent: whatever it cannot use (no run folder in
`OKSTRA_RUN_DIR`, input that is not a hook's JSON, a disk that refuses the write) costs
one note on stderr and exit 0, and nothing on stdout (Claude Code adds a hook's stdout
to the agent's context).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path

EVENTS_NAME = "agent-events.jsonl"
SETTINGS_NAME = "agent-settings.json"
RUN_DIR_VARIABLE = "OKSTRA_RUN_DIR"

HOOK_EVENTS = (
    "SessionStart",
    "UserPromptSubmit",
    "PermissionRequest",
    "Notification",
    "PostToolUse",
    "Stop",
    "StopFailure",
    "SessionEnd",
)
"""The Claude Code hook events `okstra launch` asks for (their names as its hooks
reference spells them); `agent_state` says what each means."""

FIELDS = ("session_id", "transcript_path", "notification_type", "source", "reason", "error", "agent_id")
"""The hook input's fields a row keeps, when they are strings (a prompt, a tool's input
or output never reach the row)."""

_MAX_FIELD = 4096


def main() -> int:
    """The command: always exit 0 (a hook that fails would show in the agent's session)."""
    note: str | None
    try:
        if sys.stdin is None or sys.stdin.isatty():  # run by hand: no hook's input is coming
            note = "reads a hook's JSON on stdin (Claude Code's hooks give it); nothing recorded"
        else:
            note = record_hook(sys.stdin.buffer.read(), os.environ.get(RUN_DIR_VARIABLE))
    except Exception as exc:  # noqa: BLE001 - the boundary: no traceback ever reaches the agent
        note = f"not recorded ({type(exc).__name__}: {exc})"
    if note:
        with contextlib.suppress(OSError):
            print(f"okstra agent-event: {note}", file=sys.stderr)
    return 0


def record_hook(data: bytes, run_dir_text: str | None) -> str | None:
    """Append the row for one hook's input; a note saying why not, or None when written."""
    run_dir = checked_run_dir(run_dir_text)
    if isinstance(run_dir, str):
        return run_dir
    try:
        hook = json.loads(data)
    except ValueError:
        return "the input is not JSON (a hook's input is one JSON object); nothing recorded"
    event = hook.get("hook_event_name") if isinstance(hook, dict) else None
    if not isinstance(event, str) or not event:
        return "the input names no hook_event_name; nothing recorded"
    from . import clock
    from .fsio import append_line

    row: dict[str, str] = {"ts": clock.iso(), "event": event[:_MAX_FIELD]}
    for name in FIELDS:
        value = hook.get(name)
        if isinstance(value, str) and value:
            row[name] = value[:_MAX_FIELD]
    append_line(run_dir / EVENTS_NAME, json.dumps(row, ensure_ascii=False))
    return None


def checked_run_dir(text: str | None) -> Path | str:
    """`OKSTRA_RUN_DIR` as the run folder it must name (absolute, with no link in it, at
    a run folder's place, holding its manifest), else a note saying what is wrong."""
    from .run_folder import has_manifest, run_place

    if not text:
        return f"{RUN_DIR_VARIABLE} is not set (okstra launch sets it); nothing recorded"
    if not os.path.isabs(text) or os.path.realpath(text) != text:
        return f"{RUN_DIR_VARIABLE}={text!r} is not an absolute path without links; nothing recorded"
    run_dir = Path(text)
    if run_place(run_dir) is None or not has_manifest(run_dir):
        return f"{RUN_DIR_VARIABLE}={text!r} is not a run folder of an okstra task; nothing recorded"
    return run_dir


def okstra_argv() -> list[str]:
    """This okstra, by absolute path: the console script beside the running Python (not
    resolved: a venv's python is a link out of the venv), else the module through it."""
    script = Path(sys.executable).with_name("okstra")
    if os.path.isfile(script) and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "okstra_tui.entry"]


def hook_settings() -> dict[str, object]:
    """The `--settings` document whose hooks send every event of `HOOK_EVENTS` to this
    okstra's `agent-event`: a shell command (the form every Claude Code version runs)
    built from nothing but quoted paths."""
    import shlex

    command = shlex.join([*okstra_argv(), "agent-event"])
    hooks: dict[str, object] = {}
    for event in HOOK_EVENTS:
        hook: dict[str, object] = {"type": "command", "command": command, "timeout": 10}
        if event == "PostToolUse":
            hook["async"] = True  # after every tool call: the agent does not wait for it
        hooks[event] = [{"hooks": [hook]}]
    return {"hooks": hooks}
