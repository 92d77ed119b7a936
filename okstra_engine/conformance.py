"""QA waivers in the task's `qa/conformance-manifest.json`.

A waiver tells the verifier to skip a stage's conformance check. One left behind by an
earlier run would silently mask the stage, so a new implementation run of stage N
clears it — unless this very run waives that same stage again.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import ConfigDict, Field

from . import clock
from .documents import Doc, load_doc, save_doc
from .errors import OkstraError

_KEY = re.compile(r".+-stage-([0-9]+)")


class Waiver(Doc):
    model_config = ConfigDict(extra="allow")

    reason: str
    when: str


class ConformanceEntry(Doc):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    stage_key: str = Field(alias="stageKey")
    waiver: Waiver | None = None


class ConformanceManifest(Doc):
    model_config = ConfigDict(extra="allow")

    v: int = 1
    entries: list[ConformanceEntry] = []


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
        return load_doc(path, ConformanceManifest)
    except FileNotFoundError:
        return ConformanceManifest()


def set_waiver(task_dir: Path, key: str, reason: str) -> None:
    path = manifest_path(task_dir)
    manifest = _load(path)
    when = clock.iso()
    entry = next((e for e in manifest.entries if e.stage_key == key), None)
    if entry is None:
        manifest.entries.append(ConformanceEntry(stage_key=key, waiver=Waiver(reason=reason, when=when)))
    else:
        entry.waiver = Waiver(reason=reason, when=when)
    save_doc(path, manifest)


def clear_stale_waivers(task_dir: Path, stage: int, keep_key: str | None = None) -> list[str]:
    """Drop waivers on `…-stage-<stage>` except `keep_key`; return the keys cleared."""
    path = manifest_path(task_dir)
    if not path.exists():
        return []
    manifest = _load(path)
    cleared = []
    for entry in manifest.entries:
        match = _KEY.fullmatch(entry.stage_key)
        if entry.waiver and match and int(match.group(1)) == stage and entry.stage_key != keep_key:
            entry.waiver = None
            cleared.append(entry.stage_key)
    if cleared:
        save_doc(path, manifest)
    return cleared


def waivers(task_dir: Path) -> dict[str, Waiver]:
    path = manifest_path(task_dir)
    return {e.stage_key: e.waiver for e in _load(path).entries if e.waiver} if path.exists() else {}
