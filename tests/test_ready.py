"""`ready` means `prepare` takes it, and a blocked stage says why (`reason`): on real git.

The property: over many random task states, a stage that `status` calls ready is one
`prepare --stage N` accepts, and one it does not call ready is refused with a `Refusal`,
never accepted. Each example makes a project with a random Stage Map (2–6 stages, 1–3
groups, random dependencies) and takes its stages in turn, group by group, the way people
and agents do: prepare a stage (the real `prepare`, with a live agent or one whose pid is
gone: stale), commit and record it done, release it, or leave it; hand off some groups
before each turn; now and then try another stage. Every prepare is checked against the
status read just before it; at the end every stage is checked with a render-only prepare
(the same checks, nothing written).

Then the reasons one by one: a stage with several dependencies starts from the task
worktree, so it waits for their handoff (`needs-handoff`), or, when that handoff waits
for the stage itself, for a merge by hand (`needs-merge`); following the fix each one
prints makes the stage ready.
"""

from __future__ import annotations

import itertools
import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from okstra_engine.errors import OkstraError
from okstra_engine.handoff import run_handoff
from okstra_engine.plans import import_plan
from okstra_engine.prepare import PrepareOptions, prepare
from okstra_engine.projects import init_project
from okstra_engine.record import record
from okstra_engine.refusals import RefusedError
from okstra_engine.slugs import TaskRef
from okstra_engine.stage_view import StageState, StageView
from okstra_engine.status import TaskStatus, task_status
from okstra_engine.tasks import new_task
from okstra_engine.worktrees import stage_target, task_target
from tests.support import call, commit, make_repo

GROUPS = ("A", "B", "C")
_names = itertools.count()


@st.composite
def stage_maps(draw) -> list[dict]:
    """2–6 stages (more often 6), each depending on a random few of the earlier ones, in
    1–3 groups: mostly by depth (as `L<depth>` groups go), sometimes anywhere."""
    n = 6 - draw(st.integers(0, 4))
    groups = GROUPS[: 3 - draw(st.integers(0, 2))]
    stages: list[dict] = []
    depth: dict[int, int] = {}
    for i in range(1, n + 1):
        deps = [d for d in range(1, i) if draw(st.booleans())][:3]
        depth[i] = 1 + max((depth[d] for d in deps), default=-1)
        anywhere = draw(st.integers(0, 4)) == 0
        group = _pick(draw, list(groups)) if anywhere else groups[min(depth[i], len(groups) - 1)]
        stages.append({"stage": i, "title": f"Stage {i}", "depends_on": deps, "group": group})
    return stages


def _pick(draw, items: list):
    """One of `items`, by a composite's `draw` or a test's `data.draw`."""
    return items[draw(st.integers(0, len(items) - 1))]


def _dead_pid() -> int:
    """The pid of a process that has exited (its reservation is stale at once)."""
    proc = subprocess.Popen([sys.executable, "-c", ""])
    proc.wait()
    return proc.pid


def _new_task(root: Path, stages: list[dict]):
    repo = make_repo(root / f"p{next(_names)}")
    project, _ = init_project(repo, qa_commands=["true"])
    task = new_task(project, TaskRef("g", "t"), title="random")
    plan = root / f"{repo.name}.json"
    plan.write_text(json.dumps({"stages": stages}))
    import_plan(task, plan, approve=True)
    return task


def _check_reason(status: TaskStatus) -> None:
    """A blocked stage says why, from a closed set; no other stage has a reason."""
    views = {v.stage: v for v in status.stages}
    done = status.ledger.done_rows()
    for view in status.stages:
        if view.state is not StageState.BLOCKED:
            assert view.reason is None, view
            continue
        assert view.reason is not None, view
        not_done = [d for d in view.depends_on if d not in done]
        if not_done:
            assert view.reason.to_json() == {"code": "deps-not-done", "stages": not_done}
        else:
            # done, but where it starts (the task worktree: it has several) some are not
            unmerged = [d for d in view.depends_on if views[d].state is StageState.NOT_MERGED]
            groups = sorted({views[d].group for d in unmerged})
            assert unmerged and len(view.depends_on) > 1, view
            # a handoff helps unless it waits for this stage: its group holds it or a
            # stage that waits for it
            waiting, grew = {view.stage}, True
            while grew:
                more = {v.stage for v in status.stages if set(v.depends_on) & waiting} - waiting
                waiting, grew = waiting | more, bool(more)
            code = "needs-merge" if {views[n].group for n in waiting} & set(groups) else "needs-handoff"
            assert view.reason.to_json() == {"code": code, "stages": unmerged, "groups": groups}


def _takes(task, stage: int, *, render_only: bool, pid: int | None = None) -> bool:
    """Does `prepare --stage N` accept the stage? Refusals are answers; other errors are not."""
    try:
        prepare(task, PrepareOptions("implementation", stage=str(stage), render_only=render_only, pid=pid))
    except RefusedError:
        return False
    return True


TARGETS = ("done", "leave", "in-flight", "stale", "released", "done", "done", "done", "done")
"""What becomes of a stage when its turn comes, if prepare takes it (done most often, so
later stages find their dependencies done)."""


@pytest.mark.slow  # about 15 s: 20 random tasks, each prepared, finished and handed off on real git
@pytest.mark.timeout(300)
@settings(
    max_examples=20,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(stages=stage_maps(), data=st.data())
def test_a_stage_status_calls_ready_is_one_prepare_takes(tmp_path_factory, stages, data) -> None:
    task = _new_task(tmp_path_factory.mktemp("ready"), stages)
    numbers = [s["stage"] for s in stages]

    def status_now() -> tuple[TaskStatus, dict[int, StageView]]:
        status = task_status(task)
        _check_reason(status)
        return status, {v.stage: v for v in status.stages}

    def take(n: int, *, stale: bool = False) -> bool:
        """The real prepare of stage n takes it exactly when status called it ready."""
        status, views = status_now()
        took = _takes(task, n, render_only=False, pid=_dead_pid() if stale else None)
        assert took == (views[n].state is StageState.READY), (n, status.to_json())
        return took

    def hand_off_some() -> None:
        status, views = status_now()
        assert status.stage_map is not None
        for group, members in status.stage_map.groups().items():
            if not any(views[n].state is StageState.NOT_MERGED for n in members):
                continue
            # mostly a group whose stages are all done; sometimes one that is not
            whole = all(views[n].is_done for n in members)
            if data.draw(st.integers(0, 3), label=f"hand off {group}") < (3 if whole else 1):
                try:
                    run_handoff(task, group)
                except OkstraError:
                    assert not whole  # refused: a stage of the group is not done

    # each stage in turn, group by group in hand-off order (so its dependencies mostly
    # had theirs), after some handoffs; now and then a try at another stage, ready or not
    lanes = task_status(task).stage_map
    assert lanes is not None
    for n in [n for members in lanes.groups().values() for n in members]:
        hand_off_some()
        if data.draw(st.integers(0, 3), label="try another") == 3:
            other = _pick(data.draw, numbers)
            if take(other):
                record(task, other, "released")  # it waits for its turn, ready again
        target = _pick(data.draw, list(TARGETS))
        if target == "leave" or not take(n, stale=target == "stale"):
            continue
        if target == "done":
            sha = commit(stage_target(task, n).path, {f"s{n}.txt": f"{n}\n"}, f"stage {n}")
            record(task, n, "done", commit=sha)
        elif target == "released":
            record(task, n, "released")
    hand_off_some()

    status, _ = status_now()
    for view in status.stages:
        assert _takes(task, view.stage, render_only=True) == (view.state is StageState.READY), (
            view.stage,
            status.to_json(),
        )


# ---------------------------------------------------------------------------- the reasons


def _finish(task, stage: int) -> str:
    """Prepare the stage, commit in its worktree and record it done there."""
    prepare(task, PrepareOptions("implementation", stage=str(stage)))
    sha = commit(stage_target(task, stage).path, {f"stage{stage}.txt": f"{stage}\n"}, f"stage {stage}")
    record(task, stage, "done", commit=sha)
    return sha


def _status_json(capsys, task) -> dict[int, dict]:
    code, out, err = call(capsys, "--project", str(task.project.root), "status", str(task.ref), "--json")
    assert code == 0, err
    return {s["stage"]: s for s in json.loads(out)["stages"]}


def _refusal(task, stage: int):
    with pytest.raises(RefusedError) as caught:
        prepare(task, PrepareOptions("implementation", stage=str(stage)))
    return caught.value.refusal


def test_a_stage_whose_dependencies_wait_for_their_handoff(task, capsys) -> None:
    """PLAN_4: stage 4 (after 2 and 3, group B) waits for them to be done, then for group
    B's handoff; `status --json`, the status table and prepare all say so, and the
    handoff makes it ready."""
    _finish(task, 1)
    stages = _status_json(capsys, task)
    assert stages[4]["state"] == "blocked"
    assert stages[4]["reason"] == {"code": "deps-not-done", "stages": [2, 3]}
    assert stages[2]["reason"] is None and stages[1]["reason"] is None
    _finish(task, 2), _finish(task, 3)

    stages = _status_json(capsys, task)
    assert stages[4]["state"] == "blocked" and stages[4]["waits_for"] == []
    assert stages[4]["reason"] == {"code": "needs-handoff", "stages": [2, 3], "groups": ["B"]}
    code, out, _ = call(capsys, "--project", str(task.project.root), "status", str(task.ref))
    assert code == 0
    assert "stage 4 needs group(s) B handed off: okstra handoff auth/login --group B --merge" in out
    refusal = _refusal(task, 4)
    assert refusal.code == "stage.needs_handoff"
    assert refusal.params == {"task": "auth/login", "stage": 4, "stages": [2, 3], "groups": ["B"]}
    assert refusal.how == "hand off group(s) B first, then rerun: okstra handoff auth/login --group B --merge"

    run_handoff(task, "B")  # what the fix says
    stages = _status_json(capsys, task)
    assert stages[4]["state"] == "ready" and stages[4]["reason"] is None
    prepare(task, PrepareOptions("implementation", stage="4"))


def test_a_stage_whose_group_holds_its_dependencies_needs_them_merged_by_hand(task, tmp_path, capsys) -> None:
    """Stage 3 (after 1 and 2) is in their group A: A's handoff waits for stage 3, so only
    a merge by hand helps; the commands the refusal prints do it."""
    plan = tmp_path / "same-group.json"
    doc = {
        "stages": [
            {"stage": 1, "title": "One", "depends_on": [], "group": "A"},
            {"stage": 2, "title": "Two", "depends_on": [], "group": "A"},
            {"stage": 3, "title": "Three", "depends_on": [1, 2], "group": "A"},
        ]
    }
    plan.write_text(json.dumps(doc))
    same = new_task(task.project, TaskRef("auth", "same"), title="same group")
    import_plan(same, plan, approve=True)
    _finish(same, 1), _finish(same, 2)

    stages = _status_json(capsys, same)
    assert stages[3]["reason"] == {"code": "needs-merge", "stages": [1, 2], "groups": ["A"]}
    code, out, _ = call(capsys, "--project", str(task.project.root), "status", "auth/same")
    assert code == 0
    wt = task_target(same).path
    merges = f"git -C {wt} merge --no-ff okstra/feature/auth/same-s1 && git -C {wt} merge --no-ff okstra/feature/auth/same-s2"
    assert f"stage 3 needs 1, 2 merged by hand: {merges}" in out
    refusal = _refusal(same, 3)
    assert refusal.code == "stage.needs_merge" and refusal.params["stages"] == [1, 2]
    with pytest.raises(OkstraError):
        run_handoff(same, "A")  # stage 3 is not done: the group cannot be handed off

    commands = refusal.how.removeprefix("merge them by hand, then rerun: ").split(" (or re-plan")[0]
    for line in commands.split(" && "):
        subprocess.run(shlex.split(line), check=True, capture_output=True)
    assert _status_json(capsys, same)[3]["state"] == "ready"
    prepare(same, PrepareOptions("implementation", stage="3"))
