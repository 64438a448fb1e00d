"""Retry policies per task: the backoff before an automatic retry, and which exceptions retry.

Pure: no I/O, nothing of the package's but :mod:`minion_daemon.model`, so the config, the task
registry and the job handle can all use it. Randomness (the jitter) comes in as an argument
where a test needs it fixed.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from minion_daemon.model import Backoff


@dataclass(frozen=True, slots=True)
class Exponential:
    """``min(maximum, base * factor ** retries)`` seconds, minus up to ``jitter`` of it (a
    fraction from 0 to 1), so that jobs failing together do not all retry in step."""

    base: float = 1.0
    factor: float = 2.0
    maximum: float = 3600.0
    jitter: float = 0.0

    def __post_init__(self) -> None:
        for name, low in (("base", 0.0), ("factor", 1.0), ("maximum", 0.0)):
            value = getattr(self, name)
            if not _number(value) or not low <= value < math.inf:
                raise ValueError(f"{name} from {low:g} up, got {value!r}")
        if not _number(self.jitter) or not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter from 0 to 1, got {self.jitter!r}")

    def __call__(self, retries: int) -> float:
        return self.delay(retries, random.random())

    def delay(self, retries: int, draw: float) -> float:
        """The delay after ``retries`` retries, with ``draw`` (0 <= draw < 1) taking its share
        of the jitter off."""
        # factor ** retries overflows a float long before a job retries that often; by then
        # the delay is the maximum anyway.
        try:
            full = min(self.maximum, self.base * self.factor**retries)
        except OverflowError:
            full = self.maximum
        return full * (1 - self.jitter * draw)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a task's failed jobs retry while they have attempts left.

    ``backoff``: seconds before the retry, from the retries so far; ``None`` is the Minion's
    (``retries ** 4 + 15`` unless the program set ``minion.backoff``). ``retry_on``: when
    given, only an exception of one of these classes retries; ``no_retry_on``: an exception of
    one of these classes never does, and wins over ``retry_on``. A class is named by its plain
    name (``TimeoutError``) or qualified by its module (``acme.errors.Permanent``,
    ``builtins.KeyError``), and an exception matches a name of its class or of any base class.
    A failure that carries no exception (a timeout, a crash, ``job.fail(...)``) always retries.
    """

    backoff: Backoff | None = None
    retry_on: tuple[str, ...] | None = None
    no_retry_on: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.backoff is not None and not callable(self.backoff):
            raise TypeError(f"backoff must be callable as backoff(retries), got {self.backoff!r}")
        for name in (*(self.retry_on or ()), *self.no_retry_on):
            if not isinstance(name, str) or not name or name.startswith(".") or name.endswith("."):
                raise ValueError(f"class names, plain or module-qualified, got {name!r}")

    @classmethod
    def of(
        cls,
        backoff: Backoff | None = None,
        retry_on: Iterable[str | type[BaseException]] | None = None,
        no_retry_on: Iterable[str | type[BaseException]] = (),
    ) -> RetryPolicy:
        """A policy from classes or their names."""
        for given in (retry_on, no_retry_on):
            if isinstance(given, str):
                # A str is an iterable of names too: "KeyError" would mean K, e, y, ...
                raise TypeError(f"name exception classes in a list, not the string {given!r}")
        return cls(
            backoff,
            None if retry_on is None else tuple(map(_class_name, retry_on)),
            tuple(map(_class_name, no_retry_on)),
        )

    def retries(self, error: BaseException) -> bool:
        """Whether a job whose task raised ``error`` retries (attempts left permitting)."""
        names = _names(type(error))
        if not names.isdisjoint(self.no_retry_on):
            return False
        return self.retry_on is None or not names.isdisjoint(self.retry_on)


def _number(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float)


def _class_name(given: str | type[BaseException]) -> str:
    return f"{given.__module__}.{given.__qualname__}" if isinstance(given, type) else given


def _names(error_class: type[BaseException]) -> set[str]:
    """Every name that matches an exception of ``error_class``."""
    names = set()
    for known in error_class.__mro__:
        names.add(known.__name__)
        names.add(f"{known.__module__}.{known.__qualname__}")
    return names


#: Minion's policy: its backoff, and every exception retries.
MINION_RETRY: Final = RetryPolicy()
