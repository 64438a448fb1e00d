"""Serving the admin UI: the socket, the exposure rule, and the process that serves it.

waitress serves it: a production WSGI server in pure Python, well kept, with no C extension
and no dependencies of its own, that handles slow clients in its I/O thread and runs requests
in a small thread pool; it serves a socket bound elsewhere, which the supervisor binds before
it forks anything (as it does for metrics), so a port in use stops the daemon at once.
"""

from __future__ import annotations

import ipaddress
import secrets
import socket
from typing import Final

from waitress.server import create_server

from minion_daemon.admin.app import AdminApp
from minion_daemon.admin.auth import Credentials
from minion_daemon.backend import PgBackend
from minion_daemon.config import Config, ConfigError
from minion_daemon.sockets import listen

#: Requests served at once; the connection pool has as many connections.
THREADS: Final = 4
#: The longest a page waits for a connection when the database is away.
CONNECT_TIMEOUT: Final = 5


def prepare(config: Config, listen: str | None = None) -> tuple[socket.socket, Credentials]:
    """:func:`check_credentials`, then bind; raises :class:`ConfigError`."""
    address = listen or config.admin.listen
    credentials = check_credentials(config, address)
    return _bind(address), credentials


def check_credentials(config: Config, listen: str | None = None) -> Credentials:
    """The credentials of ``config`` for serving on ``listen`` (default ``admin.listen``);
    raises :class:`ConfigError` for a hash that is not one, or a non-loopback address
    without credentials."""
    address = listen or config.admin.listen
    credentials = Credentials.from_config(config.admin.password_hash)
    host = address.rpartition(":")[0].strip("[]")
    if not credentials.configured and not _loopback(host):
        raise ConfigError(
            "config",
            "admin.listen",
            f"{address} is not a loopback address, and the admin UI has no credentials: set"
            " admin.password_hash (minion-daemon admin --hash-password) or listen on 127.0.0.1",
        )
    return credentials


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _bind(address: str) -> socket.socket:
    try:
        return listen(address)
    except OSError as error:
        raise ConfigError(
            "config", "admin.listen", f"cannot listen on {address}: {error.strerror or error}"
        ) from error


def make_app(config: Config, dsn: str, credentials: Credentials, secret: bytes) -> AdminApp:
    """The application over its own small pool; it never migrates the schema."""
    backend = PgBackend.from_settings(
        config.postgres,
        dsn,
        role="admin",
        min_size=1,
        max_size=THREADS,
        auto_migrate="off",
        max_connect_timeout=CONNECT_TIMEOUT,
    )
    return AdminApp(backend, credentials, secret, query_timeout=config.admin.query_timeout)


def serve(app: AdminApp, listener: socket.socket) -> int:
    """Serve on ``listener`` until the process is told to stop."""
    server = create_server(
        app,
        sockets=[listener],
        threads=THREADS,
        ident="minion-daemon",
        clear_untrusted_proxy_headers=True,
    )
    try:
        server.run()
    finally:
        app.backend.close()
    return 0


def new_secret() -> bytes:
    """The key of the session cookies: made once per daemon, so respawns keep logins."""
    return secrets.token_bytes(32)
