"""Async tasks for the tests of async mode: coroutines, run on a worker's event loop."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from minion_daemon import AsyncJob


async def async_add(job: AsyncJob, first: int, second: int) -> dict[str, int]:
    await asyncio.sleep(0)
    return {"added": first + second}


async def async_fail(job: AsyncJob, message: str) -> None:
    await asyncio.sleep(0)
    raise ValueError(message)


async def async_sleep(job: AsyncJob, seconds: float) -> float:
    """Sleep; notes ``began`` first, and whatever ends it, its ``finally`` notes ``cleaned``
    (awaitable, after a cancel)."""
    await job.note(began=True)
    try:
        await asyncio.sleep(seconds)
    finally:
        await job.note(cleaned=True)
    return seconds


async def async_handle(job: AsyncJob, value: Any) -> None:
    """Use the awaitable handle: note, read itself back, finish itself."""
    await job.note(seen=value)
    info = await job.info()
    assert info is not None
    await job.finish({"notes": info["notes"], "state": info["state"]})


async def async_block(job: AsyncJob, seconds: float) -> None:
    """Hold the loop: a blocking call where an await belongs."""
    time.sleep(seconds)


class AsyncEcho(AsyncJob):
    async def run(self, *args: Any) -> list[Any]:
        await asyncio.sleep(0)
        return [self.task, *args]


TASKS: dict[str, Any] = {
    "async_add": async_add,
    "async_fail": async_fail,
    "async_sleep": async_sleep,
    "async_handle": async_handle,
    "async_block": async_block,
    "async_echo": AsyncEcho,
}
