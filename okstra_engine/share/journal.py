"""What this machine last saw of a project's remote, in the okstra home
(`share/<project id>.json`, replaced whole): when it last fetched and published, whether
the remote answered, and the offline reservations another machine took meanwhile."""

from __future__ import annotations

from pathlib import Path

from pydantic import ConfigDict

from ..documents import Doc, load_doc, save_doc
from ..errors import OkstraError
from ..locations import okstra_home
from ..projects import Project


class Clash(Doc):
    """A stage taken offline here that another machine took meanwhile: both hold it
    until a person releases one (`okstra record … --status released`)."""

    task: str
    stage: int
    run_id: str | None = None
    machine: str
    host: str | None = None
    their_run: str | None = None


class Journal(Doc):
    model_config = ConfigDict(extra="allow")

    v: int = 1
    remote: str | None = None
    tried: float | None = None
    """When a command last tried to reach the remote (epoch seconds; it throttles the automatic syncs)."""
    fetched: str | None = None
    published: str | None = None
    reachable: bool | None = None
    error: str | None = None
    clashes: list[Clash] = []
    marks: dict[str, str] = {}
    """Per task, what its last sync saw (`sync._fingerprint`): the same again, nothing to do."""
    stages_pushed: list[str] = []
    """The done commits this machine pushed (`refs/okstra/stages/…`), not pushed again."""
    branch_notes: dict[str, str] = {}
    """Per task, why its last sync left the task branch and the remote's head apart."""


def journal_path(project: Project) -> Path:
    return okstra_home() / "share" / f"{project.id}.json"


def read_journal(project: Project) -> Journal:
    try:
        return load_doc(journal_path(project), Journal)
    except (FileNotFoundError, OkstraError):
        return Journal()


def write_journal(project: Project, journal: Journal) -> None:
    save_doc(journal_path(project), journal)


def sync_lock_path(project: Project) -> Path:
    return okstra_home() / "locks" / "share" / f"{project.id}.lock"
