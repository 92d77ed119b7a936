"""Where the engine's commands meet the share, each a call of a few lines from them:
prepare (sync first, then take the stage on the remote), the stage views (a stage
another machine holds is in flight there), record (publish, and give the stage back),
the handoff (the done commits other machines pushed first, the task branch after). Each does nothing for a project
that is not shared, at the cost of reading its `project.json` field."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..config import settings
from ..errors import OkstraError
from ..ledger import LedgerRow, parse_ts, utc_now
from ..stage_view import StageState, StageView
from ..tasks import Task

if TYPE_CHECKING:
    from ..status import TaskStatus
    from .sync import Update


def before_prepare(task: Task, *, render_only: bool) -> None:
    """A prepare on a shared task works on what the remote says now."""
    if render_only or not task.project.config.share_remote:
        return
    from .sync import PREPARE_TIMEOUT_S, sync

    # a stage starts from its dependency's done commit: fetched with the rest
    sync(task.project, task.ref, timeout=PREPARE_TIMEOUT_S)


def reserve(
    task: Task,
    status: TaskStatus,
    requested: int | None,
    stage: int,
    run_id_for: Callable[[int], str],
    *,
    pid: int | None,
    offline: bool,
) -> tuple[int, str, bool]:
    """Take `stage` on the remote (under the task mutex, after the gates chose it): the
    stage, its run id and whether it was taken offline. Another machine holding it:
    `--stage auto` takes the next ready one, a stage asked for is refused; the remote
    not answering refuses unless `offline`."""
    from .place import shared

    share = shared(task.project)
    if share is None:
        return stage, run_id_for(stage), False
    from ..refusals import Refusal
    from . import reservations

    while True:
        run_id = run_id_for(stage)
        taken = reservations.take(share, task.ref, stage, run_id=run_id, pid=pid, learn=requested is not None)
        if taken.won:
            return stage, run_id, False
        if not taken.held:
            if offline:
                return stage, run_id, True
            raise Refusal(
                "share.unreachable", {"task": str(task.ref), "remote": share.remote, "error": taken.error or ""}
            ).error()
        view = next(v for v in status.stages if v.stage == stage)
        view.state = StageState.IN_FLIGHT
        if taken.holder is not None:
            holder = taken.holder.reservation
            view.run_id = holder.run_id
            raise Refusal(
                "share.stage_taken",
                {
                    "task": str(task.ref),
                    "stage": stage,
                    "machine": holder.machine,
                    "host": holder.host or "?",
                    "run": holder.run_id or "?",
                },
            ).error()
        from ..gates import pick_stage

        stage = pick_stage(status, None)


def give_back(task: Task, stage: int, run_id: str | None) -> None:
    """A prepare refused after it took its stage on the remote gives it back (best
    effort: a sync deletes what no run here holds)."""
    if not task.project.config.share_remote:
        return
    from .place import shared
    from .reservations import drop

    share = shared(task.project)
    if share is not None:
        # the refusal that got here is what the person must read, not a failure of this
        with contextlib.suppress(Exception):
            drop(share, task.ref, stage, run_id=run_id)


def after_prepare(task: Task) -> None:
    """Publish the reserved row at once, so other machines see who took the stage (best
    effort: the run is made; what did not go goes with the next sync)."""
    if task.project.config.share_remote:
        with contextlib.suppress(OkstraError, OSError):
            publish(task)


def hold_foreign(task: Task, views: list[StageView]) -> None:
    """A stage a reservation ref holds is in flight (stale past the TTL), whatever rows
    of it this ledger has seen yet: status, prepare and the board all see it so. This
    machine's own ref counts too: while it stands (a run of another machine released
    after a clash, a killed prepare's ref a sync has not cleared yet) no one else may
    take the stage."""
    if not task.project.config.share_remote:
        return
    from .place import shared
    from .reservations import held

    try:
        share = shared(task.project)
    except OkstraError:  # a broken share setting is said by the commands that sync
        return
    if share is None:
        return
    ttl = settings().stale_ttl_hours * 3600
    holds = held(share, task.ref)
    for view in views:
        if view.state is not StageState.READY:
            continue
        this = holds.get(view.stage)
        if this is None:
            continue
        since = parse_ts(this.reservation.ts)
        view.state = StageState.STALE if (utc_now() - since).total_seconds() > ttl else StageState.IN_FLIGHT
        view.run_id, view.since = this.reservation.run_id, since
        if view.state is StageState.STALE:
            view.stale_reason = f"machine {this.reservation.machine} ({this.reservation.host}) has held it past the TTL"


def after_record(task: Task, row: LedgerRow) -> None:
    """Under the task mutex, after `record` appended `row`: publish it, and give a done
    or released stage's reservation back in the same atomic push (no machine may see
    the stage free before it sees why). Best effort: the row is written; what did not
    go goes with the next sync."""
    if not task.project.config.share_remote:
        return
    with contextlib.suppress(OkstraError, OSError):
        _publish_record(task, row)


def _publish_record(task: Task, row: LedgerRow) -> None:
    extra: list[Update] = []
    if row.status in ("done", "released"):
        from .place import shared
        from .reservations import held

        share = shared(task.project)
        this = held(share, task.ref).get(row.stage) if share is not None else None
        # done: this machine's own; released: whoever's, of the run released (a stale one)
        if (
            share is not None
            and this is not None
            and (this.mine or (row.status == "released" and this.reservation.run_id in (None, row.run_id)))
        ):
            extra.append((share.remote_ref(task.ref, "reserved", f"s{row.stage}"), None, this.sha))
    if publish(task, extra) and row.status == "done" and row.head_commit:
        from .place import shared
        from .sync import AUTO_TIMEOUT_S, push

        share = shared(task.project)
        if share is not None:  # the done commit, for a handoff on another machine
            push(
                share,
                [(share.remote_stage(task.ref, row.stage, row.head_commit), row.head_commit, None)],
                timeout=AUTO_TIMEOUT_S,
            )


def publish(task: Task, extra: list[Update] | None = None) -> bool:
    """Push this machine's rows not yet published (and `extra` updates), atomically;
    False when the remote did not take it (the next sync does)."""
    from ..plans import plan_run_root
    from .place import shared
    from .rows import own_update
    from .sync import AUTO_TIMEOUT_S, push, quiet

    share = shared(task.project)
    plan = plan_run_root(task)
    if share is None or plan is None or quiet(share):
        return share is None or plan is None
    updates = list(extra or [])
    if (update := own_update(share, task, plan)) is not None:
        updates.insert(0, update)
    return push(share, updates, timeout=AUTO_TIMEOUT_S).ok


def before_handoff(task: Task) -> None:
    """The handoff merges done commits other machines recorded: fetch them first."""
    if not task.project.config.share_remote:
        return
    from .sync import sync

    sync(task.project, task.ref)


def after_handoff(task: Task, *, merged: bool) -> list[str]:
    """After a handoff that merged something on a shared task (its task mutex released):
    publish the task branch, expecting the head this machine last fetched. Another
    machine's handoff got there first: a sync fetches it and says how to join the two.
    What the handoff should warn of (the handoff is done whatever the remote says)."""
    if not merged or not task.project.config.share_remote:
        return []
    from ..locks import task_mutex
    from .place import shared
    from .sync import AUTO_TIMEOUT_S, SyncReport, settle_branch, sync

    share = shared(task.project)
    if share is None:
        return []
    report = SyncReport(share.remote, True)
    key = str(task.ref)
    try:
        with task_mutex(task):
            pushed = settle_branch(share, task, report, AUTO_TIMEOUT_S)
        if pushed is not None and pushed.answered and not pushed.ok:
            report = sync(task.project, task.ref, timeout=AUTO_TIMEOUT_S) or report
    except (OkstraError, OSError) as exc:
        why = exc.what if isinstance(exc, OkstraError) else str(exc)
        return [f"task {key}: the task branch was not published ({why}); the next okstra share sync publishes it"]
    if not report.reachable:
        return [
            f"task {key}: the task branch was not published: {share.remote} did not answer ({report.error}); "
            "the next okstra share sync publishes it"
        ]
    note = report.branch_notes.get(key)
    return [note] if note else []
