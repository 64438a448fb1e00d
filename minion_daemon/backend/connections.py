"""Where the backend gets its connections: a pool, or one plain connection.

Worker processes use a psycopg_pool pool. The supervisor must stay single-threaded when it
forks, and psycopg_pool runs threads, so it uses :class:`SingleConnection` instead. Both hand
out autocommit connections with dict rows: every backend statement is its own transaction
unless the backend opens one on purpose.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import psycopg
from psycopg.rows import DictRow, dict_row
from psycopg_pool import ConnectionPool

Connection = psycopg.Connection[DictRow]


@dataclass(frozen=True, slots=True)
class ConnectionSettings:
    """How to reach the database; ``conninfo`` is a libpq DSN or URL."""

    conninfo: str
    application_name: str = "minion-daemon"
    connect_timeout: int = 10

    def connect(self) -> Connection:
        """A new autocommit connection with dict rows."""
        return psycopg.connect(self.conninfo, **self.kwargs())

    def kwargs(self) -> dict[str, Any]:
        return {
            "autocommit": True,
            "row_factory": dict_row,
            "application_name": self.application_name,
            "connect_timeout": self.connect_timeout,
        }


class ConnectionSource(Protocol):
    def connection(self) -> AbstractContextManager[Connection]:
        """Lend a connection for the duration of a ``with`` block."""

    def close(self) -> None:
        """Close every connection this source opened."""


class PooledConnections:
    """A psycopg_pool pool, opened on first use so constructing a backend stays free."""

    def __init__(self, settings: ConnectionSettings, *, min_size: int, max_size: int) -> None:
        self._pool: ConnectionPool[Connection] = ConnectionPool(
            settings.conninfo,
            min_size=min_size,
            max_size=max_size,
            kwargs=settings.kwargs(),
            connection_class=psycopg.Connection[DictRow],
            name="minion-daemon",
            # Waiting for a connection longer than it takes to make one means the database is
            # gone; say so instead of blocking for psycopg_pool's default 30 s.
            timeout=settings.connect_timeout,
            open=False,
        )
        self._opened = False

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        if not self._opened:
            self._pool.open(wait=False)
            self._opened = True
        with self._pool.connection() as conn:
            yield conn

    def close(self) -> None:
        if self._opened:
            self._pool.close()


class SingleConnection:
    """One connection, opened on first use and opened again after it breaks."""

    def __init__(self, settings: ConnectionSettings) -> None:
        self._settings = settings
        self._conn: Connection | None = None

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        if self._conn is None or self._conn.closed:
            self._conn = self._settings.connect()
        try:
            yield self._conn
        finally:
            if self._conn.broken:
                self._conn.close()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
