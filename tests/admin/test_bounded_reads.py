"""The admin UI's own reads (backend/admin.py): the hourly history and the queue activity,
exact on a small queue, bounded and estimated on a busy one."""

from __future__ import annotations

from helpers.sql import execute

from minion_daemon.backend import PgBackend
from minion_daemon.backend.admin import HOUR_EXACT_UP_TO, hourly_history, queue_activity

# %(count)s jobs that ended evenly over the hour from %(start)s, every %(every)s-th failed.
ENDED_IN_AN_HOUR = """
INSERT INTO minion_jobs (args, created, delayed, finished, priority, started, state, task, queue)
SELECT '[]', t, t, t, 0, t,
  (CASE WHEN n %% %(every)s = 0 THEN 'failed' ELSE 'finished' END)::minion_state, 'busy', 'bulk'
FROM (
  SELECT n, %(start)s::timestamptz + n * INTERVAL '1 hour' / (%(count)s + 1) AS t
  FROM generate_series(1, %(count)s) AS n
) AS ended
"""
LAST_FULL_HOUR = "SELECT DATE_TRUNC('hour', NOW()) - INTERVAL '1 hour'"
AN_HOUR_AGO = "SELECT NOW() - INTERVAL '1 hour' + INTERVAL '5 seconds'"


def _end(backend: PgBackend, failed: int, finished: int) -> None:
    worker = backend.register_worker()
    for number in range(failed + finished):
        job_id = backend.enqueue("t", [number])
        assert backend.dequeue(worker, 0, {"id": job_id}) is not None
        if number < failed:
            backend.fail_job(job_id, 0, "no")
        else:
            backend.finish_job(job_id, 0, "ok")


def test_a_quiet_day_is_counted_exactly_as_history_counts_it(backend: PgBackend) -> None:
    _end(backend, failed=2, finished=3)
    hours = hourly_history(backend, 2)
    assert not hours["estimated"]
    assert len(hours["daily"]) == 24
    last = hours["daily"][-1]
    assert (last["finished_jobs"], last["failed_jobs"]) == (3, 2)
    exact = backend.history()["daily"]
    for state in ("finished_jobs", "failed_jobs"):
        assert sum(p[state] for p in hours["daily"]) == sum(p[state] for p in exact)  # type: ignore[literal-required]


def test_a_busy_hour_is_estimated_from_a_bounded_read(backend: PgBackend, dsn: str) -> None:
    count = 4 * HOUR_EXACT_UP_TO
    start = execute(dsn, LAST_FULL_HOUR)[0][0]
    execute(dsn, ENDED_IN_AN_HOUR, {"count": count, "every": 400, "start": start})
    hours = hourly_history(backend, 2)
    assert hours["estimated"]
    busy = hours["daily"][-2]
    assert busy["failed_jobs"] == 10  # exact: few failed jobs in all
    assert abs(busy["finished_jobs"] + busy["failed_jobs"] - count) < count * 0.05


def test_queue_activity_counts_running_and_the_last_hour_per_queue(
    backend: PgBackend, dsn: str
) -> None:
    worker = backend.register_worker()
    backend.enqueue("a", [], {"queue": "live"})
    assert backend.dequeue(worker, 0, {"queues": ["live"]}) is not None
    _end(backend, failed=1, finished=2)
    activity = queue_activity(backend, 2)
    assert activity["complete"]
    by_queue = {q["queue"]: q for q in activity["queues"]}
    assert by_queue["live"]["running"] == 1
    assert (by_queue["default"]["finished_1h"], by_queue["default"]["failed_1h"]) == (2, 1)


def test_queue_activity_stops_reading_a_busy_hour(backend: PgBackend, dsn: str) -> None:
    start = execute(dsn, AN_HOUR_AGO)[0][0]
    execute(dsn, ENDED_IN_AN_HOUR, {"count": 10_500, "every": 1000, "start": start})
    activity = queue_activity(backend, 2)
    assert not activity["complete"]
    assert sum(q["finished_1h"] + q["failed_1h"] for q in activity["queues"]) == 10_001


def test_a_retried_job_is_no_ended_job_of_its_hour(backend: PgBackend) -> None:
    """A retried job keeps the end time of its failed attempt (Minion's retry leaves
    ``finished`` as it was): it is inactive again, neither finished nor failed in any hour."""
    _end(backend, failed=1, finished=0)
    job_id = backend.list_jobs(0, 1)["jobs"][0]["id"]
    assert backend.retry_job(job_id, 0, {})
    hours = hourly_history(backend, 2)
    assert all(p["finished_jobs"] == p["failed_jobs"] == 0 for p in hours["daily"])
    assert queue_activity(backend, 2)["queues"] == []
