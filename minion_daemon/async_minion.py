"""``AsyncMinion``: the job queue's client for asyncio programs (FastAPI, aiohttp, ...).

Each operation is :class:`~minion_daemon.minion.Minion`'s, awaited: the same arguments,
checked by the same code with the same errors, and the same SQL
(:mod:`minion_daemon.backend.statements`), on psycopg's async connections, so that a request
handler enqueues without blocking its event loop. ``enqueue(..., conn=...)`` takes the
handler's own ``psycopg.AsyncConnection``: the job then exists exactly when its transaction
commits.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from minion_daemon.async_job import AsyncJob
from minion_daemon.backend.aio import AsyncPgBackend

if TYPE_CHECKING:
    from types import TracebackType

    from minion_daemon.backend.caller import AsyncCallerConnection
    from minion_daemon.model import JobInfo, Stats


class AsyncMinion:
    """The job queue for a program that runs an event loop, built from a DSN or a backend.

    Its connections are opened on first use, in the loop that uses them; close it there too
    (``await minion.close()``, or ``async with AsyncMinion(dsn) as minion``).
    """

    def __init__(self, backend: AsyncPgBackend | str) -> None:
        self.backend = AsyncPgBackend(backend) if isinstance(backend, str) else backend

    async def __aenter__(self) -> AsyncMinion:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self.backend.close()

    async def enqueue(
        self,
        task: str,
        args: Sequence[Any] | None = None,
        *,
        conn: AsyncCallerConnection | None = None,
        **options: Any,
    ) -> int:
        """Create a job, as :meth:`Minion.enqueue` (the same options); with ``conn``, a
        ``psycopg.AsyncConnection`` of yours, inside your transaction."""
        return await self.backend.enqueue(task, args, options, conn=conn)

    async def enqueue_many(
        self,
        jobs: Sequence[tuple[str, Sequence[Any] | None, dict[str, Any] | None]],
        *,
        conn: AsyncCallerConnection | None = None,
    ) -> list[int]:
        """Create many jobs in one round trip, as :meth:`Minion.enqueue_many`."""
        return await self.backend.enqueue_many(jobs, conn=conn)

    async def job(self, job_id: int) -> AsyncJob | None:
        """A handle on the job (``await job.info()``, ``note``, ``retry``, ``remove``);
        ``None`` if it does not exist."""
        info = await self.backend.job_info(job_id)
        if info is None:
            return None
        return AsyncJob(
            self, info["id"], info["args"], info["retries"], info["task"], queue=info["queue"]
        )

    async def result(
        self, job_id: int, timeout: float | None = None, interval: float = 0.5
    ) -> JobInfo | None:
        """Wait until the job is finished or failed and return its info (``None`` if it is
        gone); raises ``TimeoutError`` after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            info = await self.backend.job_info(job_id)
            if info is None or info["state"] in ("finished", "failed"):
                return info
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"job {job_id} is still {info['state']} after {timeout} s")
            await asyncio.sleep(interval)

    async def broadcast(
        self, command: str, args: Sequence[Any] | None = None, ids: Sequence[int] | None = None
    ) -> bool:
        return await self.backend.broadcast(command, args, ids)

    async def lock(self, name: str, duration: int, *, limit: int = 1) -> bool:
        return await self.backend.lock(name, duration, {"limit": limit})

    async def unlock(self, name: str) -> bool:
        return await self.backend.unlock(name)

    async def is_locked(self, name: str) -> bool:
        return not await self.backend.lock(name, 0)

    async def stats(self) -> Stats:
        """Perl's counts, as :meth:`Minion.stats`."""
        return await self.backend.stats()
