"""A stopping worker gives up on a database that stays unreachable (``STOP_PATIENCE``).

A worker told to stop waits for its running jobs, to record their outcomes. If the database
is gone meanwhile and stays gone for ``STOP_PATIENCE`` (120 s), it leaves the jobs to repair
(their processes end with its fork server) and exits instead of lingering, an orphan if its
supervisor is gone too. The patience is a module constant with no setting, so this test runs
the Worker in this process and shortens it there. "Unreachable" is the worker's own database
refusing connections (``ALLOW_CONNECTIONS false``, its sessions terminated): every statement
of the worker then fails with DatabaseUnavailableError, as it would with the server down.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from typing import Any

import pytest
from helpers.postgres import Server
from helpers.processes import gone
from helpers.sql import execute
from helpers.waiting import wait_until
from helpers.worker_tasks import sleep
from psycopg import conninfo, sql

from minion_daemon import Minion
from minion_daemon.backend import PgBackend
from minion_daemon.worker import loop

PATIENCE = 2.0
#: A stopping worker that is still there this long after the outage began never gives up.
GIVE_UP_WITHIN = 30.0


def _allow_connections(server: Server, dbname: str, allowed: bool) -> None:
    with server.admin() as admin:
        admin.execute(
            sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS {}").format(
                sql.Identifier(dbname), sql.Literal(allowed)
            )
        )
        if not allowed:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (dbname,),
            )


def test_a_stopping_worker_leaves_its_jobs_to_repair_once_the_database_stays_away(
    make_database: Callable[[int | None], str],
    pg_server: Server,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dsn = make_database(25)
    dbname = str(conninfo.conninfo_to_dict(dsn)["dbname"])
    monkeypatch.setattr(loop, "STOP_PATIENCE", PATIENCE)
    minion = Minion(PgBackend(dsn, pooled=False, connect_timeout=1))
    minion.add_task("sleep", sleep)
    job_id = minion.enqueue("sleep", [60])
    running = minion.worker(
        jobs=1, spare=0, dequeue_timeout=0.2, heartbeat_interval=1, command_interval=1,
        repair_interval=0,
    )  # fmt: skip
    outages: list[Any] = []
    running.on("outage", lambda _, error: outages.append(error))
    cut: list[float] = []

    def turn(_: object) -> None:
        """Once the job runs: cut the database, then stop the worker as TERM does."""
        if not cut and running.running:
            _allow_connections(pg_server, dbname, False)
            cut.append(time.monotonic())
            os.kill(os.getpid(), signal.SIGTERM)  # to the worker's handler, installed by run()
        elif cut and time.monotonic() - cut[0] > GIVE_UP_WITHIN:
            raise AssertionError(f"the stopping worker still waits after {GIVE_UP_WITHIN:g} s")

    running.on("turn", turn)
    pids: list[int] = []
    running.on("dequeue", lambda _, job: job.on("spawn", lambda _, pid: pids.append(pid)))
    try:
        running.run()
        waited = time.monotonic() - cut[0]
        assert outages, "the worker met the outage"
        assert PATIENCE <= waited < GIVE_UP_WITHIN, f"gave up after {waited:.1f} s"
        [job] = running.running.values()
        assert job.id == job_id
        # Its job process ended with its fork server: repair retries the job, which must not
        # run on meanwhile.
        wait_until(lambda: gone(pids[0]), 10, "the abandoned job process to end")
        # Left to repair: the job still active, the worker's row still there (it could not
        # unregister).
        _allow_connections(pg_server, dbname, True)
        state = "SELECT state::text, worker FROM minion_jobs WHERE id = %s"
        assert execute(dsn, state, (job_id,)) == [("active", running.id)]
        assert execute(dsn, "SELECT id FROM minion_workers") == [(running.id,)]
    finally:
        _allow_connections(pg_server, dbname, True)
        minion.close()
