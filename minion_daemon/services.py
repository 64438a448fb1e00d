"""The daemon's service processes (metrics, the admin UI), as the supervisor keeps them.

Each serves a socket the supervisor bound before its first fork, so a port in use stops the
daemon at once, and a process that starts again finds the socket listening, its backlog
kept. One is started when it is not running, again a second after it died, and at once after
a reload replaced it.
"""

from __future__ import annotations

import signal
import socket
import time
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass
from typing import ClassVar, Final

from minion_daemon import logs, proc

log = logs.get_logger("minion_daemon.supervisor")

#: Seconds before a service process that died is started again.
RESPAWN_DELAY: Final = 1.0


@dataclass
class ServiceProcess:
    """A service's socket and its process, when one runs."""

    #: Names its log events (``metrics.spawned``) and their pid field (``metrics_pid``).
    name: ClassVar[str]
    listener: socket.socket
    _: KW_ONLY
    pid: int | None = None
    respawn_at: float = 0.0
    #: Told to stop by :meth:`replace`: its exit is expected, and it starts again at once.
    replacing: bool = False

    def manage(self, spawn: Callable[[], int], listen: str) -> None:
        """Start the process when it is not running and its respawn delay has passed."""
        if self.pid is None and time.monotonic() >= self.respawn_at:
            self.pid = spawn()
            log.info(f"{self.name}.spawned", listen=listen, **{f"{self.name}_pid": self.pid})

    def replace(self) -> None:
        """Stop the process (TERM), for :meth:`manage` to start it again on the config of now."""
        if self.pid is not None and proc.kill(self.pid, signal.SIGTERM):
            self.replacing = True

    def exited(self, pid: int, status: int, stopping: bool) -> bool:
        """Whether ``pid`` was this service's process (then it is started again later)."""
        if pid != self.pid:
            return False
        self.pid = None
        self.respawn_at = time.monotonic() + (0.0 if self.replacing else RESPAWN_DELAY)
        if not (stopping or self.replacing):
            reason = proc.decode(status)
            log.warning(f"{self.name}.exited", exit_code=reason.code, signal=reason.signal_name)
        self.replacing = False
        return True

    def close(self) -> None:
        """Stop the process and wait for it; close the socket."""
        if self.pid is not None:
            proc.kill(self.pid, signal.SIGTERM)
            proc.reap(self.pid, block=True)
        self.listener.close()
