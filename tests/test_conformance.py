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


def test_an_entry_without_a_stage_key_is_kept_and_ignored(tmp_path: Path) -> None:
    path = manifest_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text('{"entries": [{"waiver": null}, "a note", {"stageKey": "login-stage-1", "waiver": "r"}]}')
    assert clear_stale_waivers(tmp_path, 1) == ["login-stage-1"]
    assert json.loads(path.read_text())["entries"] == [{"waiver": None}, "a note", {"stageKey": "login-stage-1"}]


def test_waivers_agents_write_in_other_shapes_are_understood(tmp_path: Path) -> None:
    """A waiver as a bare string (its reason), a waiver without `when`, unknown fields."""
    path = manifest_path(tmp_path)
    path.parent.mkdir(parents=True)
    doc = {
        "schema": "agent-v2",
        "entries": [
            {"stageKey": "login-stage-1", "waiver": "flaky API"},
            {"stageKey": "login-stage-2", "waiver": {"reason": "by hand", "by": "lead"}, "tier": 2},
            {"stageKey": "login-stage-3"},
        ],
    }
    path.write_text(json.dumps(doc))
    found = waivers(tmp_path)
    assert {k: (w.reason, w.when) for k, w in found.items()} == {
        "login-stage-1": ("flaky API", None),
        "login-stage-2": ("by hand", None),
    }
    set_waiver(tmp_path, "login-stage-3", "again")
    after = json.loads(path.read_text())
    assert after["schema"] == "agent-v2" and after["entries"][:2] == doc["entries"][:2]
    assert after["entries"][2]["waiver"]["reason"] == "again"


@pytest.mark.parametrize(
    "text, said",
    [
        ("not json", "Invalid JSON"),
        ("[1, 2]", "object"),
        ('{"entries": {"a": 1}}', "entries"),
    ],
)
def test_a_manifest_okstra_cannot_understand_is_a_clear_error(tmp_path: Path, text: str, said: str) -> None:
    path = manifest_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text(text)
    with pytest.raises(OkstraError) as refused:
        clear_stale_waivers(tmp_path, 1)
    assert said in refused.value.what and str(path) in refused.value.what + refused.value.how
