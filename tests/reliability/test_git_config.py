"""A person's git setup must not change what okstra does: prepare, record, reconcile and
handoff end to end, in a repository whose user config turns on `diff.noprefix`, colours
everywhere, a hooks path whose every hook fails, and more, with `GIT_DIR` (and friends)
pointing at another repository in the environment.

The same story runs with a plain config too, and both must end the same: the same stages
done and merged, the same reconcile suggestion, the same patch-ids recorded.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.reliability.harness import cli
from tests.reliability.invariants import World, check

TASK = "auth/login"
HOOKS = (
    "pre-commit",
    "prepare-commit-msg",
    "commit-msg",
    "post-commit",
    "pre-merge-commit",
    "post-merge",
    "post-checkout",
    "reference-transaction",
    "pre-rebase",
    "post-rewrite",
    "pre-auto-gc",
    "pre-push",
)
HOSTILE = """
[diff]
\tnoprefix = true
\tmnemonicPrefix = true
\trenames = copies
\talgorithm = patience
\tcontext = 9
\tinterHunkContext = 5
\trelative = true
[color]
\tui = always
\tdiff = always
\tstatus = always
\tbranch = always
[core]
\thooksPath = {hooks}
\tquotePath = false
\tabbrev = 5
[merge]
\tff = only
\tlog = true
[status]
\tshowUntrackedFiles = no
\tbranch = true
[format]
\tpretty = oneline
[log]
\tdecorate = full
\tfollow = true
[commit]
\tverbose = true
[advice]
\tdetachedHead = true
[worktree]
\tguessRemote = true
"""


def clean_git(repo: Path, *args: str) -> str:
    """The test's own git: no user config, no hooks, no inherited GIT_* variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_CONFIG_NOSYSTEM="1",
        GIT_AUTHOR_NAME="T",
        GIT_AUTHOR_EMAIL="t@example.com",
        GIT_COMMITTER_NAME="T",
        GIT_COMMITTER_EMAIL="t@example.com",
    )
    proc = subprocess.run(
        ["git", "-c", "core.hooksPath=/dev/null", *args], cwd=repo, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, f"git {args}: {proc.stderr}"
    return proc.stdout.strip()


def commit(repo: Path, files: dict[str, str], message: str) -> str:
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
        clean_git(repo, "add", "--", name)
    clean_git(repo, "commit", "-q", "-m", message)
    return clean_git(repo, "rev-parse", "HEAD")


def ok(*args: str) -> str:
    outcome = cli(*args)
    assert outcome.rc == 0, f"okstra {' '.join(args)} -> {outcome.rc}: {outcome.err}"
    assert "\x1b[" not in outcome.out, "colour codes leaked into okstra's output"
    return outcome.out


def story(repo: Path) -> dict:
    """init → plan → prepare 1 → done → handoff A → prepare 2, 3 → 2 done, then its
    commit rewritten (cherry-picked into the task worktree) → reconcile finds it →
    --apply → 3 done → handoff B. Returns what happened, for comparison."""
    p = ["--project", str(repo)]
    ok("init", str(repo), "--qa-command", "true")
    ok(*p, "task", "new", TASK, "--title", "Login")
    plan = repo.parent / "plan.md"
    plan.write_text(
        "# Plan\n\n## Stage Map\n| Stage | Title | Depends on | Group |\n|---|---|---|---|\n"
        "| 1 | Schema | - | A |\n| 2 | Importer | 1 | B |\n| 3 | Exporter | 1 | B |\n"
    )
    ok(*p, "plan", "import", TASK, str(plan), "--approve")
    first = json.loads(ok(*p, "prepare", TASK, "--type", "implementation", "--json"))
    assert first["stage"] == 1 and first["worktree"]["status"] == "created"
    wt1 = Path(first["worktree"]["path"])
    assert clean_git(wt1, "symbolic-ref", "--short", "HEAD") == "okstra/feature/auth/login-s1"
    s1 = commit(wt1, {"schema.py": "S = 1\n"}, "stage 1")
    ok(*p, "record", TASK, "--stage", "1", "--status", "done", "--commit", s1)
    a = json.loads(ok(*p, "handoff", TASK, "--group", "A", "--merge", "--json"))
    assert a["merged"] == [1]
    task_wt = Path(a["task_worktree"])
    two = json.loads(ok(*p, "prepare", TASK, "--type", "implementation", "--json"))
    three = json.loads(ok(*p, "prepare", TASK, "--type", "implementation", "--json"))
    assert (two["stage"], three["stage"]) == (2, 3) and three["concurrentRun"]["activeStages"] == [2]
    s2 = commit(Path(two["worktree"]["path"]), {"importer.py": "def load():\n    return 2\n"}, "stage 2")
    ok(*p, "record", TASK, "--stage", "2", "--status", "done", "--commit", s2)
    done2 = [json.loads(line) for line in (Path(first["plan_run"]) / "consumers.jsonl").read_text().splitlines()][-1]
    # someone cherry-picks stage 2 into the task worktree by hand: okstra must find it
    clean_git(task_wt, "cherry-pick", s2)
    picked = clean_git(task_wt, "rev-parse", "HEAD")
    found = json.loads(ok(*p, "reconcile", TASK, "--json"))["suggestions"]
    assert [(s["stage"], s["recorded"], s["suggested"], s["kind"]) for s in found] == [
        (2, s2, picked, "patch-equivalent")
    ]
    applied = json.loads(ok(*p, "reconcile", TASK, "--apply", "--json"))["applied"]
    assert [(s["stage"], s["suggested"]) for s in applied] == [(2, picked)]
    s3 = commit(Path(three["worktree"]["path"]), {"exporter.py": "def dump():\n    return 3\n"}, "stage 3")
    ok(*p, "record", TASK, "--stage", "3", "--status", "done", "--commit", s3)
    b = json.loads(ok(*p, "handoff", TASK, "--group", "B", "--merge", "--json"))
    assert b["merged"] == [3] and b["already_merged"] == [2]
    status = json.loads(ok(*p, "status", TASK, "--json"))
    assert [s["state"] for s in status["stages"]] == ["done", "done", "done"]
    assert clean_git(task_wt, "status", "--porcelain") == ""
    report = check(World(repo, TASK), settled=True)
    assert report.violations == []
    return {
        "patch_ids": done2.get("patch_ids"),
        "change_patch_id": done2.get("change_patch_id"),
        "paths": done2.get("paths"),
        "merged": (a["merged"], b["merged"], b["already_merged"]),
        "kinds": [s["kind"] for s in found],
    }


def _repo(tmp_path: Path, name: str) -> Path:
    repo = tmp_path / name
    repo.mkdir()
    clean_git(repo, "init", "-q", "-b", "main")
    commit(repo, {"README.md": "hello\n"}, "initial")
    return repo


def _hostile_home(home: Path, tmp_path: Path, *, config: bool, env_vars: bool, monkeypatch) -> None:
    hooks = tmp_path / "failing-hooks"
    hooks.mkdir()
    for name in HOOKS:
        hook = hooks / name
        hook.write_text("#!/bin/sh\necho 'hook says no' >&2\nexit 1\n")
        hook.chmod(0o755)
    if config:
        with (home / ".gitconfig").open("a") as handle:
            handle.write(HOSTILE.format(hooks=hooks))
    if env_vars:
        other = _repo(tmp_path, "elsewhere")
        monkeypatch.setenv("GIT_DIR", str(other / ".git"))
        monkeypatch.setenv("GIT_WORK_TREE", str(other))
        monkeypatch.setenv("GIT_INDEX_FILE", str(other / ".git" / "index"))
        monkeypatch.setenv("GIT_CONFIG_PARAMETERS", "'core.hooksPath'='/nonexistent'")
        monkeypatch.setenv("GIT_OBJECT_DIRECTORY", str(other / ".git" / "objects"))


@pytest.mark.parametrize("setup", ["hostile-config", "hostile-environment", "both"])
def test_a_hostile_git_setup_changes_nothing(isolated_env: Path, tmp_path: Path, monkeypatch, setup: str) -> None:
    plain = story(_repo(tmp_path, "plain"))
    _hostile_home(
        isolated_env,
        tmp_path,
        config=setup != "hostile-environment",
        env_vars=setup != "hostile-config",
        monkeypatch=monkeypatch,
    )
    hostile = story(_repo(tmp_path, "hostile"))
    assert hostile == plain


# ---------------------------------------------------------------------------- programs the config names


def _logging_program(path: Path, log: Path, *, exit_code: int = 0, body: str = "") -> str:
    path.write_text(f'#!/bin/sh\necho "$0 $*" >> "{log}"\n{body}exit {exit_code}\n')
    path.chmod(0o755)
    return str(path)


def test_no_fsmonitor_or_signing_program_runs_in_okstras_git(task, tmp_path: Path) -> None:
    """`core.fsmonitor` names a program every status and merge runs; `gpg.program` signs
    merge commits when `commit.gpgSign` is on. okstra's git runs neither (a signing
    prompt cannot run without a terminal): a handoff still merges."""
    from okstra_engine import handoff as ho
    from okstra_engine.prepare import PrepareOptions, prepare
    from okstra_engine.record import record
    from okstra_engine.worktrees import stage_target
    from tests.support import git

    log = tmp_path / "ran.log"
    repo = task.project.root
    git(repo, "config", "core.fsmonitor", _logging_program(tmp_path / "fsmonitor", log))
    git(repo, "config", "gpg.program", _logging_program(tmp_path / "gpg", log, exit_code=1))
    git(repo, "config", "commit.gpgSign", "true")
    prepare(task, PrepareOptions("implementation", stage="1"))
    wt = stage_target(task, 1).path
    (wt / "schema.py").write_text("x = 1\n")
    agent = ("-c", "core.fsmonitor=false", "-c", "commit.gpgSign=false")  # the agent's own git
    git(wt, *agent, "add", "schema.py")
    git(wt, *agent, "commit", "-q", "-m", "stage 1")
    sha = git(wt, *agent, "rev-parse", "HEAD")
    record(task, 1, "done", commit=sha)
    result = ho.run_handoff(task, merge=True)
    assert result.merged == [1]
    assert not log.exists() or log.read_text() == ""


def test_a_smudge_filter_the_person_configured_still_runs_in_worktrees(task, tmp_path: Path) -> None:
    """Filters make the files' content (git-lfs is one): a stage worktree without them
    would hold pointer files. Only the person's config can name their program."""
    from okstra_engine.prepare import PrepareOptions, prepare
    from okstra_engine.worktrees import stage_target
    from tests.support import commit, git

    repo = task.project.root
    log = tmp_path / "filter.log"
    git(repo, "config", "filter.upper.smudge", _logging_program(tmp_path / "smudge", log, body="tr a-z A-Z\n"))
    git(repo, "config", "filter.upper.clean", "cat")
    commit(repo, {".gitattributes": "*.up filter=upper\n", "note.up": "hello\n"}, "a filtered file")
    prepare(task, PrepareOptions("implementation", stage="1"))
    assert (stage_target(task, 1).path / "note.up").read_text() == "HELLO\n"
    assert log.read_text()


def test_no_housekeeping_runs_in_okstras_git(task, tmp_path: Path) -> None:
    """A merge or commit may start git's housekeeping (`gc --auto`, `maintenance run
    --auto`) when loose objects pile up; killed with okstra, it leaves
    `objects/maintenance.lock` behind. okstra's git starts none: the person's own git does
    it on its next command."""
    from okstra_engine import handoff as ho
    from okstra_engine.prepare import PrepareOptions, prepare
    from okstra_engine.record import record
    from okstra_engine.worktrees import stage_target
    from tests.support import git

    repo = task.project.root
    for n in range(2):  # two packs, where one is the most this repository's config allows
        (repo / f"pack{n}.txt").write_text(f"{n}\n")
        git(repo, "add", f"pack{n}.txt")
        git(repo, "-c", "gc.auto=0", "commit", "-q", "-m", f"pack {n}")
        git(repo, "repack", "-q")
    git(repo, "config", "gc.autoPackLimit", "1")
    git(repo, "config", "gc.autoDetach", "false")
    prepare(task, PrepareOptions("implementation", stage="1"))
    wt = stage_target(task, 1).path
    (wt / "schema.py").write_text("x = 1\n")
    git(wt, "-c", "gc.auto=0", "add", "schema.py")
    git(wt, "-c", "gc.auto=0", "commit", "-q", "-m", "stage 1")
    record(task, 1, "done", commit=git(wt, "rev-parse", "HEAD"))
    packs = sorted((repo / ".git" / "objects" / "pack").glob("*.pack"))
    assert ho.run_handoff(task, merge=True).merged == [1]
    assert sorted((repo / ".git" / "objects" / "pack").glob("*.pack")) == packs  # nothing repacked
