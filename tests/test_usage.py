"""`okstra usage`: tokens per run and per stage, from the transcripts the hooks named."""

from __future__ import annotations

import json
import os
from pathlib import Path

from okstra_engine.agent_events import EVENTS_NAME
from okstra_engine.record import record
from okstra_engine.usage import Usage, task_usage
from okstra_engine.worktrees import stage_target
from tests.support import call, commit, prepared_run, run_cli


def _assistant(message_id: str, usage: dict[str, int], text: str = "x") -> str:
    return json.dumps(
        {
            "type": "assistant",
            "message": {
                "id": message_id,
                "role": "assistant",
                "content": [{"type": "text", "text": text}],
                "usage": usage,
            },
        }
    )


def _u(i: int, o: int, r: int, w: int) -> dict[str, int]:
    return {"input_tokens": i, "output_tokens": o, "cache_read_input_tokens": r, "cache_creation_input_tokens": w}


def _transcript(session: str, lines: list[str]) -> Path:
    path = Path(os.environ["CLAUDE_CONFIG_DIR"]) / "projects" / "-work-repo" / f"{session}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines))
    return path


def _hooked(run: Path, session: str, transcript: Path | str) -> None:
    with (run / EVENTS_NAME).open("a") as handle:
        for event in ("SessionStart", "Stop", "SessionEnd"):
            row = {
                "ts": "2026-06-10T12:00:00Z",
                "event": event,
                "session_id": session,
                "transcript_path": str(transcript),
            }
            handle.write(json.dumps(row) + "\n")


def test_a_hand_written_transcript_counts_each_message_once(task) -> None:
    run = prepared_run(task)
    transcript = _transcript(
        "sess-1",
        [
            json.dumps({"type": "user", "message": {"role": "user", "content": "do it"}}),
            # one message with two content blocks: two lines, one id, one count
            _assistant("msg_1", _u(100, 7, 3000, 50), "thinking"),
            _assistant("msg_1", _u(100, 7, 3000, 50), "tool call"),
            json.dumps({"type": "user", "message": {"role": "user", "content": [{"type": "tool_result"}]}}),
            _assistant("msg_2", _u(10, 20, 4000, 0)),
            '{"type": "assistant", "message": {"id": "msg_torn", "usage": {"input_tok',  # a torn line: skipped
            json.dumps({"type": "summary", "usage": _u(1, 1, 1, 1)}),  # not an assistant message
            _assistant("msg_3", {"input_tokens": 5, "output_tokens": True, "cache_read_input_tokens": -4}),
        ],
    )
    _hooked(run, "sess-1", transcript)

    usage = task_usage(task)
    (found,) = usage.runs
    assert found.usage == Usage(input=115, output=27, cache_read=7000, cache_write=50)
    assert (found.run_id, found.phase, found.stage) == (run.name, "implementation", 1)
    assert found.transcripts == [str(transcript)] and found.missing == []
    assert usage.stages() == {1: found.usage} and usage.total == found.usage

    code, out, err = run_cli("usage", "auth/login", "--json", "--project", str(task.project.root))
    assert code == 0, err
    doc = json.loads(out)
    tokens = {"input_tokens": 115, "output_tokens": 27, "cache_read_tokens": 7000, "cache_write_tokens": 50}
    assert doc["total"] == tokens
    assert doc["stages"] == [{"stage": 1, **tokens, "runs": [run.name]}]
    assert doc["runs"][0] == {
        "run_id": run.name,
        "phase": "implementation",
        "stage": 1,
        **tokens,
        "transcripts": [str(transcript)],
        "missing": [],
    }


def test_runs_stages_subagents_and_a_resumed_session(task, capsys) -> None:
    one = prepared_run(task, "1")
    record(task, 1, "done", commit=commit(stage_target(task, 1).path, {"schema.py": "x = 1\n"}, "stage 1"))
    two = prepared_run(task, "2")
    first = _transcript("s-a", [_assistant("m1", _u(1, 2, 3, 4))])
    sub = first.parent / "s-a" / "subagents" / "agent-x1.jsonl"
    sub.parent.mkdir(parents=True)
    sub.write_text(_assistant("m-sub", _u(10, 20, 30, 40)) + "\n")
    # a resumed session copies the earlier message: still counted once, in the first run
    second = _transcript("s-b", [_assistant("m1", _u(1, 2, 3, 4)), _assistant("m2", _u(100, 0, 0, 0))])
    _hooked(one, "s-a", first)
    _hooked(two, "s-b", second)
    _hooked(two, "s-gone", first.parent / "s-gone.jsonl")  # deleted since: named, not counted
    _hooked(two, "s-evil", "/etc/passwd")  # not a transcript's place: never read

    usage = task_usage(task)
    by_run = {run.run_id: run for run in usage.runs}
    assert by_run[one.name].usage == Usage(11, 22, 33, 44)
    assert by_run[one.name].transcripts == [str(first), str(sub)]
    assert (by_run[two.name].usage, by_run[two.name].stage) == (Usage(100, 0, 0, 0), 2)
    assert by_run[two.name].missing == [str(first.parent / "s-gone.jsonl")]
    assert usage.total == Usage(111, 22, 33, 44)
    assert usage.stages() == {1: Usage(11, 22, 33, 44), 2: Usage(100, 0, 0, 0)}

    code, out, _ = call(capsys, "usage", "auth/login", "--project", str(task.project.root))
    assert code == 0
    lines = out.splitlines()
    assert "input" in lines[0] and "cache write" in lines[0]
    assert any(line.split()[:2] == ["total", "111"] for line in (line.strip() for line in lines))
    assert "s-gone.jsonl is gone" in out


def test_a_task_without_reports_says_so(task, capsys) -> None:
    prepared_run(task)
    code, out, _ = call(capsys, "usage", "auth/login", "--project", str(task.project.root))
    assert code == 0 and "no run of auth/login has reported a transcript" in out


def test_the_handoff_report_shows_the_tokens_its_stages_used(task) -> None:
    from okstra_engine import handoff as ho
    from okstra_engine.plans import plan_run_root

    one = prepared_run(task, "1")
    record(task, 1, "done", commit=commit(stage_target(task, 1).path, {"schema.py": "x = 1\n"}, "stage 1"))
    _hooked(one, "s-1", _transcript("s-1", [_assistant("m1", _u(1200, 34, 5000, 70))]))
    result = ho.run_handoff(task, group="A", merge=True)
    text = (plan_run_root(task).dir / "handoff-A.md").read_text()
    assert result.report is not None and text == result.report.read_text()
    tokens = text.split("## Tokens\n\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert tokens[0] == "| Stage | Input | Output | Cache read | Cache write |"
    assert tokens[2:] == ["| 1 | 1,200 | 34 | 5,000 | 70 |"]


def test_a_handoff_report_without_usage_has_no_tokens_section(task) -> None:
    from okstra_engine import handoff as ho

    prepared_run(task, "1")
    record(task, 1, "done", commit=commit(stage_target(task, 1).path, {"schema.py": "x = 1\n"}, "stage 1"))
    result = ho.run_handoff(task, group="A", merge=True)
    assert result.report is not None and "Tokens" not in result.report.read_text()


def test_a_final_verification_of_a_stage_is_not_that_stages_usage(task) -> None:
    from okstra_engine.prepare import PrepareOptions, prepare

    one = prepared_run(task, "1")
    record(task, 1, "done", commit=commit(stage_target(task, 1).path, {"schema.py": "x = 1\n"}, "stage 1"))
    verify = Path(prepare(task, PrepareOptions("final-verification", stage="1")).manifest.run_dir)
    _hooked(one, "s-1", _transcript("s-1", [_assistant("m1", _u(10, 1, 0, 0))]))
    _hooked(verify, "s-2", _transcript("s-2", [_assistant("m2", _u(500, 5, 0, 0))]))

    usage = task_usage(task)
    assert usage.stages() == {1: Usage(10, 1, 0, 0)}
    assert usage.total == Usage(510, 6, 0, 0)
    assert usage.to_json()["stages"][0]["runs"] == [one.name]


def test_a_transcript_read_again_counts_what_it_grew_by(task) -> None:
    # the board asks on every reload: a transcript its agent is still writing is read
    # again, one that did not change is not parsed twice
    run = prepared_run(task)
    transcript = _transcript("sess-2", [_assistant("msg_1", _u(10, 1, 0, 0))])
    _hooked(run, "sess-2", transcript)
    assert task_usage(task).total == Usage(input=10, output=1, cache_read=0, cache_write=0)

    with transcript.open("a") as handle:
        handle.write(_assistant("msg_2", _u(5, 2, 0, 0)) + "\n")
    assert task_usage(task).total == Usage(input=15, output=3, cache_read=0, cache_write=0)

    from okstra_engine import usage as usage_module

    before = usage_module._PARSED[transcript]
    assert task_usage(task).total.output == 3
    assert usage_module._PARSED[transcript] is before  # unchanged: not parsed again
