"""The admin UI as a process of the daemon, supervised like the metrics process: its socket
bound and its credentials checked before any fork, started again a second after it dies, and
at once, with the new settings, after a reload that changes them."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import ClassVar

from minion_daemon.admin import server
from minion_daemon.admin.auth import Credentials
from minion_daemon.config import Config
from minion_daemon.services import ServiceProcess


@dataclass
class AdminService(ServiceProcess):
    """The admin process's socket, credentials and session secret, and the process itself.

    The secret outlives the process, so a respawn keeps everyone logged in."""

    name: ClassVar[str] = "admin"
    credentials: Credentials
    secret: bytes = field(default_factory=server.new_secret, repr=False)

    @classmethod
    def prepare(cls, config: Config) -> AdminService:
        """Raises ``ConfigError`` for a bad hash, a refused address or a port in use."""
        listener, credentials = server.prepare(config)
        return cls(listener, credentials)

    def reload(self, config: Config) -> None:
        """Serve with ``config`` (on the address bound at start) from the next process on,
        which starts at once. Raises ``ConfigError``, changing nothing, for a hash that is not
        one or an address that is not loopback left without credentials."""
        credentials = server.check_credentials(config)
        if credentials != self.credentials:
            # A new password ends every session: a password leaked is why one changes it.
            self.secret = server.new_secret()
        self.credentials = credentials
        self.replace()

    def run(self, config: Config, dsn: str, listener: socket.socket) -> int:
        """The body of the forked process: serve until killed."""
        return server.run(config, dsn, self.credentials, self.secret, listener)
