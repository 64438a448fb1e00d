"""Session bounds of a backend (the supervisor's lock and statement timeouts, issue 13)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from minion_daemon.backend import PgBackend


@pytest.mark.parametrize("pooled", [False, True])
def test_a_bounded_backend_sets_both_timeouts_in_every_session(dsn: str, pooled: bool) -> None:
    backend = PgBackend(dsn, pooled=pooled, min_size=0, lock_timeout=2, statement_timeout=5.5)
    try:
        with backend.connection("show") as conn:
            row = conn.execute("SELECT current_setting('lock_timeout') AS lock_timeout,"
                               " current_setting('statement_timeout') AS statement").fetchone()
    finally:
        backend.close()
    assert row == {"lock_timeout": "2s", "statement": "5500ms"}


def test_an_unbounded_backend_keeps_the_server_settings(dsn: str) -> None:
    backend = PgBackend(dsn, pooled=False)
    try:
        with backend.connection("show") as conn:
            row = conn.execute("SELECT current_setting('statement_timeout') AS value").fetchone()
    finally:
        backend.close()
    assert row == {"value": "0"}


def test_a_migration_outlasts_the_statement_timeout(
    make_database: Callable[[int | None], str],
) -> None:
    """Migrating an empty database takes longer than 10 ms; the bounds are lifted for it."""
    backend = PgBackend(make_database(None), pooled=False, statement_timeout=0.01)
    try:
        assert backend.migrate(25) == 25
    finally:
        backend.close()
