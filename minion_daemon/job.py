"""``Job``: the handle a task receives for its job, and what a worker holds of it.

The handle reaches the database through a narrow
:class:`~minion_daemon.backend.protocol.JobStore` (the backend); it knows nothing of
processes or pipes. Runners (:mod:`minion_daemon.runners`) run it; the outcome of
a job that ended is :func:`minion_daemon.outcome.verdict`'s to decide.

Events (``job.on(event, listener)``; listeners get the job first) and where they run:

==========  =========================  ===================================================
event       arguments                  process
==========  =========================  ===================================================
spawn       pid                        worker, once its job process started (fork mode)
start       -                          job process (or worker, inline), before the task;
                                       listeners may change ``task`` and ``args``
finish      -                          the process that ran the task, after it returned
failed      error                      whichever process recorded the failure
finished    result                     whichever process recorded the success
cleanup     -                          job process, just before it exits
reap        pid                        worker, after the job process ended, before the
                                       outcome is recorded
==========  =========================  ===================================================

In fork mode a job process is forked from the worker's fork server ahead of its job; when
the job comes, the process announces it to its own copy of the worker's ``dequeue``
listeners: a listener that the worker had before it started (``minion.on("worker", ...)``,
``worker.on("dequeue", ...)``) runs there, so the ``start``, ``finish`` and ``cleanup``
listeners it attaches run in the job process, as the table says.
"""

from __future__ import annotations

import asyncio
import traceback
from typing import TYPE_CHECKING, Any

from minion_daemon import tracing
from minion_daemon.async_job import AsyncJob, is_coroutine_task
from minion_daemon.events import EventEmitter
from minion_daemon.options import json_problem, storable_text
from minion_daemon.outcome import Ending, Handed, Verdict, verdict
from minion_daemon.output import captured

if TYPE_CHECKING:
    from minion_daemon.async_minion import AsyncMinion
    from minion_daemon.backend.protocol import JobStore
    from minion_daemon.minion import Minion
    from minion_daemon.model import JobInfo
    from minion_daemon.tasks import TaskSpec


def describe_error(error: BaseException) -> str:
    """A failed job's result: the exception's own line first, then the whole traceback, with
    what PostgreSQL cannot store (NUL, lone surrogates) escaped."""
    summary = "".join(traceback.format_exception_only(error)).strip()
    return storable_text(f"{summary}\n\n{''.join(traceback.format_exception(error))}")


class Job(EventEmitter):
    """A dequeued job. Subclass it and override :meth:`run` for a task that needs hooks."""

    def __init__(
        self,
        minion: Minion,
        job_id: int,
        args: list[Any],
        retries: int,
        task: str,
        *,
        queue: str | None = None,
    ) -> None:
        super().__init__()
        self.minion = minion
        self.id = job_id
        self.args = args
        self.retries = retries
        self.task = task
        #: The queue it was dequeued from, when known (for logs and metrics).
        self.queue = queue
        #: Seconds it waited between becoming runnable and being dequeued, when known.
        self.latency: float | None = None
        #: The worker that claimed it, when known (for traces).
        self.worker_id: int | None = None
        #: The trace context its enqueuer recorded in its notes (``traceparent`` and
        #: ``tracestate``; :mod:`minion_daemon.tracing`), when the worker claimed it.
        self.trace_context: dict[str, str] = {}
        #: Its job process, once one runs it (fork mode).
        self.pid: int | None = None
        #: What the task returned, recorded unless the task finished or failed the job itself.
        self.result: Any = None
        #: What this handle (or its job process) recorded: "finished", "failed" (no attempts
        #: left) or "retried" (failed, and retried after backoff).
        self.outcome: str | None = None
        #: The first line of the recorded failure, for logs.
        self.failure: str | None = None
        #: The error :meth:`execute` returned is final: its task's retry policy does not retry
        #: the exception it came from, so the job fails whatever attempts it has left.
        self.final = False

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id} {self.task!r} retries={self.retries}>"

    def log_fields(self) -> dict[str, Any]:
        """What names this job in log lines."""
        return {"job_id": self.id, "task": self.task, "queue": self.queue, "retries": self.retries}

    @property
    def store(self) -> JobStore:
        return self.minion.backend

    # The job in the database

    @property
    def info(self) -> JobInfo | None:
        """The job's row as ``list_jobs`` shows it, read now; ``None`` once it is gone."""
        jobs = self.store.list_jobs(0, 1, {"ids": [self.id]})["jobs"]
        return jobs[0] if jobs else None

    @property
    def parents(self) -> list[Job]:
        """The parents that still exist."""
        info = self.info
        return self.minion.jobs_by_id(info["parents"]) if info else []

    @property
    def children(self) -> list[Job]:
        """The jobs that name this one as a parent."""
        info = self.info
        return self.minion.jobs_by_id(info["children"]) if info else []

    def note(self, **values: Any) -> bool:
        """Merge ``values`` into the job's notes; ``None`` removes a key."""
        return self.store.note(self.id, values)

    def finish(self, result: Any = None) -> bool:
        """Record success with ``result``; false if this handle no longer holds the job."""
        if not self.store.finish_job(self.id, self.retries, result):
            return False
        self.finished(result)
        return True

    def finished(self, result: Any) -> None:
        """Take note that the job was recorded finished with ``result`` (by this handle, or
        by its worker in a statement that recorded several)."""
        self.outcome = "finished"
        self.emit("finished", result)

    def fail(self, error: Any = "Unknown error", *, retry: bool = True) -> bool:
        """Record failure, retried after its task's backoff while attempts remain (never
        with ``retry`` false)."""
        spec = self.minion.tasks.get(self.task)
        backoff = None if spec is None else spec.retry.backoff
        outcome = self.store.record_failure(
            self.id, self.retries, error, backoff=backoff, retry=retry
        )
        if outcome is None:
            return False
        self.outcome = outcome
        self.failure = (str(error).strip().splitlines() or [""])[0]
        self.emit("failed", error)
        return True

    def retry(self, **options: Any) -> bool:
        """Make the job inactive again with ``retry_job``'s options (attempts, delay, ...)."""
        return self.store.retry_job(self.id, self.retries, options)

    def remove(self) -> bool:
        return self.store.remove_job(self.id)

    # Running it

    def run(self, *args: Any) -> Any:
        """The task itself, for a :class:`Job` subclass registered as a task."""
        raise NotImplementedError('Method "run" not implemented by subclass')

    def execute(self) -> str | None:
        """Run the task in this process; returns the error text, or ``None`` on success, and
        sets :attr:`final` by the task's retry policy. A coroutine task (in fork or inline
        mode) runs on an event loop of its own, with a client of its own."""
        self.final = False
        spec = None
        try:
            # The span sees the task's exception on its way out, and ends with the job.
            with tracing.job_span(self) as span, captured():
                self.emit("start")
                spec = self._spec()
                if is_coroutine_task(spec.target):
                    self.result = asyncio.run(self._run_with_own_client(spec))
                elif isinstance(spec.target, type):
                    self.result = self.run(*self.args)
                else:
                    self.result = spec.target(self, *self.args)
                self.emit("finish")
                unstorable = self._unstorable_result()
                span.fail(unstorable)
        except Exception as error:  # noqa: BLE001 - any failure of the task is the job's result
            return self._error_of(error, spec)
        return unstorable

    async def execute_async(self, minion: AsyncMinion) -> str | None:
        """:meth:`execute` for a coroutine task, on the running loop, its
        :class:`~minion_daemon.async_job.AsyncJob` over ``minion``. A cancellation (a
        timeout, a kill) goes through to the caller."""
        self.final = False
        spec = None
        try:
            with tracing.job_span(self) as span:
                self.emit("start")
                spec = self._spec()
                self.result = await self._run_coroutine(spec, minion)
                self.emit("finish")
                unstorable = self._unstorable_result()
                span.fail(unstorable)
        except Exception as error:  # noqa: BLE001 - any failure of the task is the job's result
            return self._error_of(error, spec)
        return unstorable

    def _spec(self) -> TaskSpec:
        spec = self.minion.tasks.get(self.task)
        if spec is None:
            raise LookupError(f'Task "{self.task}" is not registered')
        return spec

    def _error_of(self, error: Exception, spec: TaskSpec | None) -> str:
        """The job's error text for ``error``; sets :attr:`final` by the task's policy, applied
        here where the exception is known (a worker recording a job process's failure only
        sees its text)."""
        self.final = spec is not None and not spec.retry.retries(error)
        return describe_error(error)

    async def _run_with_own_client(self, spec: TaskSpec) -> Any:
        minion = self.minion.async_client()
        try:
            return await self._run_coroutine(spec, minion)
        finally:
            await minion.close()

    async def _run_coroutine(self, spec: TaskSpec, minion: AsyncMinion) -> Any:
        """Await the coroutine task of ``spec`` with an async handle on this job; what the
        handle recorded becomes this job's :attr:`outcome`."""
        target = spec.target
        is_class = isinstance(target, type) and issubclass(target, AsyncJob)
        handle_class = target if is_class else AsyncJob
        handle = handle_class(
            minion,
            self.id,
            self.args,
            self.retries,
            self.task,
            queue=self.queue,
            backoff=spec.retry.backoff,
        )
        try:
            if is_class:
                return await handle.run(*self.args)
            return await target(handle, *self.args)
        finally:
            if handle.outcome is not None:
                self.outcome, self.failure = handle.outcome, handle.failure

    def _unstorable_result(self) -> str | None:
        """The failure of a task whose result cannot be stored, caught here so that the job
        fails alone, like a task that raised (and retries the same way), whatever the mode."""
        if self.outcome is not None:
            return None  # the task recorded its job; what it returned is not stored
        problem = json_problem("result", self.result)
        if problem is None:
            return None
        self.result = None
        return storable_text(f"Result cannot be stored as JSON: {problem}")

    def ending(self, error: str | None, **how: Any) -> Ending:
        """How the job ended after :meth:`execute` returned ``error``; ``how`` adds what its
        runner saw (``timed_out_after``, ``exit``)."""
        if self.outcome is not None:
            return Ending(recorded=True, **how)
        handed = (
            Handed("error", error, final=self.final)
            if error is not None
            else Handed("result", self.result)
        )
        return Ending(handed=handed, **how)

    def apply(self, decided: Verdict) -> bool:
        """Record ``decided``; false when nothing was recorded (or this handle is stale)."""
        if decided.action == "finish":
            return self.finish(decided.value)
        if decided.action == "fail":
            return self.fail(decided.value, retry=decided.retry)
        return False

    def record(self, error: str | None) -> bool:
        """Record what :meth:`execute` produced, unless the task recorded its job itself."""
        return self.apply(verdict(self.ending(error)))
