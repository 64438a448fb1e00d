"""How many connections a daemon's processes may open, against what the server gives.

Counted at most, process by process: a worker process's pool (``postgres.pool_max_size``) and
its LISTEN connection; the supervisor's one connection; the metrics process's one. A forked job
opens none (its worker records its outcome); a task that connects on its own is not counted.

The server gives ``max_connections`` less the slots reserved for superusers. Of the rest, a
fifth is left for the clients this daemon cannot see: other daemons of a fleet, Perl workers,
``minion-daemon job``, psql, monitoring and replication. A daemon that could take more than
the four fifths warns; it does not refuse, since pools rarely fill all at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from minion_daemon.config import Config
from minion_daemon.model import ServerConnections

#: One in this many usable connections is left to other clients.
HEADROOM_SHARE: Final = 5

#: What the warning tells the operator to do.
FIX: Final = (
    "lower workers.processes or postgres.pool_max_size, or raise the server's max_connections"
)


@dataclass(frozen=True, slots=True)
class ConnectionBudget:
    """The connections a daemon may open (``needed``) and the server's figures."""

    needed: int
    max_connections: int
    reserved: int
    kept_for_others: int

    @property
    def exceeded(self) -> bool:
        """Whether ``needed`` is more than the server has left once the others are served."""
        return self.needed > self.max_connections - self.reserved - self.kept_for_others


def connection_budget(
    config: Config, processes: int, server: ServerConnections
) -> ConnectionBudget:
    """The budget of a daemon running ``processes`` worker processes with ``config``."""
    per_worker = config.postgres.pool_max_size + 1
    own = 1 + int(config.metrics.enabled)
    usable = max(server.max_connections - server.reserved, 0)
    return ConnectionBudget(
        processes * per_worker + own,
        server.max_connections,
        server.reserved,
        usable // HEADROOM_SHARE,
    )
