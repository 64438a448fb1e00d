"""Runners: one per execution mode, each behind the small :class:`Runner` protocol.

The worker owns its runners and its one wait: it launches the jobs it claimed in their
task's runner, waits on the runners' descriptors beside its own, and collects the jobs that
ended, to record each as :func:`minion_daemon.outcome.verdict` says. A new mode is one new
module here.
"""

from __future__ import annotations

import signal
from collections.abc import Collection
from dataclasses import dataclass
from typing import Final, Protocol

from minion_daemon.job import Job
from minion_daemon.model import ExitReason, Mode
from minion_daemon.outcome import Ending

#: How a job process (or event loop) that died with the process it came from counts: killed.
KILLED: Final = ExitReason(0, signal.SIGKILL)


@dataclass(frozen=True, slots=True)
class Ended:
    """A job that ended, as its runner saw it; recording it is the worker's."""

    job: Job
    ending: Ending
    #: Seconds it ran.
    duration: float


class Runner(Protocol):
    mode: Mode

    def launch(self, jobs: Collection[Job]) -> None:
        """Start running ``jobs`` (an inline runner runs them before it returns)."""

    def fds(self) -> list[int]:
        """The descriptors whose readiness means the runner has something to collect."""

    def collect(self) -> list[Ended]:
        """The jobs that ended since the last call; never waits."""

    def due_in(self) -> float:
        """Seconds until the runner must act (a timeout, a kill) even if nothing is ready."""

    def signal(self, job_id: int, signum: int) -> bool:
        """Send ``signum`` to one running job; false when this runner does not run it."""

    def stop_all(self, grace: float) -> None:
        """Stop every running job: TERM, then KILL after ``grace`` (at once when 0)."""

    def close(self) -> None:
        """Release what the runner holds; running jobs are stopped."""
