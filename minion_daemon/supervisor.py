"""The supervisor (``minion-daemon run``): forks worker processes and keeps them running.

One loop, single-threaded and pool-free (it forks): wait on one selector (the signal pipe and
the workers' liveness pipes) until the next deadline; then handle signals, reap, replace,
murder hung workers and run the duties (repair, schedule dispatch). Signal handlers only
record. HUP applies a new config at once but for the keys that need a restart
(``config.RESTART_KEYS``), and replaces the workers one at a time.

Worker processes write a byte to their liveness pipe on every pulse (a timer signal, so also
while they wait, back off or run an inline job, but not once stuck in C); the first byte also
says "booted". One that dies before it booted counts towards the crash-loop limit,
which stops the daemon instead of forking forever.
"""

from __future__ import annotations

import dataclasses
import os
import selectors
import shutil
import signal
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Final

from minion_daemon import logs, proc, systemd
from minion_daemon.admin.service import AdminService
from minion_daemon.backend import PgBackend
from minion_daemon.capacity import FIX, connection_budget
from minion_daemon.config import (
    Config,
    ConfigError,
    MinionConfig,
    RepairConfig,
    load_config,
    reloaded,
)
from minion_daemon.errors import BackendError, DatabaseUnavailableError, MinionError
from minion_daemon.metrics import enable_multiprocess, forget_process
from minion_daemon.metrics import make_directory as make_metrics_directory
from minion_daemon.metrics.families import SupervisorMetrics
from minion_daemon.metrics.server import bind, run_metrics_process
from minion_daemon.minion import Minion
from minion_daemon.model import ExitReason, ServerConnections
from minion_daemon.services import ServiceProcess
from minion_daemon.tasks import TaskConflictError, TaskLoadError
from minion_daemon.tasks.discovery import list_entry_points
from minion_daemon.timers import Deadline, Periodic, earliest
from minion_daemon.worker.process import EXIT_BOOT_ERROR, read_worker_id, run_worker_process

log = logs.get_logger("minion_daemon.supervisor")

#: Exit code of the daemon stopped by a crash loop; systemd's unit does not restart on it.
EXIT_CRASH_LOOP: Final = 3
#: Boot failures within CRASH_WINDOW seconds that stop the daemon.
CRASH_LIMIT: Final = 5
CRASH_WINDOW: Final = 60.0
MAX_RESPAWN_DELAY: Final = 30.0
#: Seconds between the QUIT of a fast stop (or after the graceful timeout) and KILL.
KILL_AFTER: Final = 10.0
#: Bounds of every statement the supervisor runs (its duties: repair, its guard lock, schedule
#: dispatch): a lock held elsewhere or a slow statement fails the duty, which is logged and
#: tried again at its next turn, instead of freezing the loop that answers signals, reaps and
#: keeps /healthz fresh. Repair at a million jobs takes about 0.2 s (BENCHMARKS.md).
SUPERVISOR_LOCK_TIMEOUT: Final = 2.0
SUPERVISOR_STATEMENT_TIMEOUT: Final = 5.0
#: Seconds between attempts to bury dead workers while the database is unavailable.
BURY_RETRY: Final = 5.0
#: The lock that keeps a fleet's repairs apart.
REPAIR_GUARD: Final = "minion-daemon:repair"
#: The sections every service process reads besides its own (logging is set up before the
#: fork, and the process inherits it).
_SERVED: Final = ("postgres", "logging")


class CrashLoopError(MinionError):
    """Worker processes keep dying before they boot; the daemon gives up."""


@dataclass
class WorkerProcess:
    pid: int
    liveness: int
    started: float
    last_seen: float
    booted: bool = False
    generation: int = 0
    leaving: bool = False
    hung: bool = False
    #: Its row in minion_workers, as it told us: whose jobs to fail when it dies.
    worker_id: int | None = None
    #: The start of a message that the last read cut off.
    unread: bytes = b""


@dataclass
class MetricsService(ServiceProcess):
    """The metrics process, its socket, and the directory of every process's metric files,
    made before any fork (prometheus-client's multiprocess mode is chosen at its import)."""

    name: ClassVar[str] = "metrics"
    directory: Path
    metrics: SupervisorMetrics | None = None


class Supervisor:
    """Keeps ``workers.processes`` worker processes running until told to stop."""

    def __init__(self, config: Config, dsn: str, config_path: Path | None = None) -> None:
        self.config = config
        self.config_path = config_path
        self.dsn = dsn
        self.workers: dict[int, WorkerProcess] = {}
        self.desired = config.workers.processes
        #: Signals the handlers recorded, for the loop to act on.
        self._pending: deque[int] = deque()
        self._boot_failures: deque[float] = deque()
        self._respawn_at = 0.0
        self._generation = 0
        self._stopping: bool | None = None  # None: running; True: graceful; False: fast
        self._wakeup_read = self._wakeup_write = -1
        #: What the loop waits on: the signal pipe (data None) and each worker's liveness
        #: pipe (data: the worker). epoll, with no ceiling on descriptor numbers, unlike
        #: select(2), which refuses 1024 and above.
        self._selector = selectors.DefaultSelector()
        self._minion: Minion | None = None
        self._repair_timer = _repair_timer(config.repair)
        self._dispatch_timer = Periodic(config.schedules.dispatch_interval)
        #: When the fleet's repair guard this daemon took expires; and whether to release it
        #: before the next repair (the repair settings it was taken under changed).
        self._guard_expires = 0.0
        self._release_guard = False
        watchdog = systemd.watchdog_interval()
        self._watchdog_timer = Periodic(watchdog) if watchdog else None
        self._ready_sent = False
        self._service: MetricsService | None = None
        #: The server's connection slots, read at start (they change only with a restart).
        self._server: ServerConnections | None = None
        #: Rows of workers that died, whose jobs are still to be failed; and when to try.
        self._dead: deque[int] = deque()
        self._bury_at = 0.0
        self._admin: AdminService | None = None

    # Start

    def run(self) -> int:
        """Prepare, supervise until stopped; returns the exit code."""
        proc.set_title("supervisor", "minion-daemon")
        list_entry_points(self.config.tasks.entry_points)  # fails here, before any fork
        try:
            if self.config.metrics.enabled:
                self._service = _prepare_metrics(self.config.metrics.listen)
            if self.config.admin.enabled:
                self._admin = AdminService.prepare(self.config)
            return self._supervise()
        finally:
            if self._admin is not None:
                self._admin.close()
            if self._service is not None:
                self._close_metrics(self._service)
            self._selector.close()

    def _supervise(self) -> int:
        self._minion = self._open_minion()
        schema_version = self._minion.backend.schema_version
        if self._service is not None:
            self._service.metrics = SupervisorMetrics(schema_version)
        self._server = self._minion.backend.server_connections()
        self._install_signals()
        # The DSN (password masked) is what `minion-daemon job --dsn` and Python use, notably
        # for a private cluster, whose socket path the operator would otherwise have to guess.
        log.info(
            "supervisor.started",
            processes=self.desired,
            schema_version=schema_version,
            dsn=self.dsn,
        )
        self._check_connections()
        try:
            while not self._done():
                self._turn()
        except CrashLoopError as error:
            log.error("supervisor.crash_loop", error=str(error))
            self._stop(graceful=False)
            return EXIT_CRASH_LOOP
        finally:
            self._minion.close()
        log.info("supervisor.stopped")
        return 0

    def _open_minion(self) -> Minion:
        minion = Minion(
            PgBackend.from_settings(
                self.config.postgres,
                self.dsn,
                pooled=False,
                lock_timeout=SUPERVISOR_LOCK_TIMEOUT,
                statement_timeout=SUPERVISOR_STATEMENT_TIMEOUT,
            )
        )
        _set_thresholds(minion, self.config.minion)
        return minion

    def _done(self) -> bool:
        return self._stopping is not None and not self.workers

    # The loop: act on signals, reap, replace, murder, duties, wait.

    def _turn(self) -> None:
        self._handle_signals()
        if self._done():
            return  # stopped just now; waiting for the next turn would only delay the exit
        self._reap_workers()
        self._bury_workers()
        if self._stopping is None:
            self._manage_workers()
            self._murder_workers()
            self._run_duties()
            self._manage_metrics()
            self._manage_admin()
        self._wait()

    def _wait(self) -> None:
        now = time.monotonic()
        respawn = Deadline(self._respawn_at) if self._respawn_at > now else None
        service = self._service
        metrics_respawn = (
            Deadline(service.respawn_at) if service and service.respawn_at > now else None
        )
        timers = (
            self._repair_timer,
            self._dispatch_timer,
            self._watchdog_timer,
            respawn,
            metrics_respawn,
        )
        self._select(min(1.0, max(earliest(now, *timers), 0.01)))

    def _select(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for a signal or a worker's word, and take them."""
        for key, _ in self._selector.select(timeout):
            if key.data is None:
                proc.drain(self._wakeup_read)
            else:
                self._heard_from(key.data)

    def _heard_from(self, worker: WorkerProcess) -> None:
        try:
            data = os.read(worker.liveness, 4096)
        except BlockingIOError:
            return
        if data:
            worker.last_seen = time.monotonic()
            if not worker.booted:
                worker.booted = True
                log.info("worker.booted", worker_pid=worker.pid)
            announced, worker.unread = read_worker_id(worker.unread + data)
            worker.worker_id = announced or worker.worker_id

    # Signals

    def _install_signals(self) -> None:
        read, write = os.pipe()
        for end in (read, write):
            os.set_blocking(end, False)
        self._wakeup_read, self._wakeup_write = read, write
        self._selector.register(read, selectors.EVENT_READ, None)
        signal.set_wakeup_fd(write, warn_on_full_buffer=False)
        for signum in (
            signal.SIGTERM,
            signal.SIGINT,
            signal.SIGQUIT,
            signal.SIGHUP,
            signal.SIGTTIN,
            signal.SIGTTOU,
            signal.SIGCHLD,
        ):
            signal.signal(signum, self._record_signal)

    def _record_signal(self, signum: int, _frame: Any) -> None:
        self._pending.append(signum)

    def _handle_signals(self) -> None:
        while self._pending:
            signum = self._pending.popleft()
            if signum in (signal.SIGTERM, signal.SIGINT):
                self._stop(graceful=True)
            elif signum == signal.SIGQUIT:
                self._stop(graceful=False)
            elif signum == signal.SIGTTIN:
                self.desired += 1
                self._scaled(signum)
                self._check_connections()
            elif signum == signal.SIGTTOU:
                self.desired = max(self.desired - 1, 0)
                self._scaled(signum)
            elif signum == signal.SIGHUP:
                self._reload()

    def _scaled(self, signum: int) -> None:
        log.info("supervisor.scaled", signal=signal.Signals(signum).name, processes=self.desired)

    def _check_connections(self) -> None:
        """Warn when the pools could want more connections than the server has to give."""
        assert self._server is not None, "read at start, before any signal is handled"
        budget = connection_budget(self.config, self.desired, self._server)
        if budget.exceeded:
            log.warning(
                "supervisor.connections_exceed_server",
                processes=self.desired,
                pool_max_size=self.config.postgres.pool_max_size,
                **dataclasses.asdict(budget),
                fix=FIX,
            )

    def _reload(self) -> None:
        """Re-read the config; if it is valid, apply it, and replace the workers one at a time."""
        if self.config_path is None:
            log.info("config.reloaded", file=None, change="none: workers replaced")
        elif not self._reload_from(self.config_path):
            return
        self._generation += 1

    def _reload_from(self, path: Path) -> bool:
        """Apply the config in ``path`` but for the keys that need a restart, which are named;
        false, with nothing changed, when it cannot be used."""
        try:
            loaded = load_config(path)
            list_entry_points(loaded.tasks.entry_points)  # new workers would fail to boot
            config, needs_restart = reloaded(self.config, loaded)
            if self._admin is not None and _changed(self.config, config, "admin", *_SERVED):
                self._admin.reload(config)  # the last check, and the first change
        except (ConfigError, TaskLoadError, TaskConflictError) as error:
            log.error("config.reload_failed", error=str(error), consequence="old config kept")
            self._count_reload("invalid")
            return False
        self._apply(config)
        restart = {"needs_restart": needs_restart, "until_then": "running values kept"}
        log.info("config.reloaded", file=str(path), **(restart if needs_restart else {}))
        self._count_reload("applied")
        return True

    def _apply(self, config: Config) -> None:
        """Run on ``config`` from now on: the supervisor's own settings at once, the metrics
        process restarted if what it serves changed (the workers are replaced by the caller)."""
        old, self.config = self.config, config
        self.desired = config.workers.processes
        if old.logging != config.logging:
            logs.configure(config.logging.format, config.logging.level)
        self._reconnect(old)
        self._retime(old)
        if self._service is not None and _changed(old, config, "metrics", *_SERVED):
            self._service.replace()
        self._check_connections()

    def _reconnect(self, old: Config) -> None:
        """A new connection for new connection settings; new repair thresholds."""
        assert self._minion is not None
        if old.postgres != self.config.postgres:
            self._minion.close()
            self._minion = self._open_minion()
        _set_thresholds(self._minion, self.config.minion)

    def _retime(self, old: Config) -> None:
        """Duties whose settings changed start over, as at start: they run at once."""
        if old.repair != self.config.repair:
            self._repair_timer = _repair_timer(self.config.repair)
            # Taken for half the old interval, the guard would hold a shorter one back.
            self._release_guard = time.monotonic() < self._guard_expires
        if old.schedules != self.config.schedules:
            self._dispatch_timer = Periodic(self.config.schedules.dispatch_interval)

    # Workers

    def _manage_workers(self) -> None:
        now = time.monotonic()
        staying = [w for w in self.workers.values() if not w.leaving]
        current = [w for w in staying if w.generation == self._generation]
        old = [w for w in staying if w.generation != self._generation]
        # After a reload, an old worker leaves only once the new ones are up: one at a time,
        # each finishing its running jobs.
        if old and len(current) >= self.desired and all(w.booted for w in current):
            self._retire(old[0])
        if len(current) < self.desired and now >= self._respawn_at:
            self._spawn_worker()
        elif len(current) > self.desired:
            self._retire(max(current, key=lambda w: w.started))

    def _retire(self, worker: WorkerProcess) -> None:
        """Ask a worker to stop after its running jobs (TERM)."""
        worker.leaving = True
        proc.kill(worker.pid, signal.SIGTERM)

    def _spawn_worker(self) -> None:
        read, write = os.pipe()
        os.set_blocking(read, False)
        pid = proc.fork(lambda: self._worker_main(write), job=False)
        os.close(write)
        now = time.monotonic()
        worker = WorkerProcess(pid, read, now, now, generation=self._generation)
        self.workers[pid] = worker
        self._selector.register(read, selectors.EVENT_READ, worker)
        log.info("worker.spawned", worker_pid=pid, generation=self._generation)

    def _worker_main(self, liveness: int) -> int:
        self._leave_supervisor()
        return run_worker_process(self.config, self.dsn, liveness)

    def _leave_supervisor(self) -> None:
        """In a forked child: drop what belongs to the supervisor (its pipes, connections and
        the metrics socket, which no job process may hold)."""
        # Closing the epoll descriptor leaves the supervisor's registrations alone; an
        # unregister here would remove them from the instance both processes share.
        self._selector.close()
        os.close(self._wakeup_read)
        os.close(self._wakeup_write)
        for worker in self.workers.values():
            os.close(worker.liveness)
        if self._minion is not None:
            self._minion.backend.forget_inherited()
        if self._service is not None:
            self._service.listener.close()
        if self._admin is not None:
            self._admin.listener.close()

    def _reap_workers(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            stopping = self._stopping is not None
            if any(service.exited(pid, status, stopping) for service in self._services()):
                continue
            worker = self.workers.pop(pid, None)
            if worker is None:
                continue  # a grandchild we inherited as PID 1
            self._heard_from(worker)  # its last words may hold its id
            # Unregistered before it is closed: the selector would keep its number, which
            # the next pipe reuses.
            self._selector.unregister(worker.liveness)
            os.close(worker.liveness)
            self._exited(worker, proc.decode(status))

    def _exited(self, worker: WorkerProcess, reason: ExitReason) -> None:
        log.info(
            "worker.exited",
            worker_pid=worker.pid,
            exit_code=reason.code,
            signal=reason.signal_name,
            booted=worker.booted,
        )
        if self._service is not None:
            forget_process(worker.pid, self._service.directory)
        if worker.worker_id is not None:
            self._dead.append(worker.worker_id)
        if self._stopping is not None or worker.leaving:
            return
        self._count_restart(_restart_reason(worker, reason))
        if reason.code == EXIT_BOOT_ERROR:
            raise CrashLoopError(f"worker {worker.pid} could not load its tasks (exit code 3)")
        if not worker.booted:
            self._boot_failed(time.monotonic())

    def _boot_failed(self, now: float) -> None:
        self._boot_failures.append(now)
        while self._boot_failures and self._boot_failures[0] < now - CRASH_WINDOW:
            self._boot_failures.popleft()
        failures = len(self._boot_failures)
        if failures >= CRASH_LIMIT:
            raise CrashLoopError(
                f"{failures} worker processes died before booting within {CRASH_WINDOW:g} s"
            )
        self._respawn_at = now + min(2.0 ** (failures - 1), MAX_RESPAWN_DELAY)

    def _murder_workers(self) -> None:
        limit = self.config.workers.liveness_timeout
        now = time.monotonic()
        for worker in self.workers.values():
            if now - worker.last_seen > limit:
                log.warning(
                    "worker.hung", worker_pid=worker.pid, silent=round(now - worker.last_seen, 1)
                )
                worker.hung = True
                proc.kill(worker.pid, signal.SIGKILL)

    def _bury_workers(self) -> None:
        """Fail the jobs of the workers that died (retried while attempts remain) and remove
        their rows now, rather than leave them active until repair finds the workers missing
        (``missing_after``). A worker that stopped on its own has done so already; this finds
        nothing then. While the database is away, tried again every :data:`BURY_RETRY`
        seconds, so the loop goes on supervising; if the daemon stops first, repair does it."""
        assert self._minion is not None
        if not self._dead or time.monotonic() < self._bury_at:
            return
        try:
            while self._dead:
                failed = self._minion.backend.bury_worker(self._dead[0])
                log.info("worker.buried", worker_id=self._dead.popleft(), jobs_failed=failed)
        except DatabaseUnavailableError as error:
            self._bury_at = time.monotonic() + BURY_RETRY
            log.warning("worker.bury_postponed", error=str(error), retry_in=BURY_RETRY)
        except BackendError as error:
            log.error(
                "worker.bury_failed",
                worker_id=self._dead.popleft(),
                error=str(error),
                consequence="repair fails its jobs",
            )

    # Service processes

    def _services(self) -> list[ServiceProcess]:
        return [service for service in (self._service, self._admin) if service is not None]

    def _manage_metrics(self) -> None:
        service = self._service
        if service is None:
            return
        if service.metrics is not None:
            alive = [w for w in self.workers.values() if not w.leaving]
            service.metrics.turned(self.desired, len(alive), sum(w.booted for w in alive))
        service.manage(
            lambda: proc.fork(lambda: self._metrics_main(service), job=False),
            self.config.metrics.listen,
        )

    def _metrics_main(self, service: MetricsService) -> int:
        proc.set_title("metrics", "minion-metrics")
        listener = service.listener.dup()
        self._leave_supervisor()
        return run_metrics_process(self.config, self.dsn, service.directory, listener)

    def _close_metrics(self, service: MetricsService) -> None:
        service.close()
        shutil.rmtree(service.directory, ignore_errors=True)

    def _manage_admin(self) -> None:
        admin = self._admin
        if admin is not None:
            admin.manage(
                lambda: proc.fork(lambda: self._admin_main(admin), job=False),
                self.config.admin.listen,
            )

    def _admin_main(self, admin: AdminService) -> int:
        proc.set_title("admin", "minion-admin")
        listener = admin.listener.dup()
        self._leave_supervisor()
        return admin.run(self.config, self.dsn, listener)

    def _count_restart(self, reason: str) -> None:
        if self._service is not None and self._service.metrics is not None:
            self._service.metrics.restarts.labels(reason).inc()

    def _count_reload(self, result: str) -> None:
        if self._service is not None and self._service.metrics is not None:
            self._service.metrics.reloads.labels(result).inc()

    # Duties

    def _run_duties(self) -> None:
        assert self._minion is not None
        now = time.monotonic()
        # A database outage postpones a duty to its next turn; the workers ride it out on
        # their own, and the supervisor must keep supervising them meanwhile.
        try:
            if self._repair_timer.due(now):
                self._repair()
            if self._dispatch_timer.due(now) and self._minion.backend.has_schedules:
                self._minion.dispatch_schedules()
        except DatabaseUnavailableError as error:
            log.warning("supervisor.database_unavailable", error=str(error))
        except BackendError as error:
            # A statement that failed (a deadlock with another daemon's repair, a server-side
            # statement_timeout, a broken trigger): the fleet is not the worse for it, so it
            # keeps running and the duty is tried again at its next turn.
            log.error("supervisor.duty_failed", error=str(error), consequence="retried later")
        self._tell_systemd(now)

    def _tell_systemd(self, now: float) -> None:
        booted = sum(worker.booted for worker in self.workers.values())
        if not self._ready_sent and (booted or self.desired == 0):
            self._ready_sent = systemd.ready(f"{booted} of {self.desired} worker processes")
        if self._ready_sent and self._watchdog_timer is not None and self._watchdog_timer.due(now):
            systemd.watchdog()
            systemd.status(f"{booted} of {self.desired} worker processes")

    def _repair(self) -> None:
        assert self._minion is not None
        if not self._take_repair_guard(self._minion):
            return
        started = time.monotonic()
        report = self._minion.repair()
        duration = time.monotonic() - started
        log.info("repair.done", **dataclasses.asdict(report), duration=round(duration, 6))
        if self._service is not None and self._service.metrics is not None:
            self._service.metrics.repaired(report, duration)

    def _take_repair_guard(self, minion: Minion) -> bool:
        """Whether this daemon may repair now. The guard is held until it expires, half an
        interval later: however many daemons a fleet runs, repair happens at most that often."""
        if self._release_guard:
            minion.unlock(REPAIR_GUARD)
            self._release_guard = False
        held = int(self.config.repair.interval / 2)
        if minion.guard(REPAIR_GUARD, held) is None:
            return False
        self._guard_expires = time.monotonic() + held
        return True

    # Stop

    def _stop(self, *, graceful: bool) -> None:
        if self._stopping is False or (self._stopping is True and graceful):
            return
        self._stopping = graceful
        systemd.stopping()
        log.info("supervisor.stopping", mode="graceful" if graceful else "fast")
        for worker in self.workers.values():
            proc.kill(worker.pid, signal.SIGTERM if graceful else signal.SIGQUIT)
        deadline = time.monotonic() + (self.config.shutdown.graceful_timeout if graceful else 0)
        self._finish_stop(deadline)

    def _finish_stop(self, deadline: float) -> None:
        quit_sent = deadline <= time.monotonic()
        kill_at = deadline + KILL_AFTER
        while self.workers:
            self._reap_workers()
            self._bury_workers()
            now = time.monotonic()
            if not quit_sent and (now >= deadline or self._hurried()):
                for worker in self.workers.values():
                    proc.kill(worker.pid, signal.SIGQUIT)
                quit_sent = True
            if now >= kill_at:
                for worker in self.workers.values():
                    proc.kill(worker.pid, signal.SIGKILL)
            self._select(0.1)

    def _hurried(self) -> bool:
        """A QUIT, or a second INT/TERM, during a graceful stop makes it fast."""
        hurry = {signal.SIGQUIT, signal.SIGINT, signal.SIGTERM}
        hurried = False
        # Taken one at a time, as _handle_signals does: a handler may append meanwhile, and
        # iterating the deque then raised "deque mutated during iteration".
        while self._pending:
            hurried = self._pending.popleft() in hurry or hurried
        return hurried


def _restart_reason(worker: WorkerProcess, reason: ExitReason) -> str:
    """Why a worker is replaced, for ``minion_worker_restarts_total``: a clean exit of its own
    is a worker told to stop (the ``shutdown`` remote command), which no alert counts."""
    if worker.hung:
        return "hung"
    if not worker.booted:
        return "boot_failed"
    return "stopped" if reason.clean else "died"


def _repair_timer(repair: RepairConfig) -> Periodic:
    return Periodic(repair.interval if repair.enabled else 0, jitter=0.5)


def _set_thresholds(minion: Minion, settings: MinionConfig) -> None:
    minion.missing_after = settings.missing_after
    minion.remove_after = settings.remove_after
    minion.stuck_after = settings.stuck_after


def _changed(old: Config, new: Config, *sections: str) -> bool:
    return any(getattr(old, name) != getattr(new, name) for name in sections)


def _prepare_metrics(listen: str) -> MetricsService:
    """Bind the metrics socket and make the directory of the processes' metric files."""
    listener = bind(listen)
    directory = make_metrics_directory(os.environ.get("RUNTIME_DIRECTORY"))
    enable_multiprocess(directory)
    return MetricsService(listener, directory)
