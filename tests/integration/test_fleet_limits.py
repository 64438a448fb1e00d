"""Fleet-wide limits, the worker's side (``FleetLimits``) against a real PostgreSQL: holds
taken from Minion's locks, a job over a limit given back untouched, slots given back at the
end, and which tasks a worker leaves out of its claims meanwhile. The whole loop, with two
daemons, is in tests/e2e/test_daemon_fleet_limits.py."""

from __future__ import annotations

from typing import Any

import pytest
from helpers.sql import execute

from minion_daemon import Minion
from minion_daemon.errors import DatabaseUnavailableError
from minion_daemon.limits import concurrency_lock, hold_seconds, rate_lock
from minion_daemon.model import DequeuedJob
from minion_daemon.worker.limits import CONCURRENCY_RECHECK, FleetLimits


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _noop(job: Any) -> None: ...


@pytest.fixture
def limited(minion: Minion) -> Minion:
    minion.add_task("one_at_a_time", _noop, concurrency=1)
    minion.add_task("two_a_minute", _noop, rate="2/1m")
    minion.add_task("free", _noop)
    return minion


def _claim(minion: Minion, worker: int, task: str) -> DequeuedJob:
    claimed = minion.backend.dequeue(worker, 0, {"tasks": [task]})
    assert claimed is not None
    return claimed


def _row(dsn: str, job_id: int) -> tuple[Any, ...]:
    [row] = execute(dsn, "SELECT state, retries, attempts FROM minion_jobs WHERE id = %s", [job_id])
    return tuple(row)


def _holds(dsn: str, name: str) -> int:
    sql = "SELECT COUNT(*) FROM minion_locks WHERE name = %s AND expires > NOW()"
    return int(execute(dsn, sql, [name])[0][0])


def _limits(minion: Minion, clock: Clock) -> tuple[FleetLimits, list[tuple[int, str]]]:
    deferred: list[tuple[int, str]] = []
    limits = FleetLimits(
        minion.backend, minion.tasks, lambda job, limit: deferred.append((job["id"], limit)), clock
    )
    return limits, deferred


def test_a_job_over_the_concurrency_goes_back_untouched_and_its_task_sits_out(
    limited: Minion, dsn: str
) -> None:
    clock = Clock()
    worker = limited.backend.register_worker()
    first, second = (limited.enqueue("one_at_a_time", attempts=1) for _ in range(2))
    mine, others = _limits(limited, clock)[0], _limits(limited, clock)
    theirs, deferred = others
    assert mine.admit([_claim(limited, worker, "one_at_a_time")], worker) != []
    assert _holds(dsn, concurrency_lock("one_at_a_time")) == 1

    assert theirs.admit([_claim(limited, worker, "one_at_a_time")], worker) == []
    assert deferred == [(second, "concurrency")]
    assert _row(dsn, second) == ("inactive", 0, 1), "no attempt used up"
    tasks = ("free", "one_at_a_time", "two_a_minute")
    assert theirs.open_tasks(tasks) == ["free", "two_a_minute"]
    assert theirs.due_in() == CONCURRENCY_RECHECK

    clock.now += CONCURRENCY_RECHECK
    assert theirs.open_tasks(tasks) == list(tasks)
    mine.release(first)
    assert _holds(dsn, concurrency_lock("one_at_a_time")) == 0
    assert theirs.admit([_claim(limited, worker, "one_at_a_time")], worker) != []
    assert _row(dsn, second) == ("active", 0, 1)


def test_ending_a_job_here_reopens_its_task_at_once(limited: Minion) -> None:
    worker = limited.backend.register_worker()
    first, _ = (limited.enqueue("one_at_a_time") for _ in range(2))
    limits, _ = _limits(limited, Clock())
    assert limits.admit([_claim(limited, worker, "one_at_a_time")], worker) != []
    assert limits.admit([_claim(limited, worker, "one_at_a_time")], worker) == []
    assert limits.open_tasks(["one_at_a_time"]) == []
    limits.release(first)
    assert limits.open_tasks(["one_at_a_time"]) == ["one_at_a_time"]


def test_a_rate_counts_starts_and_its_task_waits_for_the_first_to_expire(
    limited: Minion, dsn: str
) -> None:
    worker = limited.backend.register_worker()
    jobs = [limited.enqueue("two_a_minute") for _ in range(3)]
    limits, deferred = _limits(limited, Clock())
    for _ in range(2):
        assert limits.admit([_claim(limited, worker, "two_a_minute")], worker) != []
        limits.release(jobs[0])  # a rate hold is not a slot: ending gives nothing back
    assert limits.admit([_claim(limited, worker, "two_a_minute")], worker) == []
    assert deferred == [(jobs[2], "rate")]
    assert _holds(dsn, rate_lock("two_a_minute")) == 2
    assert 55 < limits.due_in() <= 60, "until the first start's hold expires"
    assert _row(dsn, jobs[2])[:2] == ("inactive", 0)


def test_a_slot_expires_on_its_own_after_the_tasks_timeout_and_a_margin(
    minion: Minion, dsn: str
) -> None:
    """A worker that dies holding a slot cannot give it back: the slot expires."""
    minion.add_task("timed", _noop, concurrency=1, timeout=5)
    worker = minion.backend.register_worker()
    minion.enqueue("timed")
    limits, _ = _limits(minion, Clock())
    assert limits.admit([_claim(minion, worker, "timed")], worker) != []
    sql = "SELECT EXTRACT(EPOCH FROM expires - NOW()) FROM minion_locks WHERE name = %s"
    [(left,)] = execute(dsn, sql, [concurrency_lock("timed")])
    assert hold_seconds(5) - 2 < float(left) <= hold_seconds(5) == 65


def test_over_the_rate_gives_the_concurrency_slot_back(minion: Minion, dsn: str) -> None:
    minion.add_task("both", _noop, concurrency=5, rate="1/1m")
    worker = minion.backend.register_worker()
    for _ in range(2):
        minion.enqueue("both")
    limits, deferred = _limits(minion, Clock())
    assert limits.admit([_claim(minion, worker, "both")], worker) != []
    assert limits.admit([_claim(minion, worker, "both")], worker) == []
    assert _holds(dsn, concurrency_lock("both")) == 1
    assert [limit for _, limit in deferred] == ["rate"]


def test_unlimited_tasks_pass_without_a_statement(limited: Minion, dsn: str) -> None:
    worker = limited.backend.register_worker()
    limited.enqueue("free")
    limits, _ = _limits(limited, Clock())
    claimed = _claim(limited, worker, "free")
    assert limits.admit([claimed], worker) == [claimed]
    assert not limits.limited(["free"])
    assert limits.limited(["free", "one_at_a_time"])
    assert execute(dsn, "SELECT COUNT(*) FROM minion_locks")[0][0] == 0


def test_a_job_cancelled_after_its_claim_is_not_made_inactive(limited: Minion, dsn: str) -> None:
    worker = limited.backend.register_worker()
    limited.backend.lock(concurrency_lock("one_at_a_time"), 60, {"limit": 1})
    job_id = limited.enqueue("one_at_a_time")
    claimed = _claim(limited, worker, "one_at_a_time")
    assert limited.cancel(job_id)
    limits, deferred = _limits(limited, Clock())
    assert limits.admit([claimed], worker) == []
    assert deferred == []
    assert _row(dsn, job_id)[0] == "failed"


def test_a_wait_that_ended_is_not_due_again(limited: Minion) -> None:
    """A worker at capacity asks when something is due without claiming: an ended wait must
    not keep answering "now", or its loop would spin."""
    clock = Clock()
    worker = limited.backend.register_worker()
    limited.backend.lock(concurrency_lock("one_at_a_time"), 60, {"limit": 1})
    limited.enqueue("one_at_a_time")
    limits, _ = _limits(limited, clock)
    assert limits.admit([_claim(limited, worker, "one_at_a_time")], worker) == []
    clock.now += CONCURRENCY_RECHECK
    assert limits.due_in() == float("inf")


class Unreachable:
    """The backend, but ``lock`` fails as when the database is gone, ``failures`` times."""

    def __init__(self, backend: Any, failures: int) -> None:
        self._backend = backend
        self.failures = failures

    def lock(self, *args: Any) -> bool:
        if self.failures:
            self.failures -= 1
            raise DatabaseUnavailableError("the database went away")
        return bool(self._backend.lock(*args))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)


def test_a_job_whose_holds_are_unknown_goes_back_once_the_database_answers(
    limited: Minion, dsn: str
) -> None:
    """Else it would stay active and unstarted while its worker lives: repair leaves a live
    worker's jobs alone."""
    worker = limited.backend.register_worker()
    stuck = limited.enqueue("one_at_a_time")
    limited.enqueue("free")
    backend = Unreachable(limited.backend, failures=1)
    limits = FleetLimits(backend, limited.tasks, lambda *_: None, Clock())  # type: ignore[arg-type]
    assert limits.admit([_claim(limited, worker, "one_at_a_time")], worker) == []
    assert _row(dsn, stuck)[0] == "active"
    free = _claim(limited, worker, "free")
    assert limits.admit([free], worker) == [free]
    assert _row(dsn, stuck)[:2] == ("inactive", 0)
