"""A block of ports per stage in flight: `OKSTRA_PORT` and the nine after it are the
stage's own for its dev servers, so stages side by side never fight over a port.

A block is given out by `prepare` with the stage's reservation (a render-only prepare
reserves nothing and names none) and kept in its `reserved` ledger row (`port`), where it is found again (`launch` puts it in the agent's
environment); it is held while the stage is in flight, stale included (its servers may
still run). A block is given only when every port in it can be bound on 127.0.0.1 at
that moment and no stage in flight of any task of the project holds it; the choice and
the reserved row's append happen under one machine-wide lock, so prepares racing on
several tasks still get distinct blocks. Each project starts looking at its own offset in
the range, so two projects rarely look at the same blocks first.
"""

from __future__ import annotations

import socket
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from .errors import OkstraError
from .ledger import LedgerRow
from .ledger_state import StageLedger
from .projects import Project
from .refusals import Refusal

BLOCK = 10
FIRST = 20000
LAST = 29999
FIELD = "port"
"""The `reserved` ledger row's field holding the block's first port."""
VARIABLE = "OKSTRA_PORT"


def block_of(stage: StageLedger) -> int | None:
    """The block a stage's reservation holds: the one its current streak's `reserved` row
    names (what launch gives the agent), else its latest row's."""
    return port_of(stage.streak.start) or port_of(stage.latest)


def port_of(row: LedgerRow) -> int | None:
    """The block a ledger row names, when it names a valid one (the ledger is a file the
    project's agents can write: anything else is no block)."""
    value = (row.model_extra or {}).get(FIELD)
    if isinstance(value, int) and not isinstance(value, bool) and FIRST <= value <= LAST - BLOCK + 1:
        return value
    return None


def held(project: Project) -> set[int]:
    """The blocks the project's stages in flight hold, over all its tasks."""
    from .ledger_state import read_state
    from .plans import plan_run_root
    from .run_folder import LEDGER_NAME
    from .tasks import list_tasks, load_task

    blocks: set[int] = set()
    for ref in list_tasks(project):
        try:
            plan = plan_run_root(load_task(project, ref))
        except OkstraError:
            continue  # a task okstra cannot read holds no block it could find again
        if plan is None:
            continue
        for stage in read_state(plan.dir / LEDGER_NAME).stages.values():
            if stage.in_flight:
                found = block_of(stage)
                if found is not None:
                    blocks.add(found)
    return blocks


def pick(project: Project, taken: set[int], *, free: Callable[[int], bool] | None = None) -> int:
    """The first block from the project's offset on that no stage holds and whose ports
    are all free on the machine now."""
    is_free = free or bindable
    count = (LAST - FIRST + 1) // BLOCK
    start = zlib.crc32(project.id.encode()) % count
    for n in range(count):
        base = FIRST + ((start + n) % count) * BLOCK
        if base not in taken and all(is_free(port) for port in range(base, base + BLOCK)):
            return base
    raise Refusal("port.none_free", {"first": FIRST, "last": LAST, "block": BLOCK}).error()


def bindable(port: int) -> bool:
    """Whether a server could listen on `port` on 127.0.0.1 now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@contextmanager
def ports_lock() -> Iterator[None]:
    """Held from choosing a block until the reserved row naming it is written."""
    from .locations import okstra_home
    from .locks import file_lock

    with file_lock(okstra_home() / "locks" / "ports.lock", timeout=120.0, what="the port blocks"):
        yield
