"""A sync of a shared project: fetch okstra's refs of its place, write the tasks other
clones shared into this one, import the other machines' ledger rows, then publish this
machine's (tasks, rows, reservations taken offline, done commits) in atomic pushes.

Commands on a shared task sync on their own (`auto_sync`), at most every
`AUTO_EVERY_S` seconds and given `AUTO_TIMEOUT_S`; `okstra share sync` always does. A
remote that does not answer changes nothing here: the rows not yet published simply
wait for the next contact (`journal`), and the commands say the task is not synced."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import clock, faults, git
from ..errors import OkstraError
from ..ledger import LedgerRow, read_ledger
from ..ledger_state import read_state
from ..locks import file_lock, task_mutex
from ..plans import plan_run_root
from ..projects import Project
from ..run_folder import LEDGER_NAME
from ..slugs import TaskRef, check_slug
from ..tasks import Task, list_tasks, load_task, task_branch
from .journal import Clash, Journal, read_journal, sync_lock_path, write_journal
from .machine import machine_id
from .place import REMOTE_ROOT, Share, shared

AUTO_EVERY_S = 5.0
AUTO_RETRY_S = 60.0
"""After the remote did not answer, a command's own sync tries again only this much later
(a remote that hangs would otherwise cost each command its timeout)."""
AUTO_TIMEOUT_S = 5.0
"""A command's own sync and publish: how long the remote is given."""
PREPARE_TIMEOUT_S = 10.0
"""A prepare's sync and the push that takes its stage."""
TIMEOUT_S = 30.0
"""`okstra share sync`, asked for."""

Update = tuple[str, str | None, str | None]


@dataclass(frozen=True)
class Pushed:
    ok: bool
    answered: bool
    """The remote answered (a refusal of the expected values), as opposed to not being reached."""
    error: str | None = None


def push(share: Share, updates: list[Update], *, timeout: float = TIMEOUT_S) -> Pushed:
    """One atomic push; on success the fetched refs follow it, so the next lease expects it."""
    if not updates:
        return Pushed(True, True)
    faults.point("share.before-push")
    proc = git.push_refs(share.repo, share.remote, updates, timeout=timeout)
    if proc is None:
        return _unanswered(share, f"{share.remote} did not answer in {timeout:g} s")
    if proc.returncode != 0:
        if not any(line.startswith("!") for line in proc.stdout.splitlines()):
            return _unanswered(share, git.failure_message(proc))
        return Pushed(False, True, git.failure_message(proc))
    faults.point("share.pushed")
    journal = read_journal(share.project)
    if journal.reachable is False:  # it answers again
        journal.reachable, journal.error = True, None
        write_journal(share.project, journal)
    for ref, new, _ in updates:
        if ref.startswith(REMOTE_ROOT + "/"):
            local = share.local_of(ref)
            if new is None:
                git.delete_ref(share.repo, local)
            else:
                git.update_ref(share.repo, local, new)
    return Pushed(True, True)


def _unanswered(share: Share, error: str) -> Pushed:
    """A push the remote did not answer: noted, so the commands that publish on their own
    leave the remote alone for a while (`quiet`) instead of each waiting on it."""
    journal = read_journal(share.project)
    journal.tried, journal.reachable, journal.error = time.time(), False, error
    write_journal(share.project, journal)
    return Pushed(False, False, error)


def quiet(share: Share) -> bool:
    """Whether the remote did not answer a moment ago (within `AUTO_EVERY_S`)."""
    journal = read_journal(share.project)
    return journal.reachable is False and journal.tried is not None and time.time() - journal.tried < AUTO_EVERY_S


def fetch(share: Share, *, timeout: float = TIMEOUT_S) -> str | None:
    """Fetch okstra's refs of the project's place and its stages' done commits (one
    fetch); None, or why the remote did not answer."""
    proc = git.fetch_refs(share.repo, share.remote, [share.refspec, share.stages_refspec], timeout=timeout)
    if proc is None:
        return f"{share.remote} did not answer in {timeout:g} s"
    if proc.returncode != 0:
        return git.failure_message(proc)
    return None


@dataclass
class SyncReport:
    remote: str
    reachable: bool
    error: str | None = None
    imported: int = 0
    published: int = 0
    said: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    clashes: list[Clash] = field(default_factory=list)
    branch_notes: dict[str, str] = field(default_factory=dict)
    """Per task, why its task branch and the remote's head were left apart (`branch`)."""


def sync(
    project: Project,
    only: TaskRef | None = None,
    *,
    timeout: float = TIMEOUT_S,
    wait: bool = True,
) -> SyncReport | None:
    """Fetch and publish now (None: the project is not shared; a busy sync of another
    process is waited for, or with `wait=False` left to finish alone: None too)."""
    share = shared(project)
    if share is None:
        return None
    try:
        with file_lock(sync_lock_path(project), timeout=None if wait else 0.0):
            return _sync_locked(share, only, timeout)
    except OkstraError as exc:
        if wait or "another okstra process" not in exc.what:
            raise
        return None


def _sync_locked(share: Share, only: TaskRef | None, timeout: float) -> SyncReport:
    project = share.project
    journal = read_journal(project)
    journal.remote, journal.tried = share.remote, time.time()
    report = SyncReport(share.remote, True)
    error = fetch(share, timeout=timeout)
    if error is not None:
        report.reachable, report.error = False, error
        journal.reachable, journal.error = False, error
        write_journal(project, journal)
        return report
    journal.fetched = clock.iso()
    from .tasks import materialize

    snapshot = _refs_by_task(share)
    there = {
        ref: refs[ref_name] for ref, refs in snapshot.items() if (ref_name := share.local_ref(ref, "task")) in refs
    }
    local = list_tasks(project)
    wanted = [only] if only is not None else sorted(set(local) | set(there), key=str)
    synced: set[str] = set()
    for ref in wanted:
        key = str(ref)
        if journal.marks.get(key) == _fingerprint(share, ref, snapshot.get(ref, {})):
            continue  # nothing moved here or there since this task's last sync
        synced.add(key)
        if ref in there:
            try:
                said = materialize(share, ref, there[ref])
            except OkstraError as exc:
                report.warnings.append(f"task {ref} from {share.remote} left out: {exc.what}")
                continue
            if said:
                report.said.append(said)
        try:
            task = load_task(project, ref)
        except OkstraError:
            continue
        try:
            if _sync_task(share, task, there.get(ref), report, journal, timeout):
                journal.marks[key] = _fingerprint(share, ref, _refs_by_task(share, ref).get(ref, {}))
        except OkstraError as exc:
            report.warnings.append(f"task {ref}: {exc.what}")
    journal.clashes = [c for c in journal.clashes if c.task not in synced] + report.clashes
    journal.branch_notes = {
        key: note for key, note in journal.branch_notes.items() if key not in synced
    } | report.branch_notes
    journal.reachable = report.reachable
    journal.error = report.error
    if report.reachable:
        journal.published = clock.iso()
    write_journal(project, journal)
    return report


def _refs_by_task(share: Share, only: TaskRef | None = None) -> dict[TaskRef, dict[str, str]]:
    """okstra's fetched refs of the place (or of one task), by task: ref → commit; one git process."""
    prefix = share.local_ref(only) + "/" if only is not None else share.local_prefix
    found: dict[TaskRef, dict[str, str]] = {}
    for ref, sha, _ in git.refs_with_messages(share.repo, prefix):
        parts = ref[len(share.local_prefix) :].split("/")
        if len(parts) >= 3:
            try:
                task = TaskRef(check_slug(parts[0], "group"), check_slug(parts[1], "id"))
            except OkstraError:
                continue
            found.setdefault(task, {})[ref] = sha
    return found


def _fingerprint(share: Share, ref: TaskRef, refs: dict[str, str]) -> str:
    """What a task's sync depends on: its fetched refs, and the size and time of its
    files here (task, plan pointer, ledger). Equal to the last sync's: nothing to do."""
    from ..plans import pointer_path
    from ..tasks import task_dir

    folder = task_dir(share.project, ref)
    parts = [f"{name} {sha}" for name, sha in sorted(refs.items())]
    files = [folder / "task.json"]
    try:
        task = load_task(share.project, ref)
        parts.append(f"branch {git.resolve_commit(share.repo, f'refs/heads/{task_branch(task)}')}")
        files.append(pointer_path(task))
        plan = plan_run_root(task)
        if plan is not None:
            files.append(plan.dir / LEDGER_NAME)
    except OkstraError:
        pass
    for path in files:
        try:
            info = path.stat()
            parts.append(f"{path.name} {info.st_size} {info.st_mtime_ns} {info.st_ino}")
        except OSError:
            parts.append(f"{path.name} -")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _sync_task(
    share: Share, task: Task, there: str | None, report: SyncReport, journal: Journal, timeout: float
) -> bool:
    """Import, publish and settle the task's reservations; False when the remote did not
    take the push (the next sync does it again)."""
    from . import rows
    from .tasks import task_update

    clashes = len(report.clashes)
    with task_mutex(task):
        plan = plan_run_root(task)
        updates: list[Update] = []
        if (update := task_update(share, task, there)) is not None:
            updates.append(update)
        if plan is not None:
            added, warnings = rows.import_rows(share, task, plan)
            report.imported += added
            report.warnings += warnings
            if (update := rows.own_update(share, task, plan)) is not None:
                updates.append(update)
                report.published += 1
            updates += _reservation_fixes(share, task, report)
        pushed = push(share, updates, timeout=timeout)
        if not pushed.ok:
            report.reachable = pushed.answered
            report.error = pushed.error
            if pushed.answered:
                report.warnings.append(
                    f"task {task.ref}: {share.remote} refused the update ({pushed.error}); the next sync tries again"
                )
            return False
        all_pushed = plan is None or _push_done_commits(share, task, journal, timeout)
        head = settle_branch(share, task, report, timeout)
        settled = str(task.ref) not in report.branch_notes and (head is None or head.ok)
        return all_pushed and settled and len(report.clashes) == clashes


def settle_branch(share: Share, task: Task, report: SyncReport, timeout: float) -> Pushed | None:
    """Under the task mutex: fast-forward the task branch to the head last fetched, or
    publish it when it is ahead (`branch`); the push's outcome (None: nothing to push).
    What keeps the two apart goes in the report's `branch_notes`."""
    from .branch import settle

    key = str(task.ref)
    settled = settle(share, task)
    if settled.said:
        report.said.append(settled.said)
    note = settled.warning
    pushed = None
    if settled.update is not None:
        pushed = push(share, [settled.update], timeout=timeout)
        if pushed.ok:
            report.said.append(f"task {key}: task branch published at {settled.update[1][:12]}")
        elif not pushed.answered:
            report.reachable, report.error = False, pushed.error
        else:
            note = (
                f"task {key}: {share.remote}'s head of the task branch moved since this machine fetched it "
                f"(another machine handed off): nothing was published; the next okstra share sync settles it"
            )
    if note:
        report.warnings.append(note)
        report.branch_notes[key] = note
    return pushed


def _reservation_fixes(share: Share, task: Task, report: SyncReport) -> list[Update]:
    """Under the task mutex: this machine's reservation refs whose run ended here (done,
    released) or never wrote a row (a prepare killed between its push and its row) go;
    a run of this machine still open without its ref (taken offline) gets it, or, when
    another machine took the stage meanwhile, is named as a clash for a person to settle."""
    from .reservations import held, take

    plan = plan_run_root(task)
    assert plan is not None
    me = machine_id()
    refs = held(share, task.ref)
    runs = _runs(plan.dir / LEDGER_NAME)
    deletions: list[Update] = [
        (share.remote_ref(task.ref, "reserved", f"s{stage}"), None, this.sha)
        for stage, this in refs.items()
        if this.mine and runs.get((stage, this.reservation.run_id), (None, True))[1]
    ]
    for (stage, run_id), (row, ended) in sorted(runs.items(), key=lambda item: (item[0][0], str(item[0][1]))):
        if ended or row is None or row.machine != me:
            continue
        this = refs.get(stage)
        if this is not None and this.mine:
            continue  # its own ref, or a leftover the deletions above take away
        if this is None:
            taken = take(share, task.ref, stage, run_id=run_id or "", pid=row.pid, offline=True)
            if taken.won or taken.holder is None:
                continue
            this = taken.holder
        theirs = this.reservation
        report.clashes.append(
            Clash(
                task=str(task.ref),
                stage=stage,
                run_id=run_id,
                machine=theirs.machine,
                host=theirs.host,
                their_run=theirs.run_id,
            )
        )
    return deletions


def _runs(ledger: Path) -> dict[tuple[int, str | None], tuple[LedgerRow | None, bool]]:
    """Per (stage, run) the ledger names: the row that reserved it (None when none did)
    and whether its last row ended it (done or released). A reservation ref of a run
    with no row at all was left by a prepare killed before its row (the caller holds the
    task mutex, so no prepare is between the two now)."""
    found: dict[tuple[int, str | None], tuple[LedgerRow | None, bool]] = {}
    for row in read_ledger(ledger).rows:
        if row.run_id is None:
            continue
        key = (row.stage, row.run_id)
        reserved = row if row.status == "reserved" else found.get(key, (None, False))[0]
        found[key] = (reserved, row.status in ("done", "released"))
    return found


def _push_done_commits(share: Share, task: Task, journal: Journal, timeout: float) -> bool:
    """This machine's done commits the remote lacks, each as `…/s<N>/<commit>` (so a
    handoff elsewhere can merge them); the journal remembers those pushed."""
    plan = plan_run_root(task)
    assert plan is not None
    me = machine_id()
    pushed_before = set(journal.stages_pushed)
    everything = True
    for stage, row in sorted(read_state(plan.dir / LEDGER_NAME).done_rows().items()):
        commit = row.head_commit
        if not commit or not git.is_full_sha(commit) or row.machine != me:
            continue
        ref = share.remote_stage(task.ref, stage, commit)
        if ref in pushed_before or git.resolve_commit(share.repo, commit) is None:
            continue
        pushed = push(share, [(ref, commit, None)], timeout=timeout)
        if pushed.ok or pushed.answered:  # answered: it is there already
            journal.stages_pushed.append(ref)
        else:
            everything = False
    return everything


def auto_sync(task: Task) -> SyncReport | None:
    """A command's own sync of a shared task: at most every `AUTO_EVERY_S` seconds (every
    `AUTO_RETRY_S` while the remote does not answer), a short timeout, never waiting for
    another process's sync, never failing the command."""
    project = task.project
    if not project.config.share_remote:
        return None
    journal = read_journal(project)
    every = AUTO_RETRY_S if journal.reachable is False else AUTO_EVERY_S
    if journal.tried is not None and time.time() - journal.tried < every:
        return None
    try:
        return sync(project, task.ref, timeout=AUTO_TIMEOUT_S, wait=False)
    except (OkstraError, OSError):  # the command says what it can without the remote
        return None


def not_synced(project: Project, journal: Journal | None = None) -> str | None:
    """What a command says of a shared project whose remote did not answer last time
    (`journal`: the project's, when the caller has just read it)."""
    if not project.config.share_remote:
        return None
    journal = journal or read_journal(project)
    if journal.reachable is not False:
        return None
    since = f" (last synced {journal.fetched})" if journal.fetched else " (never synced)"
    return f"not synced: {project.config.share_remote} did not answer{since}: {journal.error}"
