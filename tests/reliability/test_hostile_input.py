"""Hostile input: hypothesis writes garbage into every file okstra reads, and into its
command line, and okstra must answer with a clear error or a correct result — never a
traceback, never exit 1 (that is for okstra's own bugs) — and write nothing when it
refuses.

The world (one per test, reused by its examples): task auth/login of PLAN_4 with stage 1
done and handed off (ledger rows with fingerprints, carry sidecar, handoffs.jsonl, the
report), stage 2 in flight (its run dir), a QA waiver, a leftover team and a quarantined
one, the registry. Each example damages one file, runs the commands that read it, checks,
and puts every file of `.okstra` back.

Files: plan.md, stage-map.json, consumers.jsonl, carry sidecars, run manifest (launch),
project.json, the settings TOML, the QA manifest, handoffs.jsonl, the handoff journal,
task.json, the project list, a trash manifest, the registry, the demo marker.
`OKSTRA_FUZZ_EXAMPLES` sets the examples per file (default 25).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from contextlib import closing, suppress
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.reliability.harness import Outcome, cli

EXAMPLES = int(os.environ.get("OKSTRA_FUZZ_EXAMPLES", "25"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
TASK = "auth/login"

pytestmark = pytest.mark.timeout(600)


# ---------------------------------------------------------------------------- strategies

NASTY = st.sampled_from(
    [
        0,
        -1,
        1,
        2,
        3,
        999_999_999,
        10**12,
        2**63,
        -(2**63),
        10**400,
        1.5,
        -0.0,
        1e308,
        True,
        False,
        None,
        "",
        " ",
        "\x00",
        "a\x00b",
        "../../etc",
        "/",
        "-x",
        "--output=/tmp/x",
        "HEAD",
        "HEAD~1",
        "main",
        "0" * 40,
        "f" * 40,
        "abcd",
        "é" * 3,
        "\u202e",
        "\n",
        "a\nb",
        "okstra-auth-login",
        "okstra-auth-login-s2",
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-01:00",
        "2025-13-45T99:99:99Z",
        "nan",
        "inf",
        "reserved",
        "started",
        "done",
        "released",
        "auth-login",
        "login-stage-3",
        [],
        {},
        [1, 2],
        {"a": 1},
    ]
)
LEAF = NASTY | st.integers() | st.text(max_size=12) | st.floats(allow_nan=False)
JSON = st.recursive(
    LEAF,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)


def _set_path(doc, path, value):
    node = doc
    for key in path[:-1]:
        node = node[key]
    if isinstance(node, dict) or (isinstance(node, list) and isinstance(path[-1], int) and path[-1] < len(node)):
        node[path[-1]] = value


def _paths(doc, prefix=()):
    yield prefix
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            yield from _paths(value, (*prefix, i))


@st.composite
def mutated_json(draw, valid: object) -> bytes:
    """A valid document with some values replaced, keys dropped or added, then maybe cut
    short or padded with junk."""
    doc = json.loads(json.dumps(valid))
    paths = [p for p in _paths(doc) if p]
    for _ in range(draw(st.integers(0, 3))):
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        with suppress(KeyError, IndexError, TypeError):
            _set_path(doc, path, draw(JSON))
        paths = [p for p in _paths(doc) if p]
    if isinstance(doc, dict) and draw(st.booleans()):
        keys = list(doc)
        if keys:
            doc.pop(draw(st.sampled_from(keys)), None)
    text = json.dumps(doc, ensure_ascii=draw(st.booleans()))
    how = draw(st.sampled_from(["whole", "whole", "whole", "cut", "junk", "bytes"]))
    if how == "cut" and text:
        text = text[: draw(st.integers(0, len(text) - 1))]
    elif how == "junk":
        text += draw(st.text(max_size=10))
    data = text.encode("utf-8", "surrogatepass")
    if how == "bytes":
        data = draw(st.binary(max_size=64)) + data
    return data


def documents(valid: object) -> st.SearchStrategy[bytes]:
    return st.one_of(
        mutated_json(valid),
        st.binary(max_size=200),
        JSON.map(lambda v: json.dumps(v).encode()),
        st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
    )


def jsonl(valid_rows: list[dict]) -> st.SearchStrategy[bytes]:
    """Lines: the valid rows, some mutated, some junk, maybe a torn last line."""
    line = st.one_of(
        st.sampled_from([json.dumps(r).encode() for r in valid_rows]) if valid_rows else st.just(b"{}"),
        mutated_json(valid_rows[0] if valid_rows else {}),
        st.binary(max_size=40),
    )
    return st.lists(line, max_size=8).map(lambda lines: b"\n".join(l.replace(b"\n", b" ") for l in lines)) | st.binary(
        max_size=100
    )


# ---------------------------------------------------------------------------- the world


class World:
    def __init__(self, task) -> None:
        from okstra_engine import handoff as ho
        from okstra_engine.carry import CarrySidecar, write_carry
        from okstra_engine.conformance import set_waiver
        from okstra_engine.locations import okstra_home
        from okstra_engine.plans import plan_run_root
        from okstra_engine.prepare import PrepareOptions, prepare
        from okstra_engine.quarantine import move_team
        from okstra_engine.record import record
        from okstra_engine.worktrees import stage_target
        from tests.reliability.harness import make_team
        from tests.support import commit

        self.task = task
        self.repo = task.project.root
        prepare(task, PrepareOptions("implementation"))
        sha = commit(stage_target(task, 1).path, {"schema.py": "S = 1\n"}, "stage 1")
        record(task, 1, "done", commit=sha)
        self.plan = plan_run_root(task).dir
        write_carry(self.plan, CarrySidecar(stage=1, head_commit=sha, impl_task_key=task.key, summary="schema"))
        ho.run_handoff(task, "A", merge=True)
        self.run2 = Path(prepare(task, PrepareOptions("implementation", stage="2")).manifest.run_dir)
        set_waiver(task.dir, "login-stage-3", "flaky")
        make_team("okstra-auth-login-s9", 1)
        make_team("okstra-auth-login-s8", 2)
        self.stamp = move_team("okstra-auth-login-s8").stamp
        self.home = okstra_home()
        self.done = sha
        self.saved = self._files()

    # -- snapshots: every file okstra keeps, by content; the registry by its rows

    def _files(self) -> dict[str, bytes]:
        from okstra_engine.locations import agent_home

        found = {}
        for root in (self.repo / ".okstra", self.home, agent_home()):
            for dirpath, _, filenames in os.walk(root):
                for name in filenames:
                    path = Path(dirpath) / name
                    rel = str(path)
                    if (
                        "/locks/" in rel
                        or "/worktrees/" in rel
                        or name.startswith("registry.sqlite3")
                        or path.is_symlink()
                    ):
                        continue
                    with suppress(OSError):
                        found[rel] = path.read_bytes()
        return found

    def snapshot(self) -> tuple:
        from okstra_engine.registry import registry_path

        rows = []
        try:
            with closing(sqlite3.connect(registry_path())) as conn:
                rows = sorted(map(repr, conn.execute("SELECT * FROM worktrees").fetchall()))
        except sqlite3.DatabaseError:
            rows = ["unreadable"]
        refs = subprocess.run(["git", "for-each-ref"], cwd=self.repo, capture_output=True, text=True).stdout
        trees = subprocess.run(
            ["git", "worktree", "list", "--porcelain"], cwd=self.repo, capture_output=True, text=True
        ).stdout
        return self._files(), rows, refs, trees

    def put_back(self) -> None:
        """Every file of `.okstra`, okstra home (but its worktrees: git's) and the agent home as it was."""
        now = self._files()
        for rel in now.keys() - self.saved.keys():
            Path(rel).unlink()
        for rel, data in self.saved.items():
            if now.get(rel) != data:
                Path(rel).parent.mkdir(parents=True, exist_ok=True)
                Path(rel).write_bytes(data)

    def check(self, outcomes: list[Outcome], before: tuple, *, damaged: Path, read_only: bool) -> None:
        after = self.snapshot()
        for o in outcomes:
            assert o.rc in (0, 2), f"exit {o.rc}: {o.err[-1500:]}"
            assert "Traceback" not in o.err and "unexpected error" not in o.err, o.err[-1500:]
            if o.rc == 2:
                assert o.err.strip(), "a refusal must say why"
        refused = all(o.rc == 2 for o in outcomes)
        if read_only or refused:
            b_files, a_files = dict(before[0]), dict(after[0])
            b_files.pop(str(damaged), None)
            a_files.pop(str(damaged), None)
            changed = sorted(k for k in b_files.keys() | a_files.keys() if b_files.get(k) != a_files.get(k))
            assert changed == [], f"written although {'read-only' if read_only else 'refused'}: {changed}"
            assert before[1:] == after[1:], "the registry, refs or worktrees changed"


@pytest.fixture
def world(task) -> World:
    return World(task)


def _damage(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _reads(world: World, *extra: tuple[str, ...]) -> list[Outcome]:
    p = ["--project", str(world.repo)]
    runs = [
        (*p, "status", TASK, "--json"),
        (*p, "prepare", TASK, "--type", "implementation", "--render-only", "--json"),
        *extra,
    ]
    return [cli(*args) for args in runs]


def _fuzz(world: World, path: Path, data: bytes, *extra, read_only: bool = True) -> None:
    before = world.snapshot()
    _damage(path, data)
    try:
        outcomes = _reads(world, *extra)
        world.check(outcomes, before, damaged=path, read_only=read_only)
    finally:
        world.put_back()


# ---------------------------------------------------------------------------- the task's files

PLAN_VALID = {
    "stages": [
        {"stage": 1, "title": "Schema", "depends_on": [], "group": "A"},
        {"stage": 2, "title": "Importer", "depends_on": [1], "group": "B"},
    ]
}


@FUZZ
@given(
    data=st.one_of(
        st.text(max_size=300).map(str.encode),
        st.lists(
            st.sampled_from(
                [
                    "---",
                    "approved: true",
                    "## Stage Map",
                    "| Stage | Title | Depends on | Group |",
                    "|---|---|---|---|",
                    "| 1 | Schema | - | A |",
                    "| 2 | Importer | 1 | B |",
                    "| 2 | Dup | 2 | B |",
                    "| 0 | Zero | - | |",
                    "| 99999999999999 | Big | - | |",
                    "| x | Bad | 1,2 | |",
                    "| 3 | Cycle | 4 | |",
                    "| 4 | Cycle | 3 | |",
                    "```",
                    "### Stage Map",
                    "| 5 | \x00 | - | \u202e |",
                    "",
                ]
            ),
            max_size=14,
        ).map(lambda lines: "\n".join(lines).encode()),
        st.binary(max_size=100),
    )
)
def test_plan_md(world, data) -> None:
    _fuzz(world, world.plan / "plan.md", data)


@FUZZ
@given(data=documents(PLAN_VALID))
def test_stage_map_json(world, data) -> None:
    _fuzz(world, world.plan / "stage-map.json", data)


@FUZZ
@given(data=st.data())
def test_ledger(world, data) -> None:
    path = world.plan / "consumers.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    p = ["--project", str(world.repo)]
    _fuzz(
        world,
        path,
        data.draw(jsonl(rows)),
        (*p, "reconcile", TASK, "--json"),
        (*p, "handoff", TASK, "--json"),
        read_only=False,
    )


@FUZZ
@given(data=st.data())
def test_carry_sidecars(world, data) -> None:
    valid = json.loads((world.plan / "carry" / "stage-1.json").read_text())
    name = data.draw(st.sampled_from(["stage-1.json", "stage-3.json", "stage-99.json"]))
    p = ["--project", str(world.repo)]
    _fuzz(
        world,
        world.plan / "carry" / name,
        data.draw(documents(valid)),
        (*p, "handoff", TASK, "--json"),
        read_only=False,
    )


@FUZZ
@given(data=st.data())
def test_project_json(world, data) -> None:
    path = world.repo / ".okstra" / "project.json"
    _fuzz(world, path, data.draw(documents(json.loads(path.read_text()))), ("quarantine", "list", "--json"))


@FUZZ
@given(data=st.data())
def test_task_json(world, data) -> None:
    path = world.task.dir / "task.json"
    _fuzz(
        world,
        path,
        data.draw(documents(json.loads(path.read_text()))),
        ("--project", str(world.repo), "reconcile", TASK),
    )


@FUZZ
@given(
    data=st.one_of(
        st.text(max_size=200).map(str.encode),
        st.lists(
            st.sampled_from(
                [
                    "stale_ttl_hours = 24",
                    "stale_ttl_hours = 0",
                    "stale_ttl_hours = -1",
                    "stale_ttl_hours = inf",
                    "stale_ttl_hours = nan",
                    'stale_ttl_hours = "x"',
                    "stale_ttl_hours = 1e308",
                    'agent_command = ["x"]',
                    "agent_command = []",
                    "agent_command = 3",
                    "[table]",
                    "x = ",
                    "=",
                    "\x00",
                    "stale_ttl_hours = 24\nstale_ttl_hours = 1",
                ]
            ),
            max_size=5,
        ).map(lambda lines: "\n".join(lines).encode()),
        st.binary(max_size=60),
    )
)
def test_settings_toml(world, data) -> None:
    from okstra_engine.config import settings as okstra_settings
    from okstra_engine.locations import config_file

    okstra_settings.cache_clear()
    try:
        _fuzz(world, config_file(), data, ("quarantine", "list", "--json"))
    finally:
        config_file().unlink(missing_ok=True)
        okstra_settings.cache_clear()


@FUZZ
@given(data=st.data())
def test_qa_manifest(world, data) -> None:
    """Read by a real prepare (it clears stale waivers and sets new ones), so a refusal must
    leave no worktree, branch, registry row, run or reservation behind."""
    from okstra_engine.conformance import manifest_path
    from okstra_engine.record import record

    path = manifest_path(world.task.dir)
    bad = data.draw(documents(json.loads(path.read_text())))
    before = world.snapshot()
    _damage(path, bad)
    p = ["--project", str(world.repo)]
    try:
        outcome = cli(
            *p, "prepare", TASK, "--type", "implementation", "--stage", "3", "--qa-waiver", "login-stage-3=again"
        )
        world.check([outcome], before, damaged=path, read_only=False)
    finally:
        if outcome.rc == 0:
            record(world.task, 3, "released")
        world.put_back()


@FUZZ
@given(data=st.data())
def test_handoffs_jsonl_and_journal(world, data) -> None:
    from okstra_engine.handoff import JOURNAL_NAME

    rows = [json.loads(line) for line in (world.plan / "handoffs.jsonl").read_text().splitlines()]
    journal = {
        "task": TASK,
        "group": "A",
        "task_worktree": str(world.repo),
        "head_before": world.done,
        "commits": [world.done],
    }
    which = data.draw(st.sampled_from(["handoffs", "journal"]))
    path = world.plan / ("handoffs.jsonl" if which == "handoffs" else JOURNAL_NAME)
    bad = data.draw(jsonl(rows) if which == "handoffs" else documents(journal))
    p = ["--project", str(world.repo)]
    _fuzz(
        world,
        path,
        bad,
        (*p, "handoff", TASK, "--json"),
        (*p, "handoff", TASK, "--group", "B", "--merge"),
        read_only=False,
    )


@FUZZ
@given(data=st.data())
def test_run_manifest_launch(world, data, monkeypatch) -> None:
    """`okstra launch` reads a run's manifest; exec and chdir are stubbed so a manifest
    that gets that far ends the command as if the agent ran."""
    from okstra_engine import launch

    class Execed(BaseException):
        pass

    def fake_exec(*_a):
        raise Execed()

    monkeypatch.setattr(launch.os, "execvp", fake_exec)
    monkeypatch.setattr(launch.os, "chdir", lambda _p: None)
    monkeypatch.setattr(launch.shutil, "which", lambda _c: "/bin/true")
    path = world.run2 / "manifest.json"
    bad = data.draw(documents(json.loads(path.read_text())))
    before = world.snapshot()
    _damage(path, bad)
    try:
        try:
            outcome = cli("launch", str(world.run2))
        except Execed:
            outcome = Outcome(0, "", "")
        world.check([outcome], before, damaged=path, read_only=False)
    finally:
        world.put_back()


# ---------------------------------------------------------------------------- okstra home


@FUZZ
@given(data=st.data())
def test_project_list(world, data) -> None:
    from okstra_engine.locations import projects_file

    path = projects_file()
    _fuzz(
        world,
        path,
        data.draw(documents(json.loads(path.read_text()))),
        ("quarantine", "list", "--json"),
        ("init", str(world.repo)),
        read_only=False,
    )


@FUZZ
@given(data=st.data())
def test_trash_manifest(world, data) -> None:
    from okstra_engine.quarantine import trash_root

    path = trash_root() / world.stamp / "manifest.json"
    bad = data.draw(documents(json.loads(path.read_text())))
    _fuzz(world, path, bad, ("quarantine", "list", "--json"), ("quarantine", "restore", world.stamp), read_only=False)
    # a restore that went through moved the team back: quarantine it again for the next example
    from okstra_engine.locations import agent_home

    if (agent_home() / "teams" / "okstra-auth-login-s8").exists():
        from okstra_engine.quarantine import move_team

        world.stamp = move_team("okstra-auth-login-s8").stamp
        world.saved = world._files()


@FUZZ
@given(data=st.binary(max_size=300) | st.sampled_from([b"", b"SQLite format 3\x00" + b"\x00" * 100]))
def test_registry_file(world, data) -> None:
    from okstra_engine.registry import registry_path

    db = registry_path()
    saved = {p: p.read_bytes() for p in db.parent.glob(db.name + "*")}
    try:
        for p in saved:
            p.unlink()
        db.write_bytes(data)
        outcomes = _reads(world)
        for o in outcomes:
            assert o.rc in (0, 2) and "Traceback" not in o.err and "unexpected error" not in o.err, o.err[-1500:]
    finally:
        for p in db.parent.glob(db.name + "*"):
            p.unlink()
        for p, content in saved.items():
            p.write_bytes(content)
        world.put_back()


@settings(
    max_examples=max(5, EXAMPLES // 3),
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_demo_marker(tmp_path_factory, data) -> None:
    """`okstra demo --dir DIR` reopens the demo its marker describes (a real process: it
    changes its own environment)."""
    directory = tmp_path_factory.mktemp("demo")
    valid = {
        "dir": str(directory),
        "project_root": str(directory / "shop"),
        "task": "demo/checkout",
        "okstra_home": str(directory / "h"),
        "config_file": str(directory / "c.toml"),
        "agent_home": str(directory / "a"),
        "env": {"OKSTRA_HOME": str(directory / "h")},
        "built_at": "2025-03-14T09:30:00Z",
        "commits": {},
        "run_ids": {},
    }
    (directory / "okstra-demo.json").write_bytes(data.draw(documents(valid)))
    exe = Path(sys.executable).with_name("okstra")
    proc = subprocess.run(
        [str(exe), "demo", "--dir", str(directory), "--no-tui"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode in (0, 2), proc.stderr[-1500:]
    assert "Traceback" not in proc.stderr and "unexpected error" not in proc.stderr, proc.stderr[-1500:]


# ---------------------------------------------------------------------------- the command line

WORDS = st.sampled_from(
    [
        "status",
        "prepare",
        "record",
        "reconcile",
        "handoff",
        "init",
        "task",
        "new",
        "plan",
        "import",
        "approve",
        "quarantine",
        "list",
        "move",
        "restore",
        "launch",
        TASK,
        "auth/LOGIN",
        "a/b/c",
        "../x",
        "-",
        "--",
        "--json",
        "--stage",
        "auto",
        "0",
        "-1",
        "3",
        "²",
        "٣",
        "99999999999999999999",
        "--status",
        "started",
        "done",
        "released",
        "--commit",
        "HEAD",
        "HEAD~9",
        "--run",
        "--type",
        "implementation",
        "planning",
        "final-verification",
        "release-handoff",
        "improvement-discovery",
        "bogus",
        "--base-ref",
        "--workers",
        "claude,codex",
        "claude,,x",
        "--qa-waiver",
        "login-stage-3=x",
        "=",
        "k=",
        "--render-only",
        "--apply",
        "--merge",
        "--group",
        "A",
        "B",
        "Z",
        "--yes",
        "okstra-auth-login-s9",
        "okstra-../x",
        "20250101T000000Z",
        "--title",
        "t",
        "--category",
        "Bad Cat",
        "--id",
        "ID!",
        "--qa-command",
        "true",
        "--project",
        "/nonexistent",
        "~nobody-okstra",
        "--debug",
        "--lang",
        "xx",
        "é",
        "\u202e",
        " ",
        "",
    ]
)


@settings(
    max_examples=EXAMPLES * 6,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    args=st.lists(WORDS | st.text(max_size=8).filter(lambda t: "\x00" not in t), min_size=1, max_size=7),
    command=st.sampled_from(
        ["status", "prepare", "record", "reconcile", "handoff", "init", "task", "plan", "quarantine", "launch", "usage"]
    ),
)
@pytest.mark.slow
def test_command_line(world, args, command) -> None:
    """Any words after a command: exit 0 or 2 (argparse's usage errors are 2 too), never a
    traceback; a refusal writes nothing."""
    before = world.snapshot()
    try:
        outcome = cli("--project", str(world.repo), command, *args)
        if outcome.rc == 0 and command == "launch":
            pytest.fail("launch went through on random words")
        world.check([outcome], before, damaged=Path("/nonexistent"), read_only=False)
    finally:
        world.put_back()


# ---------------------------------------------------------------------------- found by the fuzzers
#
# Each of these once ended in a traceback (exit 1); kept as plain regression cases.


def _ledger_with(world: World, *rows: dict) -> None:
    path = world.plan / "consumers.jsonl"
    path.write_bytes(path.read_bytes() + b"".join(json.dumps(r).encode() + b"\n" for r in rows))


@pytest.mark.parametrize(
    "case",
    [
        "unicode-digit-stage",
        "tilde-user-project",
        "nul-done-commit",
        "nul-carry-commit",
        "edge-of-calendar-since",
        "nul-project-id",
        "traversing-project-id",
        "nul-trash-agent-home",
        "manifest-worktree-not-an-object",
    ],
)
def test_hostile_values_found_by_the_fuzzers(world, case, monkeypatch) -> None:
    p = ["--project", str(world.repo)]
    want_rc, outcomes = 2, []
    try:
        if case == "unicode-digit-stage":
            outcomes = [cli(*p, "prepare", TASK, "--type", "implementation", "--stage", s) for s in ("²", "٣", "³")]
        elif case == "tilde-user-project":
            outcomes = [
                cli("--project", "~no-such-user-okstra/x", "status", TASK),
                cli(*p, "plan", "import", TASK, "~no-such-user-okstra/plan.md"),
                cli("launch", "~no-such-user-okstra/run"),
            ]
        elif case == "nul-done-commit":
            _ledger_with(world, {"ts": "2025-01-01T00:00:00Z", "stage": 3, "status": "done", "head_commit": "ab\x00cd"})
            outcomes = [cli(*p, "reconcile", TASK), cli(*p, "handoff", TASK, "--group", "B")]
        elif case == "nul-carry-commit":
            (world.plan / "carry" / "stage-3.json").write_text(
                json.dumps({"stage": 3, "head_commit": "ab\x00cdef", "impl_task_key": "auth-login"})
            )
            outcomes = [cli(*p, "prepare", TASK, "--type", "implementation"), cli(*p, "handoff", TASK, "--group", "B")]
        elif case == "edge-of-calendar-since":
            # the run's first row is dated at the calendar's edge, its latest is fresh
            _ledger_with(
                world,
                {"ts": "0001-01-01T00:00:00+01:00", "stage": 3, "status": "reserved", "run_id": "r"},
                {"ts": "2999-01-01T00:00:00Z", "stage": 3, "status": "started", "run_id": "r"},
            )
            outcomes = [cli(*p, "prepare", TASK, "--type", "implementation", "--stage", "3"), cli(*p, "status", TASK)]
            assert outcomes[1].rc == 0
            outcomes = outcomes[:1]
        elif case in ("nul-project-id", "traversing-project-id"):
            path = world.repo / ".okstra" / "project.json"
            doc = json.loads(path.read_text())
            doc["projectId"] = "a\x00b" if case == "nul-project-id" else "../../elsewhere"
            path.write_text(json.dumps(doc))
            outcomes = [
                cli(*p, "status", TASK),
                cli(*p, "handoff", TASK),
                cli(*p, "record", TASK, "--stage", "3", "--status", "started"),
            ]
            assert all("field 'projectId'" in o.err for o in outcomes)
        elif case == "nul-trash-agent-home":
            from okstra_engine.quarantine import trash_root

            path = trash_root() / world.stamp / "manifest.json"
            doc = json.loads(path.read_text())
            doc["agent_home"] = "/x\x00y"
            for item in doc["items"]:
                item["source"] = f"/x\x00y/{item['kind']}/{doc['team']}"
            path.write_text(json.dumps(doc))
            outcomes = [cli("quarantine", "restore", world.stamp)]
        elif case == "manifest-worktree-not-an-object":
            path = world.run2 / "manifest.json"
            doc = json.loads(path.read_text())
            doc["worktree"], doc["project_root"] = "here", 0
            path.write_text(json.dumps(doc))
            outcomes = [cli("launch", str(world.run2))]
            assert "manifest.json" in outcomes[0].err
        for o in outcomes:
            assert o.rc == want_rc and "Traceback" not in o.err and "unexpected error" not in o.err, (case, o.err)
    finally:
        world.put_back()


# ---------------------------------------------------------------------------- the demo folder
#
# `okstra demo --dir DIR` reopens a folder somebody else may have written.


@pytest.fixture(scope="module")
def built_demo(tmp_path_factory) -> Path:
    from okstra_engine.demo import build_demo

    directory = tmp_path_factory.mktemp("demo with space")
    home = directory / "okstra-home"
    saved = os.environ.get("OKSTRA_HOME")
    os.environ["OKSTRA_HOME"] = str(home)
    try:
        build_demo(directory)
    finally:
        if saved is None:
            os.environ.pop("OKSTRA_HOME", None)
        else:
            os.environ["OKSTRA_HOME"] = saved
    return directory


def _reopen(directory: Path, marker: dict) -> subprocess.CompletedProcess[str]:
    (directory / "okstra-demo.json").write_text(json.dumps(marker))
    exe = Path(sys.executable).with_name("okstra")
    env = {k: v for k, v in os.environ.items() if k not in ("OKSTRA_HOME", "OKSTRA_CONFIG", "CLAUDE_CONFIG_DIR")}
    return subprocess.run(
        [str(exe), "demo", "--dir", str(directory), "--no-tui"], capture_output=True, text=True, timeout=60, env=env
    )


def test_a_demo_marker_cannot_set_path_or_other_variables(built_demo, tmp_path) -> None:
    marker = json.loads((built_demo / "okstra-demo.json").read_text())
    original = dict(marker)
    try:
        marker["env"] = {**marker["env"], "PATH": str(tmp_path), "PYTHONPATH": str(tmp_path), "GIT_DIR": "/"}
        proc = _reopen(built_demo, marker)
        assert proc.returncode == 0, proc.stderr
        assert "PATH" not in proc.stdout and "GIT_DIR" not in proc.stdout
        # what it prints can be pasted into a shell: the folder has a space in its name
        assert f"export OKSTRA_HOME='{built_demo / 'okstra-home'}'" in proc.stdout
        assert f"okstra demo --dir '{built_demo}'" in proc.stdout
    finally:
        (built_demo / "okstra-demo.json").write_text(json.dumps(original))


@pytest.mark.parametrize(
    "key, value",
    [
        ("CLAUDE_CONFIG_DIR", "/tmp/okstra-elsewhere"),
        ("OKSTRA_CONFIG", "relative.toml"),
        ("OKSTRA_HOME", "/"),
        ("CLAUDE_CONFIG_DIR", "{dir}/agent-home/../../x"),
    ],
)
def test_a_demo_marker_cannot_point_okstra_outside_its_folder(built_demo, key, value) -> None:
    marker = json.loads((built_demo / "okstra-demo.json").read_text())
    original = dict(marker)
    try:
        marker["env"] = {**marker["env"], key: value.format(dir=built_demo)}
        proc = _reopen(built_demo, marker)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert key in proc.stderr and "Traceback" not in proc.stderr
        assert "export" not in proc.stdout
    finally:
        (built_demo / "okstra-demo.json").write_text(json.dumps(original))


def test_a_demo_folder_whose_agent_home_is_a_symlink_out_is_refused(built_demo, tmp_path) -> None:
    agent_home = built_demo / "agent-home"
    aside = built_demo / "agent-home.real"
    agent_home.rename(aside)
    agent_home.symlink_to(tmp_path)
    try:
        proc = _reopen(built_demo, json.loads((built_demo / "okstra-demo.json").read_text()))
        assert proc.returncode == 2 and "CLAUDE_CONFIG_DIR" in proc.stderr, proc.stdout + proc.stderr
    finally:
        agent_home.unlink()
        aside.rename(agent_home)


def test_a_demo_marker_cannot_move_the_project_or_the_task(built_demo, tmp_path) -> None:
    marker = json.loads((built_demo / "okstra-demo.json").read_text())
    original = dict(marker)
    try:
        proc = _reopen(built_demo, {**marker, "project_root": str(tmp_path), "task": "x/y", "dir": "/"})
        assert proc.returncode == 0, proc.stderr
        assert f"project {built_demo / 'shop'}, task demo/checkout" in proc.stdout
    finally:
        (built_demo / "okstra-demo.json").write_text(json.dumps(original))


# ---------------------------------------------------------------------------- agent-written documents


@pytest.mark.parametrize("render_only", [False, True])
def test_a_qa_manifest_okstra_cannot_read_stops_a_preview_like_a_prepare(task, render_only: bool) -> None:
    from okstra_engine.conformance import manifest_path
    from tests.support import run_cli

    path = manifest_path(task.dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"entries": "all of them"}')
    args = ["prepare", str(task.ref), "--type", "implementation", "--stage", "1"]
    code, _out, err = run_cli(*args, *(["--render-only"] if render_only else []), "--project", str(task.project.root))
    assert code == 2 and str(path) in err and "entries" in err and "Traceback" not in err


def test_a_refused_prepare_makes_no_worktree_or_branch(task) -> None:
    """Stage 2 waits for stage 1: the refusal comes before anything is made."""
    from okstra_engine.registry import task_worktrees
    from okstra_engine.worktrees import task_slot
    from tests.support import git, run_cli

    repo = task.project.root
    before = (git(repo, "for-each-ref", "--format=%(refname)"), git(repo, "worktree", "list", "--porcelain"))
    code, _out, err = run_cli(
        "prepare", str(task.ref), "--type", "implementation", "--stage", "2", "--project", str(repo)
    )
    assert code == 2 and "blocked by stage(s) 1" in err
    assert (git(repo, "for-each-ref", "--format=%(refname)"), git(repo, "worktree", "list", "--porcelain")) == before
    assert task_worktrees(task_slot(task)) == {}


# ---------------------------------------------------------------------------- environments


def _okstra(*args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("okstra")
    return subprocess.run(
        [str(exe), *args], cwd=cwd, capture_output=True, text=True, timeout=60, env={**os.environ, **env}
    )


def _clear(proc: subprocess.CompletedProcess[str], *said: str) -> None:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and "unexpected error" not in proc.stderr, proc.stderr
    for words in said:
        assert words in proc.stderr, proc.stderr


def test_a_file_for_the_okstra_home_or_a_folder_for_the_settings(task, tmp_path) -> None:
    root = str(task.project.root)
    (tmp_path / "home-file").write_text("")
    (tmp_path / "config-dir").mkdir()
    _clear(_okstra("--project", root, "status", "auth/login", OKSTRA_HOME=str(tmp_path / "home-file")), "OKSTRA_HOME")
    _clear(
        _okstra("--project", root, "status", "auth/login", OKSTRA_CONFIG=str(tmp_path / "config-dir")), "OKSTRA_CONFIG"
    )


def test_a_file_where_okstra_keeps_its_tasks(repo) -> None:
    from okstra_engine.projects import init_project

    project, _ = init_project(repo)
    project.tasks_dir().parent.mkdir(parents=True, exist_ok=True)
    project.tasks_dir().write_text("")
    _clear(_okstra("--project", str(repo), "task", "new", "x/y", "--title", "t"), "Not a directory", "move it aside")


def test_a_terminal_that_cannot_show_a_name(task) -> None:
    """PYTHONIOENCODING=ascii: the title is escaped in the table; JSON stays JSON."""
    from okstra_engine.documents import save_doc

    task.doc.title = "Tüsk ✓ 日本"
    save_doc(task.dir / "task.json", task.doc)
    root = str(task.project.root)
    table = _okstra("--project", root, "status", "auth/login", PYTHONIOENCODING="ascii")
    assert table.returncode == 0 and "T\\xfcsk" in table.stdout, table.stderr
    doc = _okstra("--project", root, "status", "auth/login", "--json", PYTHONIOENCODING="ascii")
    assert doc.returncode == 0 and json.loads(doc.stdout)["title"] == "Tüsk ✓ 日本"


@pytest.mark.parametrize("part", ["{prompt:>99999999999}", "{prompt!r}", "{prompt.__class__}", "{0}", "{prompt"])
def test_an_agent_command_placeholder_with_a_format_spec(task, part) -> None:
    from okstra_engine.config import settings
    from okstra_engine.errors import OkstraError
    from okstra_engine.launch import plan_launch
    from okstra_engine.prepare import PrepareOptions, prepare

    run = Path(prepare(task, PrepareOptions("implementation", stage="1")).manifest.run_dir)
    Path(os.environ["OKSTRA_CONFIG"]).write_text(f"agent_command = {json.dumps(['echo', part])}\n")
    settings.cache_clear()
    with pytest.raises(OkstraError, match="placeholder"):
        plan_launch(run)


def test_a_relative_agent_home_is_pinned_at_start(tmp_path) -> None:
    """A team quarantined with CLAUDE_CONFIG_DIR=agent (relative) is listed and restored
    from any folder: the trash says where it came from in full."""
    first, second = tmp_path / "here", tmp_path / "there"
    first.mkdir()
    second.mkdir()
    team = first / "agent" / "teams" / "okstra-auth-login-s2"
    team.mkdir(parents=True)
    (team / "config.json").write_text("{}")
    moved = _okstra("quarantine", "move", "okstra-auth-login-s2", "--yes", cwd=first, CLAUDE_CONFIG_DIR="agent")
    assert moved.returncode == 0, moved.stderr
    assert not team.exists()
    stamp = next(p.name for p in (Path(os.environ["OKSTRA_HOME"]) / "trash").iterdir())
    listed = _okstra("quarantine", "list", cwd=second, CLAUDE_CONFIG_DIR=str(first / "agent"))
    assert listed.returncode == 0 and stamp in listed.stdout, listed.stdout + listed.stderr
    restored = _okstra("quarantine", "restore", stamp, cwd=second, CLAUDE_CONFIG_DIR=str(first / "agent"))
    assert restored.returncode == 0, restored.stderr
    assert (team / "config.json").read_text() == "{}"


# ---------------------------------------------------------------------------- symlinks
#
# A link under `.okstra/` was not made by okstra: a repository can commit one, an agent
# can make one. Writing through it would write wherever it points.


def _tree_of(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def test_a_committed_okstra_symlink_is_refused_and_nothing_is_written(tmp_path) -> None:
    from tests.support import commit, git, make_repo

    outside = tmp_path / "outside"
    outside.mkdir()
    repo = make_repo(tmp_path / "repo")
    (repo / ".okstra").symlink_to(outside)
    git(repo, "add", ".okstra")
    commit(repo, {"x.txt": "x\n"}, "a link named .okstra")
    for args in (
        ["init", str(repo)],
        ["--project", str(repo), "task", "new", "a/b", "--title", "t"],
        ["--project", str(repo), "status", "a/b"],
    ):
        _clear(_okstra(*args), ".okstra", "symbolic link")
    assert list(outside.iterdir()) == []


def test_an_okstra_folder_that_is_a_file_is_refused(repo) -> None:
    (repo / ".okstra").write_text("")
    _clear(_okstra("init", str(repo)), "not a folder")


@pytest.mark.parametrize("link", ["tasks", "tasks/auth", "tasks/auth/login/runs", "tasks/auth/login/qa"])
def test_a_link_inside_okstra_is_not_followed(task, tmp_path, link: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    okstra = task.project.root / ".okstra"
    real = okstra / link
    real.mkdir(exist_ok=True)  # qa/ is made on the first waiver
    aside = real.with_name(real.name + ".real")
    real.rename(aside)
    real.symlink_to(outside)
    try:
        root = str(task.project.root)
        _clear(
            _okstra(
                "--project", root, "prepare", "auth/login", "--type", "implementation", "--qa-waiver", "login-stage-1=x"
            ),
            "symbolic link",
        )
        assert list(outside.iterdir()) == []
    finally:
        real.unlink()
        aside.rename(real)


def test_a_ledger_that_is_a_link_is_not_appended_through(task, tmp_path) -> None:
    from okstra_engine.ledger import LEDGER_NAME
    from okstra_engine.plans import plan_run_root

    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    ledger = plan_run_root(task).dir / LEDGER_NAME
    ledger.unlink(missing_ok=True)
    ledger.symlink_to(victim)
    root = str(task.project.root)
    _clear(_okstra("--project", root, "prepare", "auth/login", "--type", "implementation"), "symbolic link")
    _clear(_okstra("--project", root, "record", "auth/login", "--stage", "1", "--status", "started"), "symbolic link")
    assert victim.read_text() == "precious\n"


def test_a_carry_folder_that_is_a_link_is_not_written_through(task, tmp_path) -> None:
    from okstra_engine.carry import CarrySidecar, write_carry
    from okstra_engine.errors import OkstraError
    from okstra_engine.plans import plan_run_root

    outside = tmp_path / "outside"
    outside.mkdir()
    plan = plan_run_root(task).dir
    (plan / "carry").symlink_to(outside)
    with pytest.raises(OkstraError, match="symbolic link"):
        write_carry(plan, CarrySidecar(stage=1, head_commit="a" * 40, impl_task_key=task.key))
    assert list(outside.iterdir()) == []


# ---------------------------------------------------------------------------- paths git prints


@pytest.mark.parametrize("name", ["new\nline", "carriage\rreturn", "trailing space ", "tab\there"])
def test_a_project_path_with_odd_characters_is_still_a_git_project(tmp_path, plan_file, name: str) -> None:
    """rev-parse has no -z: its path answers are read byte for byte, never stripped."""
    from okstra_engine import git as okgit
    from okstra_engine.plans import import_plan
    from okstra_engine.prepare import PrepareOptions, prepare, repo_layout
    from okstra_engine.projects import init_project
    from okstra_engine.record import record
    from okstra_engine.slugs import TaskRef
    from okstra_engine.status import task_status
    from okstra_engine.tasks import new_task
    from tests.support import commit, make_repo

    repo = make_repo(tmp_path / name / "sub")
    assert okgit.toplevel(repo) == repo and repo_layout(repo) == "git"
    assert okgit.git_dirs(repo) == (repo / ".git", repo / ".git")
    project, _ = init_project(repo, qa_commands=["true"])
    assert "/.okstra/" in (repo / ".git" / "info" / "exclude").read_text()
    task = new_task(project, TaskRef("auth", "login"), title="odd")
    import_plan(task, plan_file, approve=True)
    prepared = prepare(task, PrepareOptions("implementation", stage="1"))
    worktree = Path(prepared.manifest.worktree.path)
    assert prepared.manifest.worktree.branch and worktree != repo  # a real worktree, not "non-git"
    record(task, 1, "done", commit=commit(worktree, {"s.py": "s = 1\n"}, "stage 1"))
    assert task_status(task).stages[0].state in ("done", "not-merged")


# ---------------------------------------------------------------------------- text is text
#
# Titles, groups, folder names and commit messages are text a person or an agent wrote:
# markup, control characters, right-to-left and wide characters reach the screen as
# literal text, never as markup or terminal control, and never as a traceback.

ODD_TEXT = st.one_of(
    st.sampled_from(
        [
            "fix [/] bug",
            "[/]oops",
            "[bold red]loud[/]",
            "[link=file:///etc/passwd]click[/link]",
            "[wip] proj",
            "x[/]y",
            "\x1b[31mred\x1b[0m",
            "carriage\rreturn",
            "new\nline",
            "rtl \u202egnp.exe",
            "שלום עולם",
            "مرحبا",
            "日本語のタイトル",
            "😀 wide 🎉",
            "{prompt} %s \\",
            "e\u0301 combining",
        ]
    ),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=16),
)


def _odd_world(root: Path, title: str, stage_title: str, group: str):
    from okstra_engine.plans import import_plan
    from okstra_engine.projects import init_project
    from okstra_engine.slugs import TaskRef
    from okstra_engine.tasks import new_task
    from tests.support import make_repo

    project, _ = init_project(make_repo(root), qa_commands=["true"])
    task = new_task(project, TaskRef("odd", "text"), title=title)
    stage_map = root.parent / "stage-map.json"
    stage_map.write_text(
        json.dumps(
            {
                "stages": [
                    {"stage": 1, "title": stage_title, "depends_on": [], "group": group},
                    {"stage": 2, "title": title, "depends_on": [1], "group": "B"},
                ]
            }
        )
    )
    import_plan(task, stage_map, approve=True)
    return task


@settings(max_examples=max(8, EXAMPLES // 2), deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(title=ODD_TEXT, stage_title=ODD_TEXT, group=ODD_TEXT)
def test_odd_text_reaches_the_status_table_and_json_as_it_is(tmp_path_factory, title, stage_title, group) -> None:
    from okstra_engine.shown import shown

    if not title.strip() or not stage_title.strip() or not group.strip():
        return  # refused as empty, elsewhere
    from okstra_engine.errors import OkstraError

    base = tmp_path_factory.mktemp("odd")
    try:
        task = _odd_world(base / "[wip] proj", title, stage_title, group)
    except OkstraError:
        return  # a name the plan refuses, with a clear message (a group on two lines, say)
    table = _okstra("--project", str(task.project.root), "status", "odd/text", COLUMNS="400")
    assert table.returncode == 0, table.stderr
    assert "Traceback" not in table.stderr
    flat = table.stdout.replace("\n", "")
    for text in (title, stage_title, group):
        assert shown(text).strip() in flat, (text, table.stdout)
    assert "\x1b" not in table.stdout  # no colour to a pipe, and no escape from a title
    doc = _okstra("--project", str(task.project.root), "status", "odd/text", "--json")
    assert doc.returncode == 0, doc.stderr
    parsed = json.loads(doc.stdout)
    assert parsed["title"] == title.strip()
    assert [s["title"] for s in parsed["stages"]] == [stage_title.strip(), title.strip()] or [
        s["title"] for s in parsed["stages"]
    ] == [stage_title, title]
