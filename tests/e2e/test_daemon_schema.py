"""The daemon and ``minion-daemon worker`` on a database a Perl Minion 10.25 fleet shares
(schema 23), configured without ``max_schema_version``: they run on the schema as it is and
say once what 24 and 25 add."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
from helpers.waiting import wait_until

from minion_daemon import Minion
from minion_daemon.backend import PgBackend

TESTS = Path(__file__).resolve().parents[1]


def _version(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT version FROM mojo_migrations WHERE name = 'minion'").fetchone()
    assert row is not None
    return int(row[0])


def test_the_daemon_uses_a_23_database_as_it_is(start: Any, make_database: Any) -> None:
    dsn = make_database(23)
    daemon, _ = start(postgres={"dsn": dsn}, logging={"format": "json"})
    minion = Minion(PgBackend(dsn, min_size=0, auto_migrate="off"))
    try:
        workers = minion.backend.list_workers
        wait_until(lambda: workers(0, 10)["total"] == 2, 30, "two worker processes")
        added = minion.enqueue("add", [1, 2])
        jobs = minion.backend.list_jobs
        wait_until(lambda: jobs(0, 1, {"ids": [added], "states": ["finished"]})["total"], 30)
    finally:
        minion.close()
    daemon.stop()
    assert _version(dsn) == 23
    assert daemon.log is not None
    lines = [line for line in daemon.log.read_text().splitlines() if "schema." in line]
    assert len(lines) == 1, lines
    assert '"schema.not_upgraded"' in lines[0]
    assert "25: cron schedules" in lines[0]


def test_the_worker_command_uses_a_23_database_as_it_is(
    task_path: Path, make_database: Any
) -> None:
    dsn = make_database(23)
    argv = [sys.executable, "-m", "minion_daemon", "worker", "--dsn", dsn, "-t", "add"]
    environment = dict(os.environ, PYTHONPATH=f"{task_path}:{TESTS}")
    worker = subprocess.Popen(argv, env=environment, stderr=subprocess.PIPE, text=True)
    minion = Minion(PgBackend(dsn, min_size=0, auto_migrate="off"))
    try:
        added = minion.enqueue("add", [1, 2])
        info = minion.result(added, timeout=30, interval=0.05)
        assert info is not None
        assert info["state"] == "finished"
    finally:
        minion.close()
        worker.send_signal(signal.SIGTERM)
        _, errors = worker.communicate(timeout=30)
    assert _version(dsn) == 23
    assert errors.count("schema.not_upgraded") == 1, errors
