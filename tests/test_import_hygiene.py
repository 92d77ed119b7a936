"""The engine never imports the UI, and the agent-facing commands stay light.

Checked in fresh interpreters, as harlequin does: the test process itself has Textual
loaded, so only a new process can tell what a module or a command pulls in.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support import commit

UI = ("textual", "okstra_tui")

# Every module of the package, subpackages included, imported one after another in one
# fresh interpreter; after each import, what it added that belongs to the UI. Imports
# only add to sys.modules, so the first module to pull in the UI is the one named, as
# it would be in a process of its own.
_EACH_ENGINE_MODULE = """
import importlib, json, pkgutil, sys
import okstra_engine
found = {}
names = [i.name for i in pkgutil.walk_packages(okstra_engine.__path__, "okstra_engine.")]
for name in names:
    importlib.import_module(name)
    ui = sorted(m for m in sys.modules if m.split(".")[0] in %r)
    if ui:
        found[name] = ui
        break
print(json.dumps({"modules": names, "ui": found}))
"""


def test_no_engine_module_imports_textual_or_the_tui() -> None:
    probe = _EACH_ENGINE_MODULE % (UI,)
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    report = json.loads(out)
    assert report["ui"] == {}
    # the walk reached the engine's modules, not an empty package
    assert {"okstra_engine.cli", "okstra_engine.status", "okstra_engine.record"} <= set(report["modules"])


# The console script's own `main`, run as an agent runs it; then the modules it loaded.
_RUN_COMMAND = """
import json, sys
from okstra_tui.entry import main
code = main(json.loads(sys.argv[1]))
with open(sys.argv[2], "w") as out:
    json.dump(sorted(sys.modules), out)
sys.exit(code)
"""


def _modules_after(tmp_path: Path, *args: str) -> set[str]:
    listing = tmp_path / "modules.json"
    proc = subprocess.run(
        [sys.executable, "-c", _RUN_COMMAND, json.dumps(list(args)), str(listing)],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr
    return set(json.loads(listing.read_text()))


def _ui_modules(loaded: set[str]) -> set[str]:
    # the console script is okstra_tui.entry: it and its package are expected
    return {m for m in loaded if m.split(".")[0] in UI} - {"okstra_tui", "okstra_tui.entry"}


def test_status_and_record_commands_load_no_textual_rich_or_gitpython(task, repo: Path, tmp_path: Path) -> None:
    project = ["--project", str(repo)]
    sha = commit(repo, {"schema.py": "x = 1\n"}, "stage 1")
    commands = [
        ["record", "auth/login", "--stage", "1", "--status", "started", "--run", "run-1", *project],
        ["record", "auth/login", "--stage", "1", "--status", "done", "--commit", sha, *project],
        ["status", "auth/login", "--json", *project],
    ]
    for args in commands:
        loaded = _modules_after(tmp_path, *args)
        assert not _ui_modules(loaded), args
        for heavy in ("rich", "git"):  # git: GitPython, which okstra never needs
            assert heavy not in loaded, (heavy, args)
    # the table for people needs rich, still no UI
    loaded = _modules_after(tmp_path, "status", "auth/login", *project)
    assert "rich" in loaded
    assert not _ui_modules(loaded)


def test_long_commands_off_a_terminal_and_completion_load_no_rich(task, repo: Path, tmp_path: Path) -> None:
    """The spinner of prepare and reconcile (and handoff: the same `progress.working`)
    imports rich only on a terminal (these runs have none: stdin, stdout and stderr are
    files or pipes); a TAB's `__complete` loads neither rich nor the UI."""
    project = ["--project", str(repo)]
    commands = [
        ["reconcile", "auth/login", *project],
        ["prepare", "auth/login", "--type", "implementation", *project],
        ["__complete", "--", "status", "--project", str(repo), ""],
    ]
    for args in commands:
        loaded = _modules_after(tmp_path, *args)
        assert not _ui_modules(loaded), args
        assert "rich" not in loaded, args


# The hook's command run in a fresh interpreter with the hook's flags (the file executed
# as `__main__`, as `python -I -S FILE` does); then the modules it loaded, one a line.
_RUN_HOOK = """
import sys
path = sys.argv[1]
code = compile(open(path, "rb").read(), path, "exec")
try:
    exec(code, {"__name__": "__main__", "__file__": path})
except SystemExit:
    pass
sys.stdout.write("\\n".join(sorted(sys.modules)))
"""

_HOOK_ENGINE = {"okstra_engine", "okstra_engine.agent_events", "okstra_engine.run_folder", "okstra_engine.fsio"}
_HOOK_ENGINE |= {"okstra_engine.faults"}


def test_agent_event_loads_neither_pydantic_nor_the_heavy_engine(task, tmp_path: Path) -> None:
    """Every hook of the agent's runs it: the hook's command loads a handful of standard
    modules and four small engine ones (not even `re`, `json` or pathlib, which would
    each cost a large part of a bare interpreter's start); `okstra agent-event` typed
    through the console script loads no more of the engine."""
    from okstra_engine.agent_events import EVENTS_NAME, RUN_DIR_VARIABLE, hook_argv
    from tests.support import prepared_run

    run = prepared_run(task)
    python, *flags, path = hook_argv()
    assert flags == ["-I", "-S"]
    env = {**os.environ, RUN_DIR_VARIABLE: str(run)}
    proc = subprocess.run(
        [python, *flags, "-c", _RUN_HOOK, path], input=b'{"hook_event_name": "Stop"}', env=env, capture_output=True
    )
    assert (proc.returncode, proc.stderr) == (0, b"")
    loaded = set(proc.stdout.decode().splitlines())
    assert json.loads((run / EVENTS_NAME).read_text())["event"] == "Stop"  # it ran the whole way
    assert {m for m in loaded if m.startswith("okstra")} == _HOOK_ENGINE
    for heavy in ("pydantic", "argparse", "re", "json", "pathlib", "typing", "datetime", "dataclasses", "shutil"):
        assert heavy not in loaded, heavy

    typed = subprocess.run(
        [sys.executable, "-c", _RUN_COMMAND, json.dumps(["agent-event"]), str(tmp_path / "modules.json")],
        input=b'{"hook_event_name": "Stop"}',
        env=env,
        capture_output=True,
    )
    assert (typed.returncode, typed.stderr) == (0, b"")
    loaded = set(json.loads((tmp_path / "modules.json").read_text()))
    assert {m for m in loaded if m.startswith("okstra_engine")} == _HOOK_ENGINE
    assert not {m for m in loaded if m.split(".")[0] in ("pydantic", "argparse", "textual", "rich")}
