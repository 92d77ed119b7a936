"""A spinner on stderr while a long command works (prepare, handoff, reconcile), shown
only to a person at a terminal.

Nothing is drawn when stderr is not a terminal (an agent, a pipe, a log) or when the
command answers in JSON; rich is imported only when the spinner is drawn, so the
commands agents call in loops stay light. Lines the command prints meanwhile show above
the spinner (rich redirects stdout and stderr while it spins).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager


def stderr_is_terminal() -> bool:
    try:
        return sys.stderr is not None and sys.stderr.isatty()
    except (AttributeError, ValueError, OSError):
        return False


@contextmanager
def working(text: str, *, quiet: bool = False) -> Iterator[None]:
    """Spin with `text` while the block runs; `quiet` (a `--json` command) draws nothing."""
    if quiet or not stderr_is_terminal():
        yield
        return
    from rich.console import Console

    with Console(stderr=True).status(text, spinner="dots"):
        yield
