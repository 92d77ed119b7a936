"""Reading and writing the JSON documents okstra keeps on disk, each a pydantic model."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from .errors import OkstraError, describe_validation_error
from .fsio import atomic_write_text

M = TypeVar("M", bound=BaseModel)


class Doc(BaseModel):
    """The base of every document okstra reads from disk.

    Unknown fields are kept (a newer okstra, or a lead, may add some). Schemas are built
    on first use, not at import: `okstra status` touches a few of the ~20 models, and
    building each costs milliseconds on every agent call.
    """

    model_config = ConfigDict(extra="allow", defer_build=True)


def load_doc(path: Path, model: type[M], *, how: str = "", follow_symlinks: bool = True) -> M:
    """Validate `path` as `model`; a bad file is an OkstraError naming file and field.

    `follow_symlinks=False` is for documents an agent may have written that point okstra
    somewhere: a link there is refused, never read through."""
    try:
        data = path.read_bytes() if follow_symlinks else _read_no_follow(path)
    except FileNotFoundError:
        raise
    except OSError as exc:
        if exc.errno == errno.ELOOP and not follow_symlinks:
            raise OkstraError(
                f"{path} is a symbolic link; okstra does not follow it", how or f"replace it with a plain {path.name}"
            ) from exc
        raise OkstraError(f"{path}: cannot read ({exc.strerror})", how or "check its permissions") from exc
    try:
        return model.model_validate_json(data)
    except ValidationError as exc:
        raise OkstraError(describe_validation_error(exc, str(path)), how or f"fix or restore {path.name}") from exc


def _read_no_follow(path: Path) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as handle:
        return handle.read()


def save_doc(path: Path, doc: BaseModel) -> None:
    atomic_write_text(path, doc.model_dump_json(indent=2, by_alias=True, exclude_none=True) + "\n")
