"""The `okstra` console script: the engine's CLI, with the terminal UI behind the commands
that open it (the default command and `demo`).

The engine never imports the UI; this module hands it the one function that opens it.
Importing this module loads neither Textual nor rich, so `okstra status` and `okstra
record` stay as light as the engine's own CLI.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (`agent-event` starts here too)
if TYPE_CHECKING:
    from pathlib import Path

    from okstra_engine.slugs import TaskRef


def open_ui(
    *,
    project: str | None,
    task: str | None,
    lang: str | None,
    command_env: dict[str, str] | None = None,
    reopen: str | None = None,
) -> int:
    """`okstra [--project PATH] [--task G/ID] [--lang en|ko]`. `reopen`: the command that
    opens this UI again, printed when the app leaves for an agent (the demo's own)."""
    from okstra_engine.locations import default_root
    from okstra_engine.slugs import TaskRef

    root: Path | None = None
    ref: TaskRef | None = None
    if task is not None:
        ref = TaskRef.parse(task)
    if project is not None or ref is not None:
        root = default_root(project)
    from .app import run_app

    return run_app(project=root, task=ref, lang=lang, command_env=command_env, reopen=reopen)


def main(argv: list[str] | None = None) -> int:
    if (sys.argv[1:] if argv is None else argv) == ["agent-event"]:
        # as the hooks run it (they start `agent_events` directly): no parser, settings or pydantic
        from okstra_engine.agent_events import main as agent_event

        return agent_event()
    from okstra_engine.cli import main as engine_main

    return engine_main(argv, open_ui=open_ui)


if __name__ == "__main__":
    sys.exit(main())
