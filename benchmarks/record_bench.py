"""`okstra record --status done` (commit resolved, pinned, fingerprinted with stable
patch-ids) against the git commands it must run, replayed bare in one shell (the floor).

    python benchmarks/record_bench.py [--runs N] [--quick]

The floor's command lines are the ones okstra itself ran, captured from a probe run, so
the ratio is exactly okstra's own cost over git's.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import HEADER, bench_args, bench_git, bench_repo, bench_task, interleaved, okstra_cmd, report, time_command

GOAL = 2.0
CAPTURE = r"""
import json, os, subprocess, sys, threading
log = open(os.environ["OKSTRA_BENCH_GITLOG"], "a")
lock = threading.Lock()
real_init = subprocess.Popen.__init__
def init(self, args, *a, **kw):
    if isinstance(args, (list, tuple)) and args and args[0] == "git":
        with lock:
            log.write(json.dumps({"args": list(args), "cwd": str(kw.get("cwd") or os.getcwd()), "thread": threading.get_ident()}) + "\n")
            log.flush()
    real_init(self, args, *a, **kw)
subprocess.Popen.__init__ = init
from okstra_engine.cli import main
sys.exit(main(sys.argv[1:]))
"""


def build(root: Path) -> tuple[Path, list[str]]:
    """A task whose 20 stages each have a 5-commit change on their own stage branch."""
    from okstra_engine.ledger import LEDGER_NAME, append_row, new_row
    from okstra_engine.plans import plan_run_root
    from okstra_engine.tasks import stage_branch

    repo = root / "repo"
    bench_repo(repo)
    for i in range(200):
        (repo / f"f{i % 50}.txt").write_text(f"line {i}\n" * 20)
        bench_git(repo, "add", "-A")
        bench_git(repo, "commit", "-q", "-m", f"history {i}")
    base = bench_git(repo, "rev-parse", "HEAD")
    task = bench_task(repo, "bench/record", "record bench", {n: [] for n in range(1, 21)})
    ledger = plan_run_root(task).dir / LEDGER_NAME
    heads = []
    for n in range(1, 21):
        # on the stage's own branch, as okstra makes it: record checks the commit is there
        bench_git(repo, "checkout", "-q", "-b", stage_branch(task, n), base)
        for c in range(5):
            (repo / f"stage{n}_{c}.py").write_text(f"x = {c}\n")
            bench_git(repo, "add", "-A")
            bench_git(repo, "commit", "-q", "-m", f"stage {n} part {c}")
        heads.append(bench_git(repo, "rev-parse", "HEAD"))
        append_row(ledger, new_row(n, "reserved", run_id=f"r{n}", base_ref=base))
    bench_git(repo, "checkout", "-q", "main")
    return repo, heads


def main() -> int:
    args = bench_args(15)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["OKSTRA_HOME"] = str(Path(tmp) / "home")
        repo, heads = build(Path(tmp))
        # a probe run records the git commands of one `record done`
        log = Path(tmp) / "git.jsonl"
        probe = subprocess.run(
            [
                sys.executable,
                "-c",
                CAPTURE,
                "--project",
                str(repo),
                "record",
                "bench/record",
                "--stage",
                "1",
                "--status",
                "done",
                "--commit",
                heads[0],
            ],
            env={**os.environ, "OKSTRA_BENCH_GITLOG": str(log)},
            capture_output=True,
            text=True,
        )
        assert probe.returncode == 0, probe.stderr
        calls = [json.loads(line) for line in log.read_text().splitlines()]
        # the floor: those command lines one after another in one shell, pipes kept as
        # pipes (okstra overlaps the independent ones; a script would not)
        script = []
        for i, call in enumerate(calls):
            if call["args"][1:] == ["patch-id", "--stable"]:
                continue  # joined to its producer below
            line = f"cd {shlex.quote(call['cwd'])} && {shlex.join(call['args'])}"
            nxt = next((c for c in calls[i + 1 :] if c["thread"] == call["thread"]), None)
            if nxt and nxt["args"][1:] == ["patch-id", "--stable"]:
                line += " | git patch-id --stable"
            script.append(line + " >/dev/null")
        floor_sh = Path(tmp) / "floor.sh"
        floor_sh.write_text("\n".join(script) + "\n")
        stage = iter(range(2, 10_000))

        def okstra() -> float:
            n = next(stage)
            return time_command(
                [
                    *okstra_cmd(),
                    "--project",
                    str(repo),
                    "record",
                    "bench/record",
                    "--stage",
                    str((n - 2) % 19 + 2),
                    "--status",
                    "done",
                    "--commit",
                    heads[(n - 2) % 19 + 1],
                ]
            )

        def floor():
            return time_command(["bash", str(floor_sh)])

        medians = interleaved({"okstra": okstra, "floor": floor}, args.runs)
    print(HEADER)
    print(report(f"record --status done ({len(calls)} git calls)", medians["okstra"], medians["floor"], GOAL))
    return 0


if __name__ == "__main__":
    sys.exit(main())
