"""Pure deadline bookkeeping for the supervisor's duties, on a monotonic clock passed in as `now`.

Nothing here sleeps or reads a clock: the supervisor passes `time.monotonic()`, tests pass numbers.
"""

from __future__ import annotations

import math
import random


class Periodic:
    """A duty that runs every `interval` seconds, each run brought forward by a random jitter.

    Jitter spreads duties such as repair across daemons that share a database: each next run is
    `now + interval - u * jitter * interval` with `u` drawn fresh in [0, 1). An `interval <= 0`
    disables the duty: it is never due and its remaining time is infinite.
    """

    __slots__ = ("_interval", "_jitter", "_next", "_random")

    def __init__(
        self,
        interval: float,
        *,
        jitter: float = 0.0,
        rng: random.Random | None = None,
        run_at_start: bool = True,
    ) -> None:
        """Raise ValueError unless 0 <= jitter <= 1 (more would schedule runs in the past)."""
        if not 0.0 <= jitter <= 1.0:
            raise ValueError(f"jitter must be between 0 and 1, got {jitter!r}")
        self._interval = interval
        self._jitter = jitter
        # The module functions by default, so that a child's reseed of `random` applies here too.
        self._random = rng.random if rng is not None else random.random
        # -inf: due at once. None: not started; the first observation starts the clock.
        self._next: float | None = -math.inf if run_at_start else None

    def due(self, now: float) -> bool:
        """True when the duty should run at `now`; the next run is then scheduled from `now`.

        A late call does not cause a burst of catch-up runs: missed runs are simply skipped.
        """
        if self._interval <= 0 or now < self._start(now):
            return False
        spread = self._random() * self._jitter * self._interval
        self._next = now + self._interval - spread
        return True

    def remaining(self, now: float) -> float:
        """Seconds until the duty is due: 0 when due, `math.inf` when disabled."""
        if self._interval <= 0:
            return math.inf
        return max(0.0, self._start(now) - now)

    def reset(self, now: float) -> None:
        """Postpone the next run to exactly `now + interval`, e.g. after running it on demand."""
        self._next = now + self._interval

    def _start(self, now: float) -> float:
        if self._next is None:
            self._next = now + self._interval
        return self._next


class Deadline:
    """A single point in time, e.g. when a worker that ignored TERM gets KILL."""

    __slots__ = ("at",)

    def __init__(self, at: float) -> None:
        self.at = at

    def expired(self, now: float) -> bool:
        """True from `at` onwards."""
        return now >= self.at

    def remaining(self, now: float) -> float:
        """Seconds until `at`, never negative."""
        return max(0.0, self.at - now)


def earliest(now: float, *timers: Periodic | Deadline | None) -> float:
    """The smallest remaining time among `timers` (None ignored), `math.inf` when there are none.

    The supervisor waits on its selector for this long; it passes None for duties it does not run.
    """
    return min((t.remaining(now) for t in timers if t is not None), default=math.inf)
