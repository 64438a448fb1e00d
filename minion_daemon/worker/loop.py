"""``Worker``: one worker process's loop (SPEC §4.2), its remote control and its signals.

Each pass of the loop reads as verbs: collect the jobs that ended, record them and claim the
next in one statement, launch what was claimed in its task's runner, then wait on one
selector (the signal pipe, the LISTEN connection, the runners' descriptors) until something
happens or a duty or deadline is due.

Beyond Perl: the wait ends at once when a job ends or a stop signal arrives, a worker whose
tasks are all at their limits waits instead of spinning, jobs have optional timeouts, and a
database outage is survived: the loop backs off and retries, job processes keep running, and
their outcomes are recorded when the database is back (Minion #20).
"""

from __future__ import annotations

import contextlib
import os
import random
import selectors
import signal
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Final

from minion_daemon import logs, proc, tracing
from minion_daemon.commands import parse_kill, parse_stop, whole_number
from minion_daemon.errors import DatabaseUnavailableError
from minion_daemon.events import EventEmitter
from minion_daemon.job import Job
from minion_daemon.model import Mode
from minion_daemon.outcome import verdict
from minion_daemon.runners import Ended, Runner
from minion_daemon.runners.asyncio_runner import AsyncRunner
from minion_daemon.runners.fork import ForkRunner, ForkServerGoneError
from minion_daemon.runners.inline import InlineRunner
from minion_daemon.worker.limits import FleetLimits
from minion_daemon.worker.settings import WorkerSettings
from minion_daemon.worker.slots import opening

if TYPE_CHECKING:
    from minion_daemon.minion import Minion
    from minion_daemon.model import DequeuedJob, WorkerInfo

log = logs.get_logger("minion_daemon.worker")

#: Longest pause of a worker that can take no job (at capacity, at its limits, stopping).
BUSY_PAUSE: Final = 1.0
#: Shortest pause, so a deadline that just passed cannot make the loop spin.
MIN_PAUSE: Final = 0.01
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
#: How long a started job's ``minion_pid`` note may wait for the worker's next statement
#: before it gets one of its own (a worker at capacity makes none).
PID_NOTE_PATIENCE: Final = 0.5


def desired_tasks(
    limits: Mapping[str, int], available: Collection[str], active: Collection[str]
) -> list[str]:
    """The available tasks still under their limit, given the tasks of running jobs."""
    running = Counter(active)
    return [task for task in available if task not in limits or running[task] < limits[task]]


class Worker(EventEmitter):
    """A registered worker: claims jobs of its Minion's tasks and runs them.

    Events: ``dequeue`` (job: claimed; it runs again in the fork server for a job it forks,
    so that listeners the dequeue listener attaches to the job run in the job process),
    ``launch`` (job: about to run, in this process only), ``wait`` (before each wait for
    jobs), ``busy`` (at capacity),
    ``turn`` (every pass of the run loop, at least every second or ``dequeue_timeout``),
    ``pulse`` (every ``pulse_interval`` from a timer signal, whatever the loop does: waits
    for a job, backs off from the database, waits on a statement, runs an inline job; the
    supervisor's liveness signal; its listeners run in a signal handler, so they only record),
    ``done`` (:class:`~minion_daemon.runners.Ended`: after its outcome was recorded),
    ``outage`` (error: a pass failed for want of the database), ``loop_lag`` (seconds: the
    event loop of async jobs ran late, or was held by a coroutine), ``recovered`` (the first
    good pass after an outage),
    ``deferred`` (the claimed job's row, the limit: ``concurrency`` or ``rate``: it went back
    to waiting, over its task's fleet-wide limit) and
    ``registered`` (id).
    """

    def __init__(
        self, minion: Minion, settings: WorkerSettings | None = None, **status: Any
    ) -> None:
        super().__init__()
        self.minion = minion
        self.settings = settings or WorkerSettings.of(**status)
        self.id: int | None = None
        #: Perl's worker ``status``, derived from :attr:`settings`; a custom command may add
        #: keys of its own, which the next heartbeat registers.
        self.status: dict[str, Any] = {**self.settings.status(), "performed": 0}
        self.commands: dict[str, Callable[..., object]] = {
            "jobs": self._command_jobs,
            "spare": self._command_spare,
            "kill": self._command_kill,
            "stop": self._command_stop,
            "shutdown": self._command_shutdown,
        }
        self.inline = InlineRunner()
        self.fork = ForkRunner(minion, lambda job: self.emit("dequeue", job))
        self.aio = AsyncRunner(
            self.fork.server,
            block_grace=self.settings.async_block_grace,
            lagged=lambda seconds: self.emit("loop_lag", seconds),
        )
        self._runners: dict[Mode, Runner] = {
            Mode.FORK: self.fork,
            Mode.INLINE: self.inline,
            Mode.ASYNC: self.aio,
        }
        self.fleet_limits = FleetLimits(
            minion.backend, minion.tasks, lambda job, limit: self.emit("deferred", job, limit)
        )
        #: The running jobs by id, whatever their runner.
        self.running: dict[int, Job] = {}
        #: Successes to record with the next statement: (job, result, pid or None).
        self._settle: list[tuple[Job, Any, int | None]] = []
        self._pids: list[tuple[int, int]] = []
        self._pids_since: float | None = None
        #: Jobs whose success waits for the next statement, to be logged once it is recorded.
        self._pending_done: list[Ended] = []
        #: Until when (monotonic) no claim is made: the last found no more jobs than it took,
        #: and no news came since (:meth:`_take_jobs`).
        self._drained_until: float | None = None
        #: Whether the last claim of a worker with batched and other tasks was a batch.
        self._batch_turn = False
        #: Whether the next claim is the spare slot's turn, after one of async jobs.
        self._spare_turn = False
        #: Jobs of batches not recorded yet: their own success lines are logged at debug only.
        self._quiet: set[int] = set()
        self._finished = False
        self._quit = False
        #: True when the worker stopped because its fork server died.
        self.broken = False
        self._selector: selectors.BaseSelector | None = None
        self._wakeup: tuple[int, int] | None = None
        self._last: dict[str, float] = {}
        self._repair_every = 0.0
        self._outage = 0.0
        self._outage_began: float | None = None

    def _apply(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self.status.update(settings.status())

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
                queues=list(self.settings.queues),
                jobs=self.settings.jobs,
                tasks=self.status["tasks"],
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
            self._apply(self.settings.replace(jobs=count))

    def _command_spare(self, *args: Any) -> None:
        if (count := whole_number(args[0] if args else None)) is not None:
            self._apply(self.settings.replace(spare=count))

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
        if order is not None:
            self.signal_job(order.job_id, order.signum)

    # Claims

    def dequeue(self, wait: float, **options: Any) -> Job | None:
        """Claim a job of a registered task; ``None`` when unregistered or nothing came."""
        if self.id is None:
            return None
        if "tasks" not in options:
            options["tasks"] = list(self.minion.tasks.ordered_names())
        claimed = self.minion.backend.dequeue(self.id, wait, options)
        return None if claimed is None else self._job_for(claimed)

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
        job.worker_id = self.id
        job.trace_context = claimed["trace_context"] or {}
        self.emit("dequeue", job)
        return job

    def _mode_of(self, task: str) -> Mode:
        spec = self.minion.tasks.get(task)
        return Mode.FORK if spec is None else spec.mode

    def _runner_of(self, job: Job) -> Runner:
        return self._runners[self._mode_of(job.task)]

    # The run loop

    def run(self) -> None:
        """Work until INT or TERM (after running jobs end) or QUIT (killing them)."""
        interval = self.settings.repair_interval
        self._repair_every = interval - random.uniform(0, interval / 2) if interval else 0.0
        # First, before the pool, any thread or connection: the process jobs (and the event
        # loop) fork from.
        if any(spec.mode in (Mode.FORK, Mode.ASYNC) for spec in self.minion.tasks.specs()):
            self.fork.start()
        if not self.minion.backend.can_listen:
            log.info(
                "worker.polling",
                every=self.settings.dequeue_timeout,
                reason="postgres.pool_mode is transaction and no postgres.listen_dsn is set",
            )
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
            # The pass's own lines go out in one write, before any wait or inline task.
            with logs.batched():
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
            self._wait(self._outage, listen=False)
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
        settings = self.settings
        self.emit("turn")
        if self._wakeup is not None:
            proc.drain(self._wakeup[0])
        if self._quit:
            self._quit = False
            for runner in self._runners.values():
                runner.stop_all(settings.quit_grace)
        self._collect()
        # Every duty runs on the first pass: Perl's baselines of 0 on the monotonic clock do
        # the same on any host up for more than an interval, so repair runs at startup.
        duties = self._duties()
        if self._due("heartbeat", duties["heartbeat"]):
            self.register()
        if self._due("command", duties["command"]):
            self.process_commands()
        if duties["repair"] and self._due("repair", duties["repair"]):
            self.minion.repair()
        if duties["dispatch"] and self._due("dispatch", duties["dispatch"]):
            self.minion.dispatch_schedules()
        self._take_jobs()

    def _collect(self) -> None:
        """Record the jobs that ended: failures at once, successes with the next statement."""
        for runner in self._runners.values():
            try:
                ended = runner.collect()
            except ForkServerGoneError as gone:
                ended = gone.args[0]
                self._finished = self.broken = True
            # Before the endings: a job that started and ended since the last pass takes its
            # pid note along with its outcome.
            self._note_pids(self.fork.take_pids())
            if ended:
                self._drained_until = None
            for item in ended:
                self._ended(item)

    def _ended(self, ended: Ended) -> None:
        job = ended.job
        tracing.killed(job, ended.ending, ended.duration)
        self.fleet_limits.release(job.id)
        decided = verdict(ended.ending)
        if decided.action == "finish":
            # Its slot is free already: the statement that records it claims the next job.
            self.running.pop(job.id, None)
            self._settle.append((job, decided.value, self._take_pid(job)))
            self._pending_done.append(ended)
        else:
            job.apply(decided)
            self._done(ended)

    def _take_pid(self, job: Job) -> int | None:
        """The pid of ``job``'s process if its ``minion_pid`` note was not written yet."""
        for index, (job_id, pid) in enumerate(self._pids):
            if job_id == job.id:
                del self._pids[index]
                return pid
        return None

    def _take_jobs(self, *, claiming: bool = True) -> None:
        """Record what waits to be recorded and claim what the free slots can take, in one
        statement; launch the claimed jobs; wait when nothing came. Without ``claiming``:
        record what waits, at once, and nothing else."""
        drained = self._drained()
        claim = self._claim_plan() if claiming and not drained else None
        pids_waited = self._pids_since is not None and (
            not claiming or time.monotonic() - self._pids_since > PID_NOTE_PATIENCE
        )
        if claim is None and not self._settle and not pids_waited:
            if not claiming:
                return
            if drained:
                assert self._drained_until is not None
                listening = self.minion.backend.listen() is not None
                self._wait_for_jobs(self._drained_until - time.monotonic(), listening)
                return
            self.emit("busy")
            self._wait(self._pause())
            return
        limit, options, batched, complete = claim or (
            0,
            {"queues": list(self.settings.queues)},
            False,
            False,
        )
        # Listening before the claim: a job committed between the claim and the wait still
        # wakes the wait (Perl listens after the claim and can sleep through one).
        listening = claim is not None and self.minion.backend.listen() is not None
        assert self.id is not None
        settle, pids = self._settle, self._pids
        turn = self.minion.backend.settle_and_claim(
            self.id,
            limit,
            options,
            finished=[(job.id, job.retries, result, pid) for job, result, pid in settle],
            pids=pids,
        )
        self._settle, self._pids, self._pids_since = [], [], None
        for job, result, _ in settle:
            if job.id in turn.recorded:
                job.finished(result)
        for ended in self._pending_done:
            self._done(ended)
        self._pending_done = []
        admitted = self.fleet_limits.admit(turn.claimed, self.id)
        jobs = [self._job_for(claimed) for claimed in admitted]
        if jobs:
            self._launch(jobs, batched=batched)
        # A claim that came back short, when it looked for every task, found every job it could
        # take: another would find none until news (a notification, a job's end, which frees a
        # limited task's slot, or a delay's end, which dequeue_timeout bounds). Until then the
        # worker claims nothing: a round trip saved per job on a queue kept short, and the
        # statement that records the job that ends goes out at once. What the claim found
        # counts, not what started: jobs that went back over a fleet-wide limit were found, and
        # the next pass claims at once, without their tasks.
        found = len(turn.claimed)
        exhausted = complete and found < limit
        if claim is not None and exhausted:
            self._drained_until = time.monotonic() + self.settings.dequeue_timeout
        # After a claim of async jobs, the spare slot's claim comes next, without a wait.
        waits = claim is not None and (exhausted or not found) and not self._settle
        if waits and not self._spare_turn:
            self._wait_for_jobs(self.settings.dequeue_timeout, listening)

    def _wait_for_jobs(self, seconds: float, listening: bool) -> None:
        """Wait up to ``seconds`` (or until a duty or a runner needs the worker) for jobs: a
        notification when ``listening``, a job's end, a signal."""
        self.emit("wait")
        self._wait(self._pause(seconds), listen=listening)

    def _drained(self) -> bool:
        """Whether the last claim's finding that no job waits still stands (see _take_jobs)."""
        if self._drained_until is not None and time.monotonic() >= self._drained_until:
            self._drained_until = None
        return self._drained_until is not None

    def _claim_plan(self) -> tuple[int, dict[str, Any], bool, bool] | None:
        """How many jobs to claim now, with which options, whether they run batched, and
        whether the claim looks for every task this worker can take now (not one kind of a
        worker that alternates batches with other jobs); ``None`` when no job can be taken
        (stopping, at capacity, every task at its limit)."""
        settings = self.settings
        if self._finished:
            return None
        active = [job.task for job in self.running.values()]
        desired = desired_tasks(settings.limits, self.minion.tasks.ordered_names(), active)
        open_tasks = self.fleet_limits.open_tasks(desired)
        free = opening(
            open_tasks,
            self._mode_of,
            [self._mode_of(task) for task in active],
            jobs=settings.jobs,
            spare=settings.spare,
            async_jobs=settings.async_jobs,
            spare_turn=self._spare_turn,
        )
        if free is None:
            return None
        self._spare_turn = free.spare_next
        tasks = free.tasks
        # A task sitting out a fleet-wide limit may be claimable again before any news: a
        # claim without it does not look for every task.
        every = free.complete and len(open_tasks) == len(desired)
        options: dict[str, Any] = {"queues": list(settings.queues), "tasks": tasks}
        if free.spare:
            options["min_priority"] = settings.spare_min_priority
            return 1, options, False, every
        if settings.batch > 1:
            # A batch would take a fleet-wide limit's holds for jobs that wait their turn.
            inline = [
                task
                for task in tasks
                if self._mode_of(task) == Mode.INLINE and not self.fleet_limits.limited([task])
            ]
            if inline:
                # Batches and other jobs are claimed in turns: a batch when the last claim
                # was not one, so that neither starves the other.
                self._batch_turn = not self._batch_turn
                if self._batch_turn or len(inline) == len(tasks):
                    options["tasks"] = inline
                    return settings.batch, options, True, every and len(inline) == len(tasks)
                options["tasks"] = [task for task in tasks if task not in inline]
                return self._claim_size(free.limit, options), options, False, False
        return self._claim_size(free.limit, options), options, False, every

    def _claim_size(self, free: int, options: dict[str, Any]) -> int:
        # Limits are per task: claiming several at once could pass one. Inline jobs run one
        # after another: claiming more than the one that runs would hold the others active
        # (batched mode does that on purpose).
        inline_only = all(self._mode_of(task) == Mode.INLINE for task in options["tasks"])
        one = self.settings.limits or inline_only or self.fleet_limits.limited(options["tasks"])
        return 1 if one else free

    def _launch(self, jobs: list[Job], *, batched: bool = False) -> None:
        for job in jobs:
            self.emit("launch", job)
        if batched:
            self._run_batch(jobs)
            return
        for job in jobs:
            runner = self._runner_of(job)
            if runner is self.inline:
                # Runs to its end here, so it is never among the running jobs.
                logs.flush()
                self.inline.launch([job])
                self._collect()
                continue
            self.running[job.id] = job
            runner.launch([job])
            log.info("job.started", mode=runner.mode.value, **job.log_fields(), latency=job.latency)

    def _run_batch(self, jobs: list[Job]) -> None:
        """Batched mode: run the claimed inline jobs one after another; their successes are
        recorded by the next statement, which claims the next batch too (failures are recorded
        at once, on their own: they may retry, and they are rare). Until the batch is
        recorded, its jobs stay active; if the worker dies meanwhile, repair fails them and
        they run again, as any job of a dead worker does."""
        began = time.monotonic()
        logs.flush()
        self._quiet.update(job.id for job in jobs)
        self.inline.launch(jobs)
        self._collect()
        succeeded = {job.id for job, _, _ in self._settle}
        finished = sum(job.id in succeeded or job.outcome == "finished" for job in jobs)
        log.info(
            "batch.finished",
            jobs=len(jobs),
            finished=finished,
            others=len(jobs) - finished,
            duration=round(time.monotonic() - began, 6),
        )

    def _note_pids(self, spawned: list[tuple[int, int]]) -> None:
        if spawned:
            self._pids.extend(spawned)
            if self._pids_since is None:
                self._pids_since = time.monotonic()

    def _done(self, ended: Ended) -> None:
        job = ended.job
        self.running.pop(job.id, None)
        quiet = job.id in self._quiet
        self._quiet.discard(job.id)
        self.status["performed"] += 1
        fields = {**job.log_fields(), "duration": round(ended.duration, 6)}
        reason = ended.ending.exit
        if reason is not None and not reason.clean:
            fields.update(exit_code=reason.code, signal=reason.signal_name)
        if job.outcome == "finished":
            if quiet:
                log.debug("job.finished", **fields)
            else:
                log.info("job.finished", **fields, latency=job.latency)
        elif job.outcome is not None:
            log.info("job.failed", **fields, error=job.failure, retried=job.outcome == "retried")
        else:
            # The task retried or removed its job, or repair got there first: nothing of ours
            # was recorded.
            log.info("job.ended", **fields, outcome="changed elsewhere")
        self.emit("done", ended)

    def launch(self, job: Job) -> None:
        """Start running one dequeued job in its task's runner (an inline job runs to its end
        here); :meth:`settle` records it once it ended."""
        self._launch([job])

    def signal_job(self, job_id: int, signum: int) -> bool:
        """Send ``signum`` to a running job (a job process's whole group, but USR1 and USR2,
        which only its process gets); false when this worker does not run it."""
        job = self.running.get(job_id)
        return job is not None and self._runner_of(job).signal(job_id, signum)

    def settle(self) -> None:
        """Record the jobs that ended since the last look, without waiting or claiming."""
        self._collect()
        self._flush()

    def perform(self, job: Job) -> None:
        """Run one dequeued job to its end as :meth:`run` would, in its task's mode and failed
        past its task's timeout (:meth:`Minion.perform_jobs`)."""
        if self._mode_of(job.task) == Mode.INLINE:
            with self._pulsing(self.settings.pulse_interval / 10):
                self._launch([job])
        else:
            self._launch([job])
            while job.id in self.running:
                self._wait(self._pause(), listen=False)
                self.settle()
        self._flush()

    def _flush(self) -> None:
        """Record what waits to be recorded, claiming nothing."""
        if self.id is not None:
            self._take_jobs(claiming=False)

    def close(self) -> None:
        """Stop the runners (the fork server and what still runs in it)."""
        for runner in self._runners.values():
            runner.close()

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

    def _pause(self, longest: float = BUSY_PAUSE) -> float:
        """How long to wait while nothing can be done: until a runner must act or a duty is
        due, at most ``longest``; a job ending or a signal ends it sooner."""
        due = min(runner.due_in() for runner in self._runners.values())
        due = min(due, self.fleet_limits.due_in())
        now = time.monotonic()
        if self._pids_since is not None:
            due = min(due, self._pids_since + PID_NOTE_PATIENCE - now)
        for duty, interval in self._duties().items():
            if interval and (last := self._last.get(duty)) is not None:
                due = min(due, last + interval - now)
        return max(min(longest, due), MIN_PAUSE)

    def _duties(self) -> dict[str, float]:
        """Each duty of the loop and its interval (0: never)."""
        settings = self.settings
        schedules = self.minion.backend.has_schedules
        return {
            "heartbeat": settings.heartbeat_interval,
            "command": settings.command_interval,
            "repair": self._repair_every,
            "dispatch": settings.dispatch_interval if schedules else 0.0,
        }

    def _due(self, duty: str, interval: float) -> bool:
        now = time.monotonic()
        last = self._last.get(duty)
        if last is not None and now - last < interval:
            return False
        self._last[duty] = now
        return True

    # The one wait

    def _wait(self, seconds: float, *, listen: bool = True) -> None:
        """Wait up to ``seconds`` for a signal, a runner's descriptor or (when ``listen``) a
        notification of new jobs. A pulse alone does not end the wait: it would cost an idle
        worker a turn, and a claim, every second."""
        logs.flush()
        watched = [fd for runner in self._runners.values() for fd in runner.fds()]
        if self._wakeup is not None:
            watched.append(self._wakeup[0])
        listener = self.minion.backend.notification_fd if listen else None
        if listener is not None:
            watched.append(listener)
        selector = self._selector or selectors.DefaultSelector()
        deadline = time.monotonic() + seconds
        try:
            for fd in watched:
                selector.register(fd, selectors.EVENT_READ)
            while True:
                ready = {key.fd for key, _ in selector.select(deadline - time.monotonic())}
                if ready != {self._wakeup[0] if self._wakeup else -1} or not self._pulses_only():
                    break
        finally:
            for fd in watched:
                with contextlib.suppress(KeyError, ValueError):
                    selector.unregister(fd)
            if self._selector is None:
                selector.close()
        if listener is not None and listener in ready:
            self.minion.backend.take_notifications()
            self._drained_until = None

    def _pulses_only(self) -> bool:
        """Read the signal pipe: whether only pulses (SIGALRM) woke the wait."""
        assert self._wakeup is not None
        try:
            woken = os.read(self._wakeup[0], 512)
        except BlockingIOError:
            return True
        return set(woken) <= {signal.SIGALRM}

    # Signals: handlers only record; the pipe wakes whatever the loop waits on.

    def _install_signals(self) -> dict[int, Any]:
        read, write = os.pipe()
        for end in (read, write):
            os.set_blocking(end, False)
        self._wakeup = (read, write)
        self._selector = selectors.DefaultSelector()
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
        interval = self.settings.pulse_interval
        signal.setitimer(signal.ITIMER_REAL, interval, interval)
        return previous

    def _pulse(self, *_: object) -> None:
        self.emit("pulse")
        self.inline.pulse()

    def _handle_stop(self, *_: object) -> None:
        self._finished = True

    def _handle_quit(self, *_: object) -> None:
        self._finished = self._quit = True

    def _restore_signals(self, previous: dict[int, Any]) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.set_wakeup_fd(-1)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if self._wakeup is not None:
            for end in self._wakeup:
                os.close(end)
        self._wakeup = None
        if self._selector is not None:
            self._selector.close()
            self._selector = None

    def _leave(self) -> None:
        try:
            self._flush()
            self.unregister()
        except DatabaseUnavailableError as error:
            log.warning(
                "worker.unregister_failed", error=str(error), consequence="repair removes the row"
            )
        self.close()
        log.info("worker.stopped", performed=self.status.get("performed"))
