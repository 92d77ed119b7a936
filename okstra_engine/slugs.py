"""Task references: `GROUP/ID`, each part a slug that is safe as a path segment."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import OkstraError

SLUG_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
SLUG_RULE = "lower-case letters, digits, '.', '_' or '-', starting with a letter or digit, at most 64 characters"


def check_slug(value: str, what: str) -> str:
    if not SLUG_RE.fullmatch(value) or ".." in value:
        raise OkstraError(
            f"invalid {what} {value!r}: it must be {SLUG_RULE} (and no '..')",
            f"pick a {what} like 'auth' or 'login-flow'",
        )
    return value


def slugify(text: str) -> str:
    """A best-effort slug for defaults (a directory name as project id)."""
    slug = re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-._")
    slug = re.sub(r"\.{2,}", ".", slug)[:64].strip("-._")
    return slug or "project"


@dataclass(frozen=True)
class TaskRef:
    group: str
    id: str

    @classmethod
    def parse(cls, text: str) -> TaskRef:
        parts = text.split("/")
        if len(parts) != 2:
            raise OkstraError(
                f"invalid task {text!r}: write it GROUP/ID",
                "for example: okstra status auth/login-flow",
            )
        return cls(check_slug(parts[0], "task group"), check_slug(parts[1], "task id"))

    @property
    def key(self) -> str:
        return f"{self.group}-{self.id}"

    def __str__(self) -> str:
        return f"{self.group}/{self.id}"


def task_branch_name(category: str, group: str, task_id: str) -> str:
    """`okstra/CATEGORY/GROUP/ID`: a task's worktree branch."""
    return f"okstra/{category}/{group}/{task_id}"
