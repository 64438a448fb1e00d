"""``observe``: everything the metrics read from the database, in one bounded round.

Beyond Perl. One pooled connection, one read-only REPEATABLE READ transaction (one snapshot and
one ``NOW()`` behind every figure), and a statement timeout, so that a slow database fails a
scrape at once instead of hanging it. Every query is served by an index of Minion's schema and
its cost does not grow with the finished jobs a busy queue keeps for days:

Exact
    The backlog per (queue, task), ``inactive_jobs`` and ``delayed_jobs`` (one pass over the
    inactive jobs); ``active_jobs``, ``active_workers`` and the oldest active job (one pass over
    the active jobs); workers, locks, schedules, ``enqueued_jobs`` (the id sequence) and the
    health figures. The unrunnable jobs come from the backlog's groups and one read of the
    live workers' tasks (``LIVE_WORKERS``, over ``minion_workers`` only). Inactive and active
    jobs are few in a healthy queue; a backlog of millions costs a pass over millions of rows,
    within the timeout or not at all.

Exact up to :data:`~minion_daemon.backend.estimates.EXACT_UP_TO` (10,000), estimated above it
    ``finished_jobs`` and ``failed_jobs``, as ``stats`` counts them (:mod:`.estimates`): a
    count that stops at ``EXACT_UP_TO + 1``, PostgreSQL's own row estimate past that.

    The recent counts. The newest ``EXACT_UP_TO + 1`` jobs that ended in the last 24 hours are
    read backwards along the (finished, state) index, and a window they cover is exact (the
    hour always is while fewer jobs than that end in an hour). Where a window reaches past the
    oldest of them, that older part is PostgreSQL's estimate (the share of ``finished`` times in
    the range, from its histogram, times the state's share). Failed jobs' windows are exact
    whenever ``failed_jobs`` is, since counting them reads their end times.

Estimates are as fresh as the statistics; the parts counted exactly are always current. Below
schema 24 nothing indexes ``finished``, and the recent counts scan the table, as ``history``
does.
"""

from __future__ import annotations

import time
from typing import Any, Final, LiteralString

import psycopg

from minion_daemon.backend import estimates, sql
from minion_daemon.backend.connections import Connection
from minion_daemon.backend.executor import Params, PgExecutor
from minion_daemon.backend.fleet import PAUSED_QUEUES
from minion_daemon.errors import BackendError
from minion_daemon.model import (
    Backlog,
    DatabaseHealth,
    Observation,
    RecentJobs,
    Stats,
    TaskOffers,
)
from minion_daemon.options import INT_MAX, check_seconds

#: The heartbeat interval of a worker whose status states none: Perl's and our default.
DEFAULT_HEARTBEAT: Final = 300.0
#: The shortest a worker counts as live after its heartbeat: a worker that heartbeats every
#: second is not lost to one slow pass of its loop.
LIVE_AT_LEAST: Final = 60.0


class ObserveOperations(PgExecutor):
    """The metrics round of the PostgreSQL backend."""

    def observe(self, timeout: float = 2.0) -> Observation:
        """Stats, backlog, ages, recent counts, schedules and table health, in one round.

        Which counts are exact and which are estimates: see this module's docstring. A
        statement still running after ``timeout`` seconds is cancelled and raises
        :class:`BackendError`; an unreachable database raises ``DatabaseUnavailableError``.
        """
        limits = {"milliseconds": _milliseconds(timeout)}
        schedules = self.has_schedules
        own_tables = self.own_schema_version > 0
        with self.snapshot("observe") as conn:
            started = time.perf_counter()
            try:
                conn.execute(sql.OBSERVE_TIMEOUT, limits)
                return _observe(conn, schedules, started, own_tables)
            except psycopg.errors.QueryCanceled as error:
                raise BackendError(
                    f"observe: no answer within the statement timeout of {timeout} s"
                    f" (or cancelled by an administrator): {error}"
                ) from error

    def live_workers(self) -> TaskOffers:
        """The live workers and the tasks they list (:class:`TaskOffers`); reads the workers
        only, never the jobs."""
        with self.snapshot("live_workers") as conn:
            return _offers(conn)


def _offers(conn: Connection) -> TaskOffers:
    row = _one(conn, sql.LIVE_WORKERS, {"heartbeat": DEFAULT_HEARTBEAT, "at_least": LIVE_AT_LEAST})
    return TaskOffers(row["workers"], row["unlisted"], frozenset(row["tasks"]))


def _unrunnable(groups: list[dict[str, Any]], offers: TaskOffers) -> dict[str, int]:
    """Runnable jobs per task no live worker may run, from the backlog groups."""
    jobs: dict[str, int] = {}
    for group in groups:
        if group["jobs"] > 0 and not offers.may_run(group["task"]):
            jobs[group["task"]] = jobs.get(group["task"], 0) + group["jobs"]
    return jobs


def _milliseconds(timeout: float) -> int:
    """The statement timeout in milliseconds; 0 would mean none, so it is refused."""
    seconds = check_seconds("observe: timeout", timeout)
    if seconds < 0.001:
        raise ValueError(f"observe: timeout must be at least 0.001 seconds, got {timeout}")
    return min(round(seconds * 1000), INT_MAX)


def _paused(conn: Connection) -> list[str]:
    return [row["queue"] for row in conn.execute(PAUSED_QUEUES, prepare=False).fetchall()]


def _observe(conn: Connection, schedules: bool, started: float, own_tables: bool) -> Observation:
    sample = {"limit": estimates.count_limit()}
    groups = conn.execute(sql.OBSERVE_INACTIVE, prepare=False).fetchall()
    jobs = _one(conn, sql.OBSERVE_JOBS, sample)
    ended = _one(conn, sql.OBSERVE_ENDED, sample)
    health = _one(conn, sql.OBSERVE_HEALTH)
    scheduled = _one(conn, sql.OBSERVE_SCHEDULES) if schedules else None
    offers = _offers(conn)
    stats = _stats(conn, groups, jobs, scheduled)
    recent = _recent(conn, jobs, ended)
    return {
        "stats": stats,
        "backlog": [_backlog(group) for group in groups if group["jobs"] > 0],
        "oldest_active_age": jobs["oldest_active_age"],
        "recent": recent,
        "schedules": None if scheduled is None else _all_schedules(scheduled),
        "health": _health(health),
        "unrunnable": _unrunnable(groups, offers),
        "unlisted_workers": offers.unlisted,
        "paused_queues": _paused(conn) if own_tables else [],
        "duration": time.perf_counter() - started,
    }


def _one(conn: Connection, query: LiteralString, params: Params | None = None) -> dict[str, Any]:
    # Unprepared: PostgreSQL plans with the actual LIMIT and estimates with the actual values,
    # once per round, never with a generic plan.
    row = conn.execute(query, params, prepare=False).fetchone()
    assert row is not None, "every observe statement returns one row"
    return row


def _stats(
    conn: Connection,
    groups: list[dict[str, Any]],
    jobs: dict[str, Any],
    scheduled: dict[str, Any] | None,
) -> Stats:
    stats: Stats = {
        "active_jobs": jobs["active_jobs"],
        "active_locks": jobs["active_locks"],
        "active_workers": jobs["active_workers"],
        "delayed_jobs": sum(group["delayed"] for group in groups),
        "enqueued_jobs": jobs["enqueued_jobs"],
        "failed_jobs": estimates.jobs_in_state(conn, "failed", jobs["failed_sample"]),
        "finished_jobs": estimates.jobs_in_state(conn, "finished", jobs["finished_sample"]),
        "inactive_jobs": sum(group["unexpired"] for group in groups),
        "inactive_workers": jobs["workers"] - jobs["active_workers"],
        "uptime": jobs["uptime"],
        "workers": jobs["workers"],
    }
    if scheduled is not None:
        stats["schedules"] = scheduled["schedules"]
        stats["inactive_schedules"] = scheduled["inactive_schedules"]
    return stats


def _recent(conn: Connection, jobs: dict[str, Any], ended: dict[str, Any]) -> RecentJobs:
    # Counting failed jobs read their end times; when it stopped short, those are all of them.
    failed_exact = estimates.is_exact(jobs["failed_sample"])

    def count(state: str, window: str) -> int:
        if state == "failed" and failed_exact:
            return int(jobs[f"failed_{window}"])
        counted = int(ended[f"{state}_{window}"])
        since, edge = ended[f"since_{window}"], ended["edge"]
        if edge is None or edge <= since:
            return counted
        older = {"state": state, "since": since, "edge": edge}
        return counted + estimates.planner_rows(conn, sql.ESTIMATE_ENDED, older)

    return {
        "finished_1h": count("finished", "1h"),
        "failed_1h": count("failed", "1h"),
        "finished_24h": count("finished", "24h"),
        "failed_24h": count("failed", "24h"),
    }


def _all_schedules(scheduled: dict[str, Any]) -> int:
    return int(scheduled["schedules"] + scheduled["inactive_schedules"])


def _backlog(group: dict[str, Any]) -> Backlog:
    return {
        "queue": group["queue"],
        "task": group["task"],
        "jobs": group["jobs"],
        "oldest_age": group["oldest_age"],
    }


def _health(row: dict[str, Any]) -> DatabaseHealth:
    return {
        "live_tuples": row["live_tuples"],
        "dead_tuples": row["dead_tuples"],
        "last_autovacuum": row["last_autovacuum"],
        "oldest_transaction_age": row["oldest_transaction_age"],
    }
