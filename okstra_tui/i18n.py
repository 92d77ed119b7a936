"""The TUI's words: every text a person reads comes from `prompts/wizard/prompts.<lang>.json`.

Keys are flat and dotted (`board.title`); values are `str.format` templates with named
fields (`"stage {stage} done at {commit}"`). The files are found through
`okstra_engine.resources`, so a source checkout and an installed wheel both work.

Binding descriptions and tooltips hold text keys in the `BINDINGS` class lists (class
bodies run before the language is known); `localize_bindings` swaps in the texts where
Textual hands the bindings out (`Screen.active_bindings`: the footer, the key panel, help
and the command palette all read them there).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from functools import lru_cache
from typing import TYPE_CHECKING

from okstra_engine.resources import wizard_texts_file

if TYPE_CHECKING:
    from textual.binding import ActiveBinding, Binding

LANGS = ("en", "ko")


def default_lang() -> str:
    """`$OKSTRA_LANG`, else Korean when the locale says so, else English."""
    env = os.environ.get("OKSTRA_LANG", "").strip().lower()
    if env in LANGS:
        return env
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(name, "")
        if value:
            return "ko" if value.lower().startswith("ko") else "en"
    return "en"


@lru_cache(maxsize=len(LANGS))
def load_texts(lang: str) -> dict[str, str]:
    data = json.loads(wizard_texts_file(lang).read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{wizard_texts_file(lang)}: expected one JSON object of texts")  # not a UI text
    return {str(k): str(v) for k, v in data.items()}


class Texts:
    def __init__(self, lang: str) -> None:
        self.lang = lang if lang in LANGS else "en"
        self._data = load_texts(self.lang)

    def __contains__(self, key: str) -> bool:
        return key in self._data

    def __call__(self, key: str, /, **params: object) -> str:
        text = self._data.get(key)
        if text is None:
            # a missing text shows its key rather than failing; a test keeps the files whole
            return key
        return text.format(**params) if params else text


_current: Texts | None = None


def set_language(lang: str | None) -> Texts:
    global _current
    _current = Texts(lang or default_lang())
    return _current


def texts() -> Texts:
    return _current or set_language(None)


def t(key: str, /, **params: object) -> str:
    """The text of `key` in the current language, with `params` filled in."""
    return texts()(key, **params)


def plural(key: str, count: int) -> str:
    """The key of the text for `count` of a thing: `KEY.one` for one, `KEY.many` else."""
    return f"{key}.one" if count == 1 else f"{key}.many"


HELP_BINDING = "app.help"
"""The id of the app's `?` binding."""


def localize_bindings(active: Mapping[str, ActiveBinding]) -> dict[str, ActiveBinding]:
    """`Screen.active_bindings` with the text keys in descriptions and tooltips replaced
    by their texts in the current language; descriptions that are not text keys (Textual's
    own) are left alone. `?` comes first: the footer cuts what does not fit on the right,
    and on a narrow terminal `?` is how the rest is found."""
    lang = texts().lang
    first = [key for key, entry in active.items() if entry.binding.id == HELP_BINDING]
    return {
        key: entry._replace(binding=_localized(lang, entry.binding), tooltip=_text_of(lang, entry.tooltip))
        for key, entry in sorted(active.items(), key=lambda item: item[0] not in first)
    }


@lru_cache(maxsize=512)
def _localized(lang: str, binding: Binding) -> Binding:
    return dataclasses.replace(
        binding, description=_text_of(lang, binding.description), tooltip=_text_of(lang, binding.tooltip)
    )


def _text_of(lang: str, key: str) -> str:
    """The text of `key`, or `key` itself when it is not a text key."""
    text = load_texts(lang).get(key)
    return key if text is None else text
