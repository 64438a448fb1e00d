"""Django: enqueue inside ``transaction.atomic()`` on Django's own connection, and the
``minion_daemon`` management command (docs/django.md).

The helpers need only Django's settings; the command needs ``"minion_daemon.contrib.django"``
in ``INSTALLED_APPS``. Django's PostgreSQL backend uses psycopg 3 whenever it is installed, and
minion-daemon depends on it, so the connection here is always psycopg 3.
"""

from __future__ import annotations

from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections

from minion_daemon.backend.caller import CallerConnection, conninfo


def connection(using: str = DEFAULT_DB_ALIAS) -> CallerConnection:
    """The psycopg 3 connection of Django's database ``using``, in the transaction Django has
    open on it, for ``minion.enqueue(..., conn=connection())``.

    Inside ``transaction.atomic(using=using)`` the job commits or rolls back with the block
    (a nested block's with its savepoint). Outside one, Django's connection is in autocommit
    and the job exists at once. Raises ``TypeError`` for a database that is not PostgreSQL,
    and Django's ``TransactionManagementError`` inside a block that an error already doomed.
    """
    wrapper = _postgresql(using)
    wrapper.ensure_connection()
    wrapper.validate_no_broken_transaction()
    raw: CallerConnection = wrapper.connection
    return raw


def dsn(using: str = DEFAULT_DB_ALIAS) -> str:
    """Django's database ``using`` as a libpq DSN: for ``Minion(dsn())``, and the database of
    ``manage.py minion_daemon``. Raises ``TypeError`` for a database that is not PostgreSQL."""
    return conninfo(_postgresql(using).get_connection_params())


def _postgresql(using: str) -> Any:
    wrapper = connections[using]
    if wrapper.vendor != "postgresql":
        raise TypeError(
            f"DATABASES[{using!r}] is {wrapper.vendor}, not PostgreSQL, where minion-daemon's"
            " jobs live"
        )
    return wrapper
