"""Following the files a screen shows, so it changes when they change elsewhere (a task
made with the CLI, a plan approved, a stage done): every `OkstraApp.poll_interval`
(0.25 s) the screen stats its watched files (mtime and size); when they moved, and no
read is running, it reads again in a worker. The fingerprint is taken before the read
whose files it describes, so a change racing that read is seen on the next tick, never
lost. The board, the project and task lists and the phase picker follow their files
this way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from textual.worker import Worker

Marks = dict[Path, tuple[int, int] | None]


def fingerprint(paths: list[Path]) -> Marks:
    """mtime and size of each path (None when missing): cheap enough for every tick."""
    marks: Marks = {}
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            marks[path] = None
            continue
        marks[path] = (st.st_mtime_ns, st.st_size)
    return marks


def moved(before: Marks, now: Marks) -> bool:
    """Whether a file watched in both moved. A path the last load added to the list (a
    run that went in flight) was read by that load; one it dropped no longer matters."""
    return any(path in before and before[path] != mark for path, mark in now.items())


@dataclass
class FileWatch:
    """The files one read depended on, and their fingerprint when it began."""

    paths: list[Path] = field(default_factory=list)
    mark: Marks | None = None

    def follow(self, paths: list[Path], mark: Marks | None = None) -> None:
        """Watch `paths` from now on, as they were at `mark` (default: now)."""
        self.paths = list(paths)
        self.mark = fingerprint(self.paths) if mark is None else mark

    def moved(self, paths: list[Path] | None = None) -> bool:
        """Whether the files (`paths`, else the followed ones) moved since the last look;
        the look becomes the new mark. True when nothing was marked yet."""
        if paths is not None:
            self.paths = list(paths)
        now = fingerprint(self.paths)
        changed = self.mark is None or moved(self.mark, now)
        self.mark = now
        return changed


class Following:
    """Mixed into a screen that reads in a worker and shows files: call `follow_files`
    on mount, `files.follow(paths, mark)` when a read arrives; `reread` starts a read
    (and returns its worker) when the files moved."""

    files: FileWatch
    _reader: Worker[Any] | None

    def follow_files(self) -> None:
        self.files = FileWatch()
        self._reader = None
        self.set_interval(self.app.poll_interval, self._follow_tick)  # type: ignore[attr-defined]

    def reading(self) -> bool:
        return self._reader is not None and not self._reader.is_finished

    def _follow_tick(self) -> None:
        if self.reading() or self.files.mark is None:
            return
        if self.files.moved():
            self._reader = self.reread()

    def reread(self) -> Worker[Any]:
        raise NotImplementedError
