"""The admin UI as a process of the daemon, supervised like the metrics process: its socket
bound and its credentials checked before any fork, started again a second after it dies."""

from __future__ import annotations

import dataclasses
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from minion_daemon import logs, proc
from minion_daemon.admin import server
from minion_daemon.admin.auth import Credentials
from minion_daemon.config import AdminConfig, Config

log = logs.get_logger("minion_daemon.admin")

#: Seconds before an admin process that died is started again.
RESPAWN_DELAY: Final = 1.0


def keep_running_settings(running: Config, loaded: Config) -> tuple[Config, list[str]]:
    """``loaded`` with the running admin settings, and the admin keys it changes: a reload
    keeps them, because the socket, credentials and timeout are set up once, at start."""
    changed = [
        f"admin.{field.name}"
        for field in dataclasses.fields(AdminConfig)
        if getattr(running.admin, field.name) != getattr(loaded.admin, field.name)
    ]
    return dataclasses.replace(loaded, admin=running.admin), changed


@dataclass
class AdminService:
    """The admin process's socket, credentials and session secret, and the process itself.

    The secret outlives the process, so a respawn keeps everyone logged in."""

    listener: socket.socket
    credentials: Credentials
    secret: bytes = field(default_factory=server.new_secret, repr=False)
    pid: int | None = None
    respawn_at: float = 0.0

    @classmethod
    def prepare(cls, config: Config) -> AdminService:
        """Raises ``ConfigError`` for a bad hash, a refused address or a port in use."""
        listener, credentials = server.prepare(config)
        return cls(listener, credentials)

    def manage(self, spawn: Callable[[], int], listen: str) -> None:
        """Start the process when it is not running and its respawn delay has passed."""
        if self.pid is None and time.monotonic() >= self.respawn_at:
            self.pid = spawn()
            log.info("admin.spawned", admin_pid=self.pid, listen=listen)

    def run(self, config: Config, dsn: str, listener: socket.socket) -> int:
        """The body of the forked process: serve until killed."""
        app = server.make_app(config, dsn, self.credentials, self.secret)
        return server.serve(app, listener)

    def exited(self, pid: int, status: int, stopping: bool) -> bool:
        """Whether ``pid`` was the admin process (then it is started again later)."""
        if pid != self.pid:
            return False
        self.pid = None
        self.respawn_at = time.monotonic() + RESPAWN_DELAY
        if not stopping:
            reason = proc.decode(status)
            log.warning("admin.exited", exit_code=reason.code, signal=reason.signal_name)
        return True

    def close(self) -> None:
        if self.pid is not None:
            proc.kill(self.pid, signal.SIGTERM)
            proc.reap(self.pid, block=True)
        self.listener.close()
