"""Every tmux call okstra makes: argument lists, never shell strings (as `git.py` owns git).

The server is the person's default one, or the one named by `OKSTRA_TMUX_SOCKET` (else
the `tmux_socket` setting): `tmux -L NAME`, a private server, which is what tests use so
that they never touch the person's sessions.

tmux's own command line, not libtmux: on this 2-core machine importing libtmux costs
~65 ms (okstra keeps `status` light) and its calls are slower than the CLI's (listing
sessions 8.6 ms against 2.2 ms, starting one 6.7 ms against 4.2 ms).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .errors import OkstraError

SOCKET_VARIABLE = "OKSTRA_TMUX_SOCKET"

_NOT_PASSED = frozenset({"TMUX", "TMUX_PANE", "TERM", "TERM_PROGRAM", "TERM_PROGRAM_VERSION", "COLUMNS", "LINES"})
"""What a session's process does not take from okstra's environment: tmux sets the
terminal's own, and a pane is not inside the tmux okstra may run in."""


@dataclass(frozen=True)
class Session:
    name: str
    pid: int
    """The pid of its (first) pane's process: the command the session was started with."""
    created: int
    """When it was made (seconds since the epoch)."""


def available() -> bool:
    """Whether tmux is installed."""
    return shutil.which("tmux") is not None


def socket_name() -> str | None:
    """The private server's name (`tmux -L NAME`), or None for the person's default server."""
    name = os.environ.get(SOCKET_VARIABLE)
    if name:
        return name
    from .config import settings

    return settings().tmux_socket or None


def tmux_argv(*args: str) -> list[str]:
    socket = socket_name()
    return ["tmux", *(["-L", socket] if socket else []), *args]


def require() -> None:
    """Refuse when tmux is not installed (`managed.no_tmux`)."""
    if not available():
        from .refusals import Refusal

        raise Refusal("managed.no_tmux", {}).error()


def _run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    require()
    argv = tmux_argv(*args)
    proc = subprocess.run(argv, capture_output=True, text=True, env=_own_env(), check=False)
    if check and proc.returncode != 0:
        raise OkstraError(
            f"tmux {' '.join(args[:1])} failed: {proc.stderr.strip() or f'exit {proc.returncode}'}",
            "check that tmux works here: tmux new-session -d true",
        )
    return proc


def _own_env() -> dict[str, str]:
    """okstra's environment for its tmux calls: without $TMUX, so that a call from inside
    a tmux session talks to the default server (or the one `-L` names), wherever okstra
    runs: its sessions are always on the same server."""
    env = dict(os.environ)
    env.pop("TMUX", None)
    return env


def list_sessions() -> dict[str, Session]:
    """Every session of the server, by name; none when no server runs (or no tmux is
    installed: then no session of okstra's still runs)."""
    if not available():
        return {}
    proc = _run("list-sessions", "-F", "#{session_name}\t#{pane_pid}\t#{session_created}", check=False)
    if proc.returncode != 0:
        # no server yet (`no server running on …`, `error connecting to …`): no sessions
        return {}
    found = {}
    for line in proc.stdout.splitlines():
        name, _, rest = line.partition("\t")
        pid, _, created = rest.partition("\t")
        if name and pid.isdigit():
            found[name] = Session(name, int(pid), int(created) if created.isdigit() else 0)
    return found


def new_session(name: str, argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> Session:
    """Start `argv` in a new detached session `name`, in `cwd`, with okstra's environment
    (plus `env`): a server started long ago by the person has another one. More than one
    word, so tmux runs the program itself, without a shell: the pane's pid is the
    program's."""
    if len(argv) < 2:
        argv = ["env", *argv]  # one word would be handed to `sh -c`
    values = {k: v for k, v in os.environ.items() if k not in _NOT_PASSED}
    values.update(env or {})
    pairs = [item for key, value in values.items() for item in ("-e", f"{key}={value}")]
    proc = _run(
        "new-session", "-d", "-s", name, "-c", str(cwd), *pairs, "-P", "-F", "#{pane_pid}\t#{session_created}", *argv
    )
    pid, _, created = proc.stdout.strip().partition("\t")
    return Session(name, int(pid), int(created) if created.isdigit() else 0)


def has_session(name: str) -> bool:
    return name in list_sessions()


def send_keys(name: str, *keys: str) -> bool:
    """Type `keys` (tmux key names: `C-c`) into the session's pane; False when it is gone."""
    return _run("send-keys", "-t", f"={name}:", *keys, check=False).returncode == 0


def kill_session(name: str) -> bool:
    return _run("kill-session", "-t", f"={name}", check=False).returncode == 0


def socket_path() -> Path:
    """Where the server okstra talks to listens (tmux's own rule: `$TMUX_TMPDIR` or /tmp,
    then `tmux-UID/NAME`)."""
    base = os.environ.get("TMUX_TMPDIR") or "/tmp"
    return Path(base) / f"tmux-{os.getuid()}" / (socket_name() or "default")


def attach_argv(name: str) -> list[str]:
    """The command that shows session `name` in this terminal: `switch-client` from inside
    a session of the same server, else `attach-session` (from inside another server's
    session, with $TMUX unset: tmux refuses to nest otherwise). Detaching (C-b d) ends it."""
    inside = os.environ.get("TMUX", "")
    target = f"={name}"
    if inside and Path(inside.split(",")[0]) == socket_path():
        return tmux_argv("switch-client", "-t", target)
    argv = tmux_argv("attach-session", "-t", target)
    return ["env", "-u", "TMUX", *argv] if inside else argv


def safe_name(text: str) -> str:
    """`text` as a session name tmux takes as it is: `.` and `:` separate a target's
    window and pane, so every character but letters, digits, `-` and `_` becomes `-`."""
    return "".join(c if c.isascii() and (c.isalnum() or c in "-_") else "-" for c in text)
