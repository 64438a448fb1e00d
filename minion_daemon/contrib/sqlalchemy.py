"""SQLAlchemy 2, synchronous: enqueue inside a ``Session``'s or a ``Connection``'s transaction,
on its psycopg 3 connection (docs/sqlalchemy.md). The engine must use the ``psycopg`` driver
(``postgresql+psycopg://``)."""

from __future__ import annotations

from typing import cast

from sqlalchemy import Connection
from sqlalchemy.orm import Session

from minion_daemon.backend.caller import CallerConnection


def connection(owner: Session | Connection) -> CallerConnection:
    """The psycopg 3 connection under ``owner``'s transaction, which this begins if none is
    open, as a statement would: for ``minion.enqueue(..., conn=connection(session))``.

    The job commits or rolls back with that transaction (a nested one's with its savepoint).
    Raises ``TypeError`` for an engine on another driver.
    """
    bound = owner.connection() if isinstance(owner, Session) else owner
    if bound.dialect.name != "postgresql" or bound.dialect.driver != "psycopg":
        raise TypeError(
            f"the engine is {bound.dialect.name}+{bound.dialect.driver}: minion-daemon enqueues"
            " on PostgreSQL through psycopg 3 (postgresql+psycopg://...)"
        )
    if not bound.in_transaction():
        # Else psycopg would open one that SQLAlchemy knows nothing of: its commit() would
        # not end it, and the job would be rolled back when the connection goes back to the pool.
        bound.begin()
    # ``connection`` revalidates an invalidated connection, so the driver's is never None here.
    return cast("CallerConnection", bound.connection.driver_connection)
