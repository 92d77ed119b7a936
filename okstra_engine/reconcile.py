"""Git reconcile: find where a stage's recorded done commit went after people rebased,
squashed, cherry-picked or amended it, and record corrections.

The question `content_merged(X, T)` answers is "is the work of the stage that finished at
X already in the target T?", in this order, cheapest first:

- `ancestor`: `git merge-base --is-ancestor X T`.
- `patch-equivalent`: every non-merge commit of the stage (base..X) has a commit of T
  since the base with the same stable patch-id (a commit both histories share, as after
  an amend of the tip, matches itself); the match for X is suggested.
- `squash-equivalent`: the whole change base → X has the patch-id of one commit of T.
- `content-present`: no patch-id matches, but T holds X's change line for line (see
  `_holds`); the first commit of T that does is suggested.
- `missing`: X is not in the repository and no stored patch-id matches.
- `not-merged`; `unknown` when history cannot tell: a shallow clone (where a negative
  answer may be wrong; a positive one stands), or no merge-base and no stored fingerprint.

A stage whose work is not in T (`not-merged`) while its own branch no longer contains X
(the branch was amended, rebased or reset after the stage was recorded done) is
`rewritten` (`rewritten_tip`): its suggestion is the branch tip, for a person to accept
(`okstra record … --commit TIP`) or undo (reset the branch); never applied on its own,
and the handoff refuses the stage until one of the two is done.

Speed: T's history since a stage's base is walked once for the whole task, through the
target index (`target_index`): one walk lists the commits of `T ^BASE` and which of them
touch the stages' paths (paths first: no diff is made for the rest), so whether X is in T
is read from the walk (X is in T exactly when it is in `T ^BASE`, BASE being a proper
ancestor of X recorded for it; no `merge-base --is-ancestor`), a later stage's base inside
the range is answered from the same walk, and only the commits touching a stage's paths
get a patch-id (`log -p --no-walk | patch-id --stable`). The index keeps walks and ids
under the okstra home, so a second reconcile on the same T asks git only to resolve it,
and a T that moved forward costs a walk of its new commits. The stage's own ids come from
its done row (stored when it was recorded).

Rules beyond the kinds:
- The stage's base is the base_ref of its latest ledger row that has one, if that commit
  is an ancestor of X; else the merge-base of X and T. When neither gives a range (X is
  already in T and no base was recorded), the done row gets no fingerprint, only its pin.
- Stored paths are every path any commit of the stage touched (not only the net diff),
  so each rebased commit is found; commits are hashed over their whole diff.
- Several commits of T with the suggested patch-id: the newest is suggested and the
  match is marked `ambiguous`; auto-reconcile leaves ambiguous matches to a person.
- `content-present` is only claimed when T itself still holds the change; its suggested
  commit is the first candidate (oldest to newest commits of T touching the paths, by a
  binary search that assumes the change stays once it arrives) that holds it. A change
  merged and later reverted is therefore found by patch-id (`patch-equivalent`,
  `squash-equivalent`, or `ancestor` for a real merge), never by content.
- A correction row (`apply`) keeps the stage's content fingerprint (patch-ids, paths)
  but not its base_ref, which belonged to the replaced commit. A manual correction keeps
  none: the person's commit is taken as it is, and later checks compute it live.
- Pins: `refs/okstra/<task_key>/s<N>/<full sha>`, one per recorded commit, never moved,
  so a correction never unpins the commit it replaces.
"""

from __future__ import annotations

import contextlib
import re
import shlex
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, get_args

from . import git, target_index
from .errors import OkstraError
from .ledger import LedgerRow, append_row, new_row
from .ledger_state import LedgerState, read_state
from .locks import Notice, task_mutex
from .refusals import Refusal, refuse
from .run_folder import LEDGER_NAME
from .tasks import Task, stage_branch, task_branch, task_worktree_path

Kind = Literal[
    "ancestor",
    "patch-equivalent",
    "squash-equivalent",
    "content-present",
    "missing",
    "not-merged",
    "unknown",
    "rewritten",
]
KINDS: tuple[str, ...] = get_args(Kind)
MERGED_KINDS = frozenset({"ancestor", "patch-equivalent", "squash-equivalent", "content-present"})
REASONS = {"patch-equivalent": "auto-patch-id", "squash-equivalent": "auto-squash", "content-present": "auto-content"}
PIN_PREFIX = "refs/okstra"
_FINGERPRINT_KEYS = ("patch_ids", "change_patch_id", "paths")
Fingerprint = dict[str, Any]
"""A done commit's content fingerprint: patch_ids, change_patch_id, paths (and base_ref)."""


@dataclass(frozen=True)
class Match:
    kind: Kind
    commit: str | None = None
    """The matching commit: X for `ancestor`, the suggested one for the equivalents."""
    ambiguous: bool = False
    """Several commits of T carry the suggested patch-id; the newest was taken."""
    fingerprint: Fingerprint | None = None
    """The stage's content fingerprint used for the answer (patch_ids, change_patch_id, paths)."""

    @property
    def merged(self) -> bool:
        return self.kind in MERGED_KINDS


@dataclass(frozen=True)
class Suggestion:
    stage: int
    recorded: str
    suggested: str | None
    kind: Kind
    ambiguous: bool = False
    reason: str | None = None
    """Set on applied corrections: auto-patch-id, auto-squash, auto-content, manual."""
    fingerprint: Fingerprint | None = field(default=None, compare=False, repr=False)

    @property
    def applicable(self) -> bool:
        return self.kind in REASONS and bool(self.suggested)

    @property
    def awaits_handoff(self) -> bool:
        """Its work is only not merged yet: the normal state of a done stage before its
        group's handoff, nothing for a person to correct."""
        return self.kind == "not-merged"

    @property
    def not_in_target(self) -> bool:
        """Its work is not in the target at all (not merged, or lost): a person must merge
        it or find it, and `fix_guidance` says how."""
        return self.kind in ("not-merged", "missing")

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "stage": self.stage,
            "recorded": self.recorded,
            "suggested": self.suggested,
            "kind": self.kind,
            "ambiguous": self.ambiguous,
        }
        if self.reason:
            doc["reason"] = self.reason
        return doc

    def line(self) -> str:
        """`stage N: AAAAAAAA -> BBBBBBBB (KIND)`."""
        return f"stage {self.stage}: {_short(self.recorded)} -> {_short(self.suggested)} ({self.kind})"

    def applied_line(self) -> str:
        """What auto-reconcile prints for an applied correction."""
        return f"git-reconcile: stage {self.stage} done commit {_short(self.recorded)} -> {_short(self.suggested)} ({self.kind})"


def _short(sha: str | None) -> str:
    return sha[:8] if sha else "-"


# ---- the target and the stage's base ----


def target_commit(task: Task) -> str:
    """The reconcile target T: the task worktree's HEAD, i.e. the tip of the task branch
    (worktrees share refs); the project's HEAD while that branch does not exist yet."""
    root = task.project.root
    sha = git.resolve_commit(root, f"refs/heads/{task_branch(task)}") or git.head(root)
    if sha is None:
        raise OkstraError(f"the repository at {root} has no commit yet", "commit something first")
    return sha


BaseSource = Literal["recorded", "merge_base"]


def stage_base(
    repo: Path, recorded: str | None, x: str, target: str | Callable[[], str] | None
) -> tuple[str, BaseSource] | None:
    """The base of a stage finished at `x`, and where it came from: `recorded`, the stage's
    recorded base ref (`LedgerState.base_ref`), when that is a proper ancestor of x; else
    the merge-base of x and the target (a callable target is only asked when needed).
    None when that gives no range (x is already in the target)."""
    if recorded:
        # a full SHA needs no rev-parse: the ancestry check fails for a missing commit
        full = recorded if git.is_full_sha(recorded) else git.resolve_commit(repo, recorded)
        if full and full != x and git.ancestry(repo, full, x):
            return full, "recorded"
    if target is None:
        return None
    mb = _merge_base_or_none(repo, x, target() if callable(target) else target)
    return (mb, "merge_base") if mb else None


# ---- the fingerprint of a done commit, and its pin ----


def done_fingerprint(repo: Path, base: str, head: str) -> Fingerprint:
    """What a done row stores beside its head_commit so the stage can be matched by
    content even after the commit is gone: the base ref, every path the stage's commits
    touch, the stable patch-id of each of its non-merge commits (oldest first; commits
    with an empty diff have none), and the patch-id of its whole change (None if empty)."""
    found: Fingerprint = {}

    def patch_ids() -> None:
        found["patch_ids"] = [pid for _, pid in git.commit_patch_ids(repo, [head], [base], reverse=True)]

    def paths() -> None:
        found["paths"] = git.touched_paths(repo, base, head)

    def change() -> None:
        found["change_patch_id"] = git.diff_patch_id(repo, base, head)

    git.concurrently(patch_ids, paths, change)
    return {"base_ref": base, **{k: found[k] for k in ("paths", "patch_ids", "change_patch_id")}}


def pin_ref(task: Task, stage: int, sha: str) -> str:
    """`refs/okstra/<task_key>/s<N>/<full sha>`."""
    if not git.is_full_sha(sha):
        raise ValueError(f"a pin needs a full SHA, not {sha!r}")
    key = task.key + "_" if task.key.endswith(".lock") else task.key  # a ref part may not end in .lock
    return f"{PIN_PREFIX}/{key}/s{stage}/{sha}"


def pin(task: Task, stage: int, sha: str) -> str:
    """Keep `sha` reachable (so `git gc` does not take it) with a ref of its own."""
    ref = pin_ref(task, stage, sha)
    git.update_ref(task.project.root, ref, sha)
    return ref


def done_fields(
    task: Task,
    stage: int,
    sha: str,
    ledger: LedgerState | None = None,
    *,
    target: str | None = None,
    empty: bool = False,
) -> dict[str, Any]:
    """The extra fields of a `done` row at the full SHA `sha` (record, carry backfill, the
    simulated lead): pins the commit and returns its fingerprint (empty when the stage's
    range cannot be told, or the stage changes nothing: `empty`, `sha` is its base).
    `ledger`: the task's ledger so far, whose recorded base ref for the stage is
    preferred. Best effort: a git failure here never blocks the record."""
    repo = task.project.root

    def pin_it() -> None:
        _pin_quietly(task, stage, sha)

    if empty:
        pin_it()
        return {}

    def fingerprint() -> Fingerprint:
        try:
            recorded = ledger.base_ref(stage) if ledger else None
            base = stage_base(repo, recorded, sha, target or (lambda: target_commit(task)))
            return done_fingerprint(repo, base[0], sha) if base else {}
        except git.GitError:
            return {}

    return git.concurrently(fingerprint, pin_it)[0] or {}


def backfill_done(task: Task, *, on_wait: Notice | None = None) -> list[LedgerRow]:
    """Carry backfill with fingerprints, under the task mutex: append the done rows only
    sidecars know about, each with its commit resolved to a full SHA, pinned and
    fingerprinted."""
    with task_mutex(task, on_wait=on_wait):
        return _backfill_done_locked(task)


def _backfill_done_locked(task: Task) -> list[LedgerRow]:
    from .carry import backfill_done_from_carry
    from .plans import require_plan_run_root

    plan = require_plan_run_root(task)
    if not task.project.is_git:
        return backfill_done_from_carry(plan.dir)
    repo = task.project.root
    known: list[tuple[LedgerState, str]] = []  # read once, when a row needs them

    def complete(row: LedgerRow) -> LedgerRow:
        sha = git.resolve_commit(repo, row.head_commit) if row.head_commit else None
        if sha is None:
            return row
        if not known:
            known.append((read_state(plan.dir / LEDGER_NAME), target_commit(task)))
        ledger, target = known[0]
        extra = done_fields(task, row.stage, sha, ledger, target=target)
        return row.model_copy(update={"head_commit": sha, **extra})

    return backfill_done_from_carry(plan.dir, complete=complete)


# ---- content_merged ----


def content_merged(
    repo: Path | str,
    x: str,
    target: str,
    *,
    base: str | None = None,
    stored: LedgerRow | Mapping[str, Any] | None = None,
) -> Match:
    """Is the work of the stage that finished at `x` in `target`? See the module docstring.

    `base`: the stage's base ref, if known (ignored unless it is an ancestor of x).
    `stored`: the done row (or a dict) whose patch_ids/change_patch_id/paths describe the
    stage's change; needed to match a commit that is gone, and saves recomputing them.
    """
    repo = Path(repo)
    t = git.resolve_commit(repo, target)
    if t is None:
        raise OkstraError(f"reconcile target {target!r} names no commit in {repo}", "pass an existing commit")
    on = target_index.target(repo, t)
    given = _stored(stored)
    state = on.holds(x, target_index.trusted_base(x, base, given), given.get("paths") or ())
    if state:
        return Match("ancestor", x)
    return _not_an_ancestor(on, x, base, given, exists=state is not None)


def _stored(stored: LedgerRow | Mapping[str, Any] | None) -> dict[str, Any]:
    keys = ("head_commit", "base_ref", *_FINGERPRINT_KEYS)
    if stored is None:
        return {}
    if isinstance(stored, Mapping):
        return {k: stored.get(k) for k in keys}
    return {k: getattr(stored, k, None) for k in keys}


def _negative(on: target_index.Target, kind: Kind, fp: Fingerprint | None = None) -> Match:
    """A negative answer, which a shallow clone cannot give: its history is cut off."""
    shallow = on.index.shallow if on.index is not None else git.is_shallow(on.repo)
    if kind != "unknown" and shallow:
        kind = "unknown"
    return Match(kind, None, fingerprint=fp)


def _not_an_ancestor(
    on: target_index.Target, x: str, base: str | None, stored: dict[str, Any], *, exists: bool
) -> Match:
    repo, t = on.repo, on.t
    have_ids = bool(stored.get("paths")) and (
        stored.get("patch_ids") is not None or stored.get("change_patch_id") is not None
    )
    fp: Fingerprint | None = {k: stored.get(k) for k in _FINGERPRINT_KEYS} if have_ids else None
    if not exists:
        # X is gone: only its stored ids can say where its work went. T's commits since
        # the stage's base (or all of T's commits touching the paths) are the candidates;
        # each stored id must be found there, shared history included.
        if fp is None:
            return _negative(on, "missing")
        recorded_base = stored.get("base_ref") or base
        exclude = recorded_base and git.resolve_commit(repo, recorded_base)
        candidates = on.candidates(exclude or None, fp["paths"])
        ids = fp.get("patch_ids") or []
        found = _match_ids(ids, ids[-1] if ids else None, fp, candidates)
        return found or _negative(on, "missing", fp)

    stage_base_ = target_index.trusted_base(x, base, stored) or _valid_base(on, x, base or stored.get("base_ref"))
    if stage_base_ is None:
        stage_base_ = _merge_base_or_none(repo, x, t)
    if fp is None:
        if stage_base_ is None:
            return _negative(on, "unknown")
        fp = {k: v for k, v in done_fingerprint(repo, stage_base_, x).items() if k in _FINGERPRINT_KEYS}
    if not fp.get("paths"):
        return _negative(on, "not-merged", fp)  # an empty change: nothing to look for

    # T's commits since the stage's base that touch its paths, newest first. Commits X
    # and T share (a stage merged in part, or amended at its tip) are among them and
    # match themselves; the rest must match a rewritten copy.
    candidates = on.candidates(stage_base_, fp["paths"])
    ids = fp.get("patch_ids") or []
    found = _match_ids(ids, ids[-1] if ids else None, fp, candidates)
    if found:
        return found
    if stage_base_ is not None:
        holder = _first_holding(repo, stage_base_, x, t, [c for c, _ in reversed(candidates)], fp["paths"])
        if holder:
            return Match("content-present", holder, fingerprint=fp)
    if not on.shares_history(x, stage_base_):
        return _negative(on, "unknown", fp)
    return _negative(on, "not-merged", fp)


def _valid_base(on: target_index.Target, x: str, base: str | None) -> str | None:
    """`base` as a full SHA if it is a proper ancestor of x."""
    if not base:
        return None
    full = base if git.is_full_sha(base) else git.resolve_commit(on.repo, base)
    return full if full and full != x and on.ancestry(full, x) else None


def _merge_base_or_none(repo: Path, x: str, t: str) -> str | None:
    mb = git.merge_base(repo, x, t)
    return mb if mb and mb != x else None


def _match_ids(ids: list[str], x_id: str | None, fp: Fingerprint, candidates: list[tuple[str, str]]) -> Match | None:
    """`ids`: the stage commits' patch-ids that must all be found; `x_id`: the one whose
    match is suggested; `candidates`: (commit, patch-id) of T, newest first."""
    by_id: dict[str, list[str]] = {}
    for commit, pid in candidates:
        by_id.setdefault(pid, []).append(commit)
    if ids and x_id is not None and all(pid in by_id for pid in ids):
        hits = by_id[x_id]
        return Match("patch-equivalent", hits[0], len(hits) > 1, fp)
    change = fp.get("change_patch_id")
    if change and change in by_id:
        hits = by_id[change]
        return Match("squash-equivalent", hits[0], len(hits) > 1, fp)
    return None


# ---- content-present: does commit C hold the change base → X? ----
#
# git's three-way merge (`merge-tree --write-tree C X`) reports a conflict as soon as the
# two sides touch adjacent lines, so a target that edited a line next to the stage's
# change would never count. The test here is as strict about the change itself and
# ignores what else C did: with E = the hunks of base → X and D = the hunks of X → C
# (both `git diff -U0` with fixed options; positions are X's lines), C holds the change
# when D never
#   - replaces or deletes a line that E added,
#   - inserts lines inside a block of lines E added,
#   - puts back, where E deleted or replaced lines, one of the lines E took out,
#   - re-creates a file E deleted, deletes a file E created, changes a mode E changed,
#   - or differs at all on a binary file E changed.
# So every line the stage added is in C, in the same order and place, and nothing it
# removed came back where it was; C may have changed anything else, next lines included.

_HUNK = re.compile(r"@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


@dataclass
class _Hunk:
    old_start: int
    old_n: int
    new_start: int
    new_n: int
    removed: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)


@dataclass
class _FileDiff:
    hunks: list[_Hunk] = field(default_factory=list)
    created: bool = False
    deleted: bool = False
    binary: bool = False
    mode: bool = False


def _parse_zero_diff(text: str) -> dict[str, _FileDiff]:
    files: dict[str, _FileDiff] = {}
    current: _FileDiff | None = None
    hunk: _Hunk | None = None
    pending = 0
    for line in text.split("\n"):
        if pending and hunk is not None:
            if line.startswith("-"):
                hunk.removed.append(line[1:])
                pending -= 1
            elif line.startswith("+"):
                hunk.added.append(line[1:])
                pending -= 1
            elif not line.startswith("\\"):
                pending = 0  # not what -U0 prints: stop trusting the counts
            continue
        if line.startswith("diff --git "):
            rest = line[len("diff --git ") :]
            # no renames and fixed prefixes: "a/P b/P" (or both quoted), halves alike
            current = files.setdefault(rest[: (len(rest) - 1) // 2], _FileDiff())
        elif current is None:
            continue
        elif line.startswith("@@ "):
            m = _HUNK.match(line)
            if m:
                hunk = _Hunk(int(m[1]), int(m[2] or 1), int(m[3]), int(m[4] or 1))
                current.hunks.append(hunk)
                pending = hunk.old_n + hunk.new_n
        elif line.startswith("new file mode"):
            current.created = True
        elif line.startswith("deleted file mode"):
            current.deleted = True
        elif line.startswith(("old mode", "new mode")):
            current.mode = True
        elif line.startswith("Binary files "):
            current.binary = True
    return files


def _holds(change: dict[str, _FileDiff], drift: dict[str, _FileDiff]) -> bool:
    """Does C hold the change base → X? (`change` = base → X, `drift` = X → C.)"""
    for name, e in change.items():
        d = drift.get(name)
        if d is None:
            continue
        if e.binary or d.binary or e.deleted or (e.created and d.deleted) or (e.mode and d.mode):
            return False
        added: list[tuple[int, int]] = []  # X's line ranges [start, end) the stage added
        inner: set[int] = set()  # "after X's line q" points inside an added block
        taken_out: dict[int, set[str]] = {}  # point -> lines the stage removed there
        for h in e.hunks:
            if h.new_n == 0:
                taken_out.setdefault(h.new_start, set()).update(h.removed)
                continue
            added.append((h.new_start, h.new_start + h.new_n))
            inner.update(range(h.new_start, h.new_start + h.new_n - 1))
            if h.old_n:
                for point in (h.new_start - 1, h.new_start + h.new_n - 1):
                    taken_out.setdefault(point, set()).update(h.removed)
        for h in d.hunks:
            if h.old_n and any(h.old_start < end and start < h.old_start + h.old_n for start, end in added):
                return False
            # an insertion goes after X's line old_start; a replacement of lines
            # [s, s+n) touches the points s-1 … s+n-1
            first = h.old_start if h.old_n == 0 else h.old_start - 1
            last = h.old_start if h.old_n == 0 else h.old_start + h.old_n - 1
            if h.old_n == 0 and h.old_start in inner:
                return False
            if h.added and any(taken_out.get(point, set()).intersection(h.added) for point in range(first, last + 1)):
                return False
    return True


def _first_holding(repo: Path, base: str, x: str, t: str, oldest_first: list[str], paths: list[str]) -> str | None:
    change = _parse_zero_diff(git.zero_context_diff(repo, base, x, paths))
    if not change:
        return None

    def holds(commit: str) -> bool:
        return _holds(change, _parse_zero_diff(git.zero_context_diff(repo, x, commit, paths)))

    if not holds(t):
        return None
    chain = [c for c in oldest_first if c != t] + [t]
    low, high = 0, len(chain) - 1
    while low < high:
        middle = (low + high) // 2
        if holds(chain[middle]):
            high = middle
        else:
            low = middle + 1
    return chain[low]


# ---- suggestions and corrections ----


def suggestions(task: Task, *, stages: Iterable[int] | None = None, target: str | None = None) -> list[Suggestion]:
    """For every stage whose latest done commit is not an ancestor of T: where its work is
    (or that it is not merged, missing, or unknown), sorted by stage. A stage asked for
    that the Stage Map does not have is refused (`stage.unknown`)."""
    from .plans import require_plan_run_root

    if stages is not None:
        from . import gates  # the run rules: heavy, and only asked about a stage named

        stages = list(stages)
        stage_map = require_plan_run_root(task).stage_map()
        for n in stages:
            refuse(gates.unknown_stage(task, stage_map, n))
    if not task.project.is_git:
        return []
    plan = require_plan_run_root(task)
    wanted = set(plan.stage_map().by_number())
    if stages is not None:
        wanted &= set(stages)
    ledger = read_state(plan.dir / LEDGER_NAME)
    done = {n: row for n, row in ledger.done_rows().items() if n in wanted}
    heads = {n: row.head_commit for n, row in done.items() if row.head_commit}
    if not heads:
        return []
    repo = task.project.root
    t = target or target_commit(task)
    on = target_index.target(repo, t)
    stored = {n: _stored(row) for n, row in done.items()}
    trusted = {n: b for n, x in heads.items() if (b := target_index.trusted_base(x, ledger.base_ref(n), stored[n]))}
    # one walk of T for every stage, since the base of the first (a later stage's base is
    # in it), over every stage's paths; a stage whose done commit is in its range is in T
    paths = sorted({p for n in trusted for p in stored[n].get("paths") or []})
    state: dict[int, bool | None] = {}
    for n, b in sorted(trusted.items()):
        if (walked := on.range(b, paths)) is not None:
            state[n] = heads[n] in walked
    unsure = [n for n, known in state.items() if not known]  # not in T, or not in the repository
    rest = {n: x for n, x in heads.items() if n not in state}
    if len(rest) > 3:
        # one walk answers for every stage; then which of the unmerged ones exist
        unmerged = git.not_ancestors(repo, list(rest.values()), t)
        state.update({n: x not in unmerged for n, x in rest.items()})
        unsure += [n for n, x in rest.items() if x in unmerged]
    else:
        state.update({n: on.ancestry(x, t) for n, x in rest.items()})  # None: not in the repository
    if unsure:
        present = git.resolve_commits(repo, [heads[n] for n in unsure])
        state.update({n: None for n, sha in zip(unsure, present) if sha is None})
    found = []
    for n, x in sorted(heads.items()):
        if state[n]:
            continue
        match = _not_an_ancestor(on, x, ledger.base_ref(n), stored[n], exists=state[n] is not None)
        tip = rewritten_tip(task, n, x) if match.kind == "not-merged" else None
        if tip is not None:
            found.append(Suggestion(n, x, tip, "rewritten"))
            continue
        found.append(Suggestion(n, x, match.commit, match.kind, match.ambiguous, fingerprint=match.fingerprint))
    return found


def rewritten_tip(task: Task, stage: int, x: str) -> str | None:
    """The tip of the stage's branch when that branch no longer contains its done commit
    `x` (amended, rebased or reset after done); None when it does, or there is no branch
    (or no `x`) to ask about. Callers ask only for a stage whose work is not in the task
    branch: a squash there is a done commit no stage branch holds."""
    ref = f"refs/heads/{stage_branch(task, stage)}"
    if git.contains(task.project.root, ref, x) is not False:
        return None
    return git.resolve_commit(task.project.root, ref)


def apply(task: Task, chosen: Iterable[Suggestion], *, on_wait: Notice | None = None) -> list[Suggestion]:
    """Append a correction `done` row for each applicable suggestion whose recorded commit
    is still the stage's latest done commit; pin the new commit. Returns what was applied.
    Runs under the task mutex (`on_wait` hears once if it has to wait for it)."""
    with task_mutex(task, on_wait=on_wait):
        return _apply_locked(task, chosen)


def _apply_locked(task: Task, chosen: Iterable[Suggestion]) -> list[Suggestion]:
    from .plans import require_plan_run_root

    ledger = require_plan_run_root(task).dir / LEDGER_NAME
    done = read_state(ledger).done_rows()
    applied = []
    for s in chosen:
        row = done.get(s.stage)
        if not s.applicable or s.suggested is None or row is None or row.head_commit != s.recorded:
            continue
        reason = REASONS[s.kind]
        keep = {k: getattr(row, k) for k in _FINGERPRINT_KEYS if getattr(row, k) is not None}
        if not keep and s.fingerprint:
            keep = {k: v for k, v in s.fingerprint.items() if k in _FINGERPRINT_KEYS and v is not None}
        correction = new_row(
            s.stage,
            "done",
            run_id=row.run_id,
            impl_task_key=row.impl_task_key or task.key,
            head_commit=s.suggested,
            replaces=s.recorded,
            reason=reason,
            **keep,
        )
        _pin_quietly(task, s.stage, s.suggested)
        append_row(ledger, correction)
        done[s.stage] = correction
        applied.append(replace(s, reason=reason))
    return applied


def suggest_and_apply(
    task: Task, *, stages: Iterable[int] | None = None, on_wait: Notice | None = None
) -> tuple[list[Suggestion], list[Suggestion]]:
    """`okstra reconcile --apply`: the suggestions, and those of them recorded, found and
    appended under one hold of the task mutex."""
    with task_mutex(task, on_wait=on_wait):
        found = suggestions(task, stages=stages)
        return found, _apply_locked(task, found)


def auto_reconcile(task: Task, *, target: str | None = None, on_wait: Notice | None = None) -> list[Suggestion]:
    """Apply the unambiguous suggestions (patch-, squash-equivalent, content-present with
    one clear commit), under the task mutex. Callers print `s.applied_line()` for each
    returned suggestion."""
    with task_mutex(task, on_wait=on_wait):
        return _apply_locked(task, [s for s in suggestions(task, target=target) if s.applicable and not s.ambiguous])


def correct(
    task: Task, stage: int, commit: str, *, force: bool = False, on_wait: Notice | None = None
) -> Suggestion | None:
    """A manual correction: stage `stage` is done at `commit`, replacing its latest done
    commit, under the task mutex. Returns it (kind: how the old commit relates to the new
    one), or None when that commit is already the one recorded.

    The commit must exist, must not be the stage's base, and the stage's branch or the
    task branch (where a squash of the stage lands) must contain it
    (`record.done_commit_refusal`); `force` with a full SHA takes it as it is."""
    with task_mutex(task, on_wait=on_wait):
        return _correct_locked(task, stage, commit, force)


def _correct_locked(task: Task, stage: int, commit: str, force: bool) -> Suggestion | None:
    from .plans import require_plan_run_root

    repo = task.project.root
    if not task.project.is_git:
        raise OkstraError(
            f"project {task.project.id} is not a git repository: there is no commit to correct", "nothing to do"
        )
    from . import gates

    plan = require_plan_run_root(task)
    refuse(gates.unknown_stage(task, plan.stage_map(), stage))
    from .worktrees import resolve_in_stage

    sha, where = resolve_in_stage(task, stage, commit)
    if sha is None:
        raise OkstraError(
            f"--commit {commit!r} names no commit in {where}",
            "pass a commit SHA (abbreviated is fine) or a ref that exists in the project repository",
        )
    ledger = plan.dir / LEDGER_NAME
    state = read_state(ledger)
    row = state.done_rows().get(stage)
    if row is None or not row.head_commit:
        raise OkstraError(
            f"stage {stage} has no done commit to correct",
            f"record it instead: okstra record {task.ref} --stage {stage} --status done --commit {commit}",
        )
    if row.head_commit == sha:
        return None
    if not (force and git.is_full_sha(commit)):
        from .record import done_commit_refusal

        refuse(done_commit_refusal(task, state, stage, sha, correction=True))
    match = content_merged(repo, row.head_commit, sha, base=state.base_ref(stage), stored=row)
    _pin_quietly(task, stage, sha)
    append_row(
        ledger,
        new_row(
            stage,
            "done",
            run_id=row.run_id,
            impl_task_key=row.impl_task_key or task.key,
            head_commit=sha,
            replaces=row.head_commit,
            reason="manual",
        ),
    )
    return Suggestion(stage, row.head_commit, sha, match.kind, reason="manual")


def _pin_quietly(task: Task, stage: int, sha: str) -> None:
    with contextlib.suppress(git.GitError, ValueError):
        pin(task, stage, sha)


# ---- guidance ----


def ways_out(task: Task, stage: int, done: str, moved_to: str) -> dict[str, str]:
    """The two command lines that settle a stage whose branch moved away from its done
    commit `done` to `moved_to`: `record` accepts the new work as the stage's done commit,
    `reset` puts the branch back (in its worktree when it has one: `reset --keep` stops
    rather than lose local changes)."""
    from . import registry
    from .worktrees import task_slot

    row = registry.get_worktree(task_slot(task), stage)
    if row is not None and Path(row.path).is_dir():
        reset = f"git -C {shlex.quote(row.path)} reset --keep {done}"
    else:
        root = shlex.quote(str(task.project.root))
        reset = f"git -C {root} branch -f {stage_branch(task, stage)} {done}"
    return {"record": f"okstra record {task.ref} --stage {stage} --status done --commit {moved_to}", "reset": reset}


def rewritten_refusal(task: Task, stage: int, done: str, tip: str) -> Refusal:
    """`handoff.rewritten`: the stage's branch, at `tip`, no longer contains its done
    commit `done`; the words name the two ways out (`ways_out`)."""
    params = {"task": str(task.ref), "stage": stage, "commit": done, "tip": tip, "branch": stage_branch(task, stage)}
    return Refusal("handoff.rewritten", {**params, **ways_out(task, stage, done, tip)})


def fix_guidance(task: Task, stage: int, *, suggested: str | None = None) -> str:
    """One line with the exact commands that would fix an unmerged or missing stage:
    merge its branch (or its commit) into the task worktree, or record the commit that
    holds its work."""
    root = task.project.root
    worktree = task_worktree_path(task)
    where = shlex.quote(str(worktree if worktree.exists() else root))
    branch = stage_branch(task, stage)
    record = f"okstra reconcile {task.ref} --stage {stage} --commit {suggested or 'SHA'}"
    source = branch if git.resolve_commit(root, f"refs/heads/{branch}") else None
    if source is None:
        from .plans import plan_run_root

        plan = plan_run_root(task)
        row = read_state(plan.dir / LEDGER_NAME).done_rows().get(stage) if plan else None
        if row and row.head_commit and git.resolve_commit(root, row.head_commit):
            source = row.head_commit
    if source is None:
        return f"record the commit that holds stage {stage}'s work: {record}"
    return (
        f"merge it into the task worktree: git -C {where} merge --no-ff {source}"
        f" — or, if its work is already there under another commit, record that commit: {record}"
    )
