"""The engine never imports the UI, and the agent-facing commands stay light."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import okstra_engine


def _loaded_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_no_engine_module_imports_textual_or_the_tui() -> None:
    for info in pkgutil.iter_modules(okstra_engine.__path__):
        loaded = _loaded_after(f"import okstra_engine.{info.name}")
        assert not {m for m in loaded if m.split(".")[0] in ("textual", "okstra_tui")}, info.name


def test_status_and_record_paths_skip_textual_rich_and_gitpython() -> None:
    # the console script's module is okstra_tui.entry: it must load nothing of the UI
    loaded = _loaded_after("import okstra_tui.entry, okstra_engine.cli, okstra_engine.status, okstra_engine.record")
    for heavy in ("textual", "rich", "git", "okstra_tui.app"):
        assert heavy not in loaded, heavy
