"""The tasks. Each is called as ``task(job, *args)`` with the job's arguments (JSON values);
its return value, which must be JSON-serialisable, becomes the job's result, and an exception
fails the job with its message and traceback."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from minion_daemon import Job


def noop(job: Job) -> None:
    """Do nothing: measures the daemon's own cost per job."""


def sleep(job: Job, seconds: float) -> float:
    """Sleep ``seconds`` and return them: a job that takes time."""
    time.sleep(seconds)
    return seconds


def echo(job: Job, *args: Any) -> list[Any]:
    """Return the arguments as a list."""
    return list(args)


def fail(job: Job, message: str = "failed on purpose") -> NoReturn:
    """Raise ``RuntimeError(message)``: the job fails, and is retried while attempts remain."""
    raise RuntimeError(message)
