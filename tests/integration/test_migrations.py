"""Migrations with Mojo::Pg's bookkeeping: targets 23-25, up, down to 0, newer schemas, races."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import psycopg
import pytest
from helpers.catalog import describe

from minion_daemon.backend import PgBackend
from minion_daemon.errors import SchemaError

MakeDatabase = Callable[[int | None], str]


def _recorded_version(dsn: str) -> int | None:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT version FROM mojo_migrations WHERE name = 'minion'").fetchone()
    return None if row is None else int(row[0])


def _minion_objects(dsn: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            """
            SELECT relname FROM pg_class WHERE relname LIKE 'minion%%'
            UNION ALL SELECT proname FROM pg_proc WHERE proname LIKE 'minion%%'
            UNION ALL SELECT typname FROM pg_type WHERE typname LIKE 'minion%%'
            """
        ).fetchall()
    return sorted(str(row[0]) for row in rows)


def test_1_fresh_database_auto_migrates_to_25(make_database: MakeDatabase) -> None:
    dsn = make_database(None)
    backend = PgBackend(dsn, pooled=False)
    try:
        assert backend.stats()["enqueued_jobs"] == 0
        assert backend.schema_version == 25
    finally:
        backend.close()
    assert _recorded_version(dsn) == 25


def test_1_migrate_down_to_0_removes_everything_and_up_again(make_database: MakeDatabase) -> None:
    dsn = make_database(25)
    backend = PgBackend(dsn, pooled=False)
    try:
        backend.enqueue("test")
        assert backend.migrate(0) == 0
        assert _minion_objects(dsn) == []
        assert _recorded_version(dsn) == 0
        assert backend.migrate() == 25
        assert backend.stats()["enqueued_jobs"] == 0
    finally:
        backend.close()


@pytest.mark.parametrize("target", [23, 24, 25])
def test_auto_migrate_stops_at_max_schema_version(make_database: MakeDatabase, target: int) -> None:
    dsn = make_database(None)
    backend = PgBackend(dsn, pooled=False, max_schema_version=target)
    try:
        backend.enqueue("test")
        assert backend.schema_version == target
        assert backend.has_schedules is (target == 25)
        assert ("schedules" in backend.stats()) is (target == 25)
    finally:
        backend.close()
    assert _recorded_version(dsn) == target


@pytest.mark.parametrize(("start", "target"), [(23, 24), (23, 25), (24, 25)])
def test_migrates_upward_keeping_jobs(make_database: MakeDatabase, start: int, target: int) -> None:
    dsn = make_database(start)
    old = PgBackend(dsn, pooled=False, max_schema_version=start)
    job = old.enqueue("keep", [1], {"notes": {"a": 1}})
    old.close()
    backend = PgBackend(dsn, pooled=False, max_schema_version=target, auto_migrate="upgrade")
    try:
        assert backend.schema_version == target
        info = backend.list_jobs(0, 1, {"ids": [job]})["jobs"][0]
        assert (info["task"], info["args"], info["notes"]) == ("keep", [1], {"a": 1})
    finally:
        backend.close()


def test_never_migrates_down_automatically(make_database: MakeDatabase) -> None:
    dsn = make_database(25)
    backend = PgBackend(dsn, pooled=False, max_schema_version=23)
    try:
        assert backend.schema_version == 25
        assert backend.has_schedules
    finally:
        backend.close()
    assert _recorded_version(dsn) == 25


def test_newer_schema_is_used_with_a_warning(
    make_database: MakeDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    dsn = make_database(25)
    with psycopg.connect(dsn) as conn:
        conn.execute("UPDATE mojo_migrations SET version = 26 WHERE name = 'minion'")
    backend = PgBackend(dsn, pooled=False)
    try:
        with caplog.at_level(logging.WARNING, logger="minion_daemon.backend"):
            job = backend.enqueue("test")
        assert backend.list_jobs(0, 1, {"ids": [job]})["total"] == 1
        assert backend.schema_version == 26
        [warning] = [r for r in caplog.records if r.getMessage() == "schema.newer_than_known"]
        assert warning.version == 26  # type: ignore[attr-defined]
        with pytest.raises(SchemaError, match="Active version 26 is greater than the latest"):
            backend.migrate(25)
    finally:
        backend.close()
    assert _recorded_version(dsn) == 26


def test_newer_schema_without_our_tables_is_refused(make_database: MakeDatabase) -> None:
    dsn = make_database(None)
    with psycopg.connect(dsn) as conn:
        conn.execute("CREATE TABLE mojo_migrations (name TEXT PRIMARY KEY, version BIGINT)")
        conn.execute("INSERT INTO mojo_migrations VALUES ('minion', 30)")
    backend = PgBackend(dsn, pooled=False)
    try:
        with pytest.raises(SchemaError, match="minion-daemon migrate"):
            backend.stats()
    finally:
        backend.close()


def test_without_auto_migrate_an_empty_database_is_refused(make_database: MakeDatabase) -> None:
    backend = PgBackend(make_database(None), pooled=False, auto_migrate=False)
    try:
        with pytest.raises(SchemaError, match=r"version 0.*run `minion-daemon migrate`"):
            backend.enqueue("test")
    finally:
        backend.close()


@pytest.mark.parametrize("version", [21, 26, -1])
def test_unknown_target_is_refused(make_database: MakeDatabase, version: int) -> None:
    backend = PgBackend(make_database(None), pooled=False)
    try:
        with pytest.raises(SchemaError, match=f"Version {version} has no migration"):
            backend.migrate(version)
    finally:
        backend.close()


@pytest.mark.parametrize("version", [22, 26])
def test_max_schema_version_out_of_range_is_refused(
    make_database: MakeDatabase, version: int
) -> None:
    backend = PgBackend(make_database(None), pooled=False, max_schema_version=version)
    try:
        with pytest.raises(SchemaError, match="max_schema_version must be between 23 and 25"):
            backend.stats()
    finally:
        backend.close()


def test_concurrent_migrations_do_not_collide(make_database: MakeDatabase) -> None:
    dsn = make_database(None)
    start = threading.Barrier(6)
    errors: list[BaseException] = []

    def migrate() -> None:
        backend = PgBackend(dsn, pooled=False)
        try:
            start.wait()
            backend.migrate(25)
        except BaseException as error:  # noqa: BLE001 - collected for the assertion below
            errors.append(error)
        finally:
            backend.close()

    threads = [threading.Thread(target=migrate) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert _recorded_version(dsn) == 25
    assert "minion_schedules" in describe(dsn)["tables"]
