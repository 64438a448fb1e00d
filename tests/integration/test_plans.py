"""Query plans on a table with many rows: the hot statements stay on their indexes.

Timings belong in bench/; here PostgreSQL's own EXPLAIN says which access path it chose, which
is deterministic for a given table and statistics. A plan that degrades to scanning every job
(Minion #46, #139) fails these tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from minion_daemon.backend import sql

ROWS = 20_000


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


@pytest.fixture
def many_jobs(dsn: str) -> Iterator[psycopg.Connection[dict[str, Any]]]:
    with psycopg.connect(dsn, autocommit=True, row_factory=dict_row) as conn:
        conn.execute(
            """
            INSERT INTO minion_jobs (args, delayed, finished, priority, state, task, queue)
            SELECT '[]', NOW() - INTERVAL '1 day', NOW() - INTERVAL '1 hour', 0,
              CASE WHEN n %% 100 = 0 THEN 'inactive' ELSE 'finished' END::minion_state,
              'task' || (n %% 7), 'default'
            FROM generate_series(1, %s) AS n
            """,
            (ROWS,),
        )
        conn.execute("VACUUM ANALYZE minion_jobs")
        yield conn


def _plan(
    conn: psycopg.Connection[dict[str, Any]], query: Any, params: dict[str, Any]
) -> list[dict[str, Any]]:
    explained = conn.execute(b"EXPLAIN (FORMAT JSON) " + query.encode(), params, prepare=False)
    row = explained.fetchone()
    assert row is not None
    return list(_nodes(row["QUERY PLAN"][0]["Plan"]))


def _seq_scans(nodes: list[dict[str, Any]]) -> list[str]:
    return [node["Relation Name"] for node in nodes if node["Node Type"] == "Seq Scan"]


def _filters(**given: Any) -> dict[str, Any]:
    empty = dict.fromkeys(("before", "ids", "notes", "queues", "states", "tasks"))
    return empty | {"offset": 0, "limit": 10} | given


def test_first_page_of_list_jobs_reads_the_primary_key_backwards(
    many_jobs: psycopg.Connection[dict[str, Any]],
) -> None:
    nodes = _plan(many_jobs, sql.LIST_JOBS, _filters())
    assert _seq_scans(nodes) == []
    at = next(index for index, node in enumerate(nodes) if node["Node Type"] == "Limit")
    limit, scan = nodes[at], nodes[at + 1]
    # `children` is looked up above the LIMIT, for the page's rows only, not for every row an
    # OFFSET skips.
    assert not any(node.get("Parent Relationship") == "SubPlan" for node in _nodes(limit))
    assert any(node.get("Parent Relationship") == "SubPlan" for node in nodes[0]["Plans"])
    # The page is read in order and stops at LIMIT: no sort or window over every row.
    assert (scan["Node Type"], scan["Index Name"], scan["Scan Direction"]) == (
        "Index Scan",
        "minion_jobs_pkey",
        "Backward",
    )
    assert not any(node["Node Type"] == "WindowAgg" for node in nodes)


def test_job_info_by_id_is_an_index_lookup(
    many_jobs: psycopg.Connection[dict[str, Any]],
) -> None:
    nodes = _plan(many_jobs, sql.LIST_JOBS, _filters(ids=[ROWS // 2], limit=1))
    assert _seq_scans(nodes) == []


def test_dequeue_claims_through_the_state_priority_index(
    many_jobs: psycopg.Connection[dict[str, Any]],
) -> None:
    params = {"worker": 1, "id": None, "min_priority": None, "queues": ["default"], "tasks": None}
    nodes = _plan(many_jobs, sql.DEQUEUE, params)
    assert _seq_scans(nodes) == []
    assert any(node.get("Index Name") == "minion_jobs_state_priority_id_idx" for node in nodes)


def test_history_reads_only_recent_jobs_through_an_index(
    many_jobs: psycopg.Connection[dict[str, Any]],
) -> None:
    many_jobs.execute("UPDATE minion_jobs SET finished = finished - INTERVAL '2 days'")
    many_jobs.execute("VACUUM ANALYZE minion_jobs")
    nodes = _plan(many_jobs, sql.HISTORY, {})
    assert "minion_jobs" not in _seq_scans(nodes)
