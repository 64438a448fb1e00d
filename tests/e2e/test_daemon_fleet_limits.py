"""Fleet-wide limits with two real daemons (two worker processes each) on one database: a
concurrency limit holds across both, as does a rate; jobs over a limit lose no attempt; other
tasks keep flowing while a limited one is saturated. Each job of the task ``spanned`` notes
when it began and ended, so what ran at once is read from the jobs themselves."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from helpers.daemon import Daemon, add_distribution
from helpers.sql import execute
from helpers.waiting import wait_until

from minion_daemon import Minion
from minion_daemon.limits import concurrency_lock


@pytest.fixture
def start_fleet(task_path: Path, start: Any, dsn: str) -> Any:
    """``start_fleet(**tasks)``: two daemons with ``workers.tasks`` set to ``tasks``."""
    add_distribution(task_path, "limit-test-tasks", {"spanned": "helpers.worker_tasks:spanned"})

    def fleet(**tasks: Any) -> list[Daemon]:
        daemons = [start(workers={"tasks": tasks})[0] for _ in range(2)]
        wait_until(lambda: _workers(dsn) >= 4, 30, "both daemons' four worker processes")
        return daemons

    return fleet


def _workers(dsn: str) -> int:
    return int(execute(dsn, "SELECT COUNT(*) FROM minion_workers")[0][0])


def _wait_ended(dsn: str, count: int, task: str = "spanned", timeout: float = 60) -> None:
    def ended() -> bool:
        sql = "SELECT COUNT(*) FROM minion_jobs WHERE task = %s AND state IN ('finished', 'failed')"
        return int(execute(dsn, sql, [task])[0][0]) >= count

    wait_until(ended, timeout, f"{count} {task} jobs to end")


def _jobs(dsn: str) -> list[dict[str, Any]]:
    rows = execute(
        dsn,
        "SELECT state, retries, notes->'span', worker FROM minion_jobs WHERE task = 'spanned'",
    )
    return [{"state": r[0], "retries": r[1], "span": r[2], "worker": r[3]} for r in rows]


def _most_at_once(spans: list[list[float]]) -> int:
    edges = sorted([(began, 1) for began, _ in spans] + [(ended, -1) for _, ended in spans])
    running = most = 0
    for _, step in edges:  # an end sorts before a start at the same instant
        running += step
        most = max(most, running)
    return most


def _events(daemon: Daemon, *names: str) -> int:
    """How many of the daemon's log lines are one of these events."""
    assert daemon.log is not None
    lines = daemon.log.read_text(encoding="utf-8").splitlines()
    return sum(json.loads(line).get("event") in names for line in lines if line.startswith("{"))


def test_a_concurrency_limit_holds_across_two_daemons_and_costs_no_attempt(
    start_fleet: Any, minion: Minion, dsn: str
) -> None:
    daemons = start_fleet(spanned={"concurrency": 2})
    for _ in range(10):
        minion.enqueue("spanned", [0.4], attempts=1)
    _wait_ended(dsn, 10)
    jobs = _jobs(dsn)
    assert {job["state"] for job in jobs} == {"finished"}, "attempts=1: a used-up one fails"
    assert {job["retries"] for job in jobs} == {0}
    assert _most_at_once([job["span"] for job in jobs]) == 2
    # Eight free slots tried the task: both daemons started jobs of it or were refused one.
    assert all(_events(daemon, "job.started", "job.deferred") for daemon in daemons)
    assert sum(_events(daemon, "job.deferred") for daemon in daemons) > 0
    assert minion.backend.list_locks(0, 10, {"names": [concurrency_lock("spanned")]}) == {
        "locks": [],
        "total": 0,
    }, "every slot was given back"


def test_a_rate_holds_across_two_daemons(start_fleet: Any, minion: Minion, dsn: str) -> None:
    start_fleet(spanned={"rate": "2/1s"})
    for _ in range(6):
        minion.enqueue("spanned", [0], attempts=1)
    _wait_ended(dsn, 6)
    jobs = _jobs(dsn)
    assert {(job["state"], job["retries"]) for job in jobs} == {("finished", 0)}
    starts = sorted(job["span"][0] for job in jobs)
    # Any third start comes a period after the first of the three; a hold is taken a moment
    # before its job process notes its start, hence the slack.
    gaps = [later - first for first, later in zip(starts, starts[2:], strict=False)]
    assert min(gaps) > 0.8, starts


def test_other_tasks_keep_flowing_while_a_limited_one_is_saturated(
    start_fleet: Any, minion: Minion, dsn: str
) -> None:
    daemons = start_fleet(spanned={"concurrency": 1})
    began = time.monotonic()
    for _ in range(8):
        minion.enqueue("spanned", [1], priority=10)
    wait_until(lambda: any(job["state"] == "active" for job in _jobs(dsn)), 30, "a job to run")
    others = [minion.enqueue("add", [1, 2]) for _ in range(20)]
    _wait_ended(dsn, 20, task="add", timeout=30)
    assert all(minion.job(job_id).info["state"] == "finished" for job_id in others)  # type: ignore[union-attr]
    ended = sum(job["span"] is not None for job in _jobs(dsn))
    assert ended < 8, "the limited task was still saturated while the others ran"
    # No busy loop: a worker refused a slot tries the task again a second later (or when a
    # job of it ends there), so four workers are refused a few times a second at most.
    deferred = sum(_events(daemon, "job.deferred") for daemon in daemons)
    assert deferred <= 4 * 2 * (time.monotonic() - began + 1)
