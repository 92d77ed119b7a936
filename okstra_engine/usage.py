"""`okstra usage`: the tokens a task's agents used, per run and per stage, read from the
transcripts their hooks named (`agent-events.jsonl`: Claude Code's
`<config dir>/projects/<project>/<session>.jsonl`, and its subagents' beside it).

Claude Code writes one transcript line per content block of an assistant message, each
with the message's whole `usage`, and a resumed session copies earlier messages: a
message is counted once, by its id, in the run whose transcript showed it first.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .tasks import Task


@dataclass(frozen=True)
class Usage:
    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input + other.input,
            self.output + other.output,
            self.cache_read + other.cache_read,
            self.cache_write + other.cache_write,
        )

    def to_json(self) -> dict[str, int]:
        return {
            "input_tokens": self.input,
            "output_tokens": self.output,
            "cache_read_tokens": self.cache_read,
            "cache_write_tokens": self.cache_write,
        }


@dataclass
class RunUsage:
    run_id: str
    phase: str | None
    stage: int | None
    usage: Usage = field(default_factory=Usage)
    transcripts: list[str] = field(default_factory=list)
    """The transcripts read (a session's, then its subagents')."""
    missing: list[str] = field(default_factory=list)
    """Transcripts the hooks named that are not there (any more)."""

    @property
    def implements(self) -> int | None:
        """The stage this run implemented (a final verification of one stage has a stage
        too, but its tokens are not the stage's)."""
        return self.stage if self.phase == "implementation" else None

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "phase": self.phase,
            "stage": self.stage,
            **self.usage.to_json(),
            "transcripts": self.transcripts,
            "missing": self.missing,
        }


@dataclass
class TaskUsage:
    task: Task
    runs: list[RunUsage]
    warnings: list[str]

    @property
    def total(self) -> Usage:
        return sum((run.usage for run in self.runs), Usage())

    def stages(self) -> dict[int, Usage]:
        """Each stage's implementation runs, summed, by stage."""
        found: dict[int, Usage] = {}
        for run in self.runs:
            if run.implements is not None:
                found[run.implements] = found.get(run.implements, Usage()) + run.usage
        return dict(sorted(found.items()))

    def to_json(self) -> dict[str, Any]:
        return {
            "task": str(self.task.ref),
            "total": self.total.to_json(),
            "stages": [
                {"stage": n, **usage.to_json(), "runs": [r.run_id for r in self.runs if r.implements == n]}
                for n, usage in self.stages().items()
            ],
            "runs": [run.to_json() for run in self.runs],
            "warnings": self.warnings,
        }


def task_usage(task: Task) -> TaskUsage:
    """Every run of the task that its agent's hooks reported on, oldest first."""
    from .agent_state import read_events
    from .documents import load_doc
    from .errors import OkstraError
    from .runs import RunManifest, run_dirs

    runs: list[RunUsage] = []
    warnings: list[str] = []
    seen: dict[str, tuple[RunUsage, Usage]] = {}
    for run_dir in run_dirs(task.runs_dir):
        named = _transcripts(read_events(run_dir))
        if not named:
            continue
        try:
            manifest = load_doc(run_dir / "manifest.json", RunManifest)
            run = RunUsage(run_dir.name, manifest.task_type, manifest.stage)
        except (OkstraError, OSError) as exc:
            warnings.append(f"run {run_dir.name}: its manifest cannot be read ({exc}); counted under no phase")
            run = RunUsage(run_dir.name, None, None)
        runs.append(run)
        for path in named:
            if not path.is_file():
                run.missing.append(str(path))
                continue
            for transcript in [path, *sorted((path.parent / path.stem / "subagents").rglob("agent-*.jsonl"))]:
                run.transcripts.append(str(transcript))
                _read_transcript(transcript, run, seen, warnings)
    for run, usage in seen.values():
        run.usage += usage
    return TaskUsage(task, runs, warnings)


def _transcripts(rows: list[dict[str, str]]) -> list[Path]:
    """The session transcripts the rows name, in order, each once. Only a `.jsonl` file
    in a folder of a `projects` folder (where Claude Code keeps them) is taken: the rows
    are the project's file, and okstra reads no other file they point at."""
    found: list[Path] = []
    for row in rows:
        text = row.get("transcript_path")
        if not text:
            continue
        path = Path(text)
        plausible = path.is_absolute() and path.suffix == ".jsonl" and path.parent.parent.name == "projects"
        if plausible and path not in found:
            found.append(path)
    return found


_PARSED: dict[Path, tuple[tuple[int, int], list[tuple[str, Usage]]]] = {}
"""Each transcript's messages as last read, by its size and mtime: the board reads the
task's usage on every reload, and a transcript only grows while its agent works."""


def _read_transcript(path: Path, run: RunUsage, seen: dict[str, tuple[RunUsage, Usage]], warnings: list[str]) -> None:
    """Note each assistant message's usage under its id (the last line of a message
    holds its final count); a message seen in an earlier run stays that run's."""
    try:
        info = path.stat()
        stamp = (info.st_size, info.st_mtime_ns)
        known = _PARSED.get(path)
        if known is not None and known[0] == stamp:
            messages = known[1]
        else:
            messages = _messages(path, path.read_bytes())
            _PARSED[path] = (stamp, messages)
    except OSError as exc:
        warnings.append(f"{path}: cannot be read ({exc.strerror})")
        return
    for key, usage in messages:
        owner = seen[key][0] if key in seen else run
        seen[key] = (owner, usage)


def _messages(path: Path, data: bytes) -> list[tuple[str, Usage]]:
    """(message id, usage) of each assistant line with a usage, in file order."""
    found = []
    for number, line in enumerate(data.splitlines()):
        if b'"usage"' not in line:
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        message = entry.get("message") if isinstance(entry, dict) and entry.get("type") == "assistant" else None
        if not isinstance(message, dict) or not isinstance(usage := message.get("usage"), dict):
            continue
        key = message["id"] if isinstance(message.get("id"), str) else f"{path}:{number}"
        found.append((key, _usage(usage)))
    return found


def _usage(usage: dict[str, Any]) -> Usage:
    def count(name: str) -> int:
        value = usage.get(name)
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0

    return Usage(
        count("input_tokens"),
        count("output_tokens"),
        count("cache_read_input_tokens"),
        count("cache_creation_input_tokens"),
    )
