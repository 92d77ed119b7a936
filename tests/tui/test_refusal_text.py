"""Refusals in the person's language: every engine code has its texts in English and
Korean, renders from its params, and in English says exactly what the CLI says."""

from __future__ import annotations

import pytest

from okstra_engine.refusals import Refusal, codes
from okstra_tui.i18n import load_texts, set_language
from okstra_tui.refusal_text import error_texts, refusal_texts

T = "demo/checkout"
SHA = "1a2b3c4d" + "e" * 32
SHA2 = "9f8e7d6c" + "b" * 32
RUN = "20250314T091600Z-implementation-s3-302d6f"
FIX = "git -C /wt merge --no-ff okstra/feature/demo/checkout-s2"

EXAMPLES: dict[str, list[dict]] = {
    "phase.unknown": [{"phase": "nope", "phases": ["planning", "implementation"]}],
    "phase.no_qa": [{"task": T, "project": "shop", "root": "/home/me/shop"}],
    "phase.no_plan": [{"task": T}],
    "phase.plan_draft": [{"task": T}],
    "phase.plan_broken": [{"task": T, "run": RUN, "what": "plan.md: line 9: stage 2 depends on unknown stage 7"}],
    "phase.not_verified": [{"task": T}],
    "phase.verification_failed": [{"task": T, "run": RUN, "verdict": "FAIL"}],
    "phase.all_done": [{"task": T}],
    "phase.nothing_ready": [
        {
            "task": T,
            "blocked": [{"stage": 5, "waits_for": [3]}, {"stage": 6, "waits_for": [4, 5]}],
            "in_flight": [{"stage": 3, "run": RUN}, {"stage": 4, "run": None}],
            "stale": [{"stage": 2, "run": "r2", "why": "agent pid 4242 is gone"}],
        },
        {"task": T, "blocked": [{"stage": 2, "waits_for": [1]}], "in_flight": [{"stage": 1, "run": RUN}], "stale": []},
        {
            "task": T,
            "blocked": [
                {"stage": 4, "waits_for": [], "reason": {"code": "needs-handoff", "stages": [2, 3], "groups": ["B"]}},
                {
                    "stage": 5,
                    "waits_for": [],
                    "reason": {"code": "needs-merge", "stages": [1, 4], "groups": ["A", "C"]},
                },
                {"stage": 6, "waits_for": [5], "reason": {"code": "deps-not-done", "stages": [5]}},
            ],
            "in_flight": [],
            "stale": [],
        },
        {
            "task": T,
            "blocked": [
                {"stage": 3, "waits_for": [], "reason": {"code": "needs-merge", "stages": [1, 2], "groups": ["A"]}}
            ],
            "in_flight": [],
            "stale": [],
        },
        {"task": T, "blocked": [], "in_flight": [], "stale": [{"stage": 1, "run": None, "why": "silent"}]},
    ],
    "phase.stages_not_done": [{"task": T, "stages": [3, 4, 5, 6]}],
    "phase.stages_not_merged": [
        {"task": T, "stages": [{"stage": 4, "commit": SHA}], "head": None, "fix": None},
        {"task": T, "stages": [{"stage": 2, "commit": SHA}, {"stage": 3, "commit": SHA2}], "head": SHA2, "fix": FIX},
    ],
    "verify.task_worktree_dirty": [
        {"task": T, "path": "/wt", "paths": ["a.py", "b.py"]},
        {"task": T, "path": "/wt", "paths": [f"f{i}.py" for i in range(8)]},
    ],
    "verify.stage_not_done": [{"task": T, "stage": 4}],
    "verify.stage_worktree_missing": [
        {"task": T, "stage": 2, "path": None, "branch": "okstra/feature/demo/checkout-s2"},
        {"task": T, "stage": 2, "path": "/wt-s2", "branch": "okstra/feature/demo/checkout-s2"},
    ],
    "verify.stage_worktree_dirty": [{"task": T, "stage": 2, "path": "/wt-s2", "paths": ["x.py"]}],
    "stage.unknown": [{"task": T, "stage": 9, "stages": [1, 2, 3, 4, 5, 6]}],
    "stage.done": [
        {"task": T, "stage": 1, "commit": SHA, "run": RUN},
        {"task": T, "stage": 1, "commit": None, "run": None},
    ],
    "stage.in_flight": [
        {"task": T, "stage": 3, "run": RUN, "since": "2025-03-14T09:16:00Z"},
        {"task": T, "stage": 3, "run": None, "since": None},
    ],
    "stage.stale": [{"task": T, "stage": 3, "run": RUN, "why": "agent pid 4242 is gone"}],
    "stage.blocked": [{"task": T, "stage": 5, "waits_for": [3]}, {"task": T, "stage": 6, "waits_for": [4, 5]}],
    "stage.needs_handoff": [
        {"task": T, "stage": 4, "stages": [2, 3], "groups": ["B"]},
        {"task": T, "stage": 6, "stages": [2, 5], "groups": ["B", "my group"]},
    ],
    "stage.needs_merge": [
        {
            "task": T,
            "stage": 3,
            "stages": [1, 2],
            "groups": ["A"],
            "worktree": "/wt",
            "branches": ["okstra/feature/demo/checkout-s1", "okstra/feature/demo/checkout-s2"],
        }
    ],
    "stage.dep_no_commit": [{"task": T, "stage": 3, "dep": 1}],
    "stage.dep_commit_missing": [{"task": T, "stage": 3, "dep": 1, "commit": SHA}],
    "stage.deps_not_merged": [
        {
            "task": T,
            "stage": 4,
            "deps": [2, 3],
            "unmerged": [{"stage": 2, "commit": SHA}],
            "worktree": "/wt",
            "head": SHA2,
            "fixes": [{"stage": 2, "fix": FIX}],
        },
        {
            "task": T,
            "stage": 4,
            "deps": [2, 3],
            "unmerged": [{"stage": 2, "commit": SHA}, {"stage": 3, "commit": SHA2}],
            "worktree": "/wt",
            "head": None,
            "fixes": [{"stage": 2, "fix": FIX}, {"stage": 3, "fix": FIX}],
        },
    ],
    "handoff.in_flight": [{"task": T, "stage": 3, "run": RUN, "since": "2025-03-14T09:16:00+00:00"}],
    "handoff.stale": [{"task": T, "stage": 3, "run": None, "why": "silent past the TTL"}],
    "handoff.blocked": [{"task": T, "stage": 4, "waits_for": [2, 3]}],
    "handoff.not_started": [{"task": T, "stage": 4}],
    "handoff.no_commit": [{"task": T, "stage": 2}],
    "handoff.unclassified": [{"task": T, "stage": 2, "why": "fatal: bad object 1a2b3c4d"}],
    "handoff.commit_missing": [{"task": T, "stage": 2, "commit": SHA, "fix": FIX}],
    "plan.replaces_progress": [
        {
            "task": T,
            "plan": "20250314T080000Z-planning-1a2b3c",
            "total": 6,
            "started": [1, 2, 3],
            "done": [1, 2],
            "in_flight": [3],
            "fix": "okstra plan approve demo/checkout --replace",
        },
        {
            "task": T,
            "plan": "20250314T080000Z-planning-1a2b3c",
            "total": 6,
            "started": [1],
            "done": [],
            "in_flight": [],
            "fix": "okstra prepare demo/checkout --type planning --replace",
        },
    ],
    "record.commit_is_base": [{"task": T, "stage": 2, "commit": SHA, "base": SHA}],
    "record.commit_not_on_branch": [
        {"task": T, "stage": 2, "commit": SHA, "branch": "okstra/feature/g/x-s2", "tip": SHA}
    ],
    "record.not_empty": [{"task": T, "stage": 2, "commit": SHA2, "base": SHA}],
    "record.run_elsewhere": [
        {"task": T, "stage": 2, "run": "r1", "run_stage": 2, "plan": "p0", "current": "p1"},
        {"task": T, "stage": 2, "run": "r1", "run_stage": 3, "plan": "p1", "current": "p1"},
    ],
    "record.reopen_not_done": [
        {"task": T, "stage": 2, "latest": None},
        {"task": T, "stage": 2, "latest": "reserved"},
    ],
    "reconcile.commit_not_on_branches": [
        {
            "task": T,
            "stage": 2,
            "commit": SHA,
            "branch": "okstra/feature/demo/checkout-s2",
            "tip": SHA2,
            "task_branch": "okstra/feature/demo/checkout",
            "task_tip": SHA2,
        }
    ],
    "handoff.rewritten": [
        {
            "task": T,
            "stage": 2,
            "commit": SHA,
            "tip": SHA2,
            "branch": "okstra/feature/demo/checkout-s2",
            "record": f"okstra record {T} --stage 2 --status done --commit {SHA2}",
            "reset": f"git -C /wt-s2 reset --keep {SHA}",
        }
    ],
    "handoff.conflict": [
        {
            "task": T,
            "group": "B",
            "worktree": "/wt",
            "head": SHA2,
            "conflicts": [{"stage": 3, "title": "Exporter", "files": ["a.py", "b.py"]}],
            "merges": [{"stage": 2, "commit": SHA}, {"stage": 3, "commit": SHA2}],
        },
        {
            "task": T,
            "group": "late group",
            "worktree": "/my tasks/wt",
            "head": SHA2,
            "conflicts": [
                {"stage": 2, "title": "Importer", "files": [f"f{i}.py" for i in range(7)]},
                {"stage": 3, "title": "Exporter", "files": ["a.py"]},
            ],
            "merges": [{"stage": 2, "commit": SHA}, {"stage": 3, "commit": SHA2}],
        },
    ],
    "verify.stage_head_moved": [
        {
            "task": T,
            "stage": 2,
            "commit": SHA,
            "head": SHA2,
            "path": "/wt-s2",
            "record": f"okstra record {T} --stage 2 --status done --commit {SHA2}",
            "reset": f"git -C /wt-s2 reset --keep {SHA}",
        }
    ],
    "include.outside": [{"file": "/home/me/shop/.worktreeinclude", "line": 2, "pattern": "../secrets/.env"}],
    "include.link_out": [{"path": "/home/me/shop/.env", "target": "/etc/shop.env"}],
    "setup.failed": [
        {
            "command": "npm ci",
            "worktree": "/wt-s2",
            "code": 1,
            "log": "/home/me/shop/.okstra/tasks/demo/checkout/runs/r1/setup.log",
            "tail": "npm ERR! code ENOENT\nnpm ERR! missing package.json",
            "root": "/home/me/shop",
        }
    ],
    "port.none_free": [{"first": 20000, "last": 29999, "block": 10}],
    "share.stage_taken": [{"task": T, "stage": 3, "machine": "0123456789abcdef", "host": "laptop", "run": RUN}],
    "share.unreachable": [{"task": T, "remote": "origin", "error": "origin did not answer in 5 s"}],
    "release.no_reservation": [
        {"task": T, "stage": 4, "latest": None},
        {"task": T, "stage": 4, "latest": "released"},
    ],
    "sync.in_flight": [{"task": T, "stage": 2, "run": RUN, "since": "2026-06-10T12:00:00Z"}],
    "sync.no_worktree": [{"task": T, "stage": 2}],
    "sync.busy": [{"task": T, "stage": 2, "path": "/wt/my stage", "operation": "a merge"}],
    "sync.dirty": [{"task": T, "stage": 2, "path": "/wt/s2", "paths": ["a.py", "b.py"]}],
    "sync.rebase_done": [{"task": T, "stage": 2, "commit": SHA}],
    "sync.conflict": [
        {
            "task": T,
            "stage": 2,
            "path": "/wt/s2",
            "paths": ["shared.txt"],
            "operation": "rebase",
            "branch": "okstra/feature/demo/checkout",
        }
    ],
    "managed.no_tmux": [{}],
}


@pytest.fixture(autouse=True)
def english():
    yield
    set_language("en")


def test_every_engine_code_has_english_and_korean_texts_and_an_example() -> None:
    assert sorted(EXAMPLES) == codes()
    for lang in ("en", "ko"):
        texts = load_texts(lang)
        for code in codes():
            assert texts.get(f"refusal.{code}", "").strip(), (lang, code)
            assert texts.get(f"refusal.{code}.how", "").strip(), (lang, code)


@pytest.mark.parametrize("code", codes())
def test_in_english_a_refusal_says_what_the_cli_says(code: str) -> None:
    set_language("en")
    for params in EXAMPLES[code]:
        refusal = Refusal(code, params)
        assert refusal_texts(refusal) == (refusal.what, refusal.how)


@pytest.mark.parametrize("code", codes())
def test_in_korean_every_refusal_renders(code: str) -> None:
    set_language("ko")
    for params in EXAMPLES[code]:
        refusal = Refusal(code, params)
        what, how = refusal_texts(refusal)  # a missing field would raise KeyError
        assert what and how and "{" not in what + how
        assert what != refusal.what, code  # not the engine's English
        assert not what.startswith("refusal."), what  # a text, not its key
        english = refusal.what + refusal.how
        for value in params.values():  # refs, paths, commands and git's words as they are
            if isinstance(value, str) and value in english:
                assert value in what + how, (code, value)


def test_an_engine_error_that_is_no_refusal_keeps_its_words() -> None:
    from okstra_engine.errors import OkstraError

    set_language("ko")
    refusal = Refusal("handoff.not_started", {"task": T, "stage": 4})
    assert error_texts(refusal.error()) == refusal_texts(refusal) != (refusal.what, refusal.how)
    assert error_texts(OkstraError("what", "how")) == ("what", "how")


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_briefs_render_for_their_codes(lang: str) -> None:
    from okstra_tui.refusal_text import refusal_brief

    set_language(lang)
    briefs = [key.removeprefix("refusal.").removesuffix(".brief") for key in load_texts(lang) if key.endswith(".brief")]
    assert "phase.stages_not_done" in briefs
    for code in briefs:
        assert code in codes()
        for params in EXAMPLES[code]:
            brief = refusal_brief(Refusal(code, params))
            assert brief and "{" not in brief and brief != refusal_texts(Refusal(code, params))[0]
    waiting = Refusal("phase.nothing_ready", EXAMPLES["phase.nothing_ready"][0])
    # what the stages wait on: those in flight or stale, as a list is said in the language
    assert {"en": "stages 2, 3 and 4", "ko": "스테이지 2, 3, 4"}[lang] in refusal_brief(waiting)
    no_brief = Refusal("stage.blocked", EXAMPLES["stage.blocked"][0])
    assert refusal_brief(no_brief) == refusal_texts(no_brief)[0]
