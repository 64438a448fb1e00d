"""The ``postgres`` section of the configuration as the backend reads it.

A protocol rather than an import: the backend sits below ``config`` (tests/unit/test_layers.py),
and ``config.PostgresConfig`` satisfies this structurally, which mypy checks wherever one is
passed to :meth:`PgBackend.from_settings <minion_daemon.backend.pg.PgBackend.from_settings>`.
Declaring a second record for config to fill would state every setting twice.
"""

from __future__ import annotations

from typing import Protocol

from minion_daemon.model import AutoMigrate, PoolMode, PreparedStatements


class PostgresSettings(Protocol):
    """How every process of the daemon connects, unless its role says otherwise."""

    @property
    def pool_min_size(self) -> int: ...
    @property
    def pool_max_size(self) -> int: ...
    @property
    def connect_timeout(self) -> int: ...
    @property
    def application_name(self) -> str: ...
    @property
    def max_schema_version(self) -> int: ...
    @property
    def auto_migrate(self) -> AutoMigrate: ...
    @property
    def pool_mode(self) -> PoolMode: ...
    @property
    def listen_dsn(self) -> str | None: ...
    @property
    def prepared_statements(self) -> PreparedStatements: ...
