"""Jobs in forked processes: the outcome matrix of SPEC §3.3, events, task classes, foreground.

Real fork, real PostgreSQL: each job runs in a child process that opens its own connection.
"""

from __future__ import annotations

import ctypes
import faulthandler
import os
import signal
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from helpers.processes import gone
from helpers.sql import execute

from minion_daemon import Minion
from minion_daemon.backend import PgBackend
from minion_daemon.job import Job
from minion_daemon.minion import ForegroundError
from minion_daemon.worker import Worker


@pytest.fixture
def minion(dsn: str) -> Iterator[Minion]:
    minion = Minion(PgBackend(dsn, min_size=0, max_size=2))
    yield minion
    minion.close()


def _add(job: Job, first: int, second: int) -> None:
    job.finish({"added": first + second})


#: The worker that claimed each job, which runs it.
_WORKERS: dict[int, Worker] = {}


def _dequeue_one(
    minion: Minion, *, listeners: dict[str, Any] | None = None, **options: Any
) -> Job:
    """Claim one job. ``listeners`` are attached to it the way that reaches its job process
    (``worker.on("dequeue", ...)`` before the worker starts its fork server)."""
    worker = minion.worker()
    for event, listener in (listeners or {}).items():
        worker.on("dequeue", lambda _, job, event=event, listener=listener: job.on(event, listener))
    worker.register()
    job = worker.dequeue(0, **options)
    assert job is not None
    _WORKERS[job.id] = worker
    return job


def _perform(job: Job) -> Job:
    """Run the job in a process of its own, to its end, and record its outcome."""
    worker = _WORKERS.pop(job.id)
    try:
        worker.perform(job)
    finally:
        worker.close()
    return job


def _start(job: Job) -> Job:
    _WORKERS[job.id].launch(job)
    return job


def _ended(job: Job) -> bool:
    worker = _WORKERS[job.id]
    worker.settle()
    if job.id in worker.running:
        return False
    worker.close()
    return True


def _state(minion: Minion, job_id: int) -> tuple[str, Any]:
    info = minion.backend.list_jobs(0, 1, {"ids": [job_id]})["jobs"]
    assert info, f"job {job_id} is gone"
    return info[0]["state"], info[0]["result"]


def test_56_perform_runs_the_task_in_another_process(minion: Minion) -> None:
    minion.add_task("add", _add)
    job_id = minion.enqueue("add", [2, 2])
    job = _dequeue_one(minion)
    _perform(job)
    assert _state(minion, job_id) == ("finished", {"added": 4})
    assert minion.backend.list_jobs(0, 1, {"ids": [job_id]})["jobs"][0]["finished"] is not None
    assert minion.backend.list_workers(0, 10)["workers"][0]["jobs"] == []


def test_72_enqueue_worker_and_dequeue_events(minion: Minion) -> None:
    seen: list[Any] = []
    minion.on("enqueue", lambda _, job_id: seen.append(("enqueue", job_id)))
    minion.on("worker", lambda _, worker: worker.on("dequeue", lambda _w, j: seen.append(j.id)))
    minion.add_task("add", _add)
    job_id = minion.enqueue("add", [1, 1])
    _dequeue_one(minion)
    assert seen == [("enqueue", job_id), job_id]


def test_73_finished_is_emitted_once_by_the_process_that_finished(minion: Minion) -> None:
    minion.add_task("add", _add)
    minion.enqueue("add", [3, 4])
    job = _dequeue_one(minion)
    finished: list[Any] = []
    job.on("finished", lambda _, result: finished.append(result))
    _perform(job)
    assert finished == [], "the child finished it; the parent's finish() was a no-op"
    nothing = minion.enqueue("add_nothing")
    minion.add_task("add_nothing", lambda job: None)
    job = _dequeue_one(minion, id=nothing)
    job.on("finished", lambda _, result: finished.append(result))
    _perform(job)
    assert finished == [None]


def test_74_spawn_and_reap_carry_the_job_pid(minion: Minion) -> None:
    minion.add_task("add", _add)
    minion.enqueue("add", [1, 2])
    job = _dequeue_one(minion)
    pids: dict[str, int] = {}
    job.on("spawn", lambda _, pid: pids.setdefault("spawn", pid))
    job.on("reap", lambda _, pid: pids.setdefault("reap", pid))
    _perform(job)
    assert pids["spawn"] == pids["reap"] != os.getpid()


def test_75_failed_event_and_second_fail_is_false(minion: Minion) -> None:
    minion.add_task("add", _add)
    minion.enqueue("add", [1, 2])
    job = _dequeue_one(minion)
    failed: list[Any] = []
    job.on("failed", lambda _, error: failed.append(error))
    assert job.fail("Something bad happened!")
    assert not job.fail("again")
    assert failed == ["Something bad happened!"]


def test_76_a_start_listener_in_the_child_may_change_task_and_args(minion: Minion) -> None:
    minion.add_task("add", _add)
    minion.add_task("switcheroo", lambda job, *args: job.finish("wrong"))
    job_id = minion.enqueue("switcheroo", [5])

    def switch(job: Job) -> None:
        job.task, job.args = "add", [5, 4]

    job = _dequeue_one(minion, listeners={"start": switch})
    _perform(job)
    assert _state(minion, job_id) == ("finished", {"added": 9})


def test_77_finish_and_cleanup_run_in_the_child(minion: Minion) -> None:
    minion.add_task("add", _add)
    job_id = minion.enqueue("add", [1, 1], notes={"before": 23})
    job = _dequeue_one(
        minion,
        listeners={
            "finish": lambda j: j.note(finish_pid=os.getpid()),
            "cleanup": lambda j: j.note(cleanup_pid=os.getpid()),
        },
    )
    _perform(job)
    notes = minion.backend.list_jobs(0, 1, {"ids": [job_id]})["jobs"][0]["notes"]
    assert notes["before"] == 23
    assert notes["finish_pid"] == notes["cleanup_pid"] == notes["minion_pid"] != os.getpid()


def test_78_fail_without_argument_stores_unknown_error(minion: Minion) -> None:
    minion.add_task("add", _add)
    job_id = minion.enqueue("add", [1, 1])
    job = _dequeue_one(minion)
    assert job.fail()
    assert _state(minion, job_id) == ("failed", "Unknown error")
    assert not job.finish()


def _raises(job: Job) -> None:
    raise RuntimeError("Intentional failure!")


def test_80_an_exception_stores_message_then_traceback(minion: Minion) -> None:
    minion.add_task("raises", _raises)
    job_id = minion.enqueue("raises")
    _perform(_dequeue_one(minion))
    state, result = _state(minion, job_id)
    assert state == "failed"
    assert result.startswith("RuntimeError: Intentional failure!\n\nTraceback (most recent call")
    assert 'raise RuntimeError("Intentional failure!")' in result


def _segfault(job: Job) -> None:
    faulthandler.disable()  # pytest's handler would print the crash into the test report
    ctypes.string_at(0)


@pytest.mark.parametrize(
    ("task", "expected"),
    [
        (lambda job: os._exit(1), "Job terminated unexpectedly (exit code: 1, signal: 0)"),
        (lambda job: os._exit(3), "Job terminated unexpectedly (exit code: 3, signal: 0)"),
        (lambda job: sys.exit(4), "Job terminated unexpectedly (exit code: 4, signal: 0)"),
        (
            lambda job: os.kill(os.getpid(), signal.SIGKILL),
            "Job terminated unexpectedly (exit code: 0, signal: 9)",
        ),
        (_segfault, "Job terminated unexpectedly (exit code: 0, signal: 11)"),
    ],
    ids=["exit-1", "os-exit-3", "sys-exit-4", "sigkill", "segfault"],
)
def test_81_abnormal_exits_fail_with_code_and_signal(
    minion: Minion, task: Any, expected: str
) -> None:
    minion.add_task("dies", task)
    job_id = minion.enqueue("dies")
    _perform(_dequeue_one(minion))
    assert _state(minion, job_id) == ("failed", expected)


def _sleeps(job: Job, seconds: float) -> None:
    time.sleep(seconds)


def test_82_stop_kills_usr_signals_are_ignored_int_kills(minion: Minion) -> None:
    minion.add_task("sleeps", _sleeps)
    first = minion.enqueue("sleeps", [60])
    job = _start(_dequeue_one(minion))
    for signum in (signal.SIGUSR1, signal.SIGUSR2):
        assert _WORKERS[job.id].signal_job(job.id, signum)
    time.sleep(0.3)
    assert not _ended(job), "USR1 and USR2 are ignored by default"
    _WORKERS[job.id].signal_job(job.id, signal.SIGKILL)
    _wait_finished(job)
    killed = "Job terminated unexpectedly (exit code: 0, signal: 9)"
    assert _state(minion, first) == ("failed", killed)
    second = minion.enqueue("sleeps", [60])
    job = _start(_dequeue_one(minion))
    _WORKERS[job.id].signal_job(job.id, signal.SIGINT)
    _wait_finished(job)
    interrupted = "Job terminated unexpectedly (exit code: 0, signal: 2)"
    assert _state(minion, second) == ("failed", interrupted)


def _wait_finished(job: Job, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not _ended(job):
        assert time.monotonic() < deadline, "job process did not end"
        time.sleep(0.05)


def test_83_concurrent_jobs_are_all_reaped_and_none_result_is_null(minion: Minion) -> None:
    minion.add_task("quiet", lambda job: None)
    ids = [minion.enqueue("quiet") for _ in range(4)]
    worker = minion.worker()
    worker.register()
    started = []
    for _ in ids:
        job = worker.dequeue(0)
        assert job is not None
        worker.launch(job)
        started.append(job)
    deadline = time.monotonic() + 30
    while worker.running:
        assert time.monotonic() < deadline, "job processes did not end"
        time.sleep(0.05)
        worker.settle()
    pids = [job.pid for job in started]
    worker.close()
    assert [_state(minion, job_id) for job_id in ids] == [("finished", None)] * 4
    assert all(pid is not None and gone(pid) for pid in pids), "every job process was reaped"


def test_84_minion_pid_note_is_the_job_process(minion: Minion) -> None:
    minion.add_task("add", _add)
    job_id = minion.enqueue("add", [1, 2])
    job = _dequeue_one(minion)
    _perform(job)
    notes = minion.backend.list_jobs(0, 1, {"ids": [job_id]})["jobs"][0]["notes"]
    assert notes["minion_pid"] == job.pid != os.getpid()


def test_returned_value_is_the_result_unless_the_task_finished(minion: Minion) -> None:
    minion.add_task("returns", lambda job, value: {"got": value})
    minion.add_task("both", lambda job: job.finish("mine") and "ignored")
    returned, both = minion.enqueue("returns", ["x"]), minion.enqueue("both")
    minion.perform_jobs()
    assert _state(minion, returned) == ("finished", {"got": "x"})
    assert _state(minion, both) == ("finished", "mine")


class AddJob(Job):
    def run(self, first: int, second: int) -> Any:
        return {"added": first + second, "class": type(self).__name__}


class NoRunJob(Job):
    pass


class FailingJob(Job):
    def run(self) -> None:
        self.fail("Subclass failed on purpose")


def test_98_100_task_classes(minion: Minion) -> None:
    minion.add_task("add_class", AddJob).add_task("also_add", AddJob)
    minion.add_task("no_run", NoRunJob).add_task("failing", FailingJob)
    minion.add_task("closure", _add)
    assert minion.class_for_task("add_class") is AddJob is minion.class_for_task("also_add")
    assert minion.class_for_task("closure") is Job is minion.class_for_task("unknown")
    added = minion.enqueue("add_class", [3, 4])
    no_run, failing = minion.enqueue("no_run"), minion.enqueue("failing")
    job = minion.job(added)
    assert isinstance(job, AddJob)
    minion.perform_jobs()
    assert _state(minion, added) == ("finished", {"added": 7, "class": "AddJob"})
    state, result = _state(minion, no_run)
    assert state == "failed"
    assert 'Method "run" not implemented by subclass' in result
    assert _state(minion, failing) == ("failed", "Subclass failed on purpose")


def _record_pid(job: Job) -> None:
    job.finish(os.getpid())


def _just_a_test(job: Job) -> None:
    raise ValueError("Just a test")


def test_101_perform_jobs_forks_and_in_foreground_does_not(minion: Minion) -> None:
    minion.add_task("pid", _record_pid).add_task("fails", _just_a_test)
    forked = [minion.enqueue("pid") for _ in range(2)]
    minion.perform_jobs()
    pids = {_state(minion, job_id)[1] for job_id in forked}
    assert len(pids) == 2
    assert os.getpid() not in pids
    here = [minion.enqueue("pid") for _ in range(2)]
    failing = minion.enqueue("fails")
    minion.perform_jobs_in_foreground()
    assert {_state(minion, job_id)[1] for job_id in here} == {os.getpid()}
    state, result = _state(minion, failing)
    assert state == "failed"
    assert "Just a test" in result
    assert minion.stats()["workers"] == 0


def test_103_foreground_of_missing_or_blocked_job_is_false(minion: Minion) -> None:
    minion.add_task("add", _add)
    assert minion.foreground(12345) is False
    parent = minion.enqueue("add", [1, 1])
    child = minion.enqueue("add", [2, 2], parents=[parent])
    assert minion.foreground(child) is False


def test_104_foreground_runs_in_minion_foreground_queue(minion: Minion) -> None:
    minion.add_task("add", _add)
    parent = minion.enqueue("add", [1, 1], attempts=2)
    child = minion.enqueue("add", [2, 2], parents=[parent])
    assert minion.foreground(parent) is True
    info = minion.backend.list_jobs(0, 1, {"ids": [parent]})["jobs"][0]
    assert (info["attempts"], info["retries"], info["queue"], info["state"]) == (
        1, 1, "minion_foreground", "finished",
    )
    assert minion.foreground(child) is True
    assert _state(minion, child) == ("finished", {"added": 4})


def test_105_failing_foreground_reraises_and_unregisters(minion: Minion) -> None:
    minion.add_task("fails", _just_a_test)
    job_id = minion.enqueue("fails")
    with pytest.raises(ForegroundError, match="Just a test"):
        minion.foreground(job_id)
    info = minion.backend.list_jobs(0, 1, {"ids": [job_id]})["jobs"][0]
    assert (info["state"], info["retries"], info["queue"]) == ("failed", 1, "minion_foreground")
    assert info["worker"] is not None
    assert minion.stats()["workers"] == 0


def test_26_27_guard_releases_on_exit_and_a_check_never_releases(minion: Minion) -> None:
    guard = minion.guard("foo", 3600)
    assert guard is not None
    with guard:
        assert minion.is_locked("foo")
        assert minion.guard("foo", 3600) is None
    assert not minion.is_locked("foo")
    with pytest.raises(RuntimeError), minion.guard("bar", 3600) or pytest.fail("no guard"):
        raise RuntimeError("released anyway")
    assert not minion.is_locked("bar")
    assert minion.lock("baz", 3600, limit=2)
    check = minion.guard("baz", 0, limit=2)
    assert check is not None
    with check:
        pass
    assert minion.is_locked("baz")


def test_result_waits_for_the_outcome(minion: Minion) -> None:
    minion.add_task("add", _add)
    job_id = minion.enqueue("add", [20, 22])
    with pytest.raises(TimeoutError):
        minion.result(job_id, timeout=0.2, interval=0.05)
    minion.perform_jobs()
    info = minion.result(job_id, timeout=10)
    assert info is not None
    assert info["result"] == {"added": 42}
    assert minion.result(999999, timeout=1) is None


def test_146_a_worker_never_dequeues_a_task_it_has_not_registered(minion: Minion) -> None:
    minion.add_task("add", _add)
    unknown = minion.enqueue("unknown_here", [], priority=10)
    known = minion.enqueue("add", [1, 1])
    worker = minion.worker()
    worker.register()
    job = worker.dequeue(0)
    assert job is not None
    assert job.id == known
    assert worker.dequeue(0) is None
    assert _state(minion, unknown) == ("inactive", None)
    worker.unregister()
    assert worker.dequeue(0) is None, "an unregistered worker dequeues nothing (checklist 6)"


def test_117_a_single_process_worker_loop_with_dequeue_and_execute(minion: Minion) -> None:
    minion.add_task("add", _add).add_task("fails", _just_a_test)
    added, failing = minion.enqueue("add", [1, 2]), minion.enqueue("fails")
    worker = minion.worker()
    worker.register()
    while (job := worker.dequeue(0)) is not None:
        error = job.execute()
        if error is None:
            job.finish(job.result)
        else:
            job.fail(f"Error: {error.splitlines()[0]}")
    worker.unregister()
    assert _state(minion, failing) == ("failed", "Error: ValueError: Just a test")
    assert _state(minion, added) == ("finished", {"added": 3}), "the loop's finish() was late"


def test_52_8_iterators_and_91_parents_and_children_through_the_facade(minion: Minion) -> None:
    first = minion.enqueue("add", [1, 1])
    second = minion.enqueue("add", [2, 2])
    child = minion.enqueue("add", [3, 3], parents=[first, second])
    listing = minion.jobs(fetch=2, tasks=["add"])
    assert [info["id"] for info in listing] == [child, second, first]
    assert listing.total == 3
    assert listing.options["before"] == first
    job = minion.job(child)
    assert job is not None
    assert sorted(parent.id for parent in job.parents) == [first, second]
    parent = minion.job(first)
    assert parent is not None
    assert [kid.id for kid in parent.children] == [child]
    workers = [minion.worker() for _ in range(3)]
    for worker in workers:
        worker.register()
    assert [info["id"] for info in minion.workers(fetch=2)] == sorted(
        (worker.id for worker in workers if worker.id is not None), reverse=True
    )


def test_37_dispatch_emits_enqueue_and_enqueue_from_schedule(minion: Minion, dsn: str) -> None:
    events: list[tuple[str, Any]] = []
    minion.on("enqueue", lambda _, job_id: events.append(("enqueue", job_id)))
    minion.on("enqueue_from_schedule", lambda _, job_id, name: events.append((name, job_id)))
    minion.schedule("nightly", "* * * * *", "add", [1, 2])
    execute(dsn, "UPDATE minion_schedules SET next_run = NOW() - INTERVAL '1 minute'")
    dispatched = minion.dispatch_schedules()
    assert [entry["name"] for entry in dispatched] == ["nightly"]
    job_id = dispatched[0]["job"]
    assert events == [("enqueue", job_id), ("nightly", job_id)]


def test_108_custom_commands_unknown_ones_and_failing_ones(
    minion: Minion, caplog: pytest.LogCaptureFixture
) -> None:
    heard: list[Any] = []
    worker = minion.worker()
    worker.register()

    def hello(target: Any, *args: Any) -> None:
        heard.append((target is worker, args))
        target.status["greeted"] = True

    def broken(target: Any, *args: Any) -> None:
        raise RuntimeError("bad command")

    worker.add_command("hello", hello)
    worker.add_command("broken", broken)
    minion.broadcast("broken", [1])
    minion.broadcast("nobody_knows", [2])
    minion.broadcast("hello", [3, {"nested": [4]}])
    worker.process_commands()
    assert heard == [(True, (3, {"nested": [4]}))]
    assert "worker.command_failed" in caplog.text
    info = worker.info
    assert info is not None
    assert info["status"]["greeted"] is True, "a command that ran registers the status at once"
    worker.unregister()


# The hand-over: a job process passes its task's result or error to its worker through a
# pipe, and the worker records it; what does not fit, the job process records itself.


def _returns(size: int) -> Any:
    def task(job: Job) -> dict[str, Any]:
        return {"pid": os.getpid(), "padding": "x" * size}

    return task


@pytest.mark.parametrize("size", [10, 200_000], ids=["handed-over", "recorded-by-the-child"])
def test_a_returned_result_is_recorded_whatever_its_size(minion: Minion, size: int) -> None:
    minion.add_task("returns", _returns(size))
    job_id = minion.enqueue("returns")
    job = _dequeue_one(minion)
    finished: list[Any] = []
    job.on("finished", lambda _, result: finished.append(result))
    _perform(job)
    state, result = _state(minion, job_id)
    assert (state, result["pid"], len(result["padding"])) == ("finished", job.pid, size)
    assert job.outcome == "finished"
    # Emitted by the process whose finish succeeded: the worker's, when it was handed over.
    assert finished == ([result] if size < 60_000 else [])


def _divides_by_zero(job: Job) -> None:
    print(1 / 0)


def _raises_large(job: Job) -> None:
    raise RuntimeError("y" * 100_000)


@pytest.mark.parametrize(
    ("task", "start"),
    [(_divides_by_zero, "ZeroDivisionError"), (_raises_large, "RuntimeError: yyy")],
    ids=["handed-over", "recorded-by-the-child"],
)
def test_an_error_is_recorded_whatever_its_size(minion: Minion, task: Any, start: str) -> None:
    minion.add_task("raises", task)
    job_id = minion.enqueue("raises")
    job = _dequeue_one(minion)
    _perform(job)
    state, result = _state(minion, job_id)
    assert (state, result.startswith(start), job.outcome) == ("failed", True, "failed")


def test_a_result_that_cannot_be_stored_fails_the_job_with_the_reason(minion: Minion) -> None:
    minion.add_task("nan", lambda job: float("nan"))
    job_id = minion.enqueue("nan")
    _perform(_dequeue_one(minion))
    assert _state(minion, job_id) == (
        "failed",
        "Result cannot be stored as JSON: result holds nan, which JSON cannot represent",
    )
