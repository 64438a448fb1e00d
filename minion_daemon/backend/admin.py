"""The admin UI's own reads: what a queue is doing now and did in the last hour, and the
last 24 hours by the hour at a cost that does not grow with the jobs that ended in them.

Beyond Perl. Bounded like ``observe``: running jobs are one pass over the active jobs (few in
a healthy queue); the jobs that ended in the last hour are read backwards along the
(finished, state) index of schema 24 and stop at :func:`~.estimates.count_limit` rows, so a
busy hour costs at most that many index entries and its counts are then marked incomplete.
Below schema 24 nothing indexes ``finished``, and the hour scans the table, as ``history``
does.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final, TypedDict

import psycopg

from minion_daemon.backend import estimates, sql
from minion_daemon.backend.connections import Connection
from minion_daemon.backend.pg import PgBackend
from minion_daemon.errors import BackendError
from minion_daemon.model import Backlog, HistoryPoint
from minion_daemon.options import INT_MAX

#: An hour's ended jobs are read up to this many (along the (finished, state) index); a busier
#: hour is estimated from how far into it they reach: 24 hours cost at most 24 times this many
#: index entries.
HOUR_EXACT_UP_TO: Final = 1000

QUEUE_ACTIVITY: Final = """
WITH running AS (
  SELECT queue, COUNT(*)::bigint AS running FROM minion_jobs WHERE state = 'active'
  GROUP BY queue
), ended AS (
  SELECT queue,
    COUNT(*) FILTER (WHERE state = 'finished')::bigint AS finished_1h,
    COUNT(*) FILTER (WHERE state = 'failed')::bigint AS failed_1h
  FROM (
    SELECT queue, state FROM minion_jobs
    WHERE finished > NOW() - INTERVAL '1 hour' AND state IN ('finished', 'failed')
    ORDER BY finished DESC LIMIT %(limit)s::bigint
  ) AS hour
  GROUP BY queue
)
SELECT queue, COALESCE(running, 0)::bigint AS running,
  COALESCE(finished_1h, 0)::bigint AS finished_1h, COALESCE(failed_1h, 0)::bigint AS failed_1h
FROM running FULL JOIN ended USING (queue)
ORDER BY queue
"""


# Each clock hour of the last 24 (the current one up to now): its first %(limit)s ended jobs
# (a retried job keeps the end of its last attempt but is inactive again: not one of them),
# how many of them failed, and how many seconds into the hour the last of them ended.
HOURS_ENDED: Final = """
SELECT EXTRACT(EPOCH FROM h.start)::float8 AS epoch, h.start,
  EXTRACT(EPOCH FROM LEAST(NOW(), h.start + INTERVAL '1 hour') - h.start)::float8 AS length,
  sample.ended, sample.failed, EXTRACT(EPOCH FROM sample.edge - h.start)::float8 AS reached
FROM GENERATE_SERIES(
  DATE_TRUNC('hour', NOW()) - INTERVAL '23 hours', DATE_TRUNC('hour', NOW()), INTERVAL '1 hour'
) AS h(start)
CROSS JOIN LATERAL (
  SELECT COUNT(*)::bigint AS ended, COUNT(*) FILTER (WHERE state = 'failed')::bigint AS failed,
    MAX(finished) AS edge
  FROM (
    SELECT finished, state FROM minion_jobs
    WHERE finished >= h.start AND finished < h.start + INTERVAL '1 hour'
      AND state IN ('finished', 'failed')
    ORDER BY finished LIMIT %(limit)s::bigint
  ) AS first
) AS sample
ORDER BY h.start
"""

# Failed jobs along the state index, as stats counts them, up to %(limit)s: when there are
# fewer, their end times give a busy hour's failures exactly (each costs a heap fetch, so the
# bound is HOUR_EXACT_UP_TO's, not stats').
FAILED_HOURS: Final = """
WITH sample AS MATERIALIZED (
  SELECT finished FROM minion_jobs WHERE state = 'failed'
  ORDER BY priority DESC, id LIMIT %(limit)s::bigint
)
SELECT NULL::timestamptz AS start, COUNT(*)::bigint AS failed FROM sample
UNION ALL
SELECT DATE_TRUNC('hour', finished), COUNT(*)::bigint FROM sample
WHERE finished >= DATE_TRUNC('hour', NOW()) - INTERVAL '23 hours'
GROUP BY 1
"""


class HourlyHistory(TypedDict):
    """Finished and failed jobs per clock hour of the last 24 (the current one last)."""

    daily: list[HistoryPoint]
    #: Whether some hour's figures are PostgreSQL's estimates rather than counts.
    estimated: bool


def hourly_history(backend: PgBackend, timeout: float) -> HourlyHistory:
    """The last 24 hours, bounded. An hour with up to :data:`HOUR_EXACT_UP_TO` ended jobs is
    counted exactly. A busier one is estimated as the jobs read times the hour's length over
    the time they span (a steady rate within the hour); its failures are exact while there are
    at most that many failed jobs in all, else the share of the jobs read. Below schema 24
    nothing indexes ``finished`` and this reads the table, as ``history`` does."""
    with _bounded(backend, "hourly_history", timeout) as conn:
        return _hours(conn)


def _hours(conn: Connection) -> HourlyHistory:
    limit = {"limit": HOUR_EXACT_UP_TO + 1}
    hours = conn.execute(HOURS_ENDED, limit, prepare=False).fetchall()
    rows = conn.execute(FAILED_HOURS, limit, prepare=False).fetchall()
    failed = {row["start"]: row["failed"] for row in rows}
    failed_exact = failed.pop(None) <= HOUR_EXACT_UP_TO
    daily: list[HistoryPoint] = []
    estimated = False
    for hour in hours:
        ended, fails = hour["ended"], hour["failed"]
        if ended > HOUR_EXACT_UP_TO:
            estimated = True
            scale = hour["length"] / max(hour["reached"], 0.001)
            ended = max(round(ended * scale), ended)
            fails = failed.get(hour["start"], 0) if failed_exact else round(fails * scale)
        daily.append({"epoch": hour["epoch"], "finished_jobs": ended - fails, "failed_jobs": fails})
    return {"daily": daily, "estimated": estimated}


class QueueActivity(TypedDict):
    """One queue's running jobs and the jobs that ended in the last hour."""

    queue: str
    running: int
    finished_1h: int
    failed_1h: int


class Activity(TypedDict):
    queues: list[QueueActivity]
    #: Runnable jobs per (queue, task), as ``observe`` reads them (the rest of its round is
    #: not needed here).
    backlog: list[Backlog]
    #: Whether the hour had more ended jobs than were read: its counts are then a lower bound.
    complete: bool


def queue_activity(backend: PgBackend, timeout: float) -> Activity:
    """Per queue: running jobs now, finished and failed jobs in the last hour; and the
    backlog per (queue, task).

    A statement still running after ``timeout`` seconds is cancelled and raises
    :class:`BackendError`.
    """
    limit = estimates.count_limit()
    with _bounded(backend, "queue_activity", timeout) as conn:
        rows = conn.execute(QUEUE_ACTIVITY, {"limit": limit}, prepare=False).fetchall()
        groups = conn.execute(sql.OBSERVE_INACTIVE, prepare=False).fetchall()
    queues: list[QueueActivity] = [
        {
            "queue": row["queue"],
            "running": row["running"],
            "finished_1h": row["finished_1h"],
            "failed_1h": row["failed_1h"],
        }
        for row in rows
    ]
    ended = sum(q["finished_1h"] + q["failed_1h"] for q in queues)
    backlog: list[Backlog] = [
        {"queue": g["queue"], "task": g["task"], "jobs": g["jobs"], "oldest_age": g["oldest_age"]}
        for g in groups
        if g["jobs"] > 0
    ]
    return {"queues": queues, "backlog": backlog, "complete": ended < limit}


@contextmanager
def _bounded(backend: PgBackend, operation: str, timeout: float) -> Iterator[Connection]:
    """A read-only snapshot whose statements are cancelled after ``timeout`` seconds, which
    then raises :class:`BackendError`."""
    params = {"milliseconds": min(max(round(timeout * 1000), 1), INT_MAX)}
    with backend.snapshot(operation) as conn:
        try:
            conn.execute(sql.OBSERVE_TIMEOUT, params, prepare=False)
            yield conn
        except psycopg.errors.QueryCanceled as error:
            raise BackendError(f"{operation}: no answer within {timeout} s: {error}") from error
