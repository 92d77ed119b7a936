"""Text a person or an agent wrote, made safe to put on a terminal line: control
characters (an escape sequence, a carriage return, a newline in a title) are shown as
their escapes instead of acting on the terminal."""

from __future__ import annotations

import unicodedata


def shown(text: str) -> str:
    """`text` with every control or line-breaking character written as its escape
    (`\\x1b`, `\\r`, `\\n`, `\\u2028`); everything else (wide, right-to-left, combining
    characters) as it is."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() or ch == " " else _escape(ch) for ch in text)


def _escape(ch: str) -> str:
    if unicodedata.category(ch) in ("Zs",):  # a space of another width: harmless
        return ch
    escaped = ch.encode("unicode_escape").decode("ascii")
    return escaped if escaped != ch else f"\\u{ord(ch):04x}"
