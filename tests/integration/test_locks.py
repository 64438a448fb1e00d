"""Named locks (``minion_lock``) and ``reset``, against a real PostgreSQL.

Checklist items 18-25, 28 and 141. Minion's ``is_locked(name)`` is ``not lock(name, 0)``, which
is how these tests ask whether a lock is held. Perl calls the SQL function ``minion_lock``
directly, so a few tests call it by SQL too and mix both callers on one name.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import psycopg
import pytest
from helpers.sql import db_now, execute

from minion_daemon.backend import PgBackend


def _sql_lock(dsn: str, name: str, duration: int, limit: int = 1) -> bool:
    """Take a lock the way Perl's backend does: by calling the function itself."""
    rows = execute(dsn, "SELECT minion_lock(%s, %s, %s)", [name, duration, limit])
    return bool(rows[0][0])


def _rows(dsn: str, name: str | None = None) -> int:
    """Lock rows in the table, expired ones included."""
    if name is None:
        return int(execute(dsn, "SELECT COUNT(*) FROM minion_locks")[0][0])
    return int(execute(dsn, "SELECT COUNT(*) FROM minion_locks WHERE name = %s", [name])[0][0])


def _expire(dsn: str, name: str) -> None:
    execute(
        dsn, "UPDATE minion_locks SET expires = NOW() - INTERVAL '1 second' WHERE name = %s", [name]
    )


def _is_locked(backend: PgBackend, name: str) -> bool:
    return not backend.lock(name, 0)



def test_18_exclusive_lock_and_unlock(backend: PgBackend, dsn: str) -> None:
    assert backend.lock("foo", 3600) is True
    assert _rows(dsn, "foo") == 1
    assert backend.lock("foo", 3600) is False
    assert _rows(dsn, "foo") == 1
    assert backend.unlock("foo") is True
    assert _rows(dsn, "foo") == 0
    assert backend.unlock("foo") is False
    assert backend.lock("foo", 3600) is True


def test_18_the_sql_function_and_lock_share_one_lock(backend: PgBackend, dsn: str) -> None:
    assert _sql_lock(dsn, "foo", 3600) is True
    assert backend.lock("foo", 3600) is False
    assert _sql_lock(dsn, "foo", 3600) is False
    assert _sql_lock(dsn, "foo", -3600) is False
    assert backend.unlock("foo") is True

    assert _sql_lock(dsn, "foo", 0) is True
    assert _sql_lock(dsn, "foo", -3600) is True
    assert _rows(dsn) == 0
    assert backend.lock("foo", 3600) is True
    assert _sql_lock(dsn, "foo", 3600) is False
    assert _sql_lock(dsn, "foo", 3600, 2) is True
    assert _sql_lock(dsn, "foo", 3600, 2) is False
    assert _rows(dsn, "foo") == 2


def test_18_every_lock_call_deletes_expired_rows_of_every_name(
    backend: PgBackend, dsn: str
) -> None:
    assert backend.lock("old", 3600, {"limit": 2})
    assert backend.lock("old", 3600, {"limit": 2})
    assert backend.lock("kept", 3600)
    _expire(dsn, "old")
    assert _rows(dsn) == 3
    # An expired holder does not count, and is not listed.
    assert backend.list_locks(0, 10)["total"] == 1

    assert backend.lock("unrelated", 0) is True
    assert _rows(dsn, "old") == 0
    assert _rows(dsn, "kept") == 1
    assert _rows(dsn, "unrelated") == 0


def test_18_an_expired_lock_can_be_taken_again_and_not_unlocked(
    backend: PgBackend, dsn: str
) -> None:
    assert backend.lock("foo", 3600)
    _expire(dsn, "foo")
    assert backend.unlock("foo") is False
    assert _rows(dsn, "foo") == 1
    assert backend.lock("foo", 3600) is True
    assert _rows(dsn, "foo") == 1
    assert backend.unlock("foo") is True


def test_19_non_positive_durations_only_check_and_create_nothing(
    backend: PgBackend, dsn: str
) -> None:
    assert backend.lock("foo", -3600) is True
    assert backend.lock("foo", 0) is True
    assert backend.lock("foo", -1, {"limit": 1}) is True
    assert _rows(dsn) == 0
    assert backend.list_locks(0, 10) == {"locks": [], "total": 0}
    assert _is_locked(backend, "foo") is False
    assert backend.unlock("foo") is False


def test_20_a_held_lock_fails_every_check(backend: PgBackend) -> None:
    assert backend.lock("foo", 3600)
    assert _is_locked(backend, "foo") is True
    assert backend.lock("foo", -3600) is False
    assert backend.lock("foo", 0) is False
    assert backend.lock("foo", 3600) is False
    assert _is_locked(backend, "bar") is False
    assert backend.unlock("foo")
    assert _is_locked(backend, "foo") is False


def test_21_limit_one_is_the_default_and_limit_three_allows_three_holders(
    backend: PgBackend, dsn: str
) -> None:
    assert backend.lock("yada", 3600, {"limit": 1}) is True
    assert backend.lock("yada", 3600, {"limit": 1}) is False
    assert backend.lock("yada", 3600) is False

    assert backend.lock("bar", 3600, {"limit": 3}) is True
    assert backend.lock("bar", 3600, {"limit": 3}) is True
    # A check while two of three are held succeeds and takes nothing.
    assert backend.lock("bar", -3600, {"limit": 3}) is True
    assert backend.lock("bar", 0, {"limit": 3}) is True
    assert _rows(dsn, "bar") == 2
    assert backend.lock("bar", 3600, {"limit": 3}) is True
    assert _rows(dsn, "bar") == 3
    assert backend.lock("bar", 3600, {"limit": 3}) is False
    assert backend.lock("bar", -3600, {"limit": 3}) is False
    assert _rows(dsn, "bar") == 3


def test_21_concurrent_callers_never_exceed_the_limit(backend: PgBackend, dsn: str) -> None:
    callers = 8
    barrier = threading.Barrier(callers)
    results: list[bool] = []
    lock = threading.Lock()

    def take() -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            barrier.wait(timeout=60)
            row = conn.execute("SELECT minion_lock('shared', 3600, 3)").fetchone()
        assert row is not None
        with lock:
            results.append(bool(row[0]))

    threads = [threading.Thread(target=take) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(results) == [False] * (callers - 3) + [True] * 3
    assert _rows(dsn, "shared") == 3
    assert backend.lock("shared", 3600, {"limit": 3}) is False


def test_22_the_count_is_compared_with_the_callers_limit_per_name(
    backend: PgBackend, dsn: str
) -> None:
    for _ in range(3):
        assert backend.lock("bar", 3600, {"limit": 3})
    assert backend.lock("bar", 3600, {"limit": 2}) is False
    assert backend.lock("bar", 3600) is False
    assert backend.lock("bar", 3600, {"limit": 4}) is True
    assert _rows(dsn, "bar") == 4

    assert backend.lock("baz", 3600, {"limit": 3}) is True
    assert backend.lock("baz", 3600) is False
    assert (_rows(dsn, "bar"), _rows(dsn, "baz")) == (4, 1)


def test_23_each_unlock_releases_exactly_one_holder(backend: PgBackend, dsn: str) -> None:
    for _ in range(3):
        assert backend.lock("bar", 3600, {"limit": 3})
    assert backend.lock("baz", 3600)

    assert backend.unlock("bar") is True
    assert _rows(dsn, "bar") == 2
    assert backend.lock("bar", 3600, {"limit": 3}) is True
    for remaining in (2, 1, 0):
        assert backend.unlock("bar") is True
        assert _rows(dsn, "bar") == remaining
    assert backend.unlock("bar") is False
    assert _is_locked(backend, "bar") is False
    assert _rows(dsn, "baz") == 1
    assert backend.unlock("baz") is True
    assert backend.unlock("baz") is False


def test_23_unlock_releases_the_holder_that_expires_first(backend: PgBackend, dsn: str) -> None:
    assert backend.lock("bar", 7200, {"limit": 3})
    assert backend.lock("bar", 60, {"limit": 3})
    assert backend.lock("bar", 3600, {"limit": 3})
    assert backend.unlock("bar")
    left = execute(
        dsn,
        "SELECT ROUND(EXTRACT(EPOCH FROM expires - NOW()))::int FROM minion_locks"
        " WHERE name = 'bar' ORDER BY expires",
    )
    assert len(left) == 2
    assert 3500 <= left[0][0] <= 3600
    assert 7100 <= left[1][0] <= 7200


def test_24_stats_active_locks_counts_unexpired_locks(backend: PgBackend, dsn: str) -> None:
    assert backend.stats()["active_locks"] == 0
    assert backend.lock("yada", 3600, {"limit": 2})
    assert backend.lock("yada", 3600, {"limit": 2})
    assert backend.lock("test", 3600)
    assert backend.lock("check", 0)
    assert backend.stats()["active_locks"] == 3
    _expire(dsn, "yada")
    assert backend.stats()["active_locks"] == 1
    assert backend.unlock("test")
    assert backend.stats()["active_locks"] == 0


def test_25_list_locks_returns_id_name_and_expires_newest_first(
    backend: PgBackend, dsn: str
) -> None:
    assert backend.lock("yada", 3600, {"limit": 2})
    assert backend.lock("test", 3600)
    assert backend.lock("yada", 7200, {"limit": 2})
    now = db_now(dsn)

    listed = backend.list_locks(0, 10)
    assert listed["total"] == 3
    locks = listed["locks"]
    assert [lock["name"] for lock in locks] == ["yada", "test", "yada"]
    assert all(set(lock) == {"id", "name", "expires"} for lock in locks)
    ids = [lock["id"] for lock in locks]
    assert ids == sorted(ids, reverse=True)
    assert len(set(ids)) == 3
    assert isinstance(locks[0]["expires"], float)
    assert locks[0]["expires"] == pytest.approx(now + 7200, abs=60)
    assert locks[1]["expires"] == pytest.approx(now + 3600, abs=60)
    table = dict(execute(dsn, "SELECT id, name FROM minion_locks"))
    assert {lock["id"]: lock["name"] for lock in locks} == table


def test_25_list_locks_supports_offset_and_limit(backend: PgBackend) -> None:
    for name in ("a", "b", "c"):
        assert backend.lock(name, 3600)

    page = backend.list_locks(1, 1)
    assert [lock["name"] for lock in page["locks"]] == ["b"]
    assert page["total"] == 3
    assert [lock["name"] for lock in backend.list_locks(0, 2)["locks"]] == ["c", "b"]
    assert [lock["name"] for lock in backend.list_locks(2, 5)["locks"]] == ["a"]
    assert backend.list_locks(3, 5)["locks"] == []


def test_25_list_locks_filters_by_names(backend: PgBackend) -> None:
    assert backend.lock("yada", 3600, {"limit": 2})
    assert backend.lock("test", 3600)
    assert backend.lock("yada", 3600, {"limit": 2})
    assert backend.lock("other", 3600)

    yada = backend.list_locks(0, 10, {"names": ["yada"]})
    assert [lock["name"] for lock in yada["locks"]] == ["yada", "yada"]
    assert yada["total"] == 2
    both = backend.list_locks(0, 10, {"names": ["yada", "test"]})
    assert [lock["name"] for lock in both["locks"]] == ["yada", "test", "yada"]
    assert both["total"] == 3
    assert backend.list_locks(0, 10, {"names": ["nothing"]}) == {"locks": [], "total": 0}


def test_25_list_locks_omits_expired_locks_from_the_page_and_the_total(
    backend: PgBackend, dsn: str
) -> None:
    assert backend.lock("yada", 3600, {"limit": 2})
    assert backend.lock("test", 3600)
    assert backend.lock("yada", 3600, {"limit": 2})
    _expire(dsn, "yada")

    assert backend.list_locks(0, 10, {"names": ["yada"]}) == {"locks": [], "total": 0}
    listed = backend.list_locks(0, 10)
    assert [lock["name"] for lock in listed["locks"]] == ["test"]
    assert listed["total"] == 1
    assert backend.unlock("test")
    assert backend.list_locks(0, 10)["total"] == 0


def test_28_reset_locks_clears_only_locks(backend: PgBackend, dsn: str) -> None:
    worker_id = backend.register_worker()
    job_id = backend.enqueue("test")
    assert backend.lock("foo", 3600)
    assert backend.lock("bar", 3600, {"limit": 2})

    backend.reset({"locks": True})
    assert _rows(dsn) == 0
    assert backend.lock("foo", 3600) is True
    assert backend.list_workers(0, 10)["workers"][0]["id"] == worker_id
    assert [job["id"] for job in backend.list_jobs(0, 10)["jobs"]] == [job_id]


def test_28_reset_without_options_does_nothing(backend: PgBackend, dsn: str) -> None:
    backend.register_worker()
    backend.enqueue("test")
    assert backend.lock("foo", 3600)

    backend.reset()
    backend.reset({})
    assert (_rows(dsn), backend.list_workers(0, 10)["total"]) == (1, 1)
    assert backend.list_jobs(0, 10)["total"] == 1


def test_28_reset_all_clears_jobs_locks_schedules_and_workers(backend: PgBackend, dsn: str) -> None:
    worker_id = backend.register_worker()
    backend.register_worker()
    for _ in range(3):
        backend.enqueue("test")
    assert backend.dequeue(worker_id, 0) is not None
    assert backend.lock("foo", 3600)
    execute(
        dsn,
        "INSERT INTO minion_schedules (cron, name, next_run, task)"
        " VALUES ('* * * * *', 'every minute', NOW() + INTERVAL '1 minute', 'test')",
    )

    backend.reset({"all": True})
    counts = execute(
        dsn,
        "SELECT (SELECT COUNT(*) FROM minion_jobs), (SELECT COUNT(*) FROM minion_locks),"
        " (SELECT COUNT(*) FROM minion_schedules), (SELECT COUNT(*) FROM minion_workers)",
    )
    assert counts == [(0, 0, 0, 0)]
    stats = backend.stats()
    assert (stats["enqueued_jobs"], stats["workers"], stats["schedules"]) == (0, 0, 0)
    # RESTART IDENTITY: the sequences start over.
    assert backend.enqueue("test") == 1
    assert backend.register_worker() == 1
    assert backend.stats()["enqueued_jobs"] == 1


def test_28_reset_all_works_on_a_schema_without_schedules(
    make_database: Callable[[int | None], str],
) -> None:
    dsn = make_database(23)
    old = PgBackend(dsn, pooled=False, max_schema_version=23)
    try:
        assert old.schema_version == 23
        old.register_worker()
        old.enqueue("test")
        assert old.lock("foo", 3600)
        old.reset({"all": True})
        assert _rows(dsn) == 0
        assert (old.list_jobs(0, 10)["total"], old.list_workers(0, 10)["total"]) == (0, 0)
        assert old.enqueue("test") == 1
    finally:
        old.close()


def test_141_fractional_duration_is_refused_before_the_database() -> None:
    # Nothing listens on port 1: reaching the database would raise a connection error instead.
    unreachable = PgBackend("host=127.0.0.1 port=1 dbname=none connect_timeout=2", pooled=False)
    try:
        with pytest.raises(TypeError, match="duration"):
            unreachable.lock("foo", 0.5)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="duration"):
            unreachable.lock("foo", 3600.0)  # type: ignore[arg-type]
    finally:
        unreachable.close()


def test_141_fractional_duration_takes_no_lock(backend: PgBackend, dsn: str) -> None:
    with pytest.raises(TypeError):
        backend.lock("foo", 0.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        backend.lock("foo", 1.5, {"limit": 2})  # type: ignore[arg-type]
    assert _rows(dsn) == 0
    assert backend.lock("foo", 3600) is True


def test_141_the_sql_function_refuses_a_fractional_duration(dsn: str) -> None:
    # Perl passes its parameters untyped; PostgreSQL then refuses to read 0.5 as an INT.
    with pytest.raises(psycopg.errors.InvalidTextRepresentation, match="integer"):
        execute(dsn, "SELECT minion_lock('foo', '0.5', 1)")
    assert _rows(dsn) == 0
