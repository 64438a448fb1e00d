"""Fleet-wide limits per task: at most ``concurrency`` of its jobs running across every worker,
and at most ``rate`` of them starting per period.

Pure: no I/O, nothing of the package's, so the config and the task registry can both use it.
The worker's side, which takes and gives back Minion's counting locks, is
:mod:`minion_daemon.worker.limits`.

A rate is written ``N/PERIOD``: ``N`` starts (a whole number from 1) per ``PERIOD``, a unit
``s``, ``m``, ``h`` or ``d`` with an optional whole count before it: ``10/s``, ``100/1m``,
``5/30s``, ``1000/h``. Minion's locks count whole seconds, so every period is one.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Final

#: Seconds in each unit of a rate's period.
PERIOD_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}
#: The longest period: a day, as Minion's lock duration is a 32-bit count of seconds anyway.
MAX_PERIOD: Final = 86400
#: The most starts or running jobs a limit may allow (a lock row each, while held).
MAX_COUNT: Final = 1_000_000
#: How long a concurrency slot is held when the task has no timeout. The slot is given back
#: when its job ends; this bound matters only when the worker holding it died (KILL, a lost
#: host), and it is also the longest a job without a timeout can run before its slot expires
#: and another job may start beside it. Tasks that run longer should have a timeout.
DEFAULT_HOLD: Final = 3600
#: What a slot is held beyond the task's timeout: the timeout ends the job, and the worker
#: needs a moment to kill it and give the slot back.
HOLD_MARGIN: Final = 60
_RATE: Final = re.compile(r"\s*([0-9]+)\s*/\s*([0-9]*)\s*([smhd])\s*")


@dataclass(frozen=True, slots=True)
class Rate:
    """At most ``count`` starts in any ``period`` seconds."""

    count: int
    period: int

    def __post_init__(self) -> None:
        _check_count("rate count", self.count, MAX_COUNT)
        _check_count("rate period", self.period, MAX_PERIOD)

    @classmethod
    def parse(cls, text: object) -> Rate:
        """A rate from ``N/PERIOD`` (see the module); ``ValueError`` says what is wrong."""
        match = _RATE.fullmatch(text) if isinstance(text, str) else None
        if match is None:
            raise ValueError(f'a rate as "N/PERIOD" (10/s, 100/1m, 5/30s, 1000/h), got {text!r}')
        count, multiple, unit = match.groups()
        return cls(int(count), int(multiple or 1) * PERIOD_UNITS[unit])


@dataclass(frozen=True, slots=True)
class TaskLimit:
    """A task's fleet-wide limits; ``None``: no such limit."""

    concurrency: int | None = None
    rate: Rate | None = None

    def __post_init__(self) -> None:
        if self.concurrency is not None:
            _check_count("concurrency", self.concurrency, MAX_COUNT)
        if self.rate is not None and not isinstance(self.rate, Rate):
            raise TypeError(f"rate must be a Rate, got {self.rate!r}")

    @classmethod
    def of(cls, concurrency: int | None = None, rate: Rate | str | None = None) -> TaskLimit:
        """A limit from a count and a rate or its text (``"10/s"``)."""
        return cls(concurrency, Rate.parse(rate) if isinstance(rate, str) else rate)

    @property
    def limited(self) -> bool:
        return self.concurrency is not None or self.rate is not None


def hold_seconds(timeout: float | None) -> int:
    """How long a concurrency slot of a task with this ``timeout`` is held at most: past the
    timeout by :data:`HOLD_MARGIN`, or :data:`DEFAULT_HOLD` without one."""
    if timeout is None:
        return DEFAULT_HOLD
    return math.ceil(timeout) + HOLD_MARGIN


def concurrency_lock(task: str) -> str:
    """The name of the Minion lock whose holders are ``task``'s running jobs."""
    return f"minion_daemon.concurrency.{task}"


def rate_lock(task: str) -> str:
    """The name of the Minion lock each start of ``task`` takes for one period."""
    return f"minion_daemon.rate.{task}"


#: No limit at all.
UNLIMITED: Final = TaskLimit()


def _check_count(what: str, value: object, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
        raise ValueError(f"{what} from 1 to {high}, got {value!r}")
