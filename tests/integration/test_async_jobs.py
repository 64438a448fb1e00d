"""Async mode: ``async def`` tasks as coroutines on a worker's event loop, in a process of its
own, against a real PostgreSQL.

The first tests run jobs through ``Minion.perform_jobs`` (an in-process worker, its fork
server and event-loop process real); the others start ``run_worker.py`` as a real worker
process, to reach it with remote commands and signals and to kill its event loop.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import async_tasks
from helpers.processes import gone
from helpers.waiting import wait_until
from test_worker_run import (  # the worker-process fixtures of Worker.run's own tests
    WorkerProcess,
    job_info,
    start_worker,
    wait_for_state,
)

from minion_daemon import Job, Minion
from minion_daemon.backend import PgBackend
from minion_daemon.model import Mode

__all__ = ["start_worker"]  # a fixture, used by name

KILLED = "Job terminated unexpectedly (exit code: 0, signal: 9)"


@pytest.fixture
def minion(dsn: str) -> Iterator[Minion]:
    minion = Minion(PgBackend(dsn, min_size=0, max_size=2))
    for name, task in async_tasks.TASKS.items():
        minion.add_task(name, task, timeout=0.5 if name == "async_sleep" else None)
    yield minion
    minion.close()


def _began(minion: Minion, job_id: int) -> None:
    """Wait until ``async_sleep``'s coroutine runs (so a cancel reaches its ``finally``)."""
    wait_until(lambda: job_info(minion, job_id)["notes"].get("began"), 10, f"job {job_id} began")


def _state(minion: Minion, job_id: int) -> tuple[str, Any]:
    info = job_info(minion, job_id)
    return info["state"], info["result"]


# Registration


def test_a_coroutine_task_runs_in_async_mode_unless_told_otherwise(minion: Minion) -> None:
    assert minion.tasks.get("async_add").mode == Mode.ASYNC  # type: ignore[union-attr]
    assert minion.tasks.get("async_echo").mode == Mode.ASYNC  # type: ignore[union-attr]
    minion.add_task("forked_async", async_tasks.async_add, mode="fork")
    assert minion.tasks.get("forked_async").mode == Mode.FORK  # type: ignore[union-attr]
    minion.tasks.configure("async_add", mode=None, timeout=3)
    assert minion.tasks.get("async_add").mode == Mode.ASYNC  # type: ignore[union-attr]


def test_a_job_subclass_with_an_async_run_is_refused_with_the_fix(minion: Minion) -> None:
    class Wrong(Job):
        async def run(self, *args: Any) -> None:  # type: ignore[override]
            pass

    with pytest.raises(TypeError, match=r"subclass minion_daemon\.AsyncJob instead of Job"):
        minion.add_task("wrong", Wrong)


# What holds for every mode


def test_the_coroutines_return_value_is_the_result(minion: Minion) -> None:
    added = minion.enqueue("async_add", [1, 2])
    echoed = minion.enqueue("async_echo", ["x"])
    minion.perform_jobs()
    assert _state(minion, added) == ("finished", {"added": 3})
    assert _state(minion, echoed) == ("finished", ["async_echo", "x"])


def test_an_exception_fails_the_job_with_message_and_traceback_and_retries_it(
    minion: Minion,
) -> None:
    job_id = minion.enqueue("async_fail", ["boom"], attempts=2)
    minion.perform_jobs()
    info = job_info(minion, job_id)
    assert (info["state"], info["retries"]) == ("inactive", 1), "retried: an attempt was left"
    assert info["result"].startswith("ValueError: boom\n\nTraceback (most recent call last):")
    assert "async_tasks.py" in info["result"]


def test_the_timeout_cancels_the_coroutine_whose_finally_runs(minion: Minion) -> None:
    job_id = minion.enqueue("async_sleep", [30])
    minion.perform_jobs()
    info = job_info(minion, job_id)
    assert (info["state"], info["result"]) == ("failed", "Job timed out after 0.5 seconds")
    assert info["notes"] == {"began": True, "cleaned": True}, "its finally ran, and awaited"


def test_the_handle_has_awaitable_database_methods(minion: Minion) -> None:
    job_id = minion.enqueue("async_handle", ["v"])
    minion.perform_jobs()
    info = job_info(minion, job_id)
    assert info["state"] == "finished"
    assert info["result"] == {"notes": {"seen": "v"}, "state": "active"}


def test_mode_fork_runs_a_coroutine_with_asyncio_run_in_a_job_process(minion: Minion) -> None:
    minion.add_task("forked_handle", async_tasks.async_handle, mode="fork")
    job_id = minion.enqueue("forked_handle", ["f"])
    minion.perform_jobs()
    state, result = _state(minion, job_id)
    assert (state, result["notes"]["seen"]) == ("finished", "f")
    assert result["notes"]["minion_pid"] != os.getpid(), "in a job process"


def test_a_coroutine_that_held_the_loop_is_reported_as_lag(minion: Minion) -> None:
    lags: list[float] = []
    minion.on("worker", lambda _, worker: worker.on("loop_lag", lambda _, lag: lags.append(lag)))
    held = minion.enqueue("async_block", [0.8])
    after = minion.enqueue("async_add", [1, 1])  # its run reads what the loop said since
    minion.perform_jobs()
    assert _state(minion, held) == ("finished", None)
    assert _state(minion, after) == ("finished", {"added": 2})
    assert lags, "minion_event_loop_lag_seconds observes the worker's loop_lag events"
    assert max(lags) >= 0.7


# A real worker process


def _descendant_named(pid: int, comm: str) -> int | None:
    """A process under ``pid`` whose ``comm`` is ``comm`` (the event loop: minion-aio)."""
    parents: dict[int, int] = {}
    names: dict[int, str] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        child = int(stat.parent.name)
        names[child] = text[text.index("(") + 1 : text.rindex(")")]
        parents[child] = int(text.rsplit(")", 1)[1].split()[1])
    for child, name in names.items():
        ancestor = parents.get(child)
        while ancestor and ancestor != pid:
            ancestor = parents.get(ancestor)
        if name == comm and ancestor == pid:
            return child
    return None


def _event_loop_of(worker: WorkerProcess) -> int:
    return wait_until(lambda: _descendant_named(worker.pid, "minion-aio"), 10, "the event loop")


def test_coroutines_run_concurrently_up_to_async_jobs(
    minion: Minion, start_worker: Callable[..., WorkerProcess]
) -> None:
    start_worker(jobs=1, async_jobs=20, timeouts={"async_sleep": 60})
    ids = [minion.enqueue("async_sleep", [3]) for _ in range(25)]

    def active() -> int:
        return minion.stats()["active_jobs"]

    wait_until(lambda: active() >= 20, 10, "20 coroutines running")
    assert active() == 20, "no more than async_jobs at once, with a process slot left over"
    for job_id in ids:
        wait_for_state(minion, job_id, "finished", 30)


def test_a_tasks_limit_holds_for_its_coroutines(
    minion: Minion, start_worker: Callable[..., WorkerProcess]
) -> None:
    start_worker(async_jobs=10, limits={"async_sleep": 2}, timeouts={"async_sleep": 60})
    ids = [minion.enqueue("async_sleep", [1]) for _ in range(5)]
    added = minion.enqueue("async_add", [1, 1])
    assert wait_for_state(minion, added, "finished")["result"] == {"added": 2}, "others run"
    wait_until(lambda: minion.stats()["active_jobs"] == 2, 10, "two limited coroutines")
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        assert minion.stats()["active_jobs"] <= 2, "the limit holds while they run"
        time.sleep(0.05)
    for job_id in ids:
        wait_for_state(minion, job_id, "finished", 30)


def test_kill_and_stop_cancel_only_the_coroutine_they_name(
    minion: Minion, start_worker: Callable[..., WorkerProcess]
) -> None:
    start_worker(command_interval=0.2, dequeue_timeout=1, timeouts={"async_sleep": 60})
    killed, stopped, spared = (minion.enqueue("async_sleep", [30]) for _ in range(3))
    for job_id in (killed, stopped, spared):
        _began(minion, job_id)

    assert minion.broadcast("kill", ["USR1", killed]), "changes nothing for a coroutine"
    assert minion.broadcast("kill", ["INT", killed])
    info = wait_for_state(minion, killed, "failed")
    assert info["result"] == "Job terminated unexpectedly (exit code: 0, signal: 2)"
    assert info["notes"] == {"began": True, "cleaned": True}, "cancelled: its finally ran"
    assert minion.broadcast("stop", [stopped])
    assert wait_for_state(minion, stopped, "failed")["result"] == KILLED
    assert job_info(minion, spared)["state"] == "active"


def test_term_lets_coroutines_finish_and_quit_cancels_them_and_retries_them(
    minion: Minion, start_worker: Callable[..., WorkerProcess]
) -> None:
    graceful = start_worker(dequeue_timeout=1, timeouts={"async_sleep": 60})
    finishing = minion.enqueue("async_sleep", [1])
    wait_for_state(minion, finishing, "active")
    graceful.send(signal.SIGTERM)
    assert graceful.wait(15) == 0
    assert _state(minion, finishing) == ("finished", 1)

    quitting = start_worker(dequeue_timeout=1, quit_grace=5, timeouts={"async_sleep": 60})
    cancelled = minion.enqueue("async_sleep", [30], attempts=2)
    _began(minion, cancelled)
    quitting.send(signal.SIGQUIT)
    assert quitting.wait(15) == 0
    info = job_info(minion, cancelled)
    assert (info["state"], info["retries"]) == ("inactive", 1), "failed, and retried"
    assert info["result"] == "Job terminated unexpectedly (exit code: 0, signal: 15)"
    assert info["notes"] == {"began": True, "cleaned": True}
    assert minion.stats()["active_jobs"] == 0


def test_a_killed_event_loop_fails_and_retries_its_jobs_at_once_and_another_starts(
    minion: Minion, start_worker: Callable[..., WorkerProcess]
) -> None:
    worker = start_worker(dequeue_timeout=1, timeouts={"async_sleep": 60})
    job_id = minion.enqueue("async_sleep", [30], attempts=2)
    wait_for_state(minion, job_id, "active")
    os.kill(_event_loop_of(worker), signal.SIGKILL)
    info = wait_for_state(minion, job_id, "inactive", 5)
    assert (info["result"], info["retries"]) == (KILLED, 1)

    after = minion.enqueue("async_add", [2, 3])
    assert wait_for_state(minion, after, "finished")["result"] == {"added": 5}


def test_the_event_loop_dies_with_its_worker(
    minion: Minion, start_worker: Callable[..., WorkerProcess]
) -> None:
    worker = start_worker(timeouts={"async_sleep": 60})
    _began(minion, minion.enqueue("async_sleep", [30]))
    loop = _event_loop_of(worker)
    worker.send(signal.SIGKILL)
    wait_until(lambda: gone(loop), 10, "the event loop to die with its worker")


def test_a_coroutine_that_never_yields_is_named_and_its_loop_killed_after_the_grace(
    minion: Minion, start_worker: Callable[..., WorkerProcess]
) -> None:
    worker = start_worker(
        dequeue_timeout=1, async_block_grace=1.5, timeouts={"async_sleep": 60}, log_format="json"
    )
    bystander = minion.enqueue("async_sleep", [30])
    wait_for_state(minion, bystander, "active")
    blocking = minion.enqueue("async_block", [30], attempts=2)
    began = time.monotonic()
    wait_until(lambda: job_info(minion, blocking)["retries"] == 1, 15, "the blocking job retried")
    reason = job_info(minion, blocking)["result"]
    assert reason.startswith(f"Event loop blocked by task 'async_block' (job {blocking}) for")
    assert time.monotonic() - began < 10, "killed after the grace, not after the 30 s call"
    assert _state(minion, bystander) == ("failed", reason), "every job of the loop fails so"
    log = worker.stderr()
    blocked = [line for line in log.splitlines() if '"event_loop.blocked"' in line]
    assert blocked, log
    assert f'"job_id": {blocking}' in blocked[0]
    assert '"async_block"' in blocked[0]

    after = minion.enqueue("async_add", [1, 1])
    assert wait_for_state(minion, after, "finished")["result"] == {"added": 2}

