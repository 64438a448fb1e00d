"""Timing workers that drain a queue of no-op jobs.

The workers start first and wait, registered and idle; then N jobs arrive in one
``enqueue_many`` (one commit, one notification), and the workers drain them. The rate is N over
the database's own span from the first claim (``MIN(started)``) to the last finish
(``MAX(finished)``), so neither process start-up nor the bench's polling counts.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from bench.context import Context
from bench.database import Database
from bench.processes import (
    Started,
    cpu_seconds,
    machine_cpu_seconds,
    memory,
    stop_all,
    wait_until,
)
from minion_daemon import Minion

#: After registering, a worker's first pass heartbeats and repairs; give it time to reach its
#: wait for a job, so the drain starts with every worker idle.
SETTLE = 1.0
CHUNK = 20_000


class DrainError(RuntimeError):
    pass


@dataclass
class Drain:
    jobs: int
    seconds: float
    failed: int
    #: Peak RSS (VmHWM, kB) of each worker process, read before it was stopped.
    peaks: list[int] = field(default_factory=list)
    #: Commits and new database sessions per job (pg_stat_database; None where unknown).
    commits: float | None = None
    sessions: float | None = None
    #: CPU milliseconds per job: the worker processes (with their job processes), and the
    #: whole machine (the database, the workers, the bench, and anything else running).
    worker_cpu_ms: float = 0.0
    machine_cpu_ms: float = 0.0

    @property
    def rate(self) -> float:
        return self.jobs / self.seconds


def wait_registered(db: Database, workers: Sequence[Started], timeout: float = 60) -> None:
    def registered() -> bool:
        for worker in workers:
            if not worker.alive():
                raise DrainError(f"a worker exited at start; its log ends:\n{worker.tail()}")
        return len(db.worker_pids()) >= len(workers)

    wait_until(registered, timeout, "workers registering", interval=0.1)
    time.sleep(SETTLE)


def enqueue_noops(minion: Minion, count: int, task: str = "noop") -> None:
    for first in range(0, count, CHUNK):
        minion.enqueue_many([(task, None, None)] * min(CHUNK, count - first))


def wait_drained(
    ctx: Context,
    db: Database,
    workers: Sequence[Started],
    jobs: int,
    label: str,
    *,
    task: str | None = None,
) -> None:
    """Poll until no job is inactive or active; fail if a worker dies or it takes too long
    (30 s plus 20 ms per job: slower than any worker here ever is)."""
    deadline = time.monotonic() + 30 + jobs * 0.02
    while (remaining := db.unfinished(task)) > 0:
        for worker in workers:
            if not worker.alive():
                raise DrainError(f"{label}: a worker died; its log ends:\n{worker.tail()}")
        if time.monotonic() > deadline:
            raise DrainError(f"{label}: {remaining} of {jobs} jobs still unfinished, gave up")
        ctx.progress.every(f"  {label}: {jobs - remaining}/{jobs} jobs done")
        time.sleep(0.1)


def drain(
    ctx: Context,
    db: Database,
    minion: Minion,
    workers: Sequence[Started],
    jobs: int,
    *,
    label: str,
    task: str = "noop",
    only_noops: bool = False,
) -> Drain:
    """Time ``workers`` (already started on an emptied ``db``) draining ``jobs`` jobs of
    ``task`` (without arguments); stops the workers whatever happens. ``only_noops``: jobs of
    other tasks may stay behind (the ``fleet`` phase leaves jobs of a saturated task and of a
    paused queue waiting)."""
    try:
        wait_registered(db, workers)
        before = db.activity()
        cpu = _cpu(workers)
        enqueue_noops(minion, jobs, task)
        wait_drained(ctx, db, workers, jobs, label, task=task if only_noops else None)
        worker_cpu, machine_cpu = (after - first for after, first in zip(_cpu(workers), cpu,
                                                                           strict=True))
        outcome = db.outcomes(task)
        peaks = [memory(worker.pid).get("VmHWM", 0) for worker in workers]
    finally:
        stop_all(workers)
    if outcome["finished"] + outcome["failed"] != jobs or not outcome["span"]:
        raise DrainError(f"{label}: expected {jobs} ended jobs, found {outcome}")
    time.sleep(0.5)  # the workers' sessions report their counts as they end
    after = db.activity()
    per_job = {key: (after[key] - before[key]) / jobs for key in after if key in before}
    return Drain(jobs, float(outcome["span"]), int(outcome["failed"]), peaks,
                 per_job.get("commits"), per_job.get("sessions"), worker_cpu * 1000 / jobs,
                 machine_cpu * 1000 / jobs)


def _cpu(workers: Sequence[Started]) -> tuple[float, float]:
    return sum(cpu_seconds(worker.pid) for worker in workers), machine_cpu_seconds()
