"""``repair``: missing workers, abandoned, old, expired and stuck jobs, on a real PostgreSQL.

Checklist items 2, 11-17 and 142. Rows are aged with UPDATEs on a connection of their own, the
way Perl's t/pg.t ages them, and every repair's report is checked as well as the rows it changed.
"""

from __future__ import annotations

from typing import Any

import pytest
from helpers.sql import db_now, execute

from minion_daemon.backend import PgBackend
from minion_daemon.model import JobInfo, RepairReport

MISSING_AFTER = 1800
REMOVE_AFTER = 172800
STUCK_AFTER = 172800
NOTHING = RepairReport(0, 0, 0, 0, 0)




def _age(dsn: str, table: str, column: str, row_id: int, seconds: float) -> None:
    """Move one timestamp column of one row ``seconds`` into the past, from now."""
    statements = {
        ("minion_workers", "notified"): "UPDATE minion_workers SET notified = NOW()"
        " - INTERVAL '1 second' * %s WHERE id = %s",
        ("minion_jobs", "finished"): "UPDATE minion_jobs SET finished = NOW()"
        " - INTERVAL '1 second' * %s WHERE id = %s",
        ("minion_jobs", "delayed"): "UPDATE minion_jobs SET delayed = NOW()"
        " - INTERVAL '1 second' * %s WHERE id = %s",
        ("minion_jobs", "expires"): "UPDATE minion_jobs SET expires = NOW()"
        " - INTERVAL '1 second' * %s WHERE id = %s",
    }
    execute(dsn, statements[table, column], [seconds, row_id])


def _job(backend: PgBackend, job_id: int) -> JobInfo:
    jobs = backend.list_jobs(0, 1, {"ids": [job_id]})["jobs"]
    assert len(jobs) == 1, f"job {job_id} is gone"
    return jobs[0]


def _exists(dsn: str, job_id: int) -> bool:
    return bool(execute(dsn, "SELECT 1 FROM minion_jobs WHERE id = %s", [job_id]))


def _worker_exists(backend: PgBackend, worker_id: int) -> bool:
    return bool(backend.list_workers(0, 1, {"ids": [worker_id]})["workers"])


def _start_job(backend: PgBackend, worker_id: int, options: dict[str, Any] | None = None) -> int:
    """Enqueue a job and make it active on ``worker_id``; returns the job id."""
    options = options or {}
    job_id = backend.enqueue("test", [], options)
    queues = [options.get("queue", "default")]
    job = backend.dequeue(worker_id, 0, {"id": job_id, "queues": queues})
    assert job is not None
    assert job["id"] == job_id
    return job_id


def _finished_job(backend: PgBackend, worker_id: int, options: dict[str, Any] | None = None) -> int:
    job_id = _start_job(backend, worker_id, options)
    assert backend.finish_job(job_id, 0, {"done": job_id})
    return job_id


def test_2_repair_on_an_empty_database_is_a_no_op(backend: PgBackend, dsn: str) -> None:
    assert backend.repair() == NOTHING
    assert backend.repair(missing_after=0, remove_after=0, stuck_after=0) == NOTHING
    counts = execute(
        dsn,
        "SELECT (SELECT COUNT(*) FROM minion_jobs), (SELECT COUNT(*) FROM minion_workers),"
        " (SELECT COUNT(*) FROM minion_locks)",
    )
    assert counts == [(0, 0, 0)]


def test_11_a_missing_worker_is_removed_and_its_job_fails(backend: PgBackend, dsn: str) -> None:
    alive = backend.register_worker()
    lost = backend.register_worker()
    job_id = _start_job(backend, lost)
    kept_job = _start_job(backend, alive)
    assert _job(backend, job_id)["state"] == "active"
    _age(dsn, "minion_workers", "notified", lost, MISSING_AFTER + 1)

    before = db_now(dsn)
    report = backend.repair()
    after = db_now(dsn)
    assert report == RepairReport(
        workers_removed=1,
        finished_jobs_removed=0,
        expired_jobs_removed=0,
        jobs_failed_worker_gone=1,
        jobs_failed_stuck=0,
    )
    assert not _worker_exists(backend, lost)
    assert _worker_exists(backend, alive)
    info = _job(backend, job_id)
    assert info["state"] == "failed"
    assert info["result"] == "Worker went away"
    assert info["finished"] is not None
    assert before <= info["finished"] <= after
    assert (info["worker"], info["retries"], info["attempts"]) == (lost, 0, 1)
    kept = _job(backend, kept_job)
    assert (kept["state"], kept["result"]) == ("active", None)
    assert backend.repair() == NOTHING


def test_11_missing_after_decides_when_a_worker_counts_as_missing(
    backend: PgBackend, dsn: str
) -> None:
    quiet = backend.register_worker()
    _age(dsn, "minion_workers", "notified", quiet, MISSING_AFTER - 300)
    assert backend.repair() == NOTHING
    assert _worker_exists(backend, quiet)

    assert backend.repair(missing_after=600).workers_removed == 1
    assert not _worker_exists(backend, quiet)


def test_11_repair_reports_what_each_step_did(backend: PgBackend, dsn: str) -> None:
    worker = backend.register_worker()
    lost = backend.register_worker()
    gone = backend.register_worker()
    missing_job = _start_job(backend, lost)
    abandoned_job = _start_job(backend, gone)
    backend.unregister_worker(gone)
    _age(dsn, "minion_workers", "notified", lost, MISSING_AFTER + 60)
    old = _finished_job(backend, worker)
    _age(dsn, "minion_jobs", "finished", old, REMOVE_AFTER + 60)
    expired = backend.enqueue("test", [], {"expire": 3600})
    _age(dsn, "minion_jobs", "expires", expired, 1)
    stuck = backend.enqueue("test")
    _age(dsn, "minion_jobs", "delayed", stuck, STUCK_AFTER + 60)

    assert backend.repair() == RepairReport(1, 1, 1, 2, 1)
    assert not _worker_exists(backend, lost)
    assert _worker_exists(backend, worker)
    assert (_exists(dsn, old), _exists(dsn, expired)) == (False, False)
    for job_id in (missing_job, abandoned_job):
        assert (_job(backend, job_id)["state"], _job(backend, job_id)["result"]) == (
            "failed",
            "Worker went away",
        )
    assert _job(backend, stuck)["result"] == "Job appears stuck in queue"
    assert backend.repair() == NOTHING


def test_12_the_active_job_of_an_unregistered_worker_fails(backend: PgBackend, dsn: str) -> None:
    worker = backend.register_worker()
    job_id = _start_job(backend, worker)
    backend.unregister_worker(worker)

    assert backend.repair() == RepairReport(0, 0, 0, 1, 0)
    info = _job(backend, job_id)
    assert info["state"] == "failed"
    assert info["result"] == "Worker went away"
    assert info["finished"] is not None
    assert info["finished"] <= db_now(dsn)


def test_12_an_active_job_without_a_worker_id_counts_as_abandoned(
    backend: PgBackend, dsn: str
) -> None:
    worker = backend.register_worker()
    job_id = _start_job(backend, worker)
    execute(dsn, "UPDATE minion_jobs SET worker = NULL WHERE id = %s", [job_id])
    assert backend.repair().jobs_failed_worker_gone == 1
    assert _job(backend, job_id)["state"] == "failed"


def test_12_a_job_retried_many_times_still_fails_when_its_worker_is_gone(
    backend: PgBackend, dsn: str
) -> None:
    # Jobs that re-queue themselves with retry (a common Minion idiom for periodic work) reach
    # hundreds of retries; with one attempt left, failing them needs no backoff at all.
    worker = backend.register_worker()
    job_id = _start_job(backend, worker)
    execute(dsn, "UPDATE minion_jobs SET retries = 216 WHERE id = %s", [job_id])
    stuck = backend.enqueue("test")
    _age(dsn, "minion_jobs", "delayed", stuck, STUCK_AFTER + 1)
    backend.unregister_worker(worker)

    assert backend.repair() == RepairReport(0, 0, 0, 1, 1)
    info = _job(backend, job_id)
    assert (info["state"], info["result"], info["retries"]) == ("failed", "Worker went away", 216)
    assert _job(backend, stuck)["state"] == "failed"


def test_13_jobs_in_the_foreground_queue_are_never_failed(backend: PgBackend) -> None:
    worker = backend.register_worker()
    foreground = _start_job(backend, worker, {"queue": "minion_foreground"})
    ordinary = _start_job(backend, worker)
    backend.unregister_worker(worker)

    assert backend.repair() == RepairReport(0, 0, 0, 1, 0)
    info = _job(backend, foreground)
    assert (info["state"], info["result"], info["finished"]) == ("active", None, None)
    assert info["queue"] == "minion_foreground"
    assert _job(backend, ordinary)["state"] == "failed"
    assert backend.repair() == NOTHING


def test_14_finished_jobs_older_than_remove_after_are_deleted(backend: PgBackend, dsn: str) -> None:
    worker = backend.register_worker()
    recent = _finished_job(backend, worker)
    old = _finished_job(backend, worker)
    older = _finished_job(backend, worker)
    _age(dsn, "minion_jobs", "finished", recent, REMOVE_AFTER - 3600)
    _age(dsn, "minion_jobs", "finished", old, REMOVE_AFTER + 1)
    _age(dsn, "minion_jobs", "finished", older, REMOVE_AFTER * 3)
    failed = _start_job(backend, worker)
    assert backend.fail_job(failed, 0, "broken")
    _age(dsn, "minion_jobs", "finished", failed, REMOVE_AFTER * 3)

    assert backend.repair() == RepairReport(0, 2, 0, 0, 0)
    assert _exists(dsn, recent)
    assert not _exists(dsn, old)
    assert not _exists(dsn, older)
    # Only finished jobs are cleaned up; an old failure stays for inspection.
    assert _job(backend, failed)["state"] == "failed"

    assert backend.repair(remove_after=3000) == RepairReport(0, 1, 0, 0, 0)
    assert not _exists(dsn, recent)
    assert _exists(dsn, failed)


def test_14_remove_after_zero_deletes_every_finished_job(backend: PgBackend, dsn: str) -> None:
    worker = backend.register_worker()
    finished = [_finished_job(backend, worker) for _ in range(3)]
    active = _start_job(backend, worker)
    inactive = backend.enqueue("test")

    assert backend.repair(remove_after=0) == RepairReport(0, 3, 0, 0, 0)
    assert [_exists(dsn, job_id) for job_id in finished] == [False, False, False]
    assert (_exists(dsn, active), _exists(dsn, inactive)) == (True, True)


def test_15_inactive_jobs_stuck_longer_than_stuck_after_fail(backend: PgBackend, dsn: str) -> None:
    worker = backend.register_worker()
    stuck = backend.enqueue("test", [1], {"attempts": 3})
    fresh = backend.enqueue("test", [2])
    active = _start_job(backend, worker)
    finished = _finished_job(backend, worker)
    for job_id in (stuck, active, finished):
        _age(dsn, "minion_jobs", "delayed", job_id, STUCK_AFTER + 1)
    _age(dsn, "minion_jobs", "delayed", fresh, STUCK_AFTER - 3600)

    assert backend.repair() == RepairReport(0, 0, 0, 0, 1)
    info = _job(backend, stuck)
    assert info["state"] == "failed"
    assert info["result"] == "Job appears stuck in queue"
    # Not a normal failure: no automatic retry, attempts untouched.
    assert (info["retries"], info["attempts"], info["retried"]) == (0, 3, None)
    assert info["finished"] is None
    assert _job(backend, fresh)["state"] == "inactive"
    assert (_job(backend, active)["state"], _job(backend, active)["result"]) == ("active", None)
    assert _job(backend, finished)["state"] == "finished"
    assert _job(backend, finished)["result"] == {"done": finished}

    assert backend.repair(stuck_after=3000) == RepairReport(0, 0, 0, 0, 1)
    assert _job(backend, fresh)["result"] == "Job appears stuck in queue"


def test_15_a_job_blocked_by_its_parent_is_stuck_too(backend: PgBackend, dsn: str) -> None:
    worker = backend.register_worker()
    parent = _start_job(backend, worker)
    child = backend.enqueue("test", [], {"parents": [parent]})
    _age(dsn, "minion_jobs", "delayed", child, STUCK_AFTER + 1)

    assert backend.repair() == RepairReport(0, 0, 0, 0, 1)
    info = _job(backend, child)
    assert (info["state"], info["result"]) == ("failed", "Job appears stuck in queue")
    assert _job(backend, parent)["state"] == "active"


def test_16_finished_parents_of_an_unfinished_child_are_kept(backend: PgBackend, dsn: str) -> None:
    worker = backend.register_worker()
    first = _finished_job(backend, worker)
    second = _finished_job(backend, worker)
    child = backend.enqueue("test", [], {"parents": [first, second]})
    unrelated = _finished_job(backend, worker)

    assert backend.repair(remove_after=0) == RepairReport(0, 1, 0, 0, 0)
    assert (_exists(dsn, first), _exists(dsn, second)) == (True, True)
    assert not _exists(dsn, unrelated)
    assert _job(backend, child)["parents"] == [first, second]

    job = backend.dequeue(worker, 0, {"id": child})
    assert job is not None
    assert backend.repair(remove_after=0) == NOTHING
    assert backend.finish_job(child, 0, "done")
    assert backend.repair(remove_after=0) == RepairReport(0, 3, 0, 0, 0)
    assert [_exists(dsn, job_id) for job_id in (first, second, child)] == [False, False, False]


def test_16_a_failed_child_also_keeps_its_finished_parent(backend: PgBackend, dsn: str) -> None:
    worker = backend.register_worker()
    parent = _finished_job(backend, worker)
    child = backend.enqueue("test", [], {"parents": [parent]})
    assert backend.dequeue(worker, 0, {"id": child}) is not None
    assert backend.fail_job(child, 0, "broken")

    assert backend.repair(remove_after=0) == NOTHING
    assert _exists(dsn, parent)
    assert backend.remove_job(child)
    assert backend.repair(remove_after=0) == RepairReport(0, 1, 0, 0, 0)
    assert not _exists(dsn, parent)


def test_17_worker_went_away_is_a_normal_failure_with_retries(backend: PgBackend, dsn: str) -> None:
    first_worker = backend.register_worker()
    job_id = _start_job(backend, first_worker, {"attempts": 2})
    backend.unregister_worker(first_worker)

    assert backend.repair() == RepairReport(0, 0, 0, 1, 0)
    info = _job(backend, job_id)
    assert info["state"] == "inactive"
    assert (info["attempts"], info["retries"]) == (1, 1)
    assert info["retried"] is not None
    assert info["delayed"] > info["retried"]
    # Minion's backoff for the first retry: 0 ** 4 + 15 seconds.
    assert info["delayed"] - info["retried"] == pytest.approx(15, abs=0.01)
    assert info["result"] == "Worker went away"
    assert info["finished"] is not None

    # The retry is delayed; make it due instead of waiting 15 seconds.
    execute(dsn, "UPDATE minion_jobs SET delayed = NOW() WHERE id = %s", [job_id])
    second_worker = backend.register_worker()
    job = backend.dequeue(second_worker, 0, {"id": job_id})
    assert job is not None
    assert job["retries"] == 1
    backend.unregister_worker(second_worker)

    assert backend.repair() == RepairReport(0, 0, 0, 1, 0)
    info = _job(backend, job_id)
    assert (info["state"], info["result"]) == ("failed", "Worker went away")
    assert (info["attempts"], info["retries"], info["worker"]) == (1, 1, second_worker)
    assert backend.repair() == NOTHING


def test_142_a_stuck_job_has_no_finished_timestamp(backend: PgBackend, dsn: str) -> None:
    job_id = backend.enqueue("test")
    _age(dsn, "minion_jobs", "delayed", job_id, STUCK_AFTER + 1)
    assert backend.repair().jobs_failed_stuck == 1

    assert execute(
        dsn, "SELECT state, finished, result FROM minion_jobs WHERE id = %s", [job_id]
    ) == [("failed", None, "Job appears stuck in queue")]
    assert _job(backend, job_id)["finished"] is None
    assert backend.stats()["failed_jobs"] == 1
    # History counts by finished time, so this failure never shows there.
    assert sum(point["failed_jobs"] for point in backend.history()["daily"]) == 0


def test_bury_worker_does_at_once_what_repair_does_for_one_dead_worker(
    backend: PgBackend,
) -> None:
    dead = backend.register_worker()
    alive = backend.register_worker()
    retried = _start_job(backend, dead, {"attempts": 2})
    failed = _start_job(backend, dead)
    foreground = _start_job(backend, dead, {"queue": "minion_foreground"})
    other = _start_job(backend, alive)

    assert backend.bury_worker(dead) == 2
    assert not _worker_exists(backend, dead)
    assert _worker_exists(backend, alive)
    summary = {
        job_id: (info["state"], info["retries"], info["result"])
        for job_id in (retried, failed, foreground, other)
        for info in [_job(backend, job_id)]
    }
    assert summary == {
        retried: ("inactive", 1, "Worker went away"),
        failed: ("failed", 0, "Worker went away"),
        foreground: ("active", 0, None),
        other: ("active", 0, None),
    }
    assert backend.bury_worker(dead) == 0
