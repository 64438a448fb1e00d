"""Schema migrations the way Mojo::Pg::Migrations runs them for Perl Minion.

Same file format (``-- N up`` / ``-- N down``), same bookkeeping (table ``mojo_migrations``, row
``minion``) and the same protocol: read the active version, create the table, lock it
exclusively, read again, run every step between active and target in one transaction, record
the target. A Perl Minion and minion-daemon can therefore take turns migrating one database.
"""

from __future__ import annotations

import importlib.resources
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Final

import psycopg
from psycopg.rows import DictRow

from minion_daemon.backend import sql
from minion_daemon.errors import SchemaError
from minion_daemon.model import AutoMigrate

MIGRATIONS_NAME: Final = "minion"
#: minion-daemon's own tables (fleet control) are a migration set of their own, recorded under
#: this name in ``mojo_migrations``: Perl ignores the row, and Minion's version stays Perl's.
OWN_MIGRATIONS_NAME: Final = "minion_daemon"
OWN_MIGRATIONS_FILE: Final = "minion_daemon.sql"
#: The oldest schema this code can run on (``lax`` arrived in 23, Minion 10.25).
MIN_SCHEMA_VERSION: Final = 23

#: What each version after the oldest we run on adds: named when a database is used at an older
#: version than ``max_schema_version``, so that its operator knows what waits behind a migration.
ADDED_BY_VERSION: Final = {
    24: "an index on minion_jobs (finished, state) that keeps history fast on big tables",
    25: "cron schedules (minion_schedules)",
}

_MARKER: Final = re.compile(r"^\s*--\s*(\d+)\s*(up|down)\b", re.IGNORECASE | re.MULTILINE)

Connection = psycopg.Connection[DictRow]

log = logging.getLogger("minion_daemon.backend")


@dataclass(frozen=True, slots=True)
class Migrations:
    """The parsed migration file: SQL per version and direction."""

    up: Mapping[int, str]
    down: Mapping[int, str]

    @property
    def latest(self) -> int:
        return max(self.up, default=0)

    def sql_for(self, active: int, target: int) -> str:
        """The SQL taking a database from ``active`` to ``target``, in the order it must run."""
        if target >= active:
            steps = [self.up[v] for v in sorted(self.up) if active < v <= target]
        else:
            steps = [self.down[v] for v in sorted(self.down, reverse=True) if target < v <= active]
        return "\n".join(steps)


def parse_migrations(text: str) -> Migrations:
    """Split a Mojo::Pg migration file at its ``-- N up|down`` markers."""
    up: dict[int, str] = {}
    down: dict[int, str] = {}
    markers = list(_MARKER.finditer(text))
    for marker, following in zip(markers, [*markers[1:], None], strict=True):
        body = text[marker.end() : following.start() if following else len(text)]
        target = up if marker.group(2).lower() == "up" else down
        target[int(marker.group(1))] = body.strip()
    return Migrations(up=up, down=down)


@cache
def load_migrations(file: str = "pg.sql") -> Migrations:
    """The migrations shipped with this package: Minion's, or ``OWN_MIGRATIONS_FILE``."""
    packaged = importlib.resources.files("minion_daemon").joinpath("migrations", file)
    if packaged.is_file():
        return parse_migrations(packaged.read_text(encoding="utf-8"))
    # A source checkout (an editable install, or tests run from the tree) keeps the file at the
    # top level; wheels carry a copy inside the package (see pyproject.toml).
    source = Path(__file__).resolve().parents[2] / "migrations" / file
    return parse_migrations(source.read_text(encoding="utf-8"))


def _value(conn: Connection, query: Any, params: Mapping[str, object] | None = None) -> Any:
    row = conn.execute(query, params).fetchone()
    return None if row is None else next(iter(row.values()))


def active_version(conn: Connection, name: str = MIGRATIONS_NAME) -> int:
    """The recorded version; a missing table or row counts as 0, as in Mojo::Pg."""
    if not _value(conn, sql.MIGRATIONS_TABLE_EXISTS):
        return 0
    version = _value(conn, sql.ACTIVE_VERSION, {"name": name})
    return 0 if version is None else int(version)


def schema_ready(conn: Connection) -> bool:
    """Whether every table, column and function the backend uses is there."""
    return bool(_value(conn, sql.SCHEMA_READY))


def migrate(
    conn: Connection,
    target: int,
    migrations: Migrations | None = None,
    *,
    only_if_empty: bool = False,
    name: str = MIGRATIONS_NAME,
) -> int:
    """Move the schema to ``target`` (up or down) and return the version it started from;
    ``only_if_empty``: only when, under the lock, it is still at 0 (a peer that created the
    schema meanwhile, at its own version, is not upgraded).

    Raises :class:`SchemaError` for a target with no migration, or when the database is at a
    version newer than ``migrations`` knows (another, newer Minion migrated it).
    """
    migrations = migrations or load_migrations()
    if target != 0 and target not in migrations.up:
        known = ", ".join(map(str, sorted(migrations.up)))
        raise SchemaError(f"Version {target} has no migration (known versions: 0, {known})")
    active = active_version(conn, name)
    if active == target:
        return active
    try:
        return _migrate_locked(conn, target, migrations, only_if_empty, name)
    except (psycopg.errors.UniqueViolation, psycopg.errors.DuplicateTable):
        # A peer that does not take our advisory lock (Perl) created the table at the same
        # moment; its transaction has committed by now, so one more pass sees it.
        return _migrate_locked(conn, target, migrations, only_if_empty, name)


def _migrate_locked(
    conn: Connection, target: int, migrations: Migrations, only_if_empty: bool, name: str
) -> int:
    with conn.transaction():
        conn.execute(sql.MIGRATION_UNBOUNDED)
        conn.execute(sql.MIGRATION_ADVISORY_LOCK)
        conn.execute(sql.CREATE_MIGRATIONS_TABLE)
        conn.execute(sql.LOCK_MIGRATIONS_TABLE)
        active = active_version(conn, name)
        if active == target or (only_if_empty and active != 0):
            return active
        if active > migrations.latest:
            raise SchemaError(
                f"Active version {active} is greater than the latest version {migrations.latest}"
            )
        # The migration file is ours and shipped with the package; it runs as one
        # multi-statement string, which psycopg sends with the simple query protocol.
        conn.execute(migrations.sql_for(active, target).encode())
        conn.execute(sql.SET_VERSION, {"name": name, "version": target})
    return active


@dataclass(frozen=True, slots=True)
class SchemaState:
    """Where :func:`ensure_schema` left the database."""

    version: int
    newer_than_known: bool
    #: The version it was migrated from just now, if it was.
    migrated_from: int | None = None


def added_between(version: int, target: int) -> str:
    """What the versions after ``version`` up to ``target`` add, as ``"24: ...; 25: ..."``."""
    added = (f"{v}: {what}" for v, what in ADDED_BY_VERSION.items() if version < v <= target)
    return "; ".join(added)


def ensure_schema(conn: Connection, max_version: int, *, auto_migrate: AutoMigrate) -> SchemaState:
    """Make sure the schema is usable, migrating only as ``auto_migrate`` allows.

    An empty database (version 0) gets the schema at ``max_version`` unless ``auto_migrate`` is
    ``off``; an older one is migrated up to it only with ``upgrade``; nothing is ever migrated
    down. A database newer than this code knows is used as it is (a newer Perl Minion shares
    it), provided everything the backend needs is there. Raises :class:`SchemaError` when the
    schema is unusable.
    """
    migrations = load_migrations()
    if not MIN_SCHEMA_VERSION <= max_version <= migrations.latest:
        raise SchemaError(
            f"max_schema_version must be between {MIN_SCHEMA_VERSION} and {migrations.latest},"
            f" got {max_version}"
        )
    active = active_version(conn)
    migrated_from = None
    if active == 0 and auto_migrate == "off":
        raise SchemaError(
            "the database has no Minion schema (version 0): run `minion-daemon migrate`, or"
            " start the daemon with postgres.auto_migrate: create (the default)"
        )
    if active == 0:
        migrated_from = migrate(conn, max_version, migrations, only_if_empty=True)
    elif active < max_version and auto_migrate == "upgrade":
        migrated_from = migrate(conn, max_version, migrations)
    version = active_version(conn)
    if version < MIN_SCHEMA_VERSION or not schema_ready(conn):
        raise SchemaError(
            f"the Minion schema is at version {version}, but minion-daemon needs version"
            f" {MIN_SCHEMA_VERSION} or later: run `minion-daemon migrate`"
        )
    return SchemaState(version, version > migrations.latest, migrated_from)


def migrate_own(conn: Connection, target: int | None = None) -> int:
    """Move our own tables to ``target`` (default: the latest, never down); the version reached."""
    own = load_migrations(OWN_MIGRATIONS_FILE)
    if target is not None or active_version(conn, OWN_MIGRATIONS_NAME) < own.latest:
        goal = own.latest if target is None else target
        migrate(conn, goal, own, name=OWN_MIGRATIONS_NAME)
    return active_version(conn, OWN_MIGRATIONS_NAME)


def ensure_own_schema(conn: Connection, *, auto_migrate: AutoMigrate) -> int:
    """Our own tables' version, after creating or upgrading them unless ``auto_migrate`` is
    ``off``; 0 when they are absent.

    ``create`` may create and upgrade them, which it never does to Minion's schema: they are
    ours alone, no Perl Minion reads or migrates them, so nothing in a shared fleet depends on
    their version. A role that may not create tables keeps working without them.
    """
    if auto_migrate == "off":
        return active_version(conn, OWN_MIGRATIONS_NAME)
    try:
        return migrate_own(conn)
    except psycopg.errors.InsufficientPrivilege as error:
        log.warning(
            "schema.own_tables_not_created",
            extra={"error": str(error), "fix": "run `minion-daemon migrate` as the owner"},
        )
        return active_version(conn, OWN_MIGRATIONS_NAME)
