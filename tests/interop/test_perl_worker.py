"""A Python worker and a Perl worker (Minion 10.25) on one queue of one database (schema 23).

Both run as real processes: ours is ``minion_daemon``'s ``Worker.run`` with the test tasks of
``helpers.worker_tasks``, theirs is ``$minion->worker->run`` from ``minion_worker.pl``. Each
dequeues only the tasks it knows, so they split the jobs by task name. A broadcast from Perl
reaches our worker as its admin UI's would. Nothing here stands in for Perl: its absence fails
the tests (``tests/run`` installs it).
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

import pytest
from helpers.postgres import Server
from helpers.processes import gone
from helpers.sql import execute
from helpers.waiting import wait_until
from psycopg.conninfo import conninfo_to_dict

from minion_daemon import Minion
from minion_daemon.backend import PgBackend
from minion_daemon.model import JobInfo

pytestmark = pytest.mark.interop

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
PERL_WORKER = HERE / "minion_worker.pl"
PERL_PEER = HERE / "minion_peer.pl"
PERL_SCHEMA = 23
STARTUP_TIMEOUT = 30.0

#: Our worker, as ``helpers/run_worker.py`` runs it but held at schema 23: run_worker's backend
#: would migrate the database to 25, which Minion 10.25 refuses to open.
PYTHON_WORKER = """
import json, sys
from helpers import worker_tasks
from minion_daemon import Minion
from minion_daemon.backend import PgBackend

dsn, status = sys.argv[1], json.loads(sys.argv[2])
minion = Minion(PgBackend(dsn, max_schema_version=23, min_size=0, max_size=2))
for name, task in worker_tasks.TASKS.items():
    minion.add_task(name, task)
worker = minion.worker(**status)
announced = []
def announce(worker):
    if not announced:
        print("ready", worker.id, flush=True)
        announced.append(True)
worker.on("wait", announce)
worker.run()
minion.close()
"""

class WorkerProcess:
    """A worker subprocess, Python or Perl, once it printed ``ready <id>``."""

    def __init__(self, argv: list[str], stderr: Path) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])
        )
        self.stderr_path = stderr
        with stderr.open("wb") as errors:
            self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=errors, env=env)
        self.pid = self.process.pid
        assert self.process.stdout is not None
        readable, _, _ = select.select([self.process.stdout], [], [], STARTUP_TIMEOUT)
        line = self.process.stdout.readline().decode() if readable else ""
        assert line.startswith("ready "), f"{argv[0]} did not start: {line!r}\n{self.stderr()}"
        self.id = int(line.split()[1])

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stop(self, signum: int = signal.SIGINT, timeout: float = 15) -> int:
        """Send ``signum`` and wait for the exit code; KILL if it takes longer than timeout."""
        if self.process.poll() is None:
            os.kill(self.pid, signum)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        if self.process.stdout is not None:
            self.process.stdout.close()
        return self.process.returncode


@pytest.fixture
def database(make_database: Callable[[int | None], str], pg_server: Server) -> tuple[str, str]:
    """A database migrated by us to 23: its libpq DSN and the URL Perl's Mojo::Pg takes."""
    dsn = make_database(PERL_SCHEMA)
    return dsn, pg_server.url(str(conninfo_to_dict(dsn)["dbname"]))


@pytest.fixture
def minion(database: tuple[str, str]) -> Iterator[Minion]:
    backend = PgBackend(database[0], max_schema_version=PERL_SCHEMA, min_size=0, max_size=2)
    minion = Minion(backend)
    yield minion
    minion.close()


@pytest.fixture
def workers(
    database: tuple[str, str], tmp_path: Path
) -> Iterator[tuple[WorkerProcess, WorkerProcess]]:
    """Our worker and a Perl worker on the same database and queue; both stopped after."""
    dsn, url = database
    status = {"dequeue_timeout": 1, "command_interval": 1, "heartbeat_interval": 1}
    started: list[WorkerProcess] = []
    try:
        started.append(
            WorkerProcess(
                [sys.executable, "-c", PYTHON_WORKER, dsn, json.dumps(status)],
                tmp_path / "python.stderr",
            )
        )
        started.append(
            WorkerProcess(
                ["perl", str(PERL_WORKER), url, json.dumps(status)], tmp_path / "perl.stderr"
            )
        )
        yield started[0], started[1]
    finally:
        for worker in started:
            worker.stop(signal.SIGQUIT)


def job_info(minion: Minion, job_id: int) -> JobInfo:
    jobs = minion.backend.list_jobs(0, 1, {"ids": [job_id]})["jobs"]
    assert jobs, f"job {job_id} is gone"
    return jobs[0]


def schema_version(dsn: str) -> int:
    rows = execute(dsn, "SELECT version FROM mojo_migrations WHERE name = 'minion'")
    return int(rows[0][0])


def finished(minion: Minion, job_id: int) -> JobInfo:
    def done() -> JobInfo | None:
        info = job_info(minion, job_id)
        return info if info["state"] == "finished" else None

    return wait_until(done, 20, f"job {job_id} to finish")


def test_python_and_perl_workers_split_one_queue_by_task_name(
    minion: Minion, workers: tuple[WorkerProcess, WorkerProcess], database: tuple[str, str]
) -> None:
    ours, theirs = workers
    assert minion.backend.schema_version == PERL_SCHEMA
    ids: dict[int, tuple[int, Any]] = {
        minion.enqueue("add", [1, 2]): (ours.id, {"added": 3}),
        minion.enqueue("perl_add", [3, 4]): (theirs.id, None),
        minion.enqueue("perl_upper", ["minion"]): (theirs.id, "MINION"),
        minion.enqueue("add", [5, 6], priority=3): (ours.id, {"added": 11}),
        minion.enqueue("sleep", [0.2]): (ours.id, 0.2),
    }
    for job_id, (worker_id, result) in ids.items():
        info = finished(minion, job_id)
        assert info["worker"] == worker_id, f"job {job_id} ({info['task']}) went elsewhere"
        if result is not None:
            assert info["result"] == result
    perl_add = next(i for i, (_, result) in ids.items() if result is None)
    result = job_info(minion, perl_add)["result"]
    assert result["sum"] == 7
    assert result["pid"] not in (ours.pid, theirs.pid), "Perl forked a job process"

    # Both workers registered; ours says what it is, Perl 10.25's status has no type.
    registered = {w["id"]: w for w in minion.backend.list_workers(0, 10)["workers"]}
    assert registered[ours.id]["status"]["type"] == "Python"
    perl_status = registered[theirs.id]["status"]
    assert registered[theirs.id]["pid"] == theirs.pid
    assert (perl_status["heartbeat_interval"], perl_status["dequeue_timeout"]) == (1, 1)
    assert "type" not in perl_status

    assert theirs.stop(signal.SIGINT) == 0, theirs.stderr()
    assert ours.stop(signal.SIGINT) == 0, ours.stderr()
    assert minion.backend.list_workers(0, 10)["total"] == 0
    assert schema_version(database[0]) == PERL_SCHEMA, "our worker left the schema at 23"


def test_a_broadcast_from_perl_pauses_our_worker(
    minion: Minion, workers: tuple[WorkerProcess, WorkerProcess], database: tuple[str, str]
) -> None:
    ours, _ = workers
    # Without ids, as $minion->broadcast('jobs', [0]): every worker, Perl's own included.
    command = json.dumps({"command": "jobs", "args": [0]})
    sent = subprocess.run(
        ["perl", str(PERL_PEER), database[1], "broadcast", command],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert sent.returncode == 0, sent.stderr
    assert json.loads(sent.stdout) == {"sent": 1}

    def paused() -> bool:
        worker = minion.backend.list_workers(0, 1, {"ids": [ours.id]})["workers"][0]
        return bool(worker["status"]["jobs"] == 0)

    wait_until(paused, 10, "our worker to show jobs 0")
    job_id = minion.enqueue("add", [1, 1])
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        assert job_info(minion, job_id)["state"] == "inactive", "a paused worker took a job"
        time.sleep(0.05)


def test_a_perl_worker_obeys_the_cancel_of_its_active_job(
    minion: Minion, workers: tuple[WorkerProcess, WorkerProcess]
) -> None:
    """``Minion.cancel`` fails the job at once and sends Minion's own ``stop``: Perl's worker
    KILLs the job's process, and its own failure record is fenced off by the state."""
    # Perl's status has no `type`, ours says Python: a pause's warning counts Perl's alone.
    assert minion.backend.perl_workers_of_queue("default") == 1
    job_id = minion.enqueue("perl_sleep", [60], attempts=3)
    pid = wait_until(lambda: job_info(minion, job_id)["notes"].get("pid"), 20, "the job's pid")
    assert minion.cancel(job_id) is True

    wait_until(lambda: gone(pid), 10, "Perl's worker to stop the job's process")
    after = minion.enqueue("perl_add", [1, 2])
    assert finished(minion, after)["result"]["sum"] == 3  # the worker has reaped the job
    cancelled = job_info(minion, job_id)
    assert (cancelled["state"], cancelled["result"]) == ("failed", "Job cancelled")
    assert cancelled["retries"] == 0
