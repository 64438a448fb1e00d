"""PostgreSQL restarted under a running worker: every job runs exactly once, none is lost.

Uses a private cluster (initdb/pg_ctl), since restarting the shared server would break every
other test. The worker is a real subprocess; its jobs are real forked processes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers.postgres import Server
from helpers.waiting import wait_until

from minion_daemon import Minion
from minion_daemon.backend import PgBackend
from minion_daemon.errors import DatabaseUnavailableError

#: One after another, never beside each other: see tests/faults/conftest.py.
pytestmark = pytest.mark.xdist_group("faults")

TESTS = Path(__file__).resolve().parents[1]
JOBS = 24


@pytest.mark.slow
def test_restart_under_a_running_worker_loses_and_duplicates_nothing(
    cluster: Server, cluster_dsn: str, tmp_path: Path
) -> None:
    assert cluster.restart is not None
    dsn = cluster_dsn
    runs = tmp_path / "runs"
    minion = Minion(PgBackend(dsn, pooled=False))
    ids = [minion.enqueue("logged_sleep", [str(runs), 0.5]) for _ in range(JOBS)]
    status = {"jobs": 4, "dequeue_timeout": 1, "command_interval": 1, "heartbeat_interval": 1}
    worker = subprocess.Popen(
        [sys.executable, str(TESTS / "helpers" / "run_worker.py"), dsn, json.dumps(status)],
        env=dict(os.environ, PYTHONPATH=str(TESTS)), stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: runs.exists() and len(runs.read_text().split()) >= 4, 30, "jobs")
        restarted = time.monotonic()
        cluster.restart()
        wait_until(
            lambda: minion.stats()["finished_jobs"] == JOBS,
            120,
            "every job",
            through=(DatabaseUnavailableError,),  # the server restarting
        )
        recovered = time.monotonic() - restarted
        states = {job["id"]: job["state"] for job in minion.jobs(fetch=100)}
        assert states == dict.fromkeys(ids, "finished")
        assert len(runs.read_text().split()) == JOBS, "a job ran twice"
        assert recovered < 100
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        finally:
            worker.kill()
            minion.close()
