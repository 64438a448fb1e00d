"""``stats`` and ``history`` against a real PostgreSQL, at schema 25 and at schema 23.

Checklist items 42-48 and 143.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest
from helpers.sql import execute

from minion_daemon.backend import PgBackend
from minion_daemon.model import Stats

MakeDatabase = Callable[[int | None], str]

COUNTS = (
    "active_jobs",
    "active_locks",
    "active_workers",
    "delayed_jobs",
    "enqueued_jobs",
    "failed_jobs",
    "finished_jobs",
    "inactive_jobs",
    "inactive_workers",
    "workers",
)
SCHEDULE_COUNTS = ("schedules", "inactive_schedules")



def _counts(stats: Stats, *keys: str) -> tuple[Any, ...]:
    return tuple(stats[key] for key in keys)  # type: ignore[literal-required]


def _start_job(backend: PgBackend, worker_id: int, task: str = "test") -> int:
    """Enqueue a job and make it active on ``worker_id``; returns the job id."""
    job_id = backend.enqueue(task)
    job = backend.dequeue(worker_id, 0, {"id": job_id})
    assert job is not None
    return job_id


def _add_schedule(dsn: str, name: str, *, paused: bool) -> None:
    execute(
        dsn,
        "INSERT INTO minion_schedules (cron, name, next_run, task, paused)"
        " VALUES ('0 * * * *', %s, NOW() + INTERVAL '1 hour', 'test', %s)",
        [name, paused],
    )


def _assert_empty(stats: Stats) -> None:
    for key in COUNTS:
        assert stats[key] == 0, key  # type: ignore[literal-required]
        assert isinstance(stats[key], int), key  # type: ignore[literal-required]
    assert isinstance(stats["uptime"], float)
    assert stats["uptime"] > 0


def test_42_every_count_is_zero_on_an_empty_database(backend: PgBackend) -> None:
    stats = backend.stats()
    assert set(stats) == {*COUNTS, *SCHEDULE_COUNTS, "uptime"}
    _assert_empty(stats)
    assert _counts(stats, *SCHEDULE_COUNTS) == (0, 0)


def test_42_uptime_is_the_servers_uptime(backend: PgBackend, dsn: str) -> None:
    uptime = backend.stats()["uptime"]
    server = execute(dsn, "SELECT EXTRACT(EPOCH FROM NOW() - pg_postmaster_start_time())::float8")[
        0
    ][0]
    assert server - 60 <= uptime <= server


def test_42_schedules_and_inactive_schedules_count_unpaused_and_paused(
    backend: PgBackend, dsn: str
) -> None:
    _add_schedule(dsn, "hourly", paused=False)
    _add_schedule(dsn, "nightly", paused=False)
    _add_schedule(dsn, "held", paused=True)
    assert _counts(backend.stats(), *SCHEDULE_COUNTS) == (2, 1)
    execute(dsn, "UPDATE minion_schedules SET paused = TRUE WHERE name = 'hourly'")
    assert _counts(backend.stats(), *SCHEDULE_COUNTS) == (1, 2)
    # Schedules are not jobs: nothing else moved.
    assert backend.stats()["enqueued_jobs"] == 0


def test_42_schema_23_has_no_schedule_counts(make_database: MakeDatabase) -> None:
    dsn = make_database(23)
    # Capped at 23, as beside a Perl Minion 10.25; without the cap it would auto-migrate to 25.
    old = PgBackend(dsn, pooled=False, max_schema_version=23)
    try:
        assert old.schema_version == 23
        stats = old.stats()
        assert set(stats) == {*COUNTS, "uptime"}
        _assert_empty(stats)
        worker = old.register_worker()
        _start_job(old, worker)
        old.enqueue("test", [], {"delay": 3600})
        stats = old.stats()
        assert _counts(stats, "workers", "active_workers", "active_jobs", "delayed_jobs") == (
            1,
            1,
            1,
            1,
        )
        assert _counts(stats, "inactive_jobs", "enqueued_jobs", "inactive_workers") == (1, 2, 0)
        assert "schedules" not in stats
        assert "inactive_schedules" not in stats
    finally:
        old.close()


def test_43_one_idle_worker_is_an_inactive_worker(backend: PgBackend) -> None:
    worker = backend.register_worker()
    stats = backend.stats()
    assert _counts(stats, "workers", "active_workers", "inactive_workers") == (1, 0, 1)
    backend.register_worker()
    assert _counts(backend.stats(), "workers", "inactive_workers") == (2, 2)
    backend.unregister_worker(worker)
    assert _counts(backend.stats(), "workers", "inactive_workers") == (1, 1)


def test_44_enqueued_jobs_follows_the_id_sequence(backend: PgBackend) -> None:
    assert backend.stats()["enqueued_jobs"] == 0
    first = backend.enqueue("test")
    assert backend.stats()["enqueued_jobs"] == 1
    backend.enqueue("test")
    stats = backend.stats()
    assert _counts(stats, "enqueued_jobs", "inactive_jobs") == (2, 2)
    # Removing a job does not give its id back.
    assert backend.remove_job(first)
    assert _counts(backend.stats(), "enqueued_jobs", "inactive_jobs") == (2, 1)
    backend.reset({"all": True})
    assert backend.stats()["enqueued_jobs"] == 0


def test_45_dequeued_jobs_make_a_worker_active(backend: PgBackend) -> None:
    worker = backend.register_worker()
    backend.enqueue("test")
    backend.enqueue("test")
    assert backend.dequeue(worker, 0) is not None
    stats = backend.stats()
    assert _counts(stats, "active_workers", "inactive_workers") == (1, 0)
    assert _counts(stats, "active_jobs", "inactive_jobs") == (1, 1)

    backend.enqueue("test")
    assert backend.dequeue(worker, 0) is not None
    stats = backend.stats()
    assert _counts(stats, "active_workers", "inactive_workers", "workers") == (1, 0, 1)
    assert _counts(stats, "active_jobs", "inactive_jobs") == (2, 1)

    other = backend.register_worker()
    assert backend.dequeue(other, 0) is not None
    stats = backend.stats()
    assert _counts(stats, "active_workers", "inactive_workers", "workers") == (2, 0, 2)
    assert _counts(stats, "active_jobs", "inactive_jobs") == (3, 0)


def test_46_finished_and_failed_jobs_are_counted(backend: PgBackend) -> None:
    worker = backend.register_worker()
    first = _start_job(backend, worker)
    second = _start_job(backend, worker)
    assert backend.finish_job(second, 0, None)
    assert backend.finish_job(first, 0, {"ok": 1})
    stats = backend.stats()
    assert _counts(stats, "finished_jobs", "failed_jobs", "active_jobs") == (2, 0, 0)
    assert _counts(stats, "active_workers", "inactive_workers") == (0, 1)

    failing = _start_job(backend, worker)
    assert backend.fail_job(failing, 0, "Intentional failure!")
    assert _counts(backend.stats(), "failed_jobs", "finished_jobs") == (1, 2)
    assert backend.retry_job(failing, 0)
    assert _counts(backend.stats(), "failed_jobs", "inactive_jobs") == (0, 1)
    job = backend.dequeue(worker, 0)
    assert job is not None
    assert job["id"] == failing
    assert backend.finish_job(failing, 1, ["works"])
    backend.unregister_worker(worker)

    stats = backend.stats()
    assert _counts(stats, "finished_jobs", "failed_jobs", "active_jobs", "inactive_jobs") == (
        3,
        0,
        0,
        0,
    )
    assert _counts(stats, "workers", "active_workers", "inactive_workers", "delayed_jobs") == (
        0,
        0,
        0,
        0,
    )


def test_47_delayed_jobs_counts_inactive_jobs_delayed_into_the_future(
    backend: PgBackend, dsn: str
) -> None:
    delayed = backend.enqueue("test", [], {"delay": 100})
    stats = backend.stats()
    assert _counts(stats, "delayed_jobs", "inactive_jobs") == (1, 1)

    worker = backend.register_worker()
    parent = _start_job(backend, worker)
    # Waiting for a parent is not a delay in the Pg backend.
    backend.enqueue("test", [], {"parents": [parent]})
    assert _counts(backend.stats(), "delayed_jobs", "inactive_jobs") == (1, 2)

    execute(
        dsn, "UPDATE minion_jobs SET delayed = NOW() - INTERVAL '1 day' WHERE id = %s", [delayed]
    )
    assert _counts(backend.stats(), "delayed_jobs", "inactive_jobs") == (0, 2)
    assert backend.retry_job(delayed, 0, {"delay": 600})
    assert backend.stats()["delayed_jobs"] == 1
    assert backend.dequeue(worker, 0) is None


def test_47_expired_inactive_jobs_are_not_counted_as_inactive(backend: PgBackend, dsn: str) -> None:
    expiring = backend.enqueue("test", [], {"expire": 3600})
    backend.enqueue("test")
    assert backend.stats()["inactive_jobs"] == 2
    execute(
        dsn,
        "UPDATE minion_jobs SET expires = NOW() - INTERVAL '1 second' WHERE id = %s",
        [expiring],
    )
    assert _counts(backend.stats(), "inactive_jobs", "enqueued_jobs") == (1, 2)


def test_48_history_has_24_hourly_points_with_recent_counts_last(
    backend: PgBackend, dsn: str
) -> None:
    worker = backend.register_worker()
    for _ in range(3):
        assert backend.finish_job(_start_job(backend, worker), 0, "done")
    assert backend.fail_job(_start_job(backend, worker), 0, "broken")
    before = float(execute(dsn, "SELECT EXTRACT(EPOCH FROM NOW())::float8")[0][0])

    daily = backend.history()["daily"]
    assert len(daily) == 24
    assert all(set(point) == {"epoch", "failed_jobs", "finished_jobs"} for point in daily)
    epochs = [point["epoch"] for point in daily]
    assert all(isinstance(epoch, float) for epoch in epochs)
    for earlier, later in itertools.pairwise(epochs):
        assert later - earlier == pytest.approx(3600, abs=0.001)
    assert epochs[-1] - epochs[0] == pytest.approx(82800, abs=0.001)
    assert before <= epochs[-1] <= before + 600

    # The jobs finished in this hour; should the hour turn meanwhile, they sit one point back.
    assert sum(point["finished_jobs"] for point in daily[-2:]) == 3
    assert sum(point["failed_jobs"] for point in daily[-2:]) == 1
    assert sum(point["finished_jobs"] for point in daily) == 3
    assert sum(point["failed_jobs"] for point in daily) == 1
    assert (daily[0]["finished_jobs"], daily[0]["failed_jobs"]) == (0, 0)


def test_48_history_buckets_by_hour_and_ignores_older_jobs(backend: PgBackend, dsn: str) -> None:
    worker = backend.register_worker()
    hours_ago = _start_job(backend, worker)
    assert backend.finish_job(hours_ago, 0, "done")
    too_old = _start_job(backend, worker)
    assert backend.fail_job(too_old, 0, "broken")
    execute(
        dsn,
        "UPDATE minion_jobs SET finished = NOW() - INTERVAL '5 hours' WHERE id = %s",
        [hours_ago],
    )
    execute(
        dsn,
        "UPDATE minion_jobs SET finished = NOW() - INTERVAL '2 days' WHERE id = %s",
        [too_old],
    )

    daily = backend.history()["daily"]
    assert len(daily) == 24
    # Point 18 is five hours before the last; one point earlier if the hour turned meanwhile.
    assert daily[17]["finished_jobs"] + daily[18]["finished_jobs"] == 1
    assert sum(point["finished_jobs"] for point in daily) == 1
    assert sum(point["failed_jobs"] for point in daily) == 0


def test_143_inactive_workers_can_be_negative(backend: PgBackend) -> None:
    worker = backend.register_worker()
    _start_job(backend, worker)
    backend.unregister_worker(worker)
    stats = backend.stats()
    assert _counts(stats, "workers", "active_workers", "inactive_workers") == (0, 1, -1)
    assert stats["active_jobs"] == 1


# Jobs that ended at given moments: (state, from the current clock hour's start or from now,
# shifted by an interval). Hours are counted back from the current one.
PLACED = [
    ("finished", "hour", "-5 hours +10 minutes"),
    ("finished", "hour", "-5 hours +50 minutes"),
    ("failed", "hour", "-5 hours +30 minutes"),
    # Four hours back: nothing.
    ("failed", "hour", "-2 hours -1 microsecond"),  # the end of hour 3
    ("finished", "hour", "-2 hours"),  # the start of hour 2
    ("finished", "now", "0"),
    ("finished", "now", "-23 hours +2 minutes"),  # inside the window, in its first hour(s)
    # Outside the window, or in neither state: not counted anywhere.
    ("failed", "now", "-23 hours -2 minutes"),
    ("finished", "now", "-2 days"),
    ("inactive", "hour", "-1 hour"),  # retried: its last end time is kept
    ("active", "hour", "-1 hour"),
]
#: (failed, finished) by hours back from the current one.
EXPECTED = {5: (1, 2), 4: (0, 0), 3: (1, 0), 2: (0, 1), 1: (0, 0), 0: (0, 1)}


def _place(dsn: str) -> tuple[float, float]:
    """Insert the PLACED jobs; the epochs of the current clock hour and of the clock hour of
    the oldest job in the window."""
    states, anchors, shifts = zip(*PLACED, strict=True)
    execute(
        dsn,
        "INSERT INTO minion_jobs (args, delayed, finished, priority, state, task)"
        " SELECT '[]', NOW(), CASE anchor WHEN 'hour' THEN DATE_TRUNC('hour', NOW()) ELSE NOW()"
        "   END + shift, 0, state, 'test'"
        " FROM UNNEST(%s::minion_state[], %s::text[], %s::interval[]) AS p(state, anchor, shift)",
        [list(states), list(anchors), list(shifts)],
    )
    hour, window_start = execute(
        dsn,
        "SELECT EXTRACT(EPOCH FROM DATE_TRUNC('hour', NOW()))::float8,"
        " EXTRACT(EPOCH FROM DATE_TRUNC('hour', MIN(finished)))::float8"
        " FROM minion_jobs WHERE finished > NOW() - INTERVAL '23 hours'",
    )[0]
    return hour, window_start


def _hours_of(dsn: str, epochs: list[float]) -> list[float]:
    """The start of the clock hour (session time zone) of each epoch."""
    rows = execute(
        dsn,
        "SELECT EXTRACT(EPOCH FROM DATE_TRUNC('hour', TO_TIMESTAMP(epoch)))::float8"
        " FROM UNNEST(%s::float8[]) WITH ORDINALITY AS points(epoch, n) ORDER BY n",
        [epochs],
    )
    return [row[0] for row in rows]


@pytest.mark.parametrize("version", [25, 23])
def test_48_history_counts_each_clock_hour_and_only_ended_jobs(
    make_database: MakeDatabase, version: int
) -> None:
    """Schema 25 counts hour by hour along the (finished, state) index; schema 23, which has
    no such index, in one pass over the table. Both give Perl's buckets."""
    dsn = make_database(version)
    backend = PgBackend(dsn, pooled=False, max_schema_version=version)
    try:
        hour, window_start = _place(dsn)
        daily = backend.history()["daily"]
    finally:
        backend.close()
    assert len(daily) == 24
    # Should the hour turn before history() reads, every point moves one hour along.
    by_hour = dict(
        zip(
            _hours_of(dsn, [point["epoch"] for point in daily]),
            [(point["failed_jobs"], point["finished_jobs"]) for point in daily],
            strict=True,
        )
    )
    assert len(by_hour) == 24
    expected = {hour - back * 3600: counts for back, counts in EXPECTED.items()}
    expected[window_start] = (0, 1)
    assert {at: by_hour[at] for at in expected} == expected
    assert all(counts == (0, 0) for at, counts in by_hour.items() if at not in expected)
    assert all(
        type(point["failed_jobs"]) is int and type(point["finished_jobs"]) is int
        for point in daily
    )
