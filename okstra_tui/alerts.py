"""Calling the person back when an agent needs input or finished (`model.ALERTS`): the
channels the settings' `notify` names (`config.NOTIFY_CHANNELS`), each as it reaches the
person — the terminal's bell, a desktop notification through the terminal (OSC 9, shown by
iTerm2, kitty, WezTerm, foot, Windows Terminal and others; the rest ignore it), and
`notify-send` where it is on PATH. No Textual here: the app writes what these make.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess

_MAX_TEXT = 200


def osc9(text: str, *, in_tmux: bool | None = None) -> str:
    """The OSC 9 sequence that shows `text` as a desktop notification. Inside tmux it is
    wrapped for tmux's passthrough (its escapes doubled), which tmux forwards to the outer
    terminal when `allow-passthrough` is on, and drops otherwise."""
    clean = "".join(ch for ch in text if ch.isprintable())[:_MAX_TEXT]
    # ConEmu and Windows Terminal read `9;<digit>;` as a command of their own
    sequence = f"\x1b]9;okstra: {clean}\x07"
    if in_tmux if in_tmux is not None else bool(os.environ.get("TMUX")):
        return "\x1bPtmux;" + sequence.replace("\x1b", "\x1b\x1b") + "\x1b\\"
    return sequence


def notify_send_argv(title: str, text: str) -> list[str] | None:
    """The `notify-send` command that shows `text`; None when it is not on PATH."""
    program = shutil.which("notify-send")
    return [program, "--app-name=okstra", title, text] if program else None


def run_quietly(argv: list[str]) -> None:
    """Run a notifier, ignoring how it fares: a notification that cannot show is no error
    of the board's (no desktop session, say)."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=10, check=False)
