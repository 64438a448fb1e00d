"""Bounded polling for tests that wait on other processes."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T | None],
    timeout: float,
    what: str = "condition",
    through: tuple[type[Exception], ...] = (),
) -> T:
    """Poll ``predicate`` every 50 ms until it returns something truthy, and return that;
    ``through``: exceptions that mean "not yet" (a database restarting, say)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except through:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)
