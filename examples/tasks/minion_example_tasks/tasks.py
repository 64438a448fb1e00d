"""The tasks. Each is called as ``task(job, *args)`` with the job's arguments (JSON values);
its return value, which must be JSON-serialisable, becomes the job's result, and an exception
fails the job with its message and traceback. An ``async def`` task runs as a coroutine on
its worker's event loop (mode ``async``) and gets an ``AsyncJob``, whose database methods are
awaited."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from minion_daemon import AsyncJob, Job


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


async def fetch(job: AsyncJob, url: str) -> dict[str, Any]:
    """GET ``url`` (plain HTTP/1.0, with asyncio's own streams) and return its status and
    size; the status is noted on the job as soon as it is known. Other jobs run meanwhile."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"fetch: only http:// URLs, got {url!r}")
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port or 80)
    try:
        path = parts.path or "/"
        if parts.query:
            path = f"{path}?{parts.query}"
        writer.write(f"GET {path} HTTP/1.0\r\nHost: {parts.netloc}\r\n\r\n".encode())
        await writer.drain()
        status = int((await reader.readline()).split()[1])
        await job.note(http_status=status)
        while await reader.readline() not in (b"\r\n", b"\n", b""):
            pass  # the headers
        body = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    return {"status": status, "bytes": len(body)}
