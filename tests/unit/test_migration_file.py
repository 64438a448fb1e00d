"""The shipped migration file, parsed without a database."""

from __future__ import annotations

from minion_daemon.backend.migrate import OWN_MIGRATIONS_FILE, load_migrations, parse_migrations


def test_shipped_file_has_minion_versions() -> None:
    migrations = load_migrations()
    assert sorted(migrations.up) == [18, 19, 20, 22, 23, 24, 25]
    assert sorted(migrations.down) == sorted(migrations.up)
    assert migrations.latest == 25


def test_sql_for_runs_ups_ascending_and_downs_descending() -> None:
    migrations = parse_migrations(
        "-- 1 up\nA;\n-- 1 down\na;\n--2 up\nB;\n-- 3 UP\nC;\n-- 3 down\nc;\n"
    )
    assert migrations.sql_for(0, 3) == "A;\nB;\nC;"
    assert migrations.sql_for(1, 3) == "B;\nC;"
    assert migrations.sql_for(3, 0) == "c;\na;"
    assert migrations.sql_for(3, 1) == "c;"
    assert migrations.sql_for(2, 2) == ""


def test_version_25_creates_schedules_and_its_down_drops_them() -> None:
    migrations = load_migrations()
    assert "CREATE TABLE IF NOT EXISTS minion_schedules" in migrations.up[25]
    assert migrations.down[25] == "DROP TABLE IF EXISTS minion_schedules;"


def test_version_24_down_drops_its_index() -> None:
    assert load_migrations().down[24] == "DROP INDEX IF EXISTS minion_jobs_finished_state_idx;"


def test_our_own_set_creates_only_tables_of_our_own() -> None:
    own = load_migrations(OWN_MIGRATIONS_FILE)
    assert sorted(own.up) == sorted(own.down) == [1, 2]
    assert "CREATE TABLE IF NOT EXISTS minion_daemon_paused_queues" in own.up[1]
    assert own.down[1] == "DROP TABLE IF EXISTS minion_daemon_paused_queues;"
    assert "CREATE TABLE IF NOT EXISTS minion_daemon_unique_jobs" in own.up[2]
    assert own.down[2] == "DROP TABLE IF EXISTS minion_daemon_unique_jobs;"
    for version in own.up:
        # Only comments may name Minion's tables: nothing of ours creates or changes them.
        statements = "\n".join(
            line for line in own.up[version].splitlines() if not line.startswith("--")
        )
        assert "minion_jobs" not in statements
        assert "minion_workers" not in statements
