"""The database going away under the running daemon (not just a worker): it recovers alone.

A private cluster (initdb/pg_ctl), since restarting or terminating sessions on the shared
server would break other tests. Three faults, each mid-run: ``pg_ctl restart -m fast``;
``pg_terminate_backend`` on every connection of the daemon (all carry the default
``postgres.application_name``); and only the LISTEN connections of the workers, which must
not leave jobs waiting longer than ``dequeue_timeout``. Recovery times are in the run's figures.
"""

from __future__ import annotations

import contextlib
import json
import signal
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import psycopg
import pytest
from helpers.fault_tasks import double_finishes, instrument, violations
from helpers.postgres import Server
from helpers.sql import execute, hasten_retries

from minion_daemon.backend import PgBackend
from minion_daemon.backend.fleet import LISTEN_QUEUES
from minion_daemon.backend.sql import LISTEN
from minion_daemon.config import PostgresConfig

#: One after another, never beside each other: see tests/faults/conftest.py.
pytestmark = pytest.mark.xdist_group("faults")

T = TypeVar("T")

#: The name every connection of the daemon shows in pg_stat_activity.
APPLICATION = PostgresConfig().application_name
JOBS = 120
RUN_SECONDS = 0.3
#: Seconds from the fault to the first job dequeued after it being finished.
RECOVERY_LIMIT = 15.0
#: The dequeue timeout of the LISTEN test: long, so that only a notification is fast.
DEQUEUE_TIMEOUT = 5.0


@pytest.fixture
def database(cluster_dsn: str) -> str:
    """A fresh database on the cluster, migrated and instrumented (helpers.fault_tasks)."""
    backend = PgBackend(cluster_dsn, pooled=False)
    try:
        backend.migrate(25)
    finally:
        backend.close()
    instrument(cluster_dsn)
    return cluster_dsn


def _await(probe: Callable[[], T | None], timeout: float, what: str) -> T:
    """Poll ``probe`` every 50 ms, through database outages, until it returns neither
    ``None`` nor ``False``, and return that."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = probe()
        except psycopg.OperationalError:
            value = None
        if value is not None and value is not False:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.05)


def _scalar(dsn: str, query: str, params: Any = None) -> Any:
    return execute(dsn, query, params)[0][0]


def _listeners(dsn: str) -> int:
    """The daemon's LISTEN connections."""
    return len(_listening_since(dsn))


def _listening_since(dsn: str) -> list[float]:
    """When each LISTEN connection of the daemon was opened (epoch seconds). A listener's last
    statement is a LISTEN: Minion's channel's, or that of our own (paused queues) after it."""
    query = (
        "SELECT EXTRACT(EPOCH FROM backend_start)::float8 FROM pg_stat_activity"
        " WHERE datname = current_database() AND application_name = %s AND query = ANY(%s)"
    )
    return [row[0] for row in execute(dsn, query, (APPLICATION, [LISTEN, LISTEN_QUEUES]))]


def _relistened(dsn: str, since: float) -> float | None:
    """Seconds from ``since`` until the last worker listened again; ``None`` while one does
    not (two workers)."""
    opened = _listening_since(dsn)
    if len(opened) < 2 or min(opened) < since:
        return None
    return max(opened) - since


def _terminate(dsn: str, only_listeners: bool) -> int:
    query = (
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
        " WHERE datname = current_database() AND application_name = %s"
        " AND (NOT %s OR query = ANY(%s))"
    )
    return int(_scalar(dsn, query, (APPLICATION, only_listeners, [LISTEN, LISTEN_QUEUES])))


def _finished_since(dsn: str, since: float) -> float | None:
    """Seconds from ``since`` (epoch) to the first finish of a job dequeued after it."""
    query = (
        "SELECT EXTRACT(EPOCH FROM min(finished))::float8 - %s FROM minion_jobs"
        " WHERE state = 'finished' AND started > to_timestamp(%s)"
    )
    return execute(dsn, query, (since, since))[0][0]


def _all_finished(dsn: str) -> bool:
    # A run that failed for want of the database is retried; without its backoff here.
    hasten_retries(dsn)
    return bool(_scalar(dsn, "SELECT count(*) = %s FROM finishes", (JOBS,)))


def _repaired_after(log: str, since: float) -> float | None:
    """Seconds from ``since`` (epoch) to the supervisor's first repair after it, from its log."""
    for line in log.splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            entry = json.loads(line)
            if entry.get("event") == "repair.done":
                at = datetime.fromisoformat(entry["timestamp"]).timestamp() - since
                if at > 0:
                    return at
    return None


def _stop(daemon: Any) -> None:
    daemon.signal(signal.SIGTERM)
    code, log = daemon.finish()
    assert code == 0, log[-3000:]


def _enqueue(dsn: str, count: int, seconds: float) -> list[int]:
    backend = PgBackend(dsn, pooled=False)
    try:
        return backend.enqueue_many([("record_run", [seconds], {"attempts": 3})] * count)
    finally:
        backend.close()


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["restart", "terminate"])
def test_the_daemon_reconnects_alone_and_every_job_completes(
    fault: str, cluster: Server, database: str, launch: Any, figures: Any
) -> None:
    dsn = database
    daemon = launch(dsn, repair={"interval": 1})
    _await(lambda: _listeners(dsn) == 2, 30, "two workers listening")
    _enqueue(dsn, JOBS, RUN_SECONDS)
    _await(lambda: _scalar(dsn, "SELECT count(*) FROM runs") >= 16, 30, "jobs running")
    faulted = time.time()
    if fault == "restart":
        assert cluster.restart is not None
        cluster.restart()
        detail = f"pg_ctl restart took {time.time() - faulted:.2f} s"
    else:
        detail = f"{_terminate(dsn, only_listeners=False)} connections terminated"
    recovery = _await(lambda: _finished_since(dsn, faulted), 30, "a job dequeued after the fault")
    _await(lambda: _all_finished(dsn), 60, "every job")
    relisten = _await(lambda: _relistened(dsn, faulted), 30, "both workers to LISTEN again")
    assert daemon.log is not None
    repaired = _await(lambda: _repaired_after(daemon.log.read_text(), faulted), 30, "a repair")
    figures(
        f"{fault}: {detail}; next job dequeued and finished {recovery:.2f} s after the fault;"
        f" both workers listening again after {relisten:.2f} s; the supervisor repaired"
        f" again after {repaired:.2f} s; finished twice: {double_finishes(dsn)}"
    )
    assert recovery < RECOVERY_LIMIT
    # Every job finished, once, with its final run's result.
    assert dict(execute(dsn, "SELECT state::text, count(*) FROM minion_jobs GROUP BY 1")) == {
        "finished": JOBS
    }
    assert violations(dsn) == {}
    _stop(daemon)


@pytest.mark.slow
def test_a_dropped_listen_connection_delays_no_job_beyond_dequeue_timeout(
    database: str, launch: Any, figures: Any
) -> None:
    """A worker that finds its LISTEN connection gone polls for one dequeue timeout, then
    listens again: a job enqueued meanwhile waits at most that long."""
    dsn = database
    daemon = launch(dsn, workers={"dequeue_timeout": DEQUEUE_TIMEOUT})
    _await(lambda: _listeners(dsn) == 2, 30, "two workers listening")
    # Taken before the terminations: a worker may listen again before this test process,
    # on a busy machine, gets to read the clock after them.
    dropped = time.time()
    assert _terminate(dsn, only_listeners=True) == 2
    first = _pickup(dsn)
    relisten = _await(lambda: _relistened(dsn, dropped), 30, "both workers to LISTEN again")
    # Listening again, a job wakes a worker at once: well within the dequeue timeout, each time.
    later = [_pickup(dsn) for _ in range(3)]
    figures(
        f"LISTEN dropped: a job enqueued right after waited {first:.2f} s to be dequeued;"
        f" both workers listening again after {relisten:.2f} s; later jobs waited"
        f" {', '.join(f'{value:.3f}' for value in later)} s (dequeue_timeout"
        f" {DEQUEUE_TIMEOUT:g} s)"
    )
    assert first < DEQUEUE_TIMEOUT + 1.0
    assert max(later) < 1.0
    _stop(daemon)


def _pickup(dsn: str) -> float:
    """Enqueue a job; seconds it waited until a worker dequeued it."""
    (job_id,) = _enqueue(dsn, 1, 0)
    query = "SELECT EXTRACT(EPOCH FROM started - created)::float8 FROM minion_jobs WHERE id = %s"
    return float(_await(lambda: _scalar(dsn, query, (job_id,)), 30, f"job {job_id} to start"))
