"""Fleet control (issue 17): pausing a queue for every Python worker, cancelling a job by id,
and the tables of our own both stand on, against a real PostgreSQL and real worker processes.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from helpers.processes import gone
from helpers.sql import execute
from helpers.waiting import wait_until

from minion_daemon import Minion
from minion_daemon.backend import PgBackend
from minion_daemon.backend import migrate as schema
from minion_daemon.cli import main
from minion_daemon.errors import SchemaError
from minion_daemon.metrics.collector import DatabaseCollector
from minion_daemon.model import JobInfo

TESTS = Path(__file__).resolve().parents[1]
RUN_WORKER = TESTS / "helpers" / "run_worker.py"
CANCELLED = "Job cancelled"


class WorkerProcess:
    """One ``run_worker.py`` subprocess, registered and waiting for jobs."""

    def __init__(self, dsn: str, status: dict[str, Any], stderr: Path) -> None:
        path = [str(TESTS), os.environ.get("PYTHONPATH", "")]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, path)))
        with stderr.open("wb") as errors:
            self.process = subprocess.Popen(
                [sys.executable, str(RUN_WORKER), dsn, json.dumps(status)],
                stdout=subprocess.PIPE,
                stderr=errors,
                env=env,
            )
        assert self.process.stdout is not None
        readable, _, _ = select.select([self.process.stdout], [], [], 30)
        line = self.process.stdout.readline().decode() if readable else ""
        assert line.startswith("ready "), f"worker did not start: {stderr.read_text()}"
        self.id = int(line.split()[1])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        assert self.process.stdout is not None
        self.process.stdout.close()


@pytest.fixture
def start_worker(dsn: str, tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    started: list[WorkerProcess] = []

    def start(**status: Any) -> WorkerProcess:
        started.append(WorkerProcess(dsn, status, tmp_path / f"worker-{len(started)}.stderr"))
        return started[-1]

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def run(dsn: str, capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    def run_command(*arguments: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main([arguments[0], "--dsn", dsn, *arguments[1:]])
        out, err = capsys.readouterr()
        return code, out, err

    return run_command


def info(minion: Minion, job_id: int) -> JobInfo:
    return minion.backend.list_jobs(0, 1, {"ids": [job_id]})["jobs"][0]


def reaches(minion: Minion, job_id: int, state: str, timeout: float = 15) -> JobInfo:
    def reached() -> JobInfo | None:
        found = info(minion, job_id)
        return found if found["state"] == state else None

    return wait_until(reached, timeout, f"job {job_id} to be {state}")


def stays(minion: Minion, job_id: int, state: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if info(minion, job_id)["state"] != state:
            return False
        time.sleep(0.05)
    return True


# Pause and resume


@pytest.mark.slow(seconds=8)
def test_a_paused_queue_waits_while_another_runs_and_resume_takes_it_up(
    minion: Minion, start_worker: Callable[..., WorkerProcess]
) -> None:
    status = {"queues": ["bulk", "default"], "dequeue_timeout": 5}
    start_worker(**status)
    start_worker(**status)
    running = minion.enqueue("sleep", [2], queue="bulk")
    reaches(minion, running, "active")
    assert minion.pause_queue("bulk") is True
    time.sleep(1)  # the bound: workers stop claiming within one second
    held = [minion.enqueue("add", [1, 2], queue="bulk") for _ in range(3)]
    other = minion.enqueue("add", [3, 4])
    assert reaches(minion, other, "finished")["result"] == {"added": 7}
    assert reaches(minion, running, "finished")["result"] == 2  # a running job finishes
    assert all(stays(minion, job, "inactive", 0.5) for job in held)
    assert minion.resume_queue("bulk") is True
    for job in held:
        assert reaches(minion, job, "finished", timeout=3)["result"] == {"added": 3}


def test_pause_is_idempotent_and_resume_of_an_unpaused_queue_says_so(minion: Minion) -> None:
    assert minion.pause_queue("bulk") is True
    assert minion.pause_queue("bulk") is False
    assert minion.paused_queues() == ["bulk"]
    assert minion.resume_queue("bulk") is True
    assert minion.resume_queue("bulk") is False
    assert minion.paused_queues() == []


def test_queue_command_pauses_lists_and_resumes(
    minion: Minion, run: Callable[..., tuple[int, str, str]]
) -> None:
    minion.enqueue("add", [1, 2], queue="bulk")
    minion.enqueue("add", [1, 2], queue="bulk")
    minion.enqueue("add", [1, 2], queue="bulk", delay=3600)
    worker = minion.backend.register_worker(options={"status": {"type": "Python"}})
    assert minion.backend.dequeue(worker, 0, {"queues": ["default"]}) is None
    minion.enqueue("add", [1, 2])
    assert minion.backend.dequeue(worker, 0, {"queues": ["default"]}) is not None
    assert run("queue", "--pause", "bulk")[0] == 0
    code, out, _ = run("queue")
    assert code == 0
    assert out.split("\n")[:2] == ["bulk     2  0  paused", "default  0  1  "]
    listed = json.loads(run("queue", "--json")[1])
    assert listed == {
        "queues": [
            {"queue": "bulk", "backlog": 2, "running": 0, "paused": True},
            {"queue": "default", "backlog": 0, "running": 1, "paused": False},
        ]
    }
    assert run("queue", "--resume", "bulk")[0] == 0
    assert json.loads(run("queue", "--json")[1])["queues"][0]["paused"] is False
    code, _, err = run("queue", "--resume", "bulk")
    assert (code, err) == (1, "minion-daemon: queue 'bulk' is not paused\n")


def test_pausing_warns_of_perl_workers_that_keep_claiming(
    minion: Minion, run: Callable[..., tuple[int, str, str]]
) -> None:
    # Perl's worker status has no `type`; ours says `type: Python`.
    minion.backend.register_worker(options={"status": {"queues": ["bulk"], "jobs": 4}})
    minion.backend.register_worker(options={"status": {"queues": ["bulk"], "type": "Python"}})
    code, _, err = run("queue", "--pause", "bulk")
    assert code == 0
    assert "1 Perl worker(s) serving queue 'bulk' keep claiming its jobs" in err


def test_paused_queues_are_a_metric(minion: Minion) -> None:
    minion.enqueue("add", [1, 2], queue="bulk")
    minion.pause_queue("bulk")
    collector = DatabaseCollector(minion.backend.observe, 0)
    families = {family.name: family for family in collector.collect()}
    samples = {s.labels["queue"]: s.value for s in families["minion_queue_paused"].samples}
    assert samples == {"bulk": 1.0}


# Cancel


def test_cancelling_an_inactive_job_fails_it_without_retry(
    minion: Minion, run: Callable[..., tuple[int, str, str]]
) -> None:
    job = minion.enqueue("add", [1, 2], attempts=3)
    assert minion.cancel(job) is True
    found = info(minion, job)
    assert (found["state"], found["result"], found["retries"]) == ("failed", CANCELLED, 0)
    assert minion.cancel(job) is False  # already failed: nothing to cancel
    other = minion.enqueue("add", [1, 2])
    assert run("job", "--cancel", str(other))[0] == 0
    assert info(minion, other)["result"] == CANCELLED


def test_cancelling_a_finished_job_leaves_it_finished(
    minion: Minion, run: Callable[..., tuple[int, str, str]]
) -> None:
    job = minion.enqueue("add", [1, 2])
    worker = minion.backend.register_worker()
    assert minion.backend.dequeue(worker, 0, {"id": job})
    assert minion.backend.finish_job(job, 0, 3)
    assert minion.cancel(job) is False
    assert (info(minion, job)["state"], info(minion, job)["result"]) == ("finished", 3)
    code, _, err = run("job", "--cancel", str(job))
    assert (code, err) == (
        1,
        f"minion-daemon: job {job} has ended already (finished or failed): not cancelled\n",
    )


def test_cancelling_an_unknown_job_names_it(
    minion: Minion, run: Callable[..., tuple[int, str, str]]
) -> None:
    with pytest.raises(LookupError, match="job 424242 does not exist"):
        minion.cancel(424242)
    code, out, err = run("job", "--cancel", "424242")
    assert (code, out) == (1, "")
    assert err == "minion-daemon: job 424242 does not exist\n"


@pytest.mark.slow(seconds=5)
def test_cancelling_an_active_job_stops_its_process_and_records_no_retry(
    minion: Minion, start_worker: Callable[..., WorkerProcess]
) -> None:
    start_worker(command_interval=0.2)
    job = minion.enqueue("sleep", [60], attempts=3)
    reaches(minion, job, "active")
    pid = wait_until(lambda: info(minion, job)["notes"].get("minion_pid"), 10, "job pid")
    assert minion.cancel(job) is True
    found = info(minion, job)
    assert (found["state"], found["result"], found["retries"]) == ("failed", CANCELLED, 0)

    wait_until(lambda: gone(pid), 5, "the job's process to end")
    assert stays(minion, job, "failed", 1.0)
    assert info(minion, job)["result"] == CANCELLED


# Our own tables


def test_migrate_applies_our_tables_and_reports_both_versions(
    make_database: Callable[[int | None], str], capsys: pytest.CaptureFixture[str]
) -> None:
    empty = make_database(None)
    assert main(["migrate", "--dsn", empty]) == 0
    out, err = capsys.readouterr()
    assert out == "25\n"
    assert "minion_daemon tables at version 2" in err
    rows = execute(empty, "SELECT name, version FROM mojo_migrations ORDER BY name")
    assert rows == [("minion", 25), ("minion_daemon", 2)]


def _schema_23_without_ours(make_database: Callable[[int | None], str]) -> str:
    dsn = make_database(None)
    with psycopg.connect(dsn, autocommit=True, row_factory=psycopg.rows.dict_row) as conn:
        schema.migrate(conn, 23)
    return dsn


def test_create_adds_our_tables_to_a_perl_database_and_leaves_minion_at_23(
    make_database: Callable[[int | None], str],
) -> None:
    dsn = _schema_23_without_ours(make_database)
    minion = Minion(PgBackend(dsn, pooled=False, auto_migrate="create"))
    try:
        assert minion.pause_queue("bulk") is True
    finally:
        minion.close()
    rows = execute(dsn, "SELECT name, version FROM mojo_migrations ORDER BY name")
    assert rows == [("minion", 23), ("minion_daemon", 2)]


def test_without_our_tables_jobs_work_and_the_features_say_what_to_run(
    make_database: Callable[[int | None], str],
) -> None:
    dsn = _schema_23_without_ours(make_database)
    minion = Minion(PgBackend(dsn, pooled=False, auto_migrate="off"))
    try:
        job = minion.enqueue("add", [1, 2])
        worker = minion.backend.register_worker()
        assert minion.backend.dequeue(worker, 0, {"queues": ["default"]})["id"] == job
        with pytest.raises(SchemaError, match="run `minion-daemon migrate`"):
            minion.pause_queue("bulk")
        assert minion.cancel(minion.enqueue("add", [1, 2])) is True  # needs no table of ours
        assert minion.paused_queues() == []
    finally:
        minion.close()
    assert execute(dsn, "SELECT name FROM mojo_migrations") == [("minion",)]


def test_queue_command_without_our_tables_says_to_migrate(
    make_database: Callable[[int | None], str], capsys: pytest.CaptureFixture[str]
) -> None:
    dsn = _schema_23_without_ours(make_database)
    assert main(["queue", "--pause", "bulk", "--dsn", dsn]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "own tables are missing" in err
    assert "run `minion-daemon migrate`" in err
    assert main(["queue", "--dsn", dsn]) == 0  # the listing works without them
