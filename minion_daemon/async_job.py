"""``AsyncJob``: the handle an ``async def`` task receives, with awaitable database methods.

It is :class:`~minion_daemon.job.Job`'s counterpart for coroutines: the same fields and the
same operations, each awaited on psycopg's async connections, so a task never blocks its
event loop on the database. Subclass it (``async def run``) for a task that is a class.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from minion_daemon.async_minion import AsyncMinion
    from minion_daemon.backend.aio import AsyncPgBackend
    from minion_daemon.model import Backoff, JobInfo


class AsyncJob:
    """One job, as an async task (or a program's :class:`AsyncMinion`) sees it."""

    def __init__(
        self,
        minion: AsyncMinion,
        job_id: int,
        args: list[Any],
        retries: int,
        task: str,
        *,
        queue: str | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self.minion = minion
        self.id = job_id
        self.args = args
        self.retries = retries
        self.task = task
        self.queue = queue
        #: The task's own backoff for a failure this handle records (``None``: the backend's).
        self.backoff = backoff
        #: What this handle recorded: "finished", "failed" or "retried"; ``None``: nothing.
        self.outcome: str | None = None
        #: The first line of the failure it recorded, for logs.
        self.failure: str | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id} {self.task!r} retries={self.retries}>"

    @property
    def store(self) -> AsyncPgBackend:
        return self.minion.backend

    async def info(self) -> JobInfo | None:
        """The job's row as ``list_jobs`` shows it, read now; ``None`` once it is gone."""
        return await self.store.job_info(self.id)

    async def note(self, **values: Any) -> bool:
        """Merge ``values`` into the job's notes; ``None`` removes a key."""
        return await self.store.note(self.id, values)

    async def finish(self, result: Any = None) -> bool:
        """Record success with ``result``; false if this handle no longer holds the job."""
        if not await self.store.finish_job(self.id, self.retries, result):
            return False
        self.outcome = "finished"
        return True

    async def fail(self, error: Any = "Unknown error", *, retry: bool = True) -> bool:
        """Record failure, retried after the task's backoff while attempts remain (never with
        ``retry`` false)."""
        outcome = await self.store.record_failure(
            self.id, self.retries, error, backoff=self.backoff, retry=retry
        )
        if outcome is None:
            return False
        self.outcome = outcome
        self.failure = (str(error).strip().splitlines() or [""])[0]
        return True

    async def retry(self, **options: Any) -> bool:
        """Make the job inactive again with ``retry_job``'s options (attempts, delay, ...)."""
        return await self.store.retry_job(self.id, self.retries, options)

    async def remove(self) -> bool:
        return await self.store.remove_job(self.id)

    async def run(self, *args: Any) -> Any:
        """The task itself, for an :class:`AsyncJob` subclass registered as a task."""
        raise NotImplementedError('Method "run" not implemented by subclass')


def is_coroutine_task(target: Callable[..., Any] | type) -> bool:
    """Whether ``target`` is an ``async def`` function or an :class:`AsyncJob` subclass."""
    if isinstance(target, type):
        return issubclass(target, AsyncJob)
    return inspect.iscoroutinefunction(target)
