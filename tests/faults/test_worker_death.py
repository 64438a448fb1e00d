"""A worker process that dies under the running daemon: its jobs are failed at once, not after
repair's ``missing_after``; and a storm of terminated sessions costs a worker no backoff.

The supervisor fails the active jobs of a worker it reaped (killed, or murdered as hung) with
"Worker went away", retried while attempts remain, as repair would, and removes its row.
"""

from __future__ import annotations

import os
import secrets
import signal
import time
from typing import Any

import pytest
from helpers.processes import children, gone
from helpers.sql import execute
from helpers.waiting import wait_until

from minion_daemon import Minion
from minion_daemon.model import JobInfo

#: One after another, never beside each other: see tests/faults/conftest.py.
pytestmark = pytest.mark.xdist_group("faults")

#: Seconds from a worker's death to its jobs failed and its row gone (issue 13).
RESCUE_LIMIT = 2.0
#: Seconds from every session of the daemon terminated to a new job finished.
RECOVERY_LIMIT = 2.0
WENT_AWAY = "Worker went away"


def _jobs(minion: Minion, ids: list[int]) -> list[JobInfo]:
    return minion.backend.list_jobs(0, len(ids), {"ids": ids})["jobs"]


def _worker_ids(minion: Minion) -> set[int]:
    return {worker["id"] for worker in minion.backend.list_workers(0, 100)["workers"]}


def _start_jobs(minion: Minion, count: int) -> tuple[list[int], int, int]:
    """Enqueue ``count`` one-minute jobs, alternately with 2 attempts and 1, and wait until
    they all run; their ids, and the id and pid of the one worker running them."""
    ids = [minion.enqueue("sleep", [60], attempts=2 - number % 2) for number in range(count)]
    jobs = wait_until(
        lambda: (jobs := _jobs(minion, ids)) and all(j["state"] == "active" for j in jobs) and jobs,
        30,
        "every job running",
    )
    (worker_id,) = {job["worker"] for job in jobs}
    (worker,) = minion.backend.list_workers(0, 1, {"ids": [worker_id]})["workers"]
    return ids, worker_id, worker["pid"]


def _rescued(minion: Minion, ids: list[int], worker_id: int) -> bool:
    active = any(job["state"] == "active" for job in _jobs(minion, ids))
    return not active and worker_id not in _worker_ids(minion)


def _assert_went_away(minion: Minion, ids: list[int]) -> None:
    """Each job failed by its worker's death: retried if it had a second attempt (the even
    ones of :func:`_start_jobs`)."""
    for number, job in enumerate(sorted(_jobs(minion, ids), key=lambda job: job["id"])):
        expected = ("inactive", 1) if number % 2 == 0 else ("failed", 0)
        assert (job["state"], job["retries"]) == expected, job
        assert job["result"] == WENT_AWAY, job


@pytest.mark.parametrize("mode", ["fork", "inline"])
def test_the_jobs_of_a_killed_worker_are_failed_within_2_s(
    mode: str, dsn: str, minion: Minion, launch: Any, figures: Any
) -> None:
    launch(dsn, workers={"processes": 1, "tasks": {"sleep": {"mode": mode}}})
    ids, worker_id, pid = _start_jobs(minion, 4 if mode == "fork" else 1)
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    wait_until(lambda: _rescued(minion, ids, worker_id), RESCUE_LIMIT, "the jobs failed")
    figures(f"{mode}: {len(ids)} jobs failed {time.monotonic() - killed:.2f} s after kill -9")
    _assert_went_away(minion, ids)


def _job_pids(minion: Minion, ids: list[int]) -> list[int]:
    return wait_until(
        lambda: (
            (pids := [job["notes"].get("minion_pid") for job in _jobs(minion, ids)])
            and all(pids)
            and pids
        ),
        10,
        "the minion_pid notes",
    )


def _wait_gone(pids: list[int], timeout: float) -> None:
    for pid in pids:
        wait_until(lambda pid=pid: gone(pid), timeout, f"process {pid} to die")


def test_kill_9_of_a_worker_takes_its_fork_server_and_job_processes(
    dsn: str, minion: Minion, launch: Any
) -> None:
    launch(dsn, workers={"processes": 1})
    ids, worker_id, pid = _start_jobs(minion, 4)
    (server,) = children(pid)
    job_pids = _job_pids(minion, ids)
    # Its children: the job processes, and the spare forked ahead of the next job.
    forked = children(server)
    assert set(job_pids) < set(forked), "the job processes are the fork server's"
    os.kill(pid, signal.SIGKILL)
    _wait_gone([server, *forked], 5)
    wait_until(lambda: _rescued(minion, ids, worker_id), RESCUE_LIMIT, "the jobs failed")


def test_kill_9_of_a_fork_server_fails_its_jobs_and_replaces_its_worker(
    dsn: str, minion: Minion, launch: Any
) -> None:
    launch(dsn, workers={"processes": 1})
    ids, worker_id, pid = _start_jobs(minion, 4)
    (server,) = children(pid)
    job_pids = _job_pids(minion, ids)
    os.kill(server, signal.SIGKILL)
    _wait_gone([pid, *job_pids], 10)
    wait_until(lambda: _rescued(minion, ids, worker_id), 10, "the jobs failed")
    killed = "Job terminated unexpectedly (exit code: 0, signal: 9)"
    assert {job["result"] for job in _jobs(minion, ids)} == {killed}
    wait_until(lambda: _worker_ids(minion) - {worker_id}, 30, "a replacement worker")


def test_the_jobs_of_a_hung_worker_are_failed_when_it_is_killed(
    dsn: str, minion: Minion, launch: Any
) -> None:
    liveness = 2.0
    daemon = launch(dsn, workers={"processes": 1, "liveness_timeout": liveness})
    ids, worker_id, pid = _start_jobs(minion, 2)
    os.kill(pid, signal.SIGSTOP)
    # Silent for liveness_timeout, noticed within the supervisor's turn of at most 1 s.
    limit = liveness + 1 + RESCUE_LIMIT
    wait_until(lambda: _rescued(minion, ids, worker_id), limit, "the jobs failed")
    _assert_went_away(minion, ids)
    assert '"event": "worker.hung"' in daemon.log.read_text()


def test_a_stop_that_has_to_kill_a_worker_leaves_no_job_active(
    dsn: str, minion: Minion, launch: Any
) -> None:
    daemon = launch(dsn, workers={"processes": 1}, shutdown={"graceful_timeout": 1})
    ids, _, pid = _start_jobs(minion, 2)
    os.kill(pid, signal.SIGSTOP)  # deaf to TERM and QUIT: only the KILL after them ends it
    daemon.signal(signal.SIGTERM)
    code, log = daemon.finish()
    assert code == 0, log[-3000:]
    _assert_went_away(minion, ids)
    assert minion.stats()["active_jobs"] == 0
    assert _worker_ids(minion) == set()


def test_a_worker_recovers_from_terminated_sessions_within_2_s(
    dsn: str, minion: Minion, launch: Any, figures: Any
) -> None:
    """Every session of the daemon terminated (a failover, an admin): each worker has a pool of
    dead connections, and must drop them all at the first failure, not one per backoff."""
    application = f"rescue-{secrets.token_hex(4)}"
    launch(
        dsn,
        postgres={"application_name": application, "pool_min_size": 4, "pool_max_size": 4},
    )
    sessions = "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"
    # Two workers: four pooled and one LISTEN connection each; one of the supervisor's.
    wait_until(lambda: execute(dsn, sessions, (application,))[0][0] >= 11, 30, "every session")
    warm = minion.enqueue("sleep", [0])
    wait_until(lambda: _jobs(minion, [warm])[0]["state"] == "finished", 30, "a first job")
    terminate = (
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = %s"
    )
    terminated = execute(dsn, terminate, (application,))[0][0]
    faulted = time.monotonic()
    job_id = minion.enqueue("sleep", [0])
    wait_until(
        lambda: _jobs(minion, [job_id])[0]["state"] == "finished",
        RECOVERY_LIMIT,
        "a job enqueued after the sessions were terminated to finish",
    )
    recovery = time.monotonic() - faulted
    figures(
        f"{terminated} sessions terminated; a job enqueued then finished after {recovery:.2f} s"
    )


def test_a_worker_killed_after_terminated_sessions_is_buried_within_2_s(
    dsn: str, minion: Minion, launch: Any
) -> None:
    """The supervisor's own session ended too, which it learns only when it next uses it."""
    application = f"rescue-{secrets.token_hex(4)}"
    launch(dsn, postgres={"application_name": application}, workers={"processes": 1})
    ids, worker_id, pid = _start_jobs(minion, 2)
    terminate = (
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
        " WHERE application_name = %s"
    )
    execute(dsn, terminate, (application,))
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: _rescued(minion, ids, worker_id), RESCUE_LIMIT, "the jobs failed")
    _assert_went_away(minion, ids)
