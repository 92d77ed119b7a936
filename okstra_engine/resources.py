"""Where the packaged texts live: `prompts/` in a source checkout, `_prompts/` in a wheel."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

_HERE = Path(__file__).resolve().parent


@lru_cache(maxsize=1)
def prompts_dir() -> Path:
    # a wheel carries the folder inside the package (pyproject force-include); an
    # editable install or a checkout reads it from the repository root
    for candidate in (_HERE / "_prompts", _HERE.parent / "prompts"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("okstra's prompts folder is missing from this installation")


def wizard_texts_file(lang: str) -> Path:
    return prompts_dir() / "wizard" / f"prompts.{lang}.json"
