"""Fuzzing a worker's inbox: whatever arrives is applied or ignored, and the worker goes on.

The inbox is written by every peer on the database (Perl's admin UI and CLI, other programs),
so a registered in-process Worker gets anything JSON: Minion's commands with good and bad
arguments, unknown commands, entries that are not lists, nested junk. ``process_commands``
must never raise, and the worker's status must stay sane (``jobs`` and ``spare`` non-negative
integers, the registered row saying the same). A real forked job runs meanwhile, so ``kill``
and ``stop`` orders naming it take the real path to a process.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from helpers.fuzzing import FUZZ, json_values, storable_text
from helpers.waiting import wait_until
from hypothesis import example, given
from hypothesis import strategies as st
from psycopg.types.json import Jsonb

from minion_daemon import Minion
from minion_daemon.job import Job
from minion_daemon.worker import Worker

#: In one test process, with the module's one worker: its later tests check the worker the
#: fuzzing left behind.
pytestmark = pytest.mark.xdist_group("fuzz_inbox")

COMMANDS = ["jobs", "spare", "kill", "stop"]

#: Arguments Minion's commands take, right and wrong.
ARGUMENTS = [
    "NOPE", "x", "", "INT", "TERM", "KILL", "USR1", "USR2", "HUP", "SIGKILL", "kill", "0", "7",
    "-1", "1.5", " 1", "1 ", "+1", "0x10", "\u0663", "9" * 30, "9" * 4000, "9" * 5000, 0, 1, 7,
    -1, 1.5, 1e308, -1e308, 2**31, 2**63, 10**300, True, False, None, [], {}, [1], {"a": 1},
]  # fmt: skip

arguments = st.one_of(st.sampled_from(ARGUMENTS), json_values, st.integers())

#: Entries shaped as Minion's commands: a name, then arguments.
commands = st.tuples(
    st.sampled_from(COMMANDS) | storable_text, st.lists(arguments, max_size=4)
).map(lambda parts: [parts[0], *parts[1]])

#: Anything else JSON: not a list, an empty list, a list whose first element is no name.
other_entries = st.one_of(
    json_values,
    st.just([]),
    st.tuples(
        json_values | st.sampled_from([["jobs"], {"kill": 1}, 5, None]), st.lists(arguments)
    ).map(lambda parts: [parts[0], *parts[1]]),
)

inboxes = st.lists(commands | other_entries, min_size=1, max_size=6)

APPEND = (
    "UPDATE minion_workers SET inbox = inbox || jsonb_build_array(%(entry)s::jsonb)"
    " WHERE id = %(id)s"
)

#: Valid JSONB that Python's decoder refuses: past its limits on integer digits and on nesting.
UNDECODABLE = {
    "a number of 5001 digits": "UPDATE minion_workers SET inbox = inbox"
    " || jsonb_build_array(jsonb_build_array('jobs', ('1' || repeat('0', 5000))::numeric))"
    " WHERE id = %(id)s",
    "arrays nested 3000 deep": "UPDATE minion_workers SET inbox = inbox"
    " || jsonb_build_array((repeat('[', 3000) || repeat(']', 3000))::jsonb) WHERE id = %(id)s",
}


def _sleep(job: Job, seconds: float) -> None:
    time.sleep(seconds)


def _start_sleeping_job(minion: Minion, worker: Worker) -> Job:
    """A real job process of this worker, sleeping, as the worker's loop would start it."""
    job_id = minion.enqueue("sleep", [120])
    job = worker.dequeue(0, id=job_id)
    assert job is not None
    assert job.id == job_id
    worker.launch(job)

    def started() -> bool:
        worker.settle()
        return job.pid is not None

    wait_until(started, 10, "the job process to start")
    return job


def _ended(worker: Worker, job: Job) -> bool:
    worker.settle()
    return job.id not in worker.running


@pytest.fixture(scope="module")
def worker(module_minion: Minion) -> Iterator[Worker]:
    """A registered worker with a running job; the job process is killed afterwards."""
    module_minion.add_task("sleep", _sleep)
    worker = module_minion.worker(jobs=4, spare=1)
    worker.register()
    _start_sleeping_job(module_minion, worker)
    yield worker
    for job in list(worker.running.values()):
        worker.signal_job(job.id, signal.SIGKILL)
        wait_until(lambda job=job: _ended(worker, job), 10, f"job process {job.pid} to end")
    worker.close()
    worker.unregister()


@pytest.fixture(scope="module")
def conn(module_dsn: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(module_dsn, autocommit=True) as conn:
        yield conn


def _deliver(minion: Minion, conn: psycopg.Connection[Any], worker_id: int, entry: Any) -> None:
    """Put ``entry`` in the inbox: by ``broadcast`` where its shape allows, else as any peer
    with the database could (Perl's backend writes the same column)."""
    if isinstance(entry, list) and entry and isinstance(entry[0], str) and entry[0]:
        assert minion.broadcast(entry[0], entry[1:], [worker_id])
    else:
        conn.execute(APPEND, {"entry": Jsonb(entry), "id": worker_id})


def _assert_sane(minion: Minion, worker: Worker) -> None:
    for key in ("jobs", "spare"):
        value = worker.status[key]
        assert type(value) is int, (key, value)
        assert value >= 0, (key, value)
    info = worker.info
    assert info is not None
    assert info["status"] == worker.status
    assert minion.backend.receive(info["id"]) == []


@FUZZ
@given(entries=inboxes, orders=st.lists(st.sampled_from(["id", "text", "next"]), max_size=2))
@example(entries=[["kill", "NOPE", "x"], ["jobs", -1], ["stop", 1e308]], orders=[])
@example(entries=[["kill", ["INT"], 1], [["jobs"], 1], [{"a": 1}], ["jobs", "9" * 5000]], orders=[])
@example(entries=[["jobs", "3"], ["spare", 0], ["jobs", 10**300]], orders=["id"])
def test_any_inbox_entry_is_applied_or_ignored(
    module_minion: Minion,
    worker: Worker,
    conn: psycopg.Connection[Any],
    entries: list[Any],
    orders: list[str],
) -> None:
    assert worker.id is not None
    [job_id] = worker.running
    # USR1, which job processes ignore, to the running job: the orders reach a process.
    targets = {"id": job_id, "text": str(job_id), "next": job_id + 1}
    entries = [*entries, *(["kill", "USR1", targets[order]] for order in orders)]
    for entry in entries:
        _deliver(module_minion, conn, worker.id, entry)
    worker.process_commands()
    _assert_sane(module_minion, worker)


def test_the_worker_still_answers_after_the_fuzzing(
    module_minion: Minion, worker: Worker
) -> None:
    assert worker.id is not None
    module_minion.broadcast("jobs", [3], [worker.id])
    worker.process_commands()
    assert worker.status["jobs"] == 3
    assert worker.register() == worker.id
    assert all(job.pid is not None for job in worker.running.values())


def test_a_kill_order_reaches_a_running_job(module_minion: Minion, worker: Worker) -> None:
    """The orders above go to a live process: this one ends it, as Perl's would."""
    assert worker.id is not None
    job = _start_sleeping_job(module_minion, worker)
    module_minion.broadcast("kill", ["KILL", str(job.id)], [worker.id])
    worker.process_commands()
    wait_until(lambda: _ended(worker, job), 10, "the killed job process to end")
    info = job.info
    assert info is not None
    assert (info["state"], info["result"]) == (
        "failed", "Job terminated unexpectedly (exit code: 0, signal: 9)"
    )
    worker.register()  # the heartbeat that follows in a worker's loop: "performed" went up


@pytest.mark.parametrize("statement", UNDECODABLE.values(), ids=UNDECODABLE.keys())
def test_an_inbox_the_json_decoder_refuses_is_dropped(
    module_minion: Minion, worker: Worker, conn: psycopg.Connection[Any], statement: str
) -> None:
    """The worker drops the inbox it could not read, logs it, and answers the next command."""
    assert worker.id is not None
    conn.execute(statement, {"id": worker.id})  # type: ignore[arg-type]
    worker.process_commands()
    _assert_sane(module_minion, worker)
    module_minion.broadcast("spare", [5], [worker.id])
    worker.process_commands()
    assert worker.status["spare"] == 5
