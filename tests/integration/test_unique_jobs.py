"""Unique jobs (issue 17): ``enqueue(..., unique=KEY, unique_for=SECONDS)`` against a real
PostgreSQL, racing real processes; the key lives in a table of our own
(``minion_daemon_unique_jobs``), whether its job still holds it is read from Minion's.
"""

from __future__ import annotations

import json
import os
import secrets
import select
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from helpers.sql import execute
from helpers.waiting import wait_until

from minion_daemon import Minion
from minion_daemon.backend import PgBackend
from minion_daemon.backend import migrate as schema
from minion_daemon.errors import BackendError, DatabaseUnavailableError, SchemaError

TESTS = Path(__file__).resolve().parents[1]
RACERS = 20
ENQUEUES_EACH = 50


def _jobs(dsn: str) -> list[tuple[int, str, str]]:
    """Every job: (id, task, state), by id."""
    rows = execute(dsn, "SELECT id, task, state::text FROM minion_jobs ORDER BY id")
    return [(int(row[0]), str(row[1]), str(row[2])) for row in rows]


def _keys(dsn: str) -> dict[str, int]:
    rows = execute(dsn, "SELECT key, job_id FROM minion_daemon_unique_jobs")
    return {str(key): int(job_id) for key, job_id in rows}


def _claim(minion: Minion, job_id: int) -> None:
    worker = minion.backend.register_worker()
    claimed = minion.backend.dequeue(worker, 0, {"id": job_id})
    assert claimed is not None
    assert claimed["id"] == job_id


def _finish(minion: Minion, job_id: int) -> None:
    _claim(minion, job_id)
    assert minion.backend.finish_job(job_id, 0, "done")


def _fail(minion: Minion, job_id: int) -> None:
    _claim(minion, job_id)
    assert minion.backend.fail_job(job_id, 0, "boom")


def _age(dsn: str, job_id: int, seconds: int) -> None:
    """Move the job's creation ``seconds`` into the past, in Minion's table and in ours (which
    keeps the creation time, to know the job again)."""
    shift = {"id": job_id, "seconds": seconds}
    execute(
        dsn,
        "UPDATE minion_jobs SET created = created - make_interval(secs => %(seconds)s)"
        " WHERE id = %(id)s",
        shift,
    )
    execute(
        dsn,
        "UPDATE minion_daemon_unique_jobs"
        " SET created = created - make_interval(secs => %(seconds)s) WHERE job_id = %(id)s",
        shift,
    )


# One key, one job at a time


def test_a_held_key_returns_the_job_that_holds_it_and_creates_nothing(
    minion: Minion, dsn: str
) -> None:
    first = minion.enqueue("report", [1], unique="report:daily")
    assert minion.enqueue("report", [2], unique="report:daily", priority=9) == first
    assert minion.enqueue("other", [], unique="report:daily") == first
    _claim(minion, first)  # active holds it too
    assert minion.enqueue("report", [3], unique="report:daily") == first

    assert [(job_id, task) for job_id, task, _ in _jobs(dsn)] == [(first, "report")]
    assert minion.backend.list_jobs(0, 1, {"ids": [first]})["jobs"][0]["args"] == [1]
    assert _keys(dsn) == {"report:daily": first}


def test_other_keys_and_jobs_without_a_key_are_independent(minion: Minion, dsn: str) -> None:
    first = minion.enqueue("report", [], unique="a")
    second = minion.enqueue("report", [], unique="b")
    plain = [minion.enqueue("report", []), minion.enqueue("report", [])]
    assert len({first, second, *plain}) == 4
    assert len(_jobs(dsn)) == 4


def test_the_longest_key_accepted_is_stored(minion: Minion) -> None:
    key = secrets.token_hex(500)  # 1000 bytes that do not compress
    first = minion.enqueue("report", [], unique=key)
    assert minion.enqueue("report", [], unique=key) == first
    with pytest.raises(ValueError, match="longer than 1000 bytes"):
        minion.enqueue("report", [], unique=key + "x")


@pytest.mark.parametrize("end", [_finish, _fail], ids=["finished", "failed"])
def test_a_job_that_ended_frees_its_key(
    minion: Minion, dsn: str, end: Callable[[Minion, int], None]
) -> None:
    first = minion.enqueue("report", [], unique="k")
    end(minion, first)
    second = minion.enqueue("report", [], unique="k")
    assert second != first
    assert minion.enqueue("report", [], unique="k") == second
    assert [(job_id, state) for job_id, _, state in _jobs(dsn)] == [
        (first, "finished" if end is _finish else "failed"),
        (second, "inactive"),
    ]
    assert _keys(dsn) == {"k": second}


def test_a_failed_job_retried_automatically_still_holds_its_key(minion: Minion) -> None:
    first = minion.enqueue("report", [], unique="k", attempts=2)
    _fail(minion, first)  # attempts left: inactive again, to be retried
    assert minion.enqueue("report", [], unique="k") == first


def test_a_cancelled_job_frees_its_key(minion: Minion) -> None:
    first = minion.enqueue("report", [], unique="k")
    assert minion.cancel(first)
    assert minion.enqueue("report", [], unique="k") != first


def test_an_expired_job_frees_its_key(minion: Minion, dsn: str) -> None:
    first = minion.enqueue("report", [], unique="k", expire=60)
    execute(dsn, "UPDATE minion_jobs SET expires = NOW() - INTERVAL '1 second' WHERE id = %s",
            (first,))  # fmt: skip
    assert minion.enqueue("report", [], unique="k") != first


def test_a_removed_job_frees_its_key_and_repair_forgets_it(minion: Minion, dsn: str) -> None:
    removed = minion.enqueue("report", [], unique="removed")
    assert minion.backend.remove_job(removed)
    renewed = minion.enqueue("report", [], unique="removed")
    assert renewed != removed

    # Repair (Perl's too) deletes jobs finished long ago; ours forgets their keys.
    old = minion.enqueue("report", [], unique="old")
    _finish(minion, old)
    expired = minion.enqueue("report", [], unique="expired", expire=60)
    execute(dsn, "UPDATE minion_jobs SET expires = NOW() WHERE id = %s", (expired,))
    held = minion.enqueue("report", [], unique="held")
    minion.backend.repair(remove_after=0)
    assert [job_id for job_id, _, _ in _jobs(dsn)] == [renewed, held]
    assert _keys(dsn) == {"removed": renewed, "held": held}
    assert minion.enqueue("report", [], unique="old") not in (old, renewed, held)


def test_a_reused_job_id_is_not_taken_for_the_job_that_held_the_key(
    minion: Minion, dsn: str
) -> None:
    """Perl's reset empties Minion's tables and restarts their ids, and leaves ours alone."""
    first = minion.enqueue("report", [], unique="k")
    execute(dsn, "TRUNCATE minion_jobs RESTART IDENTITY")
    stranger = minion.enqueue("unrelated", [])
    assert stranger == first  # the id came round again, for another job
    mine = minion.enqueue("report", [], unique="k")
    assert mine != stranger
    assert _keys(dsn) == {"k": mine}


def test_our_reset_forgets_the_keys(minion: Minion, dsn: str) -> None:
    minion.enqueue("report", [], unique="k")
    minion.reset(all=True)
    assert _keys(dsn) == {}


# unique_for: the window


def test_unique_for_holds_the_key_for_the_window_whatever_the_state(
    minion: Minion, dsn: str
) -> None:
    first = minion.enqueue("report", [], unique="hourly", unique_for=3600)
    _finish(minion, first)
    assert minion.enqueue("report", [], unique="hourly", unique_for=3600) == first
    # Without the window, the finished job holds nothing.
    second = minion.enqueue("report", [], unique="hourly")
    assert second != first

    _finish(minion, second)
    _age(dsn, second, 3601)
    third = minion.enqueue("report", [], unique="hourly", unique_for=3600)
    assert third not in (first, second)
    assert minion.enqueue("report", [], unique="hourly", unique_for=3600) == third


def test_an_unfinished_job_holds_its_key_past_the_window(minion: Minion, dsn: str) -> None:
    first = minion.enqueue("report", [], unique="k", unique_for=60)
    _age(dsn, first, 3600)
    assert minion.enqueue("report", [], unique="k", unique_for=60) == first


# enqueue_many


def test_enqueue_many_gives_each_key_one_job_in_the_batch_and_beyond(
    minion: Minion, dsn: str
) -> None:
    held = minion.enqueue("report", [], unique="held")
    ids = minion.enqueue_many([
        ("a", [1], {"unique": "new"}),
        ("b", [2], None),
        ("c", [3], {"unique": "new", "priority": 5}),
        ("d", [4], {"unique": "held"}),
        ("e", [5], {"unique": "other", "unique_for": 60}),
    ])
    new, plain, again, old, other = ids
    assert (again, old) == (new, held)
    assert len({held, new, plain, other}) == 4
    assert held < new < plain < other, "new jobs' ids ascend in the order given"
    assert [(job_id, task) for job_id, task, _ in _jobs(dsn)] == [
        (held, "report"), (new, "a"), (plain, "b"), (other, "e")
    ]  # fmt: skip
    assert _keys(dsn) == {"held": held, "new": new, "other": other}


def test_enqueue_many_without_keys_is_unchanged(minion: Minion, dsn: str) -> None:
    ids = minion.enqueue_many([("a", [], None), ("b", [], {"priority": 1})])
    assert ids == sorted(ids)
    assert len(set(ids)) == 2
    assert _keys(dsn) == {}


# The caller's own connection


def test_on_the_callers_connection_a_rollback_leaves_no_job_and_no_key(
    backend: PgBackend, dsn: str
) -> None:
    with psycopg.connect(dsn) as conn:
        job_id = backend.enqueue("report", [], {"unique": "k"}, conn=conn)
        assert backend.enqueue("report", [], {"unique": "k"}, conn=conn) == job_id
        many = backend.enqueue_many([("report", [], {"unique": "k"})], conn=conn)
        assert many == [job_id]
        conn.rollback()
    assert _jobs(dsn) == []
    assert _keys(dsn) == {}
    assert backend.enqueue("report", [], {"unique": "k"}) != job_id


def test_on_the_callers_connection_a_commit_keeps_both(backend: PgBackend, dsn: str) -> None:
    with psycopg.connect(dsn) as conn:
        job_id = backend.enqueue("report", [], {"unique": "k"}, conn=conn)
        conn.commit()
    assert [job for job, _, _ in _jobs(dsn)] == [job_id]
    assert backend.enqueue("report", [], {"unique": "k"}) == job_id


def _waiting_for_a_lock(dsn: str) -> bool:
    rows = execute(
        dsn,
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'",
    )
    return bool(rows[0][0])


@pytest.mark.parametrize("outcome", ["commit", "rollback"])
def test_an_enqueuer_of_the_same_key_waits_for_the_callers_transaction(
    backend: PgBackend, dsn: str, outcome: str
) -> None:
    """Until the caller's transaction ends nobody can know whether its job will exist."""
    other = PgBackend(dsn, pooled=False)
    got: list[int] = []
    try:
        with psycopg.connect(dsn) as conn:
            mine = backend.enqueue("report", [], {"unique": "k"}, conn=conn)
            racer = threading.Thread(
                target=lambda: got.append(other.enqueue("report", [], {"unique": "k"}))
            )
            racer.start()
            wait_until(lambda: _waiting_for_a_lock(dsn), 10, "the other enqueuer to wait")
            getattr(conn, outcome)()
        racer.join(10)
    finally:
        other.close()
    assert len(got) == 1
    if outcome == "commit":
        assert got == [mine]
    else:
        assert got[0] != mine
    assert [job for job, _, _ in _jobs(dsn)] == got


def test_under_repeatable_read_a_concurrent_holder_fails_the_callers_enqueue(
    backend: PgBackend, dsn: str
) -> None:
    """The caller's snapshot cannot see the job holding the key: PostgreSQL refuses, and the
    caller retries, as it does for any serialization failure."""
    with psycopg.connect(dsn) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.execute("SELECT 1")  # the snapshot is taken
        holder = backend.enqueue("report", [], {"unique": "k"})
        with pytest.raises(BackendError, match=r"could not serialize.*retry it") as raised:
            backend.enqueue("report", [], {"unique": "k"}, conn=conn)
        assert not isinstance(raised.value, DatabaseUnavailableError)
        conn.rollback()
        assert backend.enqueue("report", [], {"unique": "k"}, conn=conn) == holder
        conn.commit()
    assert [job for job, _, _ in _jobs(dsn)] == [holder]


# Racing processes


class Racer:
    """One ``helpers.unique_enqueuer`` process, connected and waiting for the start."""

    def __init__(self, dsn: str, options: dict[str, Any]) -> None:
        path = [str(TESTS), os.environ.get("PYTHONPATH", "")]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, path)))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "helpers.unique_enqueuer", dsn, json.dumps(options)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )

    def wait_ready(self) -> None:
        assert self.process.stdout is not None
        readable, _, _ = select.select([self.process.stdout], [], [], 60)
        assert readable, "racer did not start"
        assert self.process.stdout.readline() == "ready\n"

    def go(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("go\n")
        self.process.stdin.flush()

    def ids(self) -> list[int]:
        out, _ = self.process.communicate(timeout=120)
        assert self.process.returncode == 0
        return [int(job_id) for job_id in json.loads(out)]


@pytest.fixture
def race(dsn: str) -> Iterator[Callable[[dict[str, Any]], list[int]]]:
    racers: list[Racer] = []

    def run(options: dict[str, Any]) -> list[int]:
        racers.extend(Racer(dsn, options | {"count": ENQUEUES_EACH}) for _ in range(RACERS))
        for racer in racers:
            racer.wait_ready()
        for racer in racers:
            racer.go()
        return [job_id for racer in racers for job_id in racer.ids()]

    yield run
    for racer in racers:
        if racer.process.poll() is None:
            racer.process.kill()
            racer.process.wait()


@pytest.mark.slow(seconds=15)
def test_racing_processes_make_exactly_one_job_of_a_key(
    race: Callable[[dict[str, Any]], list[int]], dsn: str
) -> None:
    ids = race({"unique": "race"})
    assert len(ids) == RACERS * ENQUEUES_EACH
    jobs = _jobs(dsn)
    assert len(jobs) == 1
    assert set(ids) == {jobs[0][0]}
    assert _keys(dsn) == {"race": jobs[0][0]}


@pytest.mark.slow(seconds=15)
def test_racing_processes_make_one_job_per_window_while_it_is_performed(
    race: Callable[[dict[str, Any]], list[int]], dsn: str, minion: Minion
) -> None:
    """The job is claimed and finished while the racers enqueue: within the window its key
    stays held all the same."""
    done = threading.Event()

    def perform() -> None:
        worker = minion.backend.register_worker()
        while not done.is_set():
            job = minion.backend.dequeue(worker, 0.05, {"queues": ["default"]})
            if job is not None:
                minion.backend.finish_job(job["id"], job["retries"], "done")

    performer = threading.Thread(target=perform)
    performer.start()
    try:
        ids = race({"unique": "race", "unique_for": 3600})
    finally:
        done.set()
        performer.join(10)
    jobs = _jobs(dsn)
    assert len(jobs) == 1
    assert set(ids) == {jobs[0][0]}


# Without our tables


def _schema_without_ours(make_database: Callable[[int | None], str], own: int = 0) -> str:
    dsn = make_database(None)
    with psycopg.connect(dsn, autocommit=True, row_factory=psycopg.rows.dict_row) as conn:
        schema.migrate(conn, 23)
        if own:
            schema.migrate_own(conn, own)
    return dsn


def test_without_our_tables_unique_says_what_to_run_and_plain_jobs_work(
    make_database: Callable[[int | None], str],
) -> None:
    dsn = _schema_without_ours(make_database)
    minion = Minion(PgBackend(dsn, pooled=False, auto_migrate="off"))
    try:
        missing = r"^enqueue: .* own tables are missing, unique jobs need version 2 .*`minion-"
        with pytest.raises(SchemaError, match=missing):
            minion.enqueue("report", [], unique="k")
        with pytest.raises(SchemaError, match=r"^enqueue_many: .* own tables are missing"):
            minion.enqueue_many([("a", [], None), ("b", [], {"unique": "k"})])
        assert _jobs(dsn) == []
        assert minion.enqueue_many([("a", [], None)])
        assert minion.enqueue("b", [])

        migrator = PgBackend(dsn, pooled=False)  # `minion-daemon migrate`, from elsewhere
        migrator.migrate()
        migrator.close()
        job_id = minion.enqueue("report", [], unique="k")  # no restart needed
        assert minion.enqueue("report", [], unique="k") == job_id
    finally:
        minion.close()


def test_our_tables_before_unique_jobs_name_the_version_needed(
    make_database: Callable[[int | None], str],
) -> None:
    dsn = _schema_without_ours(make_database, own=1)
    minion = Minion(PgBackend(dsn, pooled=False, auto_migrate="off"))
    try:
        older = r"own tables are at version 1, unique jobs need version 2"
        with pytest.raises(SchemaError, match=older):
            minion.enqueue("report", [], unique="k")
    finally:
        minion.close()
    # The default (create) upgrades our tables, never Minion's.
    minion = Minion(PgBackend(dsn, pooled=False))
    try:
        assert minion.enqueue("report", [], unique="k") == minion.enqueue("x", [], unique="k")
    finally:
        minion.close()
    rows = execute(dsn, "SELECT name, version FROM mojo_migrations ORDER BY name")
    assert rows == [("minion", 23), ("minion_daemon", 2)]
