"""`okstra report`: the task in Markdown for a pull request, on a real repository: a plan,
two stages done, a handoff, a corrected done commit, a final verification and the usage
of a hand-written transcript; text agents wrote shown as text, never as Markdown."""

from __future__ import annotations

from pathlib import Path

from okstra_engine import handoff as ho
from okstra_engine.carry import CarrySidecar, write_carry
from okstra_engine.plans import plan_run_root
from okstra_engine.prepare import PrepareOptions, prepare
from okstra_engine.reconcile import correct
from okstra_engine.record import record
from okstra_engine.task_report import md_code, md_text, task_report
from okstra_engine.tasks import stage_branch, task_branch
from okstra_engine.worktrees import stage_target
from tests.support import call, commit, git
from tests.test_usage import _assistant, _hooked, _transcript, _u

EVIL = "[click](https://evil.example) <img src=x onerror=alert(1)> | # not a heading\n- not a list @someone *bold*"


def _two_stages_done_and_a_handoff(task) -> dict[str, str]:
    one = Path(prepare(task, PrepareOptions("implementation", stage="1")).manifest.run_dir)
    first = commit(stage_target(task, 1).path, {"schema.py": "SCHEMA = 1\n"}, "stage 1: schema")
    record(task, 1, "done", commit=first)
    assert ho.run_handoff(task, group="A", merge=True).merged == [1]
    prepare(task, PrepareOptions("implementation", stage="2"))
    wt2 = stage_target(task, 2).path
    second = commit(wt2, {"importer.py": "IMPORT = 1\n"}, "stage 2: importer")
    record(task, 2, "done", commit=second)
    fixed = commit(wt2, {"importer.py": "IMPORT = 2\n"}, "stage 2: importer, fixed")
    assert correct(task, 2, fixed) is not None  # a reconcile by hand: a correction row
    plan_dir = plan_run_root(task).dir
    write_carry(plan_dir, CarrySidecar(stage=2, head_commit=fixed, impl_task_key=task.key, summary=EVIL))
    transcript = _transcript(
        "sess-1", [_assistant("m1", _u(1200, 34, 5000, 70)), _assistant("m1", _u(1200, 34, 5000, 70), "again")]
    )
    _hooked(one, "sess-1", transcript)
    return {"first": first, "second": second, "fixed": fixed}


def test_the_report_names_plan_stages_commits_handoffs_corrections_verdict_and_usage(task) -> None:
    commits = _two_stages_done_and_a_handoff(task)
    verify = Path(prepare(task, PrepareOptions("final-verification", stage="1")).manifest.run_dir)
    (verify / "verification.md").write_text("## PASS — stage 1 checks out\n\nDetails.\n")

    text = task_report(task)
    lines = text.splitlines()
    assert lines[0] == "# Login flow (`auth/login`)"
    assert f"- task branch: `{task_branch(task)}`" in lines
    assert f"- plan: run `{plan_run_root(task).dir.name}` — four stages" in lines
    assert "- stages: 2 of 4 done, 1 of them merged into the task branch" in lines
    row = {
        int(line.split("|")[1]): line
        for line in lines
        if line.startswith("| ") and line.split("|")[1].strip().isdigit()
    }
    assert row[1] == (
        f"| 1 | Schema | A | — | done | `{commits['first'][:12]}` | `{stage_branch(task, 1)}` | 1,200 / 34 |"
    )
    assert f"`{commits['fixed'][:12]}`" in row[2] and "not-merged" in row[2] and row[2].endswith("| — |")
    assert "| 4 | CLI | C | 2, 3 | blocked | — |" in row[4]

    handoff = next(line for line in lines if line.startswith("| ") and "| A |" in line and "→" in line)
    assert handoff.split("|")[3:5] == [" 1 ", " 1 "]
    assert f"`{commits['first'][:12]}`" not in handoff  # the task HEADs, not the stage's commit
    assert f"stage 2's done commit corrected, `{commits['second'][:12]}` → `{commits['fixed'][:12]}` (manual)" in text
    assert f"- run `{verify.name}` (stage 1): **PASS** — \\#\\# PASS — stage 1 checks out" in lines
    assert "| stage 1 | 1,200 | 34 | 5,000 | 70 |" in lines and "| **total** | 1,200 | 34 | 5,000 | 70 |" in lines

    # the lead's summary: its words, none of its Markdown
    (summary,) = [line for line in lines if line.startswith("- stage 2: ")]
    assert summary == (
        r"- stage 2: \[click\]\(https://evil.example\) \<img src=x onerror=alert\(1\)\> \| \# not a heading"
        r"\\n- not a list @someone \*bold\*"
    )


def test_markdown_escapes() -> None:
    assert md_text("a_b *c* [d](e) <f> # g | h\ni\x1b") == r"a\_b \*c\* \[d\]\(e\) \<f\> \# g \| h\\ni\\x1b"
    assert md_text("![i](x) ~s~ &lt; `c` $x$") == r"\!\[i\]\(x\) \~s\~ \&lt; \`c\` \$x\$"
    assert md_text("plain words, 한국어 - 1.5: ok") == "plain words, 한국어 - 1.5: ok"
    assert md_code("abc") == "`abc`" and md_code("a`b") == "``a`b``" and md_code("`a|b") == "`` `a\\|b ``"


def test_the_cli_prints_or_writes_the_report(task, capsys, tmp_path: Path) -> None:
    code, out, err = call(capsys, "report", "auth/login", "--project", str(task.project.root))
    assert code == 0, err
    assert out == task_report(task)
    assert "No final verification has run yet." in out and "No run has reported a transcript" in out
    assert "No group has been handed off yet." in out

    target = tmp_path / "out" / "report.md"
    code, out, _ = call(capsys, "report", "auth/login", "--out", str(target), "--project", str(task.project.root))
    assert code == 0 and out.strip() == f"okstra: wrote {target}"
    assert target.read_text() == task_report(task)
    assert not [p for p in target.parent.iterdir() if p.name != "report.md"]  # no temporary file left

    code, _, err = call(capsys, "report", "auth/login", "--out", str(tmp_path), "--project", str(task.project.root))
    assert code == 2 and "cannot write the report" in err


def test_a_task_without_a_plan(task, capsys) -> None:
    from okstra_engine.slugs import TaskRef
    from okstra_engine.tasks import new_task

    new_task(task.project, TaskRef("auth", "signup"), title="Sign-up <b>now</b>")
    code, out, _ = call(capsys, "report", "auth/signup", "--project", str(task.project.root))
    assert code == 0
    assert out.splitlines()[0] == r"# Sign-up \<b\>now\</b\> (`auth/signup`)"
    assert "- plan: no plan yet" in out and "## Stages" not in out
    assert git(task.project.root, "status", "--porcelain") == ""


def test_the_reports_result_is_the_verdict_the_release_gate_reads(task) -> None:
    """One stage's PASS is listed but is not the task's result; a whole-task verdict under
    the current plan is, as release handoff reads it (`run_history.last_verification`)."""
    from tests.support import a_verification

    _two_stages_done_and_a_handoff(task)
    stage = Path(prepare(task, PrepareOptions("final-verification", stage="1")).manifest.run_dir)
    (stage / "verification.md").write_text("PASS\n")
    lines = task_report(task).splitlines()
    assert f"- run `{stage.name}` (stage 1): **PASS** — PASS" in lines
    assert "Result: no verdict on the whole task under the current plan yet." in lines
    whole = a_verification(task, "FAIL", run_id="20990101T000000Z-final-verification-bbbbbb")
    lines = task_report(task).splitlines()
    assert f"Result: **FAIL** (run `{whole.name}`, the whole task under the current plan)." in lines
