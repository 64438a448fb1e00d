"""``FleetLimits``: a worker's side of the fleet-wide limits per task (:mod:`minion_daemon.limits`).

Both limits are Minion's own counting locks, so that every worker on the database, of any
daemon, counts against the same rows (``minion_lock`` serializes its callers on the locks
table):

* ``concurrency: N``: a job takes one of ``N`` holds of the lock
  :func:`~minion_daemon.limits.concurrency_lock` before it starts and gives it back when it
  ends. A hold also expires on its own (:func:`~minion_daemon.limits.hold_seconds`: the task's
  timeout plus a margin, or an hour without one), because a worker that is KILLed, or whose
  host is lost, never gives its holds back; without the expiry they would shrink the limit for
  good. The price: a job running past its hold no longer counts, so a task whose jobs may run
  longer than an hour should have a timeout.
* ``rate: N/PERIOD``: a job takes one of ``N`` holds of :func:`~minion_daemon.limits.rate_lock`
  for ``PERIOD`` seconds when it starts and never gives it back: at most ``N`` starts in any
  window of ``PERIOD``.

The locks are taken after the claim (Minion's claim cannot take them), so a claimed job over a
limit goes back to waiting (``defer_job``: inactive again, its attempts untouched) and never
sits in a slot. Its task is then left out of this worker's claims until it may have room again:
the first hold of the rate expiring, or :data:`CONCURRENCY_RECHECK` for a concurrency limit
(sooner when a job of the task ends here). So a saturated task costs each worker at most one
wasted claim per recheck, never a busy loop, and the other tasks keep being claimed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING, Final

from minion_daemon import logs
from minion_daemon.errors import DatabaseUnavailableError
from minion_daemon.limits import concurrency_lock, hold_seconds, rate_lock

if TYPE_CHECKING:
    from minion_daemon.backend.protocol import Backend
    from minion_daemon.model import DequeuedJob
    from minion_daemon.tasks import TaskRegistry, TaskSpec

log = logs.get_logger("minion_daemon.worker")

#: Seconds a task whose concurrency limit was full is left out of this worker's claims.
CONCURRENCY_RECHECK: Final = 1.0
#: The shortest time a task over its rate is left out: the first hold may expire any moment.
MIN_RECHECK: Final = 0.05

#: Called with a deferred job and the limit (``concurrency`` or ``rate``) it was over.
OnDeferred = Callable[["DequeuedJob", str], None]


class FleetLimits:
    """Takes and gives back the limited tasks' holds for one worker, and remembers which of
    its tasks wait out a full limit."""

    def __init__(
        self,
        backend: Backend,
        tasks: TaskRegistry,
        on_deferred: OnDeferred,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._backend = backend
        self._tasks = tasks
        self._on_deferred = on_deferred
        self._clock = clock
        #: Tasks left out of the claims, and when (on ``clock``) they may be claimed again.
        self._waiting: dict[str, float] = {}
        #: The ids of this worker's jobs holding a concurrency slot, with their tasks.
        self._holding: dict[int, str] = {}
        #: Claimed jobs whose holds could not be taken for want of the database: they go back
        #: to waiting once it answers, rather than stay active, unstarted, for as long as this
        #: worker lives (repair leaves a live worker's jobs alone).
        self._stranded: list[DequeuedJob] = []

    def open_tasks(self, tasks: Sequence[str]) -> Sequence[str]:
        """``tasks`` without those waiting out a full limit."""
        if not self._waiting:
            return tasks
        self._end_waits()
        return [task for task in tasks if task not in self._waiting]

    def limited(self, tasks: Collection[str]) -> bool:
        """Whether any of ``tasks`` has a fleet-wide limit."""
        return not self._tasks.limited_names().isdisjoint(tasks)

    def due_in(self) -> float:
        """Seconds until a task waiting out a limit may be claimed again (inf: none waits)."""
        # A wait that ended is forgotten here too: a worker at capacity asks this without
        # claiming, and must not be told over and over that something is due now.
        if not self._waiting:
            return float("inf")
        self._end_waits()
        if not self._waiting:
            return float("inf")
        return min(self._waiting.values()) - self._clock()

    def _end_waits(self) -> None:
        now = self._clock()
        for task, until in list(self._waiting.items()):
            if until <= now:
                del self._waiting[task]

    def admit(self, claimed: Sequence[DequeuedJob], worker_id: int) -> list[DequeuedJob]:
        """The claimed jobs that may start: each of a limited task takes its holds, and one
        over a limit goes back to waiting."""
        if self._stranded:
            self._defer_stranded(worker_id)
        if not self.limited([job["task"] for job in claimed]):
            return list(claimed)
        admitted = []
        for job in claimed:
            spec = self._spec(job["task"])
            try:
                over = None if spec is None else self._take(job, spec)
                if over is None:
                    admitted.append(job)
                else:
                    self._defer(job, worker_id, *over)
            except DatabaseUnavailableError as error:
                # Whether a hold was taken is unknown; if it was, it expires on its own.
                log.warning("job.limit_unknown", job_id=job["id"], error=str(error))
                self._waiting[job["task"]] = self._clock() + CONCURRENCY_RECHECK
                self._stranded.append(job)
        return admitted

    def _defer(self, job: DequeuedJob, worker_id: int, limit: str, wait: float) -> None:
        self._waiting[job["task"]] = self._clock() + wait
        if self._backend.defer_job(job["id"], job["retries"], worker_id):
            log.info(
                "job.deferred",
                job_id=job["id"],
                task=job["task"],
                queue=job["queue"],
                limit=limit,
                task_waits=round(wait, 3),
            )
            self._on_deferred(job, limit)

    def _defer_stranded(self, worker_id: int) -> None:
        stranded, self._stranded = self._stranded, []
        for index, job in enumerate(stranded):
            try:
                self._defer(job, worker_id, "unknown", CONCURRENCY_RECHECK)
            except DatabaseUnavailableError:
                self._stranded = stranded[index:]
                return

    def release(self, job_id: int) -> None:
        """Give back the concurrency slot of an ended job, if it holds one; its task may be
        claimed again at once, as the slot is free."""
        task = self._holding.pop(job_id, None)
        if task is None:
            return
        self._waiting.pop(task, None)
        try:
            self._backend.unlock(concurrency_lock(task))
        except DatabaseUnavailableError as error:
            log.warning(
                "job.slot_not_released",
                job_id=job_id,
                task=task,
                error=str(error),
                consequence="the slot expires on its own",
            )

    def _spec(self, task: str) -> TaskSpec | None:
        spec = self._tasks.get(task)
        return spec if spec is not None and spec.limit.limited else None

    def _take(self, job: DequeuedJob, spec: TaskSpec) -> tuple[str, float] | None:
        """Take ``job``'s holds; ``None`` when it has them, else the limit it is over and how
        long its task should wait."""
        task, limit = spec.name, spec.limit
        if limit.concurrency is not None:
            slot = {"limit": limit.concurrency}
            if not self._backend.lock(concurrency_lock(task), hold_seconds(spec.timeout), slot):
                return "concurrency", CONCURRENCY_RECHECK
        if limit.rate is not None:
            start = {"limit": limit.rate.count}
            if not self._backend.lock(rate_lock(task), limit.rate.period, start):
                if limit.concurrency is not None:
                    self._backend.unlock(concurrency_lock(task))
                # None: the holds expired since; the task may be tried again soon.
                expiry = self._backend.lock_expiry(rate_lock(task))
                return "rate", max(MIN_RECHECK, expiry or 0.0)
        if limit.concurrency is not None:
            self._holding[job["id"]] = task
        return None
