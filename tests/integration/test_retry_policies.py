"""Retry policies per task, against a real PostgreSQL: the backoff a failed job waits (read
from its row: ``delayed - retried``, both set by the one statement that retried it) and the
exceptions that fail a job for good, with jobs run as the daemon runs them (forked or inline,
through ``perform_jobs``) and with policies from the registration and from the config.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from helpers.sql import execute, hasten_retries

from minion_daemon import Minion
from minion_daemon.config import load_config
from minion_daemon.job import Job
from minion_daemon.retry import Exponential
from minion_daemon.worker.process import load_tasks

MODES = ["fork", "inline"]


class PermanentError(ValueError):
    """A failure no retry cures."""


def _fails(job: Job) -> None:
    raise ValueError("try again")


def _fails_for_good(job: Job, size: int = 5) -> None:
    raise PermanentError("n" * size)


def _raises(job: Job, name: str) -> None:
    raise {"KeyError": KeyError, "ValueError": ValueError}[name](name)


def _fails_by_hand(job: Job) -> None:
    job.fail("by hand")


def _sleeps(job: Job) -> None:
    time.sleep(30)


def _row(dsn: str, job_id: int) -> dict[str, Any]:
    [(state, retries, delay, result)] = execute(
        dsn,
        "SELECT state, retries, EXTRACT(EPOCH FROM delayed - retried)::float8, result"
        " FROM minion_jobs WHERE id = %s",
        [job_id],
    )
    return {"state": state, "retries": retries, "delay": delay, "result": result}


def _delays(minion: Minion, dsn: str, job_id: int) -> list[float]:
    """Run the job until it fails for good; the delay of each retry on the way."""
    delays = []
    while True:
        minion.perform_jobs()
        row = _row(dsn, job_id)
        if row["state"] != "inactive":
            assert row["state"] == "failed"
            return delays
        delays.append(round(row["delay"], 3))
        hasten_retries(dsn)


@pytest.mark.parametrize("mode", MODES)
def test_the_default_backoff_is_minions(minion: Minion, dsn: str, mode: str) -> None:
    minion.add_task("fails", _fails, mode=mode)
    job_id = minion.enqueue("fails", attempts=4)
    assert _delays(minion, dsn, job_id) == [15, 16, 31]


@pytest.mark.parametrize("mode", MODES)
def test_an_exponential_backoff_grows_to_its_maximum(minion: Minion, dsn: str, mode: str) -> None:
    minion.add_task("fails", _fails, mode=mode, backoff=Exponential(2, 3, 10))
    job_id = minion.enqueue("fails", attempts=5)
    assert _delays(minion, dsn, job_id) == [2, 6, 10, 10]


def test_jitter_takes_off_up_to_its_fraction(minion: Minion, dsn: str) -> None:
    minion.add_task("fails", _fails, backoff=Exponential(100, 1, 100, jitter=0.5))
    ids = [minion.enqueue("fails", attempts=2) for _ in range(4)]
    minion.perform_jobs()
    delays = [_row(dsn, job_id)["delay"] for job_id in ids]
    assert all(50 < delay <= 100 for delay in delays), delays
    assert len(set(delays)) > 1, "jobs failing together retry at different times"


@pytest.mark.parametrize("mode", MODES)
def test_a_callable_backoff_also_times_a_failure_the_task_records(
    minion: Minion, dsn: str, mode: str
) -> None:
    minion.add_task("fails", _fails, mode=mode, backoff=lambda retries: 100 + retries)
    minion.add_task("by_hand", _fails_by_hand, mode=mode, backoff=lambda retries: 7.5)
    by_hand = minion.enqueue("by_hand", attempts=2)
    minion.perform_jobs()
    assert _row(dsn, by_hand)["delay"] == 7.5
    assert _delays(minion, dsn, minion.enqueue("fails", attempts=3)) == [100, 101]


def test_a_task_without_a_backoff_follows_the_minions(minion: Minion, dsn: str) -> None:
    minion.backoff = lambda retries: 42
    minion.add_task("fails", _fails).add_task("own", _fails, backoff=lambda retries: 3)
    plain, own = minion.enqueue("fails", attempts=2), minion.enqueue("own", attempts=2)
    minion.perform_jobs()
    assert (_row(dsn, plain)["delay"], _row(dsn, own)["delay"]) == (42, 3)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("named", ["PermanentError", f"{__name__}.PermanentError", "ValueError"])
def test_no_retry_on_fails_a_job_with_attempts_left_at_once(
    minion: Minion, dsn: str, mode: str, named: str
) -> None:
    minion.add_task("permanent", _fails_for_good, mode=mode, no_retry_on=[named])
    job_id = minion.enqueue("permanent", attempts=5)
    minion.perform_jobs()
    row = _row(dsn, job_id)
    assert (row["state"], row["retries"]) == ("failed", 0)
    assert row["result"].startswith(f"{__name__}.PermanentError: nnnnn\n")


def test_a_final_error_too_large_to_hand_over_is_final_too(minion: Minion, dsn: str) -> None:
    """The job process records such an error itself, and applies the policy there."""
    minion.add_task("permanent", _fails_for_good, no_retry_on=[PermanentError])
    job_id = minion.enqueue("permanent", [100_000], attempts=5)
    minion.perform_jobs()
    row = _row(dsn, job_id)
    assert (row["state"], row["retries"], len(row["result"]) > 100_000) == ("failed", 0, True)


@pytest.mark.parametrize("mode", MODES)
def test_retry_on_retries_only_the_listed_classes(minion: Minion, dsn: str, mode: str) -> None:
    minion.add_task("raises", _raises, mode=mode, retry_on=["KeyError"])
    listed = minion.enqueue("raises", ["KeyError"], attempts=3)
    other = minion.enqueue("raises", ["ValueError"], attempts=3)
    minion.perform_jobs()
    assert (_row(dsn, listed)["state"], _row(dsn, listed)["retries"]) == ("inactive", 1)
    assert (_row(dsn, other)["state"], _row(dsn, other)["retries"]) == ("failed", 0)


def test_a_failure_without_an_exception_retries_under_retry_on(minion: Minion, dsn: str) -> None:
    """A timeout has no class to match: it retries, after the task's backoff."""
    minion.add_task("sleeps", _sleeps, timeout=0.5, retry_on=["KeyError"], backoff=lambda _: 9)
    job_id = minion.enqueue("sleeps", attempts=2)
    minion.perform_jobs()
    row = _row(dsn, job_id)
    assert (row["state"], row["retries"], row["delay"]) == ("inactive", 1, 9)


def test_the_config_sets_a_tasks_policy(minion: Minion, dsn: str, tmp_path: Path) -> None:
    """A worker process's bootstrap applies ``workers.tasks`` over the registration."""
    minion.add_task("fails", _fails, backoff=lambda retries: 1000)
    minion.add_task("permanent", _fails_for_good).add_task("plain", _fails, timeout=60)
    config_file = tmp_path / "config.yaml"
    config_file.write_text(
        "workers:\n  tasks:\n"
        "    fails: {backoff: {base: 4, factor: 2, maximum: 100}}\n"
        "    permanent: {no_retry_on: [ValueError]}\n"
        "    plain: {timeout: 60}\n"
        "tasks:\n  entry_points: []\n",
        encoding="utf-8",
    )
    load_tasks(minion, load_config(config_file))
    failing = minion.enqueue("fails", attempts=3)
    permanent = minion.enqueue("permanent", attempts=3)
    plain = minion.enqueue("plain", attempts=2)
    minion.perform_jobs()
    assert (_row(dsn, permanent)["state"], _row(dsn, permanent)["retries"]) == ("failed", 0)
    assert (_row(dsn, plain)["delay"], _row(dsn, failing)["delay"]) == (15, 4)
    hasten_retries(dsn)
    assert _delays(minion, dsn, failing) == [8]
