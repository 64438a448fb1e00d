"""Kill storm: SIGKILL for worker and job processes every ~200 ms while thousands of jobs run.

The real daemon (2 worker processes x 4 jobs, fork mode) works through TOTAL jobs of
``record_run`` with ATTEMPTS attempts while the test kills one of its processes every
KILL_EVERY seconds: every WORKER_TURN-th kill a worker process (its fork server and job
processes die with it, and its supervisor fails and retries their jobs) or, in turn, a fork
server (its job processes die with it, and its worker records their failures and exits, to
be replaced), the others a job process (its worker records the failure and retries the job).
At the end:

- nothing is lost: every job is finished, or failed with the reason of a kill;
- nothing is recorded twice: a finished job was recorded finished exactly once (the
  ``finishes`` trigger), with the token of the run of its final ``retries``, and no attempt,
  ``(job, retries)``, ran twice;
- no job ran more than ATTEMPTS times: ``retries + attempts`` still adds up to ATTEMPTS
  (Minion lowers ``attempts`` by one on each automatic retry).

The same storm, of PGBOUNCER_TOTAL jobs, runs with every statement of the daemon going through
PgBouncer's transaction pooling (LISTEN over ``postgres.listen_dsn``): a client killed
mid-transaction costs PgBouncer its server session, which PostgreSQL rolls back.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections import Counter
from typing import Any, Final

import psycopg
import pytest
from helpers.daemon import Daemon
from helpers.fault_tasks import double_finishes, instrument, violations
from helpers.pgbouncer import PgBouncer
from helpers.processes import children, signal_child
from helpers.sql import execute, hasten_retries
from helpers.waiting import wait_until

from minion_daemon.backend import PgBackend

#: One after another, never beside each other: see tests/faults/conftest.py.
pytestmark = pytest.mark.xdist_group("faults")

#: Jobs of the storm, as the issue asks: 125 to 155 s on 2 quiet cores (88 s before issue 13). The
#: suite runs it first, beside the other tests (see ``slow`` in tests/conftest.py).
TOTAL = int(os.environ.get("MINION_DAEMON_STORM_JOBS", "5000"))
#: Jobs of the storm through PgBouncer, as issue 18 asks.
PGBOUNCER_TOTAL = int(os.environ.get("MINION_DAEMON_PGBOUNCER_STORM_JOBS", "1000"))
ATTEMPTS = 3
#: Seconds each run sleeps after writing its row: short jobs, but long enough to be hit.
RUN_SECONDS = 0.005
KILL_EVERY = 0.2
#: Every WORKER_TURN-th kill is a worker process's, the others a job process's.
WORKER_TURN = 5
#: A worker is killed only once it ran this long: one killed before the supervisor heard it
#: boot would count towards the crash-loop limit, which stops the daemon on purpose.
WORKER_MIN_AGE = 1.5
#: What the daemon is started with, beside its database.
SETTINGS: Final = {
    "minion": {"missing_after": 4},
    "repair": {"interval": 1},
    "logging": {"level": "warning"},
}


def _limit(total: int) -> float:
    """Seconds the whole storm may take before the test gives up: 20 jobs/s, and a minute more."""
    return 60.0 + total / 20


KILL_REASONS = ("Worker went away", "Job terminated unexpectedly (exit code: 0, signal: 9)")


class Storm:
    """Kills a random process of the daemon on every :meth:`strike`."""

    def __init__(self, supervisor: int, seed: int) -> None:
        self.supervisor = supervisor
        self.random = random.Random(seed)
        self.first_seen: dict[int, float] = {}
        self.kills: Counter[str] = Counter()
        self.turn = 0

    def strike(self) -> None:
        now = time.monotonic()
        workers = children(self.supervisor)
        for pid in workers:
            self.first_seen.setdefault(pid, now)
        # A worker process's child is its fork server, whose children are the job processes.
        servers = [(server, worker) for worker in workers for server in children(worker)]
        self.turn += 1
        if self.turn % WORKER_TURN == 0:
            aged = [pid for pid in workers if now - self.first_seen[pid] >= WORKER_MIN_AGE]
            if (self.turn // WORKER_TURN) % 2:
                targets = [(pid, self.supervisor) for pid in aged]
                kind = "worker"
            else:
                # The worker of a dead fork server fails its jobs and exits, to be replaced.
                targets = [(server, worker) for server, worker in servers if worker in aged]
                kind = "fork server"
        else:
            targets = [(job, server) for server, _ in servers for job in children(server)]
            kind = "job"
        if targets:
            pid, parent = self.random.choice(targets)
            if signal_child(pid, parent, signal.SIGKILL):
                self.kills[kind] += 1


def _unsettled(dsn: str) -> int:
    query = "SELECT count(*) FROM minion_jobs WHERE state IN ('inactive', 'active')"
    return int(execute(dsn, query)[0][0])


@pytest.mark.slow(seconds=_limit(TOTAL) / 2)
def test_kill_storm_loses_nothing_and_finishes_nothing_twice(
    make_database: Any, launch: Any, figures: Any
) -> None:
    dsn = make_database(25)
    instrument(dsn)
    _storm(dsn, launch(dsn, **SETTINGS), TOTAL, figures)


@pytest.mark.slow(seconds=_limit(PGBOUNCER_TOTAL) / 2)
def test_kill_storm_through_pgbouncer_loses_nothing_and_finishes_nothing_twice(
    make_database: Any, pgbouncer: PgBouncer, launch: Any, figures: Any
) -> None:
    dsn = make_database(25)
    instrument(dsn)
    through = pgbouncer.dsn(str(psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]))
    postgres = {"dsn": through, "pool_mode": "transaction", "listen_dsn": dsn}
    daemon = launch(dsn, **SETTINGS | {"postgres": postgres})
    _storm(dsn, daemon, PGBOUNCER_TOTAL, figures, route=f" through {pgbouncer.version}")


def _storm(dsn: str, daemon: Daemon, total: int, figures: Any, route: str = "") -> None:
    """Enqueue ``total`` jobs on ``dsn`` (directly), storm ``daemon`` until every one is
    settled, and check what it recorded; ``route`` names the way in the figures."""
    wait_until(lambda: len(execute(dsn, "SELECT id FROM minion_workers")) == 2, 30, "2 workers")
    backend = PgBackend(dsn, pooled=False)
    try:
        backend.enqueue_many([("record_run", [RUN_SECONDS], {"attempts": ATTEMPTS})] * total)
    finally:
        backend.close()
    seed = random.randrange(2**32)
    storm = Storm(daemon.pid, seed)
    started = time.monotonic()
    next_check = started
    while True:
        now = time.monotonic()
        assert daemon.process.poll() is None, "the daemon died"
        limit = _limit(total)
        assert now - started < limit, f"jobs still unsettled after {limit:g} s"
        if now >= next_check:
            hasten_retries(dsn)
            if _unsettled(dsn) == 0:
                break
            next_check = now + 1
        storm.strike()
        time.sleep(KILL_EVERY)
    elapsed = time.monotonic() - started
    daemon.signal(signal.SIGTERM)
    code, log = daemon.finish()
    assert code == 0, log[-3000:]

    states = dict(execute(dsn, "SELECT state::text, count(*) FROM minion_jobs GROUP BY 1"))
    runs = execute(dsn, "SELECT count(*) FROM runs")[0][0]
    lost = total - states.get("finished", 0) - states.get("failed", 0)
    report = (
        f"kill storm{route} (seed {seed}): {total} jobs settled in {elapsed:.1f} s; {runs} runs;"
        f" {states.get('finished', 0)} finished, {states.get('failed', 0)} failed;"
        f" kills: {storm.kills['worker']} worker processes,"
        f" {storm.kills['fork server']} fork servers, {storm.kills['job']} job processes;"
        f" lost: {lost}; finished twice: {double_finishes(dsn)}"
    )
    figures(report)
    assert sum(states.values()) == total, f"jobs lost: {report}"
    assert set(states) <= {"finished", "failed"}, report
    assert storm.kills["worker"], report
    assert storm.kills["fork server"], report
    assert storm.kills["job"], report

    # Failed jobs failed for a kill, after at most ATTEMPTS runs.
    failed = "SELECT DISTINCT result #>> '{}' FROM minion_jobs WHERE state = 'failed'"
    reasons = execute(dsn, failed)
    assert {reason for (reason,) in reasons} <= set(KILL_REASONS), report
    overrun = "SELECT id FROM minion_jobs WHERE retries + attempts <> %s OR attempts < 1"
    assert not execute(dsn, overrun, (ATTEMPTS,)), report
    # Nothing recorded twice: see helpers.fault_tasks.VIOLATIONS.
    assert violations(dsn) == {}, report
