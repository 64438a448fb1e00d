"""Tasks of the liveness tests (tests/e2e/test_liveness.py)."""

from __future__ import annotations

import ctypes
import time
from typing import Any


def nap(job: Any, seconds: float) -> float:
    """Sleeps in Python, where signal handlers run, and returns how long."""
    time.sleep(seconds)
    return seconds


def stuck_in_c(job: Any) -> None:
    """Deadlocks in C: locks a default pthread mutex twice, so no Python code of its process
    (no signal handler either) runs again."""
    libc = ctypes.CDLL(None)
    mutex = ctypes.create_string_buffer(64)  # all zeros: PTHREAD_MUTEX_INITIALIZER on glibc
    libc.pthread_mutex_lock(mutex)
    libc.pthread_mutex_lock(mutex)


#: Entry points of the liveness tests' distribution: one function may serve two task names,
#: so a test can run the same task forked and inline.
ENTRY_POINTS = {
    "nap": "helpers.liveness_tasks:nap",
    "inline_nap": "helpers.liveness_tasks:nap",
    "stuck_in_c": "helpers.liveness_tasks:stuck_in_c",
}
