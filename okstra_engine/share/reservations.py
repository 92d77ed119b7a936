"""A stage taken on a shared task: a ref `…/reserved/s<N>` created on the remote by an
atomic push that fails when the ref exists (`--force-with-lease=REF:`, an empty
expected value), so of two machines taking one stage exactly one wins; deleted the same
way, expecting the value it holds. Its commit's message (and `reservation.json` in its
tree) says who holds it."""

from __future__ import annotations

import json
from dataclasses import dataclass

from pydantic import ValidationError

from .. import clock, git
from ..documents import Doc
from ..ledger import hostname
from ..slugs import TaskRef
from .machine import machine_id
from .objects import commit_files
from .place import Share


class Reservation(Doc):
    machine: str
    host: str | None = None
    pid: int | None = None
    run_id: str | None = None
    stage: int
    ts: str
    offline: bool = False


@dataclass(frozen=True)
class Held:
    """A reservation ref as this machine last fetched it (or pushed it)."""

    sha: str
    reservation: Reservation

    @property
    def mine(self) -> bool:
        return self.reservation.machine == machine_id()


def stage_of(ref: str) -> int | None:
    name = ref.rsplit("/", 1)[-1]
    return int(name[1:]) if name[:1] == "s" and name[1:].isdigit() and name[1:2] != "0" else None


def held(share: Share, task: TaskRef) -> dict[int, Held]:
    """Every stage of the task a reservation ref holds, as last fetched."""
    found: dict[int, Held] = {}
    for ref, sha, message in git.refs_with_messages(share.repo, share.local_ref(task, "reserved") + "/"):
        stage = stage_of(ref)
        if stage is None:
            continue
        try:
            reservation = Reservation.model_validate_json(message.strip())
        except ValidationError:
            reservation = Reservation(machine="?", stage=stage, ts="")
        if reservation.stage == stage:
            found[stage] = Held(sha, reservation)
    return found


@dataclass(frozen=True)
class Taken:
    """What an attempt to take a stage came to: `won`; else `held` (the ref exists:
    `holder` says whose, when asked to learn it), or neither: the remote did not answer
    (`error`)."""

    won: bool
    held: bool = False
    holder: Held | None = None
    error: str | None = None


def take(
    share: Share,
    task: TaskRef,
    stage: int,
    *,
    run_id: str,
    pid: int | None,
    offline: bool = False,
    learn: bool = True,
) -> Taken:
    """Create stage N's reservation ref on the remote. `learn`: when another holds it,
    fetch to say who (a `--stage auto` prepare does not need to know: it moves on)."""
    reservation = Reservation(
        machine=machine_id(), host=hostname(), pid=pid, run_id=run_id, stage=stage, ts=clock.iso(), offline=offline
    )
    text = json.dumps(reservation.model_dump(exclude_none=True), separators=(",", ":"))
    sha = commit_files(share.repo, {"reservation.json": text + "\n"}, text + "\n")
    remote_ref = share.remote_ref(task, "reserved", f"s{stage}")
    from .sync import PREPARE_TIMEOUT_S, push

    pushed = push(share, [(remote_ref, sha, None)], timeout=PREPARE_TIMEOUT_S)
    if pushed.ok:
        return Taken(True)
    if not pushed.answered:
        return Taken(False, error=pushed.error)
    if not learn:
        return Taken(False, held=True)
    from .sync import fetch

    fetch(share)
    return Taken(False, True, held(share, task).get(stage) or Held("", Reservation(machine="?", stage=stage, ts="")))


def drop(share: Share, task: TaskRef, stage: int, *, only_mine: bool = True, run_id: str | None = None) -> bool:
    """Delete stage N's reservation ref, expecting the value last fetched: only this
    machine's (`only_mine`; of run `run_id` when given), else whoever's. False when the
    remote did not take it (it moved, or did not answer: the next sync tries again)."""
    this = held(share, task).get(stage)
    if this is None:
        return True
    if only_mine and not this.mine:
        return True
    if run_id is not None and this.reservation.run_id not in (None, run_id):
        return True
    from .sync import push

    return push(share, [(share.remote_ref(task, "reserved", f"s{stage}"), None, this.sha)]).ok
