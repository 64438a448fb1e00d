"""A graceful stop (TERM) under load: 1,000 jobs of 1-3 s, 8 running and the rest waiting.

The daemon must exit within ``shutdown.graceful_timeout`` plus a few seconds, leave no job
active and lose none: a job that finished in time is finished; one still running at the
timeout was ended (TERM) and retried, so it is inactive again with one retry; one that never
started is inactive and untouched. Nothing is failed for good.
"""

from __future__ import annotations

import signal
import time
from typing import Any

import pytest
from helpers.sql import execute
from helpers.waiting import wait_until

from minion_daemon.backend import PgBackend

#: One after another, never beside each other: see tests/faults/conftest.py.
pytestmark = pytest.mark.xdist_group("faults")

TOTAL = 1000
#: Job lengths, in turn: jobs that finish within the graceful timeout, and some that cannot.
SECONDS = (1.0, 2.0, 3.0)
GRACEFUL_TIMEOUT = 2.0
#: What a graceful stop may take beyond its timeout: the QUIT, the jobs' TERM, the recording.
SLACK = 4.0
TERMINATED = "Job terminated unexpectedly (exit code: 0, signal: 15)"


def _running_past_timeout(dsn: str) -> int:
    """Active jobs with more than the graceful timeout (and a margin) still to run."""
    query = (
        "SELECT count(*) FROM minion_jobs WHERE state = 'active'"
        " AND started + (args->>0)::float8 * INTERVAL '1 second' > NOW() + %s * INTERVAL '1 second'"
    )
    return int(execute(dsn, query, (GRACEFUL_TIMEOUT + 0.5,))[0][0])


@pytest.mark.slow
def test_term_under_load_exits_in_time_and_loses_nothing(
    dsn: str, launch: Any, figures: Any
) -> None:
    daemon = launch(dsn, shutdown={"graceful_timeout": GRACEFUL_TIMEOUT})
    backend = PgBackend(dsn, pooled=False)
    try:
        jobs = [("sleep", [SECONDS[n % len(SECONDS)]], {"attempts": 2}) for n in range(TOTAL)]
        backend.enqueue_many(jobs)
    finally:
        backend.close()
    wait_until(
        lambda: (
            execute(dsn, "SELECT count(*) FROM minion_jobs WHERE state = 'finished'")[0][0] >= 8
        ),
        30,
        "a first round of jobs to finish",
    )
    # Stop while some running job cannot finish within the graceful timeout.
    wait_until(lambda: _running_past_timeout(dsn), 30, "a long job to be running")
    stopping = time.monotonic()
    daemon.signal(signal.SIGTERM)
    code, log = daemon.finish(timeout=GRACEFUL_TIMEOUT + 30)
    took = time.monotonic() - stopping
    assert code == 0, log[-3000:]

    kinds = {
        (state, retries, started, result): count
        for state, retries, started, result, count in execute(
            dsn,
            "SELECT state::text, retries, started IS NOT NULL, result #>> '{}', count(*)"
            " FROM minion_jobs GROUP BY 1, 2, 3, 4",
        )
    }
    finished = sum(count for (state, *_), count in kinds.items() if state == "finished")
    retried = kinds.get(("inactive", 1, True, TERMINATED), 0)
    untouched = kinds.get(("inactive", 0, False, None), 0)
    figures(
        f"graceful stop under load: exited {took:.2f} s after TERM (graceful_timeout"
        f" {GRACEFUL_TIMEOUT:g} s); {finished} finished, {retried} ended and retried,"
        f" {untouched} never started"
    )
    assert took < GRACEFUL_TIMEOUT + SLACK
    assert finished + retried + untouched == TOTAL, kinds
    assert retried >= 1
    wrong = "SELECT count(*) FROM minion_jobs WHERE state = 'finished' AND result <> args->0"
    assert execute(dsn, wrong)[0][0] == 0
    assert execute(dsn, "SELECT count(*) FROM minion_workers")[0][0] == 0
