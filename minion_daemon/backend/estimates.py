"""Counts whose cost stops growing with the table: exact up to a bound, estimated beyond it.

Counting reads an index entry or a row per job counted, and the jobs Minion keeps for two days
after they end are most of ``minion_jobs``: an exact count of a million finished jobs took
about 150 ms (bench/). A bounded count stops at :func:`count_limit` rows. One that stopped
short of it is exact; one that reached it is replaced by PostgreSQL's own row estimate for the
same filter (the selectivity from the last ANALYZE times the table's current size), never less
than what was counted.

``stats`` (``failed_jobs``, ``finished_jobs``), the ``total`` of ``list_jobs`` and the metrics
round (:mod:`~minion_daemon.backend.observe`) count this way. Estimates are as fresh as the
statistics, which autovacuum renews after about a tenth of ``minion_jobs`` has changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, LiteralString

from minion_daemon.backend import sql
from minion_daemon.backend.connections import Connection
from minion_daemon.backend.executor import Params

#: Counts up to this are exact; one that goes past it stops there and is estimated instead.
EXACT_UP_TO: Final = 10_000


def count_limit() -> int:
    """Where a bounded count stops: one row past :data:`EXACT_UP_TO`, so that a count that
    gets there is known to have been cut short."""
    return EXACT_UP_TO + 1


def is_exact(counted: int) -> bool:
    """Whether a bounded count stopped short of its limit, and so counted every row."""
    return counted <= EXACT_UP_TO


def count_or_estimate(
    conn: Connection, counted: int, explain: LiteralString, params: Params
) -> int:
    """``counted`` when it is exact, else the planner's row estimate for ``explain`` (an
    ``EXPLAIN (FORMAT JSON)`` of the counted filter) with ``params``, at least ``counted``."""
    if is_exact(counted):
        return counted
    return max(planner_rows(conn, explain, params), counted)


def jobs_in_state(conn: Connection, state: str, counted: int) -> int:
    """The jobs in ``state``, from a bounded count of them."""
    return count_or_estimate(conn, counted, sql.ESTIMATE_JOBS, {"state": state})


def planner_rows(conn: Connection, explain: LiteralString, params: Params) -> int:
    """The planner's row estimate for an ``EXPLAIN (FORMAT JSON)`` statement.

    Unprepared, so PostgreSQL plans with the actual values: a filter left out (``NULL IS
    NULL``) folds away and the others are estimated from the statistics for those values.
    """
    row = conn.execute(explain, params, prepare=False).fetchone()
    assert row is not None, "EXPLAIN returns the plan"
    return plan_rows(row)


def plan_rows(row: Mapping[str, Any]) -> int:
    """The row estimate of the plan an ``EXPLAIN (FORMAT JSON)`` returned as ``row``."""
    return round(float(row["QUERY PLAN"][0]["Plan"]["Plan Rows"]))
