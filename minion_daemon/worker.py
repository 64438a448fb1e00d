"""``Worker``: one worker process's loop (SPEC §4.2), its remote control and its signals.

Beyond Perl: the wait for a job ends at once when a job process ends or a stop signal
arrives (signals write to a pipe the dequeue watches), a worker whose tasks are all at their
limits sleeps instead of spinning, jobs have optional timeouts, and a database outage is
survived: the loop backs off and retries, job processes keep running, and their outcomes are
recorded when the database is back (Minion #20).
"""

from __future__ import annotations

import contextlib
import os
import random
import select
import signal
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Final

from minion_daemon import logs, proc
from minion_daemon.commands import parse_kill, parse_stop, whole_number
from minion_daemon.errors import DatabaseUnavailableError
from minion_daemon.events import EventEmitter
from minion_daemon.job import PERFORM_POLL, Job

if TYPE_CHECKING:
    from minion_daemon.minion import Minion
    from minion_daemon.model import DequeuedJob, WorkerInfo

log = logs.get_logger("minion_daemon.worker")

DEFAULT_STATUS: Final[Mapping[str, Any]] = {
    "command_interval": 10,
    "dequeue_timeout": 5,
    "dispatch_interval": 30,
    "heartbeat_interval": 300,
    "jobs": 4,
    "limits": {},
    "queues": ["default"],
    "performed": 0,
    "repair_interval": 21600,
    "spare": 1,
    "spare_min_priority": 1,
    "type": "Python",
    "batch": 1,
}

#: Seconds between TERM and KILL for a job that ran past its timeout.
TIMEOUT_GRACE: Final = 5.0
#: Longest pause of a worker that can take no job (at capacity, at its limits, stopping).
BUSY_PAUSE: Final = 1.0
#: Shortest pause, so a deadline that just passed cannot make the loop spin.
MIN_PAUSE: Final = 0.01
#: A job's output wakes the loop (and so costs a claim) at most this often; meanwhile its
#: pipe holds it, and a task that fills the pipe waits.
OUTPUT_PACE: Final = 0.2
#: Longest pause between attempts while the database is unreachable.
MAX_OUTAGE_BACKOFF: Final = 30.0
#: The pause before the first retry: a failure after good passes is most often a session the
#: server ended (the pool then drops every other dead one at once), and a database that is
#: really gone refuses the retry as fast; the backoff starts at 1 s after that.
FIRST_RETRY_PAUSE: Final = 0.05
#: How long a stopping worker waits for the database to record its jobs' outcomes. After
#: that it leaves them to repair (which fails and retries them), rather than linger forever,
#: an orphan if its supervisor is gone.
STOP_PATIENCE: Final = 120.0
#: How often :meth:`Worker.perform` looks whether a job process that closed its output ended.
REAP_POLL: Final = 0.001
#: Default seconds between pulses (``pulse`` events); see :attr:`Worker.pulse_interval`.
PULSE_INTERVAL: Final = 1.0


class InlineTimeoutError(BaseException):
    """Raised inside an inline task that ran past its timeout, by the pulse's signal handler.

    A BaseException, as KeyboardInterrupt is, so a task's ``except Exception`` cannot swallow
    it: only that job fails, and the worker goes on.
    """

    def __init__(self, seconds: float) -> None:
        super().__init__(f"timed out after {seconds:g} seconds")
        self.seconds = seconds


def desired_tasks(
    limits: Mapping[str, int], available: Collection[str], active: Collection[str]
) -> list[str]:
    """The available tasks still under their limit, given the tasks of running jobs."""
    running = Counter(active)
    return [task for task in available if task not in limits or running[task] < limits[task]]


class Worker(EventEmitter):
    """A registered worker: dequeues jobs of its Minion's tasks and runs them.

    Events: ``dequeue`` (job), ``wait`` (before each dequeue), ``busy`` (at capacity),
    ``turn`` (every pass of the run loop, at least every second or ``dequeue_timeout``),
    ``pulse`` (every :attr:`pulse_interval` from a timer signal, whatever the loop does: waits
    for a job, backs off from the database, waits on a statement, runs an inline job; the
    supervisor's liveness signal; its listeners run in a signal handler, so they only record),
    ``done`` (job, seconds it ran: after its outcome was recorded), ``outage`` (error: a pass
    failed for want of the database) and ``recovered`` (the first good pass after an outage).
    """

    def __init__(self, minion: Minion, *, status: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.minion = minion
        self.id: int | None = None
        self.status: dict[str, Any] = dict(status or {})
        self.commands: dict[str, Callable[..., object]] = {
            "jobs": self._command_jobs,
            "spare": self._command_spare,
            "kill": self._command_kill,
            "stop": self._command_stop,
            "shutdown": self._command_shutdown,
        }
        self.running: dict[int, Job] = {}
        self._finished = False
        self._quit = False
        self._wakeup: int | None = None
        self._wakeup_write: int | None = None
        self._last: dict[str, float] = {}
        self._outage = 0.0
        self._outage_began: float | None = None
        self._output_read_at = -OUTPUT_PACE
        #: Seconds between TERM and KILL for the running jobs on QUIT; 0 (Perl): KILL at once.
        self.quit_grace = 0.0
        #: Seconds between pulses; also how late an inline job's timeout may strike.
        self.pulse_interval = PULSE_INTERVAL
        #: When the running inline job times out (monotonic), and after how many seconds.
        self._inline_deadline: tuple[float, float] | None = None

    # Registration and the inbox

    def register(self) -> int:
        """Insert or heartbeat this worker's row with its whole ``status``, which lists its
        tasks (``tasks``, sorted: beyond Perl, whose status is free-form) so that enqueuers
        and the metrics can tell a task no live worker offers."""
        known = self.id
        self.status["tasks"] = list(self.minion.tasks.ordered_names())
        self.id = self.minion.backend.register_worker(self.id, {"status": self.status})
        if self.id != known:
            logs.bind(worker_id=self.id)
            log.info(
                "worker.registered",
                queues=self.status.get("queues"),
                jobs=self.status.get("jobs"),
                tasks=list(self.minion.tasks.ordered_names()),
            )
            # (id) Before any job is claimed: a supervisor learns whose jobs to fail if this
            # process dies.
            self.emit("registered", self.id)
        return self.id

    def unregister(self) -> None:
        if self.id is not None:
            self.minion.backend.unregister_worker(self.id)
            self.id = None

    @property
    def info(self) -> WorkerInfo | None:
        if self.id is None:
            return None
        workers = self.minion.backend.list_workers(0, 1, {"ids": [self.id]})["workers"]
        return workers[0] if workers else None

    def add_command(self, name: str, handler: Callable[..., object]) -> None:
        """Handle inbox entries ``[name, *args]`` with ``handler(worker, *args)``."""
        self.commands[name] = lambda *args: handler(self, *args)

    def process_commands(self) -> None:
        """Run every command in the inbox; unknown ones are ignored, bad ones logged."""
        assert self.id is not None
        ran = False
        try:
            inbox = self.minion.backend.receive(self.id)
        except (ValueError, RecursionError) as error:
            # Valid JSONB that Python cannot decode (a number past 4300 digits, nesting past
            # the recursion limit), from some peer: taken from the inbox, so gone either way.
            log.warning("worker.inbox_unreadable", error=str(error), consequence="dropped")
            return
        for entry in inbox:
            if not isinstance(entry, list) or not entry or not isinstance(entry[0], str):
                log.warning("worker.command_ignored", command=entry, reason="not a command")
                continue
            if entry[0] not in self.commands:
                log.warning("worker.command_ignored", command=entry, reason="unknown command")
                continue
            try:
                self.commands[entry[0]](*entry[1:])
                ran = True
            except Exception:
                log.exception("worker.command_failed", command=entry)
        if ran:
            self.register()

    def _command_jobs(self, *args: Any) -> None:
        if (count := whole_number(args[0] if args else None)) is not None:
            self.status["jobs"] = count

    def _command_spare(self, *args: Any) -> None:
        if (count := whole_number(args[0] if args else None)) is not None:
            self.status["spare"] = count

    def _command_kill(self, *args: Any) -> None:
        self._signal_job(parse_kill(list(args)))

    def _command_stop(self, *args: Any) -> None:
        self._signal_job(parse_stop(list(args)))

    def _command_shutdown(self, *_: Any) -> None:
        """Beyond Perl: stop as on TERM (take no job, finish the running ones, leave). Not
        Minion's ``stop``, which names a job and which Perl workers obey too."""
        log.info("worker.shutdown_requested")
        self._finished = True

    def _signal_job(self, order: Any) -> None:
        if order is not None and order.job_id in self.running:
            self.running[order.job_id].kill(order.signum)

    # Dequeue

    def dequeue(self, wait: float, **options: Any) -> Job | None:
        """Claim a job of a registered task; ``None`` when unregistered or nothing came."""
        if self.id is None:
            return None
        if "tasks" not in options:
            options["tasks"] = list(self.minion.tasks.ordered_names())
        claimed = self.minion.backend.dequeue(self.id, wait, options, wakeup=self._wakeups())
        return None if claimed is None else self._job_for(claimed)

    def dequeue_many(self, wait: float, limit: int, **options: Any) -> list[Job]:
        """Batched mode's claim: up to ``limit`` jobs in one statement, best first."""
        if self.id is None:
            return []
        if "tasks" not in options:
            options["tasks"] = list(self.minion.tasks.ordered_names())
        backend = self.minion.backend
        claimed = backend.dequeue_many(self.id, wait, limit, options, wakeup=self._wakeups())
        return [self._job_for(job) for job in claimed]

    def _job_for(self, claimed: DequeuedJob) -> Job:
        job_class = self.minion.class_for_task(claimed["task"])
        job = job_class(
            self.minion,
            claimed["id"],
            claimed["args"],
            claimed["retries"],
            claimed["task"],
            queue=claimed["queue"],
        )
        job.latency = claimed["latency"]
        self.emit("dequeue", job)
        return job

    # The run loop

    def run(self) -> None:
        """Work until INT or TERM (after running jobs end) or QUIT (killing them)."""
        for key, value in DEFAULT_STATUS.items():
            self.status.setdefault(key, value)
        interval = int(self.status["repair_interval"])
        self.status["repair_interval"] = interval - random.randrange(max(interval // 2, 1))
        previous = self._install_signals()
        try:
            while not (self._finished and not self.running) and not self._stranded():
                self._step()
        finally:
            # Unregister while a second TERM (the terminal's group and the supervisor both send
            # one) still only sets a flag.
            self._leave()
            self._restore_signals(previous)

    def _step(self) -> None:
        try:
            self._work()
        except DatabaseUnavailableError as error:
            if self._outage_began is None:
                self._outage_began = time.monotonic()
            self._outage = (
                min(max(self._outage * 2, 1.0), MAX_OUTAGE_BACKOFF)
                if self._outage
                else FIRST_RETRY_PAUSE
            )
            log.warning("worker.database_unavailable", error=str(error), retry_in=self._outage)
            self.emit("outage", error)
            self._sleep(self._outage)
        else:
            if self._outage:
                self._outage = 0.0
                self._outage_began = None
                log.info("worker.database_recovered")
                self.emit("recovered")

    def _stranded(self) -> bool:
        """Stopping, with outcomes the database has been unable to take for too long."""
        began = self._outage_began
        if not self._finished or began is None or time.monotonic() - began < STOP_PATIENCE:
            return False
        log.error(
            "worker.abandoning_jobs",
            jobs=sorted(self.running),
            reason=f"stopping, and the database unreachable for {STOP_PATIENCE:g} s",
            consequence="repair fails and retries them",
        )
        return True

    def _work(self) -> None:
        status = self.status
        self.emit("turn")
        self._drain_wakeups()
        self._read_output()
        if self._quit:
            self._quit = False
            for job in self.running.values():
                self._terminate(job, self.quit_grace)
        # Every duty runs on the first pass: Perl's baselines of 0 on the monotonic clock do
        # the same on any host up for more than an interval, so repair runs at startup.
        if self._due("heartbeat", status["heartbeat_interval"]):
            self.register()
        if self._due("command", status["command_interval"]):
            self.process_commands()
        if status["repair_interval"] and self._due("repair", status["repair_interval"]):
            self.minion.repair()
        dispatch = status["dispatch_interval"]
        if dispatch and self.minion.backend.has_schedules and self._due("dispatch", dispatch):
            self.minion.dispatch_schedules()
        self._reap_jobs()
        self._enforce_timeouts()
        self._enforce_kills()
        self._take_job()

    def _take_job(self) -> None:
        status = self.status
        capacity = status["jobs"] + status["spare"]
        if self._finished and not self.running:
            return
        if self._finished or len(self.running) >= capacity:
            self.emit("busy")
            self._sleep(self._pause())
            return
        options: dict[str, Any] = {"queues": status["queues"]}
        if len(self.running) >= status["jobs"]:
            options["min_priority"] = status["spare_min_priority"]
        active = [job.task for job in self.running.values()]
        tasks = desired_tasks(status["limits"], self.minion.tasks.ordered_names(), active)
        if not tasks:
            # Every task is at its limit: wait for a job to end (Perl spins here).
            self._sleep(self._pause())
            return
        self.emit("wait")
        wait = min(status["dequeue_timeout"], self._next_timeout())
        batch = int(status["batch"])
        batched = [task for task in tasks if batch > 1 and self._is_inline(task)]
        if batched:
            others = [task for task in tasks if task not in batched]
            # The wait belongs to the per-job claim when there is one: it also watches for
            # jobs of the batched tasks, which the next pass then claims.
            jobs = self.dequeue_many(0 if others else wait, batch, tasks=batched, **options)
            if jobs or not others:
                self._run_batch(jobs)
                return
            tasks = others
        job = self.dequeue(wait, tasks=tasks, **options)
        if job is not None:
            self._launch(job)

    def _is_inline(self, task: str) -> bool:
        spec = self.minion.tasks.get(task)
        return spec is not None and spec.mode == "inline"

    def _run_batch(self, jobs: list[Job]) -> None:
        """Batched mode: run the claimed inline jobs one after another, then record their
        successes in one statement. A failure is recorded at once, on its own: it may retry,
        and it is rare. Until the batch is recorded, its jobs stay active; if the worker dies
        meanwhile, repair fails them and they run again, as any job of a dead worker does."""
        began = time.monotonic()
        succeeded: list[tuple[Job, float]] = []
        for job in jobs:
            with logs.bound(**_job_fields(job)):
                log.debug("job.started", mode="batch", latency=job.latency)
                started = time.monotonic()
                error = self._execute_inline(job)
                duration = time.monotonic() - started
                if error is not None or job.outcome is not None:
                    job.record(error)
                    self._ended(job, duration)
                else:
                    succeeded.append((job, duration))
        Job.finish_all([job for job, _ in succeeded])
        for job, duration in succeeded:
            self._ended(job, duration, batched=True)
        if jobs:
            finished = sum(job.outcome == "finished" for job in jobs)
            log.info(
                "batch.finished",
                jobs=len(jobs),
                finished=finished,
                others=len(jobs) - finished,
                duration=round(time.monotonic() - began, 6),
            )

    def _launch(self, job: Job) -> None:
        spec = self.minion.tasks.get(job.task)
        # Bound around the fork, so the job process inherits the fields: a task's own log
        # lines name its job.
        with logs.bound(**_job_fields(job)):
            if spec is not None and spec.mode == "inline":
                log.debug("job.started", mode="inline", latency=job.latency)
                started = time.monotonic()
                job.record(self._execute_inline(job))
                self._ended(job, time.monotonic() - started)
                return
            try:
                job.start()
            finally:
                # Tracked as soon as it exists, even if recording its pid failed: it must be
                # reaped, counted against capacity and killed on QUIT like any other.
                if job.pid is not None:
                    self.running[job.id] = job
            log.info("job.started", mode="fork", job_pid=job.pid, latency=job.latency)

    def _execute_inline(self, job: Job) -> str | None:
        """:meth:`Job.execute` under the task's timeout, which the pulse enforces by raising
        :class:`InlineTimeoutError` in the task: only this job fails, at most a pulse late. A
        task stuck in C never sees it, and stops the pulses too: its worker is killed as hung
        (at ``workers.liveness_timeout``), and its jobs are failed as any dead worker's are."""
        spec = self.minion.tasks.get(job.task)
        timeout = None if spec is None else spec.timeout
        # The pulse raises at most once per deadline (it clears the deadline first), and only
        # inside the outer try: a pulse between the task's return and the inner finally still
        # lands in the except below.
        try:
            if timeout is not None:
                self._inline_deadline = (time.monotonic() + timeout, timeout)
            try:
                return job.execute()
            finally:
                self._inline_deadline = None
        except InlineTimeoutError as expired:
            job.timed_out_after = expired.seconds
            return f"Job timed out after {expired.seconds:g} seconds"

    def perform(self, job: Job) -> None:
        """Run one dequeued job to its end as :meth:`run` would, in its task's mode and failed
        past its task's timeout (:meth:`Minion.perform_jobs`)."""
        self.status.setdefault("performed", 0)
        spec = self.minion.tasks.get(job.task)
        if spec is not None and spec.mode == "inline" and spec.timeout is not None:
            with self._pulsing(PERFORM_POLL):
                self._launch(job)
            return
        self._launch(job)
        while self.running:
            output = job.output
            if output is not None and not output.ended:
                output.wait(min(PERFORM_POLL, self._next_timeout()))
            else:
                time.sleep(REAP_POLL)  # the job process closed its output: it ends any moment
            self._reap_jobs()
            self._enforce_timeouts()
            self._enforce_kills()

    @contextlib.contextmanager
    def _pulsing(self, interval: float) -> Iterator[None]:
        """Pulses, and so inline timeouts, outside :meth:`run` (which sets up its own)."""
        previous = signal.signal(signal.SIGALRM, self._pulse)
        signal.setitimer(signal.ITIMER_REAL, interval, interval)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)

    def _reap_jobs(self) -> None:
        for job_id, job in list(self.running.items()):
            if job.is_finished():
                del self.running[job_id]
                self._ended(job, time.monotonic() - (job.started_at or time.monotonic()))

    def _ended(self, job: Job, duration: float, *, batched: bool = False) -> None:
        self.status["performed"] += 1
        fields = {**_job_fields(job), "duration": round(duration, 6)}
        reason = job.exit_reason
        if reason is not None and not reason.clean:
            fields.update(exit_code=reason.code, signal=reason.signal_name)
        if job.outcome == "finished":
            if batched:
                log.debug("job.finished", **fields)
            else:
                log.info("job.finished", **fields, latency=job.latency)
        elif job.outcome is not None:
            log.info("job.failed", **fields, error=job.failure, retried=job.outcome == "retried")
        else:
            # The task retried or removed its job, or repair got there first: nothing of ours
            # was recorded.
            log.info("job.ended", **fields, outcome="changed elsewhere")
        self.emit("done", job, duration)

    def _pause(self) -> float:
        """How long to wait while no job can be taken: until the next timeout is due, at
        most :data:`BUSY_PAUSE` (Perl's busy sleep); a job ending or a signal ends it sooner."""
        return min(BUSY_PAUSE, self._next_timeout())

    def _next_timeout(self) -> float:
        """Seconds until the next job timeout or KILL is due, or the jobs' output is read."""
        now = time.monotonic()
        paced = self._output_read_at + OUTPUT_PACE - now
        due = paced if paced > 0 else float("inf")
        for job in self.running.values():
            if job.kill_at is not None:
                # Past its KILL, a job only awaits reaping, which SIGCHLD announces.
                if job.kill_at > now:
                    due = min(due, job.kill_at - now)
                continue
            spec = self.minion.tasks.get(job.task)
            if spec is not None and spec.timeout is not None and job.started_at is not None:
                due = min(due, job.started_at + spec.timeout - now)
        return max(due, MIN_PAUSE)

    def _enforce_timeouts(self) -> None:
        now = time.monotonic()
        for job in self.running.values():
            spec = self.minion.tasks.get(job.task)
            if spec is None or spec.timeout is None or job.kill_at is not None:
                continue
            elapsed = now - (job.started_at or now)
            if job.timed_out_after is None and elapsed > spec.timeout:
                job.timed_out_after = spec.timeout
                self._terminate(job, TIMEOUT_GRACE)

    def _terminate(self, job: Job, grace: float) -> None:
        """TERM now, so the task can clean up; KILL after ``grace`` if it is still running."""
        if grace <= 0:
            job.stop()
        elif job.kill_at is None:
            job.kill(signal.SIGTERM)
            job.kill_at = time.monotonic() + grace

    def _enforce_kills(self) -> None:
        now = time.monotonic()
        for job in self.running.values():
            if job.kill_at is not None and now >= job.kill_at:
                job.stop()

    def _due(self, duty: str, interval: float) -> bool:
        now = time.monotonic()
        last = self._last.get(duty)
        if last is not None and now - last < interval:
            return False
        self._last[duty] = now
        return True

    # Signals: handlers only record; the pipe wakes whatever the loop waits on.

    def _install_signals(self) -> dict[int, Any]:
        read, write = os.pipe()
        for end in (read, write):
            os.set_blocking(end, False)
        self._wakeup = read
        self._wakeup_write = write
        signal.set_wakeup_fd(write, warn_on_full_buffer=False)
        handlers = {
            signal.SIGINT: self._handle_stop,
            signal.SIGTERM: self._handle_stop,
            signal.SIGQUIT: self._handle_quit,
            signal.SIGCHLD: lambda *_: None,
            signal.SIGALRM: self._pulse,
        }
        previous: dict[int, Any] = {
            signum: signal.signal(signum, handler) for signum, handler in handlers.items()
        }
        # A timer signal, not a thread: its handler runs only between the main thread's
        # bytecodes, so pulses stop when the worker is truly stuck (in C, or killed), and
        # nothing else about its liveness can lie. Job processes do not inherit the timer.
        signal.setitimer(signal.ITIMER_REAL, self.pulse_interval, self.pulse_interval)
        return previous

    def _pulse(self, *_: object) -> None:
        self.emit("pulse")
        deadline = self._inline_deadline
        if deadline is not None and time.monotonic() >= deadline[0]:
            self._inline_deadline = None
            raise InlineTimeoutError(deadline[1])

    def _handle_stop(self, *_: object) -> None:
        self._finished = True

    def _handle_quit(self, *_: object) -> None:
        self._finished = self._quit = True

    def _restore_signals(self, previous: dict[int, Any]) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.set_wakeup_fd(-1)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for end in (self._wakeup, self._wakeup_write):
            if end is not None:
                os.close(end)
        self._wakeup = self._wakeup_write = None

    def _drain_wakeups(self) -> None:
        if self._wakeup is not None:
            proc.drain(self._wakeup)

    def _wakeups(self) -> list[int]:
        """What ends a wait: the signal pipe, and the running jobs' output pipes unless their
        output was read within :data:`OUTPUT_PACE` (a chatty job would wake every pass)."""
        if self._wakeup is None:
            return []
        if time.monotonic() < self._output_read_at + OUTPUT_PACE:
            return [self._wakeup]
        outputs = [job.output for job in self.running.values()]
        return [self._wakeup, *(out.fd for out in outputs if out is not None and not out.ended)]

    def _read_output(self) -> None:
        """Log what the running jobs wrote to stdout and stderr. The next read waits for
        :data:`OUTPUT_PACE`, unless a pipe was found full: its job waits for the read."""
        outputs = [job.output for job in self.running.values() if job.output is not None]
        read = [out for out in outputs if out.read()]
        if read:
            full = any(out.was_full for out in read)
            self._output_read_at = -OUTPUT_PACE if full else time.monotonic()

    def _sleep(self, seconds: float) -> None:
        """Sleep up to ``seconds``; a signal (a job ending, a stop) ends it early."""
        if self._wakeup is None:
            time.sleep(seconds)
        else:
            select.select(self._wakeups(), [], [], seconds)

    def _leave(self) -> None:
        try:
            self.unregister()
        except DatabaseUnavailableError as error:
            log.warning(
                "worker.unregister_failed", error=str(error), consequence="repair removes the row"
            )
        log.info("worker.stopped", performed=self.status.get("performed"))


def _job_fields(job: Job) -> dict[str, Any]:
    return {"job_id": job.id, "task": job.task, "queue": job.queue, "retries": job.retries}
