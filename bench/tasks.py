"""The bench's tasks: ``noop`` does nothing, ``stamp`` returns when it started (epoch); the
async ones (mode async): ``anoop`` does nothing, ``asleep`` awaits ``asyncio.sleep``,
``astamp`` is ``stamp``."""

from __future__ import annotations

import asyncio
import time
from typing import Any


def noop(job: Any) -> None:
    return None


def stamp(job: Any) -> float:
    return time.time()


TASKS = {"noop": noop, "stamp": stamp}


async def anoop(job: Any) -> None:
    return None


async def asleep(job: Any, seconds: float = 1.0) -> float:
    await asyncio.sleep(seconds)
    return seconds


async def astamp(job: Any) -> float:
    return time.time()


#: A worker in mode async runs these alone; ``stamp`` is the async one there (bench/latency.py).
ASYNC_TASKS = {"anoop": anoop, "asleep": asleep, "stamp": astamp}
