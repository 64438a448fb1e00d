"""``Job``: one job as its worker holds it, run in a forked process or in this one.

Events (``job.on(event, listener)``; listeners get the job first) and where they run:

==========  =========================  ===================================================
event       arguments                  process
==========  =========================  ===================================================
spawn       pid                        worker, right after the fork
start       -                          job process (or worker, inline), before the task;
                                       listeners may change ``task`` and ``args``
finish      -                          the process that ran the task, after it returned
failed      error                      whichever process recorded the failure
finished    result                     whichever process recorded the success
cleanup     -                          job process, just before it exits
reap        pid                        worker, after the job process ended, before the
                                       outcome is recorded
==========  =========================  ===================================================

Outcomes (SPEC §3.3): a task that returns records its return value (``None`` unless it
finished the job itself); one that raises fails the job with the message and traceback; a job
process that exits non-zero or dies by a signal fails it with ``Job terminated unexpectedly
(exit code: N, signal: M)``. Every change is fenced by ``retries``, so a stale handle changes
nothing.

A job process talks to its worker through a pipe. Usually it hands over what the task
produced (its result or its error), and the worker records it with a connection it already
has: the job process then never connects to the database, which saves a connection setup per
job. A result too large for the pipe's buffer, or a job the task recorded itself, is recorded
by the job process, which then tells the worker the outcome (:attr:`Job.outcome`). Either way
the worker knows how each job ended, for its logs and metrics, and Perl's extra ``finish``
after every clean exit is skipped.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
import traceback
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from minion_daemon import proc
from minion_daemon.errors import DatabaseUnavailableError
from minion_daemon.events import EventEmitter
from minion_daemon.options import check_json, json_problem, storable_text
from minion_daemon.output import JobOutput, captured, pipe, send_to

if TYPE_CHECKING:
    from minion_daemon.minion import Minion
    from minion_daemon.model import JobInfo


#: How long a job process keeps trying to record its outcome while the database is away.
RECORD_PATIENCE: Final = 120.0
#: Longest failure summary a job process sends its worker (the job's result holds it all).
SUMMARY_BYTES: Final = 1000
#: How often :meth:`Job.perform` looks whether its job process ended, while it writes.
PERFORM_POLL: Final = 0.1
#: The largest message a job process hands its worker: within the 64 KiB a Linux pipe holds,
#: so the one write into the fresh pipe never blocks, whenever the worker gets to read it.
HANDOVER_BYTES: Final = 60_000


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
        #: The job process while one runs (fork mode), and when it started (monotonic).
        self.pid: int | None = None
        self.started_at: float | None = None
        #: What the task returned, recorded unless the task finished or failed the job itself.
        self.result: Any = None
        #: Set by the worker when it killed the job for running longer than its timeout.
        self.timed_out_after: float | None = None
        #: How the job process ended, once it was reaped.
        self.exit_reason: proc.ExitReason | None = None
        #: When the worker sends KILL (monotonic), after a TERM for a timeout or a fast stop.
        self.kill_at: float | None = None
        #: What this handle (or its job process) recorded: "finished", "failed" (no attempts
        #: left) or "retried" (failed, and retried after backoff).
        self.outcome: str | None = None
        #: The first line of the recorded failure, for logs.
        self.failure: str | None = None
        self._outcome_pipe: int | None = None
        #: What the job process writes to stdout and stderr, while it runs (fork mode).
        self.output: JobOutput | None = None
        #: What the job process handed over for the worker to record: ("result" | "error", value).
        self._handed: tuple[str, Any] | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id} {self.task!r} retries={self.retries}>"

    # The job in the database

    @property
    def info(self) -> JobInfo | None:
        """The job's row as ``list_jobs`` shows it, read now; ``None`` once it is gone."""
        jobs = self.minion.backend.list_jobs(0, 1, {"ids": [self.id]})["jobs"]
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
        return self.minion.backend.note(self.id, values)

    def finish(self, result: Any = None) -> bool:
        """Record success with ``result``; false if this handle no longer holds the job."""
        if not self.minion.backend.finish_job(self.id, self.retries, result):
            return False
        self.outcome = "finished"
        self.emit("finished", result)
        return True

    def fail(self, error: Any = "Unknown error") -> bool:
        """Record failure (retried after backoff while attempts remain)."""
        outcome = self.minion.backend.record_failure(self.id, self.retries, error)
        if outcome is None:
            return False
        self.outcome = outcome
        self.failure = (str(error).strip().splitlines() or [""])[0]
        self.emit("failed", error)
        return True

    def retry(self, **options: Any) -> bool:
        """Make the job inactive again with ``retry_job``'s options (attempts, delay, ...)."""
        return self.minion.backend.retry_job(self.id, self.retries, options)

    def remove(self) -> bool:
        return self.minion.backend.remove_job(self.id)

    # Running it

    def run(self, *args: Any) -> Any:
        """The task itself, for a :class:`Job` subclass registered as a task."""
        raise NotImplementedError('Method "run" not implemented by subclass')

    def execute(self) -> str | None:
        """Run the task in this process; returns the error text, or ``None`` on success."""
        try:
            with captured():
                self.emit("start")
                spec = self.minion.tasks.get(self.task)
                if spec is None:
                    raise LookupError(f'Task "{self.task}" is not registered')
                if isinstance(spec.target, type):
                    self.result = self.run(*self.args)
                else:
                    self.result = spec.target(self, *self.args)
                self.emit("finish")
        except Exception as error:  # noqa: BLE001 - any failure of the task is the job's result
            return describe_error(error)
        return self._unstorable_result()

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

    def record(self, error: str | None, *, finish_null: bool = True) -> None:
        """Store what :meth:`execute` produced, unless the task already recorded its job.

        A task that returned ``None`` finishes its job with a null result here, unless
        ``finish_null`` is false: a job process leaves that to its worker, whose ``finish``
        after the clean exit records it, as in Perl (and emits ``finished`` there).
        """
        if error is not None:
            self.fail(error)
        elif self.outcome is None and (self.result is not None or finish_null):
            self.finish(self.result)

    @staticmethod
    def finish_all(jobs: Sequence[Job]) -> None:
        r"""Record the successes of ``jobs`` (each :meth:`execute`\ d without error) in one
        statement: batched mode's one commit for many jobs."""
        if not jobs:
            return
        backend = jobs[0].minion.backend
        recorded = backend.finish_jobs([(job.id, job.retries, job.result) for job in jobs])
        for job in jobs:
            if job.id in recorded:
                job.outcome = "finished"
                job.emit("finished", job.result)

    def start(self) -> Job:
        """Fork the job process; the parent writes the ``minion_pid`` note (Minion 12)."""
        read, write = os.pipe()
        output, written = pipe()
        try:
            self.pid = proc.fork(lambda: self._in_child(read, write, written), job=True)
        finally:
            os.close(write)
            os.close(written)
        os.set_blocking(read, False)
        self._outcome_pipe = read
        self.output = JobOutput(output)
        self.started_at = time.monotonic()
        self.minion.backend.note_pid(self.id, self.pid)
        self.emit("spawn", self.pid)
        return self

    def _in_child(self, read: int, write: int, output: int) -> int:
        send_to(output)
        proc.set_title(f"job {self.id} {self.task}", "minion-job")
        os.close(read)
        self.minion.backend.forget_inherited()
        try:
            error = self.execute()
        except SystemExit as leaving:
            # A task that calls sys.exit(n) means exit code n, as exit(n) does in Perl.
            return leaving.code if isinstance(leaving.code, int) else proc.EXIT_CRASHED
        handover = self._handover(error)
        if handover is None:
            self._record_patiently(error)
            if self.outcome is not None:
                handover = f"{self.outcome}\n{self.failure or ''}".encode(errors="replace")
                handover = handover[:SUMMARY_BYTES]
        if handover:
            with contextlib.suppress(OSError):  # a worker gone cannot listen anyway
                os.write(write, handover)
        self.emit("cleanup")
        return 0

    def _handover(self, error: str | None) -> bytes | None:
        """The message that lets the worker record this job; ``None`` when the job process
        must record it itself (the task already did, or the value does not fit the pipe or
        cannot be stored, which recording then reports as it always does)."""
        if self.outcome is not None:
            return None
        if error is None and self.result is None:
            return b""  # the worker's finish after the clean exit records the null result
        kind, value = ("error", error) if error is not None else ("result", self.result)
        try:
            check_json(f"job {self.id}: {kind}", value)
            message = f"{kind}\n{json.dumps(value)}".encode()
        except (TypeError, ValueError):
            return None
        return message if len(message) <= HANDOVER_BYTES else None

    def _read_outcome(self) -> None:
        """Take what the ended job process handed over or recorded; nothing if it died first."""
        if self._outcome_pipe is None:
            return
        chunks = []
        try:
            while chunk := os.read(self._outcome_pipe, HANDOVER_BYTES):
                chunks.append(chunk)
        except BlockingIOError:
            pass  # a descendant of the job process still holds the pipe open
        finally:
            os.close(self._outcome_pipe)
            self._outcome_pipe = None
        kind, _, rest = b"".join(chunks).partition(b"\n")
        if kind in (b"result", b"error"):
            self._handed = (kind.decode(), json.loads(rest))
        elif kind in (b"finished", b"failed", b"retried"):
            self.outcome = kind.decode()
            self.failure = rest.decode(errors="replace") or None

    def _record_patiently(self, error: str | None) -> None:
        """Record the outcome, waiting out a database outage of up to :data:`RECORD_PATIENCE`.

        The work is done; giving up at once would turn a brief outage into a failure and a
        second run of the task.
        """
        deadline = time.monotonic() + RECORD_PATIENCE
        pause = 0.5
        while True:
            try:
                self.record(error, finish_null=False)
            except DatabaseUnavailableError:
                if time.monotonic() + pause > deadline:
                    raise
                time.sleep(pause)
                pause = min(pause * 2, 10.0)
            else:
                return

    def perform(self) -> None:
        """Run the job in a forked process, wait for it, and record the outcome."""
        self.start()
        assert self.pid is not None
        assert self.output is not None
        reason = proc.reap(self.pid)
        # Reading its output while it runs: a job that fills the pipe waits for this.
        while reason is None and not self.output.ended:
            self.output.wait(PERFORM_POLL)
            reason = proc.reap(self.pid)
        self._reaped(reason if reason is not None else proc.reap(self.pid, block=True))
        self.record_exit()

    def is_finished(self) -> bool:
        """Reap the job process if it ended and record the outcome; never blocks.

        If recording fails (the database is gone), the job stays reaped with its
        ``exit_reason``, and :meth:`record_exit` can be called again later.
        """
        unreaped = self.exit_reason is None
        if unreaped and (self.pid is None or not self._reaped(proc.reap(self.pid))):
            return False
        self.record_exit()
        return True

    def _reaped(self, reason: proc.ExitReason | None) -> bool:
        if reason is None:
            return False
        self.exit_reason = reason
        self._read_outcome()
        if self.output is not None:
            self.output.close()
            self.output = None
        self.emit("reap", self.pid)
        return True

    def record_exit(self) -> None:
        """Record how the reaped job process ended (finish, or fail with the reason)."""
        reason = self.exit_reason
        assert reason is not None, "record_exit() before the job process was reaped"
        if self._handed is not None:
            # The task completed before whatever ended its process; that outcome stands, as
            # it would had the job process recorded it itself.
            kind, value = self._handed
            recorded = self.finish(value) if kind == "result" else self.fail(value)
            self._handed = None
            if recorded:
                return
        if self.timed_out_after is not None:
            self.fail(f"Job timed out after {self.timed_out_after:g} seconds")
        elif not reason.clean:
            self.fail(f"Job terminated unexpectedly ({reason})")
        elif self.outcome is None:
            self.finish()

    def kill(self, signum: int | str) -> bool:
        """Send a signal (a number or a name such as ``"INT"``) to the job process.

        A signal that ends the job reaches its whole process group, so whatever the task
        started ends with it. USR1 and USR2 are messages to the task, which handles them; by
        their default action they would kill the task's children, so only the job process
        gets them.
        """
        number = signum if isinstance(signum, int) else signal.Signals[f"SIG{signum}"].value
        if self.pid is None:
            return False
        if number in (signal.SIGUSR1, signal.SIGUSR2):
            return proc.kill(self.pid, number)
        return proc.kill_group(self.pid, number)

    def stop(self) -> bool:
        """Kill the job process at once (SIGKILL); it is recorded failed when reaped."""
        return self.kill(signal.SIGKILL)
