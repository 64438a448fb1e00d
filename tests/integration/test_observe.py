"""``observe`` (the metrics round) and ``listening`` against a real PostgreSQL.

Small, known data checks every field; a held table lock checks the statement timeout; a million
jobs check, by EXPLAIN, that the round stays on indexes and that its estimates are close.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from helpers.sql import db_now, execute
from helpers.waiting import wait_until
from psycopg.rows import dict_row

from minion_daemon.backend import PgBackend, estimates, sql
from minion_daemon.backend.estimates import EXACT_UP_TO
from minion_daemon.errors import BackendError, DatabaseUnavailableError

MakeDatabase = Callable[[int | None], str]

NO_RECENT = {"finished_1h": 0, "failed_1h": 0, "finished_24h": 0, "failed_24h": 0}


def _set(dsn: str, job_id: int, assignment: str) -> None:
    """Move one of a job's timestamps, e.g. ``"delayed = NOW() - INTERVAL '10 minutes'"``."""
    execute(dsn, f"UPDATE minion_jobs SET {assignment} WHERE id = %s", [job_id])  # noqa: S608


def _start(backend: PgBackend, worker: int, task: str = "test") -> tuple[int, int]:
    """Enqueue a job and make it active on ``worker``; returns (id, retries)."""
    job_id = backend.enqueue(task)
    job = backend.dequeue(worker, 0, {"id": job_id})
    assert job is not None
    return job_id, job["retries"]


def _end(backend: PgBackend, dsn: str, worker: int, state: str, ago: str | None = None) -> int:
    """A job that ended ``ago`` (an interval, None: now) in ``state``; returns its id."""
    job_id, retries = _start(backend, worker)
    ended = backend.finish_job if state == "finished" else backend.fail_job
    assert ended(job_id, retries, None)
    if ago is not None:
        _set(dsn, job_id, f"finished = NOW() - INTERVAL '{ago}'")
    return job_id


def test_an_empty_database_observes_zeros(backend: PgBackend) -> None:
    seen = backend.observe()
    assert set(seen) == {
        "stats",
        "backlog",
        "oldest_active_age",
        "recent",
        "schedules",
        "health",
        "unrunnable",
        "unlisted_workers",
        "paused_queues",
        "duration",
    }
    assert {key: value for key, value in seen["stats"].items() if key != "uptime"} == {
        "active_jobs": 0,
        "active_locks": 0,
        "active_workers": 0,
        "delayed_jobs": 0,
        "enqueued_jobs": 0,
        "failed_jobs": 0,
        "finished_jobs": 0,
        "inactive_jobs": 0,
        "inactive_workers": 0,
        "workers": 0,
        "schedules": 0,
        "inactive_schedules": 0,
    }
    assert seen["backlog"] == []
    assert (seen["unrunnable"], seen["unlisted_workers"]) == ({}, 0)
    assert seen["oldest_active_age"] == 0.0
    assert seen["recent"] == NO_RECENT
    assert seen["schedules"] == 0
    assert seen["paused_queues"] == []
    assert 0 < seen["duration"] < 5


def test_stats_are_those_of_stats(backend: PgBackend, dsn: str) -> None:
    worker, idle = backend.register_worker(), backend.register_worker()
    _start(backend, worker)
    _end(backend, dsn, worker, "finished")
    _end(backend, dsn, worker, "failed")
    backend.enqueue("test")
    backend.enqueue("test", [], {"delay": 3600})
    expired = backend.enqueue("test", [], {"expire": 60})
    _set(dsn, expired, "expires = NOW() - INTERVAL '1 second'")
    assert backend.lock("resource", 60)
    backend.schedule("hourly", "0 * * * *", "test")
    backend.schedule("held", "0 * * * *", "test")
    assert backend.pause_schedule("held")
    backend.unregister_worker(idle)
    backend.register_worker()

    observed, expected = backend.observe()["stats"], backend.stats()
    assert observed["uptime"] == pytest.approx(expected["uptime"], abs=60)
    assert {**observed, "uptime": 0} == {**expected, "uptime": 0}
    assert (observed["inactive_jobs"], observed["delayed_jobs"]) == (2, 1)


def test_the_backlog_counts_runnable_jobs_per_queue_and_task(backend: PgBackend, dsn: str) -> None:
    oldest = backend.enqueue("resize")
    _set(dsn, oldest, "delayed = NOW() - INTERVAL '10 minutes'")
    recent = backend.enqueue("resize")
    _set(dsn, recent, "delayed = NOW() - INTERVAL '1 minute'")
    backend.enqueue("resize", [], {"queue": "mail"})
    backend.enqueue("notify", [], {"queue": "mail", "expire": 3600})
    # Not runnable: delayed into the future, expired, already running.
    backend.enqueue("report", [], {"queue": "mail", "delay": 3600})
    expired = backend.enqueue("report", [], {"queue": "mail", "expire": 60})
    _set(dsn, expired, "expires = NOW() - INTERVAL '1 second'")
    _start(backend, backend.register_worker(), "archive")

    backlog = backend.observe()["backlog"]
    assert [(row["queue"], row["task"], row["jobs"]) for row in backlog] == [
        ("default", "resize", 2),
        ("mail", "notify", 1),
        ("mail", "resize", 1),
    ]
    ages = [row["oldest_age"] for row in backlog]
    assert 600 <= ages[0] < 660
    assert all(0 <= age < 60 for age in ages[1:])


def test_the_oldest_active_job_is_timed_from_its_start(backend: PgBackend, dsn: str) -> None:
    worker = backend.register_worker()
    _start(backend, worker)
    long_running, _ = _start(backend, worker)
    _set(dsn, long_running, "started = NOW() - INTERVAL '90 seconds'")
    assert 90 <= backend.observe()["oldest_active_age"] < 150
    execute(dsn, "UPDATE minion_jobs SET state = 'finished', finished = NOW()")
    assert backend.observe()["oldest_active_age"] == 0.0


def test_recent_jobs_count_what_ended_within_each_window(backend: PgBackend, dsn: str) -> None:
    worker = backend.register_worker()
    for ago in (None, None, "30 minutes", "5 hours", "2 days"):
        _end(backend, dsn, worker, "finished", ago)
    for ago in (None, "3 hours", "25 hours"):
        _end(backend, dsn, worker, "failed", ago)
    # Failed with an attempt left: retried, inactive again, its last end time kept.
    job_id = backend.enqueue("test", [], {"attempts": 2})
    job = backend.dequeue(worker, 0, {"id": job_id})
    assert job is not None
    assert backend.fail_job(job_id, 0, "again")
    # Failed by repair as stuck: no end time at all.
    stuck = backend.enqueue("test")
    _set(dsn, stuck, "delayed = NOW() - INTERVAL '3 days'")
    backend.repair()

    assert backend.observe()["recent"] == {
        "finished_1h": 3,
        "failed_1h": 1,
        "finished_24h": 4,
        "failed_24h": 2,
    }
    assert backend.observe()["stats"]["failed_jobs"] == 4


def _ended_together(dsn: str, ago: str, finished: int, failed: int) -> None:
    """Jobs that ended at one moment, ``ago``: ANALYZE records each such moment, and each state,
    as a most common value, which makes PostgreSQL's estimates for them exact."""
    execute(
        dsn,
        "INSERT INTO minion_jobs (args, delayed, finished, priority, state, task)"
        " SELECT '[]', NOW() - %(ago)s::interval, NOW() - %(ago)s::interval, 0, state, 'test'"
        " FROM UNNEST(%(states)s::minion_state[]) AS state",
        {"ago": ago, "states": ["finished"] * finished + ["failed"] * failed},
    )


@pytest.mark.parametrize(
    ("moments", "recent"),
    [
        # The newest five jobs ended at one moment: every window is left to the estimate.
        (
            [(ago, 4, 4) for ago in ("0", "10 minutes", "2 hours", "5 hours", "2 days")],
            {"finished_1h": 8, "failed_1h": 8, "finished_24h": 16, "failed_24h": 16},
        ),
        # The newest five reach back past the hour: it is counted, the day estimated.
        (
            [("0", 2, 1), ("3 hours", 10, 5)],
            {"finished_1h": 2, "failed_1h": 1, "finished_24h": 12, "failed_24h": 6},
        ),
    ],
)
def test_counts_past_the_limit_are_the_planners_estimates(
    make_database: MakeDatabase,
    monkeypatch: pytest.MonkeyPatch,
    moments: list[tuple[str, int, int]],
    recent: dict[str, int],
) -> None:
    dsn = make_database(25)
    for moment in moments:
        _ended_together(dsn, *moment)
    execute(dsn, "ANALYZE minion_jobs")
    monkeypatch.setattr(estimates, "EXACT_UP_TO", 4)
    backend = PgBackend(dsn, pooled=False)
    try:
        seen = backend.observe()
    finally:
        backend.close()
    assert seen["recent"] == recent
    stats = seen["stats"]
    assert (stats["finished_jobs"], stats["failed_jobs"]) == (
        sum(finished for _, finished, _ in moments),
        sum(failed for _, _, failed in moments),
    )


@pytest.mark.parametrize("version", [23, 24])
def test_schedules_are_none_before_schema_25(make_database: MakeDatabase, version: int) -> None:
    old = PgBackend(make_database(version), pooled=False, max_schema_version=version)
    try:
        seen = old.observe()
        assert seen["schedules"] is None
        assert "schedules" not in seen["stats"]
        assert "inactive_schedules" not in seen["stats"]
        assert seen["recent"] == NO_RECENT
    finally:
        old.close()


def test_schedules_count_paused_ones_too(backend: PgBackend) -> None:
    backend.schedule("hourly", "0 * * * *", "test")
    backend.schedule("nightly", "0 3 * * *", "test")
    assert backend.pause_schedule("nightly")
    seen = backend.observe()
    assert seen["schedules"] == 2
    assert (seen["stats"]["schedules"], seen["stats"]["inactive_schedules"]) == (1, 1)


def test_health_reads_the_tables_statistics_and_open_transactions(
    backend: PgBackend, dsn: str
) -> None:
    backend.enqueue_many([("test", [], None)] * 3)
    # The server publishes a session's row counts within a second or so of its transaction.
    health = wait_until(
        lambda: (seen := backend.observe()["health"])["live_tuples"] == 3 and seen,
        10,
        "the statistics to count 3 rows",
    )
    assert health["dead_tuples"] >= 0
    assert health["last_autovacuum"] is None or health["last_autovacuum"] <= db_now(dsn)
    assert health["oldest_transaction_age"] == 0.0
    with psycopg.connect(dsn) as other:
        other.execute("SELECT 1")  # opens a transaction, left open
        time.sleep(0.2)
        assert 0.2 <= backend.observe()["health"]["oldest_transaction_age"] < 60


def test_a_round_that_outlasts_the_timeout_is_cancelled(dsn: str) -> None:
    backend = PgBackend(dsn, pooled=False)
    try:
        backend.observe()  # the schema check, before the table is locked
        with psycopg.connect(dsn) as locker:
            locker.execute("LOCK TABLE minion_jobs IN ACCESS EXCLUSIVE MODE")
            started = time.monotonic()
            with pytest.raises(BackendError, match=r"^observe: .*timeout of 0\.2 s") as raised:
                backend.observe(timeout=0.2)
            waited = time.monotonic() - started
            locker.rollback()
        assert not isinstance(raised.value, DatabaseUnavailableError)
        assert waited < 5
        # The timeout ended with the round's transaction.
        assert backend.scalar("test", "SHOW statement_timeout") == "0"
        assert backend.observe()["stats"]["inactive_jobs"] == 0
    finally:
        backend.close()


def test_a_connection_the_server_ended_is_replaced_before_the_next_round(dsn: str) -> None:
    """The metrics process's single connection, ended by the server (pg_terminate_backend, a
    restart), costs no failed round: it is found ended before use and replaced."""
    backend = PgBackend(dsn, pooled=False)
    try:
        pid = backend.scalar("test", "SELECT pg_backend_pid()")
        execute(dsn, "SELECT pg_terminate_backend(%s)", [pid])
        # pg_terminate_backend only signals the session: wait until it has gone.
        gone = "SELECT NOT EXISTS (SELECT FROM pg_stat_activity WHERE pid = %s)"
        wait_until(lambda: execute(dsn, gone, [pid])[0][0], 10, "the session to end")
        assert backend.observe()["recent"] == NO_RECENT
        assert backend.scalar("test", "SELECT pg_backend_pid()") != pid
    finally:
        backend.close()


@pytest.mark.parametrize(
    ("timeout", "error"), [(0, ValueError), (-1, ValueError), ("2", TypeError), (True, TypeError)]
)
def test_the_timeout_must_be_a_positive_number(
    backend: PgBackend, timeout: Any, error: type[Exception]
) -> None:
    with pytest.raises(error, match="observe: timeout"):
        backend.observe(timeout)


def test_a_backend_listens_once_a_dequeue_has_waited(backend: PgBackend) -> None:
    assert not backend.listening
    assert backend.dequeue(backend.register_worker(), 0.1) is None
    assert backend.listening


# A million jobs over 48 hours, ids in creation order: 1 % inactive in 3 queues x 4 tasks (a
# seventh of them delayed into the future, an eleventh expired), 0.4 % failed, 100 active, the
# rest finished two seconds after creation. Inactive jobs are spread over the whole table, the
# worst case for reading them.
MILLION: Any = """
INSERT INTO minion_jobs
  (args, created, delayed, expires, finished, priority, queue, started, state, task, worker)
SELECT '[]', t,
  CASE WHEN s = 'inactive' AND k % 7 = 0 THEN NOW() + INTERVAL '1 hour' ELSE t END,
  CASE WHEN s = 'inactive' AND k % 11 = 0 THEN NOW() - INTERVAL '1 minute' END,
  CASE WHEN s IN ('failed', 'finished') THEN t + INTERVAL '2 seconds' END,
  0, (ARRAY['default', 'mail', 'reports'])[k % 3 + 1],
  CASE WHEN s != 'inactive' THEN t + INTERVAL '1 second' END,
  s::minion_state, 'task' || (k / 3 % 4), CASE WHEN s = 'active' THEN n % 7 END
FROM (
  SELECT n, n / 100 AS k, NOW() - INTERVAL '48 hours' + n * INTERVAL '48 hours' / 1000000 AS t,
    CASE WHEN n % 100 = 0 THEN 'inactive' WHEN n % 250 = 1 THEN 'failed'
      WHEN n % 10000 = 2 THEN 'active' ELSE 'finished' END AS s
  FROM generate_series(1, 1000000) AS n
) AS jobs
"""

TRUTH: Any = """
SELECT
  COUNT(*) FILTER (WHERE state = 'finished') AS finished_jobs,
  COUNT(*) FILTER (WHERE state = 'failed') AS failed_jobs,
  COUNT(*) FILTER (WHERE state = 'inactive' AND (expires IS NULL OR expires > NOW()))
    AS inactive_jobs,
  COUNT(*) FILTER (WHERE state = 'inactive' AND delayed > NOW()) AS delayed_jobs,
  COUNT(*) FILTER (WHERE state = 'active') AS active_jobs,
  COUNT(*) FILTER (WHERE state = 'finished' AND finished > NOW() - INTERVAL '1 hour')
    AS finished_1h,
  COUNT(*) FILTER (WHERE state = 'failed' AND finished > NOW() - INTERVAL '1 hour') AS failed_1h,
  COUNT(*) FILTER (WHERE state = 'finished' AND finished > NOW() - INTERVAL '24 hours')
    AS finished_24h,
  COUNT(*) FILTER (WHERE state = 'failed' AND finished > NOW() - INTERVAL '24 hours')
    AS failed_24h
FROM minion_jobs
"""

TRUE_BACKLOG: Any = """
SELECT queue, task, COUNT(*) AS jobs, EXTRACT(EPOCH FROM NOW() - MIN(delayed)) AS oldest_age
FROM minion_jobs
WHERE state = 'inactive' AND delayed <= NOW() AND (expires IS NULL OR expires > NOW())
GROUP BY queue, task ORDER BY queue, task
"""

Conn = psycopg.Connection[dict[str, Any]]


@pytest.fixture
def million(make_database: MakeDatabase) -> Iterator[tuple[str, Conn]]:
    dsn = make_database(25)
    with psycopg.connect(dsn, autocommit=True, row_factory=dict_row) as conn:
        conn.execute(MILLION)
        # Statistics as autovacuum's ANALYZE leaves them; no VACUUM, so no page is marked
        # all-visible yet and index-only scans still visit the table: the costlier plans.
        conn.execute("ANALYZE minion_jobs")
        yield dsn, conn


def _scans(conn: Conn, query: Any) -> list[tuple[str, str | None]]:
    """(node type, index) of every scan of minion_jobs in the plan of ``query``."""
    explained = conn.execute(
        b"EXPLAIN (FORMAT JSON) " + query.encode(), {"limit": EXACT_UP_TO + 1}, prepare=False
    ).fetchone()
    assert explained is not None
    nodes, found = [explained["QUERY PLAN"][0]["Plan"]], []
    while nodes:
        node = nodes.pop()
        nodes.extend(node.get("Plans", []))
        if node.get("Relation Name") == "minion_jobs":
            found.append((node["Node Type"], node.get("Index Name")))
    return found


@pytest.mark.slow
def test_a_million_jobs_are_observed_through_indexes(
    million: tuple[str, Conn], figures: Any
) -> None:
    dsn, conn = million
    state_index = ("minion_jobs_state_priority_id_idx",)
    assert {index for _, index in _scans(conn, sql.OBSERVE_INACTIVE)} == set(state_index)
    assert {index for _, index in _scans(conn, sql.OBSERVE_JOBS)} == set(state_index)
    assert _scans(conn, sql.OBSERVE_ENDED) == [
        ("Index Only Scan", "minion_jobs_finished_state_idx"),
        ("Index Only Scan", "minion_jobs_finished_state_idx"),
    ]

    backend = PgBackend(dsn, min_size=1, max_size=1)
    try:
        durations = [backend.observe()["duration"] for _ in range(6)]
        seen = backend.observe()
    finally:
        backend.close()
    figures(
        "observe() at 1,000,000 jobs: first round {:.1f} ms, then median {:.1f} ms"
        " (min {:.1f}, max {:.1f})".format(
            durations[0] * 1000, *(1000 * f(durations[1:]) for f in (statistics.median, min, max))
        )
    )

    truth = conn.execute(TRUTH).fetchone() or {}
    stats: dict[str, Any] = dict(seen["stats"])
    recent = seen["recent"]
    exact = ("failed_jobs", "inactive_jobs", "delayed_jobs", "active_jobs")
    assert {key: stats[key] for key in exact} == {key: truth[key] for key in exact}
    assert (recent["failed_1h"], recent["failed_24h"]) == (truth["failed_1h"], truth["failed_24h"])
    assert (stats["enqueued_jobs"], stats["active_workers"]) == (1_000_000, 7)
    assert stats["finished_jobs"] == pytest.approx(truth["finished_jobs"], rel=0.1)
    assert recent["finished_1h"] == pytest.approx(truth["finished_1h"], rel=0.1)
    assert recent["finished_24h"] == pytest.approx(truth["finished_24h"], rel=0.1)
    assert seen["health"]["live_tuples"] == pytest.approx(1_000_000, rel=0.1)

    backlog = conn.execute(TRUE_BACKLOG).fetchall()
    assert [(row["queue"], row["task"], row["jobs"]) for row in seen["backlog"]] == [
        (row["queue"], row["task"], row["jobs"]) for row in backlog
    ]
    for observed, true in zip(seen["backlog"], backlog, strict=True):
        assert observed["oldest_age"] == pytest.approx(float(true["oldest_age"]), abs=60)
