"""This machine's identity: a random id made once per okstra home (`machine-id` there)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from ..errors import OkstraError
from ..locations import okstra_home

MACHINE_FILE = "machine-id"

_known: dict[Path, str] = {}


def machine_id() -> str:
    """The okstra home's machine id (16 hex digits), made the first time it is asked."""
    home = okstra_home()
    found = _known.get(home)
    if found is None:
        found = _known[home] = _read_or_make(home / MACHINE_FILE)
    return found


def machine_id_if_any() -> str | None:
    """The machine id, or None when the okstra home cannot hold one (unwritable): a row
    is still written, without it."""
    try:
        return machine_id()
    except (OSError, OkstraError):
        return None


def existing_machine_id() -> str | None:
    """The machine id if this okstra home has one yet, never making it (for readers: a
    home without one wrote no row that names a machine)."""
    home = okstra_home()
    found = _known.get(home)
    if found is None:
        try:
            text = (home / MACHINE_FILE).read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            return None
        if not is_machine_id(text):
            return None
        found = _known[home] = text
    return found


def _read_or_make(path: Path) -> str:
    for _ in range(50):
        try:
            text = path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            text = ""
        except (OSError, UnicodeDecodeError):
            text = "?"
        if is_machine_id(text):
            return text
        if text:
            break
        path.parent.mkdir(parents=True, exist_ok=True)
        try:  # O_EXCL: two first commands at once agree on whichever wrote first
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:  # another command is writing it: read it in a moment
            time.sleep(0.01)
            continue
        import secrets  # only here: ~9 ms that every status and record would pay

        fresh = secrets.token_hex(8)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(fresh + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        return fresh
    raise OkstraError(f"{path} holds no machine id", f"remove it (okstra makes a new one): rm {path}")


def is_machine_id(text: object) -> bool:
    return isinstance(text, str) and len(text) == 16 and all(c in "0123456789abcdef" for c in text)
