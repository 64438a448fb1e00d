"""Bounded counts and JIT-free reads for ``stats``, ``history`` and ``list_jobs``, on a real
PostgreSQL.

``failed_jobs``, ``finished_jobs`` and the ``total`` of ``list_jobs`` are exact up to
``estimates.EXACT_UP_TO`` and PostgreSQL's row estimate beyond it. The threshold is lowered here
so that a few dozen jobs take the estimate path, and the statistics are made to disagree with
the table (jobs deleted or added after ANALYZE, with autovacuum off for the table), so that an
estimate can be told from a count.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from helpers.sql import execute
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row
from psycopg.sql import SQL, Identifier

from minion_daemon.backend import PgBackend, estimates, sql

MakeDatabase = Callable[[int | None], str]

INSERT_JOBS = """
INSERT INTO minion_jobs (args, delayed, finished, priority, state, task)
SELECT '[]', NOW(), CASE WHEN state != 'inactive' THEN NOW() END, 0, state, 'test'
FROM UNNEST(%s::minion_state[]) AS state
"""

DELETE_JOBS = """
DELETE FROM minion_jobs
WHERE id IN (SELECT id FROM minion_jobs WHERE state = %s::minion_state LIMIT %s)
"""

#: What ANALYZE saw, and what is left after the deletions it did not see.
ANALYZED = {"finished": 30, "failed": 21, "inactive": 9}
LEFT = {"finished": 20, "failed": 14, "inactive": 9}


def _insert(dsn: str, state: str, count: int) -> None:
    execute(dsn, INSERT_JOBS, [[state] * count])


def _unanalyzed(make_database: MakeDatabase) -> str:
    dsn = make_database(25)
    execute(dsn, "ALTER TABLE minion_jobs SET (autovacuum_enabled = false)")
    return dsn


@pytest.fixture
def stale(make_database: MakeDatabase) -> Iterator[PgBackend]:
    """A backend on jobs whose statistics say ``ANALYZED`` while the table holds ``LEFT``:
    PostgreSQL's estimates are then the ``ANALYZED`` figures."""
    dsn = _unanalyzed(make_database)
    for state, count in ANALYZED.items():
        _insert(dsn, state, count)
    execute(dsn, "ANALYZE minion_jobs")
    for state, count in ANALYZED.items():
        execute(dsn, DELETE_JOBS, [state, count - LEFT[state]])
    backend = PgBackend(dsn, pooled=False)
    yield backend
    backend.close()


def test_stats_count_ended_jobs_exactly_up_to_the_threshold_and_estimate_beyond(
    stale: PgBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    cases = [
        (10_000, LEFT["finished"], LEFT["failed"]),
        # A count that reaches the threshold exactly is still exact.
        (LEFT["finished"], LEFT["finished"], LEFT["failed"]),
        (LEFT["finished"] - 1, ANALYZED["finished"], LEFT["failed"]),
        (LEFT["failed"] - 1, ANALYZED["finished"], ANALYZED["failed"]),
    ]
    for exact_up_to, finished, failed in cases:
        monkeypatch.setattr(estimates, "EXACT_UP_TO", exact_up_to)
        stats = stale.stats()
        ended = (stats["finished_jobs"], stats["failed_jobs"])
        assert ended == (finished, failed), f"exact up to {exact_up_to}"
        assert [type(count) for count in ended] == [int, int]
        # Every other count stays exact.
        assert (stats["inactive_jobs"], stats["active_jobs"]) == (LEFT["inactive"], 0)
        observed = stale.observe()["stats"]
        assert (observed["finished_jobs"], observed["failed_jobs"]) == ended, "as the metrics"


def test_list_jobs_total_is_exact_up_to_the_threshold_and_estimated_beyond(
    stale: PgBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    every = sum(LEFT.values())
    cases = [
        (10_000, None, every),
        (10_000, ["failed"], LEFT["failed"]),
        (every, None, every),
        (every - 1, None, sum(ANALYZED.values())),
        (LEFT["finished"] - 1, ["finished"], ANALYZED["finished"]),
        (LEFT["finished"] - 1, ["failed"], LEFT["failed"]),
    ]
    for exact_up_to, states, total in cases:
        monkeypatch.setattr(estimates, "EXACT_UP_TO", exact_up_to)
        listed = stale.list_jobs(0, 5, {"states": states})
        assert len(listed["jobs"]) == 5
        assert listed["total"] == total, f"{states} exact up to {exact_up_to}"
        assert type(listed["total"]) is int


def test_an_estimated_total_is_never_below_the_jobs_listed_so_far(
    make_database: MakeDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ANALYZE saw no finished job at all, so PostgreSQL estimates about one of the 30.
    dsn = _unanalyzed(make_database)
    _insert(dsn, "inactive", 10)
    execute(dsn, "ANALYZE minion_jobs")
    _insert(dsn, "finished", 30)
    monkeypatch.setattr(estimates, "EXACT_UP_TO", 4)
    backend = PgBackend(dsn, pooled=False)
    try:
        finished = {"states": ["finished"]}
        assert backend.list_jobs(0, 10, finished)["total"] == 10
        deep = backend.list_jobs(20, 5, finished)
        assert (len(deep["jobs"]), deep["total"]) == (5, 25)
        assert backend.list_jobs(40, 5, finished) == {"jobs": [], "total": 5}
        monkeypatch.setattr(estimates, "EXACT_UP_TO", 10_000)
        assert backend.list_jobs(20, 5, finished)["total"] == 30
    finally:
        backend.close()


def _reporting_jit(statement: str) -> str:
    """``statement`` with a first column reporting the session's ``jit`` setting."""
    return statement.replace("SELECT", "SELECT current_setting('jit') AS jit,", 1)


@pytest.mark.parametrize("name", ["STATS_WITH_SCHEDULES", "HISTORY", "LIST_JOBS"])
def test_stats_history_and_list_jobs_run_with_jit_off(
    backend: PgBackend, dsn: str, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    backend.enqueue("test")
    assert execute(dsn, "SHOW jit") == [("on",)], "the server's default, which these turn off"
    monkeypatch.setattr(sql, name, _reporting_jit(getattr(sql, name)))
    rows: dict[str, Callable[[], Any]] = {
        "STATS_WITH_SCHEDULES": lambda: [backend.stats()],
        "HISTORY": lambda: backend.history()["daily"],
        "LIST_JOBS": lambda: backend.list_jobs(0, 10)["jobs"],
    }
    seen = rows[name]()
    assert seen
    assert {row["jit"] for row in seen} == {"off"}


def _jit_compiled(conn: psycopg.Connection[dict[str, Any]], statement: str) -> bool:
    params = dict.fromkeys(("before", "ids", "notes", "queues", "states", "tasks"))
    params |= {"limit": 10, "offset": 0, "count_limit": 10}
    explain = b"EXPLAIN (ANALYZE, FORMAT JSON) " + statement.encode()
    explained = conn.execute(explain, params if b"%(" in explain else None, prepare=False)
    row = explained.fetchone()
    assert row is not None
    return "JIT" in row["QUERY PLAN"][0]


def test_the_backend_compiles_nothing_even_at_jit_above_cost_0(
    make_database: MakeDatabase,
) -> None:
    dsn = make_database(25)
    name = str(conninfo_to_dict(dsn)["dbname"])
    execute(dsn, SQL("ALTER DATABASE {} SET jit_above_cost = 0").format(Identifier(name)))
    statements = [sql.STATS_WITH_SCHEDULES, sql.HISTORY, sql.LIST_JOBS, sql.COUNT_JOBS]
    with psycopg.connect(dsn, autocommit=True, row_factory=dict_row) as conn:
        if conn.execute("SELECT pg_jit_available() AS jit").fetchone() != {"jit": True}:
            pytest.skip("this PostgreSQL cannot JIT-compile (built without LLVM)")
        compiled = [_jit_compiled(conn, statement) for statement in statements]
        assert compiled == [True] * len(statements), "on a plain session, JIT compiles them"
    for pooled in (True, False):
        backend = PgBackend(dsn, pooled=pooled, min_size=0)
        try:
            with backend.connection("test") as conn:
                assert conn.execute("SHOW jit_above_cost").fetchone() == {"jit_above_cost": "0"}
                assert [_jit_compiled(conn, statement) for statement in statements] == [False] * 4
        finally:
            backend.close()
