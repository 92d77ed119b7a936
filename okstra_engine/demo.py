"""`okstra demo`: a real project with a task in mid-flight, to show every part of okstra.

`build_demo(dir)` makes, under `dir`:

- `shop/`: a git repository holding a small Python package, registered with okstra (QA
  command: the package's unittest suite);
- task `demo/checkout` ("Checkout flow") with an approved plan of six stages in three
  groups — A: 1; B: 2←1, 3←1, 4←1; C: 5←2,3; 6←4,5;
- the task worktree and stage worktrees 1-3, made and registered as `prepare` makes
  them (`worktrees.provision`, the anchor fixed in the registry), and a history that
  tells a story: stage 1 done and merged into the task worktree; stage 2 done at a
  commit that was then rebased onto the task branch (so its recorded commit is not an
  ancestor of the task branch, but a patch-equivalent one is: the board shows it
  not merged, and git reconcile suggests the rebased commit); stage 3 in flight in a run
  on another machine (a `reserved` and a `started` row, a work-in-progress commit in its
  worktree); stage 4 ready after an earlier attempt was released; 5 and 6 blocked. Done
  rows carry what `okstra record` stores (base ref, patch-ids, a pin ref);
- `agent-home/`: the coding agent's config dir, with the team of the run in flight and a
  team an earlier attempt at stage 4 left behind (so the quarantine dialog has work);
- `okstra-config.toml`: settings whose agent command is the simulated lead (playing an
  agent with explicit teams, so the team gate and its quarantine dialog show), and whose
  agents run on a tmux server of the demo's own (`tmux -L okstra-demo-…`), not among
  the person's sessions;
- `okstra-demo.json`: what was built (`DemoInfo`), so `okstra demo --dir DIR` reopens it.

The okstra home (`DIR/okstra-home`), the agent home and the config file are the demo's
own: the demo registers nothing in the person's okstra home (not even one `OKSTRA_HOME`
names) and never touches their `~/.claude` or settings.

Pass `now` for a byte-identical demo (snapshot tests): every commit, ledger row and run
id is derived from it, and git runs with fixed identities and no user or system config.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from . import clock, git
from .documents import Doc, load_doc
from .errors import OkstraError
from .teams import team_name

DEMO_TASK = "demo/checkout"
DEMO_PROJECT = "shop"
MARKER = "okstra-demo.json"
ENV_KEYS = ("OKSTRA_HOME", "OKSTRA_CONFIG", "CLAUDE_CONFIG_DIR")

PLAN = """---
title: Checkout flow
---
# Plan: checkout flow for the shop package

Turn a cart into a paid order. The order model comes first; pricing, payment and
inventory build on it side by side; the checkout API ties them together and order
emails go out last.

## Stage Map
| Stage | Title           | Depends on | Group |
|-------|-----------------|------------|-------|
| 1     | Order model     | -          | A     |
| 2     | Pricing rules   | 1          | B     |
| 3     | Payment adapter | 1          | B     |
| 4     | Inventory hold  | 1          | B     |
| 5     | Checkout API    | 2, 3       | C     |
| 6     | Order emails    | 4, 5       | C     |
"""

_FILES_MAIN = [
    (
        "Start the shop package",
        {
            "README.md": "# shop\n\nA tiny shop, used by the okstra demo.\n",
            "shop/__init__.py": '"""A tiny shop."""\n',
            "pyproject.toml": '[project]\nname = "shop"\nversion = "0.1.0"\n',
        },
    ),
    (
        "Cart keeps line items",
        {
            "shop/cart.py": (
                "from dataclasses import dataclass, field\n\n\n"
                "@dataclass\nclass Cart:\n"
                "    lines: dict[str, tuple[int, int]] = field(default_factory=dict)\n\n"
                "    def add(self, sku: str, price_cents: int, qty: int = 1) -> None:\n"
                "        _, have = self.lines.get(sku, (price_cents, 0))\n"
                "        self.lines[sku] = (price_cents, have + qty)\n\n"
                "    def total_cents(self) -> int:\n"
                "        return sum(price * qty for price, qty in self.lines.values())\n"
            ),
        },
    ),
    (
        "Test the cart total",
        {
            "tests/__init__.py": "",
            "tests/test_cart.py": (
                "import unittest\n\nfrom shop.cart import Cart\n\n\n"
                "class CartTest(unittest.TestCase):\n"
                "    def test_total(self) -> None:\n"
                "        cart = Cart()\n"
                '        cart.add("tea", 450, 2)\n'
                "        self.assertEqual(cart.total_cents(), 900)\n"
            ),
        },
    ),
]

_ORDER = (
    "from dataclasses import dataclass\n\nfrom .cart import Cart\n\n\n"
    "@dataclass(frozen=True)\nclass Order:\n"
    '    number: str\n    cart: Cart\n    status: str = "new"\n'
)
_PRICING = (
    "from .cart import Cart\n\n\n"
    "def price(cart: Cart, *, discount_pct: int = 0) -> int:\n"
    '    """The amount to charge, in cents, after the discount."""\n'
    "    total = cart.total_cents()\n"
    "    return total - total * discount_pct // 100\n"
)
_PAYMENT_WIP = (
    "class PaymentDeclined(Exception):\n    pass\n\n\n"
    "def charge(order_number: str, amount_cents: int) -> str:\n"
    "    # TODO: call the provider; for now every charge succeeds\n"
    '    return f"pay-{order_number}"\n'
)
_DOCS = "\n## Checkout\n\nOrders are priced, paid and reserved before they are confirmed.\n"


class DemoInfo(Doc):
    """`okstra-demo.json`. Read back, it is a stranger's file like any other: only the
    story's facts (commits, run ids, when it was built) and okstra's own variables are
    taken from it, and every place is derived from the folder it was found in."""

    dir: str
    project_root: str
    task: str
    okstra_home: str
    config_file: str
    agent_home: str
    env: dict[str, str]
    built_at: str
    commits: dict[str, str] = {}
    run_ids: dict[str, str] = {}

    def to_json(self) -> str:
        return self.model_dump_json(indent=2) + "\n"


def load_demo(directory: Path) -> DemoInfo | None:
    """The demo built in `directory` earlier, or None when there is none."""
    how = "build the demo in another directory (--dir)"
    try:
        info = load_doc(directory / MARKER, DemoInfo, how=how)
    except FileNotFoundError:
        return None
    env = {key: _demo_place(directory, key, info.env.get(key), how) for key in ENV_KEYS}
    return info.model_copy(
        update={
            "dir": str(directory),
            "project_root": str(directory / DEMO_PROJECT),
            "task": DEMO_TASK,
            "okstra_home": env["OKSTRA_HOME"],
            "config_file": env["OKSTRA_CONFIG"],
            "agent_home": env["CLAUDE_CONFIG_DIR"],
            "env": env,
        }
    )


def _demo_place(directory: Path, key: str, value: str | None, how: str) -> str:
    """One of okstra's variables from a demo marker: an absolute path inside the demo's
    folder once symlinks are resolved; the okstra home may also be the caller's own."""
    marker = directory / MARKER
    if not value or not os.path.isabs(value):
        raise OkstraError(f"{marker}: {key} must be an absolute path, not {value!r}", how)
    if not Path(value).resolve().is_relative_to(directory.resolve()):
        raise OkstraError(
            f"{marker}: {key} {value!r} is outside the demo's folder {directory}",
            f"reopen only demos okstra built there; or {how}",
        )
    return value


def build_demo(directory: Path, *, now: datetime | None = None, okstra_home: Path | None = None) -> DemoInfo:
    """Build the demo in `directory` (missing or empty). See the module docstring.
    `okstra_home` puts its okstra home elsewhere (tests that show its paths on screen);
    `okstra demo` never passes one."""
    directory = directory.expanduser().resolve()
    if directory.exists() and any(directory.iterdir()):
        raise OkstraError(
            f"{directory} is not empty, and holds no okstra demo",
            "pass --dir with a new or empty directory, or leave --dir out for a temporary one",
        )
    now = (now or clock.now()).astimezone(UTC).replace(microsecond=0)
    root = directory / DEMO_PROJECT
    env = {
        "OKSTRA_HOME": str(okstra_home or directory / "okstra-home"),
        "OKSTRA_CONFIG": str(directory / "okstra-config.toml"),
        "CLAUDE_CONFIG_DIR": str(directory / "agent-home"),
    }
    info = DemoInfo(
        dir=str(directory),
        project_root=str(root),
        task=DEMO_TASK,
        okstra_home=env["OKSTRA_HOME"],
        config_file=env["OKSTRA_CONFIG"],
        agent_home=env["CLAUDE_CONFIG_DIR"],
        env=env,
        built_at=_ts(now),
    )
    root.mkdir(parents=True)
    _write_config(Path(env["OKSTRA_CONFIG"]))
    with demo_environment(env):
        _build(root, info, now)
    (directory / MARKER).write_text(info.to_json(), encoding="utf-8")
    return info


@contextmanager
def demo_environment(env: dict[str, str]) -> Iterator[None]:
    """Point okstra (this process) at the demo's homes and config for the block."""
    from .config import settings

    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    settings.cache_clear()
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        settings.cache_clear()


def _write_config(path: Path) -> None:
    command = [sys.executable, "-m", "okstra_engine.sim_lead", "{run_dir}"]
    socket = "okstra-demo-" + hashlib.sha256(str(path.parent.resolve()).encode()).hexdigest()[:8]
    # JSON string escapes are valid TOML basic-string escapes
    path.write_text(
        "# written by `okstra demo`: the simulated lead plays the coding agent\n"
        f"agent_command = [{', '.join(json.dumps(part) for part in command)}]\n"
        "# it plays one with explicit agent teams: the demo shows their gate and quarantine\n"
        'agent_teams = "explicit"\n'
        "# the demo's agents run on a tmux server of its own, not among your sessions\n"
        f'tmux_socket = "{socket}"\n',
        encoding="utf-8",
    )


def _build(root: Path, info: DemoInfo, now: datetime) -> None:
    from . import registry
    from .carry import CarrySidecar, write_carry
    from .ledger import LedgerRow, Status, append_row
    from .ledger_state import LedgerState
    from .plans import import_plan
    from .projects import init_project
    from .reconcile import done_fields, target_commit
    from .run_folder import LEDGER_NAME
    from .slugs import TaskRef
    from .tasks import new_task, stage_branch
    from .worktrees import Target, provision, stage_target, task_slot, task_target

    def at(minutes: int) -> datetime:
        return now - timedelta(minutes=minutes)

    def worktree(target: Target, base: str) -> _DemoGit:
        provision(target, base)
        return _DemoGit(target.path)

    repo = _DemoGit(root)
    repo("init", "-q", "-b", "main")
    for offset, (message, files) in zip((300, 290, 280), _FILES_MAIN):
        repo.commit(files, message, at(offset))
    anchor = repo.rev("HEAD")

    # an okstra home given by a test may hold an earlier demo: init picks the next free id (shop-2…)
    project, _ = init_project(root, qa_commands=[f"{_quote(sys.executable)} -m unittest discover -s tests -q"])
    task = new_task(project, TaskRef.parse(DEMO_TASK), title="Checkout flow")
    plan_source = root.parent / "checkout-plan.md"
    plan_source.write_text(PLAN, encoding="utf-8")
    plan = import_plan(task, plan_source, approve=True)

    # the worktrees prepare would have made, registered; the anchor fixed at the first run
    registry.fix_anchor(task_slot(task), anchor)
    tw = worktree(task_target(task), anchor)

    # stage 1: done in its worktree, merged into the task worktree (group A handed off)
    s1 = worktree(stage_target(task, 1), anchor)
    c1 = s1.commit({"shop/order.py": _ORDER}, "Order model: an order wraps a cart", at(210))
    tw.at(at(200), "merge", "-q", "--no-ff", "-m", f"Merge {stage_branch(task, 1)} (group A)", stage_branch(task, 1))

    # stage 2: done at X; then someone rebased it onto the task branch (X') and merged
    # that, so the ledger's X is in no branch any more (git reconcile finds X')
    s2 = worktree(stage_target(task, 2), c1)
    x = s2.commit({"shop/pricing.py": _PRICING}, "Pricing rules: discounts in whole percent", at(160))
    tw.commit(
        {"README.md": "# shop\n\nA tiny shop, used by the okstra demo.\n" + _DOCS}, "Describe the checkout", at(110)
    )
    tw.at(at(100), "cherry-pick", x)
    x_rebased = tw.rev("HEAD")
    s2("reset", "-q", "--hard", x_rebased)

    # stage 3: in flight on another machine, one work-in-progress commit so far
    wip = worktree(stage_target(task, 3), c1).commit(
        {"shop/payment.py": _PAYMENT_WIP}, "Payment adapter: charge stub", at(5)
    )

    runs = {n: _run_id(at(m), n) for n, m in ((1, 240), (2, 170), (3, 14), (4, 150))}
    info.run_ids = {f"s{n}": r for n, r in runs.items()}
    info.commits = {"anchor": anchor, "s1": c1, "s2_recorded": x, "s2_rebased": x_rebased, "s3_wip": wip}
    key = task.key

    def row(minutes: int, stage: int, status: Status, host: str = "laptop", **extra: object) -> LedgerRow:
        # from a mapping: `extra` holds done_fields' untyped dict of done-row fields
        return LedgerRow.model_validate(
            {
                "ts": _ts(at(minutes)),
                "stage": stage,
                "status": status,
                "run_id": runs[stage],
                "impl_task_key": key,
                "host": host,
                **extra,
            }
        )

    rows = [
        row(240, 1, "reserved", base_ref=anchor),
        row(239, 1, "started"),
        row(170, 2, "reserved", base_ref=c1),
        row(169, 2, "started"),
        row(150, 4, "reserved", base_ref=anchor),
        row(60, 4, "released", reason="manual"),
        row(14, 3, "reserved", host="build-box", base_ref=c1),
        row(13, 3, "started", host="build-box"),
    ]
    # done rows carry what `okstra record` stores: base ref, patch-ids, and a pin ref
    target = target_commit(task)
    for minutes, n, sha in ((209, 1, c1), (159, 2, x)):
        rows.append(
            row(minutes, n, "done", head_commit=sha, **done_fields(task, n, sha, LedgerState.of(rows), target=target))
        )
    ledger = plan.dir / LEDGER_NAME
    for r in sorted(rows, key=lambda r: r.ts):
        append_row(ledger, r)
    write_carry(
        plan.dir,
        CarrySidecar(stage=1, head_commit=c1, impl_task_key=key, summary="Order model with number, cart and status."),
    )
    write_carry(
        plan.dir,
        CarrySidecar(stage=2, head_commit=x, impl_task_key=key, summary="price() applies a whole-percent discount."),
    )

    agent_home = Path(info.agent_home)
    _team(agent_home, team_name(project.id, task.ref, 3), at(13), runs[3])
    _team(agent_home, team_name(project.id, task.ref, 4), at(149), runs[4])


def _team(agent_home: Path, name: str, when: datetime, run_id: str) -> None:
    """A coding agent team's state, as the agent leaves it: a config and a task list."""
    team = agent_home / "teams" / name
    tasks = agent_home / "tasks" / name
    team.mkdir(parents=True)
    tasks.mkdir(parents=True)
    config = {
        "name": name,
        "createdAt": _ts(when),
        "createdBy": run_id,
        "members": [
            {"name": "lead", "agentType": "lead"},
            {"name": "executor", "agentType": "worker"},
            {"name": "verifier", "agentType": "worker"},
        ],
    }
    (team / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    (tasks / "1.json").write_text(
        json.dumps({"id": "1", "subject": "implement the stage", "status": "in_progress"}, indent=2) + "\n",
        encoding="utf-8",
    )


class _DemoGit:
    """git for building the demo (through okstra_engine.git): fixed identity and dates, no
    user or system config, so the demo's commits are the same every time."""

    ENV = {
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "Demo Developer",
        "GIT_AUTHOR_EMAIL": "dev@shop.example",
        "GIT_COMMITTER_NAME": "Demo Developer",
        "GIT_COMMITTER_EMAIL": "dev@shop.example",
    }

    def __init__(self, root: Path) -> None:
        self.root = root

    def __call__(self, *args: str, when: datetime | None = None) -> str:
        env = dict(self.ENV)
        if when is not None:
            stamp = f"@{int(when.timestamp())} +0000"
            env.update(GIT_AUTHOR_DATE=stamp, GIT_COMMITTER_DATE=stamp)
        try:
            proc = git.run(["-c", "commit.gpgsign=false", "-c", "core.autocrlf=false", *args], self.root, env=env)
        except git.GitError as exc:
            raise OkstraError(f"building the demo: {exc.what}", "check that git 2.38 or newer is installed") from exc
        return proc.stdout.strip()

    def at(self, when: datetime, *args: str) -> str:
        return self(*args, when=when)

    def commit(self, files: dict[str, str], message: str, when: datetime) -> str:
        for name, content in files.items():
            path = self.root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content, encoding="utf-8")
        self("add", "--", *files)
        self("commit", "-q", "-m", message, when=when)
        return self.rev("HEAD")

    def rev(self, rev: str) -> str:
        return self("rev-parse", "--verify", rev)


def _run_id(when: datetime, stage: int) -> str:
    """The shape of `runs.new_run_id`, with a tail derived from its inputs (reproducible)."""
    stamp = clock.stamp(when)
    tail = hashlib.sha256(f"{stamp}-{stage}".encode()).hexdigest()[:6]
    return f"{stamp}-implementation-s{stage}-{tail}"


def _ts(moment: datetime) -> str:
    return clock.iso(moment)


def _quote(path: str) -> str:
    return shlex.quote(path)
