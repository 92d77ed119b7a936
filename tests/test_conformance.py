from __future__ import annotations

import json
from pathlib import Path

import pytest

from okstra_engine.conformance import clear_stale_waivers, manifest_path, parse_waiver_arg, set_waiver, waivers
from okstra_engine.errors import OkstraError


def test_parse_waiver_arg() -> None:
    assert parse_waiver_arg("login-stage-3=flaky API") == ("login-stage-3", "flaky API")
    for bad in ("login-stage-3", "=x", "login-3=x", "login-stage-3=", "login-stage-x=y"):
        with pytest.raises(OkstraError):
            parse_waiver_arg(bad)


def test_new_run_clears_stale_waiver_on_its_stage_only(tmp_path: Path) -> None:
    set_waiver(tmp_path, "login-stage-2", "old")
    set_waiver(tmp_path, "login-stage-12", "other stage")
    set_waiver(tmp_path, "login-stage-3", "other stage")
    assert clear_stale_waivers(tmp_path, 2) == ["login-stage-2"]
    assert set(waivers(tmp_path)) == {"login-stage-12", "login-stage-3"}


def test_rewaived_key_is_kept(tmp_path: Path) -> None:
    set_waiver(tmp_path, "login-stage-2", "again, on purpose")
    assert clear_stale_waivers(tmp_path, 2, keep_key="login-stage-2") == []
    assert waivers(tmp_path)["login-stage-2"].reason == "again, on purpose"


def test_unknown_fields_survive_and_entries_without_waiver(tmp_path: Path) -> None:
    path = manifest_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text(
        json.dumps(
            {
                "entries": [{"stageKey": "login-stage-1", "tier": 3, "waiver": {"reason": "r", "when": "w"}}],
                "extra": True,
            }
        )
    )
    clear_stale_waivers(tmp_path, 1)
    doc = json.loads(path.read_text())
    assert doc["extra"] is True and doc["entries"][0]["tier"] == 3 and "waiver" not in doc["entries"][0]


def test_bad_manifest_is_a_clear_error(tmp_path: Path) -> None:
    path = manifest_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text('{"entries": [{"waiver": null}]}')
    with pytest.raises(OkstraError, match="field 'entries.0.stageKey'"):
        clear_stale_waivers(tmp_path, 1)
