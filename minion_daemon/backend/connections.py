"""Where the backend gets its connections: a pool, or one plain connection.

Worker processes use a psycopg_pool pool. The supervisor must stay single-threaded when it
forks, and psycopg_pool runs threads, so it uses :class:`SingleConnection` instead. Both hand
out autocommit connections with dict rows: every backend statement is its own transaction
unless the backend opens one on purpose.
"""

from __future__ import annotations

import os
import re
import select
import weakref
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, replace
from typing import Any, Final, Protocol
from urllib.parse import unquote

import psycopg
from psycopg.rows import DictRow, dict_row
from psycopg_pool import ConnectionPool

from minion_daemon.backend import sql

Connection = psycopg.Connection[DictRow]

#: The password of a URL's user information, up to the last "@" before the host.
_URL_PASSWORD: Final = re.compile(r"^[a-z][a-z0-9+.-]*://[^:/?#@]*:([^/?#]*)@", re.IGNORECASE)
#: A ``password=`` keyword (or URL parameter) and its value, quoted or not.
_KEYWORD_PASSWORD: Final = re.compile(
    r"\bpassword\s*=\s*('(?:[^'\\]|\\.)*'|[^\s&]+)", re.IGNORECASE
)
#: Shorter passwords are not searched for in messages: every "a" of a text is no secret.
_SHORTEST_SECRET: Final = 4


@dataclass(frozen=True, slots=True)
class ConnectionSettings:
    """How to reach the database; ``conninfo`` is a libpq DSN or URL."""

    conninfo: str
    application_name: str = "minion-daemon"
    connect_timeout: int = 10
    #: Seconds each statement may wait for a lock, and run, in every session; ``None``: the
    #: server's setting. Set per session (PgBouncer refuses startup options), or behind
    #: transaction pooling per transaction: each statement then runs in one of its own.
    lock_timeout: float | None = None
    statement_timeout: float | None = None
    #: Behind PgBouncer's transaction pooling each transaction may run on another server
    #: session, shared with other clients: a session setting would leak to theirs, so none is
    #: made (the role's own settings, ``ALTER ROLE ... SET``, still apply to every session).
    transaction_pooling: bool = False
    #: Whether statements may be prepared; without, psycopg never prepares, even when asked.
    prepare: bool = True
    #: A direct DSN for LISTEN, which a transaction pooler cannot carry.
    listen_conninfo: str | None = None

    def connect(self) -> Connection:
        """A new autocommit connection with dict rows, set up for the backend."""
        conn = psycopg.connect(self.conninfo, **self.kwargs())
        try:
            set_up_session(conn, self)
        except BaseException:
            conn.close()
            raise
        return conn

    def transaction_timeouts(self) -> dict[str, object] | None:
        """The parameters of :data:`sql.TIMEOUTS` each transaction sets for itself, behind
        transaction pooling, where the session cannot hold them; ``None``: none to set."""
        if not self.transaction_pooling:
            return None
        return self.timeouts(local=True)

    def timeouts(self, *, local: bool) -> dict[str, object] | None:
        """The parameters of :data:`sql.TIMEOUTS`; ``None`` when neither timeout is set."""
        if self.lock_timeout is None and self.statement_timeout is None:
            return None
        return {
            "lock": _milliseconds(self.lock_timeout),
            "statement": _milliseconds(self.statement_timeout),
            "local": local,
        }

    def listener(self) -> ConnectionSettings | None:
        """How to connect for LISTEN: over ``listen_conninfo`` when given, else like every
        other connection; ``None`` behind a transaction pooler without one, where a LISTEN is
        accepted but its notifications go to whichever client holds the server session next."""
        if self.listen_conninfo is not None:
            return replace(
                self,
                conninfo=self.listen_conninfo,
                transaction_pooling=False,
                prepare=True,
                listen_conninfo=None,
            )
        return None if self.transaction_pooling else self

    def redact(self, text: str) -> str:
        """``text`` without this DSN's password, as written or as libpq decoded it: libpq
        quotes the DSN, or the piece of it it cannot parse (``invalid percent-encoded token:
        "..."``), in its messages, where no pattern could tell a password from other text."""
        secrets = _passwords(self.conninfo) + _passwords(self.listen_conninfo or "")
        for secret in sorted(secrets, key=len, reverse=True):
            text = text.replace(secret, "***")
        return text

    def kwargs(self) -> dict[str, Any]:
        return {
            "autocommit": True,
            "row_factory": dict_row,
            "application_name": self.application_name,
            "connect_timeout": self.connect_timeout,
            # psycopg's default: prepare what ran five times; None: never, whatever is asked.
            "prepare_threshold": 5 if self.prepare else None,
        }


def _passwords(conninfo: str) -> list[str]:
    """The password in ``conninfo`` in every form a message might show, longest first."""
    found = []
    if match := _URL_PASSWORD.match(conninfo):
        found += [match.group(1), unquote(match.group(1))]
    for match in _KEYWORD_PASSWORD.finditer(conninfo):
        value = match.group(1)
        if value.startswith("'"):
            found += [value[1:-1], re.sub(r"\\(.)", r"\1", value[1:-1])]
        found += [value, unquote(value)]
    return sorted({s for s in found if len(s) >= _SHORTEST_SECRET}, key=len, reverse=True)


def set_up_session(conn: Connection, settings: ConnectionSettings) -> None:
    """The session settings every backend connection runs with, unless it is lent per
    transaction by a pooler."""
    if settings.transaction_pooling:
        return
    conn.execute(sql.SESSION_SETUP)
    timeouts = settings.timeouts(local=False)
    if timeouts is not None:
        conn.execute(sql.TIMEOUTS, timeouts)


def _milliseconds(seconds: float | None) -> int | None:
    return None if seconds is None else max(round(seconds * 1000), 1)


def disown(conn: Connection | None) -> None:
    """In a forked child, put /dev/null where the socket of ``conn``, a connection of the
    parent's, was: the child then holds none of its parent's sessions, so no task can read or
    write them. The parent keeps its own descriptor, so its session goes on; and the number
    stays taken, so libpq, were it ever to touch ``conn`` here, would reach /dev/null, never a
    file the child opened since (as a plain close would allow)."""
    if conn is None or conn.closed:
        return
    try:
        descriptor = conn.fileno()
    except psycopg.Error:  # broken: libpq holds no socket
        return
    null = os.open(os.devnull, os.O_RDWR)
    try:
        os.dup2(null, descriptor, inheritable=False)
    finally:
        os.close(null)


def _ended_by_server(conn: Connection) -> bool:
    """Whether the server ended this idle session (a restart, pg_terminate_backend): its
    goodbye, or the closed socket, is then waiting to be read. Found now, without a round trip,
    rather than by the next statement failing; an idle session is otherwise silent, and a false
    alarm costs one new connection."""
    if conn.closed:
        return False
    poller = select.poll()  # not select(), which refuses descriptors past 1023
    try:
        poller.register(conn.fileno(), select.POLLIN)
    except psycopg.Error:  # broken: libpq holds no socket
        return True
    return bool(poller.poll(0))


class ConnectionSource(Protocol):
    def connection(self) -> AbstractContextManager[Connection]:
        """Lend a connection for the duration of a ``with`` block."""

    def close(self) -> None:
        """Close every connection this source opened."""

    def disown(self) -> None:
        """In a forked child: :func:`disown` every connection this source holds open."""


class PooledConnections:
    """A psycopg_pool pool, opened on first use so constructing a backend stays free."""

    def __init__(self, settings: ConnectionSettings, *, min_size: int, max_size: int) -> None:
        #: Every connection the pool made and still holds; the pool itself cannot list them.
        self._connections: weakref.WeakSet[Connection] = weakref.WeakSet()
        self._settings = settings
        self._pool: ConnectionPool[Connection] = ConnectionPool(
            settings.conninfo,
            min_size=min_size,
            max_size=max_size,
            kwargs=settings.kwargs(),
            connection_class=psycopg.Connection[DictRow],
            configure=self._configure,
            name="minion-daemon",
            # Waiting for a connection longer than it takes to make one means the database is
            # gone; say so instead of blocking for psycopg_pool's default 30 s.
            timeout=settings.connect_timeout,
            open=False,
        )
        self._opened = False

    def _configure(self, conn: Connection) -> None:
        set_up_session(conn, self._settings)
        self._connections.add(conn)

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        if not self._opened:
            self._pool.open(wait=False)
            self._opened = True
        with self._pool.connection() as conn:
            try:
                yield conn
            except psycopg.OperationalError:
                if conn.broken:
                    # Sessions end together (a failover, a restart, pg_terminate_backend): the
                    # idle ones are tested now and the dead dropped, so the caller's next
                    # attempt gets a live connection, not the next dead one.
                    self._pool.check()
                raise

    def close(self) -> None:
        if self._opened:
            self._pool.close()

    def disown(self) -> None:
        for conn in list(self._connections):
            disown(conn)


class SingleConnection:
    """One connection, opened on first use and opened again after it breaks."""

    def __init__(self, settings: ConnectionSettings) -> None:
        self._settings = settings
        self._conn: Connection | None = None

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        if self._conn is not None and _ended_by_server(self._conn):
            self._conn.close()
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

    def disown(self) -> None:
        disown(self._conn)
