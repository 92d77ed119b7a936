"""The task mutex: engine operations that read a task's ledger and then append take it
themselves, wait for another holder (saying so once), and re-enter it in one thread."""

from __future__ import annotations

import threading
import time

import pytest

from okstra_engine import reconcile
from okstra_engine.errors import OkstraError
from okstra_engine.ledger import LEDGER_NAME, read_ledger
from okstra_engine.locks import task_mutex, waiting_message
from okstra_engine.plans import plan_run_root
from okstra_engine.prepare import PrepareOptions, prepare
from okstra_engine.record import record
from tests.support import call, mutex_held_elsewhere


def ledger_rows(task) -> list:
    return read_ledger(plan_run_root(task).dir / LEDGER_NAME).rows


def in_thread(work) -> tuple[threading.Thread, list]:
    out: list = []

    def run() -> None:
        try:
            out.append(work())
        except BaseException as exc:  # noqa: BLE001 - handed to the test to assert on
            out.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def test_a_record_waits_while_another_process_holds_the_task(task) -> None:
    prepare(task, PrepareOptions("implementation"))  # stage 1 reserved
    before = len(ledger_rows(task))
    heard: list[str] = []
    with mutex_held_elsewhere(task):
        thread, out = in_thread(lambda: record(task, 1, "started", on_wait=heard.append))
        time.sleep(0.5)
        # it read nothing to act on and appended nothing while the other process held the task
        assert thread.is_alive() and not out
        assert len(ledger_rows(task)) == before
    thread.join(timeout=30)
    assert not thread.is_alive() and not isinstance(out[0], BaseException)
    assert [r.status for r in ledger_rows(task)][before:] == ["started"]
    assert heard == [waiting_message(task)]


def test_a_reconcile_apply_waits_while_another_process_holds_the_task(task) -> None:
    with mutex_held_elsewhere(task):
        thread, out = in_thread(lambda: reconcile.apply(task, []))
        time.sleep(0.5)
        assert thread.is_alive() and not out
    thread.join(timeout=30)
    assert out == [[]]


def test_the_cli_record_says_once_that_it_waits(task, capsys) -> None:
    prepare(task, PrepareOptions("implementation"))
    with mutex_held_elsewhere(task) as holder:
        timer = threading.Timer(0.5, holder.kill)
        timer.start()
        code, out, err = call(
            capsys, "--project", str(task.project.root), "record", "auth/login", "--stage", "1", "--status", "started"
        )
        timer.join()
    assert code == 0, err
    assert err.count("waiting for another okstra process on auth/login") == 1
    assert "okstra: stage 1 started" in out


def test_the_mutex_is_reentrant_in_one_thread_and_exclusive_across_threads(task) -> None:
    def take() -> str:
        with task_mutex(task, timeout=0.2):
            return "taken"

    with task_mutex(task, timeout=0.1), task_mutex(task, timeout=0.1):
        assert take() == "taken"  # the same thread again
        # another thread opens its own lock file description: it waits like a process would
        thread, out = in_thread(take)
        thread.join(timeout=10)
        assert isinstance(out[0], OkstraError) and "another okstra process" in out[0].what
    # released once the outer block ends
    thread, out = in_thread(take)
    thread.join(timeout=10)
    assert out == ["taken"]


def test_prepare_holds_the_mutex_while_it_reconciles_and_records(task) -> None:
    """prepare calls carry backfill and auto-reconcile, which take the mutex themselves:
    re-entering it in the same thread must not wait on its own lock."""
    thread, out = in_thread(lambda: prepare(task, PrepareOptions("implementation")).manifest.stage)
    thread.join(timeout=60)
    assert out == [1]


def test_an_unreachable_holder_times_out_with_the_task_named(task) -> None:
    with (
        mutex_held_elsewhere(task),
        pytest.raises(OkstraError, match="another okstra process has been working on auth/login"),
        task_mutex(task, timeout=0.2),
    ):
        pass
