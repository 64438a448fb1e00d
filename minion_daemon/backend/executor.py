"""Statement execution for :class:`~minion_daemon.backend.pg.PgBackend`.

One place that lends connections, makes sure the schema is there before the first statement
(Perl's ``auto_migrate``, as far as :data:`~minion_daemon.model.AutoMigrate` allows), and
turns psycopg errors into :mod:`minion_daemon.errors`, so nothing above the backend ever
handles a driver exception.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Final, LiteralString

import psycopg
from psycopg.rows import dict_row

from minion_daemon.backend import migrate as schema
from minion_daemon.backend import sql
from minion_daemon.backend.caller import CallerConnection
from minion_daemon.backend.connections import (
    Connection,
    ConnectionSettings,
    ConnectionSource,
    PooledConnections,
    SingleConnection,
)
from minion_daemon.errors import BackendError, DatabaseUnavailableError, SchemaError
from minion_daemon.model import (
    AUTO_MIGRATE_CHOICES,
    AutoMigrate,
    ServerConnections,
    auto_migrate_choice,
)

log = logging.getLogger("minion_daemon.backend")

#: Connections inherited across fork(). They share their sockets with the parent: closing them,
#: or letting them be collected (libpq then sends Terminate), would end the parent's sessions.
#: A forked child keeps them here, untouched, until it leaves through os._exit, with /dev/null
#: in place of their sockets (``connections.disown``).
INHERITED: list[object] = []

#: PostgreSQL 13 is what Minion 11+ requires; older servers are refused with a clear message.
MIN_SERVER_VERSION: Final = 130000

Params = Mapping[str, object]


@contextmanager
def translate_errors(operation: str, redact: Callable[[str], str] = str) -> Iterator[None]:
    """Re-raise psycopg errors as ours, naming the operation that failed; ``redact`` takes the
    DSN's password out of libpq's message, which may quote the DSN it could not use."""
    try:
        yield
    except psycopg.OperationalError as error:
        message = redact(str(error))
        raise DatabaseUnavailableError(f"{operation}: database unavailable: {message}") from error
    except psycopg.Error as error:
        raise BackendError(f"{operation}: {redact(str(error))}") from error


class PgExecutor:
    """Connections, schema readiness and error translation for the backend's statements."""

    def __init__(
        self,
        settings: ConnectionSettings,
        *,
        pooled: bool = True,
        min_size: int = 1,
        max_size: int = 4,
        auto_migrate: AutoMigrate | bool = "create",
        max_schema_version: int | None = None,
    ) -> None:
        choice = auto_migrate_choice(auto_migrate)
        if choice is None:
            choices = ", ".join(AUTO_MIGRATE_CHOICES)
            raise ValueError(f"auto_migrate: expected one of {choices}, got {auto_migrate!r}")
        self.settings = settings
        self._pid = os.getpid()
        self._source: ConnectionSource = (
            PooledConnections(settings, min_size=min_size, max_size=max_size)
            if pooled
            else SingleConnection(settings)
        )
        self._auto_migrate = choice
        self._max_schema_version = max_schema_version or schema.load_migrations().latest
        self._schema: schema.SchemaState | None = None
        self._has_schedules = False
        self._own_version: int | None = None

    @property
    def schema_version(self) -> int:
        """The schema version found (and migrated to) at the first database access."""
        return self.ready().version

    @property
    def has_schedules(self) -> bool:
        """Whether the schema has Minion 12's ``minion_schedules`` table."""
        self.ready()
        return self._has_schedules

    @property
    def own_schema_version(self) -> int:
        """The version of minion-daemon's own tables (0: absent), found at the first access
        (or reached by :meth:`migrate`)."""
        if self._own_version is None:
            self.ready()
        assert self._own_version is not None, "ready() finds it"
        return self._own_version

    def require_own_tables(self, operation: str, feature: str, version: int) -> None:
        """Raise :class:`SchemaError`, saying what to run, unless our own tables are at
        ``version`` or later, which ``feature`` needs.

        Before it raises, it reads the version again: a ``minion-daemon migrate`` run since
        this backend first looked needs no restart of the program.
        """
        if self.own_schema_version >= version:
            return
        with self.connection(operation) as conn:
            self._own_version = schema.active_version(conn, schema.OWN_MIGRATIONS_NAME)
        found = self._own_version
        if found < version:
            state = "are missing" if found == 0 else f"are at version {found}"
            raise SchemaError(
                f"{operation}: minion-daemon's own tables {state}, {feature} need version"
                f" {version} (mojo_migrations {schema.OWN_MIGRATIONS_NAME!r}): run"
                " `minion-daemon migrate`, or start the daemon with postgres.auto_migrate:"
                " create (the default)"
            )

    def migrate(self, target: int | None = None) -> int:
        """Migrate explicitly to ``target``, up or down; returns the version reached.

        Unlike the automatic migration this may go down: version 0 removes every Minion table.
        Without a target it goes up to ``max_schema_version`` and never down, so that a bare
        ``minion-daemon migrate`` cannot take a shared database where its fleet cannot follow.
        Our own tables (:attr:`own_schema_version`) go to their latest version with it, and
        away with version 0.
        """
        with self._translated("migrate"), self._connections().connection() as conn:
            self._check_server(conn)
            if target is not None:
                schema.migrate(conn, target)
            elif schema.active_version(conn) < self._max_schema_version:
                schema.migrate(conn, self._max_schema_version)
            self._own_version = schema.migrate_own(conn, 0 if target == 0 else None)
            self._schema = None
            return schema.active_version(conn)

    def ids_on_caller_connection(
        self, operation: str, conn: CallerConnection, query: LiteralString, params: Params
    ) -> list[int]:
        """Run an insert returning ``id`` on the caller's connection, inside whatever
        transaction the caller has open there (beyond Perl: the jobs exist exactly when the
        caller's rows do); the ids, in the rows' order."""
        self.ready()
        with self._translated(operation), conn.cursor(row_factory=dict_row) as cursor:
            try:
                cursor.execute(query, params)
            except (psycopg.errors.SerializationFailure, psycopg.errors.DeadlockDetected) as error:
                # A serialization failure or deadlock of the caller's transaction (a unique
                # key enqueued concurrently, under REPEATABLE READ): not an unavailable
                # database, and the caller's to retry.
                raise BackendError(
                    f"{operation}: {error} (roll back the transaction and retry it)"
                ) from error
            return [int(row["id"]) for row in cursor.fetchall()]

    def server_connections(self) -> ServerConnections:
        """The server's ``max_connections`` and its reserved slots (see sql.SERVER_CONNECTIONS)."""
        row = self.row("server_connections", sql.SERVER_CONNECTIONS)
        assert row is not None, "a SELECT without FROM returns one row"
        return ServerConnections(int(row["max_connections"]), int(row["reserved"]))

    def _translated(self, operation: str) -> AbstractContextManager[None]:
        """:func:`translate_errors` with this DSN's password taken out of the messages."""
        return translate_errors(operation, self.settings.redact)

    def close(self) -> None:
        """Close every connection this backend opened."""
        self._source.close()

    @contextmanager
    def connection(self, operation: str, *, snapshot: bool = False) -> Iterator[Connection]:
        """Lend a connection, after the schema check, translating errors; with ``snapshot``
        inside a read-only REPEATABLE READ transaction (see :meth:`snapshot`).

        Behind transaction pooling, a backend with timeouts lends it inside a transaction that
        sets them first, as the session cannot keep them: the block is then one transaction.
        """
        self.ready()
        timeouts = self.settings.transaction_timeouts()
        with self._translated(operation), self._connections().connection() as conn:
            if timeouts is None and not snapshot:
                yield conn
                return
            with conn.transaction():
                if snapshot:  # before any other statement, or PostgreSQL refuses it
                    conn.execute(sql.READ_SNAPSHOT, prepare=False)
                if timeouts is not None:
                    conn.execute(sql.TIMEOUTS, timeouts, prepare=False)
                yield conn

    def snapshot(self, operation: str) -> AbstractContextManager[Connection]:
        """Lend a connection inside a read-only REPEATABLE READ transaction, for the reads of
        stats, history, listings and metrics: every statement in it sees the same data."""
        return self.connection(operation, snapshot=True)

    def _connections(self) -> ConnectionSource:
        if os.getpid() != self._pid:
            self.forget_inherited()
        return self._source

    def forget_inherited(self) -> None:
        """After fork: leave the parent's connections alone and use one of our own.

        A forked job process needs one connection at most, and must not start a pool's
        threads, so it gets a single connection, opened on first use.
        """
        self._source.disown()
        INHERITED.append(self._source)
        self._source = SingleConnection(self.settings)
        self._pid = os.getpid()

    def ready(self) -> schema.SchemaState:
        """Check the server and the schema (migrating it if allowed), once per backend."""
        if self._schema is None:
            with self._translated("connect"), self._connections().connection() as conn:
                self._check_server(conn)
                state = schema.ensure_schema(
                    conn, self._max_schema_version, auto_migrate=self._auto_migrate
                )
                self._has_schedules = bool(self.scalar_on(conn, sql.HAS_SCHEDULES))
                self._own_version = schema.ensure_own_schema(conn, auto_migrate=self._auto_migrate)
            if state.migrated_from is not None and state.migrated_from != state.version:
                log.info(
                    "schema.migrated",
                    extra={"version": state.version, "previous": state.migrated_from},
                )
            if self._auto_migrate == "create" and state.version < self._max_schema_version:
                self._warn_not_upgraded(state.version)
            if state.newer_than_known:
                log.warning(
                    "schema.newer_than_known",
                    extra={
                        "version": state.version,
                        "consequence": "used as it is; this minion-daemon knows an older schema",
                    },
                )
            self._schema = state
        return self._schema

    def _warn_not_upgraded(self, version: int) -> None:
        target = self._max_schema_version
        log.warning(
            "schema.not_upgraded",
            extra={
                "version": version,
                "max_schema_version": target,
                "newer": schema.added_between(version, target),
                "fix": f"once every Minion sharing the database knows version {target}, run"
                f" `minion-daemon migrate --to {target}` (or set postgres.auto_migrate: upgrade)",
            },
        )

    @staticmethod
    def _check_server(conn: Connection) -> None:
        if conn.info.server_version < MIN_SERVER_VERSION:
            raise SchemaError(
                f"PostgreSQL 13 or later is required, the server is {conn.info.server_version}"
            )

    def require_schedules(self, operation: str) -> None:
        """Raise unless the schema has Minion 12's schedules (version 25)."""
        if not self.has_schedules:
            raise SchemaError(
                f"{operation}: schedules need schema version 25, the database is at"
                f" {self.ready().version} (raise postgres.max_schema_version, then migrate)"
            )

    @staticmethod
    def scalar_on(conn: Connection, query: LiteralString, params: Params | None = None) -> Any:
        row = conn.execute(query, params).fetchone()
        return None if row is None else next(iter(row.values()))

    def rows(
        self,
        operation: str,
        query: LiteralString,
        params: Params | None = None,
        *,
        prepare: bool = False,
    ) -> list[dict[str, Any]]:
        """All rows. Statements with optional filters are planned with their actual values
        unless ``prepare`` says their caller always passes the same kind of filter."""
        with self.connection(operation) as conn:
            return conn.execute(query, params, prepare=prepare).fetchall()

    def row(
        self, operation: str, query: LiteralString, params: Params | None = None
    ) -> dict[str, Any] | None:
        with self.connection(operation) as conn:
            return conn.execute(query, params).fetchone()

    def scalar(self, operation: str, query: LiteralString, params: Params | None = None) -> Any:
        with self.connection(operation) as conn:
            return self.scalar_on(conn, query, params)

    def rowcount(self, operation: str, query: LiteralString, params: Params | None = None) -> int:
        with self.connection(operation) as conn:
            return conn.execute(query, params).rowcount

    def page(
        self,
        operation: str,
        queries: tuple[LiteralString, LiteralString],
        params: Params,
    ) -> tuple[list[dict[str, Any]], int]:
        """One page of a listing and the total count of its filter, from one snapshot."""
        with self.snapshot(operation) as conn:
            return self.page_on(conn, queries, params)

    @staticmethod
    def page_on(
        conn: Connection, queries: tuple[LiteralString, LiteralString], params: Params
    ) -> tuple[list[dict[str, Any]], int]:
        """:meth:`page` on a connection the caller holds."""
        select, count = queries
        items = conn.execute(select, params, prepare=False).fetchall()
        if not items and not params.get("offset"):
            return items, 0
        counted = conn.execute(count, params, prepare=False).fetchone()
        return items, int(counted["total"]) if counted else 0
