"""``EagerMinion``: each job's task runs when it is enqueued, in this process, with no database.

For unit tests of code that enqueues jobs (docs/testing.md). Arguments and results make the
JSON round trip they make through PostgreSQL, so a value PostgreSQL cannot store fails here
as it would there: arguments at enqueue (``TypeError`` or ``ValueError``), a result by
failing its job with ``Result cannot be stored as JSON: ...``.

What it does not do, for want of a database: retries and backoff (a failure is final),
parents, delays and expiry (every job runs at once), priorities and queues (recorded only),
locks, schedules, timeouts, and everything a task asks of its job beyond ``id``, ``args``,
``task`` and ``retries`` (``job.note``, ``job.finish``, ``job.info``... fail the job with
:class:`EagerModeError`). The ``minion`` fixture has all of that.
"""

from __future__ import annotations

import inspect
import json
import time
from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, cast

from minion_daemon.errors import MinionError
from minion_daemon.job import Job
from minion_daemon.options import check_args, parse_enqueue
from minion_daemon.tasks import TaskRegistry
from minion_daemon.tasks.discovery import load_into

if TYPE_CHECKING:
    from minion_daemon.backend.caller import CallerConnection
    from minion_daemon.minion import Minion
    from minion_daemon.model import JobInfo


class EagerModeError(MinionError):
    """A task asked its job for something only a database provides."""


def _no_database() -> EagerModeError:
    return EagerModeError(
        "eager mode has no database: a task that notes, finishes or inspects its job, or an"
        " async def task, needs the minion fixture (docs/testing.md)"
    )


class EagerMinion:
    """Runs each task at enqueue and keeps the jobs' info in memory; the ``minion_eager``
    fixture. Tasks come from ``add_task`` or, with :meth:`load_tasks`, from entry points."""

    def __init__(self) -> None:
        self.tasks = TaskRegistry()
        self._jobs: dict[int, JobInfo] = {}

    @property
    def backend(self) -> NoReturn:
        """What a job handle reaches the database through: nothing, in eager mode."""
        raise _no_database()

    def async_client(self) -> NoReturn:
        """What an async task's handle reaches the database through: nothing either (an
        ``async def`` task runs in the ``minion`` fixture)."""
        raise _no_database()

    def load_tasks(self, names: Collection[str] | None = None) -> EagerMinion:
        """Register the installed ``minion_daemon.tasks`` entry points (or only ``names``)."""
        load_into(self.tasks, names)
        return self

    def add_task(
        self,
        name: str,
        task: Callable[..., object] | type[Job],
        *,
        mode: str | None = None,
        timeout: float | None = None,
    ) -> EagerMinion:
        """Register ``task(job, *args)`` (or a :class:`Job` subclass) as ``name``; the mode
        and timeout are recorded, not honoured (every task runs in this process, to its end)."""
        caller = inspect.stack()[1]
        source = f"add_task() at {caller.filename}:{caller.lineno}"
        self.tasks.add(name, task, source=source, mode=mode, timeout=timeout)
        return self

    def enqueue(
        self,
        task: str,
        args: Sequence[Any] | None = None,
        *,
        conn: CallerConnection | None = None,
        **options: Any,
    ) -> int:
        """Run the job now and return its id; options as :meth:`Minion.enqueue`'s, checked
        the same way. A task that raises fails its job (:meth:`info` has the error). ``conn``
        is taken and left alone: the task runs now, whatever becomes of that transaction."""
        opts = parse_enqueue("enqueue", task, args, options)
        arguments = json.loads(json.dumps(check_args("enqueue: args", args)))
        job_id = len(self._jobs) + 1
        spec = self.tasks.get(task)
        handle = spec.target if spec is not None and isinstance(spec.target, type) else Job
        job = handle(cast("Minion", self), job_id, arguments, 0, task, queue=opts.queue)
        started = time.time()
        error = job.execute()
        outcome = json.loads(json.dumps(job.result if error is None else error))
        self._jobs[job_id] = {
            "id": job_id,
            "args": arguments,
            "attempts": opts.attempts,
            "children": [],
            "created": started,
            "delayed": started,
            "expires": None,
            "finished": time.time(),
            "lax": opts.lax,
            "notes": json.loads(json.dumps(dict(opts.notes))),
            "parents": list(opts.parents),
            "priority": opts.priority,
            "queue": opts.queue,
            "result": outcome,
            "retried": None,
            "retries": 0,
            "started": started,
            "state": "finished" if error is None else "failed",
            "task": task,
            "time": time.time(),
            "worker": None,
        }
        return job_id

    def info(self, job_id: int) -> JobInfo:
        """The job's info as ``list_jobs`` would show it; ``KeyError`` for an unknown id."""
        return self._jobs[job_id]

    def enqueued(
        self,
        *,
        task: str | None = None,
        queue: str | None = None,
        args: Sequence[Any] | None = None,
    ) -> list[JobInfo]:
        """The jobs of ``task`` in ``queue`` with ``args`` (each when given), oldest first, as
        :meth:`Minion.enqueued`."""
        return [
            info
            for info in self._jobs.values()
            if (task is None or info["task"] == task)
            and (queue is None or info["queue"] == queue)
            and (args is None or info["args"] == list(args))
        ]
