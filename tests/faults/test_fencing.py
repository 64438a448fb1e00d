"""A worker presumed dead finishes late: its stale finish must not touch the retried job.

The daemon runs 2 worker processes of one job each. The first run of a job is frozen
(SIGSTOP for its job process and its worker, which stops heartbeating); repair, with a short
``missing_after``, removes the silent worker and fails its job "Worker went away", which
retries it; the other worker runs it again. Then the first run is thawed (SIGCONT), while
the second run is still going or once it finished: it returns its own token and tries to
finish the job with the old ``retries``, then its worker tries again after reaping it. Both
are fenced off: the job ends finished once, with the second run's token.
"""

from __future__ import annotations

import json
import signal
import time
from typing import Any

import pytest
from helpers.fault_tasks import instrument, violations
from helpers.processes import children, signal_child
from helpers.sql import execute, hasten_retries
from helpers.waiting import wait_until

from minion_daemon.backend import PgBackend

#: One after another, never beside each other: see tests/faults/conftest.py.
pytestmark = pytest.mark.xdist_group("faults")

RUN_SECONDS = 2.0
MISSING_AFTER = 3


def _job(dsn: str, job_id: int) -> dict[str, Any]:
    query = "SELECT state::text, retries, worker, result FROM minion_jobs WHERE id = %s"
    state, retries, worker, result = execute(dsn, query, (job_id,))[0]
    return {"state": state, "retries": retries, "worker": worker, "result": result}


def _run(dsn: str, job_id: int, retries: int) -> tuple[int, str] | None:
    """The job process and token of the run of ``retries``, once it has started."""
    query = "SELECT pid, token FROM runs WHERE job_id = %s AND retries = %s"
    rows = execute(dsn, query, (job_id, retries))
    return (int(rows[0][0]), str(rows[0][1])) if rows else None


def _worker_pid(dsn: str, worker_id: int) -> int:
    return int(execute(dsn, "SELECT pid FROM minion_workers WHERE id = %s", (worker_id,))[0][0])


def _logged_stale_end(log: str, job_id: int) -> bool:
    """Whether the first worker logged that its job's outcome was recorded by someone else."""
    for line in log.splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue  # a traceback a child printed, say
        if (entry.get("event"), entry.get("job_id"), entry.get("retries")) == (
            "job.ended",
            job_id,
            0,
        ):
            return bool(entry.get("outcome") == "changed elsewhere")
    return False


@pytest.mark.slow
@pytest.mark.parametrize("late", ["while the retry runs", "after the retry finished"])
def test_a_stale_finish_cannot_overwrite_the_retried_job(
    late: str, make_database: Any, launch: Any, figures: Any
) -> None:
    dsn = make_database(25)
    instrument(dsn)
    daemon = launch(
        dsn,
        workers={"jobs": 1, "liveness_timeout": 60},
        minion={"missing_after": MISSING_AFTER},
        repair={"interval": 1},
    )
    wait_until(lambda: execute(dsn, "SELECT count(*) FROM minion_workers")[0][0] == 2, 30)
    backend = PgBackend(dsn, pooled=False)
    try:
        job_id = backend.enqueue("record_run", [RUN_SECONDS], {"attempts": 2})
    finally:
        backend.close()

    # Freeze the first run and its worker.
    first_pid, first_token = wait_until(lambda: _run(dsn, job_id, 0), 30, "the first run")
    first_worker = _job(dsn, job_id)["worker"]
    worker_pid = _worker_pid(dsn, first_worker)
    (fork_server,) = children(worker_pid)  # the parent of the worker's job processes
    assert signal_child(first_pid, fork_server, signal.SIGSTOP)
    assert signal_child(worker_pid, daemon.pid, signal.SIGSTOP)

    # Repair gives up on the silent worker; the other one runs the job again.
    def retried() -> dict[str, Any] | None:
        hasten_retries(dsn)
        job = _job(dsn, job_id)
        return job if job["retries"] == 1 else None

    assert wait_until(retried, MISSING_AFTER + 15, "repair to retry the job")["result"] == (
        "Worker went away"
    )
    second_pid, second_token = wait_until(lambda: _run(dsn, job_id, 1), 30, "the second run")
    assert second_pid != first_pid
    assert _job(dsn, job_id)["worker"] != first_worker
    if late == "after the retry finished":
        wait_until(lambda: _job(dsn, job_id)["state"] == "finished", 30, "the second run")

    # Thaw the first run: it finishes late, with its own token.
    thawed = time.monotonic()
    assert signal_child(worker_pid, daemon.pid, signal.SIGCONT)
    assert signal_child(first_pid, fork_server, signal.SIGCONT)
    log = daemon.log.read_text
    wait_until(lambda: _logged_stale_end(log(), job_id), 30, "the first worker to reap its run")
    stale_done = time.monotonic() - thawed
    if late == "while the retry runs":
        # Fenced by retries alone: the job was active, held by the second run, all along.
        assert _job(dsn, job_id)["state"] == "active"
    wait_until(lambda: _job(dsn, job_id)["state"] == "finished", 30, "the job to finish")

    job = _job(dsn, job_id)
    figures(
        f"stale finish {late}: first run fenced off {stale_done:.2f} s after SIGCONT;"
        f" job finished with retries {job['retries']}, result of the"
        f" {'second' if job['result'] == second_token else 'FIRST'} run"
    )
    assert job["result"] == second_token != first_token
    assert job["retries"] == 1
    assert execute(dsn, "SELECT retries FROM finishes WHERE job_id = %s", (job_id,)) == [(1,)]
    assert violations(dsn) == {}
    daemon.signal(signal.SIGTERM)
    code, errors = daemon.finish()
    assert code == 0, errors[-3000:]
