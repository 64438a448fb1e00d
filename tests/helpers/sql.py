"""Statements the tests run on a connection of their own, beside the backend under test."""

from __future__ import annotations

from typing import Any

import psycopg


def execute(dsn: str, query: Any, params: Any = None) -> list[tuple[Any, ...]]:
    """Run one statement on a fresh autocommit connection (never the backend's); its rows."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        cursor = conn.execute(query, params)
        return cursor.fetchall() if cursor.description else []


def db_now(dsn: str) -> float:
    """The database's clock, as epoch seconds."""
    return float(execute(dsn, "SELECT EXTRACT(EPOCH FROM NOW())::float8")[0][0])


def hasten_retries(dsn: str) -> int:
    """Make retried jobs runnable now instead of after Minion's backoff (15 s and more).

    Only the wait changes: the retry itself, and the ``retries`` that fence it, are the
    daemon's. Returns how many jobs were hastened.
    """
    with psycopg.connect(dsn, autocommit=True) as conn:
        hastened = conn.execute(
            "UPDATE minion_jobs SET delayed = NOW() WHERE state = 'inactive' AND delayed > NOW()"
        ).rowcount
        if hastened:
            conn.execute('NOTIFY "minion.job"')  # as a retry that is due at once would
    return hastened
