from __future__ import annotations

from pathlib import Path

import pytest

from tests.share.machines import bare_remote, machines, shared_task, stage_map


@pytest.fixture
def pair(tmp_path: Path):
    """A bare remote and two machines sharing a task of three stages (stage 3 after 1)."""
    remote = bare_remote(tmp_path)
    fleet = machines(tmp_path, remote, 2)
    shared_task(tmp_path, fleet, stage_map(tmp_path, 3, {3: [1]}))
    return remote, fleet
