"""Nothing changes a shared database's schema version unless told (issue 13, point 1).

A Perl Minion 10.25 fleet knows schema 23 and dies on anything newer, so reading a queue
(``job -s``, ``Minion(dsn)``) must never migrate it, ``auto_migrate: create`` (the default)
uses an existing schema as it is, and ``migrate --to N`` goes down to exactly the catalog of
a database migrated fresh to N.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from helpers.catalog import describe
from integration.test_catalog import expected_catalog

from minion_daemon import Minion
from minion_daemon.backend import PgBackend
from minion_daemon.cli import main
from minion_daemon.errors import SchemaError

MakeDatabase = Callable[[int | None], str]


def _recorded_version(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        exists = conn.execute("SELECT to_regclass('mojo_migrations') IS NOT NULL").fetchone()
        if not exists or not exists[0]:
            return 0
        row = conn.execute("SELECT version FROM mojo_migrations WHERE name = 'minion'").fetchone()
    return 0 if row is None else int(row[0])


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_job_stats_leaves_a_23_database_at_23(
    make_database: MakeDatabase, capsys: pytest.CaptureFixture[str]
) -> None:
    dsn = make_database(23)
    code, out, err = _run(capsys, "job", "-s", "--dsn", dsn)
    assert code == 0, err
    assert "enqueued_jobs" in out
    assert _recorded_version(dsn) == 23


def test_every_job_and_schedule_command_leaves_it_even_with_auto_migrate_upgrade(
    make_database: MakeDatabase, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    dsn = make_database(24)
    config = tmp_path / "config.yaml"
    config.write_text("postgres:\n  auto_migrate: upgrade\n", encoding="utf-8")
    for argv in (["job"], ["job", "-e", "task"], ["job", "-w"], ["schedule"]):
        code, _, err = _run(capsys, *argv, "--dsn", dsn, "-c", str(config))
        assert _recorded_version(dsn) == 24, (argv, err)
    assert code == 1
    assert "schedules need schema version 25" in err


def test_job_on_an_empty_database_says_to_migrate_and_creates_nothing(
    make_database: MakeDatabase, capsys: pytest.CaptureFixture[str]
) -> None:
    dsn = make_database(None)
    code, _, err = _run(capsys, "job", "-s", "--dsn", dsn)
    assert code == 1
    assert err.count("\n") == 1
    assert "run `minion-daemon migrate`" in err
    assert "start the daemon" in err
    assert _recorded_version(dsn) == 0


def test_minion_from_a_dsn_leaves_a_23_database_at_23_with_one_warning(
    make_database: MakeDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    dsn = make_database(23)
    minion = Minion(dsn)
    try:
        with caplog.at_level(logging.WARNING, logger="minion_daemon.backend"):
            minion.enqueue("test")
            minion.stats()
        assert minion.backend.schema_version == 23
    finally:
        minion.close()
    assert _recorded_version(dsn) == 23
    [warning] = [r for r in caplog.records if r.getMessage() == "schema.not_upgraded"]
    assert warning.version == 23  # type: ignore[attr-defined]
    newer = warning.newer  # type: ignore[attr-defined]
    assert "24: " in newer
    assert "25: cron schedules" in newer


def test_create_builds_an_empty_database_at_max_schema_version(make_database: MakeDatabase) -> None:
    dsn = make_database(None)
    backend = PgBackend(dsn, pooled=False, max_schema_version=24)
    try:
        assert backend.schema_version == 24
    finally:
        backend.close()
    assert describe(dsn) == expected_catalog(24)


def test_upgrade_migrates_an_existing_database(make_database: MakeDatabase) -> None:
    dsn = make_database(23)
    backend = PgBackend(dsn, pooled=False, auto_migrate="upgrade")
    try:
        assert backend.schema_version == 25
    finally:
        backend.close()


def test_off_refuses_an_empty_database(make_database: MakeDatabase) -> None:
    dsn = make_database(None)
    backend = PgBackend(dsn, pooled=False, auto_migrate="off")
    try:
        with pytest.raises(SchemaError, match=r"no Minion schema.*run `minion-daemon migrate`"):
            backend.stats()
    finally:
        backend.close()
    assert _recorded_version(dsn) == 0


def test_the_old_boolean_spelling_still_works(make_database: MakeDatabase) -> None:
    dsn = make_database(23)
    backend = PgBackend(dsn, pooled=False, auto_migrate=True)
    try:
        assert backend.schema_version == 25
    finally:
        backend.close()
    backend = PgBackend(make_database(None), pooled=False, auto_migrate=False)
    try:
        with pytest.raises(SchemaError, match="run `minion-daemon migrate`"):
            backend.stats()
    finally:
        backend.close()


def test_an_unknown_choice_is_refused_before_the_database() -> None:
    with pytest.raises(ValueError, match="auto_migrate: expected one of create, upgrade, off"):
        PgBackend("host=/nonexistent", auto_migrate="sometimes")  # type: ignore[arg-type]


def test_migrate_to_23_on_25_then_every_command_works(
    make_database: MakeDatabase, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    dsn = make_database(25)
    assert _run(capsys, "migrate", "--dsn", dsn, "--to", "23")[1] == "23\n"
    assert describe(dsn) == expected_catalog(23)
    config = tmp_path / "config.yaml"
    config.write_text("postgres:\n  auto_migrate: upgrade\n", encoding="utf-8")
    code, _, err = _run(capsys, "job", "-s", "--dsn", dsn, "-c", str(config))
    assert code == 0, err
    backend = PgBackend(dsn, pooled=False, auto_migrate="upgrade")
    try:
        backend.enqueue("test")
        assert backend.schema_version == 25
    finally:
        backend.close()
    assert describe(dsn) == expected_catalog(25)


def test_migrate_down_and_up_matches_a_fresh_catalog_at_every_step(
    make_database: MakeDatabase, capsys: pytest.CaptureFixture[str]
) -> None:
    dsn = make_database(25)
    for target in (23, 25, 24, 25, 24, 23, 24):
        code, out, err = _run(capsys, "migrate", "--dsn", dsn, "--to", str(target))
        assert (code, out) == (0, f"{target}\n"), err
        assert describe(dsn) == expected_catalog(target), target


@pytest.mark.parametrize("target", [18, 19, 20, 22])
def test_migrate_down_below_23_matches_a_fresh_database(
    make_database: MakeDatabase, target: int
) -> None:
    walked, fresh = make_database(25), make_database(None)
    for dsn in (walked, fresh):
        backend = PgBackend(dsn, pooled=False)
        try:
            backend.migrate(target)
        finally:
            backend.close()
    assert describe(walked) == describe(fresh)


def test_a_bare_migrate_goes_up_to_max_schema_version_and_never_down(
    make_database: MakeDatabase, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("postgres:\n  max_schema_version: 23\n", encoding="utf-8")
    empty, newer = make_database(None), make_database(25)
    assert _run(capsys, "migrate", "--dsn", empty, "-c", str(config))[1] == "23\n"
    assert _run(capsys, "migrate", "--dsn", newer, "-c", str(config))[1] == "25\n"
    assert describe(newer) == expected_catalog(25)


def test_upgrade_repairs_a_23_database_the_old_migrate_left_an_index_in(
    make_database: MakeDatabase,
) -> None:
    """What ``migrate --to 23`` did to a database at 25 before 24 had a down section."""
    dsn = make_database(23)
    with psycopg.connect(dsn) as conn:
        conn.execute("CREATE INDEX minion_jobs_finished_state_idx ON minion_jobs (finished, state)")
    backend = PgBackend(dsn, pooled=False, auto_migrate="upgrade")
    try:
        assert backend.schema_version == 25
    finally:
        backend.close()
    assert describe(dsn) == expected_catalog(25)
