"""QA waivers in the task's `qa/conformance-manifest.json`.

A waiver tells the verifier to skip a stage's conformance check. One left behind by an
earlier run would silently mask the stage, so a new implementation run of stage N
clears it — unless this very run waives that same stage again.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import ConfigDict

from . import clock
from .documents import Doc, load_doc, save_doc
from .errors import OkstraError

_KEY = re.compile(r".+-stage-([0-9]+)")


class Waiver(Doc):
    model_config = ConfigDict(extra="allow")

    reason: str
    when: str | None = None


class ConformanceManifest(Doc):
    """The file as agents write it. Only its outline is required (an object whose
    `entries`, if any, are a list); each entry is read on its own terms by `_entry`, and
    what okstra does not change is written back as it was found."""

    model_config = ConfigDict(extra="allow")

    entries: list[Any] = []


def manifest_path(task_dir: Path) -> Path:
    return task_dir / "qa" / "conformance-manifest.json"


def parse_waiver_arg(text: str) -> tuple[str, str]:
    """`KEY=REASON` → (key, reason); the key is `<task_id>-stage-<N>`."""
    key, sep, reason = text.partition("=")
    key, reason = key.strip(), reason.strip()
    if not sep or not _KEY.fullmatch(key) or not reason:
        raise OkstraError(
            f"--qa-waiver {text!r} is not STAGEKEY=REASON",
            "for example: --qa-waiver 'login-stage-3=flaky upstream API, verified by hand'",
        )
    return key, reason


def _load(path: Path) -> ConformanceManifest:
    try:
        return load_doc(
            path,
            ConformanceManifest,
            how=f"fix it or move it aside: it must be a JSON object with a list 'entries' ({path})",
        )
    except FileNotFoundError:
        return ConformanceManifest()


def check_manifest(task_dir: Path) -> None:
    """Refuse a manifest okstra cannot understand at all (what every prepare reads)."""
    _load(manifest_path(task_dir))


def _entry(raw: Any) -> tuple[str, Waiver | None] | None:
    """An entry's stage key and waiver, or None for an entry okstra does not use (kept).
    A waiver may be written as a bare string: its reason."""
    if not isinstance(raw, dict) or not isinstance(raw.get("stageKey"), str):
        return None
    waiver = raw.get("waiver")
    if isinstance(waiver, str):
        return raw["stageKey"], Waiver(reason=waiver) if waiver.strip() else None
    if isinstance(waiver, dict) and isinstance(waiver.get("reason"), str):
        when = waiver.get("when")
        return raw["stageKey"], Waiver(reason=waiver["reason"], when=when if isinstance(when, str) else None)
    return raw["stageKey"], None


def set_waiver(task_dir: Path, key: str, reason: str) -> None:
    path = manifest_path(task_dir)
    manifest = _load(path)
    waiver = {"reason": reason, "when": clock.iso()}
    for raw in manifest.entries:
        found = _entry(raw)
        if found is not None and found[0] == key:
            raw["waiver"] = waiver
            break
    else:
        manifest.entries.append({"stageKey": key, "waiver": waiver})
    save_doc(path, manifest)


def clear_stale_waivers(task_dir: Path, stage: int, keep_key: str | None = None) -> list[str]:
    """Drop waivers on `…-stage-<stage>` except `keep_key`; return the keys cleared."""
    path = manifest_path(task_dir)
    if not path.exists():
        return []
    manifest = _load(path)
    cleared = []
    for raw in manifest.entries:
        found = _entry(raw)
        if found is None or found[1] is None:
            continue
        key = found[0]
        match = _KEY.fullmatch(key)
        if match and int(match.group(1)) == stage and key != keep_key:
            del raw["waiver"]
            cleared.append(key)
    if cleared:
        save_doc(path, manifest)
    return cleared


def waivers(task_dir: Path) -> dict[str, Waiver]:
    path = manifest_path(task_dir)
    if not path.exists():
        return {}
    found = (_entry(raw) for raw in _load(path).entries)
    return {key: waiver for key, waiver in (f for f in found if f is not None) if waiver is not None}
