"""Every git call okstra makes goes through this module.

Argument lists only (never a shell string), `--end-of-options` before anything a user
typed, and an environment stripped of inherited `GIT_*` variables so that a hook or an
outer git process cannot point us at another repository; no hooks, fsmonitor or
signing program runs (`git_env`).
The `git` binary, not GitPython: a process costs ~2 ms, importing GitPython ~100 ms,
and agents call the CLI in loops.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from .errors import OkstraError

T = TypeVar("T")
D = TypeVar("D")  # what a diff tells of one commit


class GitError(OkstraError):
    """git said no; `what` carries its message."""


# The config every git okstra runs has, whatever the person's: colours and advice must not
# change what okstra parses. okstra's git work is mechanical (worktrees, pins, merges of
# finished stages), so no program the config names runs around it: no hooks (a failing
# post-checkout, reference-transaction…), no fsmonitor daemon hook (run by every status
# and merge), no signing, whose prompt cannot run in a git without a terminal (agents
# call okstra): okstra's merge commits are unsigned, and the person signs what they merge
# out of the task. Filters and merge drivers keep running: they make the files' content
# (LFS), and only the person's own config can name their programs. No housekeeping either
# (`gc --auto`, `maintenance run --auto`, which a merge or commit may start): killed with
# okstra it leaves `objects/maintenance.lock` behind; the person's next git command does it.
_FIXED_CONFIG = (
    ("color.ui", "never"),
    ("gc.auto", "0"),
    ("maintenance.auto", "false"),
    ("advice.detachedHead", "false"),
    ("core.hooksPath", os.devnull),
    ("core.fsmonitor", "false"),
    ("commit.gpgSign", "false"),
    ("tag.gpgSign", "false"),
)


def git_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        LC_ALL="C",
        GIT_TERMINAL_PROMPT="0",
        GIT_PAGER="cat",
        # no lock a read does not need (`git status` would take index.lock to refresh
        # the index): a read killed midway leaves nothing that blocks the next git
        GIT_OPTIONAL_LOCKS="0",
        GIT_CONFIG_COUNT=str(len(_FIXED_CONFIG)),
    )
    for n, (key, value) in enumerate(_FIXED_CONFIG):
        env[f"GIT_CONFIG_KEY_{n}"], env[f"GIT_CONFIG_VALUE_{n}"] = key, value
    return env


def run(
    args: list[str],
    cwd: Path | str,
    *,
    check: bool = True,
    input: str | None = None,
    env: dict[str, str] | None = None,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[str]:
    """`env`: variables set on top of `git_env()` (the demo's fixed identity and dates).
    `timeout`: seconds git may take (`subprocess.TimeoutExpired` past them)."""
    try:
        proc = subprocess.run(
            ["git", *args],
            check=False,
            cwd=cwd,
            env={**git_env(), **env} if env else git_env(),
            input=input,
            capture_output=True,
            text=True,
            stdin=None if input is not None else subprocess.DEVNULL,
            timeout=timeout,
        )
    except FileNotFoundError as exc:
        raise OkstraError("git is not installed or not on PATH", "install git 2.38 or newer") from exc
    except ValueError as exc:  # a NUL byte in an argument: a damaged ledger or sidecar value
        raise _nul_error(args) from exc
    if check and proc.returncode != 0:
        message = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
        first = message[0] if message else f"exit {proc.returncode}"
        raise GitError(f"git {args[0]} failed in {cwd}: {first}", "see git's message above")
    return proc


def _nul_error(args: list[str]) -> GitError:
    shown = " ".join(a.replace("\0", "\\0") for a in args)[:200]
    return GitError(
        f"git {args[0]} was asked for something holding a NUL byte ({shown}); no commit or path can",
        "a value okstra read is damaged: check the ledger, carry sidecars and manifests it came from",
    )


def out(args: list[str], cwd: Path | str) -> str:
    return run(args, cwd).stdout.strip()


def _rev_parse(cwd: Path, args: Sequence[str]) -> str | None:
    """`git rev-parse ARGS`' output, bytes for bytes (None when git says no)."""
    try:
        proc = subprocess.run(
            ["git", "rev-parse", *args],
            check=False,
            cwd=cwd,
            env=git_env(),
            capture_output=True,
            stdin=subprocess.DEVNULL,
        )
    except (FileNotFoundError, NotADirectoryError):
        return None
    return os.fsdecode(proc.stdout) if proc.returncode == 0 else None


def rev_parse_paths(cwd: Path, *flags: str) -> list[str] | None:
    """What `git rev-parse FLAG…` prints for each path-valued flag, exactly (None when git
    says no): a path may hold any byte but NUL — a newline, a carriage return, a trailing
    space — and rev-parse has no `-z`. One process when its output splits into as many
    lines as flags, else one per flag (a value then ends at its own last newline)."""
    text = _rev_parse(cwd, flags)
    if text is None:
        return None
    if text.count("\n") == len(flags):
        return text.split("\n")[:-1]
    values = [_rev_parse(cwd, (flag,)) for flag in flags]
    if any(v is None or not v.endswith("\n") for v in values):
        return None
    return [v[:-1] for v in values if v is not None]


def toplevel(path: Path) -> Path | None:
    """The work tree root holding `path`, or None outside git."""
    values = rev_parse_paths(path, "--show-toplevel")
    return Path(values[0]) if values and values[0] else None


def place(path: Path) -> tuple[Path, str] | None:
    """Where `path` is in git: (the work tree root holding it, its folder relative to that
    root with a trailing slash, '' at the root), or None outside a work tree. git's own
    answer, so symlinks are resolved the way git resolves them."""
    values = rev_parse_paths(path, "--show-toplevel", "--show-prefix")
    if not values or not values[0]:
        return None
    return Path(values[0]), values[1]


def resolve_commit(repo: Path, rev: str) -> str | None:
    """The full SHA of the commit `rev` names, or None when it names none."""
    proc = run(
        ["rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}"],
        repo,
        check=False,
    )
    return proc.stdout.strip() if proc.returncode == 0 else None


def head(repo: Path) -> str | None:
    return resolve_commit(repo, "HEAD")


def empty_tree(repo: Path) -> str:
    """The empty tree's object name in the repository's hash algorithm (SHA-1 or SHA-256):
    what a root commit's change is diffed against."""
    return run(["hash-object", "-t", "tree", "--stdin"], repo, input="").stdout.strip()


def branch_name_ok(name: str, cwd: Path) -> bool:
    """Whether git accepts `name` as a branch name (`git check-ref-format`)."""
    return run(["check-ref-format", f"refs/heads/{name}"], cwd, check=False).returncode == 0


def is_ancestor(repo: Path, ancestor: str, descendant: str) -> bool:
    return contains(repo, descendant, ancestor) is True


def contains(repo: Path, descendant: str, ancestor: str) -> bool | None:
    """Whether `descendant` (a commit or ref) contains `ancestor`; None when either names
    no commit (one git process answers both questions)."""
    proc = run(["merge-base", "--is-ancestor", ancestor, descendant], repo, check=False)
    return {0: True, 1: False}.get(proc.returncode)


def branch_files(repo: Path, branch: str) -> list[Path]:
    """The files git rewrites when `branch` of `repo` moves (its loose ref and
    packed-refs), for a watcher that stats them rather than run git; none unless
    `repo/.git` is the repository's own directory."""
    git_dir = repo / ".git"
    if not git_dir.is_dir():
        return []
    return [git_dir / "packed-refs", git_dir / "refs" / "heads" / branch]


def git_path(repo: Path, name: str) -> Path:
    """A path inside the git dir (`info/exclude`), right for linked worktrees too."""
    text = _rev_parse(repo, ("--git-path", name))
    if text is None or not text.endswith("\n"):
        raise GitError(f"git rev-parse --git-path {name} failed in {repo}", "check that it is a git repository")
    return (repo / text[:-1]).resolve()


# ---- history and patch-ids (the decisions live in okstra_engine.reconcile) ----
#
# A patch-id is only comparable with one made from the same diff text, so every diff we
# hash is made with these options whatever the user's config says (diff.noprefix,
# diff.context, color.diff, diff.algorithm, diff.renames, textconv, external diff …),
# and always hashed with `git patch-id --stable`: stable and unstable ids never mix.

PATCH_DIFF_OPTS = (
    "--no-color",
    "--no-ext-diff",
    "--no-textconv",
    "--no-renames",
    "-U3",
    "--inter-hunk-context=0",
    "--src-prefix=a/",
    "--dst-prefix=b/",
    "--diff-algorithm=myers",
    "--submodule=short",
    "--binary",
)
# config a diff-making command reads beyond its options (log.follow switches on rename
# following for a single path; diff.relative limits the diff to a subdirectory)
_PATCH_CONFIG = ("-c", "log.follow=false", "-c", "diff.relative=false", "-c", "log.showSignature=false")


def _from_top(paths: Sequence[str]) -> list[str]:
    """Pathspecs for exactly these paths (no glob, no magic), read from the work tree's
    root whatever the cwd: the paths git prints are the repository's, and a project in a
    subfolder of its repository runs git from that subfolder."""
    return [f":(top,literal){p}" for p in paths]


PATHSPEC_ITEMS = 8
"""Above this many paths, a tree diff limited to them costs git more in matching every
entry it reads against every item than it saves: they are asked as their folders
(`_pathspec_of`), and what git lists is filtered here. On the git project's history, a
stage's 15 paths as 7 top-level names made the tree diffs of 703 commits 1.6x faster."""


def _pathspec_of(paths: Sequence[str]) -> tuple[list[str], frozenset[str] | None]:
    """The pathspecs that ask git about `paths`, and what to keep of what git lists
    (None: all of it)."""
    items = sorted(set(paths))
    depth = max((p.count("/") for p in items), default=0) + 1
    while len(items) > PATHSPEC_ITEMS and depth > 1:
        depth -= 1
        items = sorted({"/".join(p.split("/")[:depth]) for p in items})
    return _from_top(items), None if len(items) == len(set(paths)) else frozenset(paths)


def _inside(found: dict[str, list[str]], keep: frozenset[str] | None) -> dict[str, list[str]]:
    """`found` (commit → paths), each path under one of `keep`; commits left with none go."""
    if keep is None:
        return found
    return {c: inside for c, ps in found.items() if (inside := [p for p in ps if covered(p, keep)])}


def covered(path: str, items: set[str] | frozenset[str]) -> bool:
    """Whether a pathspec item of `items` names `path` or a folder holding it."""
    if path in items:
        return True
    cut = path.rfind("/")
    while cut > 0:
        if path[:cut] in items:
            return True
        cut = path.rfind("/", 0, cut)
    return False


def is_shallow(repo: Path) -> bool:
    return out(["rev-parse", "--is-shallow-repository"], repo) == "true"


def ancestry(repo: Path, ancestor: str, descendant: str) -> bool | None:
    """True/False whether `ancestor` is an ancestor of (or equal to) `descendant`;
    None when git cannot tell (one of them is not in the repository)."""
    proc = run(["merge-base", "--is-ancestor", ancestor, descendant], repo, check=False)
    return {0: True, 1: False}.get(proc.returncode)


def on_first_parent_line(repo: Path, commit: str, tip: str) -> bool:
    """Whether `commit` is on `tip`'s first-parent line: made on that branch itself (a
    squash, a cherry-pick, a merge commit), not brought in by a merge. One walk, from
    `tip` down to `commit`'s parents."""
    proc = run(["rev-list", "--first-parent", tip, "--not", f"{commit}^@", "--"], repo, check=False)
    return proc.returncode == 0 and commit in proc.stdout.split()


def merge_base(repo: Path, a: str, b: str) -> str | None:
    proc = run(["merge-base", a, b], repo, check=False)
    if proc.returncode != 0:
        return None
    return proc.stdout.strip() or None


def _pipe_to_patch_id(repo: Path, args: list[str], *, stdin: str | None = None) -> list[tuple[str, str]]:
    """`git ARGS | git patch-id --stable`: two processes, the diff text streamed from one
    to the other without passing through Python. Returns (commit, patch-id) pairs in
    the order git printed them (the commit is all zeros for a bare diff). `stdin`: what
    the first one reads."""
    import tempfile

    env = git_env()
    # files, not pipes: a pipe could fill up and stall git
    with tempfile.TemporaryFile() as errors, tempfile.TemporaryFile() as given:
        if stdin is not None:
            given.write(stdin.encode())
            given.seek(0)
        try:
            producer = subprocess.Popen(
                ["git", *_PATCH_CONFIG, *args],
                cwd=repo,
                env=env,
                stdin=subprocess.DEVNULL if stdin is None else given,
                stdout=subprocess.PIPE,
                stderr=errors,
            )
        except FileNotFoundError as exc:
            raise OkstraError("git is not installed or not on PATH", "install git 2.38 or newer") from exc
        except ValueError as exc:
            raise _nul_error(args) from exc
        pipe = producer.stdout
        assert pipe is not None  # stdout=PIPE
        try:
            hasher = subprocess.Popen(
                ["git", "patch-id", "--stable"],
                cwd=repo,
                env=env,
                stdin=pipe,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
        except BaseException:
            producer.kill()
            producer.wait()
            raise
        finally:
            pipe.close()  # the hasher holds the pipe now: EOF reaches it
        ids, _ = hasher.communicate()
        if producer.wait() != 0:
            errors.seek(0)
            first = errors.read().decode("utf-8", "replace").strip().splitlines()
            raise GitError(
                f"git {args[0]} failed in {repo}: {first[0] if first else f'exit {producer.returncode}'}",
                "see git's message above",
            )
    if hasher.returncode != 0:
        raise GitError(f"git patch-id failed in {repo}", "check that git works in that repository")
    pairs = []
    for line in ids.decode("ascii", "replace").splitlines():
        patch_id, _, commit = line.partition(" ")
        if commit:
            pairs.append((commit, patch_id))
    return pairs


def commit_patch_ids(
    repo: Path,
    include: list[str],
    exclude: Sequence[str] = (),
    paths: list[str] | None = None,
    *,
    reverse: bool = False,
) -> list[tuple[str, str]]:
    """(commit, stable patch-id) of each non-merge commit reachable from `include` and
    not from `exclude`, newest first (oldest first with `reverse`), in one streaming pass.

    With `paths`, only the commits that touch one of them, but each hashed over its
    whole diff (`--full-diff`), or a commit touching other files too would never match.
    """
    args = ["log", "-p", "--no-merges", "--full-history", "--full-diff", "--format=commit %H", *PATCH_DIFF_OPTS]
    if reverse:
        args.append("--reverse")
    args += ["--end-of-options", *include, *(f"^{c}" for c in exclude), "--", *_from_top(paths or ())]
    return _pipe_to_patch_id(repo, args)


def repo_facts(repo: Path) -> tuple[Path, str, bool] | None:
    """(the common git dir, the object format `sha1` or `sha256`, whether the clone is
    shallow), in one process; None outside git."""
    values = rev_parse_paths(repo, "--git-common-dir", "--show-object-format", "--is-shallow-repository")
    if not values or not values[0] or values[1] not in ("sha1", "sha256"):
        return None
    return (Path(repo) / values[0]).resolve(), values[1], values[2] == "true"


def has_replace_refs(repo: Path, common: Path) -> bool:
    """Whether `refs/replace/` holds a ref: git then shows other objects in place of some
    commits (`git replace`), and what it says of history can change without any commit
    changing. Read from the files of the common git dir `common` (loose refs, then
    `packed-refs`), as git 2.39 keeps them; git is asked only where they are kept
    otherwise (reftable) or cannot be read."""
    if (common / "reftable").exists():
        return _asks_replace_refs(repo)
    try:
        with os.scandir(common / "refs" / "replace") as entries:
            if any(True for _ in entries):
                return True
    except OSError:
        pass  # no such folder: no loose replace ref
    return _packed_replace_refs(repo, common / "packed-refs")


_PACKED_REPLACE: dict[Path, tuple[tuple[int, int, int], bool]] = {}
"""What a `packed-refs` said, by the file's identity: git replaces the file whole, so a
board asking on every refresh reads it again only when it changed."""


def _packed_replace_refs(repo: Path, packed: Path) -> bool:
    from .fsio import read_bytes_nofollow

    try:
        info = os.lstat(packed)
    except FileNotFoundError:
        return False
    except OSError:
        return _asks_replace_refs(repo)
    key = (info.st_ino, info.st_size, info.st_mtime_ns)
    known = _PACKED_REPLACE.get(packed)
    if known is not None and known[0] == key:
        return known[1]
    data = read_bytes_nofollow(packed)
    if data is None:  # a link, or unreadable
        return _asks_replace_refs(repo)
    found = b" refs/replace/" in data
    _PACKED_REPLACE[packed] = (key, found)
    return found


def _asks_replace_refs(repo: Path) -> bool:
    return out(["for-each-ref", "--count=1", "--format=%(refname)", "refs/replace/"], repo) != ""


def resolve_commits(repo: Path, revs: Sequence[str]) -> list[str | None]:
    """The full SHA of the commit each of `revs` names (None where it names none), in one
    process (`cat-file --batch-check`)."""
    asked = [r for r in revs if r and "\n" not in r and "\0" not in r]
    if not asked:
        return [None] * len(revs)
    proc = run(
        ["cat-file", "--batch-check=%(objectname) %(objecttype)"],
        repo,
        input="".join(f"{r}^{{commit}}\n" for r in asked),
    )
    found: dict[str, str] = {}
    for rev, line in zip(asked, proc.stdout.split("\n")):
        sha, _, kind = line.partition(" ")
        if kind == "commit" and is_full_sha(sha):
            found[rev] = sha
    return [found.get(r) for r in revs]


def walk_range(repo: Path, tip: str, exclude: Sequence[str]) -> str:
    """Every commit reachable from `tip` and not from `exclude`, merges included, in git's
    order (`git rev-list`, newest first): one line each, `COMMIT<TAB>COMMITTER TIME<TAB>
    PARENTS` (space-separated), kept as git wrote it."""
    return run(
        [
            "rev-list",
            "--no-commit-header",
            "--format=%H%x09%ct%x09%P",
            "--end-of-options",
            tip,
            *(f"^{c}" for c in exclude),
            "--",
        ],
        repo,
    ).stdout


def walk_range_paths(
    repo: Path, tip: str, exclude: Sequence[str], paths: Sequence[str]
) -> tuple[str, dict[str, list[str]]]:
    """`walk_range` and `paths_touched` of its commits in one process (`git log
    --full-history --sparse --name-only -- PATHS`): cheaper where history is mostly
    linear; git compares a merge with each of its parents on the paths, which costs more
    than a second process where merges are many."""
    pathspec, keep = _pathspec_of(paths)
    text = _raw(
        [
            *_PATCH_CONFIG,
            "log",
            "--format=%H%x09%ct%x09%P",
            "-z",
            "--full-history",
            "--sparse",
            "--root",
            "--name-only",
            "--no-renames",
            "--end-of-options",
            tip,
            *(f"^{c}" for c in exclude),
            "--",
            *pathspec,
        ],
        repo,
    )
    lines: list[str] = []
    touched: dict[str, list[str]] = {}
    current: list[str] | None = None  # the paths of the last commit, once git lists them
    for field in text.split("\0"):
        if field.startswith("\n") and lines:  # git starts a commit's paths on a new line
            current = touched.setdefault(lines[-1].partition("\t")[0], [])
            current.append(field[1:])
        elif current is not None and field and not _looks_like_record(field):
            current.append(field)
        elif field:
            lines.append(field)
            current = None
    return "".join(f"{line}\n" for line in lines), _inside(touched, keep)


def _looks_like_record(field: str) -> bool:
    commit, _, rest = field.partition("\t")
    stamp, _, listed = rest.partition("\t")
    return is_full_sha(commit) and stamp.isdigit() and all(is_full_sha(p) for p in listed.split(" ") if p)


def has_merges_near(repo: Path, tip: str, *, commits: int = 64) -> bool:
    """Whether one of the newest `commits` commits of `tip` is a merge (a walk of those
    only): how a walk of its history is best made."""
    text = out(["rev-list", "--parents", f"--max-count={commits}", "--end-of-options", tip, "--"], repo)
    return any(line.count(" ") > 1 for line in text.splitlines())


PARALLEL_DIFFS_FROM = 200
"""From this many commits, `paths_touched` splits its tree diffs between two processes."""


def paths_touched(repo: Path, commits: Sequence[str], paths: Sequence[str]) -> dict[str, list[str]]:
    """For each of `commits` (non-merge) whose change touches one of `paths` (a folder
    covers what is in it): those of its changed paths, in the order given (`git diff-tree
    --stdin`, a root commit against the empty tree). Commits touching none are left out.

    Reading the trees is most of a first reconcile on a long history, and each commit's
    diff stands alone: with many commits and a second core, two processes take a half each."""
    if not commits or not paths:
        return {}
    return _in_halves(lambda part: _paths_touched(repo, part, paths), commits)


def _in_halves(diff: Callable[[Sequence[str]], dict[str, D]], commits: Sequence[str]) -> dict[str, D]:
    """`diff(commits)`, as two processes side by side with many commits and a second core:
    each commit's tree diff stands alone, so each takes a half."""
    if len(commits) >= PARALLEL_DIFFS_FROM and (os.cpu_count() or 1) > 1:
        half = len(commits) // 2
        newer, older = concurrently(lambda: diff(commits[:half]), lambda: diff(commits[half:]))
        return {**newer, **older}
    return diff(commits)


def _paths_touched(repo: Path, commits: Sequence[str], paths: Sequence[str]) -> dict[str, list[str]]:
    pathspec, keep = _pathspec_of(paths)
    text = _raw(
        [
            *_PATCH_CONFIG,
            "diff-tree",
            "--stdin",
            "-r",
            "--root",
            "--name-only",
            "--no-renames",
            "-z",
            "--",
            *pathspec,
        ],
        repo,
        input="".join(f"{c}\n" for c in commits).encode(),
    )
    # git prints each commit that has changes, in the order given, then its paths: a
    # field is a commit when it is the next one asked (or one after it) that git could print
    order = {c: i for i, c in enumerate(commits)}
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    at = -1
    for field in text.split("\0"):
        i = order.get(field, -1)
        if i > at:
            at, current = i, found.setdefault(field, [])
        elif field and current is not None:
            current.append(field)
    return _inside(found, keep)


EMPTY_BLOBS = frozenset(
    (
        "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391",
        "473a0f4c3be8a93681a267e3b1e9a7dcda1185436fe141f7749120a303721813",
    )
)
"""The empty file's object name, SHA-1 and SHA-256."""


def hashed_paths(repo: Path, commits: Sequence[str]) -> dict[str, list[str]]:
    """For each of `commits` (non-merge), the paths whose change its patch-id surely
    hashes: a file modified from some content to other content (`git diff-tree --raw`;
    two processes from `PARALLEL_DIFFS_FROM` commits). A file added or deleted, or only
    its mode changed, is left out: an empty one, or a mode, leaves no line in the diff."""
    if not commits:
        return {}
    return _in_halves(lambda part: _hashed_paths(repo, part), commits)


def _hashed_paths(repo: Path, commits: Sequence[str]) -> dict[str, list[str]]:
    text = _raw(
        [*_PATCH_CONFIG, "diff-tree", "--stdin", "-r", "--root", "--raw", "--no-abbrev", "--no-renames", "-z"],
        repo,
        input="".join(f"{c}\n" for c in commits).encode(),
    )
    found: dict[str, list[str]] = {c: [] for c in commits}
    current: list[str] = []
    meta: list[str] | None = None
    for field in text.split("\0"):
        if meta is not None:
            old, new, status = meta[2], meta[3], meta[4]
            if status == "M" and old != new and old not in EMPTY_BLOBS and new not in EMPTY_BLOBS:
                current.append(field)
            meta = None
        elif field.startswith(":"):
            meta = field[1:].split(" ")
            if len(meta) != 5:
                meta = None
        elif field in found:
            current = found[field]
    return found


def patch_ids_of(repo: Path, commits: Sequence[str]) -> dict[str, str]:
    """The stable patch-id of each of `commits` that has one (an empty change has none),
    hashed over its whole diff exactly as `commit_patch_ids` hashes it."""
    if not commits:
        return {}
    args = ["log", "-p", "--no-walk=unsorted", "--stdin", "--format=commit %H", *PATCH_DIFF_OPTS, "--end-of-options"]
    return dict(_pipe_to_patch_id(repo, args, stdin="".join(f"{c}\n" for c in commits)))


def concurrently(*calls: Callable[[], T]) -> list[T]:
    """Run calls that mostly wait on git processes at the same time (a waiting thread
    releases the GIL); their results in order. If any raised, the first error is raised
    once all have ended. Threads, not concurrent.futures: importing that costs ~20 ms,
    more than the calls it would overlap."""
    import threading

    results: dict[int, T] = {}
    errors: list[BaseException | None] = [None] * len(calls)

    def work(i: int) -> None:
        try:
            results[i] = calls[i]()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller below
            errors[i] = exc

    threads = [threading.Thread(target=work, args=(i,)) for i in range(1, len(calls))]
    for thread in threads:
        thread.start()
    if calls:
        work(0)
    for thread in threads:
        thread.join()
    for error in errors:
        if error is not None:
            raise error
    return [results[i] for i in range(len(calls))]


def diff_patch_id(repo: Path, base: str, head: str) -> str | None:
    """The stable patch-id of the whole change `base` → `head`, None when it is empty."""
    pairs = _pipe_to_patch_id(repo, ["diff", *PATCH_DIFF_OPTS, base, head, "--"])
    return pairs[0][1] if pairs else None


def touched_paths(repo: Path, base: str, head: str) -> list[str]:
    """Every path some non-merge commit of `base..head` changes (sorted), which is more
    than `git diff base head` names when a commit's change was undone by a later one."""
    text = _raw(
        [
            "--literal-pathspecs",
            *_PATCH_CONFIG,
            "log",
            "--no-merges",
            "--no-renames",
            "--format=",
            "--name-only",
            "-z",
            "--end-of-options",
            head,
            f"^{base}",
            "--",
        ],
        repo,
    )
    return sorted({p for p in text.split("\0") if p})


def added_paths(repo: Path, base: str, head: str) -> list[str]:
    """The paths `head` has and `base` does not (repository-relative, sorted): what a
    merge of `head` into `base` creates in the work tree."""
    text = _raw(
        [
            "diff",
            "--no-renames",
            "--no-ext-diff",
            "--name-only",
            "--diff-filter=A",
            "-z",
            "--end-of-options",
            base,
            head,
        ],
        repo,
    )
    return sorted({p for p in text.split("\0") if p})


def changed_paths(worktree: Path, base: str) -> list[str]:
    """The tracked paths the work tree of `worktree` changes from `base`, committed or not
    (repository-relative, sorted): `git diff --name-only BASE`, one process."""
    text = _raw(
        ["diff", "--name-only", "--no-renames", "--no-ext-diff", "--no-relative", "-z", "--end-of-options", base, "--"],
        worktree,
    )
    return sorted({p for p in text.split("\0") if p})


def merge_tree(repo: Path, ours: str, theirs: str) -> tuple[str | None, list[str]]:
    """What merging `theirs` into `ours` would give, without touching any work tree or
    ref (`git merge-tree --write-tree`, git 2.38+): the merged tree, and the paths that
    conflict (empty on a clean merge). The tree is None when git could not merge at all."""
    proc = subprocess.run(
        ["git", "merge-tree", "--write-tree", "--name-only", "-z", "--no-messages", ours, theirs],
        check=False,
        cwd=repo,
        env=git_env(),
        capture_output=True,
        stdin=subprocess.DEVNULL,
    )
    if proc.returncode not in (0, 1):
        raise GitError(
            f"git merge-tree failed in {repo}: {proc.stderr.decode('utf-8', 'replace').strip() or proc.returncode}",
            "check that git is 2.38 or newer and that both commits exist",
        )
    fields = proc.stdout.decode("utf-8", "surrogateescape").split("\0")
    files = [f for f in fields[1:] if f] if proc.returncode == 1 else []
    return fields[0] or None, list(dict.fromkeys(files))


def zero_context_diff(repo: Path, a: str, b: str, paths: list[str]) -> str:
    """`git diff -U0 a b -- PATHS` with the fixed options: hunk headers to locate changes."""
    opts = [o for o in PATCH_DIFF_OPTS if o not in ("-U3", "--binary")]
    return _raw(
        [*_PATCH_CONFIG, "-c", "core.quotePath=true", "diff", *opts, "-U0", a, b, "--", *_from_top(paths)],
        repo,
    )


def update_ref(repo: Path, ref: str, sha: str, old: str | None = None) -> None:
    """Point `ref` at `sha`; with `old`, only while it is still there ('': while `ref`
    does not exist). A lock a killed git left on `ref` is waited out
    (`clear_stale_ref_lock`), then the update is tried once more."""
    args = ["update-ref", ref, sha, *([] if old is None else [old])]
    try:
        run(args, repo)
    except GitError as exc:
        if "cannot lock ref" not in exc.what or not clear_stale_ref_lock(repo, ref):
            raise
        run(args, repo)


STALE_LOCK_S = 1.0
"""git holds a ref's `.lock` file for the milliseconds of one update; one that stays
this long was left by a git process that died (SIGKILL, power loss)."""


def clear_stale_ref_lock(repo: Path, ref: str, *, wait: float = STALE_LOCK_S) -> bool:
    """Remove `REF.lock` in the common git dir if it is still there after `wait` seconds
    (at once if it is older than that). True when a stale lock was removed."""
    import time

    dirs = git_dirs(repo)
    if dirs is None:
        return False
    lock = dirs[1] / f"{ref}.lock"
    deadline = time.monotonic() + wait
    while True:
        try:
            age = time.time() - lock.stat().st_mtime
        except FileNotFoundError:
            return False
        if age >= wait or time.monotonic() >= deadline:
            try:
                os.unlink(lock)
            except FileNotFoundError:
                return False
            return True
        time.sleep(0.05)


def _raw(args: list[str], repo: Path, *, input: bytes | None = None) -> str:
    """Like `out`, but file names and contents need not be UTF-8."""
    try:
        proc = subprocess.run(
            ["git", *args],
            check=False,
            cwd=repo,
            env=git_env(),
            capture_output=True,
            input=input,
            stdin=subprocess.DEVNULL if input is None else None,
        )
    except ValueError as exc:
        raise _nul_error(args) from exc
    if proc.returncode != 0:
        first = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise GitError(
            f"git failed in {repo}: {first[0] if first else 'exit ' + str(proc.returncode)}", "see git's message above"
        )
    return proc.stdout.decode("utf-8", "surrogateescape")


# ---- worktrees and ancestry (the decisions live in okstra_engine.worktrees) ----

_HEX = frozenset("0123456789abcdef")


def looks_like_sha(text: str | None) -> bool:
    return text is not None and 4 <= len(text) <= 64 and set(text) <= _HEX


def is_full_sha(text: str | None) -> bool:
    """A whole SHA-1 or SHA-256 object name, as git prints them."""
    return text is not None and len(text) in (40, 64) and set(text) <= _HEX


def git_dirs(repo: Path) -> tuple[Path, Path] | None:
    """(this work tree's git dir, the common git dir), or None outside git. They differ
    in a linked worktree."""
    values = rev_parse_paths(repo, "--absolute-git-dir", "--git-common-dir")
    if not values or not all(values):
        return None
    return Path(values[0]).resolve(), (Path(repo) / values[1]).resolve()


def main_work_tree(path: Path) -> Path | None:
    """The root of the main work tree of the repository holding `path` (in one of its
    linked worktrees too); None outside git, or when the repository is bare."""
    dirs = git_dirs(path)
    if dirs is None or dirs[1].name != ".git":
        return None
    return dirs[1].parent


def current_branch(repo: Path) -> str | None:
    """The branch checked out in `repo` (short name), or None when HEAD is detached."""
    proc = run(["symbolic-ref", "--quiet", "--short", "HEAD"], repo, check=False)
    if proc.returncode != 0:
        return None
    return proc.stdout.strip() or None


def worktree_list(repo: Path) -> list[dict[str, str]]:
    """`git worktree list --porcelain -z`: one dict per worktree with the keys git
    prints (`worktree`, `HEAD`, `branch`, `detached`, `bare`, `locked`, `prunable`);
    a flag without a value (`detached`, a `locked` without reason) maps to ''."""
    text = run(["worktree", "list", "--porcelain", "-z"], repo).stdout
    entries: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for field in text.split("\0"):
        if not field:
            if current:
                entries.append(current)
                current = {}
            continue
        key, _, value = field.partition(" ")
        current[key] = value
    if current:
        entries.append(current)
    return entries


def worktree_add(repo: Path, path: Path, branch: str, *, base: str | None) -> None:
    """Check `branch` out in a new worktree at `path`: a new branch at `base`
    (`-b BRANCH PATH BASE`), or the existing branch when `base` is None."""
    if base is None:
        args = ["worktree", "add", "--quiet", "--", str(path), branch]
    else:
        args = ["worktree", "add", "--quiet", "--no-track", "-b", branch, "--", str(path), base]
    run(args, repo)


def worktree_remove(repo: Path, path: Path) -> bool:
    """Remove the worktree at `path` even when dirty or locked; False when git refused."""
    return run(["worktree", "remove", "--force", "--force", "--", str(path)], repo, check=False).returncode == 0


def worktree_prune(repo: Path) -> None:
    """Drop git's records of worktrees whose folder is gone (locked ones are kept)."""
    run(["worktree", "prune"], repo)


def delete_branch(repo: Path, branch: str, expected: str | None = None) -> bool:
    """Delete `refs/heads/BRANCH` (only if it still points at `expected`, when given)."""
    args = ["update-ref", "-d", f"refs/heads/{branch}"]
    if expected:
        args.append(expected)
    return run(args, repo, check=False).returncode == 0


def not_ancestors(repo: Path, commits: list[str], target: str = "HEAD") -> set[str]:
    """Which of `commits` are NOT ancestors of (or equal to) `target`, in one git process.

    `git rev-list C1 C2 … ^TARGET` lists the commits reachable from the Ci but not from
    the target: a Ci is among them exactly when it is not merged. The walk stops where
    the histories meet, so it costs what is unmerged, not the whole history. A commit
    the repository does not have (or a value that is no SHA) counts as not merged; only
    then a second process (`cat-file --batch-check`) finds which ones are missing.
    """
    wanted = list(dict.fromkeys(c for c in commits if c))
    shas = [c for c in wanted if looks_like_sha(c)]
    result = {c for c in wanted if not looks_like_sha(c)}
    if not shas:
        return result
    proc = run(["rev-list", "--stdin"], repo, check=False, input="".join(f"{c}\n" for c in shas) + f"^{target}\n")
    if proc.returncode != 0:
        present = _existing_commits(repo, shas)
        result.update(c for c in shas if c not in present)
        shas = [c for c in shas if c in present]
        if not shas:
            return result
        proc = run(["rev-list", "--stdin"], repo, input="".join(f"{c}\n" for c in shas) + f"^{target}\n")
    listed = set(proc.stdout.split())
    for c in shas:
        if c in listed or (len(c) < 40 and any(sha.startswith(c) for sha in listed)):
            result.add(c)
    return result


def _existing_commits(repo: Path, shas: list[str]) -> set[str]:
    proc = run(["cat-file", "--batch-check=%(objecttype)"], repo, input="".join(f"{c}^{{commit}}\n" for c in shas))
    kinds = proc.stdout.split("\n")
    return {c for c, kind in zip(shas, kinds) if kind == "commit"}


def commit_paths(worktree: Path, paths: list[str], message: str, *, author: tuple[str, str] | None = None) -> str:
    """Stage `paths` and commit them; return the new commit's SHA."""
    run(["add", "--", *paths], worktree)
    identity = ["-c", f"user.name={author[0]}", "-c", f"user.email={author[1]}"] if author else []
    run([*identity, "commit", "--quiet", "--no-verify", "-m", message, "--", *paths], worktree)
    return out(["rev-parse", "HEAD"], worktree)


# ---- previews (the TUI's stage diff) ----


def diff_preview(repo: Path, base: str, head: str, *, max_bytes: int = 2_000_000) -> tuple[str, bool]:
    """`git diff --stat --patch BASE HEAD` for a person to read, and whether it was cut
    at `max_bytes`. Fixed options whatever the user's config: no colour, no external
    diff driver, no rename detection, the whole change even from a subfolder."""
    text = run(
        [
            "diff",
            "--no-color",
            "--no-ext-diff",
            "--no-renames",
            "--no-relative",
            "--stat",
            "--patch",
            "--end-of-options",
            base,
            head,
        ],
        repo,
    ).stdout
    if len(text) <= max_bytes:
        return text, False
    return text[: text.rfind("\n", 0, max_bytes) + 1], True


def dirty_paths(worktree: Path, excludes: Sequence[str] = ()) -> list[str]:
    """Paths `git status` reports as changed or untracked in `worktree`, leaving out
    `.okstra` and the given pathspecs (a project's `cleanGateExcludes`). The clean gate
    of final verification and handoff."""
    specs = [".", ":(exclude).okstra", *(f":(exclude){p}" for p in excludes)]
    text = _raw(["status", "--porcelain=v1", "-z", "--untracked-files=all", "--", *specs], worktree)
    entries = iter(text.split("\0"))
    paths = set()
    for entry in entries:
        if len(entry) < 4:
            continue
        paths.add(entry[3:])
        if entry[0] in "RC":  # a rename or copy is followed by its source as a bare entry
            next(entries, None)
    return sorted(paths)


# ---- merges and resets (the decisions live in okstra_engine.handoff) ----

FALLBACK_IDENTITY = ("okstra", "okstra@localhost")


def config_value(repo: Path, key: str) -> str | None:
    """`git config --get KEY` as `repo` sees it (local, global, system), None when unset."""
    proc = run(["config", "--get", "--end-of-options", key], repo, check=False)
    value = proc.stdout.strip()
    return value if proc.returncode == 0 and value else None


def identity_args(repo: Path) -> list[str]:
    """`-c user.name=okstra -c user.email=okstra@localhost` for whichever of the two the
    repository's config lacks, so a commit okstra makes works on a CI machine with no
    git identity; empty when both are configured."""
    args: list[str] = []
    for key, fallback in zip(("user.name", "user.email"), FALLBACK_IDENTITY):
        if config_value(repo, key) is None:
            args += ["-c", f"{key}={fallback}"]
    return args


_IN_PROGRESS = (
    ("MERGE_HEAD", "a merge"),
    ("rebase-merge", "a rebase"),
    ("rebase-apply", "a rebase (or git am)"),
    ("CHERRY_PICK_HEAD", "a cherry-pick"),
    ("REVERT_HEAD", "a revert"),
)


def operation_in_progress(worktree: Path) -> str | None:
    """The git operation someone left unfinished in this work tree ("a merge", "a
    rebase", …), or None."""
    dirs = git_dirs(worktree)
    if dirs is None:
        return None
    return next((what for name, what in _IN_PROGRESS if (dirs[0] / name).exists()), None)


def merge_no_ff(
    worktree: Path, commit: str, message: list[str], *, identity: Sequence[str] = ()
) -> subprocess.CompletedProcess[str]:
    """`git merge --no-ff COMMIT` in `worktree` with `message` (one paragraph per item).
    Fixed behaviour whatever the user's config: no editor, no autostash, no rerere
    auto-staging, no hooks (okstra's merges are mechanical). The caller reads the exit
    code: nonzero is a conflict (see `unmerged_paths`) or a refusal (git's message)."""
    args = [
        *identity,
        "merge",
        "--no-ff",
        "--no-edit",
        "--no-verify",
        "--no-autostash",
        "--no-rerere-autoupdate",
        "--no-log",
    ]
    for paragraph in message:
        args += ["-m", paragraph]
    return run([*args, "--end-of-options", commit], worktree, check=False)


def unmerged_paths(worktree: Path) -> list[str]:
    """The paths a stopped merge left in conflict, in index order."""
    text = _raw(["ls-files", "--unmerged", "-z"], worktree)
    paths: dict[str, None] = {}
    for entry in text.split("\0"):
        _, tab, path = entry.partition("\t")
        if tab:
            paths.setdefault(path, None)
    return list(paths)


def merge_abort(worktree: Path) -> bool:
    """`git merge --abort` (keeps local changes the merge did not touch); True if it worked."""
    return run(["merge", "--abort"], worktree, check=False).returncode == 0


def blob(repo: Path, commit: str, path: str) -> bytes | None:
    """The bytes of `path` in `commit` (a link's target for a symlink), None when absent."""
    if "\0" in commit or "\0" in path:
        return None
    proc = subprocess.run(
        ["git", "cat-file", "blob", "--end-of-options", f"{commit}:{path}"],
        check=False,
        cwd=repo,
        env=git_env(),
        capture_output=True,
        stdin=subprocess.DEVNULL,
    )
    return proc.stdout if proc.returncode == 0 else None


def restore_path(worktree: Path, path: str) -> bool:
    """Put `path` back as HEAD has it, in the index and the work tree (gone if HEAD lacks it)."""
    if blob(worktree, "HEAD", path) is not None:
        return (
            run(["--literal-pathspecs", "checkout", "--quiet", "HEAD", "--", path], worktree, check=False).returncode
            == 0
        )
    run(["--literal-pathspecs", "rm", "--cached", "--quiet", "--ignore-unmatch", "--", path], worktree, check=False)
    try:
        os.unlink(Path(worktree) / path)
    except FileNotFoundError:
        pass
    except OSError:
        return False
    return True


def reset(worktree: Path, commit: str, mode: str = "keep") -> bool:
    """`git reset --MODE COMMIT` in `worktree` (`keep` and `merge` keep local changes to
    files the reset does not touch, and refuse rather than lose them); True if it worked."""
    if mode not in ("keep", "merge", "hard"):
        raise ValueError(f"unsupported reset mode {mode!r}")
    return run(["reset", "--quiet", f"--{mode}", commit], worktree, check=False).returncode == 0


def failure_message(proc: subprocess.CompletedProcess[str], *, most: int = 3) -> str:
    """The first lines of what a failed git command said (stderr, else stdout), on one line."""
    lines = [l.strip() for l in (proc.stderr.strip() or proc.stdout.strip()).splitlines() if l.strip()]
    return "; ".join(lines[:most]) or f"exit {proc.returncode}"


# ---- a remote okstra shares tasks through (the decisions live in okstra_engine.share) ----


def remote_names(repo: Path) -> list[str]:
    """The remotes the repository's config names (`git remote`)."""
    return run(["remote"], repo).stdout.split()


def remote_call(args: list[str], repo: Path, *, timeout: float) -> subprocess.CompletedProcess[str] | None:
    """A `git fetch`/`git push` to a remote, given at most `timeout` seconds (a remote that
    does not answer must not hold a command up); None when it ran out of time. Never a
    prompt: no terminal, no password asked (`GIT_TERMINAL_PROMPT=0`, ssh in batch mode)."""
    # ssh in batch mode, through the person's own command (their GIT_SSH_COMMAND, else
    # their core.sshCommand: a key or a jump host of their own), else plain ssh
    ssh = os.environ.get("GIT_SSH_COMMAND") or config_value(repo, "core.sshCommand") or "ssh"
    try:
        return run(args, repo, check=False, env={"GIT_SSH_COMMAND": f"{ssh} -o BatchMode=yes"}, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None


def fetch_refs(
    repo: Path, remote: str, refspecs: Sequence[str], *, timeout: float
) -> subprocess.CompletedProcess[str] | None:
    """Fetch `refspecs` from `remote` (pruning the refs they map that the remote dropped),
    no tags, no FETCH_HEAD, no maintenance afterwards."""
    args = ["fetch", "--quiet", "--no-tags", "--prune", "--no-write-fetch-head", "--no-auto-maintenance"]
    return remote_call([*args, "--end-of-options", remote, *refspecs], repo, timeout=timeout)


def push_refs(
    repo: Path, remote: str, updates: Sequence[tuple[str, str | None, str | None]], *, timeout: float
) -> subprocess.CompletedProcess[str] | None:
    """One atomic push of `updates`, each (remote ref, new commit or None to delete it,
    the value the remote must hold now or None for 'must not exist'): all or nothing."""
    args = ["push", "--atomic", "--porcelain", "--no-verify"]
    specs = []
    for ref, new, expect in updates:
        args.append(f"--force-with-lease={ref}:{expect or ''}")
        specs.append(f"{new or ''}:{ref}")
    return remote_call([*args, "--end-of-options", remote, *specs], repo, timeout=timeout)


def write_blob(repo: Path, data: str) -> str:
    return run(["hash-object", "-w", "--stdin"], repo, input=data).stdout.strip()


def write_tree(repo: Path, entries: Sequence[tuple[str, str]]) -> str:
    """A tree of plain files (`name`, blob) or folders (`name/`, tree), in any order."""
    lines = [
        f"040000 tree {sha}\t{name[:-1]}" if name.endswith("/") else f"100644 blob {sha}\t{name}"
        for name, sha in entries
    ]
    return run(["mktree"], repo, input="".join(line + "\n" for line in lines)).stdout.strip()


def write_commit(repo: Path, tree: str, message: str, parent: str | None = None) -> str:
    args = [*identity_args(repo), "commit-tree", tree, *(["-p", parent] if parent else [])]
    return run(args, repo, input=message).stdout.strip()


def list_tree(repo: Path, treeish: str) -> list[tuple[str, str, str, str]]:
    """(mode, type, sha, name) of each entry of a tree, one level."""
    entries = []
    for line in _raw(["ls-tree", "-z", "--end-of-options", treeish], repo).split("\0"):
        meta, tab, name = line.partition("\t")
        if tab:
            mode, kind, sha = meta.split()
            entries.append((mode, kind, sha, name))
    return entries


def refs_with_messages(repo: Path, prefix: str) -> list[tuple[str, str, str]]:
    """(ref, commit, its message) of every ref under `prefix`, in one process."""
    text = _raw(["for-each-ref", "--format=%(refname)%00%(objectname)%00%(contents)%00%00", prefix], repo)
    found = []
    for record in text.split("\0\0\n"):
        parts = record.split("\0")
        if len(parts) >= 3:
            found.append((parts[0].lstrip("\n"), parts[1], parts[2]))
    return found


def delete_ref(repo: Path, ref: str) -> None:
    run(["update-ref", "-d", ref], repo, check=False)


def read_blob(repo: Path, sha: str) -> bytes | None:
    try:
        return _raw(["cat-file", "blob", "--end-of-options", sha], repo).encode("utf-8", "surrogateescape")
    except GitError:
        return None
