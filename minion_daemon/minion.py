"""``Minion``: the job queue's public API, over a backend and a task registry.

The facade adds what the backend does not know: the registered tasks (so workers only dequeue
what they can run), the repair thresholds, events (``enqueue``, ``worker``), lazy listings,
lock guards, and the ways to run jobs from a program's own code and tests.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from minion_daemon import tracing
from minion_daemon.async_minion import AsyncMinion
from minion_daemon.backend import Backend, PgBackend
from minion_daemon.backend.aio import AsyncPgBackend
from minion_daemon.events import EventEmitter
from minion_daemon.iterators import Listing
from minion_daemon.job import Job
from minion_daemon.limits import Rate, TaskLimit
from minion_daemon.retry import RetryPolicy
from minion_daemon.tasks import TaskRegistry
from minion_daemon.worker import Worker

if TYPE_CHECKING:
    from minion_daemon.backend.caller import CallerConnection
    from minion_daemon.model import (
        Backoff,
        DispatchedSchedule,
        History,
        JobInfo,
        QueueInfo,
        RepairReport,
        ScheduleList,
        Stats,
        WorkerInfo,
    )

#: Jobs in this queue are being run by ``foreground``; repair leaves them alone.
FOREGROUND_QUEUE = "minion_foreground"


class Guard:
    """A held named lock, released when the ``with`` block ends (also on error).

    It never releases a lock that has already expired, which may belong to someone else by
    then, and a guard taken with duration 0 (a check) releases nothing.
    """

    def __init__(self, minion: Minion, name: str, duration: int) -> None:
        self._minion = minion
        self.name = name
        self._until = time.monotonic() + duration if duration > 0 else None

    def __enter__(self) -> Guard:
        return self

    def __exit__(self, *_: object) -> None:
        self.release()

    def release(self) -> None:
        if self._until is not None and time.monotonic() < self._until:
            self._minion.unlock(self.name)
        self._until = None


class Minion(EventEmitter):
    """The job queue, built from a DSN or a backend."""

    def __init__(self, backend: Backend | str, *, tasks: TaskRegistry | None = None) -> None:
        super().__init__()
        self.backend: Backend = PgBackend(backend) if isinstance(backend, str) else backend
        self.tasks = tasks if tasks is not None else TaskRegistry()
        self.missing_after: float = 1800
        self.remove_after: float = 172800
        self.stuck_after: float = 172800

    @property
    def backoff(self) -> Backoff:
        """Seconds before an automatic retry, from the job's retries (default retries⁴ + 15),
        for the tasks registered without a backoff of their own and for repair's retries."""
        return self.backend.backoff

    @backoff.setter
    def backoff(self, value: Backoff) -> None:
        self.backend.backoff = value

    def close(self) -> None:
        self.backend.close()

    def async_client(self) -> AsyncMinion:
        """An :class:`~minion_daemon.async_minion.AsyncMinion` on this Minion's database (its
        connection settings and backoff), for coroutine tasks; its connections open on first
        use, in the loop that uses them."""
        if not isinstance(self.backend, PgBackend):
            raise TypeError(f"async tasks need a PgBackend, this Minion has {self.backend!r}")
        backend = self.backend
        return AsyncMinion(AsyncPgBackend(backend.settings, backoff=backend.backoff))

    # Tasks

    def add_task(
        self,
        name: str,
        task: Callable[..., object] | type[Job],
        *,
        mode: str | None = None,
        timeout: float | None = None,
        backoff: Backoff | None = None,
        retry_on: Iterable[str | type[BaseException]] | None = None,
        no_retry_on: Iterable[str | type[BaseException]] = (),
        concurrency: int | None = None,
        rate: Rate | str | None = None,
    ) -> Minion:
        """Register ``task(job, *args)`` (or a :class:`Job` subclass) under ``name``.

        ``mode`` defaults to ``async`` for an ``async def`` task (or an
        :class:`~minion_daemon.async_job.AsyncJob` subclass), whose ``job`` is then an
        ``AsyncJob``, and to ``fork`` for any other.

        ``backoff(retries)`` gives the seconds before its failed jobs retry (default: this
        Minion's :attr:`backoff`; :class:`~minion_daemon.retry.Exponential` is one); an
        exception of a class in ``no_retry_on``, or outside ``retry_on`` when that is given,
        fails its job for good at once (:class:`~minion_daemon.retry.RetryPolicy`).
        ``concurrency`` (running jobs) and ``rate`` (starts per period, ``"10/s"``) limit the
        task across every worker of the database (:mod:`minion_daemon.limits`).
        """
        caller = inspect.stack()[1]
        source = f"add_task() at {caller.filename}:{caller.lineno}"
        retry = RetryPolicy.of(backoff, retry_on, no_retry_on)
        limit = TaskLimit.of(concurrency, rate)
        self.tasks.add(
            name, task, source=source, mode=mode, timeout=timeout, retry=retry, limit=limit
        )
        return self

    def task(
        self,
        name: str | None = None,
        *,
        mode: str | None = None,
        timeout: float | None = None,
        backoff: Backoff | None = None,
        retry_on: Iterable[str | type[BaseException]] | None = None,
        no_retry_on: Iterable[str | type[BaseException]] = (),
        concurrency: int | None = None,
        rate: Rate | str | None = None,
    ) -> Callable[[Callable[..., object]], Callable[..., object]]:
        """Decorator form of :meth:`add_task`; the name defaults to the function's."""
        return self.tasks.task(
            name,
            mode=mode,
            timeout=timeout,
            backoff=backoff,
            retry_on=retry_on,
            no_retry_on=no_retry_on,
            concurrency=concurrency,
            rate=rate,
        )

    def class_for_task(self, name: str) -> type[Job]:
        """The :class:`Job` subclass registered as ``name``, else :class:`Job` itself."""
        spec = self.tasks.get(name)
        if spec is not None and isinstance(spec.target, type) and issubclass(spec.target, Job):
            return spec.target
        return Job

    # Jobs

    def enqueue(
        self,
        task: str,
        args: Sequence[Any] | None = None,
        *,
        conn: CallerConnection | None = None,
        **options: Any,
    ) -> int:
        """Create a job; options as the backend's (attempts, delay, expire, lax, notes,
        parents, priority, queue; beyond Perl, ``unique`` and ``unique_for``). Emits
        ``enqueue`` with the id returned.

        ``unique="key"``: while the job enqueued with that key is inactive or active, this
        returns its id and creates nothing; ``unique_for=SECONDS`` also counts a job created
        within that many seconds, whatever its state. Needs minion-daemon's own tables at
        version 2 (``minion-daemon migrate``); :class:`~minion_daemon.errors.SchemaError`
        says so otherwise.

        With ``conn``, a psycopg 3 connection of yours, the job is inserted on it, inside
        your transaction: it exists when that commits, and never if it rolls back (the event
        is emitted at once all the same). docs/django.md and docs/sqlalchemy.md show how to
        get a framework's connection.

        Inside an OpenTelemetry span, the span's trace context goes into the job's notes
        (``traceparent``, ``tracestate``), and the job's own span is its child
        (docs/opentelemetry.md).
        """
        options = tracing.with_context(options)
        job_id = self.backend.enqueue(task, args, options, conn=conn)
        self.emit("enqueue", job_id)
        return job_id

    def enqueue_many(
        self,
        jobs: Sequence[tuple[str, Sequence[Any] | None, dict[str, Any] | None]],
        *,
        conn: CallerConnection | None = None,
    ) -> list[int]:
        """Create many jobs in one round trip, each ``(task, args, options)`` with the options
        of :meth:`enqueue`, on ``conn`` as :meth:`enqueue`; emits ``enqueue`` for each id
        returned. A ``unique`` key held before the call, or by an earlier job of the same call,
        gives its holder's id."""
        ids = self.backend.enqueue_many(tracing.many_with_context(jobs), conn=conn)
        for job_id in ids:
            self.emit("enqueue", job_id)
        return ids

    def job(self, job_id: int) -> Job | None:
        """A handle on the job, of its task's class; ``None`` if it does not exist."""
        jobs = self.backend.list_jobs(0, 1, {"ids": [job_id]})["jobs"]
        return self._handle(jobs[0]) if jobs else None

    def jobs_by_id(self, ids: Iterable[int]) -> list[Job]:
        """Handles on the jobs among ``ids`` that exist, newest first."""
        wanted = list(ids)
        if not wanted:
            return []
        found = self.backend.list_jobs(0, len(wanted), {"ids": wanted})["jobs"]
        return [self._handle(info) for info in found]

    def _handle(self, info: JobInfo) -> Job:
        job_class = self.class_for_task(info["task"])
        return job_class(
            self, info["id"], info["args"], info["retries"], info["task"], queue=info["queue"]
        )

    def jobs(self, *, fetch: int = 10, **filters: Any) -> Listing[JobInfo]:
        """Every job matching the filters (ids, notes, queues, states, tasks), newest first.

        Its ``total`` is exact up to 10,000 and an estimate beyond (:meth:`PgBackend.list_jobs`).
        """

        def page(offset: int, limit: int, options: dict[str, Any]) -> tuple[list[JobInfo], int]:
            listed = self.backend.list_jobs(offset, limit, options)
            return listed["jobs"], listed["total"]

        return Listing(page, filters, size=fetch)

    def workers(self, *, fetch: int = 10, **filters: Any) -> Listing[WorkerInfo]:
        """Every registered worker matching the filters (ids), newest first."""

        def page(offset: int, limit: int, options: dict[str, Any]) -> tuple[list[WorkerInfo], int]:
            listed = self.backend.list_workers(offset, limit, options)
            return listed["workers"], listed["total"]

        return Listing(page, filters, size=fetch)

    def result(
        self, job_id: int, timeout: float | None = None, interval: float = 0.5
    ) -> JobInfo | None:
        """Wait until the job is finished or failed and return its info (``None`` if it is
        gone); raises ``TimeoutError`` after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            jobs = self.backend.list_jobs(0, 1, {"ids": [job_id]})["jobs"]
            if not jobs or jobs[0]["state"] in ("finished", "failed"):
                return jobs[0] if jobs else None
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"job {job_id} is still {jobs[0]['state']} after {timeout} s")
            time.sleep(interval)

    # Locks

    def lock(self, name: str, duration: int, *, limit: int = 1) -> bool:
        return self.backend.lock(name, duration, {"limit": limit})

    def unlock(self, name: str) -> bool:
        return self.backend.unlock(name)

    def is_locked(self, name: str) -> bool:
        return not self.backend.lock(name, 0)

    def guard(self, name: str, duration: int, *, limit: int = 1) -> Guard | None:
        """A :class:`Guard` holding the lock, or ``None`` if it could not be taken."""
        return Guard(self, name, duration) if self.lock(name, duration, limit=limit) else None

    # Queue-wide operations

    def broadcast(
        self, command: str, args: Sequence[Any] | None = None, ids: Sequence[int] | None = None
    ) -> bool:
        return self.backend.broadcast(command, args, ids)

    def stats(self) -> Stats:
        """Perl's counts; ``finished_jobs`` and ``failed_jobs`` are exact up to 10,000 and
        PostgreSQL's estimate beyond (:meth:`PgBackend.stats`)."""
        return self.backend.stats()

    def history(self) -> History:
        """Finished and failed jobs of the last 24 hours, hour by hour; exact."""
        return self.backend.history()

    def repair(self) -> RepairReport:
        """Repair with this Minion's thresholds (missing_after, remove_after, stuck_after)."""
        return self.backend.repair(
            missing_after=self.missing_after,
            remove_after=self.remove_after,
            stuck_after=self.stuck_after,
        )

    def reset(self, *, all: bool = False, locks: bool = False) -> None:
        self.backend.reset({"all": all, "locks": locks})

    # Schedules (schema 25)

    def schedule(
        self, name: str, cron: str, task: str, args: Sequence[Any] | None = None, **options: Any
    ) -> int:
        return self.backend.schedule(name, cron, task, args, options)

    def unschedule(self, name: str) -> bool:
        return self.backend.unschedule(name)

    def pause_schedule(self, name: str) -> bool:
        return self.backend.pause_schedule(name)

    def resume_schedule(self, name: str) -> bool:
        return self.backend.resume_schedule(name)

    def list_schedules(self, offset: int = 0, limit: int = 100, **filters: Any) -> ScheduleList:
        return self.backend.list_schedules(offset, limit, filters)

    def dispatch_schedules(self) -> list[DispatchedSchedule]:
        """Enqueue the due schedules' jobs; emits ``enqueue`` and ``enqueue_from_schedule``."""
        dispatched = self.backend.dispatch_schedules()
        for entry in dispatched:
            self.emit("enqueue", entry["job"])
            self.emit("enqueue_from_schedule", entry["job"], entry["name"])
        return dispatched

    # Fleet control (tables of our own; Perl's workers ignore a pause)

    def pause_queue(self, name: str) -> bool:
        """Stop every Python worker claiming from queue ``name`` within a second; running
        jobs finish. False if it was paused already."""
        return self.backend.pause_queue(name)

    def resume_queue(self, name: str) -> bool:
        """Let Python workers claim from queue ``name`` again; false if it was not paused."""
        return self.backend.resume_queue(name)

    def paused_queues(self) -> list[str]:
        return self.backend.paused_queues()

    def list_queues(self) -> list[QueueInfo]:
        """Each queue's runnable backlog, running jobs and paused state, by name."""
        return self.backend.list_queues()

    def cancel(self, job_id: int) -> bool:
        """Fail job ``job_id`` with "Job cancelled", without retry; an active job's process is
        stopped by its worker (Perl's too). False when it had finished or failed already;
        :class:`~minion_daemon.errors.JobNotFoundError` (a ``LookupError``) for an unknown id."""
        return self.backend.cancel_job(job_id)

    # Running jobs from the program itself

    def worker(self, **status: Any) -> Worker:
        """A :class:`Worker` for this Minion with the settings ``status`` names (Perl's keys:
        ``jobs``, ``queues``, ...; :class:`~minion_daemon.worker.WorkerSettings`); emits
        ``worker``."""

        worker = Worker(self, **status)
        self.emit("worker", worker)
        return worker

    def perform_jobs(self, **options: Any) -> None:
        """Perform every job that can run now, one after another, each as the daemon would:
        in its task's mode (a forked process, or this one for ``inline``) and failed when it
        runs past its task's timeout (for tests). Options as :meth:`Worker.dequeue`'s.

        An inline task's timeout is enforced with a timer signal, from the main thread only.
        """
        self._perform_jobs(options, in_process=False)

    def perform_jobs_in_foreground(self, **options: Any) -> None:
        """Perform every job that can run now, in this process, without timeouts (for tests)."""
        self._perform_jobs(options, in_process=True)

    def _perform_jobs(self, options: dict[str, Any], *, in_process: bool) -> None:
        worker = self.worker()
        try:
            while worker.register() and (job := worker.dequeue(0, **options)) is not None:
                if in_process:
                    job.record(job.execute())
                else:
                    worker.perform(job)
        finally:
            worker.close()
            worker.unregister()

    def enqueued(
        self,
        *,
        task: str | None = None,
        queue: str | None = None,
        args: Sequence[Any] | None = None,
        limit: int = 100,
    ) -> list[JobInfo]:
        """The jobs of ``task`` in ``queue`` with ``args`` (each when given), oldest first:
        what a test enqueued. Raises ``ValueError`` when more than ``limit`` jobs match the
        task and queue, rather than check part of them."""
        filters: dict[str, Any] = {}
        if task is not None:
            filters["tasks"] = [task]
        if queue is not None:
            filters["queues"] = [queue]
        listed = self.backend.list_jobs(0, limit, filters)
        if listed["total"] > limit:
            raise ValueError(f"enqueued: more than {limit} jobs match; pass a larger limit")
        wanted = None if args is None else list(args)
        return [job for job in reversed(listed["jobs"]) if wanted is None or job["args"] == wanted]

    def foreground(self, job_id: int) -> bool:
        """Run one job in this process now, for debugging; re-raises the task's error.

        The job is retried into the ``minion_foreground`` queue with one attempt first, as in
        Perl; false if it does not exist or cannot run (unfinished parents, unknown task).
        """
        job = self.job(job_id)
        if job is None or not job.retry(attempts=1, queue=FOREGROUND_QUEUE):
            return False
        worker = self.worker()
        try:
            worker.register()
            running = worker.dequeue(0, id=job_id, queues=[FOREGROUND_QUEUE])
            if running is None:
                return False
            error = running.execute()
            running.record(error)
            if error is not None:
                raise ForegroundError(error)
            return True
        finally:
            worker.unregister()


class ForegroundError(RuntimeError):
    """The task ``foreground`` ran failed; the message is the stored error text."""
