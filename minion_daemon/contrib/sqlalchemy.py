"""SQLAlchemy 2: enqueue inside a ``Session``'s or a ``Connection``'s transaction (sync), or an
``AsyncSession``'s or ``AsyncConnection``'s (asyncio), on its psycopg 3 connection
(docs/sqlalchemy.md). The engine must use the ``psycopg`` driver (``postgresql+psycopg://``)."""

from __future__ import annotations

from typing import cast

from sqlalchemy import Connection, Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Session

from minion_daemon.backend.caller import AsyncCallerConnection, CallerConnection


def connection(owner: Session | Connection) -> CallerConnection:
    """The psycopg 3 connection under ``owner``'s transaction, which this begins if none is
    open, as a statement would: for ``minion.enqueue(..., conn=connection(session))``.

    The job commits or rolls back with that transaction (a nested one's with its savepoint).
    Raises ``TypeError`` for an engine on another driver.
    """
    bound = owner.connection() if isinstance(owner, Session) else owner
    _require_psycopg(bound.dialect)
    if not bound.in_transaction():
        # Else psycopg would open one that SQLAlchemy knows nothing of: its commit() would
        # not end it, and the job would be rolled back when the connection goes back to the pool.
        bound.begin()
    # ``connection`` revalidates an invalidated connection, so the driver's is never None here.
    return cast("CallerConnection", bound.connection.driver_connection)


async def async_connection(owner: AsyncSession | AsyncConnection) -> AsyncCallerConnection:
    """:func:`connection` for asyncio: the ``psycopg.AsyncConnection`` under ``owner``'s
    transaction, for ``await minion.enqueue(..., conn=await async_connection(session))`` with
    an :class:`~minion_daemon.AsyncMinion`."""
    bound = await owner.connection() if isinstance(owner, AsyncSession) else owner
    _require_psycopg(bound.dialect)
    if not bound.in_transaction():
        await bound.begin()
    raw = await bound.get_raw_connection()
    return cast("AsyncCallerConnection", raw.driver_connection)


def _require_psycopg(dialect: Dialect) -> None:
    if dialect.name != "postgresql" or dialect.driver != "psycopg":
        raise TypeError(
            f"the engine is {dialect.name}+{dialect.driver}: minion-daemon enqueues"
            " on PostgreSQL through psycopg 3 (postgresql+psycopg://...)"
        )
