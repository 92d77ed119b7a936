"""The `okstra` console script: the engine's CLI, with the terminal UI behind the commands
that open it (the default command and `demo`).

The engine never imports the UI; this module hands it the one function that opens it.
Importing this module loads neither Textual nor rich, so `okstra status` and `okstra
record` stay as light as the engine's own CLI.
"""

from __future__ import annotations

import sys


def open_ui(**options) -> int:
    from .app import run_app

    return run_app(**options)


def main(argv: list[str] | None = None) -> int:
    from okstra_engine.cli import main as engine_main

    return engine_main(argv, open_ui=open_ui)


if __name__ == "__main__":
    sys.exit(main())
