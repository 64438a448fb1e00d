"""The listening sockets of the daemon's HTTP processes (metrics, admin UI).

Bound by the supervisor before any fork, so that an address in use stops the daemon at once,
and handed to the process that serves it.
"""

from __future__ import annotations

import socket


def listen(address: str) -> socket.socket:
    """A socket listening on ``host:port`` (``[v6]:port`` too); raises ``OSError``."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, int(port)), family=family, backlog=64)
