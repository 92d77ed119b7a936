"""The one exception type for failures a person can fix.

The CLI catches it once and prints `what` on one line and `how` on the next, then
exits 2. Everything else is a bug and exits 1.
"""

from __future__ import annotations


class OkstraError(Exception):
    """A user-facing failure: bad input, or a gate that said no."""

    def __init__(self, what: str, how: str = "") -> None:
        super().__init__(what)
        self.what = what
        self.how = how

    def __str__(self) -> str:
        return f"{self.what}\n{self.how}" if self.how else self.what


def describe_validation_error(exc: Exception, source: str) -> str:
    """One line naming the first failing field of a pydantic ValidationError."""
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return f"{source}: {exc}"
    first = errors()[0]
    field = ".".join(str(p) for p in first.get("loc", ())) or "(document)"
    more = len(errors()) - 1
    tail = f" (and {more} more)" if more else ""
    return f"{source}: field '{field}': {first.get('msg', 'invalid')}{tail}"


def print_error(exc: OkstraError, prog: str = "okstra") -> None:
    """The two-line form every okstra command uses on stderr."""
    import sys

    print(f"{prog}: {exc.what}", file=sys.stderr)
    if exc.how:
        print(f"  fix: {exc.how}", file=sys.stderr)
