"""The admin UI's socket and exposure rule, which the supervisor applies before it forks
anything (as it does for metrics), so a port in use stops the daemon at once; the process
that serves it is :mod:`minion_daemon.admin.serving`'s.
"""

from __future__ import annotations

import ipaddress
import secrets
import socket

from minion_daemon.admin.auth import Credentials
from minion_daemon.config import Config, ConfigError
from minion_daemon.sockets import listen


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


def new_secret() -> bytes:
    """The key of the session cookies: made once per daemon, so respawns keep logins."""
    return secrets.token_bytes(32)


def run(
    config: Config, dsn: str, credentials: Credentials, secret: bytes, listener: socket.socket
) -> int:
    """The admin process's body: serve the UI on ``listener`` until stopped."""
    # Imported here, in the admin process alone: the supervisor and the CLI import this module,
    # and every process the supervisor forks (workers, their fork servers) would carry
    # waitress, Werkzeug and Jinja for nothing.
    from minion_daemon.admin import serving  # noqa: PLC0415

    return serving.serve(serving.make_app(config, dsn, credentials, secret), listener)
