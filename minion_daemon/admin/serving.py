"""The admin process: the application and the server that serves it.

waitress serves it: a production WSGI server in pure Python, well kept, with no C extension
and no dependencies of its own, that handles slow clients in its I/O thread and runs requests
in a small thread pool, on the socket the supervisor bound (:mod:`minion_daemon.admin.server`).

Only the admin process imports this module (and with it waitress, Werkzeug and Jinja): the
supervisor's other children, worker processes and their fork servers among them, are forks of
it and would carry them for nothing.
"""

from __future__ import annotations

import socket
from typing import Final

from waitress.server import create_server

from minion_daemon.admin.app import AdminApp
from minion_daemon.admin.auth import Credentials
from minion_daemon.backend import PgBackend
from minion_daemon.config import Config

#: Requests served at once; the connection pool has as many connections.
THREADS: Final = 4
#: The longest a page waits for a connection when the database is away.
CONNECT_TIMEOUT: Final = 5


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
