"""A spinner on stderr while a long command works (prepare, handoff, reconcile), shown
only to a person at a terminal.

Nothing is drawn when stderr is not a terminal (an agent, a pipe, a log) or when the
command answers in JSON; rich is imported only when the spinner is drawn, so the
commands agents call in loops stay light. Lines the command prints meanwhile show above
the spinner; stdout stays the command's own when it is not that terminal (a pipe, a
file): rich sends what it redirects to the spinner's stream.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager


def is_terminal(stream: object) -> bool:
    try:
        return stream is not None and bool(stream.isatty())  # type: ignore[attr-defined]
    except (AttributeError, ValueError, OSError):
        return False


@contextmanager
def working(text: str, *, quiet: bool = False) -> Iterator[None]:
    """Spin with `text` while the block runs; `quiet` (a `--json` command) draws nothing."""
    if quiet or not is_terminal(sys.stderr):
        yield
        return
    from rich.console import Console
    from rich.live import Live
    from rich.spinner import Spinner

    spinner = Spinner("dots", text=text)
    with Live(spinner, console=Console(stderr=True), transient=True, redirect_stdout=is_terminal(sys.stdout)):
        yield
