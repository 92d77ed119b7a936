"""The settings file: read again when it changes, and a key it does not know is an error."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from okstra_engine.config import settings
from okstra_engine.errors import OkstraError
from tests.support import call


def _write(text: str) -> Path:
    path = Path(os.environ["OKSTRA_CONFIG"])
    path.write_text(text, encoding="utf-8")
    return path


def test_a_change_is_seen_without_a_restart() -> None:
    assert settings().stale_ttl_hours == 24.0
    _write("stale_ttl_hours = 2\n")
    assert settings().stale_ttl_hours == 2.0
    _write('stale_ttl_hours = 0.5\nagent_command = ["codex", "{prompt}"]\n')
    assert (settings().stale_ttl_hours, settings().agent_command[0]) == (0.5, "codex")
    Path(os.environ["OKSTRA_CONFIG"]).unlink()
    assert settings().stale_ttl_hours == 24.0


def test_an_unknown_key_is_an_error_naming_it() -> None:
    path = _write('agent_comand = ["codex", "{prompt}"]\n')
    with pytest.raises(OkstraError) as caught:
        settings()
    assert caught.value.what == f"{path}: unknown setting 'agent_comand'"
    assert caught.value.how.startswith("did you mean 'agent_command'?")


def test_the_cli_says_it(capsys, task) -> None:
    _write("stale_ttl = 3\n")
    code, _, err = call(capsys, "--project", str(task.project.root), "status", str(task.ref), "--json")
    assert code == 2
    assert "unknown setting 'stale_ttl'" in err and "did you mean 'stale_ttl_hours'?" in err
