"""The agent's hooks: the `--settings` document `okstra launch` gives Claude Code
(`hook_settings`), and what each hook runs, which appends one row to the run's
`agent-events.jsonl` (`main`, also `okstra agent-event`).

The hook runs on every event, inside the agent's turn, so it is started as this file
run by the interpreter itself (`hook_argv`: no console script, no site) and imports
only `os`, `sys`, `time`, `_json` and the engine's `run_folder` and `fsio`; it never
fails into the agent: whatever it cannot use (no run folder in `OKSTRA_RUN_DIR`, input
that is not a hook's JSON, a disk that refuses the write) costs one note on stderr and
exit 0, and nothing on stdout (Claude Code adds a hook's stdout to the agent's context).
"""

from __future__ import annotations

import os
import sys

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
        try:  # noqa: SIM105 - contextlib would load collections and functools on every refused hook
            print(f"okstra agent-event: {note}", file=sys.stderr)
        except OSError:
            pass
    return 0


def record_hook(data: bytes, run_dir: str | None) -> str | None:
    """Append the row for one hook's input; a note saying why not, or None when written."""
    problem = run_dir_problem(run_dir)
    if problem is not None or run_dir is None:
        return problem
    try:
        hook = loads(data)
    except ValueError:
        return "the input is not JSON (a hook's input is one JSON object); nothing recorded"
    event = hook.get("hook_event_name") if isinstance(hook, dict) else None
    if not isinstance(hook, dict) or not isinstance(event, str) or not event:
        return "the input names no hook_event_name; nothing recorded"
    import time

    # clock.iso's form, without loading datetime and dataclasses (the hook's process pins no time)
    row: dict[str, str] = {"ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "event": event[:_MAX_FIELD]}
    for name in FIELDS:
        value = hook.get(name)
        if isinstance(value, str) and value:
            row[name] = value[:_MAX_FIELD]
    from .fsio import append_line

    append_line(os.path.join(run_dir, EVENTS_NAME), dumps_row(row))
    return None


def run_dir_problem(text: str | None) -> str | None:
    """What is wrong with `OKSTRA_RUN_DIR` as the run folder it must name (absolute, with
    no link in it, at a run folder's place, holding its manifest); None when nothing."""
    from .run_folder import has_manifest, place_parts

    if not text:
        return f"{RUN_DIR_VARIABLE} is not set (okstra launch sets it); nothing recorded"
    if not os.path.isabs(text) or os.path.realpath(text) != text:
        return f"{RUN_DIR_VARIABLE}={text!r} is not an absolute path without links; nothing recorded"
    if place_parts(text) is None or not has_manifest(text):
        return f"{RUN_DIR_VARIABLE}={text!r} is not a run folder of an okstra task; nothing recorded"
    return None


class _Plain:
    """`json.loads`'s settings, as the C scanner reads them (`parse_constant`: NaN and
    ±Infinity as floats, as `json` makes them)."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = float


_SPACE = " \t\n\r"


def loads(data: bytes) -> object:
    """`json.loads(data)` for UTF-8 input, through CPython's own scanner: `json` imports
    `re`, which costs the hook half a bare interpreter's start. ValueError when it is not
    one JSON document."""
    try:
        from _json import make_scanner
    except ImportError:  # another Python: its json
        import json

        return json.loads(data)
    text = data.decode("utf-8")
    start = len(text) - len(text.lstrip(_SPACE))
    try:
        value, end = make_scanner(_Plain)(text, start)  # type: ignore[arg-type]  # typeshed wants a scanner; any object with these attributes does
    except StopIteration:
        raise ValueError("expecting a value") from None
    if text[end:].strip(_SPACE):
        raise ValueError("extra data after the document")
    return value


def dumps_row(row: dict[str, str]) -> str:
    """`json.dumps(row, ensure_ascii=False)` for a row of strings, without importing `json`."""
    try:
        from _json import encode_basestring
    except ImportError:
        import json

        return json.dumps(row, ensure_ascii=False)
    return "{" + ", ".join(f"{encode_basestring(k)}: {encode_basestring(v)}" for k, v in row.items()) + "}"


def okstra_argv() -> list[str]:
    """This okstra, by absolute path: the console script beside the running Python (not
    resolved: a venv's python is a link out of the venv), else the module through it."""
    from pathlib import Path

    script = Path(sys.executable).with_name("okstra")
    if os.path.isfile(script) and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "okstra_tui.entry"]


def hook_argv() -> list[str]:
    """What a hook runs: this interpreter on this file, isolated (`-I`: nothing from the
    environment or the working folder on its path) and without `site` (`-S`: the hook
    needs the standard library and this package, which the file finds beside itself),
    which starts in under half the time of the `okstra agent-event` console script (its
    wrapper alone imports `re`); that command when this file is not a plain file."""
    here = os.path.abspath(__file__)
    if os.path.isabs(sys.executable) and here.endswith(".py") and os.path.isfile(here):
        return [sys.executable, "-I", "-S", here]
    return [*okstra_argv(), "agent-event"]


def hook_settings() -> dict[str, object]:
    """The `--settings` document whose hooks send every event of `HOOK_EVENTS` to
    `hook_argv`: a shell command (the form every Claude Code version runs) built from
    nothing but quoted paths."""
    import shlex

    command = shlex.join(hook_argv())
    hooks: dict[str, object] = {}
    for event in HOOK_EVENTS:
        hook: dict[str, object] = {"type": "command", "command": command, "timeout": 10}
        if event == "PostToolUse":
            hook["async"] = True  # after every tool call: the agent does not wait for it
        hooks[event] = [{"hooks": [hook]}]
    return {"hooks": hooks}


if __name__ == "__main__":  # the hook (`hook_argv`): -S left the package off the path
    sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:
        from okstra_engine.agent_events import main as _main
    except ImportError as exc:  # okstra moved or half removed since the launch: still never fail the agent
        print(f"okstra agent-event: not recorded (okstra is not beside {__file__}: {exc})", file=sys.stderr)
        sys.exit(0)
    sys.exit(_main())
