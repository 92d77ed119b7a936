"""okstra with the real Claude Code CLI (the pinned npm package, `tests.claude_code`),
answered by the scripted Messages API of `tests.model_server` on 127.0.0.1: launched
through `okstra launch`, it runs the commands okstra's prompt gives through its own Bash
tool, fires the hooks launch gave it, and writes the transcript `okstra usage` reads.

Skipped, saying why, only where npm is not installed (nothing to install the CLI with).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from okstra_engine.agent_events import EVENTS_NAME, SETTINGS_NAME
from okstra_engine.ledger import LEDGER_NAME, read_ledger
from okstra_engine.plans import plan_run_root
from okstra_engine.status import task_status
from okstra_engine.worktrees import stage_target
from tests import claude_code
from tests.model_server import ScriptedModel, scripted_model
from tests.support import git, run_cli, set_agent_command

OKSTRA = str(Path(sys.executable).with_name("okstra"))
# the prompt runs okstra by its absolute path: the agent needs no venv on its PATH
AGENT_PATH = f"/usr/bin{os.pathsep}/bin"
HEADLESS = ["-p", "{prompt}", "--output-format", "json", "--permission-mode", "bypassPermissions"]


@pytest.fixture(scope="session")
def claude_program() -> Path:
    try:
        return claude_code.install()
    except RuntimeError as exc:
        if shutil.which("npm") is None:
            pytest.skip(f"npm is not installed, so the real Claude Code CLI cannot be ({exc})")
        raise


@pytest.fixture
def claude(claude_program: Path) -> Path:
    """The real CLI as okstra's agent command, headless."""
    set_agent_command([str(claude_program), *HEADLESS])
    return claude_program


def _prepare(task, *args: str) -> dict[str, object]:
    code, out, err = run_cli("prepare", str(task.ref), *args, "--json", "--project", str(task.project.root))
    assert code == 0, err
    return json.loads(out)


def _launch(run_dir: str, model: ScriptedModel) -> dict[str, object]:
    """`okstra launch RUN_DIR`, as a person runs it; claude's own JSON result."""
    proc = subprocess.run(
        [OKSTRA, "launch", run_dir],
        env=claude_code.agent_env(model.base_url, path=AGENT_PATH),
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert proc.returncode == 0, f"{proc.stderr}\n{model.failures()}"
    assert not model.failures(), model.failures()
    return json.loads(proc.stdout)


def _transcript_of(cwd: Path, session: str) -> Path:
    """Where Claude Code keeps a session's transcript: every character of its cwd that is
    not a letter or digit becomes `-` (okstra takes the path from the hooks, never from this)."""
    return (
        Path(os.environ["CLAUDE_CONFIG_DIR"]) / "projects" / re.sub("[^A-Za-z0-9]", "-", str(cwd)) / f"{session}.jsonl"
    )


def _team_state(run_dir: str) -> dict[str, object]:
    """The step that writes the team state the prompt shows, where the run folder is."""
    return {"bash": {"prompt": r'^\{"v": 1, "runId"', "use": f"printf '%s\\n' '{{}}' > {run_dir}/team-state.json"}}


def _write_to(path_pattern: str, text: str) -> dict[str, object]:
    """The step that writes `text` to the path the prompt names (its first code span that
    `path_pattern` finds)."""
    return {"bash": {"prompt": path_pattern, "use": f"cat > {{}} <<'EOF'\n{text}EOF"}}


VALIDATE = {"bash": {"prompt": r" validate-run /"}, "say": "Checking the run against the prompt."}
"""The step that runs the check the prompt ends with."""


def _validated(model: ScriptedModel, run_dir: str) -> None:
    """The agent's own validate-run passed, okstra's passes too, and no request of the run
    offered the team tools Claude Code removed."""
    (check,) = [r for r in model.results if " validate-run " in r.command]
    assert not check.is_error and "did what its prompt asked" in check.output, check.output
    code, out, err = run_cli("validate-run", run_dir)
    assert code == 0, out + err
    assert model.tool_names and not any({"TeamCreate", "TeamDelete"} & set(names) for names in model.tool_names)


def _events(run_dir: str) -> list[dict[str, str]]:
    return [json.loads(line) for line in (Path(run_dir) / EVENTS_NAME).read_text().splitlines()]


def test_the_real_cli_against_the_scripted_server(claude_program: Path, tmp_path: Path) -> None:
    """The harness itself: the pinned version runs a command the prompt gives, offers no
    TeamCreate, and writes its transcript where okstra looks for it."""
    assert claude_code.installed_version(claude_program) == claude_code.VERSION
    work = tmp_path / "work"
    work.mkdir()
    git(work, "init", "-q")
    steps = [{"bash": {"prompt": r"^echo "}, "say": "Running it."}, {"text": "Done."}]
    with scripted_model(steps) as model:
        proc = subprocess.run(
            [str(claude_program), *HEADLESS[:1], "Run `echo harness-ok` and stop.", *HEADLESS[2:]],
            cwd=work,
            env=claude_code.agent_env(model.base_url, path="/usr/bin:/bin"),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode == 0, proc.stderr
    assert not model.failures(), model.failures()
    assert [(r.command, r.output) for r in model.results] == [("echo harness-ok", "harness-ok")]
    assert "Bash" in model.tool_names[0]
    assert not {"TeamCreate", "TeamDelete"} & set(model.tool_names[0])
    result = json.loads(proc.stdout)
    assert _transcript_of(work, result["session_id"]).is_file()


@pytest.mark.slow
def test_an_implementation_run_with_the_real_claude(task, claude: Path) -> None:
    """Prepare stage 1, launch the real claude on it: it records started, commits, asks
    okstra for the task's status and records done, each by the command its prompt gives;
    the ledger, the hooks' rows, the agent's state and the usage all say so."""
    prepared = _prepare(task, "--type", "implementation", "--stage", "1")
    run_dir, worktree = str(prepared["run_dir"]), stage_target(task, 1).path
    carry = str(plan_run_root(task).dir / "carry" / "stage-1.json")
    steps = [
        _team_state(run_dir),
        {"bash": {"prompt": r"record .*--status started"}, "say": "Recording the start."},
        {"bash": "printf 'SCHEMA = 1\\n' > schema.py && git add schema.py && git commit -q -m 'stage 1: schema'"},
        {"bash": f"{OKSTRA} status {task.ref} --json"},
        {  # the sidecar as the prompt shows it, its SHA from the command the prompt gives
            "bash": {
                "prompt": r'^\{"stage": 1, "head_commit"',
                "use": f"mkdir -p {Path(carry).parent} && cat > {carry} <<EOF\n{{}}\nEOF",
                "fill": {
                    "<full SHA of your last commit>": f"$(git -C {worktree} rev-parse HEAD)",
                    "<two sentences: what changed, what the next stage should know>": "Adds schema.py.",
                },
            }
        },
        {"bash": {"prompt": r"record .*--status done"}},  # as the prompt writes it, $(git -C … rev-parse HEAD) included
        _write_to(r"/report\.md$", "Stage 1: schema.py, one commit. QA: true passed.\n"),
        VALIDATE,
        {"text": "Stage 1 is done."},
    ]
    with scripted_model(steps) as model:
        result = _launch(run_dir, model)

    head = git(worktree, "rev-parse", "HEAD")
    assert git(worktree, "log", "-1", "--format=%s") == "stage 1: schema"
    rows = [r for r in read_ledger(plan_run_root(task).dir / LEDGER_NAME).rows if r.stage == 1]
    assert [r.status for r in rows] == ["reserved", "reserved", "started", "done"]
    assert rows[-1].head_commit == head and rows[-1].run_id == Path(run_dir).name
    assert str(task_status(task).stages[0].state) == "not-merged"

    session = result["session_id"]
    events = _events(run_dir)
    lifecycle = [e["event"] for e in events if e["event"] != "PostToolUse"]
    assert lifecycle == ["SessionStart", "UserPromptSubmit", "Stop", "SessionEnd"]
    assert {e["session_id"] for e in events} == {session}
    transcript = Path(events[0]["transcript_path"])
    assert transcript == _transcript_of(worktree, session)
    assert json.loads((Path(run_dir) / SETTINGS_NAME).read_text())["hooks"]["Stop"]

    _validated(model, run_dir)
    # what the agent saw, mid-run: its stage in flight, itself working
    (asked,) = [r for r in model.results if r.command.endswith(" --json") and " status " in r.command]
    seen = json.loads(asked.output)["stages"][0]
    assert seen["state"] == "in-flight"
    assert seen["agent"]["state"] == "working" and seen["agent"]["session_id"] == session

    code, out, err = run_cli("usage", str(task.ref), "--json", "--project", str(task.project.root))
    assert code == 0, err
    usage = json.loads(out)
    sent = [u for _, u in model.sent]
    expected = {
        "input_tokens": sum(u["input_tokens"] for u in sent),
        "output_tokens": sum(u["output_tokens"] for u in sent),
        "cache_read_tokens": sum(u["cache_read_input_tokens"] for u in sent),
        "cache_write_tokens": sum(u["cache_creation_input_tokens"] for u in sent),
    }
    assert usage["total"] == expected and usage["stages"][0]["stage"] == 1
    assert usage["runs"][0]["transcripts"] == [str(transcript)]
    # claude's own count agrees (it too counts the two-block first message once)
    assert result["usage"]["input_tokens"] == expected["input_tokens"]
    assert result["usage"]["output_tokens"] == expected["output_tokens"]


@pytest.mark.slow
def test_an_agent_that_ends_without_recording_done_has_exited(task, claude: Path) -> None:
    prepared = _prepare(task, "--type", "implementation", "--stage", "1")
    run_dir = str(prepared["run_dir"])
    steps = [{"bash": {"prompt": r"record .*--status started"}}, {"text": "I stop here."}]
    with scripted_model(steps) as model:
        _launch(run_dir, model)
    status = task_status(task)
    assert str(status.stages[0].state) == "stale"  # its agent's pid is gone
    agent = status.agents[1]
    assert str(agent.state) == "exited" and agent.session_id == _events(run_dir)[0]["session_id"]


PLAN = """---
approved: false
---
# Sign-up

Let people make an account. Risk: duplicate e-mails.

## Stage Map
| Stage | Title | Depends on | Group |
|-------|-------|------------|-------|
| 1     | Model | -          | A     |
| 2     | Form  | 1          | B     |
"""


@pytest.mark.slow
def test_a_planning_run_with_the_real_claude(task, claude: Path) -> None:
    """The real claude writes the plan where the planning prompt says; the person
    approves it; its stages are the task's."""
    from okstra_engine.slugs import TaskRef
    from okstra_engine.tasks import new_task

    signup = new_task(task.project, TaskRef("auth", "signup"), title="Sign-up")
    prepared = _prepare(signup, "--type", "planning")
    run_dir = str(prepared["run_dir"])
    steps = [
        _team_state(run_dir),
        {**_write_to(r"/plan\.md$", PLAN), "say": "Writing the plan."},
        VALIDATE,
        {"text": "The plan is written."},
    ]
    with scripted_model(steps) as model:
        result = _launch(run_dir, model)
    assert (Path(run_dir) / "plan.md").read_text() == PLAN
    _validated(model, run_dir)
    code, _, err = run_cli("plan", "approve", "auth/signup", "--project", str(task.project.root))
    assert code == 0, err
    assert [(s.stage, s.title) for s in task_status(signup).stages] == [(1, "Model"), (2, "Form")]
    events = _events(run_dir)
    assert [e["event"] for e in events if e["event"] != "PostToolUse"][-1] == "SessionEnd"
    code, out, _ = run_cli("usage", "auth/signup", "--json", "--project", str(task.project.root))
    (run,) = json.loads(out)["runs"]
    assert (run["phase"], run["stage"]) == ("planning", None)
    assert run["input_tokens"] == result["usage"]["input_tokens"] > 0


@pytest.mark.slow
def test_a_final_verification_with_the_real_claude(task, claude: Path) -> None:
    """Stage 1 done (in-process: the implementation test runs the real claude on it); the
    real claude verifies it where its prompt says, writes the verdict and passes
    validate-run; the task's report carries the verdict and the run's tokens."""
    from okstra_engine.record import record
    from tests.support import commit

    _prepare(task, "--type", "implementation", "--stage", "1")
    record(task, 1, "done", commit=commit(stage_target(task, 1).path, {"schema.py": "SCHEMA = 1\n"}, "stage 1"))
    prepared = _prepare(task, "--type", "final-verification", "--stage", "1")
    run_dir = str(prepared["run_dir"])
    steps = [
        _team_state(run_dir),
        {"bash": "test -f schema.py && git status --porcelain", "say": "Checking the stage."},
        _write_to(r"/verification\.md$", "PASS\n\nschema.py is there; QA: true passed.\n"),
        VALIDATE,
        {"text": "PASS."},
    ]
    with scripted_model(steps) as model:
        result = _launch(run_dir, model)
    checked = model.results[1]  # in the stage's worktree, at its done commit, clean
    assert checked.command.startswith("test -f schema.py") and not checked.is_error
    assert checked.output == "(Bash completed with no output)"
    assert (Path(run_dir) / "verification.md").read_text().startswith("PASS\n")
    _validated(model, run_dir)

    code, out, err = run_cli("report", str(task.ref), "--project", str(task.project.root))
    assert code == 0, err
    assert f"- run `{Path(run_dir).name}` (stage 1): **PASS** — PASS" in out.splitlines()
    tokens = f"| final-verification | {result['usage']['input_tokens']:,} |"
    assert any(line.startswith(tokens) for line in out.splitlines()), out
