"""The bench's tasks: ``noop`` does nothing, ``stamp`` returns when it started (epoch)."""

from __future__ import annotations

import time
from typing import Any


def noop(job: Any) -> None:
    return None


def stamp(job: Any) -> float:
    return time.time()


TASKS = {"noop": noop, "stamp": stamp}
