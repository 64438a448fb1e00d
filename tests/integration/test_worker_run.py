"""``Worker.run`` as a real process: its loop, signals, remote control, spare slots and limits.

Each test starts ``tests/helpers/run_worker.py`` as a subprocess, so the worker owns its main
thread and its signal handlers as a deployed one does, against a real PostgreSQL. The test
process enqueues, broadcasts and reads the database through its own :class:`Minion`, and sends
real signals to the worker's pid. Checklist items 41, 111-114 and 116 (SPEC §6), plus the
behaviour of SPEC §4.2-4.5 and the port's own additions (wakeups, timeouts, inline tasks,
surviving a database outage).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.async_tasks import TASKS as ASYNC_TASKS
from helpers.sql import execute
from helpers.waiting import wait_until
from helpers.worker_tasks import TASKS, UNSTORABLE

from minion_daemon import Minion
from minion_daemon.backend import PgBackend
from minion_daemon.model import JobInfo, WorkerInfo

TESTS = Path(__file__).resolve().parents[1]
RUN_WORKER = TESTS / "helpers" / "run_worker.py"
#: The test process's own connections carry this name, so an outage can spare them.
TEST_APPLICATION = "worker-run-tests"
STARTUP_TIMEOUT = 30.0
KILLED = "Job terminated unexpectedly (exit code: 0, signal: 9)"

def holds(predicate: Callable[[], bool], seconds: float) -> bool:
    """Whether ``predicate`` stays true for ``seconds`` (checked every 50 ms)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not predicate():
            return False
        time.sleep(0.05)
    return predicate()


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (the worker's job processes)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of ``pid`` (every thread), from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # After the command name: state is field 3, utime 14 and stime 15 (1-based).
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def caught_signals(pid: int) -> set[signal.Signals]:
    """The signals ``pid`` has handlers for (SigCgt in /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            mask = int(line.split()[1], 16)
            return {sig for sig in signal.Signals if mask & (1 << (sig.value - 1))}
    return set()


class WorkerProcess:
    """One ``run_worker.py`` subprocess, registered and waiting for jobs."""

    def __init__(self, dsn: str, status: dict[str, Any], stderr: Path) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])
        )
        self.stderr_path = stderr
        # A worker whose terminal is gone: stdout and stderr pipes nobody reads any more.
        terminal_gone = status.pop("terminal_gone", False)
        with stderr.open("wb") as errors:
            self.process = subprocess.Popen(
                [sys.executable, str(RUN_WORKER), dsn, json.dumps(status)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE if terminal_gone else errors,
                env=env,
            )
        self.pid = self.process.pid
        self.id = self._ready()
        if terminal_gone:
            for pipe in (self.process.stdout, self.process.stderr):
                assert pipe is not None
                pipe.close()
            self.process.stdout = self.process.stderr = None

    def _ready(self) -> int:
        assert self.process.stdout is not None
        readable, _, _ = select.select([self.process.stdout], [], [], STARTUP_TIMEOUT)
        line = self.process.stdout.readline().decode() if readable else ""
        assert line.startswith("ready "), f"worker did not start: {line!r}\n{self.stderr()}"
        return int(line.split()[1])

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def send(self, signum: int) -> None:
        os.kill(self.pid, signum)

    def wait(self, timeout: float) -> int:
        """The exit code, once the worker exited within ``timeout`` seconds."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"worker still runs after {timeout} s") from None

    def stop(self) -> None:
        """Leave nothing behind: QUIT (jobs are killed and recorded), then KILL everything."""
        if self.process.poll() is None:
            jobs = _children(self.pid)
            self.send(signal.SIGQUIT)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                for pid in [self.pid, *jobs, *_children(self.pid)]:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                self.process.wait(10)
        if self.process.stdout is not None:
            self.process.stdout.close()
        if self.process.stderr is not None:
            self.process.stderr.close()


@pytest.fixture
def minion(dsn: str) -> Iterator[Minion]:
    minion = Minion(PgBackend(dsn, min_size=0, max_size=2, application_name=TEST_APPLICATION))
    yield minion
    minion.close()


@pytest.fixture
def start_worker(dsn: str, tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Start workers with a status (plus ``timeouts``/``inline``); all are stopped after."""
    started: list[WorkerProcess] = []

    def start(**status: Any) -> WorkerProcess:
        stderr = tmp_path / f"worker-{len(started)}.stderr"
        started.append(WorkerProcess(dsn, status, stderr))
        return started[-1]

    yield start
    for worker in started:
        worker.stop()


def job_info(minion: Minion, job_id: int) -> JobInfo:
    jobs = minion.backend.list_jobs(0, 1, {"ids": [job_id]})["jobs"]
    assert jobs, f"job {job_id} is gone"
    return jobs[0]


def worker_info(minion: Minion, worker_id: int) -> WorkerInfo | None:
    workers = minion.backend.list_workers(0, 1, {"ids": [worker_id]})["workers"]
    return workers[0] if workers else None


def wait_for_state(minion: Minion, job_id: int, state: str, timeout: float = 15) -> JobInfo:
    def reached() -> JobInfo | None:
        info = job_info(minion, job_id)
        return info if info["state"] == state else None

    return wait_until(reached, timeout, f"job {job_id} to be {state}")


def wait_for_status(
    minion: Minion, worker: WorkerProcess, key: str, value: Any, timeout: float = 10
) -> None:
    def shown() -> bool:
        info = worker_info(minion, worker.id)
        return info is not None and info["status"].get(key) == value

    wait_until(shown, timeout, f"worker status {key} = {value!r}")


def job_pid(minion: Minion, job_id: int) -> int:
    """The pid of the job's process, once its worker noted it (``minion_pid``)."""

    def noted() -> int | None:
        pid = job_info(minion, job_id)["notes"].get("minion_pid")
        return int(pid) if pid is not None else None

    return wait_until(noted, 15, f"job {job_id} to start")


def logged_pids(log: Path) -> list[int]:
    """The pids a ``logged_sleep`` job wrote to ``log``, once there is one."""

    def written() -> list[int] | None:
        text = log.read_text() if log.exists() else ""
        return [int(line) for line in text.split()] if text.endswith("\n") else None

    return wait_until(written, 10, f"a pid in {log}")


def stays_inactive(minion: Minion, job_id: int, seconds: float) -> bool:
    return holds(lambda: job_info(minion, job_id)["state"] == "inactive", seconds)


# Checklist 113 and 116: the default status, a performed job, INT


def test_113_116_worker_performs_a_job_shows_the_default_status_and_stops_on_int(
    minion: Minion, start_worker: Callable[..., WorkerProcess]
) -> None:
    worker = start_worker()
    job_id = minion.enqueue("add", [2, 3])
    info = wait_for_state(minion, job_id, "finished")
    assert info["result"] == {"added": 5}
    assert info["worker"] == worker.id

    row = worker_info(minion, worker.id)
    assert row is not None
    assert (row["pid"], row["host"]) == (worker.pid, socket.gethostname())
    status = row["status"]
    assert 10800 <= status.pop("repair_interval") <= 21600
    assert status.pop("performed") in (0, 1)
    assert status.pop("tasks") == sorted([*TASKS, *ASYNC_TASKS])
    assert status == {
        "async_jobs": 100,
        "batch": 1,
        "command_interval": 10,
        "dequeue_timeout": 5,
        "dispatch_interval": 30,
        "heartbeat_interval": 300,
        "jobs": 4,
        "limits": {},
        "queues": ["default"],
        "spare": 1,
        "spare_min_priority": 1,
        "type": "Python",
    }

    worker.send(signal.SIGINT)
    assert worker.wait(10) == 0
    assert worker_info(minion, worker.id) is None


# Checklist 114: limits


def test_114_a_task_limited_to_zero_stays_inactive_while_others_are_performed(
    minion: Minion, start_worker: Callable[..., WorkerProcess]
) -> None:
    worker = start_worker(jobs=1, limits={"foo": 0}, dequeue_timeout=1)
    # foo first: it would be the first one claimed if its limit were ignored.
    foo = minion.enqueue("foo", [1, 1])
    bar = minion.enqueue("bar", [2, 2])
    baz = minion.enqueue("baz", [3, 3])
    assert wait_for_state(minion, bar, "finished")["result"] == {"added": 4}
    assert wait_for_state(minion, baz, "finished")["result"] == {"added": 6}
    assert stays_inactive(minion, foo, 1.0)
    row = worker_info(minion, worker.id)
    assert row is not None
    assert (row["status"]["limits"], row["status"]["jobs"]) == ({"foo": 0}, 1)


def test_114_a_worker_with_every_task_at_its_limit_sleeps_instead_of_spinning(
    minion: Minion, start_worker: Callable[..., WorkerProcess]
) -> None:
    """Perl busy-loops here (SPEC §4.2 step 7); the port waits for a job to end."""
    limits = dict.fromkeys(TASKS, 0) | {"sleep": 1}
    worker = start_worker(limits=limits)
    job_id = minion.enqueue("sleep", [2.5])
    wait_for_state(minion, job_id, "active")
    later = minion.enqueue("sleep", [0])

    before, started = cpu_seconds(worker.pid), time.monotonic()
    time.sleep(1.5)
    used, wall = cpu_seconds(worker.pid) - before, time.monotonic() - started
    assert used < 0.25 * wall, f"the worker used {used:.2f} s of CPU in {wall:.2f} s"
    assert job_info(minion, later)["state"] == "inactive", "sleep is at its limit of 1"

    # Once the running job ends, the worker takes the next one of that task.
    assert wait_for_state(minion, job_id, "finished")["result"] == 2.5
    assert wait_for_state(minion, later, "finished")["result"] == 0


def test_a_worker_at_capacity_does_not_spin_with_command_interval_0(
    minion: Minion, start_worker: Callable[..., WorkerProcess]
) -> None:
    """``-C 0`` asks for the inbox at every loop; Perl still sleeps 1 s while busy."""
    worker = start_worker(command_interval=0, jobs=1, spare=0)
    job_id = minion.enqueue("sleep", [30])
    wait_for_state(minion, job_id, "active")

    before, started = cpu_seconds(worker.pid), time.monotonic()
    time.sleep(1.5)
    used, wall = cpu_seconds(worker.pid) - before, time.monotonic() - started
    assert used < 0.25 * wall, f"the worker used {used:.2f} s of CPU in {wall:.2f} s"


# Checklist 111: jobs and spare commands


def test_111_jobs_0_and_spare_0_pause_the_worker_and_jobs_4_resumes_it(
    minion: Minion, start_worker: Callable[..., WorkerProcess]
) -> None:
    worker = start_worker(command_interval=1, dequeue_timeout=1)
    assert minion.broadcast("jobs", [0], [worker.id])
    wait_for_status(minion, worker, "jobs", 0)

    # jobs 0 alone leaves the spare slot to high-priority jobs (SPEC §4.4).
    normal = minion.enqueue("add", [1, 1])
    urgent = minion.enqueue("add", [2, 2], priority=5)
    wait_for_state(minion, urgent, "finished")
    assert stays_inactive(minion, normal, 1.2)

    assert minion.broadcast("spare", [0], [worker.id])
    wait_for_status(minion, worker, "spare", 0)
    also_urgent = minion.enqueue("add", [3, 3], priority=5)
    assert stays_inactive(minion, also_urgent, 1.5)
    assert job_info(minion, normal)["state"] == "inactive"

    assert minion.broadcast("jobs", [4], [worker.id])
    wait_for_state(minion, normal, "finished")
    wait_for_state(minion, also_urgent, "finished")
    wait_for_status(minion, worker, "jobs", 4)


# Checklist 112 and stop: commands that signal one job


def test_112_kill_and_stop_commands_reach_only_the_job_they_name(
    minion: Minion, start_worker: Callable[..., WorkerProcess]
) -> None:
    start_worker(command_interval=1, dequeue_timeout=1)
    handled = minion.enqueue("on_signals", [30])
    stopped = minion.enqueue("sleep", [30])
    for job_id in (handled, stopped):
        wait_for_state(minion, job_id, "active")
    pid = job_pid(minion, handled)
    wait_until(lambda: {signal.SIGUSR1, signal.SIGUSR2} <= caught_signals(pid), 10, "USR handlers")

    # One at a time: the task's handler writes a note, and must not be interrupted by the next.
    received: list[str] = []
    for name in ("USR1", "USR2"):
        assert minion.broadcast("kill", [name, handled])
        received.append(f"SIG{name}")
        wait_until(lambda: job_info(minion, handled)["notes"].get("signals") == received, 10)

    assert minion.broadcast("kill", ["INT", handled])
    info = wait_for_state(minion, handled, "failed")
    assert info["result"] == "Job terminated unexpectedly (exit code: 0, signal: 2)"
    assert job_info(minion, stopped)["state"] == "active", "kill reached only its job"

    assert minion.broadcast("stop", [stopped])
    assert wait_for_state(minion, stopped, "failed")["result"] == KILLED


# Signals to the worker (SPEC §4.3)


def test_term_waits_for_the_running_job_then_exits(
    minion: Minion, start_worker: Callable[..., WorkerProcess]
) -> None:
    # At capacity (jobs 1, no spare) the waiting job could only start after the running one.
    worker = start_worker(jobs=1, spare=0, dequeue_timeout=30)
    job_id = minion.enqueue("sleep", [2])
    job_pid(minion, job_id)
    later = minion.enqueue("add", [1, 1])
    worker.send(signal.SIGTERM)
    sent = time.monotonic()

    assert worker.wait(20) == 0
    elapsed = time.monotonic() - sent
    info = job_info(minion, job_id)
    assert (info["state"], info["result"]) == ("finished", 2)
    assert elapsed < 6, f"the worker took {elapsed:.1f} s to exit after a 2 s job"
    assert job_info(minion, later)["state"] == "inactive", "no job is taken after TERM"
    assert worker_info(minion, worker.id) is None


def test_commands_are_still_processed_while_term_waits_for_jobs(
    minion: Minion, start_worker: Callable[..., WorkerProcess]
) -> None:
    """SPEC §4.2: a stopping worker keeps processing its inbox, so ``stop`` can end the wait."""
    worker = start_worker(command_interval=1, dequeue_timeout=1)
    job_id = minion.enqueue("sleep", [30])
    wait_for_state(minion, job_id, "active")
    worker.send(signal.SIGTERM)
    assert minion.broadcast("stop", [job_id])
    assert worker.wait(15) == 0
    assert job_info(minion, job_id)["result"] == KILLED


def test_quit_kills_running_jobs_records_them_failed_retries_them_and_exits(
    minion: Minion, start_worker: Callable[..., WorkerProcess]
) -> None:
    worker = start_worker()
    once = minion.enqueue("sleep", [30])
    twice = minion.enqueue("sleep", [30], attempts=2)
    pids = [job_pid(minion, job_id) for job_id in (once, twice)]

    worker.send(signal.SIGQUIT)
    assert worker.wait(10) == 0
    failed = job_info(minion, once)
    assert (failed["state"], failed["result"]) == ("failed", KILLED)
    retried = job_info(minion, twice)
    assert (retried["state"], retried["result"]) == ("inactive", KILLED)
    assert (retried["retries"], retried["attempts"]) == (1, 1)
    assert worker_info(minion, worker.id) is None
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists(), "the job process is gone"


def test_a_stop_signal_and_an_ending_job_cut_the_wait_short(
    minion: Minion, start_worker: Callable[..., WorkerProcess]
) -> None:
    """Beyond Perl: the worker never waits out dequeue_timeout (30 s) after either."""
    worker = start_worker(jobs=1, spare=0, dequeue_timeout=30, command_interval=30)
    first = minion.enqueue("sleep", [1])
    second = minion.enqueue("add", [1, 2])
    finished = wait_for_state(minion, second, "finished")
    gap = finished["started"] - job_info(minion, first)["finished"]  # type: ignore[operator]
    assert gap < 3, f"the next job started {gap:.1f} s after the first ended"

    worker.send(signal.SIGTERM)
    sent = time.monotonic()
    assert worker.wait(20) == 0
    assert time.monotonic() - sent < 10


# Spare slots (SPEC §4.5)


def test_the_spare_slot_takes_only_jobs_of_spare_min_priority(
    minion: Minion, start_worker: Callable[..., WorkerProcess]
) -> None:
    start_worker(jobs=1, spare=1, dequeue_timeout=1)
    long = minion.enqueue("sleep", [30])
    wait_for_state(minion, long, "active")
    low = minion.enqueue("add", [1, 1])
    high = minion.enqueue("add", [2, 2], priority=5)
    assert wait_for_state(minion, high, "finished")["result"] == {"added": 4}
    assert stays_inactive(minion, low, 1.5)
    assert job_info(minion, long)["state"] == "active"


# Task modes: timeouts and inline


def test_a_task_timeout_fails_the_job_and_kills_a_task_that_ignores_term(
    minion: Minion, start_worker: Callable[..., WorkerProcess]
) -> None:
    start_worker(timeouts={"sleep": 1, "stubborn": 1}, dequeue_timeout=1)
    slow = minion.enqueue("sleep", [30])
    stubborn = minion.enqueue("stubborn", [30])

    info = wait_for_state(minion, slow, "failed")
    assert info["result"] == "Job timed out after 1 seconds"
    info = wait_for_state(minion, stubborn, "failed", timeout=20)
    assert info["result"] == "Job timed out after 1 seconds"
    ran = info["finished"] - info["started"]  # type: ignore[operator]
    assert 1 + 5 <= ran < 15, f"the stubborn job ran {ran:.1f} s (timeout 1 s, grace 5 s)"


def test_a_task_timeout_is_enforced_on_time_by_a_worker_at_capacity(
    minion: Minion, start_worker: Callable[..., WorkerProcess]
) -> None:
    """The deadline must wake the worker: neither command_interval (10 s, the wait while at
    capacity) nor dequeue_timeout (5 s) may stretch a 1 s timeout."""
    start_worker(timeouts={"sleep": 1}, jobs=1, spare=0)
    job_id = minion.enqueue("sleep", [30])
    info = wait_for_state(minion, job_id, "failed", timeout=20)
    assert info["result"] == "Job timed out after 1 seconds"
    ran = info["finished"] - info["started"]  # type: ignore[operator]
    assert ran < 3, f"a job with a 1 s timeout ran {ran:.1f} s"


def test_an_inline_task_runs_in_the_worker_process(
    minion: Minion, start_worker: Callable[..., WorkerProcess]
) -> None:
    worker = start_worker(inline=["record_pid"], heartbeat_interval=1, dequeue_timeout=1)
    inline = minion.enqueue("record_pid")
    forked = minion.enqueue("add", [1, 1])
    assert wait_for_state(minion, inline, "finished")["result"] == worker.pid
    wait_for_state(minion, forked, "finished")
    assert "minion_pid" not in job_info(minion, inline)["notes"]
    assert job_info(minion, forked)["notes"]["minion_pid"] != worker.pid
    # Checklist 116's "performed": both jobs are counted, and a heartbeat shows it.
    wait_for_status(minion, worker, "performed", 2)


# Checklist 41: schedules


def test_41_a_running_worker_dispatches_a_due_schedule_and_runs_its_job(
    minion: Minion, start_worker: Callable[..., WorkerProcess], dsn: str
) -> None:
    start_worker(dispatch_interval=1, dequeue_timeout=1)
    minion.schedule("answer", "* * * * *", "add", [20, 22])
    execute(dsn, "UPDATE minion_schedules SET next_run = NOW() - INTERVAL '1 minute'")

    def dispatched() -> int | None:
        return minion.list_schedules(names=["answer"])["schedules"][0]["last_job"]

    job_id = wait_until(dispatched, 10, "the schedule to be dispatched")
    assert wait_for_state(minion, job_id, "finished")["result"] == {"added": 42}


# Beyond Perl: a database outage (Minion #20)


def test_the_worker_survives_its_connections_being_terminated_twice(
    minion: Minion, start_worker: Callable[..., WorkerProcess], dsn: str, tmp_path: Path
) -> None:
    worker = start_worker(dequeue_timeout=1, command_interval=1)
    runs = tmp_path / "runs"
    job_id = minion.enqueue("logged_sleep", [str(runs), 3])
    wait_for_state(minion, job_id, "active")
    logged_pids(runs)

    def terminate_the_workers_connections() -> int:
        rows = execute(
            dsn,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            " AND application_name <> %s",
            (TEST_APPLICATION,),
        )
        return len(rows)

    assert terminate_the_workers_connections() > 0
    time.sleep(1)
    terminate_the_workers_connections()

    info = wait_for_state(minion, job_id, "finished", timeout=30)
    assert (info["result"], info["retries"]) == (3, 0)
    assert len(runs.read_text().splitlines()) == 1, "the job ran exactly once"
    later = minion.enqueue("add", [4, 5])
    assert wait_for_state(minion, later, "finished", timeout=30)["result"] == {"added": 9}
    assert worker.process.poll() is None
    assert worker_info(minion, worker.id) is not None


FAIL_THE_FIRST_PID_NOTE = """
CREATE SEQUENCE pid_notes;
CREATE FUNCTION fail_first_pid_note() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  -- A sequence, because the failing transaction rolls back anything else it changes.
  IF NEW.notes ? 'minion_pid' AND NOT OLD.notes ? 'minion_pid'
     AND nextval('pid_notes') = 1 THEN
    RAISE EXCEPTION 'connection lost (simulated)' USING ERRCODE = '08006';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER fail_first_pid_note BEFORE UPDATE ON minion_jobs
  FOR EACH ROW EXECUTE FUNCTION fail_first_pid_note();
"""


def test_a_job_whose_pid_note_fails_is_still_tracked_by_its_worker(
    minion: Minion, start_worker: Callable[..., WorkerProcess], dsn: str, tmp_path: Path
) -> None:
    """The outage may strike right after the fork, at the ``minion_pid`` note: the job
    process exists all the same, so QUIT must kill it and record it failed."""
    execute(dsn, FAIL_THE_FIRST_PID_NOTE)  # SQLSTATE 08006 is a lost connection to psycopg
    worker = start_worker(dequeue_timeout=1)
    runs = tmp_path / "runs"
    job_id = minion.enqueue("logged_sleep", [str(runs), 30])
    try:
        [pid] = logged_pids(runs)
        failed = "SELECT is_called FROM pid_notes"
        wait_until(lambda: execute(dsn, failed)[0][0], 10, "the pid note to fail")
        worker.send(signal.SIGQUIT)
        assert worker.wait(10) == 0
        info = job_info(minion, job_id)
        assert (info["state"], info["result"]) == ("failed", KILLED), "QUIT kills every job"
        assert not Path(f"/proc/{pid}").exists()
    finally:
        for line in runs.read_text().split() if runs.exists() else []:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(line), signal.SIGKILL)


# Batched mode and inline tasks


def test_an_inline_task_that_returns_nothing_finishes_its_job(
    minion: Minion, start_worker: Callable[..., WorkerProcess]
) -> None:
    start_worker(inline=["noop"], dequeue_timeout=1)
    job_id = minion.enqueue("noop")
    assert wait_for_state(minion, job_id, "finished")["result"] is None


def test_batched_mode_claims_many_inline_jobs_and_records_every_outcome(
    minion: Minion, start_worker: Callable[..., WorkerProcess]
) -> None:
    ids = [minion.enqueue("add", [n, 1], priority=n % 3) for n in range(25)]
    nothing = minion.enqueue("noop")
    failing = minion.enqueue("add", ["no", "numbers", "here"], attempts=2)
    forked = minion.enqueue("record_pid")
    worker = start_worker(inline=["add", "noop"], batch=10, dequeue_timeout=1, heartbeat_interval=1)
    for n, job_id in enumerate(ids):
        assert wait_for_state(minion, job_id, "finished")["result"] == {"added": n + 1}
    assert wait_for_state(minion, nothing, "finished")["result"] is None
    retried = wait_until(lambda: job_info(minion, failing)["retries"] == 1, 15, "the retry")
    assert retried
    assert "TypeError" in job_info(minion, failing)["result"]
    assert wait_for_state(minion, forked, "finished")["result"] != worker.pid
    wait_for_status(minion, worker, "performed", 28)
    assert worker_info(minion, worker.id)["status"]["batch"] == 10


def test_dequeue_many_claims_the_best_jobs_first(minion: Minion) -> None:
    backend = minion.backend
    low = [backend.enqueue("add", [1, 1]) for _ in range(3)]
    high = backend.enqueue("add", [2, 2], {"priority": 5})
    worker = backend.register_worker(None, {})
    claimed = backend.dequeue_many(worker, 0, 3, {"tasks": ["add"]})
    assert [job["id"] for job in claimed] == [high, low[0], low[1]]
    assert backend.dequeue_many(worker, 0, 3, {"tasks": ["other"]}) == []
    with pytest.raises(ValueError, match="dequeue_many: limit"):
        backend.dequeue_many(worker, 0, 0)


# One job's fault stays its own: results that cannot be stored, and what tasks write


def logged_lines(worker: WorkerProcess) -> list[dict[str, Any]]:
    """The worker's log so far (JSON mode), each line checked to be one JSON object."""
    lines = []
    for line in worker.stderr().splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"not a JSON log line: {line!r}") from None
    return lines


def job_output(worker: WorkerProcess, job_id: int) -> list[str]:
    return [
        line["line"]
        for line in logged_lines(worker)
        if line["event"] == "job.output" and line.get("job_id") == job_id
    ]


@pytest.mark.parametrize("mode", ["fork", "inline"])
def test_each_unstorable_result_fails_its_job_with_a_reason_that_names_it(
    minion: Minion, start_worker: Callable[..., WorkerProcess], mode: str
) -> None:
    task = "unstorable" if mode == "fork" else "unstorable_inline"
    ids = {kind: minion.enqueue(task, [kind], attempts=1) for kind in UNSTORABLE}
    fine = minion.enqueue("add", [1, 2])
    worker = start_worker(inline=["unstorable_inline"], dequeue_timeout=1)
    for kind, job_id in ids.items():
        result = wait_for_state(minion, job_id, "failed")["result"]
        assert result.startswith("Result cannot be stored as JSON: "), (kind, result)
        for named in UNSTORABLE[kind][1]:
            assert named in result, (kind, result)
    assert wait_for_state(minion, fine, "finished")["result"] == {"added": 3}
    assert worker.process.poll() is None, worker.stderr()


@pytest.mark.parametrize("task", ["unstorable_error", "unstorable_error_inline"])
def test_an_error_text_postgresql_cannot_store_is_kept_escaped(
    minion: Minion, start_worker: Callable[..., WorkerProcess], task: str
) -> None:
    job_id = minion.enqueue(task, attempts=1)
    worker = start_worker(inline=["unstorable_error_inline"], dequeue_timeout=1)
    result = wait_for_state(minion, job_id, "failed")["result"]
    assert result.startswith("ValueError: a NUL \\x00 and a lone \\udc80 surrogate\n"), result
    assert worker.process.poll() is None, worker.stderr()


def test_an_unstorable_result_is_retried_while_attempts_remain(
    minion: Minion, start_worker: Callable[..., WorkerProcess]
) -> None:
    job_id = minion.enqueue("unstorable_inline", ["set"], attempts=2)
    start_worker(inline=["unstorable_inline"], dequeue_timeout=1)
    wait_until(lambda: job_info(minion, job_id)["retries"] == 1, 15, "the retry")
    assert "set" in wait_for_state(minion, job_id, "failed", timeout=30)["result"]


def test_a_batch_with_an_unstorable_result_records_every_other_job_as_it_ran(
    minion: Minion, start_worker: Callable[..., WorkerProcess]
) -> None:
    ids = [minion.enqueue("add", [n, 1]) for n in range(5)]
    bad = minion.enqueue("unstorable_inline", ["set"], attempts=1)
    running = minion.enqueue("sleep", [3])
    worker = start_worker(
        inline=["add", "unstorable_inline"], batch=10, dequeue_timeout=1, heartbeat_interval=1
    )
    assert "set" in wait_for_state(minion, bad, "failed")["result"]
    for n, job_id in enumerate(ids):
        info = wait_for_state(minion, job_id, "finished")
        assert (info["result"], info["retries"]) == ({"added": n + 1}, 0)
    assert wait_for_state(minion, running, "finished")["result"] == 3
    assert worker.process.poll() is None, worker.stderr()


def test_what_a_forked_task_writes_becomes_json_log_lines_of_its_job(
    minion: Minion, start_worker: Callable[..., WorkerProcess]
) -> None:
    job_id = minion.enqueue("chatter", ["m1"])
    worker = start_worker(log_format="json", dequeue_timeout=1)
    assert wait_for_state(minion, job_id, "finished")["result"] == "m1"
    expected = ["print m1", "stderr m1", "fd m1", "echo m1"]

    def written() -> list[str] | None:
        lines = job_output(worker, job_id)
        return lines if len(lines) >= len(expected) else None

    assert sorted(wait_until(written, 10, "the job's output in the log")) == sorted(expected)
    line = next(line for line in logged_lines(worker) if line["event"] == "job.output")
    assert (line["task"], line["worker_id"]) == ("chatter", worker.id)


def test_what_an_inline_task_prints_becomes_json_log_lines_of_its_job(
    minion: Minion, start_worker: Callable[..., WorkerProcess]
) -> None:
    job_id = minion.enqueue("chatter_inline", ["m2", False])
    batched = minion.enqueue("chatter_inline", ["m3", False])
    worker = start_worker(inline=["chatter_inline"], log_format="json", dequeue_timeout=1)
    assert wait_for_state(minion, job_id, "finished")["result"] == "m2"
    assert wait_for_state(minion, batched, "finished")["result"] == "m3"
    assert sorted(job_output(worker, job_id)) == ["print m2", "stderr m2"]
    assert sorted(job_output(worker, batched)) == ["print m3", "stderr m3"]


def test_a_crashing_job_process_leaves_its_traceback_in_json_log_lines(
    minion: Minion, start_worker: Callable[..., WorkerProcess]
) -> None:
    job_id = minion.enqueue("crash", attempts=1)
    worker = start_worker(log_format="json", dequeue_timeout=1)
    assert "exit code: 1" in wait_for_state(minion, job_id, "failed")["result"]
    wait_until(
        lambda: any("KeyboardInterrupt" in line for line in job_output(worker, job_id)),
        10,
        "the traceback in the log",
    )


@pytest.mark.parametrize("batch", [1, 10])
def test_a_worker_whose_terminal_is_gone_runs_printing_tasks_to_their_end(
    minion: Minion, start_worker: Callable[..., WorkerProcess], batch: int
) -> None:
    worker = start_worker(
        inline=["chatter_inline"],
        log_format="json",
        terminal_gone=True,
        dequeue_timeout=1,
        batch=batch,
    )
    forked = minion.enqueue("chatter", ["m4"])
    inline = minion.enqueue("chatter_inline", ["m5", False])
    assert wait_for_state(minion, forked, "finished")["result"] == "m4"
    assert wait_for_state(minion, inline, "finished")["result"] == "m5"
    assert worker.process.poll() is None


def test_a_task_that_writes_megabytes_is_not_held_up_by_its_output(
    minion: Minion, start_worker: Callable[..., WorkerProcess]
) -> None:
    job_id = minion.enqueue("flood", [2])
    worker = start_worker(log_format="json", dequeue_timeout=1)
    assert wait_for_state(minion, job_id, "finished", timeout=60)["result"] == 2
    assert len(job_output(worker, job_id)) == 2 * 1024


def test_shutdown_command_stops_only_the_worker_it_names_after_its_running_job(
    minion: Minion, start_worker: Callable[..., WorkerProcess]
) -> None:
    """Beyond Perl (whose workers ignore it as unknown): ``["shutdown"]`` is TERM by the inbox."""
    worker = start_worker(jobs=1, spare=0, command_interval=1, dequeue_timeout=1)
    other = start_worker(queues=["none"], command_interval=1, dequeue_timeout=1)
    job_id = minion.enqueue("sleep", [2])
    job_pid(minion, job_id)
    later = minion.enqueue("add", [1, 1], queue="elsewhere")
    assert minion.broadcast("shutdown", [], [worker.id])
    assert worker.wait(20) == 0
    assert job_info(minion, job_id)["state"] == "finished"
    assert job_info(minion, later)["state"] == "inactive"
    assert worker_info(minion, worker.id) is None
    assert other.process.poll() is None
    assert worker_info(minion, other.id) is not None
