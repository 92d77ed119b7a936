"""`okstra reconcile --json` end to end, against one `git cherry T X` over the same range
(the floor), on synthetic histories and on a real one.

Each row times okstra and the floor interleaved in the same run (medians), twice:
- first call: the okstra home's reconcile cache (`CACHE_GLOB`) deleted before each okstra
  run, as on a history reconcile has never seen;
- second call: the cache kept (one untimed run first), as when the board or the next
  prepare asks again about a history already seen: once as a new `okstra reconcile`
  process (Python and the engine start again: about 170 ms of a busy 2-core machine), and
  once in process (`2nd, in process`: `reconcile.suggestions` in the bench's own process,
  the engine imported, which is what the board's refresh and a prepare pay). A reference
  row, `1st, in process`, times a first call there: the engine's own work on a history
  it has not seen, without Python's start.
Before timing, each case checks that okstra finds the expected kind (cold and warm) and
that `git cherry` agrees where it can see the stage.

The synthetic repositories are written with `git fast-import`: a root commit holding 500
other files and the stages' files, each stage a branch off the root, and a target T of N
commits since the root, each changing one other file, with the stages replayed into it.
A real okstra project and task (OKSTRA_HOME in a temp dir) records each stage done at its
branch tip X through the engine, as a lead would, then the task branch moves to T, so
reconcile has to find the rewritten copies. The cases:

- `middle`: a 20-commit stage rebased into the middle of T (5,000 and 50,000 commits);
- `root`: a 20-commit stage replayed near the end of T, where every 10th commit of T also
  changes one of the stage's files (appending far from the stage's lines) beside its
  other file, as mainline work touches a long-lived topic's files: a path filter leaves
  500 candidates, which `git cherry` never diffs in full (it does only for commits
  whose set of paths is a stage commit's);
- `squash`: the 20-commit stage squashed into one commit in the middle of T
  (squash-equivalent; `git cherry` cannot see it and marks every commit "+");
- `stages`: 8 stages of 5 commits each, all rebased into T at spread places; the floor is
  one `git cherry` per stage, summed, timed in the same loop;
- `real` (`--real PATH`, a clone of a public repository; the git project's is a good
  one): the newest of the 400 newest first-parent merges of PATH's HEAD whose second
  parent brings 8–16 non-merge commits and no merge, forked 500–1500 commits of the
  first parent's history before it, whose commits cherry-pick cleanly onto that first
  parent and keep their patch-ids. PATH is cloned (`git clone --shared`, PATH is never written) into the temp
  folder; X = the topic's tip, T = the merge's first parent with the topic cherry-picked
  on top.

    python benchmarks/reconcile_bench.py [--runs N | --quick] [--sizes 5000,50000]
        [--cases middle,root,squash,stages,real] [--real PATH]

Without `--sizes`, `middle` runs at 5,000 and 50,000 commits and the other synthetic cases
at 5,000; with it, every synthetic case asked for runs at every size given.

Goals (issue 21; ratios to the floor, medians):
- real history: first call ≤1.0x, second call ≤0.5x;
- synthetic 5,000, `root`: ≤1.0x, first and second call;
- synthetic 50,000 (`middle`): ≤0.3x, first and second call;
- the other synthetic 5,000 rows (`middle`, `squash`, `stages`) carry the nearest goal,
  the synthetic 5,000 one (≤1.0x): they are easier shapes of the same size;
- any other size (asked with `--sizes`) is a reference row.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    GIT_IDENTITY,
    HEADER,
    bench_args,
    bench_git,
    bench_task,
    interleaved,
    okstra_cmd,
    report,
    time_command,
)

# Where okstra keeps its reconcile cache, relative to OKSTRA_HOME: it must match the
# engine's, or "first call" rows are timed warm (the bench warns when a reconcile writes
# anything else under the okstra home).
CACHE_GLOB = "cache/reconcile*"
OTHER_CACHES = ("cache/ledgers",)  # the ledger state cache: not reconcile's

CASES = ("middle", "root", "squash", "stages", "real")
DEFAULT_SIZES = {"middle": (5_000, 50_000), "root": (5_000,), "squash": (5_000,), "stages": (5_000,)}
GOALS = {  # (case, size) → (first call, second call)
    ("real", None): (1.0, 0.5),
    ("root", 5_000): (1.0, 1.0),
    ("middle", 50_000): (0.3, 0.3),
    ("middle", 5_000): (1.0, 1.0),
    ("squash", 5_000): (1.0, 1.0),
    ("stages", 5_000): (1.0, 1.0),
}
OTHER_FILES = 500
STAGE_FILES = 5
TASK = "bench/reconcile"
REAL_TOPIC = range(8, 17)  # commits the topic brings
REAL_FORK = range(500, 1501)  # commits of the first parent's history since the fork
REAL_TRIES = 400  # first-parent merges looked at, newest first
SKIPPED = "skipped: pass --real PATH to a clone of a public repository, e.g. the git project's"


@dataclass(frozen=True)
class Shape:
    stages: int = 1
    commits: int = 20  # per stage
    at: str = "middle"  # where T replays the stages: middle, end, spread
    squash: bool = False
    shared: bool = False  # T's other commits also change the stage's files
    kind: str = "patch-equivalent"


SHAPES = {
    "middle": Shape(),
    "root": Shape(at="end", shared=True),
    "squash": Shape(squash=True, kind="squash-equivalent"),
    "stages": Shape(stages=8, commits=5, at="spread"),
}
LABELS = {"middle": "mid-rebase", "root": "root-fork", "squash": "squash", "stages": "8 stages"}


class FastImport:
    """Writes a fast-import stream; files are kept whole (a line appended per change)."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.mark = 0
        self.when = 1_600_000_000

    def data(self, text: str) -> None:
        raw = text.encode()
        self.chunks.append(b"data %d\n" % len(raw) + raw + b"\n")

    def commit(self, ref: str, parent: int | None, message: str, files: dict[str, str]) -> int:
        self.mark += 1
        self.when += 60
        self.chunks.append(f"commit {ref}\nmark :{self.mark}\ncommitter Bench <b@b> {self.when} +0000\n".encode())
        self.data(message)
        if parent is not None:
            self.chunks.append(f"from :{parent}\n".encode())
        for path, content in files.items():
            self.chunks.append(f"M 100644 inline {path}\n".encode())
            self.data(content)
        return self.mark

    def stream(self) -> bytes:
        return b"".join(self.chunks) + b"done\n"


def stage_change(files: dict[str, str], stage: int, k: int) -> dict[str, str]:
    """Commit k of a stage: one line of one of its files, a different line each time and
    far enough from the others (and from lines T appends) to keep its patch-id when
    replayed."""
    path = f"stage{stage}/part{k % STAGE_FILES}.txt"
    n = 3 + 2 * (k // STAGE_FILES)
    return {path: files[path].replace(f" line {n}\n", f" line {n} changed by the stage\n", 1)}


def build_synthetic(repo: Path, size: int, shape: Shape) -> tuple[list[str], str]:
    """Returns ([X of each stage], T)."""
    bench_git(repo.parent, "init", "-q", "-b", "main", str(repo))
    fi = FastImport()
    others = {f"src/mod{i:03d}.txt": f"module {i}\n" for i in range(OTHER_FILES)}
    first = {
        f"stage{s}/part{i}.txt": "".join(f"part {i} line {n}\n" for n in range(1, 41))
        for s in range(1, shape.stages + 1)
        for i in range(STAGE_FILES)
    }
    root = fi.commit("refs/heads/main", None, "root", {**others, **first})
    for s in range(1, shape.stages + 1):
        files, parent = dict(first), root
        for k in range(shape.commits):
            change = stage_change(files, s, k)
            files.update(change)
            parent = fi.commit(f"refs/heads/stage{s}", parent, f"stage {s} commit {k}", change)
    replayed = shape.stages * (1 if shape.squash else shape.commits)
    body = size - replayed
    places = {
        "middle": [body // 2],
        "end": [body - body // 20],
        "spread": [body * s // (shape.stages + 1) for s in range(1, shape.stages + 1)],
    }[shape.at]
    files, parent, work = dict(first), root, 0
    for s in range(1, shape.stages + 1):
        place = places[min(s, len(places)) - 1]
        while work < place:
            parent = fi.commit("refs/heads/main", parent, f"work {work}", other_change(others, files, work, shape))
            work += 1
        changes = {}
        for k in range(shape.commits):
            change = stage_change(files, s, k)
            files.update(change)
            if shape.squash:
                changes.update(change)
            else:
                parent = fi.commit("refs/heads/main", parent, f"stage {s} commit {k} (rebased)", change)
        if shape.squash:
            parent = fi.commit("refs/heads/main", parent, f"stage {s} (squashed)", changes)
    while work < body:
        parent = fi.commit("refs/heads/main", parent, f"work {work}", other_change(others, files, work, shape))
        work += 1
    subprocess.run(["git", "fast-import", "--quiet"], cwd=repo, input=fi.stream(), check=True)
    bench_git(repo, "reset", "-q", "--hard", "main")
    xs = [bench_git(repo, "rev-parse", f"stage{s}") for s in range(1, shape.stages + 1)]
    return xs, bench_git(repo, "rev-parse", "main")


def other_change(others: dict[str, str], files: dict[str, str], i: int, shape: Shape) -> dict[str, str]:
    """Commit i of T's other work: one other file, and with `shape.shared` every 10th
    commit also one of the stage's files (a path set no stage commit has, so `git cherry`
    never diffs it in full)."""
    path = f"src/mod{i % OTHER_FILES:03d}.txt"
    others[path] += f"change {i}\n"
    change = {path: others[path]}
    if shape.shared and i % 10 == 5:
        path = f"stage1/part{i // 10 % STAGE_FILES}.txt"
        files[path] += f"mainline change {i}\n"
        change[path] = files[path]
    return change


def build_real(path: Path, repo: Path) -> tuple[str, str, str]:
    """Clones `path` into `repo` and makes the real case there: returns (X, T, what)."""
    bench_git(repo.parent, "clone", "--shared", "-q", "--no-checkout", str(path), str(repo))
    merges = bench_git(repo, "rev-list", "--first-parent", "--merges", "--parents", "-n", str(REAL_TRIES), "HEAD")
    for line in merges.splitlines():
        merge, *parents = line.split()
        if len(parents) != 2:
            continue
        mainline, tip = parents
        topic = bench_git(repo, "rev-list", "--reverse", "--parents", tip, f"^{mainline}").splitlines()
        if len(topic) not in REAL_TOPIC or any(len(c.split()) != 2 for c in topic):
            continue
        base = topic[0].split()[1]
        if int(bench_git(repo, "rev-list", "--count", mainline, f"^{base}")) not in REAL_FORK:
            continue
        target = cherry_picked(repo, mainline, base, tip)
        if target is None:
            continue
        if bench_git(repo, "cherry", target, tip).split().count("-") != len(topic):
            print(f"reconcile_bench: {merge[:10]}'s topic changes its patch-ids when replayed: next", file=sys.stderr)
            continue
        bench_git(repo, "branch", "-f", "stage", tip)
        bench_git(repo, "branch", "-f", "target", target)
        fork = bench_git(repo, "rev-list", "--count", target, f"^{base}")
        return tip, target, f"{len(topic)} commits, {int(fork):,} since fork"
    raise SystemExit(f"reconcile_bench: no merge of {path}'s HEAD has a topic fit for the real case")


def cherry_picked(repo: Path, onto: str, base: str, tip: str) -> str | None:
    """`onto` with base..tip cherry-picked on top, or None when a pick conflicts."""
    bench_git(repo, "checkout", "-q", "--detach", "-f", onto)
    picked = subprocess.run(
        ["git", "cherry-pick", "--allow-empty", f"{base}..{tip}"],
        cwd=repo,
        env={**os.environ, **GIT_IDENTITY},
        capture_output=True,
    )
    if picked.returncode != 0:
        subprocess.run(["git", "cherry-pick", "--abort"], cwd=repo, capture_output=True)
        return None
    return bench_git(repo, "rev-parse", "HEAD")


def make_task(repo: Path, xs: list[str], t: str):
    """The task of the stages, each recorded done at its X while the task branch stood at
    its base, then the task branch moved to T. Returns the task."""
    from okstra_engine.record import record
    from okstra_engine.tasks import task_branch

    task = bench_task(repo, TASK, "reconcile bench", {n: [] for n in range(1, len(xs) + 1)})
    for n, x in enumerate(xs, 1):
        bench_git(repo, "branch", "-f", task_branch(task), bench_git(repo, "merge-base", x, t))
        record(task, n, "done", commit=x)
    bench_git(repo, "branch", "-f", task_branch(task), t)
    return task


def in_process(task, home: Path | None = None) -> float:
    """One `reconcile.suggestions` in this process, as the board's refresh and a prepare
    ask it: the engine already imported, the history already seen (with `home`: not
    seen, its reconcile cache deleted and nothing of it kept in memory)."""
    from okstra_engine import target_index
    from okstra_engine.reconcile import suggestions

    if home is not None:
        forget(home)
        target_index._STORES.clear()
    start = time.perf_counter()
    suggestions(task)
    return time.perf_counter() - start


def home_files(home: Path) -> set[Path]:
    return {p for p in home.rglob("*") if p.is_file()}


def not_reconciles(home: Path, files: set[Path]) -> list[str]:
    """The files neither under CACHE_GLOB nor a known other cache."""
    patterns = [str(home / g) for g in (CACHE_GLOB, *OTHER_CACHES)]
    return sorted(
        str(f.relative_to(home)) for f in files if not any(p.match(g) for p in (f, *f.parents) for g in patterns)
    )


def forget(home: Path) -> None:
    for path in home.glob(CACHE_GLOB):
        shutil.rmtree(path) if path.is_dir() else path.unlink()


def reconcile_kinds(okstra: list[str]) -> dict[int, str]:
    out = subprocess.run(okstra, check=True, capture_output=True, text=True).stdout
    return {s["stage"]: s["kind"] for s in json.loads(out)["suggestions"]}


def run_case(
    name: str, label: str, task, home: Path, xs: list[str], t: str, kind: str, goals: tuple, runs: int
) -> list[str]:
    repo = task.project.root
    okstra = [*okstra_cmd(), "--project", str(repo), "reconcile", TASK, "--json"]
    floors = [["git", "-C", str(repo), "cherry", t, x] for x in xs]
    expected = {n: kind for n in range(1, len(xs) + 1)}
    before = home_files(home)
    forget(home)
    cold = reconcile_kinds(okstra)
    # a cache CACHE_GLOB misses would make the first-call rows warm: say so
    if unknown := not_reconciles(home, (home_files(home) - before) | home_files(home / "cache")):
        print(f"reconcile_bench: {name}: is one of {unknown} a reconcile cache? fix CACHE_GLOB", file=sys.stderr)
    warm = reconcile_kinds(okstra)  # also the untimed run before the second calls
    if not cold == warm == expected:
        raise SystemExit(f"reconcile_bench: {name}: expected {expected}, found {cold} (first call), {warm} (second)")
    mark = "+" if kind == "squash-equivalent" else "-"  # git cannot see a squash
    for floor in floors:
        marks = subprocess.run(floor, check=True, capture_output=True, text=True).stdout.split()[::2]
        if set(marks) != {mark}:
            raise SystemExit(f"reconcile_bench: {name}: expected git cherry to mark every commit {mark}: {marks}")

    def first() -> float:
        forget(home)
        return time_command(okstra)

    # in this order, the second calls follow a first call in process: the index file they
    # read is the one this process wrote and holds (a file a new process made in its
    # place would have this process read it again, which the board does not pay)
    cases: dict[str, Callable[[], float]] = {
        "first": first,
        "floor": lambda: sum(time_command(f) for f in floors),
        "board_first": lambda: in_process(task, home),
        "second": lambda: time_command(okstra),
        "board": lambda: in_process(task),
    }
    medians = interleaved(cases, runs)
    return [
        report(f"reconcile {label}, {call}", medians[key], medians["floor"], goal)
        for call, key, goal in (
            ("1st call", "first", goals[0]),
            ("1st, in process", "board_first", None),
            ("2nd call", "second", goals[1]),
            ("2nd, in process", "board", goals[1]),
        )
    ]


def in_fresh_home(tmp: Path) -> Path:
    home = tmp / "home"
    os.environ["OKSTRA_HOME"] = str(home)
    os.environ["OKSTRA_CONFIG"] = str(tmp / "config.toml")
    return home


def main() -> int:
    args = bench_args(
        11,
        sizes={"default": None, "help": "synthetic sizes, e.g. 5000,50000 (default: see the module docstring)"},
        cases={"default": ",".join(CASES), "help": f"a subset of {','.join(CASES)}"},
        real={"default": None, "type": Path, "metavar": "PATH", "help": "a clone of a public repository"},
    )
    asked = args.cases.split(",")
    if unknown := [c for c in asked if c not in CASES]:
        raise SystemExit(f"reconcile_bench: no case {', '.join(unknown)}; the cases are {', '.join(CASES)}")
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",")] if args.sizes else None
    # said before minutes of synthetic cases, not after
    if args.real is not None and not (args.real / ".git").exists() and not (args.real / "HEAD").exists():
        raise SystemExit(f"reconcile_bench: --real {args.real} is not a git repository")
    lines = []
    for name in (c for c in CASES if c in asked and c != "real"):
        shape = SHAPES[name]
        for size in sizes or DEFAULT_SIZES[name]:
            with tempfile.TemporaryDirectory() as tmp_name:
                tmp = Path(tmp_name)
                home = in_fresh_home(tmp)
                repo = tmp / "repo"
                xs, t = build_synthetic(repo, size, shape)
                task = make_task(repo, xs, t)
                label = f"{size:,} {LABELS[name]}"
                goals = GOALS.get((name, size), (None, None))
                lines += run_case(name, label, task, home, xs, t, shape.kind, goals, args.runs)
    if "real" in asked:
        if args.real is None:
            lines.append(f"{'reconcile real history':<44} {SKIPPED}")
        else:
            with tempfile.TemporaryDirectory() as tmp_name:
                tmp = Path(tmp_name)
                home = in_fresh_home(tmp)
                repo = tmp / "repo"
                x, t, what = build_real(args.real.resolve(), repo)
                task = make_task(repo, [x], t)
                print(f"reconcile_bench: real history: {x[:10]}, {what}", file=sys.stderr)
                lines += run_case(
                    "real", "real history", task, home, [x], t, "patch-equivalent", GOALS["real", None], args.runs
                )
    print(HEADER)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
