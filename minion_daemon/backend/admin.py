"""The admin UI's own reads: what a queue is doing now and did in the last hour.

Beyond Perl. Bounded like ``observe``: running jobs are one pass over the active jobs (few in
a healthy queue); the jobs that ended in the last hour are read backwards along the
(finished, state) index of schema 24 and stop at :func:`~.estimates.count_limit` rows, so a
busy hour costs at most that many index entries and its counts are then marked incomplete.
Below schema 24 nothing indexes ``finished``, and the hour scans the table, as ``history``
does.
"""

from __future__ import annotations

from typing import Final, TypedDict

import psycopg

from minion_daemon.backend import estimates, sql
from minion_daemon.backend.pg import PgBackend
from minion_daemon.errors import BackendError
from minion_daemon.options import INT_MAX

QUEUE_ACTIVITY: Final = """
WITH running AS (
  SELECT queue, COUNT(*)::bigint AS running FROM minion_jobs WHERE state = 'active'
  GROUP BY queue
), ended AS (
  SELECT queue,
    COUNT(*) FILTER (WHERE state = 'finished')::bigint AS finished_1h,
    COUNT(*) FILTER (WHERE state = 'failed')::bigint AS failed_1h
  FROM (
    SELECT queue, state FROM minion_jobs WHERE finished > NOW() - INTERVAL '1 hour'
    ORDER BY finished DESC LIMIT %(limit)s::bigint
  ) AS hour
  GROUP BY queue
)
SELECT queue, COALESCE(running, 0)::bigint AS running,
  COALESCE(finished_1h, 0)::bigint AS finished_1h, COALESCE(failed_1h, 0)::bigint AS failed_1h
FROM running FULL JOIN ended USING (queue)
ORDER BY queue
"""


class QueueActivity(TypedDict):
    """One queue's running jobs and the jobs that ended in the last hour."""

    queue: str
    running: int
    finished_1h: int
    failed_1h: int


class Activity(TypedDict):
    queues: list[QueueActivity]
    #: Whether the hour had more ended jobs than were read: its counts are then a lower bound.
    complete: bool


def queue_activity(backend: PgBackend, timeout: float) -> Activity:
    """Per queue: running jobs now, finished and failed jobs in the last hour.

    A statement still running after ``timeout`` seconds is cancelled and raises
    :class:`BackendError`.
    """
    limit = estimates.count_limit()
    params = {"milliseconds": min(max(round(timeout * 1000), 1), INT_MAX)}
    with backend.snapshot("queue_activity") as conn:
        try:
            conn.execute(sql.OBSERVE_TIMEOUT, params, prepare=False)
            rows = conn.execute(QUEUE_ACTIVITY, {"limit": limit}, prepare=False).fetchall()
        except psycopg.errors.QueryCanceled as error:
            raise BackendError(f"queue_activity: no answer within {timeout} s: {error}") from error
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
    return {"queues": queues, "complete": ended < limit}
