"""Stage-group handoff: land a finished group of stages in the task worktree, all or
nothing, and write down what landed where.

- `plan`: the merge plan of a group (read-only): its stages, why any cannot be handed
  off, how each done commit stands against the task worktree HEAD;
- `merge`: `run_handoff`, the run under the task mutex (reconcile, merges, undo);
- `recovery`: the journal and the clean-up after a handoff killed mid-merge;
- `records`: `handoffs.jsonl`, one row per handoff;
- `report`: `handoff-G.md`.
"""

from __future__ import annotations

from .merge import HandoffResult, next_command, run_handoff
from .plan import HandoffError, HandoffPlan, StagePlan, handoff_plan, locate_task_worktree, pick_group
from .records import HANDOFFS_NAME, HandoffRow, HandoffsRead, LandedStage, append_handoff, handoffs_path, read_handoffs
from .recovery import JOURNAL_NAME
from .report import render_report, report_name, write_report

__all__ = [
    "HANDOFFS_NAME",
    "JOURNAL_NAME",
    "HandoffError",
    "HandoffPlan",
    "HandoffResult",
    "HandoffRow",
    "HandoffsRead",
    "LandedStage",
    "StagePlan",
    "append_handoff",
    "handoff_plan",
    "handoffs_path",
    "locate_task_worktree",
    "next_command",
    "pick_group",
    "read_handoffs",
    "render_report",
    "report_name",
    "run_handoff",
    "write_report",
]
