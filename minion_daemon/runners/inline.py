"""Inline mode: jobs run in the worker's own process, one after another; batched when the
worker claims several at once (``workers.batch``), its successes then recorded together.

A task's timeout is enforced by the worker's pulse (a timer signal), which calls
:meth:`InlineRunner.pulse`: past the deadline it raises :class:`InlineTimeoutError` in the
task, so only that job fails, at most a pulse late. A task stuck in C never sees it, and
stops the pulses too: its worker is killed as hung (at ``workers.liveness_timeout``), and its
jobs are failed as any dead worker's are.
"""

from __future__ import annotations

import time
from collections.abc import Collection

from minion_daemon import logs
from minion_daemon.job import Job
from minion_daemon.model import Mode
from minion_daemon.outcome import Ending
from minion_daemon.runners import Ended

log = logs.get_logger("minion_daemon.runners.inline")


class InlineTimeoutError(BaseException):
    """Raised inside an inline task that ran past its timeout, by the pulse.

    A BaseException, as KeyboardInterrupt is, so a task's ``except Exception`` cannot swallow
    it: only that job fails, and the worker goes on.
    """

    def __init__(self, seconds: float) -> None:
        super().__init__(f"timed out after {seconds:g} seconds")
        self.seconds = seconds


class InlineRunner:
    """Runs each job to its end inside :meth:`launch`."""

    mode = Mode.INLINE

    def __init__(self) -> None:
        self._ended: list[Ended] = []
        #: When the running job times out (monotonic), and after how many seconds.
        self._deadline: tuple[float, float] | None = None

    def launch(self, jobs: Collection[Job]) -> None:
        mode = "batch" if len(jobs) > 1 else "inline"
        for job in jobs:
            self._ended.append(self.run(job, mode))

    def run(self, job: Job, mode: str = "inline") -> Ended:
        """Run ``job`` here under its task's timeout."""
        spec = job.minion.tasks.get(job.task)
        timeout = None if spec is None else spec.timeout
        started = time.monotonic()
        with logs.bound(**job.log_fields()):
            log.debug("job.started", mode=mode, latency=job.latency)
            # The pulse raises at most once per deadline (it clears the deadline first), and
            # only inside the outer try: a pulse between the task's return and the inner
            # finally still lands in the except below.
            try:
                if timeout is not None:
                    self._deadline = (started + timeout, timeout)
                try:
                    ending = job.ending(job.execute())
                finally:
                    self._deadline = None
            except InlineTimeoutError as expired:
                ending = Ending(recorded=job.outcome is not None, timed_out_after=expired.seconds)
        return Ended(job, ending, time.monotonic() - started)

    def pulse(self) -> None:
        """The timer's tick, in a signal handler: end the running task if its time is up."""
        deadline = self._deadline
        if deadline is not None and time.monotonic() >= deadline[0]:
            self._deadline = None
            raise InlineTimeoutError(deadline[1])

    def fds(self) -> list[int]:
        return []

    def collect(self) -> list[Ended]:
        ended, self._ended = self._ended, []
        return ended

    def due_in(self) -> float:
        return float("inf")

    def signal(self, job_id: int, signum: int) -> bool:
        return False

    def stop_all(self, grace: float) -> None:
        """Nothing runs between launches."""

    def close(self) -> None:
        self._ended.clear()
