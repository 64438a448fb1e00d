"""The worker registry and remote control of PgBackend, against a real PostgreSQL.

Checklist items 3-10 (registry, listings, paging) and 107-109, 147 (broadcast and receive). The
Worker class and the workers iterator do not exist yet, so the iterator items are checked on the
``list_workers`` calls an iterator makes: ``before`` set to the last id seen.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from typing import Any

import pytest
from helpers.sql import db_now, execute

from minion_daemon.backend import PgBackend
from minion_daemon.model import WorkerInfo

WORKER_FIELDS = {"id", "host", "pid", "status", "notified", "started", "jobs"}




def _worker(backend: PgBackend, worker_id: int) -> WorkerInfo | None:
    workers = backend.list_workers(0, 1, {"ids": [worker_id]})["workers"]
    return workers[0] if workers else None


def _ids(backend: PgBackend, offset: int, limit: int, options: Any = None) -> list[int]:
    return [worker["id"] for worker in backend.list_workers(offset, limit, options)["workers"]]


def _register(backend: PgBackend, count: int) -> list[int]:
    return [backend.register_worker() for _ in range(count)]


def _start_job(backend: PgBackend, worker_id: int, task: str = "test") -> int:
    """Enqueue a job and make it active on ``worker_id``; returns the job id."""
    job_id = backend.enqueue(task)
    job = backend.dequeue(worker_id, 0, {"id": job_id})
    assert job is not None
    assert job["id"] == job_id
    return job_id


def _inbox(dsn: str, worker_id: int) -> Any:
    return execute(dsn, "SELECT inbox FROM minion_workers WHERE id = %s", [worker_id])[0][0]


# Registry


def test_3_register_creates_a_worker_row_with_epoch_timestamps(
    backend: PgBackend, dsn: str
) -> None:
    before = db_now(dsn)
    worker_id = backend.register_worker()
    after = db_now(dsn)

    assert isinstance(worker_id, int)
    assert worker_id > 0
    info = _worker(backend, worker_id)
    assert info is not None
    assert set(info) == WORKER_FIELDS
    assert info["id"] == worker_id
    for key in ("started", "notified"):
        assert isinstance(info[key], float)
        assert before <= info[key] <= after
    assert info["status"] == {}
    assert info["jobs"] == []
    assert execute(dsn, "SELECT COUNT(*) FROM minion_workers")[0][0] == 1


def test_4_register_again_keeps_the_id_and_moves_notified_forward(
    backend: PgBackend, dsn: str
) -> None:
    worker_id = backend.register_worker()
    first = _worker(backend, worker_id)
    assert first is not None
    # Age the heartbeat, so that "forward" does not depend on how fast the clock moves.
    execute(
        dsn,
        "UPDATE minion_workers SET notified = notified - INTERVAL '1 hour' WHERE id = %s",
        [worker_id],
    )
    aged = _worker(backend, worker_id)
    assert aged is not None
    assert aged["notified"] == pytest.approx(first["notified"] - 3600, abs=0.01)

    assert backend.register_worker(worker_id) == worker_id
    again = _worker(backend, worker_id)
    assert again is not None
    assert again["notified"] >= first["notified"]
    assert again["notified"] > aged["notified"] + 3000
    assert again["started"] == first["started"]
    assert execute(dsn, "SELECT COUNT(*) FROM minion_workers")[0][0] == 1


def test_4_heartbeat_keeps_host_pid_and_started_of_the_first_registration(
    backend: PgBackend, dsn: str
) -> None:
    worker_id = backend.register_worker()
    execute(
        dsn,
        "UPDATE minion_workers SET host = 'elsewhere', pid = 1,"
        " started = started - INTERVAL '1 day' WHERE id = %s",
        [worker_id],
    )
    backend.register_worker(worker_id, {"status": {"n": 1}})
    info = _worker(backend, worker_id)
    assert info is not None
    assert (info["host"], info["pid"], info["status"]) == ("elsewhere", 1, {"n": 1})
    assert info["notified"] - info["started"] >= 86400 - 60


def test_5_unregister_deletes_the_row_and_a_new_registration_has_host_and_pid(
    backend: PgBackend, dsn: str
) -> None:
    worker_id = backend.register_worker()
    backend.unregister_worker(worker_id)
    assert _worker(backend, worker_id) is None
    assert execute(dsn, "SELECT COUNT(*) FROM minion_workers")[0][0] == 0

    new_id = backend.register_worker()
    assert new_id != worker_id
    info = _worker(backend, new_id)
    assert info is not None
    assert info["host"] == socket.gethostname()
    assert info["pid"] == os.getpid()
    backend.unregister_worker(new_id)
    assert _worker(backend, new_id) is None
    # Unregistering a worker that is already gone is harmless.
    backend.unregister_worker(new_id)
    assert backend.list_workers(0, 10)["total"] == 0


def test_5_a_reaped_worker_comes_back_with_its_id_at_the_next_heartbeat(
    backend: PgBackend, dsn: str
) -> None:
    worker_id = backend.register_worker(None, {"status": {"jobs": 4}})
    execute(
        dsn,
        "UPDATE minion_workers SET notified = NOW() - INTERVAL '1 day' WHERE id = %s",
        [worker_id],
    )
    assert backend.repair().workers_removed == 1
    assert _worker(backend, worker_id) is None

    assert backend.register_worker(worker_id, {"status": {"jobs": 4}}) == worker_id
    info = _worker(backend, worker_id)
    assert info is not None
    assert info["host"] == socket.gethostname()
    assert info["pid"] == os.getpid()
    assert info["status"] == {"jobs": 4}
    assert db_now(dsn) - info["notified"] < 600


def test_6_two_workers_get_different_ids(backend: PgBackend) -> None:
    first, second = _register(backend, 2)
    assert first != second
    assert second > first
    assert _ids(backend, 0, 10) == [second, first]


# Listing


def test_7_list_workers_has_total_and_orders_newest_first(backend: PgBackend) -> None:
    assert backend.list_workers(0, 10) == {"workers": [], "total": 0}
    first, second = _register(backend, 2)

    listed = backend.list_workers(0, 10)
    assert listed["total"] == 2
    assert [worker["id"] for worker in listed["workers"]] == [second, first]
    for worker in listed["workers"]:
        assert set(worker) == WORKER_FIELDS
        assert worker["host"] == socket.gethostname()
        assert worker["pid"] == os.getpid()
        assert isinstance(worker["started"], float)
        assert isinstance(worker["notified"], float)


def test_7_list_workers_supports_offset_and_limit(backend: PgBackend) -> None:
    first, second, third = _register(backend, 3)

    page = backend.list_workers(0, 1)
    assert page["total"] == 3
    assert [worker["id"] for worker in page["workers"]] == [third]
    page = backend.list_workers(1, 1)
    assert page["total"] == 3
    assert [worker["id"] for worker in page["workers"]] == [second]
    assert _ids(backend, 1, 5) == [second, first]
    assert _ids(backend, 2, 1) == [first]
    assert _ids(backend, 3, 1) == []
    assert _ids(backend, 0, 0) == []


def test_7_list_workers_status_is_as_given_and_updated_by_every_registration(
    backend: PgBackend,
) -> None:
    plain = backend.register_worker()
    status: dict[str, Any] = {"whatever": "works!", "queues": ["a", "b"], "jobs": 4}
    busy = backend.register_worker(None, {"status": status})
    listed = backend.list_workers(0, 10)["workers"]
    assert [(worker["id"], worker["status"]) for worker in listed] == [(busy, status), (plain, {})]

    backend.register_worker(busy, {"status": {"whatever": "works too!"}})
    info = _worker(backend, busy)
    assert info is not None
    assert info["status"] == {"whatever": "works too!"}
    # A heartbeat without a status stores an empty one, as Perl's register does.
    backend.register_worker(busy)
    info = _worker(backend, busy)
    assert info is not None
    assert info["status"] == {}


def test_7_list_workers_jobs_holds_the_ids_of_active_jobs_only(backend: PgBackend) -> None:
    worker, other = _register(backend, 2)
    first = _start_job(backend, worker)
    second = _start_job(backend, worker)
    done = _start_job(backend, worker)
    assert backend.finish_job(done, 0, "ok")
    elsewhere = _start_job(backend, other)
    backend.enqueue("waiting")

    info = _worker(backend, worker)
    assert info is not None
    assert sorted(info["jobs"]) == [first, second]
    info = _worker(backend, other)
    assert info is not None
    assert info["jobs"] == [elsewhere]

    assert backend.fail_job(first, 0, "broken")
    info = _worker(backend, worker)
    assert info is not None
    assert info["jobs"] == [second]


def test_8_paging_with_a_before_cursor_returns_every_worker_newest_first(
    backend: PgBackend,
) -> None:
    registered = _register(backend, 5)
    assert registered == [1, 2, 3, 4, 5]

    seen: list[int] = []
    pages: list[list[int]] = []
    options: dict[str, Any] = {}
    while True:
        page = _ids(backend, 0, 2, options)
        if not page:
            break
        pages.append(page)
        seen.extend(page)
        options["before"] = page[-1]
    assert pages == [[5, 4], [3, 2], [1]]
    assert seen == [5, 4, 3, 2, 1]
    assert backend.list_workers(0, 2, {"before": 4})["total"] == 3


def test_9_filtering_by_ids_returns_only_those_newest_first(backend: PgBackend) -> None:
    _register(backend, 5)
    listed = backend.list_workers(0, 10, {"ids": [2, 4, 1]})
    assert [worker["id"] for worker in listed["workers"]] == [4, 2, 1]
    assert listed["total"] == 3
    assert _ids(backend, 0, 10, {"ids": [4, 99]}) == [4]
    assert backend.list_workers(0, 10, {"ids": []}) == {"workers": [], "total": 0}
    assert _ids(backend, 0, 10, {"ids": [2, 4, 1], "before": 4}) == [2, 1]


def test_10_total_reflects_rows_deleted_between_pages(backend: PgBackend) -> None:
    _register(backend, 5)
    first_page = backend.list_workers(0, 2)
    assert [worker["id"] for worker in first_page["workers"]] == [5, 4]
    assert first_page["total"] == 5

    backend.unregister_worker(3)
    second_page = backend.list_workers(0, 2, {"before": 4})
    assert [worker["id"] for worker in second_page["workers"]] == [2, 1]
    # An iterator's total after this batch: what remains before the cursor plus what it saw.
    assert second_page["total"] + len(first_page["workers"]) == 4

    backend.unregister_worker(5)
    backend.unregister_worker(4)
    fresh = backend.list_workers(0, 2)
    assert fresh["total"] == 2
    assert [worker["id"] for worker in fresh["workers"]] == [2, 1]


# Remote control


def test_107_broadcast_to_ids_reaches_only_those_workers(backend: PgBackend, dsn: str) -> None:
    first, second, third = _register(backend, 3)

    assert backend.broadcast("test_id", [], [first, third]) is True
    assert _inbox(dsn, second) == []
    assert _inbox(dsn, first) == [["test_id"]]
    assert backend.receive(first) == [["test_id"]]
    assert backend.receive(second) == []
    assert backend.receive(third) == [["test_id"]]
    # Receiving empties the inbox.
    assert backend.receive(first) == []
    assert _inbox(dsn, first) == []
    assert _inbox(dsn, third) == []


def test_107_broadcast_without_ids_or_with_an_empty_list_reaches_every_worker(
    backend: PgBackend, dsn: str
) -> None:
    workers = _register(backend, 3)

    assert backend.broadcast("first") is True
    assert backend.broadcast("second", [1], []) is True
    assert backend.broadcast("third", ["x"], None) is True
    for worker_id in workers:
        assert _inbox(dsn, worker_id) == [["first"], ["second", 1], ["third", "x"]]
    for worker_id in workers:
        assert backend.receive(worker_id) == [["first"], ["second", 1], ["third", "x"]]
        assert backend.receive(worker_id) == []


def test_107_commands_arrive_in_the_order_they_were_sent(backend: PgBackend) -> None:
    worker_id = backend.register_worker()
    for number in range(5):
        assert backend.broadcast(f"command{number}", [number], [worker_id])
    assert backend.receive(worker_id) == [[f"command{number}", number] for number in range(5)]

    backend.broadcast("later", [], [worker_id])
    assert backend.receive(worker_id) == [["later"]]


def test_107_receive_on_an_empty_inbox_or_unknown_worker_is_an_empty_list(
    backend: PgBackend,
) -> None:
    worker_id = backend.register_worker()
    assert backend.receive(worker_id) == []
    assert backend.receive(worker_id + 100) == []


def test_108_arguments_are_passed_through_unchanged(backend: PgBackend, dsn: str) -> None:
    worker_id = backend.register_worker()
    args: list[Any] = [
        1,
        -2.5,
        "two",
        "",
        "ünïcödé ✓",
        [3, [4, None]],
        {"five": {"six": None, "seven": [7]}},
        None,
        True,
        False,
        {},
        [],
    ]
    assert backend.broadcast("mixed", args, [worker_id])
    assert backend.broadcast("jobs", [0], [worker_id])
    assert backend.broadcast("unknown_command", [], [worker_id])

    stored = _inbox(dsn, worker_id)
    assert stored == [["mixed", *args], ["jobs", 0], ["unknown_command"]]
    received = backend.receive(worker_id)
    assert received == [["mixed", *args], ["jobs", 0], ["unknown_command"]]
    # JSON types survive exactly: booleans stay booleans, not 1/0.
    assert received[0][9] is True
    assert received[0][10] is False
    assert isinstance(received[1][1], int)
    assert not isinstance(received[1][1], bool)


def test_108_broadcast_keeps_an_inbox_an_array_of_arrays(backend: PgBackend, dsn: str) -> None:
    worker_id = backend.register_worker()
    backend.broadcast("stop")
    backend.broadcast("kill", ["INT", 10025])
    assert execute(
        dsn,
        "SELECT jsonb_typeof(inbox), jsonb_typeof(inbox->0), jsonb_typeof(inbox->1)"
        " FROM minion_workers WHERE id = %s",
        [worker_id],
    ) == [("array", "array", "array")]
    assert backend.receive(worker_id) == [["stop"], ["kill", "INT", 10025]]


def test_109_broadcast_with_no_workers_is_false(backend: PgBackend) -> None:
    assert backend.broadcast("jobs", [0]) is False
    assert backend.broadcast("jobs", [0], []) is False
    worker_id = backend.register_worker()
    assert backend.broadcast("jobs", [0], [worker_id + 1]) is False
    assert backend.receive(worker_id) == []
    backend.unregister_worker(worker_id)
    assert backend.broadcast("stop") is False


def test_147_broadcast_without_workers_and_retry_of_a_missing_job_are_false(
    backend: PgBackend,
) -> None:
    assert backend.broadcast("stop") is False
    assert backend.retry_job(12345, 0) is False
    job_id = backend.enqueue("test")
    assert backend.retry_job(job_id, 1) is False
    assert backend.retry_job(job_id, 0) is True


def test_107_no_command_is_lost_while_broadcasts_race_with_receive(
    backend: PgBackend, dsn: str
) -> None:
    worker_id = backend.register_worker()
    senders = [PgBackend(dsn, min_size=0, max_size=1) for _ in range(2)]
    count = 100

    def send(sender: PgBackend, name: str) -> None:
        for number in range(count):
            sender.broadcast(name, [number], [worker_id])

    threads = [
        threading.Thread(target=send, args=(sender, f"sender{index}"))
        for index, sender in enumerate(senders)
    ]
    received: list[list[Any]] = []
    try:
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 120
        while len(received) < 2 * count and time.monotonic() < deadline:
            received.extend(backend.receive(worker_id))
        for thread in threads:
            thread.join()
    finally:
        for sender in senders:
            sender.close()
    received.extend(backend.receive(worker_id))

    for index in range(2):
        mine = [args for name, *args in received if name == f"sender{index}"]
        assert mine == [[number] for number in range(count)]
    assert len(received) == 2 * count
    assert _inbox(dsn, worker_id) == []
