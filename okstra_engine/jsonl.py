"""The one reader of okstra's append-only JSON Lines files (the ledger, `handoffs.jsonl`).

Tolerant: a torn or malformed line is skipped and named by its line number, and every
other line still counts. A healthy file is validated in one call over all its lines as a
JSON array (a ledger of 10,000 rows in a few ms); only a damaged one pays for the
line-by-line pass that names the bad lines.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

from .errors import describe_validation_error

Row = TypeVar("Row", bound=BaseModel)


@cache
def _list_adapter(model: type[BaseModel]) -> TypeAdapter[list[BaseModel]]:
    return TypeAdapter(list[model])  # type: ignore[valid-type]


def parse_jsonl(data: bytes, model: type[Row], source: str, *, first_line: int = 1) -> tuple[list[Row], list[str]]:
    """The rows of `data` (one `model` per non-blank line) and a warning per skipped line.
    `first_line` numbers the first line of `data` (a tail read after earlier lines)."""
    lines = data.split(b"\n")
    numbered = [(no, line) for no, line in enumerate(lines, first_line) if line.strip()]
    try:
        rows = _list_adapter(model).validate_json(b"[" + b",".join(line for _, line in numbered) + b"]")
    except (ValidationError, ValueError):
        rows = None
    # a line holding `{..},{..}` would pass as two rows: only a count match is trusted
    if rows is not None and len(rows) == len(numbered):
        return rows, []  # type: ignore[return-value]
    found: list[Row] = []
    warnings: list[str] = []
    last = first_line - 1 + (len(lines) if lines[-1].strip() else len(lines) - 1)
    validate: Callable[[bytes], Row] = model.model_validate_json
    for no, line in numbered:
        try:
            found.append(validate(line))
        except ValidationError as exc:
            if any(err.get("type") == "json_invalid" for err in exc.errors()):
                torn = no == last and not data.endswith(b"\n")
                why = "torn write (no newline at the end)" if torn else "not valid JSON"
                warnings.append(f"{source} line {no}: {why}; skipped")
            else:
                warnings.append(describe_validation_error(exc, f"{source} line {no}") + "; skipped")
    return found, warnings
