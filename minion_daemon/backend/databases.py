"""Whole databases made and dropped on a server: the pytest plugin's throwaway database."""

from __future__ import annotations

from typing import Final

import psycopg
from psycopg import conninfo, sql

from minion_daemon.backend.connections import ConnectionSettings
from minion_daemon.errors import BackendError

CREATE_DATABASE: Final = sql.SQL("CREATE DATABASE {}")
#: FORCE ends the sessions still on it (a job process a test left behind); PostgreSQL 13+.
DROP_DATABASE: Final = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")


def create_database(server: str, name: str) -> str:
    """Create the empty database ``name`` on the server ``server`` (a DSN) reaches; its DSN."""
    _run(server, CREATE_DATABASE, name, "create")
    return conninfo.make_conninfo(server, dbname=name)


def drop_database(server: str, name: str) -> None:
    """Drop the database ``name`` (if it exists) on the server ``server`` reaches."""
    _run(server, DROP_DATABASE, name, "drop")


def _run(server: str, statement: sql.SQL, name: str, verb: str) -> None:
    settings = ConnectionSettings(server, application_name="minion-daemon-testing")
    try:
        with psycopg.connect(server, **settings.kwargs()) as connection:
            connection.execute(statement.format(sql.Identifier(name)))
    except psycopg.Error as error:
        reason = settings.redact(str(error).strip())
        raise BackendError(f"cannot {verb} database {name!r}: {reason}") from error
