"""The database layer: the only code that speaks SQL or imports psycopg."""

from __future__ import annotations

from minion_daemon.backend.pg import PgBackend, default_backoff
from minion_daemon.backend.protocol import Backend

__all__ = ["Backend", "PgBackend", "default_backoff"]
