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
