"""The database layer: the only code that speaks SQL or imports psycopg."""

from __future__ import annotations

from typing import TYPE_CHECKING

from minion_daemon.backend.pg import PgBackend, default_backoff
from minion_daemon.backend.protocol import Backend
from minion_daemon.backend.settings import PostgresSettings

if TYPE_CHECKING:

    def _conforms(backend: PgBackend) -> Backend:
        """mypy proves here that PgBackend implements every operation of the protocol."""
        return backend


__all__ = ["Backend", "PgBackend", "PostgresSettings", "default_backoff"]
