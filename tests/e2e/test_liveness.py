"""Liveness that cannot lie (issue 13): a worker process pings its supervisor while it waits
for jobs, backs off from an unreachable database, waits on a lock or runs an inline job, so
only a worker that is truly stuck is killed as hung; the supervisor's own statements are
bounded, so a lock held elsewhere never freezes it."""

from __future__ import annotations

import json
import signal
import time
import urllib.request
from pathlib import Path
from typing import Any

import psycopg
import pytest
from helpers.daemon import Daemon, add_distribution
from helpers.liveness_tasks import ENTRY_POINTS
from helpers.sql import execute
from helpers.waiting import wait_until
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from minion_daemon import Minion

#: Short, so that a worker silent for a moment is killed within the test.
LIVENESS = 2


@pytest.fixture
def task_path(task_path: Path) -> Path:
    """The daemon tests' tasks plus this module's (helpers.liveness_tasks)."""
    return add_distribution(task_path, "liveness-test-tasks", ENTRY_POINTS)


def events(daemon: Daemon, name: str) -> list[dict[str, Any]]:
    """The daemon's log lines of event ``name`` so far."""
    assert daemon.log is not None
    found = []
    for line in daemon.log.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("event") == name:
            found.append(entry)
    return found


def job_state(minion: Minion, job_id: int) -> dict[str, Any]:
    job = minion.job(job_id)
    assert job is not None
    info = job.info
    assert info is not None
    return dict(info)


def ended(minion: Minion, job_id: int) -> dict[str, Any] | None:
    info = job_state(minion, job_id)
    return info if info["state"] in ("finished", "failed") else None


def booted(daemon: Daemon, count: int) -> None:
    wait_until(lambda: len(events(daemon, "worker.booted")) >= count, 30, "workers booted")


def test_an_inline_job_past_its_timeout_fails_alone(start: Any, minion: Minion) -> None:
    daemon, _ = start(
        workers={"processes": 1, "tasks": {"inline_nap": {"mode": "inline", "timeout": 1}}}
    )
    booted(daemon, 1)
    forked = minion.enqueue("nap", [3], priority=10)
    wait_until(lambda: job_state(minion, forked)["state"] == "active", 30, "the forked job")
    inline = minion.enqueue("inline_nap", [60])
    info = wait_until(lambda: ended(minion, inline), 10, "the inline job to time out")
    assert info["state"] == "failed"
    assert info["result"] == "Job timed out after 1 seconds"
    other = wait_until(lambda: ended(minion, forked), 30, "the forked job to end")
    assert (other["state"], other["result"]) == ("finished", 3)
    assert not events(daemon, "worker.hung")
    assert not events(daemon, "worker.exited")


def test_idle_workers_outlive_a_dequeue_timeout_above_the_liveness_timeout(start: Any) -> None:
    daemon, _ = start(workers={"liveness_timeout": LIVENESS, "dequeue_timeout": 6})
    booted(daemon, 2)
    time.sleep(3 * LIVENESS + 1)
    assert not events(daemon, "worker.hung")


def test_running_jobs_outlive_a_short_liveness_timeout(start: Any, minion: Minion) -> None:
    daemon, _ = start(
        workers={
            "processes": 1,
            "liveness_timeout": LIVENESS,
            "dequeue_timeout": 6,
            "tasks": {"inline_nap": {"mode": "inline"}},
        }
    )
    booted(daemon, 1)
    jobs = [minion.enqueue("nap", [2 * LIVENESS]), minion.enqueue("inline_nap", [2 * LIVENESS])]
    for job_id in jobs:
        info = wait_until(lambda job_id=job_id: ended(minion, job_id), 30, f"job {job_id}")
        assert (info["state"], info["result"]) == ("finished", 2 * LIVENESS)
    assert not events(daemon, "worker.hung")


def test_an_inline_job_stuck_in_c_is_killed_as_hung(start: Any, minion: Minion) -> None:
    """The pings come from Python code; a task stuck in C stops them, truthfully."""
    daemon, _ = start(
        workers={
            "processes": 1,
            "liveness_timeout": LIVENESS,
            "tasks": {"stuck_in_c": {"mode": "inline", "timeout": 1}},
        }
    )
    booted(daemon, 1)
    minion.enqueue("stuck_in_c")
    hung = wait_until(lambda: events(daemon, "worker.hung"), 15, "the stuck worker killed")
    assert hung[0]["silent"] >= LIVENESS


def _admin_conninfo(dsn: str) -> str:
    return make_conninfo(dsn, dbname="postgres")


def test_workers_backing_off_from_an_outage_are_not_killed(
    start: Any, minion: Minion, dsn: str
) -> None:
    database = conninfo_to_dict(dsn)["dbname"]
    daemon, _ = start(workers={"liveness_timeout": LIVENESS})
    booted(daemon, 2)
    with psycopg.connect(_admin_conninfo(dsn), autocommit=True) as admin:
        try:
            admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND application_name = 'minion-daemon'",
                [database],
            )
            # Backoff 1, 2, 4 s: the third sleep alone is longer than the liveness timeout.
            wait_until(
                lambda: len(events(daemon, "worker.database_unavailable")) >= 6,
                30,
                "both workers backing off three times",
            )
            assert not events(daemon, "worker.hung")
        finally:
            admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
    job_id = minion.enqueue("add", [2, 3])
    wait_until(lambda: ended(minion, job_id), 60, "a job after the outage")
    assert not events(daemon, "worker.hung")


def _healthz(daemon: Daemon) -> int:
    with urllib.request.urlopen(f"{daemon.url}/healthz", timeout=5) as answer:  # noqa: S310 - our own http URL
        return int(answer.status)


def _lock_timeouts(daemon: Daemon) -> list[dict[str, Any]]:
    """The duties given up for a lock (a statement cancelled is an OperationalError, which
    the backend reports as the database unavailable)."""
    logged = events(daemon, "supervisor.database_unavailable")
    return [entry for entry in logged if "lock timeout" in entry["error"]]


def test_a_table_lock_held_elsewhere_freezes_neither_supervisor_nor_workers(
    start: Any, dsn: str
) -> None:
    daemon, _ = start(workers={"liveness_timeout": LIVENESS}, repair={"interval": 2})
    booted(daemon, 2)
    wait_until(lambda: events(daemon, "repair.done"), 30, "a first repair")
    with psycopg.connect(dsn) as locker:
        locker.execute("LOCK TABLE minion_jobs IN ACCESS EXCLUSIVE MODE")
        wait_until(lambda: _lock_timeouts(daemon), 15, "repair to give up")
        daemon.signal(signal.SIGTTIN)
        wait_until(
            lambda: len(events(daemon, "worker.spawned")) >= 3, 5, "a worker for the TTIN"
        )
        assert _healthz(daemon) == 200
        time.sleep(2 * LIVENESS)
        assert _healthz(daemon) == 200
        locker.rollback()
    assert not events(daemon, "worker.hung")
    assert execute(dsn, "SELECT 1") == [(1,)]
