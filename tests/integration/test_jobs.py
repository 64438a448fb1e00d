"""Jobs on a real PostgreSQL: listing, enqueue/dequeue, retry/remove, failures, notes, attempts,
dependencies, lax and expiry (SPEC §2.4; checklist items 49-55, 57-71, 78-80, 84-97, 144-147),
plus the backend's features beyond Perl: ``enqueue_many``, enqueue inside the caller's own
transaction, the atomic fail-and-retry and a dequeue woken by another connection.

There is no Minion facade here, so the items about ``$job->retry``, iterators and the like are
tested on the backend operation underneath them. Timestamps are moved into the past with plain
UPDATEs on a connection of their own, the way Perl's t/pg.t does it.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
from helpers.sql import execute

from minion_daemon.backend import PgBackend, default_backoff
from minion_daemon.errors import BackendError
from minion_daemon.model import DequeuedJob, JobInfo, JobList

#: Every key a ``list_jobs`` row carries (item 50).
JOB_FIELDS = {
    "id", "args", "attempts", "children", "created", "delayed", "expires", "finished", "lax",
    "notes", "parents", "priority", "queue", "result", "retried", "retries", "started", "state",
    "task", "time", "worker",
}  # fmt: skip


# Helpers


def _claimed(job: Any) -> dict[str, Any]:
    """The fields of a dequeued job that Perl's dequeue returns too."""
    return {key: job[key] for key in ("id", "args", "retries", "task")}


def _rows_in_table(dsn: str) -> int:
    return int(execute(dsn, "SELECT COUNT(*) FROM minion_jobs")[0][0])


def _in_table(dsn: str, job_id: int) -> bool:
    return bool(execute(dsn, "SELECT 1 FROM minion_jobs WHERE id = %s", [job_id]))


def _make_runnable(dsn: str, job_id: int) -> None:
    """Move the job's ``delayed`` into the past, as if its delay (or backoff) had passed."""
    execute(
        dsn, "UPDATE minion_jobs SET delayed = NOW() - INTERVAL '1 second' WHERE id = %s", [job_id]
    )


def _expire(dsn: str, job_id: int) -> None:
    """Move the job's ``expires`` into the past."""
    execute(
        dsn, "UPDATE minion_jobs SET expires = NOW() - INTERVAL '1 second' WHERE id = %s", [job_id]
    )


def _info(backend: PgBackend, job_id: int | str) -> JobInfo | None:
    jobs = backend.list_jobs(0, 2, {"ids": [job_id]})["jobs"]
    assert len(jobs) <= 1
    return jobs[0] if jobs else None


def _job(backend: PgBackend, job_id: int) -> JobInfo:
    info = _info(backend, job_id)
    assert info is not None, f"job {job_id} is not listed"
    return info


def _ids(listing: JobList) -> list[int]:
    return [job["id"] for job in listing["jobs"]]


def _claim(backend: PgBackend, worker: int, options: dict[str, Any] | None = None) -> DequeuedJob:
    """Dequeue without waiting, insisting that a job comes back."""
    job = backend.dequeue(worker, 0, options)
    assert job is not None, f"nothing to dequeue with {options}"
    return job


def _claim_id(backend: PgBackend, worker: int, options: dict[str, Any] | None = None) -> int:
    return _claim(backend, worker, options)["id"]


def _runnable(backend: PgBackend, worker: int, job_id: int) -> bool:
    """Whether the job can be dequeued now (it is claimed if so)."""
    return backend.dequeue(worker, 0, {"id": job_id}) is not None


def _finished(backend: PgBackend, worker: int, options: dict[str, Any] | None = None) -> int:
    """Enqueue a job, claim it and finish it; returns its id."""
    job_id = backend.enqueue("test", [], options)
    assert _claim_id(backend, worker, {"id": job_id}) == job_id
    assert backend.finish_job(job_id, 0, "done")
    return job_id


def _failed(backend: PgBackend, worker: int, options: dict[str, Any] | None = None) -> int:
    """Enqueue a job, claim it and fail it (one attempt, so no automatic retry)."""
    job_id = backend.enqueue("test", [], options)
    assert _claim_id(backend, worker, {"id": job_id}) == job_id
    assert backend.fail_job(job_id, 0, "broken")
    return job_id


@pytest.fixture
def worker(backend: PgBackend) -> int:
    return backend.register_worker()


# Listing (49-53)


def test_49_total_is_independent_of_offset_and_limit(backend: PgBackend) -> None:
    ids = [backend.enqueue("test", [n]) for n in range(5)]
    newest_first = list(reversed(ids))

    everything = backend.list_jobs(0, 10)
    assert _ids(everything) == newest_first
    assert everything["total"] == 5

    page = backend.list_jobs(1, 2)
    assert _ids(page) == newest_first[1:3]
    assert page["total"] == 5
    assert backend.list_jobs(4, 1)["total"] == 5
    assert _ids(backend.list_jobs(4, 1)) == [ids[0]]


def test_49_total_counts_the_filtered_jobs_only(backend: PgBackend) -> None:
    for n in range(3):
        backend.enqueue("foo", [n])
    bars = [backend.enqueue("bar", [n]) for n in range(4)]

    page = backend.list_jobs(1, 2, {"tasks": ["bar"]})
    assert page["total"] == 4
    assert _ids(page) == [bars[2], bars[1]]


def test_50_job_info_has_every_field_with_minion_defaults(backend: PgBackend) -> None:
    job_id = backend.enqueue("test", [1, "two"])
    info = _job(backend, job_id)

    assert set(info) == JOB_FIELDS
    assert info["id"] == job_id
    assert info["args"] == [1, "two"]
    assert info["task"] == "test"
    assert info["state"] == "inactive"
    assert info["queue"] == "default"
    assert info["priority"] == 0
    assert info["attempts"] == 1
    assert info["retries"] == 0
    assert info["notes"] == {}
    assert info["parents"] == []
    assert info["children"] == []
    assert info["lax"] is False
    for unset in ("expires", "finished", "result", "retried", "started", "worker"):
        assert info[unset] is None, unset
    assert isinstance(info["created"], float)
    # Without a delay, `delayed` is the same NOW() as `created`.
    assert info["delayed"] == pytest.approx(info["created"], abs=1e-3)
    assert isinstance(info["time"], float)
    assert info["time"] >= info["created"]


def test_51_filters_by_state_task_queue_and_notes(backend: PgBackend, worker: int) -> None:
    foo = backend.enqueue("foo", [], {"notes": {"colour": "red"}})
    bar = backend.enqueue("bar", [], {"queue": "other", "notes": {"size": 1}})
    baz = backend.enqueue("baz", [], {"notes": {"colour": "blue", "size": 2}})
    finished = _finished(backend, worker)
    assert _claim_id(backend, worker, {"id": baz}) == baz

    def ids(options: dict[str, Any]) -> list[int]:
        return _ids(backend.list_jobs(0, 10, options))

    assert ids({"states": ["inactive"]}) == [bar, foo]
    assert ids({"states": ["active"]}) == [baz]
    assert ids({"states": ["finished", "active"]}) == [finished, baz]
    assert ids({"states": ["failed"]}) == []
    assert ids({"tasks": ["foo", "baz"]}) == [baz, foo]
    assert ids({"tasks": ["nope"]}) == []
    assert ids({"queues": ["other"]}) == [bar]
    assert ids({"queues": ["default"]}) == [finished, baz, foo]
    assert ids({"queues": ["does_not_exist"]}) == []
    assert ids({"notes": ["colour"]}) == [baz, foo]
    assert ids({"notes": ["size", "colour"]}) == [baz, bar, foo]
    assert ids({"notes": ["missing"]}) == []
    assert ids({"ids": [foo, finished, 999]}) == [finished, foo]
    assert ids({"queues": ["default"], "states": ["inactive"], "notes": ["colour"]}) == [foo]


def test_52_paging_with_before_visits_every_job_newest_first(backend: PgBackend) -> None:
    ids = [backend.enqueue("test", [n]) for n in range(5)]
    seen: list[int] = []
    totals: list[int] = []
    options: dict[str, Any] = {}
    while True:
        page = backend.list_jobs(0, 2, options)
        if not page["jobs"]:
            break
        totals.append(len(seen) + page["total"])
        seen.extend(_ids(page))
        options["before"] = seen[-1]

    assert seen == list(reversed(ids))
    assert totals == [5, 5, 5]


def test_53_paging_is_stable_under_concurrent_enqueue_and_removal(backend: PgBackend) -> None:
    ids = [backend.enqueue("test", [n]) for n in range(5)]  # 1..5
    first = backend.list_jobs(0, 2)
    assert _ids(first) == [ids[4], ids[3]]
    assert first["total"] == 5

    newer = backend.enqueue("test", ["late"])  # a higher id: never on a later page
    assert backend.remove_job(ids[1])  # not seen yet: the next page must not show it

    second = backend.list_jobs(0, 2, {"before": ids[3]})
    assert _ids(second) == [ids[2], ids[0]]
    assert 2 + second["total"] == 4  # what an iterator reports after its second fetch
    assert backend.list_jobs(0, 2, {"before": ids[0]})["jobs"] == []
    # A fresh listing sees the new job and misses the removed one.
    assert _ids(backend.list_jobs(0, 10)) == [newer, ids[4], ids[3], ids[2], ids[0]]


# Enqueue and dequeue (54-58)


def test_54_enqueue_stores_an_inactive_job_and_missing_jobs_are_not_found(
    backend: PgBackend,
) -> None:
    assert _info(backend, 12345) is None
    assert backend.list_jobs(0, 10, {"ids": [12345]}) == {"jobs": [], "total": 0}

    job_id = backend.enqueue("add", [2, 2])
    info = _job(backend, job_id)
    assert (info["task"], info["args"], info["state"], info["priority"]) == (
        "add", [2, 2], "inactive", 0
    )  # fmt: skip
    assert info["started"] is None
    assert info["worker"] is None


def test_55_dequeue_makes_the_job_active_on_the_worker(backend: PgBackend, worker: int) -> None:
    job_id = backend.enqueue("add", [2, 2])
    assert backend.list_workers(0, 1)["workers"][0]["jobs"] == []

    job = _claim(backend, worker)
    assert _claimed(job) == {"id": job_id, "args": [2, 2], "retries": 0, "task": "add"}
    assert job["queue"] == "default"
    assert 0 <= job["latency"] < 60
    info = _job(backend, job_id)
    assert info["state"] == "active"
    assert info["worker"] == worker
    assert info["started"] is not None
    assert info["started"] >= info["created"]
    assert info["time"] >= info["started"]
    assert backend.list_workers(0, 1)["workers"][0]["jobs"] == [job_id]

    assert backend.finish_job(job_id, 0, {"added": 4})
    assert backend.list_workers(0, 1)["workers"][0]["jobs"] == []


def test_57_a_job_loaded_again_has_the_same_args_task_and_retries(
    backend: PgBackend, worker: int
) -> None:
    args = [{"nested": {"list": [1, 2.5, "three", None, True]}}, [], {}]
    job_id = backend.enqueue("echo", args)
    job = _claim(backend, worker)
    assert _claimed(job) == {"id": job_id, "args": args, "retries": 0, "task": "echo"}
    info = _job(backend, job_id)
    assert (info["args"], info["task"], info["retries"]) == (args, "echo", 0)

    assert backend.retry_job(job_id, 0)
    again = _claim(backend, worker)
    assert _claimed(again) == {"id": job_id, "args": args, "retries": 1, "task": "echo"}


def test_58_new_job_has_one_attempt_and_no_retries(backend: PgBackend, worker: int) -> None:
    job_id = backend.enqueue("test")
    info = _job(backend, job_id)
    assert (info["attempts"], info["retries"], info["args"]) == (1, 0, [])

    assert _claim_id(backend, worker) == job_id
    assert backend.dequeue(worker, 0) is None
    assert backend.dequeue(worker, 0.1) is None


# Retry and remove (59-65, 144, 147)


def test_59_retry_of_a_finished_job_makes_it_inactive(backend: PgBackend, worker: int) -> None:
    job_id = _finished(backend, worker)
    before = _job(backend, job_id)

    assert backend.retry_job(job_id, 0)
    info = _job(backend, job_id)
    assert info["state"] == "inactive"
    assert info["retries"] == 1
    assert info["retried"] is not None
    assert before["finished"] is not None
    assert info["retried"] >= before["finished"]


def test_144_retry_keeps_worker_started_finished_and_result(
    backend: PgBackend, worker: int
) -> None:
    job_id = _finished(backend, worker)
    before = _job(backend, job_id)
    assert backend.retry_job(job_id, 0)
    after = _job(backend, job_id)
    for kept in ("worker", "started", "finished", "result"):
        assert after[kept] == before[kept], kept
    assert after["worker"] == worker
    assert after["result"] == "done"


def test_60_retry_of_a_job_held_as_active(backend: PgBackend, worker: int) -> None:
    job_id = backend.enqueue("test")
    assert _claim_id(backend, worker) == job_id
    assert backend.retry_job(job_id, 0)
    assert _claim(backend, worker)["retries"] == 1

    assert backend.retry_job(job_id, 1)
    info = _job(backend, job_id)
    assert (info["id"], info["state"], info["retries"]) == (job_id, "inactive", 2)
    assert _claimed(_claim(backend, worker)) == {
        "id": job_id,
        "args": [],
        "retries": 2,
        "task": "test",
    }


def test_61_removed_job_cannot_be_retried_or_found(backend: PgBackend, worker: int) -> None:
    job_id = _finished(backend, worker)
    assert backend.remove_job(job_id)
    assert _info(backend, job_id) is None
    assert not _in_table(backend.settings.conninfo, job_id)
    assert not backend.retry_job(job_id, 0)
    assert not backend.remove_job(job_id)


def test_62_retry_of_an_inactive_job_keeps_it_inactive(backend: PgBackend) -> None:
    job_id = backend.enqueue("test")
    assert backend.retry_job(job_id, 0)
    info = _job(backend, job_id)
    assert (info["state"], info["retries"]) == ("inactive", 1)
    assert not backend.retry_job(job_id, 0)  # the old retries no longer match
    assert backend.retry_job(job_id, 1)
    assert _job(backend, job_id)["retries"] == 2


def test_63_failed_jobs_can_be_removed_and_string_ids_work(backend: PgBackend, worker: int) -> None:
    job_id = _failed(backend, worker)
    info = _info(backend, str(job_id))
    assert info is not None
    assert (info["id"], info["state"]) == (job_id, "failed")

    assert backend.remove_job(str(job_id))
    assert _info(backend, job_id) is None


def test_63_active_jobs_cannot_be_removed(backend: PgBackend, worker: int) -> None:
    job_id = backend.enqueue("test")
    inactive = backend.enqueue("test")
    assert _claim_id(backend, worker) == job_id
    assert not backend.remove_job(job_id)
    assert _job(backend, job_id)["state"] == "active"
    assert backend.remove_job(inactive)
    assert _info(backend, inactive) is None


def test_64_a_stale_holder_can_neither_finish_nor_retry(backend: PgBackend, worker: int) -> None:
    job_id = backend.enqueue("test")
    assert _claim(backend, worker)["retries"] == 0
    assert backend.retry_job(job_id, 0)
    other = backend.register_worker()
    assert _claimed(_claim(backend, other)) == {
        "id": job_id,
        "args": [],
        "retries": 1,
        "task": "test",
    }

    assert not backend.finish_job(job_id, 0, "stale")
    assert not backend.fail_job(job_id, 0, "stale")
    assert not backend.retry_job(job_id, 0)
    info = _job(backend, job_id)
    assert (info["state"], info["worker"], info["retries"], info["result"]) == (
        "active", other, 1, None
    )  # fmt: skip

    assert backend.finish_job(job_id, 1, "fresh")
    info = _job(backend, job_id)
    assert (info["state"], info["result"]) == ("finished", "fresh")


def test_65_retry_of_an_active_job_makes_it_inactive_with_new_options(
    backend: PgBackend, worker: int
) -> None:
    job_id = backend.enqueue("test")
    assert _claim_id(backend, worker) == job_id
    assert backend.retry_job(job_id, 0, {"priority": 7, "queue": "important"})
    info = _job(backend, job_id)
    assert (info["state"], info["priority"], info["queue"], info["retries"]) == (
        "inactive", 7, "important", 1
    )  # fmt: skip


def test_147_retry_of_a_missing_job_is_false(backend: PgBackend) -> None:
    assert not backend.retry_job(4242, 0)
    assert not backend.remove_job(4242)


# Priorities, delays, queues, tasks (66-71)


def test_66_higher_priority_first_and_retry_changes_priority(
    backend: PgBackend, worker: int
) -> None:
    low = backend.enqueue("test", [], {"priority": 1})
    high = backend.enqueue("test", [], {"priority": 2})
    assert _claim_id(backend, worker) == high
    assert _claim_id(backend, worker) == low

    assert backend.retry_job(low, 0, {"priority": 100})
    assert _job(backend, low)["priority"] == 100
    middle = backend.enqueue("test", [], {"priority": 50})
    assert _claim_id(backend, worker) == low

    assert backend.retry_job(low, 1, {"priority": 0})
    assert _job(backend, low)["priority"] == 0
    assert _claim_id(backend, worker) == middle
    assert _claim_id(backend, worker) == low


def test_66_equal_priorities_are_dequeued_oldest_first(backend: PgBackend, worker: int) -> None:
    ids = [backend.enqueue("test", [n], {"priority": 3}) for n in range(3)]
    assert [_claim_id(backend, worker) for _ in ids] == ids


def test_67_min_priority_excludes_lower_priorities(backend: PgBackend, worker: int) -> None:
    five = backend.enqueue("test", [], {"priority": 5})
    zero = backend.enqueue("test", [], {"priority": 0})
    negative = backend.enqueue("test", [], {"priority": -2})

    assert backend.dequeue(worker, 0, {"min_priority": 6}) is None
    assert _claim_id(backend, worker, {"min_priority": 0}) == five
    assert _claim_id(backend, worker, {"min_priority": 0}) == zero
    assert backend.dequeue(worker, 0, {"min_priority": 0}) is None
    assert _claim_id(backend, worker, {"min_priority": -10}) == negative


def test_68_delayed_jobs_wait_until_their_time(backend: PgBackend, worker: int, dsn: str) -> None:
    job_id = backend.enqueue("test", [], {"delay": 100})
    stats = backend.stats()
    assert (stats["delayed_jobs"], stats["inactive_jobs"]) == (1, 1)
    info = _job(backend, job_id)
    assert info["delayed"] > info["created"]
    assert info["delayed"] - info["created"] == pytest.approx(100, abs=1e-3)
    assert backend.dequeue(worker, 0) is None

    _make_runnable(dsn, job_id)
    assert backend.stats()["delayed_jobs"] == 0
    assert _claim_id(backend, worker) == job_id


def test_69_retry_delay(backend: PgBackend) -> None:
    job_id = backend.enqueue("test")
    assert backend.retry_job(job_id, 0)
    info = _job(backend, job_id)
    assert info["retried"] is not None
    assert info["delayed"] <= info["retried"]

    assert backend.retry_job(job_id, 1, {"delay": 100})
    info = _job(backend, job_id)
    assert info["retried"] is not None
    assert info["delayed"] > info["retried"]
    assert info["delayed"] - info["retried"] == pytest.approx(100, abs=1e-3)
    assert backend.stats()["delayed_jobs"] == 1


def test_70_workers_only_see_jobs_in_their_queues(backend: PgBackend, worker: int) -> None:
    default = backend.enqueue("test")
    assert _job(backend, default)["queue"] == "default"
    elsewhere = backend.enqueue("test", [], {"queue": "test1"})

    assert _claim_id(backend, worker) == default
    assert backend.dequeue(worker, 0) is None
    assert backend.dequeue(worker, 0, {"queues": ["other"]}) is None
    assert _claim_id(backend, worker, {"queues": ["test1"]}) == elsewhere

    assert backend.retry_job(elsewhere, 0, {"queue": "test2"})
    assert _job(backend, elsewhere)["queue"] == "test2"
    assert backend.dequeue(worker, 0, {"queues": ["default", "test1"]}) is None
    assert _claim_id(backend, worker, {"queues": ["default", "test2"]}) == elsewhere


def test_71_tasks_option_restricts_dequeue_and_keeps_the_order(
    backend: PgBackend, worker: int
) -> None:
    foo = backend.enqueue("foo")
    bar = backend.enqueue("bar")
    baz = backend.enqueue("baz")

    assert backend.dequeue(worker, 0, {"tasks": ["nope"]}) is None
    assert backend.dequeue(worker, 0, {"tasks": []}) is None
    assert _claim_id(backend, worker, {"tasks": ["bar"]}) == bar
    assert _claim_id(backend, worker, {"tasks": ["foo", "baz"]}) == foo
    assert _claim_id(backend, worker, {"tasks": ["bar", "baz"]}) == baz
    assert backend.dequeue(worker, 0, {"tasks": ["foo", "bar", "baz"]}) is None


def test_71_tasks_option_respects_priority(backend: PgBackend, worker: int) -> None:
    backend.enqueue("foo", [], {"priority": 10})
    bar = backend.enqueue("bar", [], {"priority": 1})
    baz = backend.enqueue("baz", [], {"priority": 5})
    assert _claim_id(backend, worker, {"tasks": ["bar", "baz"]}) == baz
    assert _claim_id(backend, worker, {"tasks": ["bar", "baz"]}) == bar


# Failures and results (78-80, 145)


def test_78_fail_without_a_result_and_finish_afterwards(backend: PgBackend, worker: int) -> None:
    job_id = backend.enqueue("test")
    assert _claim_id(backend, worker) == job_id
    assert backend.fail_job(job_id, 0)
    info = _job(backend, job_id)
    assert (info["state"], info["result"]) == ("failed", None)
    assert info["finished"] is not None
    assert not backend.finish_job(job_id, 0, "too late")
    assert _job(backend, job_id)["state"] == "failed"


def test_79_fail_stores_the_error_string(backend: PgBackend, worker: int) -> None:
    job_id = backend.enqueue("test")
    assert _claim_id(backend, worker) == job_id
    assert backend.fail_job(job_id, 0, "Something bad happened!")
    info = _job(backend, job_id)
    assert (info["state"], info["result"]) == ("failed", "Something bad happened!")


def test_80_exception_text_and_nested_results_are_stored_exactly(
    backend: PgBackend, worker: int
) -> None:
    died = backend.enqueue("test")
    nested = backend.enqueue("test")
    assert _claim_id(backend, worker) == died
    assert _claim_id(backend, worker) == nested

    assert backend.fail_job(died, 0, "Intentional failure!\n")
    error = {"message": "boom", "trace": [{"line": 3, "file": None}], "codes": [1, 2.5, True]}
    assert backend.fail_job(nested, 0, error)
    assert _job(backend, died)["result"] == "Intentional failure!\n"
    assert _job(backend, nested)["result"] == error
    assert _job(backend, nested)["state"] == "failed"


def test_145_finish_and_fail_on_a_done_job_are_false(backend: PgBackend, worker: int) -> None:
    finished = _finished(backend, worker)
    assert not backend.finish_job(finished, 0, "again")
    assert not backend.fail_job(finished, 0, "again")
    info = _job(backend, finished)
    assert (info["state"], info["result"]) == ("finished", "done")

    failed = _failed(backend, worker)
    assert not backend.fail_job(failed, 0, "again")
    assert not backend.finish_job(failed, 0, "again")
    assert _job(backend, failed)["result"] == "broken"

    inactive = backend.enqueue("test")
    assert not backend.finish_job(inactive, 0, "never started")
    assert not backend.fail_job(inactive, 0, "never started")
    assert _job(backend, inactive)["state"] == "inactive"


# Notes (84)


def test_84_nested_args_notes_and_results_round_trip(backend: PgBackend, worker: int) -> None:
    args = [{"a": [1, {"b": [None, "c"]}]}, [[], {}], -1.25, "text"]
    notes = {"deep": {"list": [1, {"x": "y"}], "flag": False}}
    result = {"out": [{"k": [1, 2, {"z": None}]}], "empty": {}}
    job_id = backend.enqueue("test", args, {"notes": notes})
    assert _claim(backend, worker)["args"] == args
    assert backend.finish_job(job_id, 0, result)
    info = _job(backend, job_id)
    assert (info["args"], info["notes"], info["result"]) == (args, notes, result)


def test_84_note_merges_keys_and_none_removes_one(backend: PgBackend) -> None:
    job_id = backend.enqueue("test", [], {"notes": {"before": 23}})
    assert backend.note(job_id, {"foo": [4, 5, 6], "bar": {"baz": 1}})
    assert _job(backend, job_id)["notes"] == {"before": 23, "foo": [4, 5, 6], "bar": {"baz": 1}}

    # A shallow merge: a top-level key is replaced as a whole.
    assert backend.note(job_id, {"bar": {"yada": 2}, "foo": "replaced"})
    assert _job(backend, job_id)["notes"] == {"before": 23, "foo": "replaced", "bar": {"yada": 2}}

    assert backend.note(job_id, {"foo": None, "missing": None})
    assert _job(backend, job_id)["notes"] == {"before": 23, "bar": {"yada": 2}}
    assert _ids(backend.list_jobs(0, 10, {"notes": ["foo"]})) == []
    assert _ids(backend.list_jobs(0, 10, {"notes": ["bar"]})) == [job_id]


def test_84_note_strips_nested_nulls_but_not_array_elements(backend: PgBackend) -> None:
    job_id = backend.enqueue("test", [], {"notes": {"a": {"b": None, "c": 1}, "keep": [1, None]}})
    # Enqueue stores the notes as given.
    assert _job(backend, job_id)["notes"] == {"a": {"b": None, "c": 1}, "keep": [1, None]}

    assert backend.note(job_id, {"other": True})
    assert _job(backend, job_id)["notes"] == {"a": {"c": 1}, "keep": [1, None], "other": True}


def test_84_note_on_a_missing_job_is_false(backend: PgBackend) -> None:
    assert not backend.note(777, {"foo": "bar"})
    job_id = backend.enqueue("test")
    assert backend.note(job_id, {})
    assert _job(backend, job_id)["notes"] == {}


# Attempts and backoff (85-87)


def test_85_default_backoff(backend: PgBackend) -> None:
    assert [default_backoff(n) for n in (0, 1, 2, 3, 4, 5, 25)] == [
        15, 16, 31, 96, 271, 640, 390640
    ]  # fmt: skip
    assert backend.backoff is default_backoff


def test_85_a_custom_backoff_delays_the_automatic_retry(dsn: str) -> None:
    seen: list[int] = []

    def backoff(retries: int) -> float:
        seen.append(retries)
        return 1000 + retries

    backend = PgBackend(dsn, pooled=False, backoff=backoff)
    try:
        worker = backend.register_worker()
        job_id = backend.enqueue("test", [], {"attempts": 2})
        assert backend.retry_job(job_id, 0)
        assert _claim(backend, worker)["retries"] == 1
        assert backend.fail_job(job_id, 1, "oops")
        info = _job(backend, job_id)
        assert seen == [1]
        assert info["retried"] is not None
        assert info["delayed"] - info["retried"] == pytest.approx(1001, abs=1e-3)
    finally:
        backend.close()


def _fail_again(backend: PgBackend, worker: int, dsn: str, job_id: int, error: str) -> JobInfo:
    """Let the job's backoff pass, claim it and fail it; returns its info afterwards."""
    _make_runnable(dsn, job_id)
    job = _claim(backend, worker)
    assert job["id"] == job_id
    assert backend.fail_job(job_id, job["retries"], error)
    return _job(backend, job_id)


def test_86_failures_retry_automatically_while_attempts_remain(
    backend: PgBackend, worker: int, dsn: str
) -> None:
    job_id = backend.enqueue("test", [], {"attempts": 3})
    assert _claim_id(backend, worker) == job_id
    assert backend.fail_job(job_id, 0, "first")
    info = _job(backend, job_id)
    assert (info["state"], info["attempts"], info["retries"], info["result"]) == (
        "inactive", 2, 1, "first"
    )  # fmt: skip
    assert info["retried"] is not None
    assert info["retried"] < info["delayed"]
    assert info["delayed"] - info["retried"] == pytest.approx(default_backoff(0), abs=1e-3)
    assert info["finished"] is not None  # the failure's finish time stays set
    assert backend.dequeue(worker, 0) is None  # still backing off

    info = _fail_again(backend, worker, dsn, job_id, "second")
    assert (info["state"], info["attempts"], info["retries"], info["result"]) == (
        "inactive", 1, 2, "second"
    )  # fmt: skip
    assert info["retried"] is not None
    assert info["delayed"] - info["retried"] == pytest.approx(default_backoff(1), abs=1e-3)

    info = _fail_again(backend, worker, dsn, job_id, "third")
    assert (info["state"], info["attempts"], info["retries"], info["result"]) == (
        "failed", 1, 2, "third"
    )  # fmt: skip


def test_86_failing_the_last_attempt_needs_no_backoff(
    backend: PgBackend, worker: int, dsn: str
) -> None:
    # Jobs that re-queue themselves reach hundreds of retries; backoff(216) is beyond 2**31
    # seconds, but with one attempt left no retry (and no backoff) is due at all.
    job_id = backend.enqueue("test")
    assert _claim_id(backend, worker) == job_id
    execute(dsn, "UPDATE minion_jobs SET retries = 216 WHERE id = %s", [job_id])
    assert backend.fail_job(job_id, 216, "finally")
    info = _job(backend, job_id)
    assert (info["state"], info["result"], info["retries"]) == ("failed", "finally", 216)


def test_87_manual_retry_with_attempts_allows_more_automatic_retries(
    backend: PgBackend, worker: int, dsn: str
) -> None:
    job_id = backend.enqueue("test", [], {"attempts": 2})
    assert _claim_id(backend, worker) == job_id
    assert backend.fail_job(job_id, 0, "one")
    info = _fail_again(backend, worker, dsn, job_id, "two")
    assert (info["state"], info["attempts"], info["retries"]) == ("failed", 1, 1)

    assert backend.retry_job(job_id, 1, {"attempts": 2})
    info = _job(backend, job_id)
    assert (info["state"], info["attempts"], info["retries"]) == ("inactive", 2, 2)

    info = _fail_again(backend, worker, dsn, job_id, "three")
    assert (info["state"], info["attempts"], info["retries"]) == ("inactive", 1, 3)
    assert info["retried"] is not None
    assert info["delayed"] - info["retried"] == pytest.approx(default_backoff(2), abs=1e-3)
    info = _fail_again(backend, worker, dsn, job_id, "four")
    assert (info["state"], info["attempts"], info["retries"]) == ("failed", 1, 3)


def test_87_manual_retry_does_not_use_up_an_attempt(backend: PgBackend) -> None:
    job_id = backend.enqueue("test", [], {"attempts": 3})
    assert backend.retry_job(job_id, 0)
    assert backend.retry_job(job_id, 1)
    info = _job(backend, job_id)
    assert (info["attempts"], info["retries"]) == (3, 2)


# Dependencies (88-93)


def test_88_children_wait_for_all_parents(backend: PgBackend, worker: int) -> None:
    first = backend.enqueue("parent")
    second = backend.enqueue("parent")
    child = backend.enqueue("child", [], {"parents": [first, second], "priority": 9})

    assert _job(backend, child)["parents"] == [first, second]
    assert _job(backend, first)["children"] == [child]
    assert _job(backend, second)["children"] == [child]
    assert _job(backend, child)["children"] == []

    # The child has the highest priority, but its parents come first.
    assert _claim_id(backend, worker) == first
    assert not _runnable(backend, worker, child)  # one parent active, one inactive
    assert backend.finish_job(first, 0, "ok")
    assert not _runnable(backend, worker, child)  # the second parent is still inactive
    assert _claim_id(backend, worker) == second
    assert not _runnable(backend, worker, child)  # ... then active
    assert backend.finish_job(second, 0, "ok")
    assert _claim_id(backend, worker) == child


def test_88_children_are_listed_for_every_parent(backend: PgBackend) -> None:
    parent = backend.enqueue("parent")
    children = [backend.enqueue("child", [], {"parents": [parent]}) for _ in range(3)]
    assert sorted(_job(backend, parent)["children"]) == children


def test_89_a_failed_parent_blocks_until_retried_and_finished(
    backend: PgBackend, worker: int
) -> None:
    parent = _failed(backend, worker)
    child = backend.enqueue("child", [], {"parents": [parent]})
    assert not _runnable(backend, worker, child)
    assert backend.dequeue(worker, 0) is None

    assert backend.retry_job(parent, 0)
    assert _claim_id(backend, worker) == parent
    assert not _runnable(backend, worker, child)
    assert backend.finish_job(parent, 1, "ok")
    assert _claim_id(backend, worker) == child


def test_90_missing_parents_do_not_block_and_retry_replaces_parents(
    backend: PgBackend, worker: int
) -> None:
    orphan = backend.enqueue("child", [], {"parents": [-1]})
    assert _claim_id(backend, worker) == orphan

    parent = backend.enqueue("parent")
    child = backend.enqueue("child", [], {"parents": [parent]})
    assert not _runnable(backend, worker, child)
    assert backend.retry_job(child, 0, {"parents": [-1, -2]})
    assert _job(backend, child)["parents"] == [-1, -2]
    assert _job(backend, parent)["children"] == []
    assert _runnable(backend, worker, child)


def test_91_removed_parents_no_longer_exist_nor_block(backend: PgBackend, worker: int) -> None:
    first = _finished(backend, worker)
    second = _failed(backend, worker)
    child = backend.enqueue("child", [], {"parents": [first, second]})
    assert _ids(backend.list_jobs(0, 10, {"ids": [first, second]})) == [second, first]
    assert not _runnable(backend, worker, child)  # the failed parent blocks

    assert backend.remove_job(first)
    assert backend.remove_job(second)
    assert backend.list_jobs(0, 10, {"ids": [first, second]}) == {"jobs": [], "total": 0}
    assert _job(backend, child)["parents"] == [first, second]
    assert _runnable(backend, worker, child)


def test_92_lax_children_run_after_a_failed_parent(backend: PgBackend, worker: int) -> None:
    finished = _finished(backend, worker)
    failed = _failed(backend, worker)
    lax = backend.enqueue("child", [], {"parents": [finished, failed], "lax": True})
    strict = backend.enqueue("child", [], {"parents": [finished, failed]})
    assert _job(backend, lax)["lax"] is True

    assert _claim_id(backend, worker) == lax
    assert backend.dequeue(worker, 0) is None  # the strict child stays blocked
    assert backend.retry_job(strict, 0, {"lax": True})
    assert _claim_id(backend, worker) == strict


def test_92_lax_children_still_wait_for_unfinished_parents(backend: PgBackend, worker: int) -> None:
    parent = backend.enqueue("parent")
    child = backend.enqueue("child", [], {"parents": [parent], "lax": True})
    assert not _runnable(backend, worker, child)
    assert _claim_id(backend, worker) == parent
    assert not _runnable(backend, worker, child)
    assert backend.fail_job(parent, 0, "broken")
    assert _claim_id(backend, worker) == child


def test_93_lax_survives_a_retry_until_turned_off(backend: PgBackend) -> None:
    job_id = backend.enqueue("test", [], {"lax": True})
    assert _job(backend, job_id)["lax"] == 1
    assert backend.retry_job(job_id, 0)
    assert _job(backend, job_id)["lax"] is True
    assert backend.retry_job(job_id, 1, {"lax": False})
    assert _job(backend, job_id)["lax"] is False
    assert _job(backend, job_id)["lax"] == 0
    assert backend.retry_job(job_id, 2, {"lax": 1})
    assert _job(backend, job_id)["lax"] is True
    assert backend.retry_job(job_id, 3, {"lax": 0})
    assert _job(backend, job_id)["lax"] is False


# Expiring jobs (94-97)


def test_94_expires_is_set_by_expire_and_by_retry(backend: PgBackend) -> None:
    plain = backend.enqueue("test")
    assert _job(backend, plain)["expires"] is None

    job_id = backend.enqueue("test", [], {"expire": 300})
    info = _job(backend, job_id)
    assert info["expires"] is not None
    assert info["expires"] - info["created"] == pytest.approx(300, abs=1e-3)

    assert backend.retry_job(job_id, 0)
    assert _job(backend, job_id)["expires"] == info["expires"]  # kept without `expire`
    assert backend.retry_job(job_id, 1, {"expire": 600})
    info = _job(backend, job_id)
    assert info["expires"] is not None
    assert info["retried"] is not None
    assert info["expires"] - info["retried"] == pytest.approx(600, abs=1e-3)

    assert backend.retry_job(plain, 0, {"expire": 60})
    assert _job(backend, plain)["expires"] is not None


def test_95_expired_inactive_jobs_are_hidden_not_dequeued_and_repaired_away(
    backend: PgBackend, worker: int, dsn: str
) -> None:
    expired = backend.enqueue("test", [], {"expire": 300})
    fresh = backend.enqueue("test", [], {"expire": 300})
    _expire(dsn, expired)

    assert backend.list_jobs(0, 10, {"states": ["inactive"]})["total"] == 1
    assert _ids(backend.list_jobs(0, 10)) == [fresh]
    assert _info(backend, expired) is None
    assert backend.stats()["inactive_jobs"] == 1
    assert backend.dequeue(worker, 0, {"id": expired}) is None
    assert _in_table(dsn, expired)

    report = backend.repair()
    assert report.expired_jobs_removed == 1
    assert not _in_table(dsn, expired)
    assert _claim_id(backend, worker) == fresh


def test_96_expired_finished_failed_and_active_jobs_are_kept(
    backend: PgBackend, worker: int, dsn: str
) -> None:
    finished = _finished(backend, worker, {"expire": 300})
    failed = _failed(backend, worker, {"expire": 300})
    active = backend.enqueue("test", [], {"expire": 300})
    assert _claim_id(backend, worker) == active
    for job_id in (finished, failed, active):
        _expire(dsn, job_id)

    assert backend.repair().expired_jobs_removed == 0
    states = {job["id"]: job["state"] for job in backend.list_jobs(0, 10)["jobs"]}
    assert states == {finished: "finished", failed: "failed", active: "active"}
    assert _rows_in_table(dsn) == 3


def test_97_an_expired_inactive_parent_does_not_block(
    backend: PgBackend, worker: int, dsn: str
) -> None:
    parent = backend.enqueue("parent", [], {"expire": 300})
    child = backend.enqueue("child", [], {"parents": [parent]})
    assert not _runnable(backend, worker, child)
    _expire(dsn, parent)
    assert _claim_id(backend, worker) == child
    assert backend.dequeue(worker, 0) is None  # the expired parent itself never runs


# Beyond Perl: enqueue_many


def test_enqueue_many_returns_ids_in_the_order_given(backend: PgBackend) -> None:
    tasks = [f"task{n}" for n in range(200)]
    ids = backend.enqueue_many([(task, [n], None) for n, task in enumerate(tasks)])
    assert ids == list(range(1, 201))
    by_id = {job["id"]: (job["task"], job["args"]) for job in backend.list_jobs(0, 500)["jobs"]}
    assert [by_id[job_id] for job_id in ids] == [(task, [n]) for n, task in enumerate(tasks)]


def test_enqueue_many_applies_each_jobs_options(backend: PgBackend) -> None:
    ids = backend.enqueue_many([
        ("plain", None, None),
        ("busy", [1], {"priority": 5, "queue": "q2", "notes": {"k": "v"}, "attempts": 3}),
        ("later", [2], {"delay": 100, "expire": 300, "lax": True, "parents": [-1, 7]}),
    ])  # fmt: skip
    plain, busy, later = (_job(backend, job_id) for job_id in ids)

    assert (plain["task"], plain["args"], plain["priority"], plain["queue"]) == (
        "plain", [], 0, "default"
    )  # fmt: skip
    assert (plain["attempts"], plain["notes"], plain["parents"], plain["lax"]) == (1, {}, [], False)
    assert plain["expires"] is None
    assert plain["delayed"] == pytest.approx(plain["created"], abs=1e-3)

    assert (busy["priority"], busy["queue"], busy["notes"], busy["attempts"]) == (
        5, "q2", {"k": "v"}, 3
    )  # fmt: skip
    assert later["delayed"] - later["created"] == pytest.approx(100, abs=1e-3)
    assert later["expires"] is not None
    assert later["expires"] - later["created"] == pytest.approx(300, abs=1e-3)
    assert (later["lax"], later["parents"]) == (True, [-1, 7])
    assert backend.stats()["delayed_jobs"] == 1


def test_enqueue_many_of_nothing_inserts_nothing(backend: PgBackend, dsn: str) -> None:
    assert backend.enqueue_many([]) == []
    assert _rows_in_table(dsn) == 0


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        (("bad", "not a list", None), TypeError),
        (("bad", [], {"priority": "high"}), TypeError),
        (("bad", [], {"unknown": 1}), ValueError),
        (("", [], None), ValueError),
        (("bad", [], {"attempts": 0}), ValueError),
    ],
)
def test_enqueue_many_refuses_the_whole_batch_for_one_bad_item(
    backend: PgBackend, dsn: str, bad: tuple[Any, ...], error: type[Exception]
) -> None:
    with pytest.raises(error):
        backend.enqueue_many([("good", [1], None), bad, ("good", [2], None)])  # type: ignore[list-item]
    assert _rows_in_table(dsn) == 0
    assert backend.list_jobs(0, 10)["total"] == 0


def test_enqueue_many_is_one_statement_when_the_database_refuses_a_row(
    backend: PgBackend, dsn: str
) -> None:
    backend.enqueue("existing")
    execute(
        dsn,
        """
        CREATE FUNCTION refuse_explosives() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF NEW.task = 'explode' THEN RAISE EXCEPTION 'no explosives'; END IF;
          RETURN NEW;
        END $$
        """,
    )
    execute(
        dsn,
        "CREATE TRIGGER refuse_explosives BEFORE INSERT ON minion_jobs"
        " FOR EACH ROW EXECUTE FUNCTION refuse_explosives()",
    )
    with pytest.raises(BackendError, match="no explosives"):
        backend.enqueue_many([("fine", [], None), ("explode", [], None), ("fine", [], None)])
    assert _rows_in_table(dsn) == 1
    assert [job["task"] for job in backend.list_jobs(0, 10)["jobs"]] == ["existing"]


# Beyond Perl: enqueue inside the caller's transaction


def _create_orders(dsn: str) -> None:
    execute(dsn, "CREATE TABLE orders (id SERIAL PRIMARY KEY, item TEXT NOT NULL)")


def test_enqueue_on_the_callers_connection_rolls_back_with_it(backend: PgBackend, dsn: str) -> None:
    _create_orders(dsn)
    with psycopg.connect(dsn) as conn:
        conn.execute("INSERT INTO orders (item) VALUES ('book')")
        job_id = backend.enqueue("ship", ["book"], conn=conn)
        many = backend.enqueue_many([("mail", [], None), ("bill", [], None)], conn=conn)
        assert len(many) == 2
        assert _info(backend, job_id) is None  # not visible before the commit
        conn.rollback()

    assert _info(backend, job_id) is None
    assert _rows_in_table(dsn) == 0
    assert execute(dsn, "SELECT COUNT(*) FROM orders") == [(0,)]


def test_enqueue_on_the_callers_connection_commits_with_it(
    backend: PgBackend, dsn: str, worker: int
) -> None:
    _create_orders(dsn)
    with psycopg.connect(dsn) as conn:
        conn.execute("INSERT INTO orders (item) VALUES ('book')")
        job_id = backend.enqueue("ship", ["book"], {"priority": 4}, conn=conn)
        assert backend.dequeue(worker, 0) is None
        conn.commit()

    info = _job(backend, job_id)
    assert (info["task"], info["args"], info["priority"], info["state"]) == (
        "ship", ["book"], 4, "inactive"
    )  # fmt: skip
    assert execute(dsn, "SELECT item FROM orders") == [("book",)]
    assert _claim_id(backend, worker) == job_id


# Beyond Perl: fail and automatic retry in one transaction


def test_fail_job_with_attempts_left_fails_and_retries_in_one_transaction(
    backend: PgBackend, worker: int, dsn: str
) -> None:
    job_id = backend.enqueue("test", [], {"attempts": 2})
    assert _claim_id(backend, worker) == job_id
    # Record the transaction of every later row update of minion_jobs.
    execute(dsn, "CREATE TABLE job_audit (txid BIGINT, state TEXT, retries INT)")
    execute(
        dsn,
        """
        CREATE FUNCTION audit_job() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          INSERT INTO job_audit VALUES (txid_current(), NEW.state::text, NEW.retries);
          RETURN NULL;
        END $$
        """,
    )
    execute(
        dsn,
        "CREATE TRIGGER audit_job AFTER UPDATE ON minion_jobs"
        " FOR EACH ROW EXECUTE FUNCTION audit_job()",
    )

    assert backend.fail_job(job_id, 0, "oops")
    info = _job(backend, job_id)
    assert (info["state"], info["retries"], info["attempts"], info["result"]) == (
        "inactive", 1, 1, "oops"
    )  # fmt: skip
    audit = execute(dsn, "SELECT txid, state, retries FROM job_audit ORDER BY ctid")
    assert [(state, retries) for _, state, retries in audit] == [("failed", 0), ("inactive", 1)]
    assert audit[0][0] == audit[1][0]


# Beyond Perl: dequeue wakes up for a job enqueued meanwhile


def test_dequeue_with_a_wait_picks_up_a_job_enqueued_by_another_connection(
    backend: PgBackend, worker: int, dsn: str
) -> None:
    other = PgBackend(dsn, pooled=False)
    other.stats()  # connect and check the schema before the clock starts

    def enqueue_later() -> int:
        time.sleep(0.2)
        return other.enqueue("late", ["news"])

    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            started = time.monotonic()
            pending = pool.submit(enqueue_later)
            job = backend.dequeue(worker, 10)
            elapsed = time.monotonic() - started
            job_id = pending.result(timeout=30)
    finally:
        other.close()

    assert _claimed(job) == {"id": job_id, "args": ["news"], "retries": 0, "task": "late"}
    assert elapsed < 5, f"dequeue slept through the notification ({elapsed:.1f} s)"
    assert _job(backend, job_id)["state"] == "active"
