"""What every hook of an agent okstra launched costs: the hook's command (as
`okstra launch` writes it into agent-settings.json) appending its row, against a bare
`python -c pass` of the same interpreter (the floor), both given the same hook JSON
on stdin.

    python benchmarks/agent_event_bench.py [--runs N] [--quick]

A reference row times `okstra agent-event` through the console script, as a person
types it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import HEADER, bench_args, interleaved, okstra_cmd, report, run_env

GOAL = 2.0
HOOK_INPUT = b'{"hook_event_name": "PostToolUse", "session_id": "s-1", "transcript_path": "/t/s-1.jsonl", "tool_name": "Bash", "tool_input": {"command": "ls"}}'


def timed(cmd: list[str], stdin: Path, env: dict[str, str]) -> float:
    with stdin.open("rb") as data:
        start = time.perf_counter()
        subprocess.run(cmd, stdin=data, env=env, check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - start


def main() -> int:
    from okstra_engine.agent_events import EVENTS_NAME, RUN_DIR_VARIABLE, hook_argv

    args = bench_args(41)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(os.path.realpath(tmp))
        run = root / "project" / ".okstra" / "tasks" / "bench" / "hook" / "runs" / "run-1"
        run.mkdir(parents=True)
        (run / "manifest.json").write_text("{}\n")
        stdin = root / "hook.json"
        stdin.write_bytes(HOOK_INPUT)
        env = run_env({**os.environ, RUN_DIR_VARIABLE: str(run)})
        hook, typed = hook_argv(), [*okstra_cmd(), "agent-event"]
        floor = [sys.executable, "-c", "pass"]
        result = interleaved(
            {
                "hook": lambda: timed(hook, stdin, env),
                "typed": lambda: timed(typed, stdin, env),
                "floor": lambda: timed(floor, stdin, env),
            },
            args.runs,
        )
        rows = (run / EVENTS_NAME).read_text().count("\n")
        expected = 2 * args.runs
        if rows != expected:
            print(f"the hooks wrote {rows} rows, not {expected}", file=sys.stderr)
            return 1
    print(HEADER)
    print(report("agent-event, the hook's command", result["hook"], result["floor"], GOAL))
    print(report("agent-event, the console script", result["typed"], result["floor"], None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
